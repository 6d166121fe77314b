"""A liar's accomplice opened in the commit's own block cannot take the honest challenger's pay
(issue 16, "Incentives that accomplices cannot capture"), on the real contracts.

The liar commits a wrong result and, in the same block, its accomplices challenge it (automine
off: the commit and the challenges are sent, then one block is mined), so their games have the
lowest ids. The liar stalls in the accomplices' games, which they win on time; an honest
challenger opens a game one block later and wins it at the one step. Every transaction pays a
base fee of 10 gwei and a 1 gwei tip. Each challenger settles its own game.

Before (main, protocol 10.2 until issue 16): the earliest-opened winning game took the reward
share, 50% of the solver bond; the liar lost half its bond, the honest challenger got its bond
back and paid its gas. After: winners' gas is refunded from the slashed bond, the bonus pool
(10%) is shared equally among the winning games less a dilution fee each, and the rest is
burned. Measured in wei from balances and receipts: the liar loses at least 90% of its bond,
the honest challenger is repaid more than its gas plus a positive bonus, and every accomplice
added beyond the first lowers the liar's net.
"""

import pytest

from game_bots import CHALLENGER_WON, STATS, Match
from market_world import (CHALLENGER_BOND, FEE_BPS, SHARE_BPS, WINDOWS, World, challenge, model_and_traces, party,
                          play)
from referee import commitments as cm
from referee.cheats import wrong_element

BASE_FEE = 10 * 10**9
TIP = 10**9
OLD_SHARE_BPS = 5000  # main's default reward share, paid whole to the earliest-opened winner


@pytest.fixture(scope="module")
def world(project, accounts):
    w = World(project, accounts)
    # more accomplices than World's three challengers
    w.accomplices = [str(a.address) for a in accounts[4:9] if str(a.address) != w.challengers[1]]
    w.honest = w.challengers[1]
    return w


@pytest.fixture(scope="module")
def job_model():
    """4 ops, 5 rows, a 40-column hidden slot: the game of tests/test_griefing.py."""
    return model_and_traces(5, 10, [12, 40, 8, 6], rows=5)


@pytest.fixture(autouse=True)
def fresh(world):
    snapshot = world.node.snapshot()
    world.node.base_fee, world.node.tip = BASE_FEE, TIP
    yield
    world.node.base_fee = None
    world.node.revert(snapshot)


def send_in_one_block(w: World, txs: list[tuple[str, str, bytes, int, int]]) -> list[dict]:
    """Sends ``(sender, to, data, value, tip)`` transactions with automine off and mines them in
    one block (the higher tip first); returns their receipts, each checked to have succeeded."""
    node = w.node
    node.request("evm_setAutomine", [False])
    try:
        hashes = []
        for sender, to, data, value, tip in txs:
            tx = {"from": sender, "to": to, "data": "0x" + data.hex(), "value": hex(value), "gas": hex(3_000_000),
                  "maxFeePerGas": hex(BASE_FEE + tip), "maxPriorityFeePerGas": hex(tip)}
            hashes.append(node.request("eth_sendTransaction", [tx]))
        node.request("anvil_setNextBlockBaseFeePerGas", [hex(BASE_FEE)])
        node.request("evm_mine", [])
    finally:
        node.request("evm_setAutomine", [True])
    receipts = [node.request("eth_getTransactionReceipt", [h]) for h in hashes]
    assert len({r["blockNumber"] for r in receipts}) == 1, "not one block"
    for (sender, *_), r in zip(txs, receipts):
        assert int(r["status"], 16) == 1, r
        node.gas_paid[sender.lower()] += int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16)
    return receipts


def play_out(w: World, job_model, accomplices: int) -> dict:
    """The scenario with ``accomplices`` accomplice games; returns the figures, in wei."""
    model, honest, _ = job_model
    lie = wrong_element(honest, honest.op_count, row=4, col=2)
    node, market = w.node, w.market
    liar_side = [w.solver, *w.accomplices[:accomplices]]
    everyone = [*liar_side, w.honest]
    balance = {a: node.balance(a) for a in everyone}

    # posted and claimed; the commit and the accomplices' challenges in one block
    model_id = w.registry.view("model_id", model.entry)
    if model_id == 0:
        w.registry.transact(w.requester, "register", *model.registration())
        model_id = w.registry.view("model_count")
    market.transact(w.requester, "post", model_id, honest.slots[0].shape[0], cm.packed(honest.slots[0]),
                    w.solver_bond, *WINDOWS, value=w.fee)
    job_id = market.view("job_count")
    market.transact(w.solver, "deposit", value=w.solver_bond)
    market.transact(w.solver, "claim", job_id)
    n = lie.op_count
    commit = market.data("commit", job_id, cm.packed(lie.output), lie.trace_root, lie.state_tree(n).proof(n))
    send_in_one_block(w, [(w.solver, market.address, commit, 0, 2 * TIP)] + [
        (a, market.address, market.data("challenge", job_id), CHALLENGER_BOND, TIP) for a in liar_side[1:]])
    w.check()
    liar = party("liar", w.solver, job_model, trace=lie, honest=False)
    first = w.node.request("eth_getBlockByNumber", ["latest", False])["timestamp"]
    matches = [_match(w, gid, liar, party(f"accomplice {gid}", a, job_model), int(first, 16))
               for gid, a in zip(range(w.game.view("game_count") - accomplices + 1, w.game.view("game_count") + 1),
                                 liar_side[1:])]

    # the honest challenger, a block later, plays to the step; the liar plays its lie there
    gas_before = node.gas_paid[w.honest.lower()]
    judge = party("honest challenger", w.honest, job_model)
    theirs = challenge(w, job_id, judge, liar)
    assert all(m.gid < theirs.gid for m in matches)
    play(w, [theirs])
    assert theirs.result == CHALLENGER_WON and theirs.reason == "element differs"
    receipts = [market.transact(w.honest, "settle", theirs.gid)]
    honest_gas = node.gas_paid[w.honest.lower()] - gas_before
    # the liar lets each accomplice win on time; each settles its own game
    play(w, matches, stalls=[liar])
    for m in matches:
        assert m.result == CHALLENGER_WON
        receipts.append(market.transact(m.challenger.address, "settle", m.gid))
        w.check()
    assert market.view("job", job_id)["held"] == 0
    credited = market.view("credit", w.honest)
    [bonus] = {log["reward"] for r in receipts for log in market.event_logs(r, "RewardPaid")} or {0}

    for a in everyone:
        if market.view("credit", a):
            market.transact(a, "withdraw")
    w.check()
    net = {a: node.balance(a) - balance[a] for a in everyone}
    liar_net = sum(net[a] for a in liar_side)
    return {"liar_net": liar_net, "honest_net": net[w.honest], "honest_gas": honest_gas, "credited": credited,
            "bonus": bonus}


def _match(w, gid, solver, challenger, opened):
    return Match(gid, solver, challenger, opened)


def test_accomplice_in_the_commit_block_cannot_capture_the_honest_challengers_pay(world, job_model):
    w = world
    bond = w.solver_bond
    one = play_out(w, job_model, accomplices=1)
    # before: main paid the earliest-opened winner (the accomplice) 50% of the bond
    old_liar_loss = bond - bond * OLD_SHARE_BPS // 10_000
    old_honest_net = -one["honest_gas"]
    liar_loss = -one["liar_net"]
    # the liar loses at least 90% of its bond, whatever its accomplices took
    assert liar_loss >= bond * 9 // 10, liar_loss
    # the honest challenger is credited its bond, more than its gas, and a positive bonus
    assert one["bonus"] > 0
    assert one["credited"] >= CHALLENGER_BOND + one["honest_gas"] + one["bonus"]
    # and its balance, after its withdrawal too, is up
    assert one["honest_net"] > 0
    STATS.figures.append(
        f"accomplice in the commit block (bond {bond / 1e18:g} ETH, base fee {BASE_FEE / 1e9:g} gwei): before, the "
        f"accomplice took {bond * OLD_SHARE_BPS // 10_000 / 1e18:g} ETH, the liar lost {old_liar_loss / 1e18:.4f} ETH "
        f"(+gas), the honest challenger netted {old_honest_net / 1e18:.6f} ETH; after (pool {SHARE_BPS} bps, fee "
        f"{FEE_BPS} bps), the liar lost {liar_loss / 1e18:.6f} ETH ({liar_loss * 100 / bond:.2f}% of its bond), the "
        f"honest challenger spent {one['honest_gas'] / 1e18:.6f} ETH of gas and netted {one['honest_net'] / 1e18:.6f} "
        f"ETH (bonus {one['bonus'] / 1e18:.6f})")
    print(STATS.figures[-1])


@pytest.mark.parametrize("accomplices", [2, 4])
def test_more_accomplices_lower_the_liars_net(world, job_model, accomplices):
    w = world
    snapshot = w.node.snapshot()
    one = play_out(w, job_model, accomplices=1)
    w.node.revert(snapshot)
    more = play_out(w, job_model, accomplices=accomplices)
    assert more["liar_net"] < one["liar_net"], (more, one)
    assert -more["liar_net"] >= w.solver_bond * 9 // 10
    # the honest challenger is never left below its gas
    assert more["credited"] >= CHALLENGER_BOND + more["honest_gas"]
    STATS.figures.append(
        f"{accomplices} accomplices instead of 1: the liar's net {more['liar_net'] / 1e18:.6f} ETH against "
        f"{one['liar_net'] / 1e18:.6f}; the honest challenger's bonus {more['bonus'] / 1e18:.6f} ETH, its net "
        f"{more['honest_net'] / 1e18:.6f} ETH")
    print(STATS.figures[-1])

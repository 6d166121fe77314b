"""DisputeGame.multicall on anvil: many moves of many games in one transaction.

Each sub-call is a self-delegatecall, so the caller moves as itself (``msg.sender`` kept); a
sub-call that reverts is skipped with a ``CallSkipped`` log naming its index and reason, while
the rest of the batch lands; batches beyond the limits are refused. Games are opened through
``game_owner_mock`` as in ``test_dispute_game.py``.
"""

import random

import ape
import pytest
from eth_abi import decode

from helpers import int8_tensor, random_input, random_ref_model, to_integer_model
from referee import game as moves
from referee.executor import run_model
from referee.trace import Trace
from referee.agents.deployment import deploy_game

CLOCK = 3600
ARITY = 2


@pytest.fixture(scope="module")
def model_and_trace():
    rng = random.Random(41)
    model = to_integer_model(random_ref_model(rng, 6, [5, 7, 4, 6, 3]))
    return model, Trace(model.root, run_model(model, int8_tensor(random_input(rng, 3, 6)), "cpu"))


@pytest.fixture(scope="module")
def game(project, deployer):
    game = deploy_game(deployer, ARITY, CLOCK, project)
    return game, deployer.deploy(project.game_owner_mock, game.address)


def _open(game, model, trace, solver, challenger, sender, count: int) -> list[int]:
    """``count`` fresh games of ``solver`` against ``challenger`` over a wrong S_N (solver to bisect)."""
    contract, owner = game
    ids = []
    for _ in range(count):
        owner.open(solver, challenger, model.ops_root, len(model.ops), trace.state_roots[0], b"\x01" * 32,
                   sender=sender)
        ids.append(contract.game_count())
    return ids


def _bisect(contract, trace, gid) -> bytes:
    return bytes(contract.bisect.encode_input(gid, moves.bisection_roots(trace, 0, 5, ARITY)))


def _skipped(contract, receipt) -> list[tuple[int, str]]:
    """(index, revert reason) of each skipped sub-call, from the receipt's logs."""
    out = []
    for log in receipt.decode_logs(contract.CallSkipped):
        data = bytes(log.reason)
        out.append((log.index, decode(["string"], data[4:])[0] if data[:4] == bytes.fromhex("08c379a0") else ""))
    return out


def test_multicall_moves_many_games_as_the_caller_succeeds(game, model_and_trace, accounts, deployer):
    contract, _ = game
    model, trace = model_and_trace
    solver, challenger = accounts[1], accounts[2]
    ids = _open(game, model, trace, solver, challenger, deployer, 3)

    receipt = contract.multicall([_bisect(contract, trace, gid) for gid in ids], sender=solver)

    assert _skipped(contract, receipt) == []
    for gid in ids:  # each bisect ran as the solver: the phase moved to the challenger's choose
        assert contract.games(gid).phase == 2
        assert contract.to_move(gid) == challenger.address
    assert len(receipt.decode_logs(contract.Bisected)) == 3


def test_multicall_by_another_caller_moves_nothing_succeeds(game, model_and_trace, accounts, deployer):
    """A stranger's batch of the solver's moves: every sub-call fails as ``not your move``."""
    contract, _ = game
    model, trace = model_and_trace
    ids = _open(game, model, trace, accounts[1], accounts[2], deployer, 2)

    receipt = contract.multicall([_bisect(contract, trace, gid) for gid in ids], sender=accounts[3])

    assert _skipped(contract, receipt) == [(0, "game: not your move"), (1, "game: not your move")]
    assert [contract.games(gid).phase for gid in ids] == [1, 1]


def test_multicall_failing_sub_call_is_skipped_and_reported_succeeds(game, model_and_trace, accounts, deployer):
    contract, _ = game
    model, trace = model_and_trace
    solver, challenger = accounts[1], accounts[2]
    a, b, c = _open(game, model, trace, solver, challenger, deployer, 3)
    contract.bisect(b, moves.bisection_roots(trace, 0, 5, ARITY), sender=solver)  # b moved meanwhile

    calls = [_bisect(contract, trace, a), _bisect(contract, trace, b), _bisect(contract, trace, c),
             bytes(contract.timeout.encode_input(a))]  # a's challenger has time: not run out
    landed = contract.multicall.call(calls, sender=solver)
    receipt = contract.multicall(calls, sender=solver)

    assert landed == [True, False, True, False]
    assert _skipped(contract, receipt) == [(1, "game: wrong phase"), (3, "game: clock has not run out")]
    assert [contract.games(gid).phase for gid in (a, b, c)] == [2, 2, 2]
    # the skipped sub-call changed nothing: b's clock was charged once, by its own bisect
    assert contract.games(b).roots_hash == contract.games(a).roots_hash


def test_multicall_empty_batch_reverts(game, accounts):
    contract, _ = game
    with ape.reverts("game: empty multicall"):
        contract.multicall([], sender=accounts[1])


def test_multicall_beyond_its_limits_reverts(game, model_and_trace, accounts, deployer):
    """More than MAX_CALLS sub-calls, or one longer than MAX_CALL_BYTES (the largest move's
    calldata), is refused by the ABI decoder before anything runs."""
    contract, _ = game
    model, trace = model_and_trace
    (gid,) = _open(game, model, trace, accounts[1], accounts[2], deployer, 1)
    move = _bisect(contract, trace, gid)
    max_calls, max_bytes = contract.MAX_CALLS(), contract.MAX_CALL_BYTES()
    # the longest batched move: a linear step at BATCH_COLS = 128 columns with 16-deep proofs and
    # two input headers, as the ABI encoder lays it out
    from eth_abi import encode
    from referee.witness import LINEAR_WITNESS

    proof, header, row = [b"\x11" * 32] * 16, (1, 1, b"\x22" * 32, 2), b"\x01" * 128
    witness = encode(LINEAR_WITNESS, (row, proof, 1, 1, 1, row, proof, b"\x33" * 32))
    longest = contract.step.encode_input(gid, 0, b"\x44" * 32, proof, (1, 0, 0, 0, 1, 1, b"\x33" * 32),
                                         [header, header], 0, witness)
    assert max_bytes == len(bytes(longest))
    web3 = ape.chain.provider.web3

    def refused(calls) -> bool:
        data = "0x" + bytes(contract.multicall.encode_input(calls)).hex()
        try:
            web3.eth.call({"from": accounts[1].address, "to": contract.address, "data": data})
        except Exception:  # a bare revert: the decoder's bounds check
            return True
        return False

    assert not refused([move] * max_calls)
    assert refused([move] * (max_calls + 1))
    assert not refused([move + b"\x00" * (max_bytes - len(move))])
    assert refused([move + b"\x00" * (max_bytes - len(move) + 1)])
    assert contract.games(gid).phase == 1  # eth_call only: nothing moved


def test_multicall_gas_overhead_per_move_is_small_succeeds(game, model_and_trace, accounts, deployer):
    """A move in a batch costs about what it costs alone (the batch pays one base fee, 21,000
    gas, for all): 8 bisects in one multicall take less gas than 8 transactions of one."""
    contract, _ = game
    model, trace = model_and_trace
    solver = accounts[1]
    alone = _open(game, model, trace, solver, accounts[2], deployer, 8)
    batched = _open(game, model, trace, solver, accounts[2], deployer, 8)
    single = sum(contract.bisect(gid, moves.bisection_roots(trace, 0, 5, ARITY), sender=solver).gas_used
                 for gid in alone)
    batch = contract.multicall([_bisect(contract, trace, gid) for gid in batched], sender=solver).gas_used
    print(f"8 bisects: {single:,} gas as 8 transactions, {batch:,} in one multicall")
    assert batch < single


# ---------------------------------------------------------------------------
# ChainClient.prepare_batch: one transaction of many keys, sent once per key
# ---------------------------------------------------------------------------


@pytest.fixture
def batch_client(game, model_and_trace, accounts, deployer, tmp_path):
    """(client of the solver on ``game``, journal path, three fresh game ids): the solver
    account plays the module's own game through the agents' client."""
    import dataclasses

    from referee.agents.client import ChainClient
    from referee.agents.deployment import deploy
    from referee.agents.journal import Journal

    contract, _ = game
    model, trace = model_and_trace
    d = dataclasses.replace(deploy(deployer, sink=str(accounts[9].address)), game=str(contract.address))
    path = tmp_path / "solver.sqlite"
    ids = _open(game, model, trace, accounts[4], accounts[5], deployer, 3)
    return ChainClient(d, accounts[4], Journal(path), patience=5), path, ids


def test_prepare_batch_forgets_the_keys_of_skipped_calls_succeeds(batch_client, model_and_trace, accounts):
    """A batch of three moves, one of which the chain refuses (its game moved meanwhile): the
    receipt's skipped key is forgotten in the journal (decided again), the others are mined and
    never sent again."""
    client, _, (a, b, c) = batch_client
    _, trace = model_and_trace
    roots = moves.bisection_roots(trace, 0, 5, ARITY)
    client.game.bisect(b, roots, sender=accounts[4])  # b moved meanwhile
    calls = [(f"bisect:{g}", client.encode(client.game, "bisect", g, roots)) for g in (a, b, c)]

    tx = client.prepare_batch(calls)
    assert tx.method == "multicall" and tx.keys == tuple(k for k, _ in calls)
    client.submit(tx)
    [mined] = client.poll()

    assert mined.ok and mined.keys == tx.keys and mined.key == f"bisect:{a}"
    assert mined.skipped == {f"bisect:{b}": "game: wrong phase"}
    assert mined.landed == (f"bisect:{a}", f"bisect:{c}")
    assert client.journal.tx(f"bisect:{b}") is None  # forgotten: to be decided again
    assert client.journal.tx(f"bisect:{a}").status == client.journal.tx(f"bisect:{c}").status == "mined"
    again = client.prepare_batch(calls)  # only the skipped key is left to send
    assert again.keys == (f"bisect:{b}",)


def test_prepare_batch_restart_resolves_each_key_by_the_receipt_succeeds(batch_client, model_and_trace, accounts):
    """The agent dies after sending a batch, before its receipt: a restarted client re-adopts
    the batch from the journal, and its first poll (an agent's tick polls before it decides)
    finds the landed keys mined and the skipped one forgotten, from the one journaled hash."""
    from referee.agents.client import ChainClient
    from referee.agents.journal import Journal

    client, path, (a, b, c) = batch_client
    _, trace = model_and_trace
    roots = moves.bisection_roots(trace, 0, 5, ARITY)
    calls = [(f"bisect:{a}", client.encode(client.game, "bisect", a, roots)),
             (f"timeout:{b}", client.encode(client.game, "timeout", b))]  # b's clock has not run out
    client.submit(client.prepare_batch(calls))
    client.journal.close()  # no poll: the receipt is never seen by this process

    restarted = ChainClient(client.deployment, accounts[4], Journal(path), patience=5)
    # before it looks, every key of the batch is in flight: none is sent twice
    assert restarted.prepare_batch(calls) is None
    [mined] = restarted.poll()
    assert mined.keys == (f"bisect:{a}", f"timeout:{b}") and list(mined.skipped) == [f"timeout:{b}"]
    tx = restarted.prepare_batch(calls + [(f"bisect:{c}", restarted.encode(restarted.game, "bisect", c, roots))])
    assert tx.keys == (f"timeout:{b}", f"bisect:{c}")
    assert restarted.journal.tx(f"bisect:{a}").status == "mined"


def test_prepare_batch_beyond_its_limits_reverts(batch_client):
    """A batch longer than the contract takes, or a move too long for it, is refused before
    anything is estimated or journaled, with a reason."""
    from referee.errors import RefereeError

    client, _, (a, _, _) = batch_client
    assert (client.max_calls, client.max_call_bytes) == (64, 2980)
    timeout = client.encode(client.game, "timeout", a)
    with pytest.raises(RefereeError, match="at most 64 calls, not 65"):
        client.prepare_batch([(f"timeout:{i}", timeout) for i in range(65)])
    with pytest.raises(RefereeError, match="step:9: 2,981 bytes of calldata, over the 2,980"):
        client.prepare_batch([("timeout:1", timeout), ("step:9", b"\x00" * 2981)])
    assert client.journal.keys() == []

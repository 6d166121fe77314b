"""The transaction manager (``referee.agents.txmgr``) on the real chain, automine off, every block
mined by the test:

- a transaction the node drops (``anvil_dropTransaction``) is forgotten and decided again; the
  action sent again takes its nonce, and the later transaction waiting behind it is mined;
  with nothing to send, a zero-value transfer fills the gap;
- a base fee raised above the transaction's max fee: anvil evicts it from the pool (geth keeps
  it, unminable) and it is decided again at the fee the new base fee needs, and mined;
- blocks filled by a competing sender at a higher tip: the transaction's fees are bumped (both
  by 12.5%, the same nonce) until it is included; with little at stake the bumps stop at the
  fee cap, logged once, and the competitor keeps the blocks until it stops;
- the "N transactions in flight for more than K blocks" warning and its metric;
- a restarted agent re-adopts the transaction its last run left in the pool: a solver stopped
  with its claim stuck behind blocks stuffed at a higher tip is started again on the same
  journal, and the claim (the same nonce) is bumped until mined, with no second transaction and
  no nonce gap (before the journal kept what is in flight, the new run never bumped it: the claim
  sat in the pool for as long as the stuffing lasted); and a nonce dropped while no process
  followed it is noticed by the next run, and its gap filled so the transaction behind it is mined;
- another sender on the same account (two agents, or a wallet): the nonce it used is named in
  an ERROR line, once, and a transaction of ours it displaced is decided again.

Then the real agents, with a block mined every 12 s of chain time while anything is in flight
(the clock jumps to the next deadline only when nothing is, as ``flood.Lockstep`` does
otherwise), where issue 16 saw one dropped transaction brick them:

- 3 Sybil games on an honest solver, one of its ``bisect`` moves dropped: it wins all 3 (on
  main it lost all 3 and its bond: the key stayed "sent" and every later nonce waited behind
  the gap);
- the solver's only ``commit`` dropped in a 60-second (5-block) commit window: it commits in
  time (on main the window passed and the bond was forfeit).
"""

import pytest

from flood import FEE, ROWS, SOLVER_BOND, WINDOWS, Lockstep, job_input, sybil_scene
from flood import agent, deployment, model  # noqa: F401 (fixtures)
from referee import commitments as cm
from referee.agents.client import CHALLENGER_WON, CLAIMED, COMMITTED, FINALIZED, IN_PLAY, SOLVER_WON, ChainClient
from referee.agents.journal import Journal
from referee.agents.metrics import AgentMetrics
from referee.agents.solver import Solver
from referee.agents.txmgr import GWEI, Knobs, Tracked, TxManager
from referee.trace import TraceStore
from rpc import Node

FAST = Knobs(bump_after_blocks=1, not_in_pool_blocks=0, lagging_blocks=2)
STUFF = "0x5b600056"  # init code JUMPDEST PUSH1 0 JUMP: loops until it has burnt all its gas


@pytest.fixture
def node(chain):
    node = Node(chain.provider.uri)
    node.request("evm_setAutomine", [False])
    yield node
    node.request("evm_setBlockGasLimit", [hex(30_000_000)])
    node.request("evm_setAutomine", [True])
    node.request("evm_mine", [])


@pytest.fixture
def client(accounts, deployment, tmp_path):
    """``client(account, knobs)``: a journaled ChainClient whose log lines are kept in ``.lines``."""
    def make(account, knobs=FAST, name="a"):
        lines = []
        made = ChainClient(deployment, account, Journal(tmp_path / f"{name}.sqlite"), patience=10,
                           log=lines.append, knobs=knobs)
        made.lines = lines
        return made
    return make


def deposit(client, key: str, stake: int = 10**18):
    tx = client.prepare(key, client.market, "deposit", value=10**15, stake=stake)
    assert tx is not None, key
    return client.submit(tx)


def mined_hash(node, tx_hash):
    receipt = node.request("eth_getTransactionReceipt", [tx_hash])
    return receipt is not None and int(receipt["status"], 16) == 1


def drop_keeping_the_next(node, c, dropped, kept) -> None:
    """``dropped`` leaves the node's pool, ``kept`` (the next nonce) stays, queued behind the gap:
    what geth does. Anvil drops the transactions behind it too, so ``kept`` is handed back
    (signed again with the same fields: the same bytes and hash)."""
    node.request("anvil_dropTransaction", [dropped.tx_hash])
    t = c.txmgr.pending[kept.nonce]
    raw, tx_hash = c.txmgr._sign(t.to, t.data, t.value, t.gas_limit, t.nonce, t.max_fee, t.tip)
    assert tx_hash == kept.tx_hash
    if node.request("eth_getTransactionByHash", [tx_hash]) is None:
        node.request("eth_sendRawTransaction", ["0x" + raw.hex()])
    assert node.request("eth_getTransactionByHash", [dropped.tx_hash]) is None


def test_both_dropped_are_decided_again_at_the_same_nonces(accounts, client, node):
    c = client(accounts[2], name="both")
    a, b = deposit(c, "deposit:a"), deposit(c, "deposit:b")
    node.request("anvil_dropTransaction", [a.tx_hash])  # anvil drops b with it
    assert node.request("eth_getTransactionByHash", [b.tx_hash]) is None
    assert c.poll() == [] and sorted(c.forgotten()) == ["deposit:a", "deposit:b"]
    assert [deposit(c, "deposit:a").nonce, deposit(c, "deposit:b").nonce] == [a.nonce, b.nonce]
    node.request("evm_mine", [])
    assert sorted(m.key for m in c.poll()) == ["deposit:a", "deposit:b"]


def test_dropped_transaction_is_decided_again_and_the_one_behind_it_mined(accounts, client, node):
    c = client(accounts[2])
    a, b = deposit(c, "deposit:a"), deposit(c, "deposit:b")
    assert b.nonce == a.nonce + 1
    drop_keeping_the_next(node, c, a, b)
    assert c.poll() == [] and c.forgotten() == ["deposit:a"]
    assert c.journal.tx("deposit:a") is None and c.journal.tx("deposit:b").status == "sent"
    assert any("deposit:a: dropped by the node" in line for line in c.lines)
    again = deposit(c, "deposit:a")  # decided again: it takes the gap, not a new nonce
    assert again.nonce == a.nonce
    node.request("evm_mine", [])
    assert sorted(m.key for m in c.poll()) == ["deposit:a", "deposit:b"]
    assert c.read(c.market.stake, c.address) == 2 * 10**15


def test_gap_with_nothing_to_send_is_filled_by_a_transfer_to_ourselves(accounts, client, node):
    c = client(accounts[3])
    a, b = deposit(c, "deposit:a"), deposit(c, "deposit:b")
    drop_keeping_the_next(node, c, a, b)
    c.poll()  # a is dropped; the agent's tick decides nothing for it (say its move is moot)
    assert c.forgotten() == ["deposit:a"] and c.txmgr.gaps
    c.poll()  # the gap was not taken: filled
    assert not c.txmgr.gaps and c.txmgr.pending[a.nonce].keys == (f"fill:{a.nonce}",)
    node.request("evm_mine", [])
    [mined] = c.poll()
    assert mined.key == "deposit:b" and any(f"nonce {a.nonce}: gap filled" in line for line in c.lines)
    assert c.read(c.market.stake, c.address) == 10**15


def test_base_fee_above_the_max_fee_is_priced_again_and_mined(accounts, client, node):
    c = client(accounts[4])
    node.request("anvil_setNextBlockBaseFeePerGas", [hex(GWEI)])
    node.request("evm_mine", [])
    sent = deposit(c, "deposit:a")
    max_fee = int(node.request("eth_getTransactionByHash", [sent.tx_hash])["maxFeePerGas"], 16)
    held = 2 * max_fee  # held above what it was signed for
    node.request("anvil_setNextBlockBaseFeePerGas", [hex(held)])
    node.request("evm_mine", [])
    assert c.poll() == [] and c.forgotten() == ["deposit:a"]  # evicted: decided again
    again = deposit(c, "deposit:a")
    priced = int(node.request("eth_getTransactionByHash", [again.tx_hash])["maxFeePerGas"], 16)
    assert priced >= 2 * held  # what the base fee now needs, with room
    node.request("anvil_setNextBlockBaseFeePerGas", [hex(held)])
    node.request("evm_mine", [])
    [mined] = c.poll()
    assert mined.ok and mined_hash(node, again.tx_hash)


BASE = GWEI // 10  # the base fee the stuffing tests hold


def _stuffed_blocks(node, competitor: str, tip: int, blocks: int, ours, c) -> int:
    """Mine up to ``blocks`` blocks at the base fee ``BASE``, each filled first by ``competitor``
    at ``tip`` (its max fee twice the base fee above it: anvil orders its pool by max fee, geth
    by the tip that leaves); polls ``c`` after each; the number of blocks until ``ours`` was
    mined (None if it never was)."""
    for n in range(1, blocks + 1):
        node.request("eth_sendTransaction", [{"from": competitor, "data": STUFF, "gas": hex(950_000),
                                              "maxFeePerGas": hex(2 * BASE + tip), "maxPriorityFeePerGas": hex(tip)}])
        node.request("anvil_setNextBlockBaseFeePerGas", [hex(BASE)])
        node.request("evm_mine", [])
        if [m for m in c.poll() if m.key == ours]:
            return n
    return None


def _stuff(node, competitor: str, tip: int) -> None:
    """One block at the base fee ``BASE``, filled first by ``competitor`` at ``tip``."""
    node.request("eth_sendTransaction", [{"from": competitor, "data": STUFF, "gas": hex(950_000),
                                          "maxFeePerGas": hex(2 * BASE + tip), "maxPriorityFeePerGas": hex(tip)}])
    node.request("anvil_setNextBlockBaseFeePerGas", [hex(BASE)])
    node.request("evm_mine", [])


def test_blocks_stuffed_at_a_higher_tip_fees_bumped_until_included(accounts, client, node):
    c = client(accounts[5])
    node.request("evm_setBlockGasLimit", [hex(1_000_000)])  # one competitor's transaction fills it
    node.request("anvil_setNextBlockBaseFeePerGas", [hex(BASE)])
    node.request("evm_mine", [])
    sent = deposit(c, "deposit:a")
    first_tip = int(node.request("eth_getTransactionByHash", [sent.tx_hash])["maxPriorityFeePerGas"], 16)
    blocks = _stuffed_blocks(node, str(accounts[6].address), 2 * first_tip, 20, "deposit:a", c)
    assert blocks is not None and blocks > 1, c.lines
    hashes = c.journal.tx("deposit:a").hashes
    assert len(hashes) > 1 and any(mined_hash(node, h) for h in hashes)  # the journal kept every hash
    [winner] = [node.request("eth_getTransactionByHash", [h]) for h in hashes if mined_hash(node, h)]
    assert int(winner["maxPriorityFeePerGas"], 16) >= 2 * first_tip  # it bid at least the competitor
    assert int(winner["maxFeePerGas"], 16) >= 2 * BASE + 2 * first_tip
    assert sum("fees bumped" in line for line in c.lines) == len(hashes) - 1
    assert c.read(c.market.stake, c.address) == 10**15


def test_bumps_come_every_block_as_the_deadline_nears():
    manager = TxManager(client=None, knobs=Knobs(bump_after_blocks=3, hurry_blocks=10))
    manager.block_time = 12

    def tracked(deadline):
        return Tracked(("k",), "m", "0x", b"", 0, 21_000, 0, deadline, 0, 2, 1, 1, sent_block=100, priced_block=100)

    now = 10_000
    relaxed, urgent = tracked(None), tracked(now + 5 * 12)  # 5 blocks left: within hurry_blocks
    far = tracked(now + 11 * 12)
    assert [manager._bump_due(t, 101, now) for t in (relaxed, far, urgent)] == [False, False, True]
    assert [manager._bump_due(t, 103, now) for t in (relaxed, far, urgent)] == [True, True, True]


def test_fee_cap_from_the_stake_stops_the_bumps_and_is_logged_once(accounts, client, node):
    c = client(accounts[7])
    node.request("evm_setBlockGasLimit", [hex(1_000_000)])
    node.request("anvil_setNextBlockBaseFeePerGas", [hex(BASE)])
    node.request("evm_mine", [])
    tx = c.prepare("deposit:a", c.market, "deposit", value=10**15)
    cap = 3 * GWEI // 2  # 1.5 gwei per gas: above its first price (1.2 gwei), below the competitor's 2.2
    stake = cap * tx.gas_limit * 10_000 // c.txmgr.knobs.stake_share_bps
    tx.stake = stake
    sent = c.submit(tx)
    assert _stuffed_blocks(node, str(accounts[8].address), 2 * GWEI, 8, "deposit:a", c) is None
    capped = [line for line in c.lines if "fee cap" in line]
    assert len(capped) == 1 and "1.5 gwei reached" in capped[0], c.lines
    fees = [int(node.request("eth_getTransactionByHash", [h])["maxFeePerGas"], 16)
            for h in c.journal.tx("deposit:a").hashes if node.request("eth_getTransactionByHash", [h])]
    assert max(fees) <= cap and sent.nonce == c.in_flight()[0].nonce
    node.request("anvil_setNextBlockBaseFeePerGas", [hex(BASE)])
    node.request("evm_mine", [])  # the competitor stops: it is mined at the capped fee
    assert [m.key for m in c.poll()] == ["deposit:a"]


def test_transactions_in_flight_too_long_are_a_warning_and_a_metric(accounts, client, node):
    c = client(accounts[2])
    metrics = AgentMetrics("solver", c.address)
    node.request("evm_setBlockGasLimit", [hex(1_000_000)])
    deposit(c, "deposit:a", stake=0)  # nothing at stake: never priced above a fresh transaction
    for _ in range(3):
        node.request("eth_sendTransaction", [{"from": str(accounts[6].address), "data": STUFF, "gas": hex(950_000),
                                              "maxFeePerGas": hex(100 * GWEI), "maxPriorityFeePerGas": hex(50 * GWEI)}])
        node.request("evm_mine", [])
        c.poll()
        metrics.update_transactions(len(c.in_flight()), c.txmgr.lagging)  # as the agent's tick does
    assert c.txmgr.lagging == 1
    [warning] = [line for line in c.lines if "in flight for more than" in line]  # once, not every block
    assert warning.startswith("warning: 1 transaction(s) in flight for more than 2 blocks (oldest: deposit:a")
    text = metrics.text()
    assert 'referee_transactions_lagging{account="%s",role="solver"} 1.0' % c.address.lower() in text
    assert 'referee_transactions_in_flight{account="%s",role="solver"} 1.0' % c.address.lower() in text


def test_another_sender_on_our_account_is_named_once_and_its_nonce_decided_again(accounts, client, node):
    ours = client(accounts[3], name="ours")
    ours.poll()  # the nonce it starts from
    wallet = str(accounts[3].address)
    mine = deposit(ours, "deposit:a")
    # the same account, from elsewhere: the same nonce at a higher fee replaces ours in the pool
    node.request("eth_sendTransaction", [{"from": wallet, "to": wallet, "value": "0x0", "nonce": hex(mine.nonce),
                                          "maxFeePerGas": hex(100 * GWEI), "maxPriorityFeePerGas": hex(10 * GWEI)}])
    node.request("eth_sendTransaction", [{"from": wallet, "to": wallet, "value": "0x0", "nonce": hex(mine.nonce + 1),
                                          "maxFeePerGas": hex(100 * GWEI), "maxPriorityFeePerGas": hex(10 * GWEI)}])
    node.request("evm_mine", [])
    # the first look sees the nonce passed without our receipt; a node under load may serve a
    # block's receipts after its nonces, so "taken" waits for the next look
    assert ours.poll() == [] and ours.forgotten() == []
    assert ours.poll() == [] and ours.forgotten() == ["deposit:a"]
    ours.poll()
    errors = [line for line in ours.lines if line.startswith("error:")]
    assert len(errors) == 2, ours.lines
    assert any(f"nonce {mine.nonce} of {ours.address} was taken" in line for line in errors), errors
    assert any(f"nonce {mine.nonce + 1} of {ours.address} was used by a transaction this agent did not send" in line
               for line in errors), errors
    again = deposit(ours, "deposit:a")
    assert again.nonce == mine.nonce + 2
    node.request("evm_mine", [])
    assert [m.key for m in ours.poll()] == ["deposit:a"]
    assert len([line for line in ours.lines if line.startswith("error:")]) == 2  # each named once


# ---------------------------------------------------------------------------
# The real agents, one transaction dropped
# ---------------------------------------------------------------------------


class Dropper:
    """A party that drops the first transaction carrying a ``method`` call (alone, or among a
    multicall's moves) that ``agent`` has in flight."""

    def __init__(self, node, agent, method: str):
        self.node, self.agent, self.method, self.dropped = node, agent, method, None

    def tick(self) -> int:
        for tx in self.agent.client.in_flight():
            if self.dropped is None and self.method in [tx.method] + [key.split(":")[0] for key in tx.keys]:
                self.node.request("anvil_dropTransaction", [tx.tx_hash])
                self.dropped = tx.key
        return 0


def test_sybil_games_with_a_dropped_bisect_honest_solver_wins_all(chain, accounts, deployment, model, agent,
                                                                tmp_path):
    requester, solver_account, attacker_account = accounts[1], accounts[2], accounts[3]
    solver = agent(Solver, solver_account, "solver")
    lines = []
    solver.client.log = lines.append
    market, game = solver.client.market, solver.client.game
    job, attacker = sybil_scene(solver, model, deployment, requester, attacker_account, tmp_path)
    dropper = Dropper(Node(chain.provider.uri), solver, "bisect")
    with Lockstep(chain.provider.uri) as lockstep:
        lockstep.run([solver], [solver], lambda: market.job(job).status == COMMITTED, 50)
        attacker.challenge(job, 3)
        def over():  # every game decided, and the solver paid (or beaten: nobody settles for the Sybil)
            results = [game.result(g) for g in attacker.games]
            return len(results) == 3 and IN_PLAY not in results and (
                CHALLENGER_WON in results or market.job(job).status == FINALIZED and market.credit(solver_account) == 0)
        lockstep.run([solver, dropper, attacker], [solver], over, 600)
    assert dropper.dropped is not None and len(attacker.games) == 3
    assert [game.result(g) for g in sorted(attacker.games)] == [SOLVER_WON] * 3
    assert market.job(job).status == FINALIZED and market.stake(solver_account) == SOLVER_BOND
    assert any(f"warning: {dropper.dropped}" in line and "dropped by the node" in line for line in lines)


def test_dropped_commit_in_a_five_block_window_still_lands_in_time(chain, accounts, deployment, agent):
    requester, solver_account = accounts[1], accounts[2]
    solver = agent(Solver, solver_account, "solver")
    lines = []
    solver.client.log = lines.append
    solver.ensure_stake(SOLVER_BOND)
    market = solver.client.market
    bond = market.MIN_SOLVER_BOND()  # a bond that five blocks of stuffing would cost more than
    market.post(1, ROWS, cm.packed(job_input(2)), bond, 600, 60, 1800, value=FEE, sender=requester)
    job = market.job_count()
    dropper = Dropper(Node(chain.provider.uri), solver, "commit")
    with Lockstep(chain.provider.uri) as lockstep:
        lockstep.run([solver], [solver], lambda: market.job(job).status == CLAIMED, 20)
        deadline = market.job(job).commit_deadline
        lockstep.run([solver, dropper], [solver],
                         lambda: market.job(job).status != CLAIMED or chain.blocks.head.timestamp > deadline, 20)
    assert dropper.dropped == f"commit:{job}:{deadline}"
    assert market.job(job).status == COMMITTED, market.job(job)  # in time: the market took it
    assert any(f"warning: {dropper.dropped}" in line and "dropped by the node" in line for line in lines)


def test_a_gap_another_sender_filled_is_nonce_too_low_and_sent_at_a_fresh_nonce(accounts, client, node):
    c = client(accounts[5], name="low")
    a = deposit(c, "deposit:a")
    node.request("anvil_dropTransaction", [a.tx_hash])
    c.poll()
    assert c.forgotten() == ["deposit:a"] and a.nonce in c.txmgr.gaps
    wallet = str(accounts[5].address)  # the gap is taken from elsewhere before this agent looks again
    node.request("eth_sendTransaction", [{"from": wallet, "to": wallet, "value": "0x0", "nonce": hex(a.nonce),
                                          "maxFeePerGas": hex(100 * GWEI), "maxPriorityFeePerGas": hex(GWEI)}])
    node.request("evm_mine", [])
    again = deposit(c, "deposit:a")  # the gap's nonce: "nonce too low", then the next one
    assert again.nonce == a.nonce + 1 and c.journal.tx("deposit:a").nonce == a.nonce + 1
    node.request("evm_mine", [])
    assert [m.key for m in c.poll()] == ["deposit:a"]


def test_restart_finds_its_dropped_nonce_a_gap_and_fills_it(accounts, client, node):
    c = client(accounts[3], name="gap")
    a, b = deposit(c, "deposit:a"), deposit(c, "deposit:b")
    drop_keeping_the_next(node, c, a, b)
    c.journal.close()  # stopped: a was dropped while no process followed it, b waits behind it
    again = client(accounts[3], name="gap")
    assert again.poll() == [] and again.forgotten() == ["deposit:a"]  # re-adopted: a noticed dropped
    again.poll()  # nothing decided for it: the gap is filled, and b mined behind it
    node.request("evm_mine", [])
    assert [m.key for m in again.poll()] == ["deposit:b"], again.lines
    assert any(f"nonce {a.nonce}: gap filled" in line for line in again.lines)


# ---------------------------------------------------------------------------
# A restart with a transaction in the pool
# ---------------------------------------------------------------------------


def test_restarted_agent_re_adopts_its_pending_claim_and_bumps_it_at_the_same_nonce(chain, accounts, deployment,
                                                                                    model, tmp_path):
    requester, account, competitor = accounts[1], accounts[4], str(accounts[6].address)
    lines = []

    def start():  # one run of the solver process, on the same journal and trace store each time
        journal = Journal(tmp_path / "solver" / "state.sqlite")
        client = ChainClient(deployment, account, journal, patience=10, log=lines.append, knobs=FAST)
        return Solver(client, journal, [model], TraceStore(tmp_path / "solver" / "traces"), name="solver",
                      device="cpu", block_time=12, log=lines.append)

    first = start()
    first.ensure_stake(SOLVER_BOND)
    market = first.client.market
    market.post(1, ROWS, cm.packed(job_input(3)), SOLVER_BOND, *WINDOWS, value=FEE, sender=requester)
    job = market.job_count()
    node = Node(chain.provider.uri)
    node.request("evm_setAutomine", [False])
    try:
        node.request("anvil_setNextBlockBaseFeePerGas", [hex(BASE)])
        node.request("evm_mine", [])
        for _ in range(3):  # the job seen, its trace computed, the claim sent
            first.tick()
            if first.client.in_flight() or not first.await_traces():
                break
        [claim] = first.client.in_flight()
        assert claim.key.startswith("claim:"), lines
        node.request("evm_setBlockGasLimit", [hex(1_000_000)])  # one competitor's transaction fills a block
        first.journal.close()  # the process stops; its claim stays in the node's pool
        del first
        tip = int(node.request("eth_getTransactionByHash", [claim.tx_hash])["maxPriorityFeePerGas"], 16)
        stopped_at = chain.blocks.height
        _stuff(node, competitor, 2 * tip)  # a block passes while no process follows it
        second = start()
        for rounds in range(1, 21):
            second.tick()
            if market.job(job).status == CLAIMED:
                break
            _stuff(node, competitor, 2 * tip)
        assert market.job(job).status == CLAIMED, lines  # on main: still in the pool after 20 blocks
        ours = [tx for n in range(stopped_at + 1, chain.blocks.height + 1)
                for tx in node.request("eth_getBlockByNumber", [hex(n), True])["transactions"]
                if tx["from"].lower() == account.address.lower()]
        [mined] = ours  # one transaction for the claim, and nothing else of ours mined meanwhile
        assert int(mined["nonce"], 16) == claim.nonce and mined["hash"] in second.journal.tx(claim.key).hashes
        assert int(mined["maxPriorityFeePerGas"], 16) >= 2 * tip  # bumped past the competitor
        assert int(node.request("eth_getTransactionCount", [account.address, "latest"]), 16) == claim.nonce + 1
        assert any("followed again" in line for line in lines) and any("fees bumped" in line for line in lines)
        assert not any("gap filled" in line or "dropped" in line for line in lines), lines
        assert second.journal.tracked() == [] or all(f["nonce"] > claim.nonce for f in second.journal.tracked())
        print(f"restart: the re-adopted claim was mined {rounds} block(s) after the restart, "
              f"{len(second.journal.tx(claim.key).hashes) - 1} bump(s), nonce {claim.nonce}")
    finally:
        node.request("evm_setBlockGasLimit", [hex(30_000_000)])
        node.request("evm_setAutomine", [True])
        node.request("evm_mine", [])

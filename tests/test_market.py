"""JobMarket (contracts/JobMarket.vy) against docs/protocol.md section 10.2.

Two markets share one registry: ``market`` runs its games on the real DisputeGame (the
end-to-end lifecycles, games won and lost by timeout on the chain's clock), ``stub_market``
on ``game_stub``, which reports outcomes at will (settlement edge cases and revert paths
without playing games). After every test the accounting invariant of both is checked
(tests/accounting.py); every expected payout is computed here from the parameters below,
never read back from the contract.
"""

from dataclasses import dataclass

import ape
import pytest
import torch
from ape import chain

from accounting import (CANCELLED, CLAIMED, COMMITTED, FINALIZED, OPEN, REJECTED, after_every_transaction,
                        assert_accounting, assert_drained)
from helpers import h, load_vectors
from referee.commitments import commit_tensor, state_roots, state_tree
from referee.hashing import keccak256
from referee.merkle import hash_pair, zero_hash
from referee.agents.deployment import deploy_game

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

# Deployment parameters. Odd on purpose: the pool and the fee must round down.
CHALLENGER_BOND = 3 * 10**17 + 1
MIN_SOLVER_BOND = 10**17
REWARD_SHARE_BPS = 997
DILUTION_FEE_BPS = 331  # 2 x 331 < 997 < 6 x 331
SINK = "0x000000000000000000000000000000000000dEaD"
ARITY = 2
CLOCK = 3600

# Job parameters.
FEE = 2 * 10**18 + 3
SOLVER_BOND = 10**18 + 7
DEPOSIT = 3 * 10**18
CLAIM_WINDOW, COMMIT_WINDOW, CHALLENGE_WINDOW = 600, 1200, 86400
WINDOWS = (CLAIM_WINDOW, COMMIT_WINDOW, CHALLENGE_WINDOW)
MIN_WINDOW = 60  # the deployment's window limits (constructor)
MAX_WINDOW = 365 * 86400  # the largest a deployment may set (WINDOW_LIMIT)
MAX_TENSOR_BYTES = 65536
MAX_ROWS = 4096  # rows of a posted input (protocol.md 10.0, MAX_POSTED_ROWS)

# A slashed solver bond (protocol.md 10.2): each winning game's gas refund comes out of it
# first; once the job's last game closes, the bonus pool is shared equally among the W winning
# games less the dilution fee each (never below zero), and the sink gets the rest.
POOL = SOLVER_BOND * REWARD_SHARE_BPS // 10000
FEE_EACH = SOLVER_BOND * DILUTION_FEE_BPS // 10000
assert POOL * 10000 != SOLVER_BOND * REWARD_SHARE_BPS and FEE_EACH * 10000 != SOLVER_BOND * DILUTION_FEE_BPS


def bonus(winners: int) -> int:
    """Each winning game's bonus when ``winners`` games won (refunds leaving the pool whole)."""
    share = POOL // winners
    return share - FEE_EACH if share > FEE_EACH else 0


assert bonus(1) > bonus(2) > bonus(3) > 0 == bonus(4)  # a sole winner earns most; four or more earn nothing

# The jobs' model: 3 ops (state depth 2), [ROWS, 4] -> [ROWS, 2]. The market never sees the
# ops, only the shapes and the ops root.
N_OPS, IN_COLS, OUT_COLS, ROWS = 3, 4, 2, 3
OPS_ROOT = keccak256(b"market test ops")
# the registry facts of such a model (protocol 10.1): int8 in and out, any row count, as many
# output rows as input rows (tests/test_market_tokens.py covers the others)
I8 = (0, 0, 1, 65536, 1, 1)


# ---------------------------------------------------------------------------
# Traces: input, output and the state roots of a (made-up) run
# ---------------------------------------------------------------------------


def packed(rows: int, cols: int, seed: int) -> bytes:
    """A deterministic packed int8 tensor, every byte value used."""
    return bytes((seed + 37 * i) % 256 for i in range(rows * cols))


def tensor_root(data: bytes, rows: int, cols: int) -> bytes:
    """T = H(enc(rows, cols, R)) by the off-chain commitments (protocol.md section 3)."""
    return commit_tensor(torch.frombuffer(bytearray(data), dtype=torch.int8).reshape(rows, cols)).root


@dataclass(frozen=True)
class Trace:
    input: bytes
    output: bytes
    slots: list  # T_0 .. T_N
    s_0: bytes
    s_n: bytes
    proof: list  # slot N of S_N


def make_trace(n_ops: int, rows: int, in_cols: int, out_cols: int, seed: int = 1) -> Trace:
    """A run whose inner slots are arbitrary: the market checks only slots 0 and N."""
    data, out = packed(rows, in_cols, seed), packed(rows, out_cols, seed + 1)
    slots = ([tensor_root(data, rows, in_cols)] + [keccak256(b"slot %d" % j) for j in range(1, n_ops)]
             + [tensor_root(out, rows, out_cols)])
    roots = state_roots(slots)
    return Trace(data, out, slots, roots[0], roots[-1], state_tree(slots, n_ops).proof(n_ops))


TRACE = make_trace(N_OPS, ROWS, IN_COLS, OUT_COLS)


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Actors:
    requester: object
    solver: object
    solver2: object
    challengers: list
    stranger: object


@pytest.fixture(scope="module")
def who(accounts):
    return Actors(accounts[1], accounts[2], accounts[3], [accounts[4], accounts[5], accounts[6], accounts[8]],
                  accounts[7])


@pytest.fixture(scope="module")
def registry(project, deployer):
    return deployer.deploy(project.ModelRegistry)


@pytest.fixture(scope="module")
def model_id(registry, deployer):
    registry.register(N_OPS, IN_COLS, OUT_COLS, OPS_ROOT, *I8, sender=deployer)
    return registry.model_count()


@pytest.fixture(scope="module")
def game(project, deployer):
    return deploy_game(deployer, ARITY, CLOCK, project)


@pytest.fixture(scope="module")
def market(project, deployer, registry, game):
    return deployer.deploy(project.JobMarket, registry, game, CHALLENGER_BOND, MIN_SOLVER_BOND, REWARD_SHARE_BPS,
                           DILUTION_FEE_BPS, SINK, MIN_WINDOW, MAX_WINDOW)


@pytest.fixture(scope="module")
def stub(project, deployer):
    return deployer.deploy(project.game_stub)


@pytest.fixture(scope="module")
def stub_market(project, deployer, registry, stub):
    return deployer.deploy(project.JobMarket, registry, stub, CHALLENGER_BOND, MIN_SOLVER_BOND, REWARD_SHARE_BPS,
                           DILUTION_FEE_BPS, SINK, MIN_WINDOW, MAX_WINDOW)


@pytest.fixture(autouse=True)
def _accounting_holds(market, stub_market):
    """The accounting invariant holds after every transaction of every test, whatever it did."""
    with after_every_transaction(market, stub_market):
        yield
    assert_accounting(market)
    assert_accounting(stub_market)


# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------


def warp(timestamp: int):
    """The next block has exactly this timestamp."""
    chain.pending_timestamp = timestamp


def warp_past(timestamp: int):
    """The next block is strictly after ``timestamp`` (and after the latest block)."""
    chain.pending_timestamp = max(timestamp + 1, chain.blocks.head.timestamp + 1)


def post(market, model_id, requester, data=TRACE.input, rows=ROWS, fee=FEE, bond=SOLVER_BOND, windows=WINDOWS):
    tx = market.post(model_id, rows, data, bond, *windows, value=fee, sender=requester)
    return market.job_count(), tx


def claimed(market, model_id, who, solver=None):
    solver = solver or who.solver
    market.deposit(value=DEPOSIT, sender=solver)
    job_id, _ = post(market, model_id, who.requester)
    market.claim(job_id, sender=solver)
    return job_id


def commit(market, job_id, solver, trace=TRACE):
    return market.commit(job_id, trace.output, trace.s_n, trace.proof, sender=solver)


def committed(market, model_id, who):
    job_id = claimed(market, model_id, who)
    commit(market, job_id, who.solver)
    return job_id


def challenge(market, job_id, challenger) -> int:
    tx = market.challenge(job_id, value=CHALLENGER_BOND, sender=challenger)
    [log] = tx.decode_logs(market.JobChallenged)
    return log.game_id


def time_out(game, game_id, anyone):
    """The side to move runs out of clock; anyone ends the game."""
    warp_past(game.deadline(game_id))
    return game.timeout(game_id, sender=anyone)


def time_out_and_settle(market, game, game_id, anyone):
    """The side to move runs out of clock; anyone ends the game, then anyone settles it in the
    market (the game calls no contract: the market reads its result)."""
    time_out(game, game_id, anyone)
    return market.settle(game_id, sender=anyone)


def solver_moves(game, game_id, solver):
    """The solver's one bisection move (p - 1 = 1 root for N = 3, arity 2); the challenger is
    then to move."""
    game.bisect(game_id, [keccak256(b"S_1")], sender=solver)


def job_in(market, model_id, who, status, stub=None) -> int:
    """A job brought to ``status`` (REJECTED needs the stub market)."""
    if status == OPEN:
        return post(market, model_id, who.requester)[0]
    if status == CANCELLED:
        job_id = post(market, model_id, who.requester)[0]
        market.cancel(job_id, sender=who.requester)
        return job_id
    job_id = claimed(market, model_id, who)
    if status == CLAIMED:
        return job_id
    commit(market, job_id, who.solver)
    if status == FINALIZED:
        warp_past(market.job(job_id).challenge_deadline)
        market.finalize(job_id, sender=who.stranger)
    elif status == REJECTED:
        stub.report(market, challenge(market, job_id, who.stranger), False, sender=who.stranger)
    return job_id


def withdraw(market, account, expected: int):
    """Withdraws ``account``'s credit and checks exactly ``expected`` wei arrived."""
    assert market.credit(account) == expected
    before = account.balance
    tx = market.withdraw(sender=account)
    assert account.balance == before + expected - tx.total_fees_paid
    assert market.credit(account) == 0
    [log] = tx.decode_logs(market.CreditWithdrawn)
    assert log.account == account.address and log.amount == expected


def withdraw_stake(market, account, amount: int):
    before = account.balance
    tx = market.withdraw_stake(amount, sender=account)
    assert account.balance == before + amount - tx.total_fees_paid


# ---------------------------------------------------------------------------
# Constructor
# ---------------------------------------------------------------------------


def test_constructor_parameters_succeeds(market, registry, game):
    assert market.REGISTRY() == registry.address
    assert market.GAME() == game.address
    assert market.CHALLENGER_BOND() == CHALLENGER_BOND
    assert market.MIN_SOLVER_BOND() == MIN_SOLVER_BOND
    assert market.REWARD_SHARE_BPS() == REWARD_SHARE_BPS and market.DILUTION_FEE_BPS() == DILUTION_FEE_BPS
    assert market.MAX_REWARD_SHARE_BPS() == 1000 and market.MAX_PAID_WINNERS() == 5
    assert market.SINK() == SINK
    assert market.MIN_WINDOW() == MIN_WINDOW and market.MAX_WINDOW() == MAX_WINDOW
    assert market.WINDOW_LIMIT() == 365 * 86400
    assert (market.OPEN(), market.CLAIMED(), market.COMMITTED(), market.FINALIZED(), market.REJECTED(),
            market.CANCELLED()) == (1, 2, 3, 4, 5, 6)
    assert market.job_count() == 0 and market.obligations() == 0


@pytest.mark.parametrize("index,value,reason", [
    (0, ZERO_ADDRESS, "market: zero registry"),
    (1, ZERO_ADDRESS, "market: zero game"),
    (2, 0, "market: zero challenger bond"),
    (3, 0, "market: zero minimum solver bond"),
    (4, 1001, "market: reward share out of range"),
    (4, 2**256 - 1, "market: reward share out of range"),
    (6, ZERO_ADDRESS, "market: zero sink"),
    (7, 0, "market: window limits out of range"),                 # an empty window
    (7, MAX_WINDOW + 1, "market: window limits out of range"),    # minimum above the maximum
    (8, MIN_WINDOW - 1, "market: window limits out of range"),    # maximum below the minimum
    (8, MAX_WINDOW + 1, "market: window limits out of range"),    # longer than a year
])
def test_constructor_bad_parameter_reverts(project, deployer, registry, game, index, value, reason):
    args = [registry, game, CHALLENGER_BOND, MIN_SOLVER_BOND, REWARD_SHARE_BPS, DILUTION_FEE_BPS, SINK, MIN_WINDOW,
            MAX_WINDOW]
    args[index] = value
    with ape.reverts(reason):
        deployer.deploy(project.JobMarket, *args)


# (pool, fee) at the edges of 2 x fee < pool < 6 x fee, and the one pair outside it allowed
GOOD_SPLITS = [(1000, 499), (1000, 167), (0, 0), (3, 1), (5, 1), (5, 2), (1000, 300)]
BAD_SPLITS = [(1000, 500), (1000, 166), (0, 1), (1, 0), (6, 1), (4, 2), (1000, 2**255)]


@pytest.mark.parametrize("share,fee", GOOD_SPLITS)
def test_constructor_reward_split_succeeds(project, deployer, registry, game, share, fee):
    deployed = deployer.deploy(project.JobMarket, registry, game, 1, 1, share, fee, SINK, 1, 1)
    assert (deployed.REWARD_SHARE_BPS(), deployed.DILUTION_FEE_BPS()) == (share, fee)


@pytest.mark.parametrize("share,fee", BAD_SPLITS)
def test_constructor_reward_split_reverts(project, deployer, registry, game, share, fee):
    with ape.reverts("market: dilution fee out of range"):
        deployer.deploy(project.JobMarket, registry, game, 1, 1, share, fee, SINK, 1, 1)


# ---------------------------------------------------------------------------
# deposit / withdraw_stake
# ---------------------------------------------------------------------------


def test_deposit_succeeds(market, who):
    tx = market.deposit(value=DEPOSIT, sender=who.solver)
    market.deposit(value=5, sender=who.solver)
    assert market.stake(who.solver) == DEPOSIT + 5
    assert market.locked(who.solver) == 0
    assert market.total_stake() == DEPOSIT + 5
    assert market.balance == DEPOSIT + 5
    [log] = tx.decode_logs(market.StakeDeposited)
    assert (log.solver, log.amount, log.stake) == (who.solver.address, DEPOSIT, DEPOSIT)


def test_deposit_zero_reverts(market, who):
    with ape.reverts("market: zero deposit"):
        market.deposit(value=0, sender=who.solver)


def test_withdraw_stake_succeeds(market, who):
    market.deposit(value=DEPOSIT, sender=who.solver)
    withdraw_stake(market, who.solver, DEPOSIT - 1)
    assert market.stake(who.solver) == 1
    withdraw_stake(market, who.solver, 1)
    assert market.stake(who.solver) == 0
    assert_drained(market)


def test_withdraw_stake_zero_reverts(market, who):
    market.deposit(value=DEPOSIT, sender=who.solver)
    with ape.reverts("market: zero amount"):
        market.withdraw_stake(0, sender=who.solver)


def test_withdraw_stake_above_stake_reverts(market, who):
    with ape.reverts("market: insufficient free stake"):
        market.withdraw_stake(1, sender=who.solver)
    market.deposit(value=DEPOSIT, sender=who.solver)
    with ape.reverts("market: insufficient free stake"):
        market.withdraw_stake(DEPOSIT + 1, sender=who.solver)


def test_withdraw_stake_locked_reverts(market, model_id, who):
    job_id = claimed(market, model_id, who)
    assert market.locked(who.solver) == SOLVER_BOND
    free = DEPOSIT - SOLVER_BOND
    with ape.reverts("market: insufficient free stake"):
        market.withdraw_stake(free + 1, sender=who.solver)
    withdraw_stake(market, who.solver, free)
    assert market.stake(who.solver) == SOLVER_BOND == market.locked(who.solver)
    # The bond is unlocked by finalize, then free again.
    commit(market, job_id, who.solver)
    warp_past(market.job(job_id).challenge_deadline)
    market.finalize(job_id, sender=who.stranger)
    withdraw_stake(market, who.solver, SOLVER_BOND)


# ---------------------------------------------------------------------------
# post
# ---------------------------------------------------------------------------


def test_post_succeeds(market, model_id, who):
    job_id, tx = post(market, model_id, who.requester)
    assert job_id == 1
    job = market.job(job_id)
    assert job.requester == who.requester.address
    assert (job.model_id, job.rows, job.fee, job.solver_bond) == (model_id, ROWS, FEE, SOLVER_BOND)
    assert (job.claim_window, job.commit_window, job.challenge_window) == WINDOWS
    assert job.status == OPEN
    assert job.claim_deadline == tx.timestamp + CLAIM_WINDOW
    assert job.input_root == TRACE.slots[0]
    assert job.s_0 == TRACE.s_0
    assert job.solver == ZERO_ADDRESS
    assert (job.commit_deadline, job.challenge_deadline, job.open_games) == (0, 0, 0)
    assert job.trace_root == bytes(32) and job.output_root == bytes(32)
    assert market.total_escrow() == FEE and market.balance == FEE
    [log] = tx.decode_logs(market.JobPosted)
    assert (log.job_id, log.requester, log.model_id, log.rows) == (1, who.requester.address, model_id, ROWS)
    assert (log.input_root, log.s_0, log.fee, log.solver_bond) == (TRACE.slots[0], TRACE.s_0, FEE, SOLVER_BOND)
    assert (log.claim_window, log.commit_window, log.challenge_window) == WINDOWS
    assert log.claim_deadline == job.claim_deadline
    assert log.input == TRACE.input  # a solver reads the job's data from the log


def test_post_ids_increment_succeeds(market, model_id, who):
    for i in range(1, 4):
        assert post(market, model_id, who.requester, fee=i)[0] == i
    assert market.job_count() == 3
    assert market.total_escrow() == 1 + 2 + 3


@pytest.mark.parametrize("n_ops", [1, 2, 3, 4, 5, 8, 9])
def test_post_initial_state_succeeds(market, registry, deployer, who, n_ops):
    # S_0 = root([T_0], D) with D = depth(N + 1), by two independent computations.
    registry.register(n_ops, IN_COLS, OUT_COLS, keccak256(b"ops %d" % n_ops), *I8, sender=deployer)
    job_id, _ = post(market, registry.model_count(), who.requester)
    trace = make_trace(n_ops, ROWS, IN_COLS, OUT_COLS)
    depth = (n_ops).bit_length()  # depth(N + 1)
    folded = trace.slots[0]
    for height in range(depth):
        folded = hash_pair(folded, zero_hash(height))
    assert market.job(job_id).s_0 == trace.s_0 == folded


def test_post_vector_models_succeeds(market, registry, deployer, who):
    # The golden models: the market's T_0, S_0 and T_N agree with the vectors, and the
    # vectors' slot-N proof is accepted at commit.
    market.deposit(value=DEPOSIT, sender=who.solver)
    for vec in load_vectors("models")["models"]:
        n_ops = len(vec["ops"])
        registry.register(n_ops, vec["input_cols"], vec["output_cols"], h(vec["ops_root"]), *I8, sender=deployer)
        rows = len(vec["input"])
        job_id, _ = post(market, registry.model_count(), who.requester, data=h(vec["slots"][0]["packed"]), rows=rows)
        job = market.job(job_id)
        assert job.input_root == h(vec["slots"][0]["tensor_root"]), vec["name"]
        assert job.s_0 == h(vec["state_roots"][0]), vec["name"]
        market.claim(job_id, sender=who.solver)
        [proof] = [p["siblings"] for p in vec["slot_update_proofs"] if p["step"] == n_ops]
        market.commit(job_id, h(vec["slots"][n_ops]["packed"]), h(vec["state_roots"][n_ops]),
                      [h(s) for s in proof], sender=who.solver)
        assert market.job(job_id).output_root == h(vec["slots"][n_ops]["tensor_root"]), vec["name"]
        warp_past(market.job(job_id).challenge_deadline)
        market.finalize(job_id, sender=who.stranger)


def test_post_max_tensor_succeeds(market, registry, deployer, who):
    # 16 x 4096: the largest input, MAX_TENSOR_BYTES.
    registry.register(2, 4096, 10, OPS_ROOT, *I8, sender=deployer)
    data = packed(16, 4096, 3)
    assert len(data) == MAX_TENSOR_BYTES
    job_id, tx = post(market, registry.model_count(), who.requester, data=data, rows=16)
    assert market.job(job_id).input_root == tensor_root(data, 16, 4096)
    [log] = tx.decode_logs(market.JobPosted)
    assert log.input == data


def test_post_zero_fee_reverts(market, model_id, who):
    with ape.reverts("market: zero fee"):
        post(market, model_id, who.requester, fee=0)


@pytest.mark.parametrize("bond", [0, MIN_SOLVER_BOND - 1])
def test_post_solver_bond_below_minimum_reverts(market, model_id, who, bond):
    with ape.reverts("market: solver bond below minimum"):
        post(market, model_id, who.requester, bond=bond)


def test_post_minimum_solver_bond_succeeds(market, model_id, who):
    job_id, _ = post(market, model_id, who.requester, bond=MIN_SOLVER_BOND)
    assert market.job(job_id).solver_bond == MIN_SOLVER_BOND


@pytest.mark.parametrize("which,name", [(0, "claim"), (1, "commit"), (2, "challenge")])
@pytest.mark.parametrize("value", [0, MIN_WINDOW - 1, MAX_WINDOW + 1, 2**256 - 1])
def test_post_window_out_of_range_reverts(market, model_id, who, which, name, value):
    windows = list(WINDOWS)
    windows[which] = value
    with ape.reverts(f"market: {name} window out of range"):
        post(market, model_id, who.requester, windows=windows)


@pytest.fixture(scope="module")
def week_market(project, deployer, registry, game):
    """A market whose longest window is a week, well below WINDOW_LIMIT."""
    return deployer.deploy(project.JobMarket, registry, game, CHALLENGER_BOND, MIN_SOLVER_BOND, REWARD_SHARE_BPS,
                           DILUTION_FEE_BPS, SINK, MIN_WINDOW, WEEK)


WEEK = 7 * 86400


@pytest.mark.parametrize("which,name", [(0, "claim"), (1, "commit"), (2, "challenge")])
def test_post_window_at_deployment_maximum_edges(week_market, model_id, who, which, name):
    # the deployment's MAX_WINDOW bounds each window, not WINDOW_LIMIT: a week passes, a week
    # and a second does not
    windows = list(WINDOWS)
    windows[which] = WEEK
    post(week_market, model_id, who.requester, windows=windows)
    windows[which] = WEEK + 1
    with ape.reverts(f"market: {name} window out of range"):
        post(week_market, model_id, who.requester, windows=windows)


def test_post_window_bounds_succeeds(market, model_id, who):
    job_id, _ = post(market, model_id, who.requester, windows=(MIN_WINDOW,) * 3)
    job_id, tx = post(market, model_id, who.requester, windows=(MAX_WINDOW,) * 3)
    assert market.job(job_id).claim_deadline == tx.timestamp + MAX_WINDOW


@pytest.mark.parametrize("rows", [0, MAX_ROWS + 1, 65536])
def test_post_rows_out_of_range_reverts(market, model_id, who, rows):
    with ape.reverts("market: rows out of range"):
        post(market, model_id, who.requester, rows=rows)


@pytest.mark.parametrize("data", [TRACE.input[:-1], TRACE.input + b"\x00", b"", TRACE.input[:IN_COLS]])
def test_post_input_shape_mismatch_reverts(market, model_id, who, data):
    with ape.reverts("market: input does not match shape"):
        post(market, model_id, who.requester, data=data)


def test_post_input_above_limit_shape_reverts(market, registry, deployer, who):
    # rows * input_cols above MAX_TENSOR_BYTES can never match a posted input.
    registry.register(2, 4096, 10, OPS_ROOT, *I8, sender=deployer)
    with ape.reverts("market: input does not match shape"):
        post(market, registry.model_count(), who.requester, data=packed(16, 4096, 0), rows=17)


def test_post_output_too_large_to_commit_reverts(market, registry, deployer, who):
    # A 16 -> 32 model on 4096 rows: a 65,536-byte input that fits, a 131,072-byte output that
    # commit could never take; posting it would only bait a solver out of its bond.
    registry.register(2, 16, 32, OPS_ROOT, *I8, sender=deployer)
    with ape.reverts("market: output too large to commit"):
        post(market, registry.model_count(), who.requester, data=packed(4096, 16, 0), rows=4096)


def test_post_output_at_commit_limit_succeeds(market, registry, deployer, who):
    # 4096 rows x 16 output columns is exactly MAX_TENSOR_BYTES: committable, so accepted.
    registry.register(2, 1, 16, OPS_ROOT, *I8, sender=deployer)
    job_id, _ = post(market, registry.model_count(), who.requester, data=packed(4096, 1, 0), rows=4096)
    assert market.job(job_id).rows == 4096


def test_post_output_just_above_commit_limit_reverts(market, registry, deployer, who):
    # 6 rows x 10,923 output columns = 65,538 bytes: the smallest output above MAX_TENSOR_BYTES a
    # job can have (65,537 is prime, so 1 x 65,537 is the only shape, and it exceeds MAX_COLS).
    registry.register(2, 1, 10923, OPS_ROOT, *I8, sender=deployer)
    with ape.reverts("market: output too large to commit"):
        post(market, registry.model_count(), who.requester, data=packed(6, 1, 0), rows=6)


def test_post_oversize_input_reverts(market, registry, deployer, who):
    # More than MAX_TENSOR_BYTES does not even decode (Bytes[65536]).
    registry.register(2, 4096, 10, OPS_ROOT, *I8, sender=deployer)
    with ape.reverts():
        post(market, registry.model_count(), who.requester, data=packed(17, 4096, 0), rows=17)


@pytest.mark.parametrize("unknown", [0, 2, 2**256 - 1])
def test_post_unknown_model_reverts(market, model_id, who, unknown):
    # The registry's own reason comes through the market.
    with ape.reverts("registry: unknown model"):
        post(market, unknown, who.requester)


# ---------------------------------------------------------------------------
# cancel
# ---------------------------------------------------------------------------


def test_cancel_succeeds(market, model_id, who):
    job_id, _ = post(market, model_id, who.requester)
    tx = market.cancel(job_id, sender=who.requester)
    assert market.job(job_id).status == CANCELLED
    assert market.total_escrow() == 0
    [log] = tx.decode_logs(market.JobCancelled)
    assert (log.job_id, log.requester, log.refund) == (job_id, who.requester.address, FEE)
    withdraw(market, who.requester, FEE)
    assert_drained(market)


def test_cancel_after_claim_deadline_succeeds(market, model_id, who):
    # An unclaimed job whose claim deadline passed stays OPEN until its requester cancels.
    job_id, _ = post(market, model_id, who.requester)
    warp_past(market.job(job_id).claim_deadline)
    market.cancel(job_id, sender=who.requester)
    withdraw(market, who.requester, FEE)


def test_cancel_after_expire_succeeds(market, model_id, who):
    # The requester gets the fee back and keeps the slashed bond of the expired claim.
    job_id = claimed(market, model_id, who)
    warp_past(market.job(job_id).commit_deadline)
    market.expire(job_id, sender=who.stranger)
    market.cancel(job_id, sender=who.requester)
    withdraw(market, who.requester, FEE + SOLVER_BOND)
    withdraw_stake(market, who.solver, DEPOSIT - SOLVER_BOND)
    assert_drained(market)


@pytest.mark.parametrize("caller", ["solver", "stranger"])
def test_cancel_wrong_caller_reverts(market, model_id, who, caller):
    job_id, _ = post(market, model_id, who.requester)
    with ape.reverts("market: caller is not the requester"):
        market.cancel(job_id, sender=getattr(who, caller))


# ---------------------------------------------------------------------------
# claim
# ---------------------------------------------------------------------------


def test_claim_succeeds(market, model_id, who):
    market.deposit(value=DEPOSIT, sender=who.solver)
    job_id, _ = post(market, model_id, who.requester)
    tx = market.claim(job_id, sender=who.solver)
    job = market.job(job_id)
    assert job.status == CLAIMED
    assert job.solver == who.solver.address
    assert job.commit_deadline == tx.timestamp + COMMIT_WINDOW
    assert market.locked(who.solver) == SOLVER_BOND
    assert market.stake(who.solver) == DEPOSIT
    [log] = tx.decode_logs(market.JobClaimed)
    assert (log.job_id, log.solver, log.bond, log.commit_deadline) == (
        job_id, who.solver.address, SOLVER_BOND, job.commit_deadline)


def test_claim_at_deadline_succeeds(market, model_id, who):
    market.deposit(value=DEPOSIT, sender=who.solver)
    job_id, _ = post(market, model_id, who.requester)
    warp(market.job(job_id).claim_deadline)
    market.claim(job_id, sender=who.solver)


def test_claim_after_deadline_reverts(market, model_id, who):
    market.deposit(value=DEPOSIT, sender=who.solver)
    job_id, _ = post(market, model_id, who.requester)
    warp(market.job(job_id).claim_deadline + 1)
    with ape.reverts("market: claim deadline passed"):
        market.claim(job_id, sender=who.solver)


def test_claim_no_stake_reverts(market, model_id, who):
    job_id, _ = post(market, model_id, who.requester)
    with ape.reverts("market: insufficient free stake"):
        market.claim(job_id, sender=who.solver)
    market.deposit(value=SOLVER_BOND - 1, sender=who.solver)
    with ape.reverts("market: insufficient free stake"):
        market.claim(job_id, sender=who.solver)
    market.deposit(value=1, sender=who.solver)
    market.claim(job_id, sender=who.solver)  # exactly the bond is enough


def test_claim_stake_locked_by_other_jobs_reverts(market, model_id, who):
    # DEPOSIT covers two bonds, not three.
    assert 2 * SOLVER_BOND <= DEPOSIT < 3 * SOLVER_BOND
    market.deposit(value=DEPOSIT, sender=who.solver)
    jobs = [post(market, model_id, who.requester)[0] for _ in range(3)]
    market.claim(jobs[0], sender=who.solver)
    market.claim(jobs[1], sender=who.solver)
    assert market.locked(who.solver) == 2 * SOLVER_BOND
    with ape.reverts("market: insufficient free stake"):
        market.claim(jobs[2], sender=who.solver)
    withdraw_stake(market, who.solver, DEPOSIT - 2 * SOLVER_BOND)


# ---------------------------------------------------------------------------
# expire
# ---------------------------------------------------------------------------


def test_expire_succeeds(market, model_id, who):
    job_id = claimed(market, model_id, who)
    warp(market.job(job_id).commit_deadline + 1)
    tx = market.expire(job_id, sender=who.stranger)
    job = market.job(job_id)
    assert job.status == OPEN
    assert job.solver == ZERO_ADDRESS and job.commit_deadline == 0
    assert job.claim_deadline == tx.timestamp + CLAIM_WINDOW
    assert market.stake(who.solver) == DEPOSIT - SOLVER_BOND
    assert market.locked(who.solver) == 0
    assert market.credit(who.requester) == SOLVER_BOND
    assert market.total_escrow() == FEE  # the fee stays escrowed: the job can still be done
    [log] = tx.decode_logs(market.JobExpired)
    assert (log.job_id, log.solver, log.slashed, log.claim_deadline) == (
        job_id, who.solver.address, SOLVER_BOND, job.claim_deadline)


def test_expire_at_deadline_reverts(market, model_id, who):
    job_id = claimed(market, model_id, who)
    warp(market.job(job_id).commit_deadline)
    with ape.reverts("market: commit deadline not passed"):
        market.expire(job_id, sender=who.stranger)


# ---------------------------------------------------------------------------
# commit
# ---------------------------------------------------------------------------


def test_commit_succeeds(market, model_id, who):
    job_id = claimed(market, model_id, who)
    tx = commit(market, job_id, who.solver)
    job = market.job(job_id)
    assert job.status == COMMITTED
    assert job.trace_root == TRACE.s_n
    assert job.output_root == TRACE.slots[-1]
    assert job.challenge_deadline == tx.timestamp + CHALLENGE_WINDOW
    [log] = tx.decode_logs(market.JobCommitted)
    assert (log.job_id, log.solver, log.trace_root, log.output_root) == (
        job_id, who.solver.address, TRACE.s_n, TRACE.slots[-1])
    assert log.challenge_deadline == job.challenge_deadline
    assert log.output == TRACE.output  # anyone reads the result from the log


def test_commit_at_deadline_succeeds(market, model_id, who):
    job_id = claimed(market, model_id, who)
    warp(market.job(job_id).commit_deadline)
    commit(market, job_id, who.solver)


def test_commit_after_deadline_reverts(market, model_id, who):
    job_id = claimed(market, model_id, who)
    warp(market.job(job_id).commit_deadline + 1)
    with ape.reverts("market: commit deadline passed"):
        commit(market, job_id, who.solver)


@pytest.mark.parametrize("caller", ["requester", "solver2", "stranger"])
def test_commit_wrong_caller_reverts(market, model_id, who, caller):
    job_id = claimed(market, model_id, who)
    with ape.reverts("market: caller is not the solver"):
        commit(market, job_id, getattr(who, caller))


@pytest.mark.parametrize("output", [TRACE.output[:-1], TRACE.output + b"\x01", b"", TRACE.input])
def test_commit_output_shape_mismatch_reverts(market, model_id, who, output):
    job_id = claimed(market, model_id, who)
    with ape.reverts("market: output does not match shape"):
        market.commit(job_id, output, TRACE.s_n, TRACE.proof, sender=who.solver)


def _bad_commits():
    other_slot = state_tree(TRACE.slots, N_OPS).proof(N_OPS - 1)
    flipped = bytes([TRACE.output[0] ^ 1]) + TRACE.output[1:]
    return {
        "wrong sibling": (TRACE.output, TRACE.s_n, [keccak256(b"x")] + TRACE.proof[1:]),
        "short proof": (TRACE.output, TRACE.s_n, TRACE.proof[:-1]),
        "long proof": (TRACE.output, TRACE.s_n, TRACE.proof + [bytes(32)]),
        "empty proof": (TRACE.output, TRACE.s_n, []),
        "other slot's proof": (TRACE.output, TRACE.s_n, other_slot),
        "other trace root": (TRACE.output, keccak256(b"S_N"), TRACE.proof),
        "zero trace root": (TRACE.output, bytes(32), TRACE.proof),
        "other output": (flipped, TRACE.s_n, TRACE.proof),
        "S_0 as trace root": (TRACE.output, TRACE.s_0, TRACE.proof),
    }


@pytest.mark.parametrize("case", list(_bad_commits()))
def test_commit_bad_output_proof_reverts(market, model_id, who, case):
    output, trace_root, proof = _bad_commits()[case]
    job_id = claimed(market, model_id, who)
    with ape.reverts("market: bad output proof"):
        market.commit(job_id, output, trace_root, proof, sender=who.solver)
    commit(market, job_id, who.solver)  # the right one still goes through


# ---------------------------------------------------------------------------
# challenge
# ---------------------------------------------------------------------------


def test_challenge_succeeds(stub_market, stub, model_id, who):
    job_id = committed(stub_market, model_id, who)
    challenger = who.challengers[0]
    tx = stub_market.challenge(job_id, value=CHALLENGER_BOND, sender=challenger)
    [log] = tx.decode_logs(stub_market.JobChallenged)
    assert (log.job_id, log.game_id, log.challenger, log.bond) == (job_id, 1, challenger.address, CHALLENGER_BOND)
    record = stub_market.challenge_of(1)
    assert (record.job_id, record.challenger, record.bond, record.open) == (job_id, challenger.address,
                                                                            CHALLENGER_BOND, True)
    assert stub_market.job(job_id).open_games == 1
    assert stub_market.total_bonds() == CHALLENGER_BOND
    # The game gets the committed run: S_0 computed at post and S_N from the commit.
    opened = stub.opened(1)
    assert opened.owner == stub_market.address
    assert (opened.solver, opened.challenger) == (who.solver.address, challenger.address)
    assert (opened.ops_root, opened.n_ops, opened.s_0, opened.s_n) == (OPS_ROOT, N_OPS, TRACE.s_0, TRACE.s_n)


def test_challenge_real_game_succeeds(market, game, model_id, who):
    job_id = committed(market, model_id, who)
    game_id = challenge(market, job_id, who.challengers[0])
    assert game_id == 1
    assert game.to_move(game_id) == who.solver.address  # BISECT, N = 3 > 1


def test_challenge_at_deadline_succeeds(market, model_id, who):
    job_id = committed(market, model_id, who)
    warp(market.job(job_id).challenge_deadline)
    challenge(market, job_id, who.challengers[0])


def test_challenge_after_deadline_reverts(market, model_id, who):
    job_id = committed(market, model_id, who)
    warp(market.job(job_id).challenge_deadline + 1)
    with ape.reverts("market: challenge deadline passed"):
        challenge(market, job_id, who.challengers[0])


@pytest.mark.parametrize("value", [0, CHALLENGER_BOND - 1, CHALLENGER_BOND + 1, 2 * CHALLENGER_BOND])
def test_challenge_wrong_bond_reverts(market, model_id, who, value):
    job_id = committed(market, model_id, who)
    with ape.reverts("market: wrong challenger bond"):
        market.challenge(job_id, value=value, sender=who.challengers[0])


def test_challenge_by_solver_reverts(market, model_id, who):
    job_id = committed(market, model_id, who)
    with ape.reverts("market: solver cannot challenge"):
        market.challenge(job_id, value=CHALLENGER_BOND, sender=who.solver)


def test_challenge_by_requester_succeeds(market, model_id, who):
    job_id = committed(market, model_id, who)
    challenge(market, job_id, who.requester)


def test_challenge_game_id_reused_reverts(stub_market, stub, model_id, who):
    job_id = committed(stub_market, model_id, who)
    challenge(stub_market, job_id, who.challengers[0])
    stub.force_id(1, sender=who.stranger)
    with ape.reverts("market: game id reused"):
        challenge(stub_market, job_id, who.challengers[1])


# ---------------------------------------------------------------------------
# settle
# ---------------------------------------------------------------------------


def test_settle_solver_won_succeeds(stub_market, stub, model_id, who):
    job_id = committed(stub_market, model_id, who)
    game_id = challenge(stub_market, job_id, who.challengers[0])
    tx = stub.report(stub_market, game_id, True, sender=who.stranger)
    assert stub_market.credit(who.solver) == CHALLENGER_BOND
    assert stub_market.credit(who.challengers[0]) == 0
    assert not stub_market.challenge_of(game_id).open
    job = stub_market.job(job_id)
    assert job.status == COMMITTED and job.open_games == 0
    assert stub_market.locked(who.solver) == SOLVER_BOND  # still bonded until finalize
    [log] = tx.decode_logs(stub_market.GameSettled)
    assert (log.game_id, log.job_id, log.solver_won, log.to_solver, log.to_challenger) == (
        game_id, job_id, True, CHALLENGER_BOND, 0)


MOVES_GAS = 7 * 10**15 + 5  # what a stub game reports its challenger's moves metered, in wei


def test_settle_challenger_won_succeeds(stub_market, stub, model_id, who):
    job_id = committed(stub_market, model_id, who)
    challenger = who.challengers[0]
    game_id = challenge(stub_market, job_id, challenger)
    stub.set_challenger_gas(game_id, MOVES_GAS, sender=who.stranger)
    metered = stub_market.challenge_of(game_id).gas
    assert metered > 0 and stub_market.refund_of(game_id) == metered + MOVES_GAS
    refund = metered + MOVES_GAS
    tx = stub.report(stub_market, game_id, False, sender=who.stranger)
    job = stub_market.job(job_id)
    assert job.status == REJECTED and job.open_games == 0
    assert (job.best_game, job.winners, job.held) == (game_id, 1, 0)
    assert stub_market.credit(who.requester) == FEE
    assert stub_market.credit(challenger) == CHALLENGER_BOND + refund + bonus(1)
    assert stub_market.sink_pending() == SOLVER_BOND - refund - bonus(1)
    assert stub_market.stake(who.solver) == DEPOSIT - SOLVER_BOND
    assert stub_market.locked(who.solver) == 0
    assert stub_market.credit(who.solver) == 0
    assert stub_market.total_escrow() == 0
    [rejected] = tx.decode_logs(stub_market.JobRejected)
    assert (rejected.job_id, rejected.game_id, rejected.challenger) == (job_id, game_id, challenger.address)
    assert (rejected.refund, rejected.held) == (FEE, SOLVER_BOND)
    [settled] = tx.decode_logs(stub_market.GameSettled)
    assert (settled.solver_won, settled.to_solver, settled.to_challenger) == (False, 0, CHALLENGER_BOND + refund)
    # its only game: the bonus is paid at once
    [paid] = tx.decode_logs(stub_market.RewardPaid)
    assert (paid.job_id, paid.game_id, paid.challenger, paid.reward, paid.fee) == (
        job_id, game_id, challenger.address, bonus(1), FEE_EACH)
    [released] = tx.decode_logs(stub_market.RewardsReleased)
    assert (released.job_id, released.winners, released.reward, released.to_sink) == (
        job_id, 1, bonus(1), SOLVER_BOND - refund - bonus(1))


def test_settle_after_rejection_succeeds(stub_market, stub, model_id, who):
    # Four games on one result: the solver wins two (one before, one after the rejection); the
    # two winners get their bonds and refunds at once, and each the two-winner bonus at the end.
    job_id = committed(stub_market, model_id, who)
    games = [challenge(stub_market, job_id, c) for c in who.challengers]
    refunds = [stub_market.refund_of(g) for g in games]
    stub.report(stub_market, games[0], True, sender=who.stranger)
    stub.report(stub_market, games[1], False, sender=who.stranger)
    # rejected; the slashed bond less the refund waits in escrow while games are open
    assert stub_market.credit(who.challengers[1]) == CHALLENGER_BOND + refunds[1]
    assert stub_market.total_escrow() == SOLVER_BOND - refunds[1] == stub_market.job(job_id).held
    stub.report(stub_market, games[2], False, sender=who.stranger)
    tx = stub.report(stub_market, games[3], True, sender=who.stranger)
    paid = tx.decode_logs(stub_market.RewardPaid)  # the last game closed: both winners are paid
    assert [(p.game_id, p.challenger, p.reward) for p in paid] == [
        (games[1], who.challengers[1].address, bonus(2)), (games[2], who.challengers[2].address, bonus(2))]
    assert stub_market.total_escrow() == 0
    job = stub_market.job(job_id)
    assert (job.status, job.best_game, job.winners, job.held) == (REJECTED, games[1], 2, 0)
    assert stub_market.credit(who.solver) == 2 * CHALLENGER_BOND
    assert stub_market.credit(who.challengers[0]) == 0
    assert stub_market.credit(who.challengers[1]) == CHALLENGER_BOND + refunds[1] + bonus(2)
    assert stub_market.credit(who.challengers[2]) == CHALLENGER_BOND + refunds[2] + bonus(2)
    assert stub_market.credit(who.challengers[3]) == 0
    assert stub_market.sink_pending() == SOLVER_BOND - refunds[1] - refunds[2] - 2 * bonus(2)  # slashed once
    assert stub_market.stake(who.solver) == DEPOSIT - SOLVER_BOND


@pytest.mark.parametrize("order", ["honest first", "copycat first"])
def test_settle_bonus_split_whatever_the_order_succeeds(stub_market, stub, model_id, who, order):
    # An honest challenger opens first; a copycat opens later, replays its moves and wins first
    # (or the other way round): both winning games get the same bonus whatever the order.
    job_id = committed(stub_market, model_id, who)
    honest, copycat = who.challengers[:2]
    first, later = challenge(stub_market, job_id, honest), challenge(stub_market, job_id, copycat)
    for game_id in ((later, first) if order == "copycat first" else (first, later)):
        stub.report(stub_market, game_id, False, sender=who.stranger)
    assert stub_market.credit(honest) == CHALLENGER_BOND + stub_market.refund_of(first) + bonus(2)
    assert stub_market.credit(copycat) == CHALLENGER_BOND + stub_market.refund_of(later) + bonus(2)
    assert stub_market.total_escrow() == 0


@pytest.mark.parametrize("winners", [1, 2, 3, 4, 5, 6, 7])
def test_settle_bonus_by_winner_count_succeeds(stub_market, stub, model_id, who, winners):
    # W winning games share the pool equally less the fee each; from four winners on (six at most
    # for any deployment) the share is below the fee and no one is paid a bonus. Games, not
    # accounts, are counted: here one challenger opens them all.
    job_id = committed(stub_market, model_id, who)
    games = [challenge(stub_market, job_id, who.challengers[0]) for _ in range(winners)]
    receipts = [stub.report(stub_market, g, False, sender=who.stranger) for g in games]
    refunds = [stub_market.refund_of(g) for g in games]
    assert stub_market.credit(who.challengers[0]) == winners * (CHALLENGER_BOND + bonus(winners)) + sum(refunds)
    paid = receipts[-1].decode_logs(stub_market.RewardPaid)
    assert len(paid) == (winners if bonus(winners) else 0)
    [released] = receipts[-1].decode_logs(stub_market.RewardsReleased)
    assert (released.winners, released.reward) == (winners, bonus(winners))
    assert released.to_sink == stub_market.sink_pending() == SOLVER_BOND - sum(refunds) - winners * bonus(winners)


def test_settle_share_equal_to_the_fee_pays_no_bonus_succeeds(project, deployer, registry, stub, model_id, who):
    # A pool of 10% and a fee of 2.5%: with four winners each share is exactly the fee, so no one
    # is paid a bonus (and no RewardPaid is logged); the whole pool goes to the sink.
    market = deployer.deploy(project.JobMarket, registry, stub, CHALLENGER_BOND, MIN_SOLVER_BOND, 1000, 250, SINK,
                             MIN_WINDOW, MAX_WINDOW)
    assert SOLVER_BOND * 1000 // 10000 // 4 == SOLVER_BOND * 250 // 10000
    job_id = committed(market, model_id, who)
    games = [challenge(market, job_id, who.challengers[0]) for _ in range(4)]
    receipts = [stub.report(market, g, False, sender=who.stranger) for g in games]
    assert not receipts[-1].decode_logs(market.RewardPaid)
    [released] = receipts[-1].decode_logs(market.RewardsReleased)
    assert (released.winners, released.reward) == (4, 0)
    assert market.sink_pending() == SOLVER_BOND - sum(market.refund_of(g) for g in games)


@pytest.mark.parametrize("winners", [5, 6])
def test_settle_bonus_at_the_paid_winners_limit(project, deployer, registry, stub, model_id, who, winners):
    # A pool of 10% and a fee of 1.67% (2 x 167 < 1000 < 6 x 167): five winners, MAX_PAID_WINNERS,
    # are each paid pool // 5 - fee; a sixth makes the share fall below the fee and no one is paid.
    market = deployer.deploy(project.JobMarket, registry, stub, CHALLENGER_BOND, MIN_SOLVER_BOND, 1000, 167, SINK,
                             MIN_WINDOW, MAX_WINDOW)
    pool, fee = SOLVER_BOND * 1000 // 10000, SOLVER_BOND * 167 // 10000
    assert pool // 5 > fee >= pool // 6
    job_id = committed(market, model_id, who)
    games = [challenge(market, job_id, who.challengers[0]) for _ in range(winners)]
    receipts = [stub.report(market, g, False, sender=who.stranger) for g in games]
    paid = receipts[-1].decode_logs(market.RewardPaid)
    reward = pool // 5 - fee if winners == 5 else 0
    assert [log.game_id for log in paid] == (games if reward else [])
    assert all(log.reward == reward for log in paid)
    [released] = receipts[-1].decode_logs(market.RewardsReleased)
    assert (released.winners, released.reward) == (winners, reward)
    refunds = sum(market.refund_of(g) for g in games)
    assert market.credit(who.challengers[0]) == winners * (CHALLENGER_BOND + reward) + refunds


def test_settle_refunds_beyond_the_bond_take_it_all_succeeds(stub_market, stub, model_id, who):
    # Refunds come first: metered gas beyond the slashed bond empties it; the second winner is
    # refunded what is left, no bonus is paid and the sink gets nothing.
    job_id = committed(stub_market, model_id, who)
    games = [challenge(stub_market, job_id, c) for c in who.challengers[:2]]
    stub.set_challenger_gas(games[0], SOLVER_BOND - 10**15, sender=who.stranger)
    stub.set_challenger_gas(games[1], SOLVER_BOND, sender=who.stranger)
    first = stub_market.refund_of(games[0])
    stub.report(stub_market, games[0], False, sender=who.stranger)
    tx = stub.report(stub_market, games[1], False, sender=who.stranger)
    assert stub_market.credit(who.challengers[0]) == CHALLENGER_BOND + first
    assert stub_market.credit(who.challengers[1]) == CHALLENGER_BOND + SOLVER_BOND - first
    assert not tx.decode_logs(stub_market.RewardPaid)
    assert stub_market.sink_pending() == 0 and stub_market.total_escrow() == 0


def test_settle_own_game_refunds_the_settle_gas_succeeds(market, game, model_id, who):
    # A winner that settles its own game is refunded that transaction's gas too; a game settled
    # by someone else is not (its challenger paid no settle gas).
    job_id = committed(market, model_id, who)
    mine, theirs = (challenge(market, job_id, c) for c in who.challengers[:2])
    warp_past(max(game.deadline(mine), game.deadline(theirs)))
    for game_id, caller in ((mine, who.challengers[0]), (theirs, who.challengers[1])):
        game.timeout(game_id, sender=caller)
    refunds = [market.refund_of(g) for g in (mine, theirs)]
    assert market.refund_of(mine) > market.challenge_of(mine).gas > 0  # the timeout was metered
    tx = market.settle(mine, sender=who.challengers[0])
    own = market.credit(who.challengers[0]) - CHALLENGER_BOND - refunds[0]
    assert own >= tx.gas_used * tx.gas_price  # at least its settle gas
    market.settle(theirs, sender=who.stranger)
    assert market.credit(who.challengers[1]) == CHALLENGER_BOND + refunds[1] + bonus(2)
    assert market.credit(who.challengers[0]) == CHALLENGER_BOND + refunds[0] + own + bonus(2)


def test_settle_by_anyone_succeeds(market, game, model_id, who):
    # The game calls no contract; once it has a winner, any account settles it.
    job_id = committed(market, model_id, who)
    game_id = challenge(market, job_id, who.challengers[0])
    time_out(game, game_id, who.challengers[0])
    assert game.result(game_id) == 2  # the solver never moved
    tx = market.settle(game_id, sender=who.stranger)
    [log] = tx.decode_logs(market.JobRejected)
    assert log.game_id == game_id and log.challenger == who.challengers[0].address


@pytest.mark.parametrize("result", [0, 3])
def test_settle_game_not_over_reverts(stub_market, stub, model_id, who, result):
    # In play (0) or closed without a winner (3): nothing to settle.
    job_id = committed(stub_market, model_id, who)
    game_id = challenge(stub_market, job_id, who.challengers[0])
    stub.set_result(game_id, result, sender=who.stranger)
    with ape.reverts("market: game not over"):
        stub_market.settle(game_id, sender=who.stranger)


def test_settle_real_game_in_play_reverts(market, game, model_id, who):
    job_id = committed(market, model_id, who)
    game_id = challenge(market, job_id, who.challengers[0])
    with ape.reverts("market: game not over"):
        market.settle(game_id, sender=who.challengers[0])
    solver_moves(game, game_id, who.solver)
    with ape.reverts("market: game not over"):
        market.settle(game_id, sender=who.solver)


def test_settle_unknown_game_reverts(market, stub_market, stub, model_id, who):
    with ape.reverts("market: unknown game"):
        stub.report(stub_market, 1, False, sender=who.stranger)
    job_id = committed(stub_market, model_id, who)
    game_id = challenge(stub_market, job_id, who.challengers[0])
    with ape.reverts("market: unknown game"):
        stub.report(stub_market, game_id + 1, True, sender=who.stranger)
    with ape.reverts("market: unknown game"):
        stub.report(stub_market, 0, True, sender=who.stranger)
    # A game another market (or anyone else) opened is not this market's to settle.
    with ape.reverts("market: unknown game"):
        market.settle(game_id, sender=who.stranger)


def test_views_of_unknown_game_revert(stub_market, model_id, who):
    """challenge_of and refund_of name a game the market did not open, rather than answering
    zeros (a refund of 0 wei would read as a real game's; the mutation test found no test of it)."""
    job_id = committed(stub_market, model_id, who)
    game_id = challenge(stub_market, job_id, who.challengers[0])
    assert stub_market.challenge_of(game_id).job_id == job_id
    assert stub_market.refund_of(game_id) > 0
    for view in (stub_market.challenge_of, stub_market.refund_of):
        for unknown in (0, game_id + 1):
            with ape.reverts("market: unknown game"):
                view(unknown)


def test_settle_game_of_other_owner_reverts(market, game, model_id, who):
    # Someone opens a game on the same DisputeGame directly and lets it end: the market
    # did not open it and settles nothing for it.
    game.open(who.solver, who.stranger, OPS_ROOT, N_OPS, TRACE.s_0, TRACE.s_n, sender=who.stranger)
    time_out(game, 1, who.stranger)
    with ape.reverts("market: unknown game"):
        market.settle(1, sender=who.stranger)


@pytest.mark.parametrize("first", [True, False])
def test_settle_settled_game_reverts(stub_market, stub, model_id, who, first):
    job_id = committed(stub_market, model_id, who)
    game_id = challenge(stub_market, job_id, who.challengers[0])
    stub.report(stub_market, game_id, first, sender=who.stranger)
    with ape.reverts("market: game already settled"):
        stub_market.settle(game_id, sender=who.stranger)
    for again in (True, False):
        with ape.reverts("market: game already settled"):
            stub.report(stub_market, game_id, again, sender=who.stranger)


# ---------------------------------------------------------------------------
# reclaim
# ---------------------------------------------------------------------------


def test_reclaim_succeeds(market, game, model_id, who):
    # A challenger walks away from its game of a rejected job: its bond and its gas (the
    # challenge, and the reclaim itself) back, no bonus; the one winner is then the sole winner.
    job_id = committed(market, model_id, who)
    winner, other = who.challengers[:2]
    won = challenge(market, job_id, winner)
    still_open = challenge(market, job_id, other)
    time_out_and_settle(market, game, won, who.stranger)
    assert market.job(job_id).open_games == 1
    assert market.credit(winner) == CHALLENGER_BOND + market.refund_of(won)  # the bonus waits for the open game
    refund = market.refund_of(still_open)
    tx = market.reclaim(still_open, sender=other)
    assert tx.decode_logs(game.GameClosed) and game.result(still_open) == 3
    assert market.credit(winner) == CHALLENGER_BOND + market.refund_of(won) + bonus(1)
    [paid] = tx.decode_logs(market.RewardPaid)
    assert (paid.game_id, paid.challenger, paid.reward) == (won, winner.address, bonus(1))
    assert not market.challenge_of(still_open).open
    assert market.job(job_id).open_games == 0
    assert market.credit(other) >= CHALLENGER_BOND + refund + tx.gas_used * tx.gas_price
    [log] = tx.decode_logs(market.ChallengeReclaimed)
    assert (log.game_id, log.job_id, log.challenger, log.bond, log.refund) == (
        still_open, job_id, other.address, CHALLENGER_BOND, refund)
    with ape.reverts("market: game already settled"):
        market.settle(still_open, sender=who.stranger)


def test_reclaim_committed_job_reverts(stub_market, model_id, who):
    job_id = committed(stub_market, model_id, who)
    game_id = challenge(stub_market, job_id, who.challengers[0])
    with ape.reverts("market: job is not rejected"):
        stub_market.reclaim(game_id, sender=who.challengers[0])


@pytest.mark.parametrize("opened", ["before", "after"])
def test_reclaim_by_another_reverts(stub_market, stub, model_id, who, opened):
    # No one but its challenger takes a game out of the bonus pool, wherever it was opened: the
    # winner, the solver or a stranger cannot strike it to keep the pool.
    job_id = committed(stub_market, model_id, who)
    games = [challenge(stub_market, job_id, c) for c in who.challengers[:2]]
    won, other = games if opened == "after" else games[::-1]
    owner = who.challengers[games.index(other)]
    stub.report(stub_market, won, False, sender=who.stranger)
    for caller in (who.stranger, who.solver, who.challengers[games.index(won)]):
        with ape.reverts("market: caller is not the challenger"):
            stub_market.reclaim(other, sender=caller)
    stub_market.reclaim(other, sender=owner)
    assert stub.closed(other) == 1


def test_reclaim_settled_game_reverts(stub_market, stub, model_id, who):
    job_id = committed(stub_market, model_id, who)
    won = challenge(stub_market, job_id, who.challengers[0])
    reclaimed = challenge(stub_market, job_id, who.challengers[1])
    stub.report(stub_market, won, False, sender=who.stranger)
    with ape.reverts("market: game already settled"):
        stub_market.reclaim(won, sender=who.challengers[0])
    stub_market.reclaim(reclaimed, sender=who.challengers[1])
    with ape.reverts("market: game already settled"):
        stub_market.reclaim(reclaimed, sender=who.challengers[1])


def test_reclaim_game_over_reverts(stub_market, stub, model_id, who):
    # A game that already has a winner is settled by its result, never closed.
    job_id = committed(stub_market, model_id, who)
    won = challenge(stub_market, job_id, who.challengers[0])
    later = challenge(stub_market, job_id, who.challengers[1])
    stub.report(stub_market, won, False, sender=who.stranger)
    for result in (1, 2):
        stub.set_result(later, result, sender=who.stranger)
        with ape.reverts("market: game is over, settle it"):
            stub_market.reclaim(later, sender=who.challengers[1])
    stub_market.settle(later, sender=who.stranger)  # challenger won too: a second winner
    assert stub_market.credit(who.challengers[1]) == CHALLENGER_BOND + stub_market.refund_of(later) + bonus(2)
    assert stub.closed(later) == 0


@pytest.mark.parametrize("game_id", [0, 1, 2**256 - 1])
def test_reclaim_unknown_game_reverts(stub_market, who, game_id):
    with ape.reverts("market: unknown game"):
        stub_market.reclaim(game_id, sender=who.stranger)


# ---------------------------------------------------------------------------
# finalize
# ---------------------------------------------------------------------------


def test_finalize_succeeds(market, model_id, who):
    job_id = committed(market, model_id, who)
    warp(market.job(job_id).challenge_deadline + 1)
    tx = market.finalize(job_id, sender=who.stranger)
    assert market.job(job_id).status == FINALIZED
    assert market.credit(who.solver) == FEE
    assert market.locked(who.solver) == 0 and market.stake(who.solver) == DEPOSIT
    assert market.total_escrow() == 0
    [log] = tx.decode_logs(market.JobFinalized)
    assert (log.job_id, log.solver, log.fee) == (job_id, who.solver.address, FEE)


def test_finalize_at_deadline_reverts(market, model_id, who):
    job_id = committed(market, model_id, who)
    warp(market.job(job_id).challenge_deadline)
    with ape.reverts("market: challenge window not over"):
        market.finalize(job_id, sender=who.stranger)


def test_finalize_game_open_reverts(market, game, model_id, who):
    job_id = committed(market, model_id, who)
    game_id = challenge(market, job_id, who.challengers[0])
    solver_moves(game, game_id, who.solver)
    warp_past(market.job(job_id).challenge_deadline)
    with ape.reverts("market: game still open"):
        market.finalize(job_id, sender=who.stranger)
    # The challenger runs out of clock: the solver wins; until the game is settled in the
    # market it still counts as open.
    time_out(game, game_id, who.stranger)
    with ape.reverts("market: game still open"):
        market.finalize(job_id, sender=who.stranger)
    market.settle(game_id, sender=who.stranger)
    market.finalize(job_id, sender=who.stranger)
    assert market.credit(who.solver) == FEE + CHALLENGER_BOND


# ---------------------------------------------------------------------------
# Wrong phase and unknown job, every job function
# ---------------------------------------------------------------------------

PHASE_CASES = [
    # (function, status the job is in, reason)
    ("cancel", CLAIMED, "market: job is not open"),
    ("cancel", COMMITTED, "market: job is not open"),
    ("cancel", FINALIZED, "market: job is not open"),
    ("cancel", REJECTED, "market: job is not open"),
    ("cancel", CANCELLED, "market: job is not open"),
    ("claim", CLAIMED, "market: job is not open"),
    ("claim", COMMITTED, "market: job is not open"),
    ("claim", FINALIZED, "market: job is not open"),
    ("claim", CANCELLED, "market: job is not open"),
    ("expire", OPEN, "market: job is not claimed"),
    ("expire", COMMITTED, "market: job is not claimed"),
    ("expire", CANCELLED, "market: job is not claimed"),
    ("commit", OPEN, "market: job is not claimed"),
    ("commit", COMMITTED, "market: job is not claimed"),
    ("commit", REJECTED, "market: job is not claimed"),
    ("challenge", OPEN, "market: job is not committed"),
    ("challenge", CLAIMED, "market: job is not committed"),
    ("challenge", FINALIZED, "market: job is not committed"),
    ("challenge", REJECTED, "market: job is not committed"),
    ("finalize", OPEN, "market: job is not committed"),
    ("finalize", CLAIMED, "market: job is not committed"),
    ("finalize", FINALIZED, "market: job is not committed"),
    ("finalize", REJECTED, "market: job is not committed"),
    ("finalize", CANCELLED, "market: job is not committed"),
]


def _call(market, who, name, job_id):
    """Calls a job function as the party that could call it in the right phase, once every
    deadline that function waits for has passed (or not yet come, for those that need it)."""
    if name == "cancel":
        return market.cancel(job_id, sender=who.requester)
    if name == "claim":
        return market.claim(job_id, sender=who.solver2)
    if name == "expire":
        return market.expire(job_id, sender=who.stranger)
    if name == "commit":
        return commit(market, job_id, who.solver)
    if name == "challenge":
        return market.challenge(job_id, value=CHALLENGER_BOND, sender=who.challengers[3])
    if name == "finalize":
        return market.finalize(job_id, sender=who.stranger)
    raise AssertionError(name)


@pytest.mark.parametrize("name,status,reason", PHASE_CASES)
def test_job_function_wrong_phase_reverts(stub_market, stub, model_id, who, name, status, reason):
    stub_market.deposit(value=DEPOSIT, sender=who.solver2)
    job_id = job_in(stub_market, model_id, who, status, stub)
    assert stub_market.job(job_id).status == status
    with ape.reverts(reason):
        _call(stub_market, who, name, job_id)


@pytest.mark.parametrize("name", ["cancel", "claim", "expire", "commit", "challenge", "finalize"])
def test_job_function_unknown_job_reverts(market, model_id, who, name):
    with ape.reverts("market: unknown job"):
        _call(market, who, name, 0)
    post(market, model_id, who.requester)
    with ape.reverts("market: unknown job"):
        _call(market, who, name, 2)


def test_job_unknown_reverts(market, model_id, who):
    with ape.reverts("market: unknown job"):
        market.job(1)
    post(market, model_id, who.requester)
    market.job(1)
    with ape.reverts("market: unknown job"):
        market.job(2)
    with ape.reverts("market: unknown job"):
        market.job(0)


def test_challenge_of_unknown_reverts(market):
    with ape.reverts("market: unknown game"):
        market.challenge_of(1)


# ---------------------------------------------------------------------------
# withdraw / release_to_sink
# ---------------------------------------------------------------------------


def test_withdraw_nothing_reverts(market, model_id, who):
    with ape.reverts("market: nothing to withdraw"):
        market.withdraw(sender=who.requester)
    market.deposit(value=DEPOSIT, sender=who.solver)  # stake is not credit
    with ape.reverts("market: nothing to withdraw"):
        market.withdraw(sender=who.solver)


def test_withdraw_twice_reverts(market, model_id, who):
    job_id, _ = post(market, model_id, who.requester)
    market.cancel(job_id, sender=who.requester)
    withdraw(market, who.requester, FEE)
    with ape.reverts("market: nothing to withdraw"):
        market.withdraw(sender=who.requester)


def test_release_to_sink_nothing_reverts(market, who):
    with ape.reverts("market: nothing to release"):
        market.release_to_sink(sender=who.stranger)


def test_release_to_sink_succeeds(stub_market, stub, model_id, who):
    job_id = committed(stub_market, model_id, who)
    game_id = challenge(stub_market, job_id, who.challengers[0])
    stub.report(stub_market, game_id, False, sender=who.stranger)
    to_sink = SOLVER_BOND - stub_market.refund_of(game_id) - bonus(1)
    before = chain.provider.get_balance(SINK)
    tx = stub_market.release_to_sink(sender=who.stranger)
    assert chain.provider.get_balance(SINK) == before + to_sink
    assert stub_market.sink_pending() == 0
    [log] = tx.decode_logs(stub_market.SinkReleased)
    assert (log.sink, log.amount) == (SINK, to_sink)
    with ape.reverts("market: nothing to release"):
        stub_market.release_to_sink(sender=who.stranger)


@pytest.mark.parametrize("slashed", [False, True])
def test_release_to_sink_sweeps_forced_eth_succeeds(stub_market, stub, model_id, who, slashed):
    # ETH forced in without a call (SELFDESTRUCT, a block reward; anvil_setBalance here) is owed
    # to no one: the balance exceeds the obligations until release_to_sink sends the surplus,
    # with any slashed remainder, to the sink. Nothing is stuck; no one's credit changes.
    to_sink = 0
    if slashed:
        job_id = committed(stub_market, model_id, who)
        game_id = challenge(stub_market, job_id, who.challengers[0])
        stub.report(stub_market, game_id, False, sender=who.stranger)
        to_sink = SOLVER_BOND - stub_market.refund_of(game_id) - bonus(1)
    forced = 10**15 + 9
    balance = chain.provider.get_balance(stub_market.address)
    chain.provider.set_balance(stub_market.address, balance + forced)
    assert stub_market.obligations() == balance
    credits = [stub_market.credit(a) for a in (who.requester, who.solver, *who.challengers)]
    before = chain.provider.get_balance(SINK)
    tx = stub_market.release_to_sink(sender=who.stranger)
    expected = forced + to_sink
    [log] = tx.decode_logs(stub_market.SinkReleased)
    assert (log.sink, log.amount) == (SINK, expected)
    assert chain.provider.get_balance(SINK) == before + expected
    assert chain.provider.get_balance(stub_market.address) == stub_market.obligations()
    assert [stub_market.credit(a) for a in (who.requester, who.solver, *who.challengers)] == credits
    with ape.reverts("market: nothing to release"):
        stub_market.release_to_sink(sender=who.stranger)


# ---------------------------------------------------------------------------
# Reentrancy: a receiver that calls back into the market when paid
# ---------------------------------------------------------------------------


@pytest.fixture
def receiver(project, deployer, market, model_id, who):
    """A contract account holding stake DEPOSIT and credit FEE (a cancelled job's refund)."""
    contract = deployer.deploy(project.reentrant_receiver)
    contract.execute(market, market.deposit.encode_input(), value=DEPOSIT, sender=who.stranger)
    contract.execute(market, market.post.encode_input(model_id, ROWS, TRACE.input, SOLVER_BOND, *WINDOWS),
                     value=FEE, sender=who.stranger)
    contract.execute(market, market.cancel.encode_input(market.job_count()), sender=who.stranger)
    assert market.stake(contract) == DEPOSIT and market.credit(contract) == FEE
    return contract


@pytest.mark.parametrize("reentry", ["withdraw", "withdraw_stake"])
def test_withdraw_reentrant_receiver_paid_once_succeeds(market, receiver, who, reentry):
    # Paid its credit, the receiver calls back: `withdraw()` again (its credit is already
    # zero) or `withdraw_stake(DEPOSIT)` (which would pay out without the lock). Both fail.
    data = market.withdraw.encode_input() if reentry == "withdraw" else market.withdraw_stake.encode_input(DEPOSIT)
    receiver.arm(market, data, sender=who.stranger)
    tx = receiver.execute(market, market.withdraw.encode_input(), sender=who.stranger)
    assert receiver.attempts() == 1 and receiver.successes() == 0
    [log] = tx.decode_logs(receiver.Reentered)
    assert not log.success
    assert receiver.received() == FEE and receiver.balance == FEE
    assert market.credit(receiver) == 0 and market.stake(receiver) == DEPOSIT
    assert_accounting(market)


@pytest.mark.parametrize("reentry", ["withdraw", "withdraw_stake"])
def test_withdraw_stake_reentrant_receiver_paid_once_succeeds(market, receiver, who, reentry):
    amount = DEPOSIT // 2
    data = market.withdraw.encode_input() if reentry == "withdraw" else market.withdraw_stake.encode_input(amount)
    receiver.arm(market, data, sender=who.stranger)
    receiver.execute(market, market.withdraw_stake.encode_input(amount), sender=who.stranger)
    assert receiver.attempts() == 1 and receiver.successes() == 0
    assert receiver.received() == amount and receiver.balance == amount
    assert market.stake(receiver) == DEPOSIT - amount and market.credit(receiver) == FEE
    assert_accounting(market)


def test_withdraw_rejecting_receiver_reverts(market, receiver, who):
    # A failed payment reverts the whole withdrawal: the credit stays, nothing is lost.
    receiver.set_reject(True, sender=who.stranger)
    with ape.reverts("reentrant_receiver: rejected"):
        receiver.execute(market, market.withdraw.encode_input(), sender=who.stranger)
    assert market.credit(receiver) == FEE and receiver.balance == 0
    receiver.set_reject(False, sender=who.stranger)
    receiver.execute(market, market.withdraw.encode_input(), sender=who.stranger)
    assert receiver.balance == FEE


def test_receiver_without_reentry_succeeds(market, receiver, who):
    # The plain contract-wallet case: all gas is forwarded, so a receiver that writes storage
    # on receipt is paid.
    receiver.execute(market, market.withdraw.encode_input(), sender=who.stranger)
    receiver.execute(market, market.withdraw_stake.encode_input(DEPOSIT), sender=who.stranger)
    assert receiver.received() == FEE + DEPOSIT
    assert_drained(market)


# ---------------------------------------------------------------------------
# End to end: every lifecycle on the real dispute game, to zero
# ---------------------------------------------------------------------------


def test_lifecycle_finalize_succeeds(market, model_id, who):
    # post -> claim -> commit -> window -> finalize -> withdraw
    market.deposit(value=DEPOSIT, sender=who.solver)
    job_id, _ = post(market, model_id, who.requester)
    assert_accounting(market)
    market.claim(job_id, sender=who.solver)
    assert_accounting(market)
    commit(market, job_id, who.solver)
    assert_accounting(market)
    warp_past(market.job(job_id).challenge_deadline)
    market.finalize(job_id, sender=who.stranger)
    assert market.job(job_id).status == FINALIZED
    assert market.credit(who.requester) == 0
    withdraw(market, who.solver, FEE)
    withdraw_stake(market, who.solver, DEPOSIT)
    assert_drained(market)


def test_lifecycle_cancel_succeeds(market, model_id, who):
    job_id, _ = post(market, model_id, who.requester)
    market.cancel(job_id, sender=who.requester)
    withdraw(market, who.requester, FEE)
    assert_drained(market)


def test_lifecycle_expire_and_claim_by_other_solver_succeeds(market, model_id, who):
    job_id = claimed(market, model_id, who)
    warp_past(market.job(job_id).commit_deadline)
    # The late solver can no longer commit; anyone expires the claim.
    with ape.reverts("market: commit deadline passed"):
        commit(market, job_id, who.solver)
    market.expire(job_id, sender=who.stranger)
    assert market.job(job_id).status == OPEN
    with ape.reverts("market: job is not claimed"):
        market.expire(job_id, sender=who.stranger)
    # A second solver claims the reopened job within its fresh claim window and completes it.
    market.deposit(value=DEPOSIT, sender=who.solver2)
    warp(market.job(job_id).claim_deadline)
    market.claim(job_id, sender=who.solver2)
    with ape.reverts("market: caller is not the solver"):
        commit(market, job_id, who.solver)
    commit(market, job_id, who.solver2)
    warp_past(market.job(job_id).challenge_deadline)
    market.finalize(job_id, sender=who.stranger)
    withdraw(market, who.solver2, FEE)
    withdraw(market, who.requester, SOLVER_BOND)
    assert market.credit(who.solver) == 0
    withdraw_stake(market, who.solver, DEPOSIT - SOLVER_BOND)
    withdraw_stake(market, who.solver2, DEPOSIT)
    assert_drained(market)


def test_lifecycle_challenge_lost_by_challenger_succeeds(market, game, model_id, who):
    job_id = committed(market, model_id, who)
    challenger = who.challengers[0]
    game_id = challenge(market, job_id, challenger)
    solver_moves(game, game_id, who.solver)
    tx = time_out_and_settle(market, game, game_id, who.stranger)  # the challenger does not answer
    [log] = tx.decode_logs(market.GameSettled)
    assert log.game_id == game_id and log.solver_won
    assert market.credit(who.solver) == CHALLENGER_BOND
    assert market.job(job_id).status == COMMITTED and market.job(job_id).open_games == 0
    warp_past(market.job(job_id).challenge_deadline)
    market.finalize(job_id, sender=who.stranger)
    withdraw(market, who.solver, FEE + CHALLENGER_BOND)
    assert market.credit(challenger) == 0
    withdraw_stake(market, who.solver, DEPOSIT)
    assert_drained(market)


def test_lifecycle_challenge_won_by_challenger_succeeds(market, game, model_id, who):
    # Four parallel games on one result: the solver wins game 4; game 1's challenger wins and
    # the result is rejected; game 2's challenger wins too; game 3 is still open and its
    # challenger reclaims it (closed, bond and gas back). Games 1 and 2 share the bonus.
    job_id = committed(market, model_id, who)
    games = [challenge(market, job_id, c) for c in who.challengers]
    assert games == [1, 2, 3, 4]
    assert market.job(job_id).open_games == 4
    assert market.total_bonds() == 4 * CHALLENGER_BOND
    solver_moves(game, games[3], who.solver)
    assert_accounting(market)

    time_out_and_settle(market, game, games[3], who.stranger)  # game 4's challenger runs out: solver wins
    assert market.credit(who.solver) == CHALLENGER_BOND
    time_out_and_settle(market, game, games[0], who.stranger)  # the solver runs out in game 1: rejected
    assert market.job(job_id).status == REJECTED
    assert_accounting(market)
    with ape.reverts("market: job is not committed"):
        market.finalize(job_id, sender=who.stranger)
    with ape.reverts("market: job is not committed"):
        market.challenge(job_id, value=CHALLENGER_BOND, sender=who.stranger)
    time_out_and_settle(market, game, games[1], who.stranger)  # game 2: a second winner
    with ape.reverts("market: caller is not the challenger"):
        market.reclaim(games[2], sender=who.stranger)
    tx = market.reclaim(games[2], sender=who.challengers[2])  # game 3 is closed unfinished
    assert tx.decode_logs(game.GameClosed)
    assert game.result(games[2]) == 3  # closed without a winner
    with ape.reverts("game: not in play"):
        game.timeout(games[2], sender=who.stranger)
    with ape.reverts("market: game already settled"):
        market.settle(games[2], sender=who.stranger)
    assert market.job(job_id).open_games == 0

    refunds = [market.refund_of(g) for g in games]
    reclaimed = market.credit(who.challengers[2])
    assert reclaimed >= CHALLENGER_BOND + refunds[2] + tx.gas_used * tx.gas_price  # its reclaim gas too
    withdraw(market, who.requester, FEE)
    withdraw(market, who.challengers[0], CHALLENGER_BOND + refunds[0] + bonus(2))
    withdraw(market, who.challengers[1], CHALLENGER_BOND + refunds[1] + bonus(2))
    withdraw(market, who.challengers[2], reclaimed)
    assert market.credit(who.challengers[3]) == 0
    withdraw(market, who.solver, CHALLENGER_BOND)
    assert market.stake(who.solver) == DEPOSIT - SOLVER_BOND and market.locked(who.solver) == 0
    withdraw_stake(market, who.solver, DEPOSIT - SOLVER_BOND)
    before = chain.provider.get_balance(SINK)
    market.release_to_sink(sender=who.stranger)
    to_sink = SOLVER_BOND - 2 * bonus(2) - refunds[0] - refunds[1] - (reclaimed - CHALLENGER_BOND)
    assert chain.provider.get_balance(SINK) == before + to_sink
    assert_drained(market)


def test_lifecycle_self_challenge_costs_the_cheater_succeeds(market, game, model_id, who):
    # Protocol 10.2, "Who gets a slashed solver bond": a solver challenging its own wrong
    # result from a second account, and forfeiting that game, still loses 90% of its bond and
    # more: the accomplice's gas comes back, and the bonus is at most pool - fee.
    job_id = committed(market, model_id, who)
    accomplice = who.solver2
    game_id = challenge(market, job_id, accomplice)
    time_out_and_settle(market, game, game_id, who.stranger)  # the solver "loses" on purpose
    refund = market.refund_of(game_id)
    withdraw(market, accomplice, CHALLENGER_BOND + refund + bonus(1))
    withdraw(market, who.requester, FEE)
    withdraw_stake(market, who.solver, DEPOSIT - SOLVER_BOND)
    # Net over both accounts, before gas: -SOLVER_BOND + refund + bonus(1), the refund repaying gas burned.
    assert SOLVER_BOND - bonus(1) >= SOLVER_BOND * 9 // 10
    market.release_to_sink(sender=who.stranger)
    assert_drained(market)


def test_lifecycle_many_jobs_succeeds(market, game, model_id, who):
    # Jobs in every final state side by side; accounting after every step, drained at the end.
    market.deposit(value=DEPOSIT, sender=who.solver)
    market.deposit(value=DEPOSIT, sender=who.solver2)
    finalized, _ = post(market, model_id, who.requester)
    rejected, _ = post(market, model_id, who.requester, fee=FEE + 1)
    cancelled, _ = post(market, model_id, who.stranger, fee=7)
    market.claim(finalized, sender=who.solver)
    market.claim(rejected, sender=who.solver2)
    commit(market, finalized, who.solver)
    commit(market, rejected, who.solver2)
    market.cancel(cancelled, sender=who.stranger)
    lost = challenge(market, finalized, who.challengers[0])
    won = challenge(market, rejected, who.challengers[1])
    assert_accounting(market)
    solver_moves(game, lost, who.solver)
    time_out_and_settle(market, game, lost, who.stranger)
    time_out_and_settle(market, game, won, who.stranger)
    assert_accounting(market)
    warp_past(market.job(finalized).challenge_deadline)
    market.finalize(finalized, sender=who.stranger)
    withdraw(market, who.solver, FEE + CHALLENGER_BOND)
    withdraw(market, who.requester, FEE + 1)
    withdraw(market, who.stranger, 7)
    withdraw(market, who.challengers[1], CHALLENGER_BOND + market.refund_of(won) + bonus(1))
    withdraw_stake(market, who.solver, DEPOSIT)
    withdraw_stake(market, who.solver2, DEPOSIT - SOLVER_BOND)
    market.release_to_sink(sender=who.stranger)
    assert_drained(market)

"""JobMarket's constructor and ``post`` (docs/protocol.md 10.0, 10.2): the deployment's
parameters, and every term and shape a job is posted with, accepted or refused.

The fixtures (two markets, one on the real game and one on a stub) are in conftest.py; the
parameters and steps in tests/market_case.py.
"""

import ape
import pytest

from accounting import OPEN
from helpers import h, load_vectors
from market_case import (CHALLENGER_BOND, CLAIM_WINDOW, DEPOSIT, DILUTION_FEE_BPS, FEE, I8, IN_COLS, MAX_ROWS,
                         MAX_TENSOR_BYTES, MAX_WINDOW, MIN_SOLVER_BOND, MIN_WINDOW, OPS_ROOT,
                         OUT_COLS, REWARD_SHARE_BPS, ROWS, SINK, SOLVER_BOND, TRACE, WINDOWS,
                         ZERO_ADDRESS, make_trace, packed, post, tensor_root, warp_past)
from referee.hashing import keccak256
from referee.merkle import hash_pair, zero_hash

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

"""The market tests' shared case (tests/market/): the deployment's and the jobs' parameters, the
payouts they imply, a made-up trace (the market checks only slots 0 and N), and the steps that
bring a job or a game where a test needs it. Every expected payout is computed here from the
parameters, never read back from the contract.
"""

from dataclasses import dataclass

import torch
from ape import chain

from accounting import CANCELLED, CLAIMED, FINALIZED, OPEN, REJECTED
from referee.commitments import commit_tensor, state_roots, state_tree
from referee.hashing import keccak256

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

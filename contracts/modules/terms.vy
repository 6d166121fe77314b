#pragma version ~=0.4.3
"""
@title Terms
@custom:contract-name terms
@license MIT
@notice The market's terms (protocol.md 10.2): the parameters a
        deployment fixes for ever (challenger bond, minimum solver bond,
        bonus pool and dilution fee, window limits) and the terms a job
        may ask for at `post` (fee, solver bond, windows, rows).
@dev Stateful (immutables only): `JobMarket.vy` initializes it and
     exports its getters; `jobs.vy` checks a posted job's terms with
     `_check_post`, and the market's settlement reads the bonus
     parameters. Every bound here is checked in one place, so that a
     mutation test of the module covers all of them.
"""


# ---------------------------------------------------------------------------
# CONSTANTS
# ---------------------------------------------------------------------------


# @dev The largest `max_window` a deployment may set, in seconds: bounds
# every deadline so that `now + window` cannot overflow and no job can
# lock funds for longer than a year per phase.
WINDOW_LIMIT: public(constant(uint256)) = 365 * 86400


# @dev The largest row count of a job (protocol.md 10.0,
# MAX_POSTED_ROWS): hashing a posted tensor costs about 650 gas per row,
# so 4096 rows keep `post` and `commit` near 2.7M gas, far below the
# 2^24 transaction cap (section 8 allows 65536 rows off-chain).
MAX_ROWS: public(constant(uint256)) = 4096


# @dev Basis points of one whole.
BPS: constant(uint256) = 10000


# @dev The largest bonus pool, in basis points of the solver bond: all
# challengers together receive at most this beyond their bonds and gas,
# so a liar whose accomplices take all of it still loses 90% of its bond
# (protocol.md 10.2).
MAX_REWARD_SHARE_BPS: public(constant(uint256)) = 1000


# @dev The most winning games a bonus is ever paid to: the constructor
# keeps `REWARD_SHARE_BPS < 6 * DILUTION_FEE_BPS`, so with six winners or
# more a pool's equal share never exceeds the fee and no one is paid one.
MAX_PAID_WINNERS: public(constant(uint256)) = 5


# ---------------------------------------------------------------------------
# STORAGE
# ---------------------------------------------------------------------------


# @dev The exact bond a challenger posts with `challenge`.
CHALLENGER_BOND: public(immutable(uint256))


# @dev The smallest solver bond a job may require.
MIN_SOLVER_BOND: public(immutable(uint256))


# @dev The bonus pool of a slashed solver bond, in basis points of the
# bond, at most MAX_REWARD_SHARE_BPS: shared equally among the winning
# games (protocol.md 10.2, "Who gets a slashed solver bond").
REWARD_SHARE_BPS: public(immutable(uint256))


# @dev The fee each winning game pays out of its share of the pool, in
# basis points of the solver bond: more than a sixth of the pool and
# less than half of it, so a second winner still earns and every further
# game opened to dilute the pool costs its opener more than it gains.
DILUTION_FEE_BPS: public(immutable(uint256))


# @dev The shortest claim, commit or challenge window a job may ask for,
# in seconds: a few blocks, so that a claim, a commit and a challenge
# can always be mined in time.
MIN_WINDOW: public(immutable(uint256))


# @dev The longest window a job may ask for, in seconds: bounds how long
# a claim or a commit can lock a solver's bond.
MAX_WINDOW: public(immutable(uint256))


# ---------------------------------------------------------------------------
# CONSTRUCTOR
# ---------------------------------------------------------------------------


@deploy
def __init__(
    challenger_bond: uint256,
    min_solver_bond: uint256,
    reward_share_bps: uint256,
    dilution_fee_bps: uint256,
    min_window: uint256,
    max_window: uint256,
):
    """
    @dev Fixes the deployment's terms for ever.
    @param challenger_bond The exact bond of a challenge; nonzero.
    @param min_solver_bond The smallest solver bond a job may require;
           nonzero.
    @param reward_share_bps The bonus pool of a slashed solver bond, in
           basis points, at most MAX_REWARD_SHARE_BPS.
    @param dilution_fee_bps The fee each winning game pays out of its
           share of the pool, in basis points: `2 * fee < share <
           6 * fee`, or both zero (no bonus at all).
    @param min_window The shortest window a job may ask for, in seconds;
           at least 1.
    @param max_window The longest window a job may ask for, in seconds;
           in [min_window, WINDOW_LIMIT].
    """
    # INVARIANT: a challenge costs something, so a losing one pays the solver.
    assert challenger_bond > 0, "market: zero challenger bond"
    # INVARIANT: a claim always puts something at stake.
    assert min_solver_bond > 0, "market: zero minimum solver bond"
    # INVARIANT: whatever accomplices a liar uses, it loses at least
    # 90% of its bond: all challengers together get at most 10% of it
    # beyond their bonds and gas.
    assert reward_share_bps <= MAX_REWARD_SHARE_BPS, "market: reward share out of range"
    # INVARIANT: a second winner still earns (fee below half the pool),
    # a third and later ones lower their opener's take (fee above a sixth
    # of it), and no bonus is paid beyond MAX_PAID_WINNERS winners.
    assert dilution_fee_bps <= reward_share_bps, "market: dilution fee out of range"
    assert (reward_share_bps == 0 and dilution_fee_bps == 0) or (
        2 * dilution_fee_bps < reward_share_bps and reward_share_bps < 6 * dilution_fee_bps
    ), "market: dilution fee out of range"
    # INVARIANT: every window a job can ask for is nonempty, and no
    # deadline can lock funds for longer than WINDOW_LIMIT.
    assert min_window >= 1 and min_window <= max_window and max_window <= WINDOW_LIMIT, \
        "market: window limits out of range"

    CHALLENGER_BOND = challenger_bond
    MIN_SOLVER_BOND = min_solver_bond
    REWARD_SHARE_BPS = reward_share_bps
    DILUTION_FEE_BPS = dilution_fee_bps
    MIN_WINDOW = min_window
    MAX_WINDOW = max_window


# ---------------------------------------------------------------------------
# INTERNAL FUNCTIONS
# ---------------------------------------------------------------------------


@view
@internal
def _check_post(
    fee: uint256,
    solver_bond: uint256,
    claim_window: uint256,
    commit_window: uint256,
    challenge_window: uint256,
    rows: uint256,
):
    """
    @dev Reverts unless a posted job's own terms are within the
         deployment's, checked in this order (protocol.md 10.5).
    @param fee The fee, `msg.value` of `post`; nonzero.
    @param solver_bond At least MIN_SOLVER_BOND.
    @param claim_window In [MIN_WINDOW, MAX_WINDOW].
    @param commit_window In [MIN_WINDOW, MAX_WINDOW].
    @param challenge_window In [MIN_WINDOW, MAX_WINDOW].
    @param rows In [1, MAX_ROWS].
    """
    # INVARIANT: a solver is paid something for its work.
    assert fee > 0, "market: zero fee"
    # INVARIANT: a claim always risks at least the deployment's minimum.
    assert solver_bond >= MIN_SOLVER_BOND, "market: solver bond below minimum"
    # INVARIANT: every window lasts a few blocks at least, so the step it
    # waits for can be mined, and locks nothing for longer than MAX_WINDOW.
    assert claim_window >= MIN_WINDOW and claim_window <= MAX_WINDOW, "market: claim window out of range"
    # INVARIANT: likewise for the commit window.
    assert commit_window >= MIN_WINDOW and commit_window <= MAX_WINDOW, "market: commit window out of range"
    # INVARIANT: likewise for the challenge window.
    assert challenge_window >= MIN_WINDOW and challenge_window <= MAX_WINDOW, "market: challenge window out of range"
    # INVARIANT: the input's root is computable in one transaction.
    assert rows >= 1 and rows <= MAX_ROWS, "market: rows out of range"

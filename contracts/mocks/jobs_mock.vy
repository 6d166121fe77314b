#pragma version ~=0.4.3
"""
@title Jobs and terms modules harness
@custom:contract-name jobs_mock
@notice Exposes `contracts/modules/jobs.vy` (with `generation.vy`) and `contracts/modules/terms.vy`
        for their own tests: the jobs' externals and the terms' getters as
        the market exports them, with stakes and escrow beside them, and
        the internals the market's games use (`_check_job`,
        `_take_held`, `terms._check_post`) as externals, plus setters for
        the game-side fields of a job (`open_games`, `held`) that only
        the market's `challenge` and `settle` write. ETH moved by them
        stays in the five totals, so the balance always equals
        `obligations()`.
"""


from ..modules import terms
from ..modules import stakes
from ..modules import escrow
from ..modules import jobs
from ..modules import generation

initializes: terms
initializes: stakes
initializes: escrow[stakes := stakes]
initializes: jobs[terms := terms, stakes := stakes, escrow := escrow]
initializes: generation[terms := terms, jobs := jobs]

exports: (
    jobs.post, jobs.cancel, jobs.claim, jobs.expire, jobs.commit, jobs.finalize, jobs.job, jobs.job_count,
    jobs.REGISTRY,
    generation.post_generation, generation.commit_generation, generation.MAX_CONTEXT,
    jobs.OPEN, jobs.CLAIMED, jobs.COMMITTED, jobs.FINALIZED, jobs.REJECTED, jobs.CANCELLED,
    terms.WINDOW_LIMIT, terms.MAX_ROWS, terms.MAX_REWARD_SHARE_BPS, terms.MAX_PAID_WINNERS,
    terms.CHALLENGER_BOND, terms.MIN_SOLVER_BOND, terms.REWARD_SHARE_BPS, terms.DILUTION_FEE_BPS,
    terms.MIN_WINDOW, terms.MAX_WINDOW,
    stakes.deposit, stakes.stake, stakes.locked, stakes.total_stake,
    escrow.withdraw, escrow.credit, escrow.obligations, escrow.total_escrow, escrow.total_credit,
)


@deploy
def __init__(
    registry: address,
    challenger_bond: uint256,
    min_solver_bond: uint256,
    reward_share_bps: uint256,
    dilution_fee_bps: uint256,
    min_window: uint256,
    max_window: uint256,
):
    """
    @dev The market's constructor less the game: the registry, then the
         terms (the sink is fixed: burned).
    """
    jobs.__init__(registry)
    escrow.__init__(0x000000000000000000000000000000000000dEaD)
    terms.__init__(challenger_bond, min_solver_bond, reward_share_bps, dilution_fee_bps, min_window, max_window)


@view
@external
def check_post(
    fee: uint256,
    solver_bond: uint256,
    claim_window: uint256,
    commit_window: uint256,
    challenge_window: uint256,
    rows: uint256,
) -> bool:
    """
    @notice `terms._check_post`; true unless it reverts.
    """
    terms._check_post(fee, solver_bond, claim_window, commit_window, challenge_window, rows)
    return True


@view
@external
def check_job(job_id: uint256) -> bool:
    """
    @notice `jobs._check_job`; true unless it reverts.
    @param job_id The job id.
    """
    jobs._check_job(job_id)
    return True


@external
def set_open_games(job_id: uint256, open_games: uint256):
    """
    @notice Sets a job's open game count, as `challenge` and `settle` do.
    @param job_id The job.
    @param open_games The count.
    """
    jobs._jobs[job_id].open_games = open_games


@payable
@external
def hold(job_id: uint256):
    """
    @notice Adds `msg.value` to a job's held slashed bond, in escrow, as
            `settle` does when it rejects a job.
    @param job_id The job.
    """
    jobs._jobs[job_id].held += msg.value
    escrow.total_escrow += msg.value


@external
def take_held(job_id: uint256, amount: uint256) -> uint256:
    """
    @notice `jobs._take_held`, what it takes credited to the caller (as
            `settle` credits a winner's refund).
    @param job_id The job.
    @param amount The wei wanted.
    @return uint256 The wei taken.
    """
    taken: uint256 = jobs._take_held(job_id, amount)
    escrow._add_credit(msg.sender, taken)
    return taken

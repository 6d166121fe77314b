#pragma version ~=0.4.3
"""
@title Job Market
@custom:contract-name JobMarket
@notice Jobs, escrow, solver stakes, challenger bonds, credits and
        payouts of Referee (protocol.md section 10.2). A requester posts
        a model id and an input with a fee (or, for a generation job, a
        prompt and a token count: protocol.md 5.15); a solver claims the job by
        locking a bond from its stake and commits the output and the
        trace root `S_N`; during the challenge window anyone may
        challenge, each challenge opening its own game in the dispute
        game contract; without a lost game the job is finalized and the
        solver is paid.
@dev Holds all of Referee's ETH. Every wei is one of five kinds, each
     kept in a storage total by every function:
       - `total_stake`: solver stakes (`stake(a)`, a locked part included),
       - `total_escrow`: fees of jobs that are OPEN, CLAIMED or COMMITTED,
         and the slashed bond of a REJECTED job (`held`: its winners' gas
         refunds and bonus pool) until its last game is closed,
       - `total_bonds`: challenger bonds of games that are still open,
       - `total_credit`: credits waiting for `withdraw()`,
       - `sink_pending`: slashed solver bond waiting for `release_to_sink()`,
     and `self.balance == obligations()`, their sum, always (the tests
     check it after every transaction they send), except for ETH forced
     in without a call (SELFDESTRUCT, a block reward), which no one is
     owed and `release_to_sink()` sweeps to the sink.

     Payments are pull payments: settlement only credits; ETH leaves in
     `withdraw`, `withdraw_stake` and `release_to_sink`, which are
     `@nonreentrant` and update state before sending. Every
     state-changing external is `@nonreentrant` (Vyper 0.4 has one global
     lock), so no callback from a payee can reach any function that
     changes state. `challenge` and `reclaim` call `open` and `close` on
     the game while holding the lock, which is fine because the game
     calls no contract.

     The state is kept in four stateful modules: the deployment's terms
     in `modules/terms.vy`, the jobs and their life outside the games
     (`post` to `finalize`) in `modules/jobs.vy` (generation jobs' `post`
     and `commit` in `modules/generation.vy`), stakes and their locks
     in `modules/stakes.vy`, the four other totals, credits and the pull
     payments in `modules/escrow.vy`; this contract holds the challenges
     and the rule that shares a slashed bond, and moves wei between the
     modules' totals. Events are declared in
     `interfaces/IJobMarket.vyi`.

     The market trusts the game contract `GAME` (fixed at deployment) to
     decide its games; `settle` reads a finished game's winner with
     `result` (a staticcall) and settles only games this market opened,
     each once.
"""


# ---------------------------------------------------------------------------
# INTERFACES
# ---------------------------------------------------------------------------


# @dev `open`, `close` and `result` of the market's own games.
from .interfaces import IDisputeGame


# @dev The model entries: shapes, op count, ops root and state depth.
from .interfaces import IModelRegistry


# @dev The market's events (protocol.md 10.8), shared with its modules.
from .interfaces import IJobMarket


# ---------------------------------------------------------------------------
# MODULES
# ---------------------------------------------------------------------------


# @dev Stateless: the price and allowances of the winners' gas refunds.
from .modules import gas_meter


# @dev Stateful: solver stakes and the bonds locked from them.
from .modules import stakes
initializes: stakes
exports: (stakes.deposit, stakes.withdraw_stake, stakes.stake, stakes.locked, stakes.total_stake)


# @dev Stateful: escrowed fees and held bonds, challenger bonds, credits,
# the sink's share, and the pull payments.
from .modules import escrow
initializes: escrow[stakes := stakes]
exports: (
    escrow.withdraw, escrow.release_to_sink, escrow.credit, escrow.obligations, escrow.SINK,
    escrow.total_escrow, escrow.total_bonds, escrow.total_credit, escrow.sink_pending,
)


# @dev Stateful (immutables): the deployment's bonds, bonus parameters
# and window limits, and the bounds on a job's terms.
from .modules import terms
initializes: terms
exports: (
    terms.WINDOW_LIMIT, terms.MAX_ROWS, terms.MAX_REWARD_SHARE_BPS, terms.MAX_PAID_WINNERS,
    terms.CHALLENGER_BOND, terms.MIN_SOLVER_BOND, terms.REWARD_SHARE_BPS, terms.DILUTION_FEE_BPS,
    terms.MIN_WINDOW, terms.MAX_WINDOW,
)


# @dev Stateful: the jobs, from `post` to `finalize` (the games' part of
# their life, `challenge` to `reclaim`, is here).
from .modules import jobs
initializes: jobs[terms := terms, stakes := stakes, escrow := escrow]
exports: (
    jobs.post, jobs.cancel, jobs.claim, jobs.expire, jobs.commit, jobs.finalize, jobs.job, jobs.job_count,
    jobs.REGISTRY,
    jobs.OPEN, jobs.CLAIMED, jobs.COMMITTED, jobs.FINALIZED, jobs.REJECTED, jobs.CANCELLED,
)


# @dev Stateful through `jobs`: generation jobs (protocol.md 5.15), posted
# with a prompt and committed with their tokens.
from .modules import generation
initializes: generation[terms := terms, jobs := jobs]
exports: (generation.post_generation, generation.commit_generation, generation.MAX_CONTEXT)


# ---------------------------------------------------------------------------
# CONSTANTS
# ---------------------------------------------------------------------------

# @dev What `IDisputeGame.result` returns for a game with a winner.
RESULT_SOLVER_WON: constant(uint256) = 1
RESULT_CHALLENGER_WON: constant(uint256) = 2


# @dev Gas `challenge` pays after its last `msg.gas` read: the new
# challenge record (five fresh slots) and the log; and that `settle` or
# `reclaim` pays after theirs (credits, the held total, the release
# log, the return). Measured on anvil; tests/test_accomplice.py checks
# the refunds against receipts.
CHALLENGE_TAIL_GAS: constant(uint256) = 112000
SETTLE_TAIL_GAS: constant(uint256) = 8000


# ---------------------------------------------------------------------------
# STRUCTS
# ---------------------------------------------------------------------------


# `challenge` until the game is settled (`settle`) or closed
# (`reclaim`); while open, `bond` is part of `total_bonds`. `gas` is the
# wei of gas the `challenge` transaction spent (`gas_meter`), refunded
# with the game's own meter if the challenger wins.
struct Challenge:
    job_id: uint256
    challenger: address
    bond: uint256
    open: bool
    gas: uint256


# ---------------------------------------------------------------------------
# STORAGE
# ---------------------------------------------------------------------------


# @dev The dispute game contract: opens, closes and decides the games.
GAME: public(immutable(address))


# @dev Game id -> the challenge that opened it (job id 0: not ours).
_challenges: HashMap[uint256, Challenge]


# @dev Job id -> the first MAX_PAID_WINNERS games its challengers won, in
# settle order (index 0 up): the only ones a bonus can be paid to.
_winner_games: HashMap[uint256, HashMap[uint256, uint256]]


# ---------------------------------------------------------------------------
# CONSTRUCTOR
# ---------------------------------------------------------------------------


@deploy
def __init__(
    registry: address,
    game: address,
    challenger_bond: uint256,
    min_solver_bond: uint256,
    reward_share_bps: uint256,
    dilution_fee_bps: uint256,
    sink: address,
    min_window: uint256,
    max_window: uint256,
):
    """
    @dev Fixes the deployment parameters for ever.
    @param registry The model registry; nonzero.
    @param game The dispute game contract; nonzero.
    @param challenger_bond The exact bond of a challenge; nonzero.
    @param min_solver_bond The smallest solver bond a job may require;
           nonzero.
    @param reward_share_bps The bonus pool of a slashed solver bond, in
           basis points, at most MAX_REWARD_SHARE_BPS.
    @param dilution_fee_bps The fee each winning game pays out of its
           share of the pool, in basis points: `2 * fee < share <
           6 * fee`, or both zero (no bonus at all).
    @param sink The receiver of the rest of a slashed bond; nonzero (a
           burn address such as 0x...dEaD, never the zero address, which
           a payment to would only look like a burn).
    @param min_window The shortest window a job may ask for, in seconds;
           at least 1.
    @param max_window The longest window a job may ask for, in seconds;
           in [min_window, terms.WINDOW_LIMIT].
    """
    jobs.__init__(registry)
    # INVARIANT: games are opened on, and reported by, a real contract.
    assert game != empty(address), "market: zero game"
    # INVARIANT: a slashed bond always has somewhere to go.
    escrow.__init__(sink)
    terms.__init__(challenger_bond, min_solver_bond, reward_share_bps, dilution_fee_bps, min_window, max_window)
    GAME = game


# ---------------------------------------------------------------------------
# GAMES
# ---------------------------------------------------------------------------


@payable
@external
@nonreentrant
def challenge(job_id: uint256) -> uint256:
    """
    @notice Challenges a committed result with a bond of exactly
            `CHALLENGER_BOND`; opens a dispute game over it.
    @dev Any number of challenges may run in parallel against one
         result, each its own game. The game gets `S_0` computed here at
         `post` (a generation job's at `commit_generation`, from the
         prompt and the committed tokens) and the committed `S_N`, so
         neither party can change what is disputed. The transaction's gas is metered
         (`gas_meter`) and refunded if the challenger wins.
    @param job_id The job.
    @return uint256 The id of the game opened.
    """
    start: uint256 = msg.gas
    jobs._check_job(job_id)
    job: jobs.Job = jobs._jobs[job_id]
    # INVARIANT: only a committed result can be disputed.
    assert job.status == jobs.COMMITTED, "market: job is not committed"
    # INVARIANT: after the window the result is final.
    assert block.timestamp <= job.challenge_deadline, "market: challenge deadline passed"
    # INVARIANT: every challenge puts the same bond at risk.
    assert msg.value == terms.CHALLENGER_BOND, "market: wrong challenger bond"
    # INVARIANT: a solver cannot play both sides of one game.
    assert msg.sender != job.solver, "market: solver cannot challenge"

    model: IModelRegistry.Model = staticcall IModelRegistry(jobs.REGISTRY).model(job.model_id)
    game_id: uint256 = extcall IDisputeGame(GAME).open(
        job.solver, msg.sender, model.ops_root, model.n_ops, job.s_0, job.trace_root
    )
    # INVARIANT: one challenge per game id (the game never reuses ids).
    assert self._challenges[game_id].job_id == 0, "market: game id reused"

    jobs._jobs[job_id].open_games = job.open_games + 1
    escrow.total_bonds += msg.value
    # measured after the totals, whose first write costs more than later
    # ones; what follows (five fresh slots and the log) is constant
    gas: uint256 = (start - msg.gas + CHALLENGE_TAIL_GAS + gas_meter.TX_GAS + gas_meter.calldata_gas(4 + 32)) \
        * gas_meter.price()
    self._challenges[game_id] = Challenge(job_id=job_id, challenger=msg.sender, bond=msg.value, open=True, gas=gas)
    log IJobMarket.JobChallenged(job_id=job_id, game_id=game_id, challenger=msg.sender, bond=msg.value)
    return game_id


@external
@nonreentrant
def settle(game_id: uint256):
    """
    @notice Settles a game the market opened once it has a winner;
            anyone may call it (the winner has every reason to).
    @dev Solver won: the challenger's bond is credited to the solver.
         Challenger won: if the job is still COMMITTED it is REJECTED, the
         fee is credited back to the requester and the solver's whole
         bond is slashed into the job's `held`; then the challenger is
         credited its bond and, out of `held`, the gas it spent
         (`refund_of`). Every winning game is counted; when the job's
         last game is closed (`_release`) the bonus pool is shared
         equally among them less the dilution fee, and the rest of
         `held` goes to the sink. A job with an open game is always
         COMMITTED or REJECTED (`finalize` needs no open game), so
         there is no other case.
    @param game_id The game that ended.
    """
    start: uint256 = msg.gas
    c: Challenge = self._challenges[game_id]
    # INVARIANT: only games this market opened are settled here.
    assert c.job_id != 0, "market: unknown game"
    # INVARIANT: each game is settled once.
    assert c.open, "market: game already settled"
    result: uint256 = staticcall IDisputeGame(GAME).result(game_id)
    # INVARIANT: only a game with a winner is settled (a closed one was
    # settled by `reclaim` when it was closed).
    assert result == RESULT_SOLVER_WON or result == RESULT_CHALLENGER_WON, "market: game not over"
    solver_won: bool = result == RESULT_SOLVER_WON

    job: jobs.Job = jobs._jobs[c.job_id]
    self._challenges[game_id].open = False
    jobs._jobs[c.job_id].open_games = job.open_games - 1
    escrow.total_bonds -= c.bond

    if solver_won:
        # A losing challenger's bond covers the solver's gas for the game.
        escrow._add_credit(job.solver, c.bond)
        log IJobMarket.GameSettled(game_id=game_id, job_id=c.job_id, solver_won=True, to_solver=c.bond, to_challenger=0)
        self._release(c.job_id, game_id, start, False)
        return

    if job.status == jobs.COMMITTED:
        jobs._jobs[c.job_id].status = jobs.REJECTED
        jobs._jobs[c.job_id].best_game = game_id
        jobs._jobs[c.job_id].held = job.solver_bond
        # the fee leaves escrow and the slashed bond enters it until the
        # job's last game is closed
        escrow.total_escrow = escrow.total_escrow - job.fee + job.solver_bond
        escrow._add_credit(job.requester, job.fee)
        stakes._slash(job.solver, job.solver_bond)
        log IJobMarket.JobRejected(
            job_id=c.job_id, game_id=game_id, challenger=c.challenger, refund=job.fee, held=job.solver_bond
        )
    refund: uint256 = jobs._take_held(c.job_id, c.gas + staticcall IDisputeGame(GAME).challenger_gas(game_id))
    escrow._add_credit(c.challenger, c.bond + refund)
    winners: uint256 = jobs._jobs[c.job_id].winners
    if winners < terms.MAX_PAID_WINNERS:
        self._winner_games[c.job_id][winners] = game_id
    jobs._jobs[c.job_id].winners = winners + 1
    log IJobMarket.GameSettled(game_id=game_id, job_id=c.job_id, solver_won=False, to_solver=0, to_challenger=c.bond + refund)
    self._release(c.job_id, game_id, start, msg.sender == c.challenger)


@external
@nonreentrant
def reclaim(game_id: uint256):
    """
    @notice Lets a challenger close its own still-open game of a REJECTED
            job and be credited its bond and the gas it spent.
    @dev Once the result is rejected, the game can only share the bonus
         pool, which needs it played to its end (both clocks bound that);
         a challenger may prefer its bond and refund now. Only the
         challenger may do it: anyone else could strike an honest winner
         from the pool and leave it to an accomplice. A reclaimed game is
         no winner: it pays no fee and shares no bonus.
    @param game_id The game to close.
    """
    start: uint256 = msg.gas
    c: Challenge = self._challenges[game_id]
    # INVARIANT: only games this market opened are closed here.
    assert c.job_id != 0, "market: unknown game"
    # INVARIANT: each game is settled once.
    assert c.open, "market: game already settled"
    # INVARIANT: a game of a live result must be played to its end.
    assert jobs._jobs[c.job_id].status == jobs.REJECTED, "market: job is not rejected"
    # INVARIANT: a game that already has a winner is settled by its result.
    assert staticcall IDisputeGame(GAME).result(game_id) == 0, "market: game is over, settle it"
    # INVARIANT: no one but its challenger takes a game out of the pool.
    assert msg.sender == c.challenger, "market: caller is not the challenger"

    self._challenges[game_id].open = False
    jobs._jobs[c.job_id].open_games -= 1
    escrow.total_bonds -= c.bond
    refund: uint256 = jobs._take_held(c.job_id, c.gas + staticcall IDisputeGame(GAME).challenger_gas(game_id))
    escrow._add_credit(c.challenger, c.bond + refund)
    log IJobMarket.ChallengeReclaimed(game_id=game_id, job_id=c.job_id, challenger=c.challenger, bond=c.bond, refund=refund)
    # The game is trusted and never calls back; it is closed before the
    # release so that the caller's refund counts its gas.
    extcall IDisputeGame(GAME).close(game_id)
    self._release(c.job_id, game_id, start, True)


# ---------------------------------------------------------------------------
# VIEWS
# ---------------------------------------------------------------------------


@view
@external
def challenge_of(game_id: uint256) -> Challenge:
    """
    @notice The challenge that opened a game.
    @dev Named `challenge_of`, not `challenge`: Vyper has no overloading
         and `challenge(job_id)` is the payable function.
    @param game_id A game the market opened.
    @return Challenge The job, challenger, bond and whether it is open.
    """
    c: Challenge = self._challenges[game_id]
    # INVARIANT: only games this market opened have records.
    assert c.job_id != 0, "market: unknown game"
    return c


@view
@external
def refund_of(game_id: uint256) -> uint256:
    """
    @notice The gas refund a game's challenger is owed so far if it wins
            (or reclaims its game): its `challenge` transaction's and
            its moves' metered gas, in wei (`gas_meter`); a winner's own
            `settle` is metered on top.
    @param game_id A game the market opened.
    @return uint256 The refund in wei.
    """
    c: Challenge = self._challenges[game_id]
    # INVARIANT: only games this market opened have records.
    assert c.job_id != 0, "market: unknown game"
    return c.gas + staticcall IDisputeGame(GAME).challenger_gas(game_id)


# ---------------------------------------------------------------------------
# INTERNAL FUNCTIONS
# ---------------------------------------------------------------------------


@internal
def _release(job_id: uint256, game_id: uint256, start: uint256, refund_caller: bool):
    """
    @dev Ends a settle or reclaim of a REJECTED job's game (a no-op for
         a COMMITTED one). With `refund_caller` (the caller is the
         challenger of the game it settled as won, or reclaimed), the
         transaction's gas since `start` is credited to it out of
         `held`. Once the job has no open game: each winning game gets
         `pool // winners - fee` if positive (the pool is the bonus share
         of the bond, or what refunds left of it), and the rest of
         `held` goes to the sink.
    @param job_id The job whose game was just settled or reclaimed.
    @param game_id That game.
    @param start The transaction's `msg.gas` on entry.
    @param refund_caller Whether the caller's gas is refunded.
    """
    job: jobs.Job = jobs._jobs[job_id]
    if job.status != jobs.REJECTED:
        return
    held: uint256 = job.held
    reward: uint256 = 0
    if job.open_games == 0:
        pool: uint256 = min(job.solver_bond * terms.REWARD_SHARE_BPS // terms.BPS, held)
        fee: uint256 = job.solver_bond * terms.DILUTION_FEE_BPS // terms.BPS
        # a REJECTED job has at least the winner that rejected it
        share: uint256 = pool // job.winners
        if share > fee:
            # INVARIANT: a bonus is paid only to the winners recorded
            # (share > fee implies winners <= terms.MAX_PAID_WINNERS).
            assert job.winners <= terms.MAX_PAID_WINNERS, "market: too many paid winners"
            reward = share - fee
            for i: uint256 in range(terms.MAX_PAID_WINNERS):
                if i == job.winners:
                    break
                won: uint256 = self._winner_games[job_id][i]
                winner: address = self._challenges[won].challenger
                escrow._add_credit(winner, reward)
                log IJobMarket.RewardPaid(job_id=job_id, game_id=won, challenger=winner, reward=reward, fee=fee)
            held -= reward * job.winners
    if refund_caller:
        wanted: uint256 = (start - msg.gas + SETTLE_TAIL_GAS + gas_meter.TX_GAS + gas_meter.calldata_gas(4 + 32)) \
            * gas_meter.price()
        refund: uint256 = min(wanted, held)
        held -= refund
        escrow._add_credit(msg.sender, refund)
        log IJobMarket.SettleGasRefunded(game_id=game_id, challenger=msg.sender, refund=refund)
    if job.open_games == 0:
        escrow.sink_pending += held
        log IJobMarket.RewardsReleased(job_id=job_id, winners=job.winners, reward=reward, to_sink=held)
        held = 0
    escrow.total_escrow -= job.held - held
    jobs._jobs[job_id].held = held

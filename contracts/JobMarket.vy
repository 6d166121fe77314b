#pragma version ~=0.4.3
"""
@title Job Market
@custom:contract-name JobMarket
@notice Jobs, escrow, solver stakes, challenger bonds, credits and
        payouts of Referee (protocol.md section 10.2). A requester posts
        a model id and an input with a fee; a solver claims the job by
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

     The money is kept in two stateful modules: stakes and their locks
     in `modules/stakes.vy`, the four other totals, credits and the pull
     payments in `modules/escrow.vy`; this contract holds the jobs, the
     challenges and the rule that shares a slashed bond, and moves wei
     between the modules' totals. Events are declared in
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


# @dev Stateless: proofs against the trace root, hashes for `S_0`.
from .modules import merkle


# @dev Stateless: tensor roots of the posted input and committed output.
from .modules import tensor


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

# @dev What `IDisputeGame.result` returns for a game with a winner.
RESULT_SOLVER_WON: constant(uint256) = 1
RESULT_CHALLENGER_WON: constant(uint256) = 2


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


# @dev Gas `challenge` pays after its last `msg.gas` read: the new
# challenge record (five fresh slots) and the log; and that `settle` or
# `reclaim` pays after theirs (credits, the held total, the release
# log, the return). Measured on anvil; tests/test_accomplice.py checks
# the refunds against receipts.
CHALLENGE_TAIL_GAS: constant(uint256) = 112000
SETTLE_TAIL_GAS: constant(uint256) = 8000


# @dev Job status: posted, escrowed, waiting for a solver to claim it.
# (0 is "no such job": ids start at 1.)
OPEN: public(constant(uint256)) = 1


# @dev Job status: a solver locked its bond and must commit by the
# commit deadline.
CLAIMED: public(constant(uint256)) = 2


# @dev Job status: the output and trace root are committed; challenges
# are open until the challenge deadline.
COMMITTED: public(constant(uint256)) = 3


# @dev Job status (final): paid to the solver.
FINALIZED: public(constant(uint256)) = 4


# @dev Job status (final): the solver lost a game; the fee was refunded.
REJECTED: public(constant(uint256)) = 5


# @dev Job status (final): the requester took the OPEN job back.
CANCELLED: public(constant(uint256)) = 6


# ---------------------------------------------------------------------------
# STRUCTS
# ---------------------------------------------------------------------------


# @dev One job. The windows are kept so that every later deadline is
# `now + window` at the step that starts it; deadlines and the solver are
# zero until their step happens.
struct Job:
    requester: address
    model_id: uint256
    rows: uint256
    input_root: bytes32
    s_0: bytes32
    fee: uint256
    solver_bond: uint256
    claim_window: uint256
    commit_window: uint256
    challenge_window: uint256
    status: uint256
    claim_deadline: uint256
    solver: address
    commit_deadline: uint256
    trace_root: bytes32
    output_root: bytes32
    challenge_deadline: uint256
    open_games: uint256
    # after a lost game: the game whose win rejected the job, how many
    # games the challenger side has won, and the slashed bond still held
    # in escrow (refunds come out of it as winners settle; the bonus pool
    # and the rest to the sink when the last game is closed)
    best_game: uint256
    winners: uint256
    held: uint256


# @dev One challenge, keyed by the id of its game. `open` is true from
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


# @dev The model registry (protocol.md 10.1).
REGISTRY: public(immutable(address))


# @dev The dispute game contract: opens, closes and decides the games.
GAME: public(immutable(address))


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


# @dev Job id -> job; ids run from 1 to `_job_count`.
_jobs: HashMap[uint256, Job]


# @dev The number of jobs posted, which is also the last id.
_job_count: uint256


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
    @param registry The model registry.
    @param game The dispute game contract.
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
           in [min_window, WINDOW_LIMIT].
    """
    # INVARIANT: the market reads its models from a real registry.
    assert registry != empty(address), "market: zero registry"
    # INVARIANT: games are opened on, and reported by, a real contract.
    assert game != empty(address), "market: zero game"
    # INVARIANT: a slashed bond always has somewhere to go.
    escrow.__init__(sink)
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

    REGISTRY = registry
    GAME = game
    CHALLENGER_BOND = challenger_bond
    MIN_SOLVER_BOND = min_solver_bond
    REWARD_SHARE_BPS = reward_share_bps
    DILUTION_FEE_BPS = dilution_fee_bps
    MIN_WINDOW = min_window
    MAX_WINDOW = max_window


# ---------------------------------------------------------------------------
# JOB LIFECYCLE
# ---------------------------------------------------------------------------


@payable
@external
@nonreentrant
def post(
    model_id: uint256,
    rows: uint256,
    input: Bytes[tensor.MAX_TENSOR_BYTES],
    solver_bond: uint256,
    claim_window: uint256,
    commit_window: uint256,
    challenge_window: uint256,
) -> uint256:
    """
    @notice Posts a job: runs model `model_id` on `input`, for a fee of
            `msg.value`, escrowed until the job ends.
    @dev Computes the input's tensor root `T_0` (section 3) and the
         initial state root `S_0` (section 6): slot 0 holds `T_0` and
         every other slot is empty, so `S_0` is `T_0` folded with the
         zero hashes `Z[0] ... Z[D-1]` up the `D` levels of the state
         tree.
    @param model_id A registered model (the registry reverts with
           "registry: unknown model" otherwise).
    @param rows The input's row count, in [1, MAX_ROWS].
    @param input The packed int8 input, `rows * input_cols` bytes.
    @param solver_bond The bond a solver must lock to claim the job; at
           least `MIN_SOLVER_BOND`.
    @param claim_window Seconds a solver has to claim, from now (and
           again after an expired claim); in [MIN_WINDOW, MAX_WINDOW].
    @param commit_window Seconds a solver has to commit, from its claim;
           in [MIN_WINDOW, MAX_WINDOW].
    @param challenge_window Seconds to challenge, from the commit; in
           [MIN_WINDOW, MAX_WINDOW].
    @return uint256 The new job id (ids start at 1).
    """
    # INVARIANT: a solver is paid something for its work.
    assert msg.value > 0, "market: zero fee"
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

    model: IModelRegistry.Model = staticcall IModelRegistry(REGISTRY).model(model_id)
    # INVARIANT: the input is exactly the packed `[rows, input_cols]`
    # tensor; checked here so the reason names the market, before the
    # tensor module would refuse it.
    assert len(input) == rows * model.input_cols, "market: input does not match shape"
    # INVARIANT: the job's output fits what `commit` accepts, so an honest
    # solver can always commit (a job it could not would cost it its bond).
    assert rows * model.output_cols <= tensor.MAX_TENSOR_BYTES, "market: output too large to commit"

    input_root: bytes32 = tensor.tensor_root(input, rows, model.input_cols)
    s_0: bytes32 = self._initial_state(input_root, model.state_depth)

    job_id: uint256 = self._job_count + 1
    self._job_count = job_id
    claim_deadline: uint256 = block.timestamp + claim_window
    self._jobs[job_id] = Job(
        requester=msg.sender,
        model_id=model_id,
        rows=rows,
        input_root=input_root,
        s_0=s_0,
        fee=msg.value,
        solver_bond=solver_bond,
        claim_window=claim_window,
        commit_window=commit_window,
        challenge_window=challenge_window,
        status=OPEN,
        claim_deadline=claim_deadline,
        solver=empty(address),
        commit_deadline=0,
        trace_root=empty(bytes32),
        output_root=empty(bytes32),
        challenge_deadline=0,
        open_games=0,
        best_game=0,
        winners=0,
        held=0,
    )
    escrow.total_escrow += msg.value
    log IJobMarket.JobPosted(
        job_id=job_id,
        requester=msg.sender,
        model_id=model_id,
        rows=rows,
        input_root=input_root,
        s_0=s_0,
        fee=msg.value,
        solver_bond=solver_bond,
        claim_window=claim_window,
        commit_window=commit_window,
        challenge_window=challenge_window,
        claim_deadline=claim_deadline,
        input=input,
    )
    return job_id


@external
@nonreentrant
def cancel(job_id: uint256):
    """
    @notice Takes an OPEN job back; its fee is credited to the requester.
    @dev Only OPEN: once claimed, the solver's work is protected until
         its commit deadline (after which `expire` reopens the job).
    @param job_id The job.
    """
    self._check_job(job_id)
    job: Job = self._jobs[job_id]
    # INVARIANT: only the requester decides to withdraw its own offer.
    assert msg.sender == job.requester, "market: caller is not the requester"
    # INVARIANT: a claimed or settled job cannot be taken back.
    assert job.status == OPEN, "market: job is not open"

    self._jobs[job_id].status = CANCELLED
    escrow.total_escrow -= job.fee
    escrow._add_credit(job.requester, job.fee)
    log IJobMarket.JobCancelled(job_id=job_id, requester=job.requester, refund=job.fee)


@external
@nonreentrant
def claim(job_id: uint256):
    """
    @notice Claims an OPEN job: locks `solver_bond` of the caller's stake
            and starts the commit window.
    @param job_id The job.
    """
    self._check_job(job_id)
    job: Job = self._jobs[job_id]
    # INVARIANT: one solver at a time, and only for a live offer.
    assert job.status == OPEN, "market: job is not open"
    # INVARIANT: the requester's offer lapses at its claim deadline.
    assert block.timestamp <= job.claim_deadline, "market: claim deadline passed"
    stakes._lock(msg.sender, job.solver_bond)
    commit_deadline: uint256 = block.timestamp + job.commit_window
    self._jobs[job_id].status = CLAIMED
    self._jobs[job_id].solver = msg.sender
    self._jobs[job_id].commit_deadline = commit_deadline
    log IJobMarket.JobClaimed(job_id=job_id, solver=msg.sender, bond=job.solver_bond, commit_deadline=commit_deadline)


@external
@nonreentrant
def expire(job_id: uint256):
    """
    @notice Ends a claim that was not committed by its commit deadline:
            the solver's bond is slashed to the requester's credit and
            the job is OPEN again with a fresh claim deadline.
    @dev The requester's fee stays escrowed: the job can still be done
         (or cancelled). The whole bond goes to the requester, who lost
         the time.
    @param job_id The job.
    """
    self._check_job(job_id)
    job: Job = self._jobs[job_id]
    # INVARIANT: only a claim can expire.
    assert job.status == CLAIMED, "market: job is not claimed"
    # INVARIANT: the solver keeps its whole commit window.
    assert block.timestamp > job.commit_deadline, "market: commit deadline not passed"

    stakes._slash(job.solver, job.solver_bond)
    escrow._add_credit(job.requester, job.solver_bond)
    claim_deadline: uint256 = block.timestamp + job.claim_window
    self._jobs[job_id].status = OPEN
    self._jobs[job_id].claim_deadline = claim_deadline
    self._jobs[job_id].solver = empty(address)
    self._jobs[job_id].commit_deadline = 0
    log IJobMarket.JobExpired(job_id=job_id, solver=job.solver, slashed=job.solver_bond, claim_deadline=claim_deadline)


@external
@nonreentrant
def commit(
    job_id: uint256,
    output: Bytes[tensor.MAX_TENSOR_BYTES],
    trace_root: bytes32,
    output_proof: DynArray[bytes32, merkle.MAX_PROOF],
):
    """
    @notice Commits the job's result: the output bytes and the trace
            root `S_N`, and starts the challenge window.
    @dev The output's tensor root `T_N` must be slot `N` of `trace_root`
         (section 6, "the output proof at commit"), so the bytes in the
         `JobCommitted` log are the output any game is played over.
    @param job_id The job.
    @param output The packed int8 output, `rows * output_cols` bytes.
    @param trace_root The final state root `S_N`.
    @param output_proof The `D` siblings of slot `N` in `trace_root`.
    """
    self._check_job(job_id)
    job: Job = self._jobs[job_id]
    # INVARIANT: only a claimed job takes a result.
    assert job.status == CLAIMED, "market: job is not claimed"
    # INVARIANT: only the solver whose bond is locked may commit.
    assert msg.sender == job.solver, "market: caller is not the solver"
    # INVARIANT: after the deadline the claim can only expire.
    assert block.timestamp <= job.commit_deadline, "market: commit deadline passed"

    model: IModelRegistry.Model = staticcall IModelRegistry(REGISTRY).model(job.model_id)
    # INVARIANT: the output is exactly the packed `[rows, output_cols]`
    # tensor; checked here so the reason names the market.
    assert len(output) == job.rows * model.output_cols, "market: output does not match shape"
    output_root: bytes32 = tensor.tensor_root(output, job.rows, model.output_cols)
    # INVARIANT: the posted output is the one the trace root commits to.
    assert merkle.verify(output_root, model.n_ops, output_proof, model.state_depth, trace_root), "market: bad output proof"

    challenge_deadline: uint256 = block.timestamp + job.challenge_window
    self._jobs[job_id].status = COMMITTED
    self._jobs[job_id].trace_root = trace_root
    self._jobs[job_id].output_root = output_root
    self._jobs[job_id].challenge_deadline = challenge_deadline
    log IJobMarket.JobCommitted(
        job_id=job_id,
        solver=msg.sender,
        trace_root=trace_root,
        output_root=output_root,
        challenge_deadline=challenge_deadline,
        output=output,
    )


@payable
@external
@nonreentrant
def challenge(job_id: uint256) -> uint256:
    """
    @notice Challenges a committed result with a bond of exactly
            `CHALLENGER_BOND`; opens a dispute game over it.
    @dev Any number of challenges may run in parallel against one
         result, each its own game. The game gets `S_0` computed here at
         `post` and the committed `S_N`, so neither party can change
         what is disputed. The transaction's gas is metered
         (`gas_meter`) and refunded if the challenger wins.
    @param job_id The job.
    @return uint256 The id of the game opened.
    """
    start: uint256 = msg.gas
    self._check_job(job_id)
    job: Job = self._jobs[job_id]
    # INVARIANT: only a committed result can be disputed.
    assert job.status == COMMITTED, "market: job is not committed"
    # INVARIANT: after the window the result is final.
    assert block.timestamp <= job.challenge_deadline, "market: challenge deadline passed"
    # INVARIANT: every challenge puts the same bond at risk.
    assert msg.value == CHALLENGER_BOND, "market: wrong challenger bond"
    # INVARIANT: a solver cannot play both sides of one game.
    assert msg.sender != job.solver, "market: solver cannot challenge"

    model: IModelRegistry.Model = staticcall IModelRegistry(REGISTRY).model(job.model_id)
    game_id: uint256 = extcall IDisputeGame(GAME).open(
        job.solver, msg.sender, model.ops_root, model.n_ops, job.s_0, job.trace_root
    )
    # INVARIANT: one challenge per game id (the game never reuses ids).
    assert self._challenges[game_id].job_id == 0, "market: game id reused"

    self._jobs[job_id].open_games = job.open_games + 1
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

    job: Job = self._jobs[c.job_id]
    self._challenges[game_id].open = False
    self._jobs[c.job_id].open_games = job.open_games - 1
    escrow.total_bonds -= c.bond

    if solver_won:
        # A losing challenger's bond covers the solver's gas for the game.
        escrow._add_credit(job.solver, c.bond)
        log IJobMarket.GameSettled(game_id=game_id, job_id=c.job_id, solver_won=True, to_solver=c.bond, to_challenger=0)
        self._release(c.job_id, game_id, start, False)
        return

    if job.status == COMMITTED:
        self._jobs[c.job_id].status = REJECTED
        self._jobs[c.job_id].best_game = game_id
        self._jobs[c.job_id].held = job.solver_bond
        # the fee leaves escrow and the slashed bond enters it until the
        # job's last game is closed
        escrow.total_escrow = escrow.total_escrow - job.fee + job.solver_bond
        escrow._add_credit(job.requester, job.fee)
        stakes._slash(job.solver, job.solver_bond)
        log IJobMarket.JobRejected(
            job_id=c.job_id, game_id=game_id, challenger=c.challenger, refund=job.fee, held=job.solver_bond
        )
    refund: uint256 = self._take_held(c.job_id, c.gas + staticcall IDisputeGame(GAME).challenger_gas(game_id))
    escrow._add_credit(c.challenger, c.bond + refund)
    winners: uint256 = self._jobs[c.job_id].winners
    if winners < MAX_PAID_WINNERS:
        self._winner_games[c.job_id][winners] = game_id
    self._jobs[c.job_id].winners = winners + 1
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
    assert self._jobs[c.job_id].status == REJECTED, "market: job is not rejected"
    # INVARIANT: a game that already has a winner is settled by its result.
    assert staticcall IDisputeGame(GAME).result(game_id) == 0, "market: game is over, settle it"
    # INVARIANT: no one but its challenger takes a game out of the pool.
    assert msg.sender == c.challenger, "market: caller is not the challenger"

    self._challenges[game_id].open = False
    self._jobs[c.job_id].open_games -= 1
    escrow.total_bonds -= c.bond
    refund: uint256 = self._take_held(c.job_id, c.gas + staticcall IDisputeGame(GAME).challenger_gas(game_id))
    escrow._add_credit(c.challenger, c.bond + refund)
    log IJobMarket.ChallengeReclaimed(game_id=game_id, job_id=c.job_id, challenger=c.challenger, bond=c.bond, refund=refund)
    # The game is trusted and never calls back; it is closed before the
    # release so that the caller's refund counts its gas.
    extcall IDisputeGame(GAME).close(game_id)
    self._release(c.job_id, game_id, start, True)


@external
@nonreentrant
def finalize(job_id: uint256):
    """
    @notice Pays a committed result that survived its challenge window:
            the fee is credited to the solver and its bond unlocked.
    @param job_id The job.
    """
    self._check_job(job_id)
    job: Job = self._jobs[job_id]
    # INVARIANT: only a committed result is paid.
    assert job.status == COMMITTED, "market: job is not committed"
    # INVARIANT: every challenger gets its whole window.
    assert block.timestamp > job.challenge_deadline, "market: challenge window not over"
    # INVARIANT: a running game could still reject the result.
    assert job.open_games == 0, "market: game still open"

    self._jobs[job_id].status = FINALIZED
    escrow.total_escrow -= job.fee
    stakes._unlock(job.solver, job.solver_bond)
    escrow._add_credit(job.solver, job.fee)
    log IJobMarket.JobFinalized(job_id=job_id, solver=job.solver, fee=job.fee)


# ---------------------------------------------------------------------------
# VIEWS
# ---------------------------------------------------------------------------


@view
@external
def job(job_id: uint256) -> Job:
    """
    @notice A job's full record.
    @param job_id The job, in [1, job_count()].
    @return Job The job.
    """
    self._check_job(job_id)
    return self._jobs[job_id]


@view
@external
def job_count() -> uint256:
    """
    @notice The number of jobs posted (also the last id).
    @return uint256 The job count.
    """
    return self._job_count


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


@view
@internal
def _check_job(job_id: uint256):
    """
    @dev Reverts unless `job_id` was issued.
    @param job_id The job id.
    """
    # INVARIANT: only issued ids have jobs.
    assert job_id >= 1 and job_id <= self._job_count, "market: unknown job"


@pure
@internal
def _initial_state(input_root: bytes32, state_depth: uint256) -> bytes32:
    """
    @dev `S_0 = root([T_0], D)` (section 6): slot 0 is the leftmost leaf,
         so at every level the node is a left child whose right sibling
         is an empty subtree `Z[h]`.
    @param input_root The input's tensor root `T_0`.
    @param state_depth The model's state depth `D`.
    @return bytes32 The initial state root `S_0`.
    """
    node: bytes32 = input_root
    zero: bytes32 = empty(bytes32)
    for h: uint256 in range(state_depth, bound=merkle.MAX_PROOF):
        node = merkle.hash_pair(node, zero)
        zero = merkle.hash_pair(zero, zero)
    return node


@internal
def _take_held(job_id: uint256, amount: uint256) -> uint256:
    """
    @dev Takes up to `amount` out of a REJECTED job's held slashed bond
         (refunds come first, ahead of the bonus pool); the caller
         credits it.
    @param job_id The job.
    @param amount The wei wanted.
    @return uint256 The wei taken: `amount`, or all that is left.
    """
    taken: uint256 = min(amount, self._jobs[job_id].held)
    self._jobs[job_id].held -= taken
    escrow.total_escrow -= taken
    return taken


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
    job: Job = self._jobs[job_id]
    if job.status != REJECTED:
        return
    held: uint256 = job.held
    reward: uint256 = 0
    if job.open_games == 0:
        pool: uint256 = min(job.solver_bond * REWARD_SHARE_BPS // BPS, held)
        fee: uint256 = job.solver_bond * DILUTION_FEE_BPS // BPS
        # a REJECTED job has at least the winner that rejected it
        share: uint256 = pool // job.winners
        if share > fee:
            # INVARIANT: a bonus is paid only to the winners recorded
            # (share > fee implies winners <= MAX_PAID_WINNERS).
            assert job.winners <= MAX_PAID_WINNERS, "market: too many paid winners"
            reward = share - fee
            for i: uint256 in range(MAX_PAID_WINNERS):
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
    self._jobs[job_id].held = held

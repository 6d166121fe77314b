#pragma version ~=0.4.3
"""
@title Stakes
@custom:contract-name stakes
@license MIT
@notice Solver stakes and the bonds locked from them (protocol.md 10.2):
        `deposit` and `withdraw_stake`, and the lock, unlock and slash the
        market applies as jobs are claimed, finalized, expired or
        rejected.
@dev Stateful: `JobMarket.vy` initializes it and exports its externals.
     `total_stake` is one of the market's five accounting totals; every
     function here keeps it equal to the sum of all stakes, and no
     solver's lock ever exceeds its stake.
"""


# ---------------------------------------------------------------------------
# INTERFACES
# ---------------------------------------------------------------------------


# @dev The market's events.
from ..interfaces import IJobMarket


# ---------------------------------------------------------------------------
# MODULES
# ---------------------------------------------------------------------------


# @dev Stateless: sends ETH.
from . import payout


# ---------------------------------------------------------------------------
# STORAGE
# ---------------------------------------------------------------------------


# @dev Solver -> stake, the locked part included.
_stake: HashMap[address, uint256]


# @dev Solver -> the part of its stake locked as bonds of CLAIMED and
# COMMITTED jobs.
_locked: HashMap[address, uint256]


# @dev The sum of all stakes.
total_stake: public(uint256)


# ---------------------------------------------------------------------------
# EXTERNAL FUNCTIONS
# ---------------------------------------------------------------------------


@payable
@external
@nonreentrant
def deposit():
    """
    @notice Adds `msg.value` to the caller's stake; claims lock bonds
            from it.
    """
    # INVARIANT: every deposit moves ETH (and emits a meaningful event).
    assert msg.value > 0, "market: zero deposit"
    stake: uint256 = self._stake[msg.sender] + msg.value
    self._stake[msg.sender] = stake
    self.total_stake += msg.value
    log IJobMarket.StakeDeposited(solver=msg.sender, amount=msg.value, stake=stake)


@external
@nonreentrant
def withdraw_stake(amount: uint256):
    """
    @notice Sends `amount` of the caller's free (unlocked) stake to it.
    @param amount The wei to take out; nonzero and at most
           `stake(caller) - locked(caller)`.
    """
    # INVARIANT: a withdrawal moves ETH.
    assert amount > 0, "market: zero amount"
    stake: uint256 = self._stake[msg.sender]
    # INVARIANT: a locked bond stays in the market until its job settles.
    assert amount <= stake - self._locked[msg.sender], "market: insufficient free stake"

    stake -= amount
    self._stake[msg.sender] = stake
    self.total_stake -= amount
    log IJobMarket.StakeWithdrawn(solver=msg.sender, amount=amount, stake=stake)
    payout.send(msg.sender, amount)


@view
@external
def stake(account: address) -> uint256:
    """
    @notice An account's stake, the locked part included.
    @param account The account.
    @return uint256 The stake in wei.
    """
    return self._stake[account]


@view
@external
def locked(account: address) -> uint256:
    """
    @notice The part of an account's stake locked as bonds of its
            CLAIMED and COMMITTED jobs.
    @param account The account.
    @return uint256 The locked stake in wei.
    """
    return self._locked[account]


# ---------------------------------------------------------------------------
# INTERNAL FUNCTIONS
# ---------------------------------------------------------------------------


@view
@internal
def _free(solver: address) -> uint256:
    """
    @dev A solver's stake not locked by any job.
    @param solver The solver.
    @return uint256 `stake - locked`, in wei.
    """
    return self._stake[solver] - self._locked[solver]


@internal
def _lock(solver: address, bond: uint256):
    """
    @dev Locks `bond` of a solver's free stake for a claimed job.
    @param solver The solver.
    @param bond The job's solver bond.
    """
    # INVARIANT: the bond is backed by stake not locked for another job.
    assert self._free(solver) >= bond, "market: insufficient free stake"
    self._locked[solver] += bond


@internal
def _unlock(solver: address, bond: uint256):
    """
    @dev Frees a bond whose job was finalized; the stake keeps it.
    @param solver The solver.
    @param bond The job's solver bond.
    """
    self._locked[solver] -= bond


@internal
def _slash(solver: address, bond: uint256):
    """
    @dev Takes a locked bond out of a solver's stake; the caller says
         where the ETH goes.
    @param solver The solver.
    @param bond The locked bond removed from its stake and lock.
    """
    self._stake[solver] -= bond
    self._locked[solver] -= bond
    self.total_stake -= bond

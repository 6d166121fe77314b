#pragma version ~=0.4.3
"""
@title Stakes module harness
@custom:contract-name stakes_mock
@notice Exposes `contracts/modules/stakes.vy` for its own tests: its
        externals as the market exports them, and its internals (lock,
        unlock, slash) as externals, with the ETH a slash frees sent back
        to the caller so the balance always equals `total_stake`.
"""


from ..modules import stakes
from ..modules import payout

initializes: stakes

exports: (stakes.deposit, stakes.withdraw_stake, stakes.stake, stakes.locked, stakes.total_stake)


@view
@external
def free(solver: address) -> uint256:
    """
    @notice `stakes._free`.
    @param solver The solver.
    @return uint256 Its unlocked stake.
    """
    return stakes._free(solver)


@external
def lock(solver: address, bond: uint256):
    """
    @notice `stakes._lock`.
    @param solver The solver.
    @param bond The bond locked.
    """
    stakes._lock(solver, bond)


@external
def unlock(solver: address, bond: uint256):
    """
    @notice `stakes._unlock`.
    @param solver The solver.
    @param bond The bond freed.
    """
    stakes._unlock(solver, bond)


@external
@nonreentrant
def slash(solver: address, bond: uint256):
    """
    @notice `stakes._slash`, the slashed ETH sent to the caller.
    @param solver The solver.
    @param bond The locked bond slashed.
    """
    stakes._slash(solver, bond)
    payout.send(msg.sender, bond)

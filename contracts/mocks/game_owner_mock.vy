#pragma version ~=0.4.3
"""
@title Game Owner Harness
@custom:contract-name game_owner_mock
@notice Opens and closes games on a `DisputeGame` as their owner, so
        the game can be tested without the job market.
"""

from ..interfaces import IDisputeGame


GAME: public(immutable(address))


@deploy
def __init__(game: address):
    GAME = game


@external
def open(solver: address, challenger: address, ops_root: bytes32, n_ops: uint256,
         s_0: bytes32, s_n: bytes32) -> uint256:
    """
    @notice Opens a game owned by this harness.
    """
    return extcall IDisputeGame(GAME).open(solver, challenger, ops_root, n_ops, s_0, s_n)


@external
def close(game_id: uint256):
    """
    @notice Closes a game this harness owns.
    """
    extcall IDisputeGame(GAME).close(game_id)

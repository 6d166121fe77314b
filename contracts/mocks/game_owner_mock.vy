#pragma version ~=0.4.3
"""
@title Game Owner Harness
@custom:contract-name game_owner_mock
@notice Opens games on a `DisputeGame` and records each winner it is
        told, so the game can be tested without the job market.
"""

from ..interfaces import IDisputeGame
from ..interfaces import IGameOwner

implements: IGameOwner


event Told:
    game_id: indexed(uint256)
    solver_won: bool


GAME: public(immutable(address))

# @dev 0 = not over, 1 = solver won, 2 = challenger won.
outcome: public(HashMap[uint256, uint256])
calls: public(HashMap[uint256, uint256])


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


@external
def on_game_over(game_id: uint256, solver_won: bool):
    """
    @notice Records the winner; counts calls to prove it is told once.
    """
    assert msg.sender == GAME, "game_owner_mock: not the game"
    self.calls[game_id] += 1
    if solver_won:
        self.outcome[game_id] = 1
    else:
        self.outcome[game_id] = 2
    log Told(game_id=game_id, solver_won=solver_won)

#pragma version ~=0.4.3
"""
@title Dispute Game Stub
@custom:contract-name game_stub
@notice Test harness: stands in for `DisputeGame` behind the job
        market, so the market's settlement paths can be driven directly:
        `open` hands out ids (or a forced one), `close` records the
        closing, and `report` sets a game's `result` and calls the
        owner's `settle` at will, including for games that are unknown
        or already settled.
@dev Not for deployment outside tests. Implements `IDisputeGame`.
"""


# ---------------------------------------------------------------------------
# INTERFACES
# ---------------------------------------------------------------------------


# @dev What the market calls.
from ..interfaces import IDisputeGame
implements: IDisputeGame


# @dev What `report` calls on the owner (the job market).
interface ISettle:
    def settle(game_id: uint256): nonpayable


# ---------------------------------------------------------------------------
# STRUCTS
# ---------------------------------------------------------------------------


# @dev The arguments of one `open`, kept for the tests to compare.
struct Opened:
    owner: address
    solver: address
    challenger: address
    ops_root: bytes32
    n_ops: uint256
    s_0: bytes32
    s_n: bytes32


# ---------------------------------------------------------------------------
# STORAGE
# ---------------------------------------------------------------------------


# @dev The last id handed out by `open` (ids start at 1).
game_count: public(uint256)


# @dev If nonzero, the id `open` returns instead of a fresh one.
forced_id: public(uint256)


# @dev Game id -> the arguments it was opened with.
opened: public(HashMap[uint256, Opened])


# @dev Game id -> how many times its owner closed it.
closed: public(HashMap[uint256, uint256])


# @dev Game id -> what `result` answers (0 in play, 1 solver won,
# 2 challenger won, 3 closed), as `IDisputeGame.result`.
result: public(HashMap[uint256, uint256])


# @dev Game id -> what `challenger_gas` answers (the wei of gas its
# challenger's moves metered), as `IDisputeGame.challenger_gas`.
challenger_gas: public(HashMap[uint256, uint256])


# ---------------------------------------------------------------------------
# CONSTRUCTOR
# ---------------------------------------------------------------------------


@deploy
def __init__():
    """
    @dev Starts with no games.
    """
    pass


# ---------------------------------------------------------------------------
# EXTERNAL FUNCTIONS
# ---------------------------------------------------------------------------


@external
def open(solver: address, challenger: address, ops_root: bytes32, n_ops: uint256, s_0: bytes32, s_n: bytes32) -> uint256:
    """
    @notice Records a game and returns its id.
    @param solver The solver.
    @param challenger The challenger.
    @param ops_root The model's ops root.
    @param n_ops The model's op count.
    @param s_0 The agreed initial state root.
    @param s_n The disputed trace root.
    @return uint256 A fresh id, or `forced_id` if set.
    """
    game_id: uint256 = self.forced_id
    if game_id == 0:
        game_id = self.game_count + 1
        self.game_count = game_id
    self.opened[game_id] = Opened(
        owner=msg.sender, solver=solver, challenger=challenger, ops_root=ops_root, n_ops=n_ops, s_0=s_0, s_n=s_n
    )
    return game_id


@external
def close(game_id: uint256):
    """
    @notice Records that the caller closed the game.
    @param game_id The game.
    """
    self.closed[game_id] += 1


@external
def multicall(calls: DynArray[Bytes[2948], 64]) -> DynArray[bool, 64]:
    """
    @notice Not played here: the market never batches moves.
    @param calls Ignored.
    @return Never returns.
    """
    raise "game_stub: no multicall"


@external
def force_id(game_id: uint256):
    """
    @notice Makes `open` return `game_id` (0: fresh ids again).
    @param game_id The id to return.
    """
    self.forced_id = game_id


@external
def report(owner: address, game_id: uint256, solver_won: bool):
    """
    @notice Gives the game a winner, then calls `owner.settle(game_id)`;
            bubbles up a revert.
    @param owner The game owner (the market) to settle the game.
    @param game_id The game reported.
    @param solver_won The outcome reported.
    """
    if solver_won:
        self.result[game_id] = 1
    else:
        self.result[game_id] = 2
    extcall ISettle(owner).settle(game_id)


@external
def set_result(game_id: uint256, result: uint256):
    """
    @notice Sets what `result(game_id)` answers, without settling.
    @param game_id The game.
    @param result 0 in play, 1 solver won, 2 challenger won, 3 closed.
    """
    self.result[game_id] = result


@external
def set_challenger_gas(game_id: uint256, amount: uint256):
    """
    @notice Sets what `challenger_gas(game_id)` answers.
    @param game_id The game.
    @param amount The metered gas of its challenger's moves, in wei.
    """
    self.challenger_gas[game_id] = amount

#pragma version ~=0.4.3
"""
@title Model Registry
@custom:contract-name ModelRegistry
@notice Immutable entries of integer models (protocol.md section 5 and
        10.1). A model is registered once by its commitment: the op
        count `N`, the input and output column counts and the ops root
        `OR`. The registry computes the model root
        `MR = H(enc(N, input_cols, output_cols, OR))` and the state depth
        `D = depth(N + 1)`; the job market and the dispute game read them
        from here and never from a caller.
@dev Holds no ETH and has no owner: an entry never changes once written,
     so a job or a game that names a model id is bound to one model for
     ever. A root can be registered only once, so `model_id(root)` is a
     function of the root.

     The registry cannot see weights. A model whose weights break the
     accumulator bound of section 4 can be registered; agents load the
     model file (which recomputes every root) before serving or
     challenging it.
"""


# ---------------------------------------------------------------------------
# INTERFACES
# ---------------------------------------------------------------------------


# @dev The view the job market reads; the `Model` struct lives there so
# both contracts share one definition.
from .interfaces import IModelRegistry
implements: IModelRegistry


# ---------------------------------------------------------------------------
# MODULES
# ---------------------------------------------------------------------------


# @dev Stateless: `depth(n)` of section 2 for the state depth.
from .modules import merkle


# ---------------------------------------------------------------------------
# EVENTS
# ---------------------------------------------------------------------------


# @dev Emitted once per model; agents rebuild the registry from these.
event ModelRegistered:
    model_id: indexed(uint256)
    root: indexed(bytes32)
    registrant: indexed(address)
    n_ops: uint256
    input_cols: uint256
    output_cols: uint256
    ops_root: bytes32


# ---------------------------------------------------------------------------
# CONSTANTS
# ---------------------------------------------------------------------------


# @dev The largest op count (protocol.md section 8): slots 0 ... N fit a
# state tree of depth at most 16, the longest proof the contracts take.
MAX_OPS: public(constant(uint256)) = 65535


# @dev The largest column count of a tensor (protocol.md section 8): the
# one-step check must fit one transaction at `k = MAX_COLS`.
MAX_COLS: public(constant(uint256)) = 16384


# ---------------------------------------------------------------------------
# STORAGE
# ---------------------------------------------------------------------------


# @dev Model id -> entry; ids run from 1 to `_model_count`, so id 0 is
# never a model and an empty entry means "unknown".
_models: HashMap[uint256, IModelRegistry.Model]


# @dev Model root -> model id (0 if the root is not registered).
_ids: HashMap[bytes32, uint256]


# @dev The number of registered models, which is also the last id.
_model_count: uint256


# ---------------------------------------------------------------------------
# CONSTRUCTOR
# ---------------------------------------------------------------------------


@deploy
def __init__():
    """
    @dev Nothing to set up: the registry starts empty and has no owner.
    """
    pass


# ---------------------------------------------------------------------------
# EXTERNAL FUNCTIONS
# ---------------------------------------------------------------------------


@external
def register(n_ops: uint256, input_cols: uint256, output_cols: uint256, ops_root: bytes32) -> uint256:
    """
    @notice Registers a model by its commitment (protocol.md section 5).
            Anyone may register; the caller is recorded as registrant.
    @dev The shapes are the only facts the contracts rely on: the market
         sizes posted inputs and committed outputs with them and the game
         bisects over `n_ops` ops. Nothing else about the model is
         checked here (see the contract's `@dev`).
    @param n_ops The op count `N`, in [1, MAX_OPS].
    @param input_cols The column count of slot 0, in [1, MAX_COLS].
    @param output_cols The column count of slot `N`, in [1, MAX_COLS].
    @param ops_root The ops root `OR`; nonzero.
    @return uint256 The new model id (ids start at 1).
    """
    # INVARIANT: the state tree over slots 0 ... N has depth <= 16.
    assert n_ops >= 1 and n_ops <= MAX_OPS, "registry: op count out of range"
    # INVARIANT: every tensor shape stays within the limits of section 8.
    assert input_cols >= 1 and input_cols <= MAX_COLS, "registry: input cols out of range"
    # INVARIANT: the output shape, too.
    assert output_cols >= 1 and output_cols <= MAX_COLS, "registry: output cols out of range"
    # INVARIANT: a zero root commits to nothing (it is the empty leaf Z[0]).
    assert ops_root != empty(bytes32), "registry: zero ops root"

    root: bytes32 = keccak256(
        concat(
            convert(n_ops, bytes32),
            convert(input_cols, bytes32),
            convert(output_cols, bytes32),
            ops_root,
        )
    )
    # INVARIANT: one id per root, so `model_id(root)` is well defined.
    assert self._ids[root] == 0, "registry: model already registered"

    model_id: uint256 = self._model_count + 1
    self._model_count = model_id
    self._ids[root] = model_id
    self._models[model_id] = IModelRegistry.Model(
        root=root,
        ops_root=ops_root,
        n_ops=n_ops,
        input_cols=input_cols,
        output_cols=output_cols,
        state_depth=merkle.depth(n_ops + 1),
        registrant=msg.sender,
    )
    log ModelRegistered(
        model_id=model_id,
        root=root,
        registrant=msg.sender,
        n_ops=n_ops,
        input_cols=input_cols,
        output_cols=output_cols,
        ops_root=ops_root,
    )
    return model_id


@view
@external
def model(model_id: uint256) -> IModelRegistry.Model:
    """
    @notice The entry of a registered model.
    @dev Reverts for an id that was never issued, so a caller can never
         mistake an empty struct for a model with zero shapes.
    @param model_id The model id, in [1, model_count()].
    @return IModelRegistry.Model The model's root, ops root, op count,
            column counts, state depth and registrant.
    """
    # INVARIANT: only issued ids have entries.
    assert model_id >= 1 and model_id <= self._model_count, "registry: unknown model"
    return self._models[model_id]


@view
@external
def model_id(root: bytes32) -> uint256:
    """
    @notice The id of a model, looked up by its model root.
    @param root The model root `MR`.
    @return uint256 The model id, or 0 if the root is not registered.
    """
    return self._ids[root]


@view
@external
def model_count() -> uint256:
    """
    @notice The number of registered models (also the last id issued).
    @return uint256 The model count.
    """
    return self._model_count

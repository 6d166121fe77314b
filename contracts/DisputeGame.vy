#pragma version ~=0.4.3
"""
@title Dispute Game
@custom:contract-name DisputeGame
@notice The interactive game of `docs/protocol.md` section 7 over one
        committed result: op bisection, the transition proof, row
        descent, the row reveal and the one-step check of a single
        output element, delegated to the op kind's verifier contract.
        Each side has a chess clock.
@dev Section 10.3 of `docs/protocol.md` is this contract's spec.
     The contract holds no ETH and calls no contract but the verifiers
     of its table, fixed at deployment, with `staticcall`, in `step`
     alone (protocol.md 10.3, "Verifiers"). Whoever
     calls `open` owns the game: only the owner may `close` it. The
     winner is read with `result` (the job market settles a finished
     game by reading it); nothing is pushed to the owner, so the one
     step transaction pays for the check alone and no callee but the
     op's own verifier can make a move fail.

     Every move checks, in this order: the game exists and is in the
     move's phase, the caller is the side to move, that side's clock
     has time left; then the hashes. A move whose hashes do not verify
     reverts and changes nothing, so the mover may retry on its clock.

     Storage is read field by field (never a whole `Game` copy), so a
     move pays only for the fields it touches.
"""


# ---------------------------------------------------------------------------
# INTERFACES
# ---------------------------------------------------------------------------

from .interfaces import IDisputeGame
from .interfaces import IVerifier

implements: IDisputeGame


# ---------------------------------------------------------------------------
# MODULES
# ---------------------------------------------------------------------------

from .modules import merkle
from .modules import tensor
from .modules import gas_meter
# @dev A dtype's element width (section 3), the one the verifiers use.
from .modules import rows as packed_rows


# ---------------------------------------------------------------------------
# CONSTANTS
# ---------------------------------------------------------------------------

# @dev Phases. The first seven are moves (who moves is in `_solver_moves`);
# the last three are final.
BISECT: constant(uint256) = 1
CHOOSE: constant(uint256) = 2
TRANSITION: constant(uint256) = 3
CHILDREN: constant(uint256) = 4
PICK: constant(uint256) = 5
ROW: constant(uint256) = 6
STEP: constant(uint256) = 7
SOLVER_WON: constant(uint256) = 8
CHALLENGER_WON: constant(uint256) = 9
CLOSED: constant(uint256) = 10

# @dev What `result` returns (protocol.md 10.3).
RESULT_NONE: constant(uint256) = 0
RESULT_SOLVER_WON: constant(uint256) = 1
RESULT_CHALLENGER_WON: constant(uint256) = 2
RESULT_CLOSED: constant(uint256) = 3

# @dev The bisection arity is a power of two in [2, MAX_ARITY]; a
# solver posts at most MAX_ARITY - 1 roots per move.
MAX_ARITY: constant(uint256) = 64
MAX_ROOTS: constant(uint256) = MAX_ARITY - 1

# @dev protocol.md section 8.
MAX_OPS: constant(uint256) = 65535

# @dev The verifier table's size: kinds 1 ... MAX_KINDS, one verifier
# contract each (the zero address: no verifier yet).
MAX_KINDS: constant(uint256) = 16

# @dev The largest step witness (IVerifier's MAX_WITNESS: Vyper 0.4.3
# does not export an interface file's constants).
MAX_WITNESS: constant(uint256) = 81920

# @dev The input slots an op reads: input_a, and input_b for the kinds
# with two (protocol.md 7.2).
MAX_INPUTS: constant(uint256) = 2

# @dev The longest params header the transition reveals: a `lut` table
# of 256 `int16` entries (protocol.md 5.4; IVerifier's MAX_PARAMS).
MAX_PARAMS: constant(uint256) = 512

# @dev Bytes per EVM word: the row word tree's leaf width.
WORD_BYTES: constant(uint256) = 32

MAX_PROOF: constant(uint256) = merkle.MAX_PROOF
MAX_ROWS: constant(uint256) = tensor.MAX_ROWS
MAX_ROW_BYTES: constant(uint256) = tensor.MAX_ROW_BYTES

# @dev Gas a metered move pays outside its measured body: the dispatch
# and argument checks before the first `msg.gas` read, and the meter's
# own update and the return after the last. `step` copies its witness
# into memory before its body starts, at a low address: the memory the
# verifier call expands (this call's calldata, copied just above the
# witness) is paid inside the body, so its overhead is a move's plus
# the copy.
# Measured on anvil (tests/test_accomplice.py checks refunds against
# receipts; tests/test_game_verifiers.py bounds the step's).
MOVE_OVERHEAD_GAS: constant(uint256) = 4000
STEP_OVERHEAD_GAS: constant(uint256) = 4500

# @dev What the meter's first write to a game costs beyond an update
# (a zero slot set nonzero: 22,100 gas against 5,000).
FIRST_WRITE_GAS: constant(uint256) = 17100


# ---------------------------------------------------------------------------
# STRUCTS
# ---------------------------------------------------------------------------

struct Game:
    owner: address
    solver: address
    challenger: address
    phase: uint256
    # the model and the two ends of the committed run
    ops_root: bytes32
    n_ops: uint256
    # op bisection: S_lo agreed, S_hi disputed
    lo: uint256
    hi: uint256
    s_lo: bytes32
    s_hi: bytes32
    roots_hash: bytes32
    # chess clocks: seconds left to each side, and when the side to move
    # started thinking
    solver_time: uint256
    challenger_time: uint256
    last_move: uint256
    # the disputed op, set by `transition`: keccak256(abi_encode(desc,
    # inputs)) of the descriptor and the input headers the verifier is
    # given (one word whatever the kind: `step` repeats them in
    # calldata), and the output's shape and dtype
    op_hash: bytes32
    rows: uint256
    cols: uint256
    out_dtype: uint256
    # row descent: the disputed node, its index in its level, levels left
    node: bytes32
    node_index: uint256
    levels_left: uint256
    # the revealed row's word tree root, set by `reveal_row`
    row_word_root: bytes32


# ---------------------------------------------------------------------------
# EVENTS
# ---------------------------------------------------------------------------

event GameOpened:
    game_id: indexed(uint256)
    owner: indexed(address)
    solver: indexed(address)
    challenger: address
    n_ops: uint256
    s_0: bytes32
    s_n: bytes32

event Bisected:
    game_id: indexed(uint256)
    lo: uint256
    hi: uint256
    roots: DynArray[bytes32, MAX_ROOTS]

event Chosen:
    game_id: indexed(uint256)
    index: uint256
    lo: uint256
    hi: uint256

event Transitioned:
    game_id: indexed(uint256)
    op: uint256
    output_rows: uint256
    output_cols: uint256
    output_dtype: uint256
    output_rows_root: bytes32

event ChildrenRevealed:
    game_id: indexed(uint256)
    levels_left: uint256
    node_index: uint256
    left: bytes32
    right: bytes32

event ChildPicked:
    game_id: indexed(uint256)
    right: bool
    levels_left: uint256
    node_index: uint256

event RowRevealed:
    game_id: indexed(uint256)
    row_index: uint256
    row: Bytes[MAX_ROW_BYTES]

event Stepped:
    game_id: indexed(uint256)
    row_index: uint256
    column: uint256
    claimed: int256
    computed: int256

event GameResolved:
    game_id: indexed(uint256)
    solver_won: bool
    reason: String[64]

event GameClosed:
    game_id: indexed(uint256)


# ---------------------------------------------------------------------------
# STORAGE
# ---------------------------------------------------------------------------

ARITY: public(immutable(uint256))
CLOCK: public(immutable(uint256))

# @dev Kind k's verifier is VERIFIERS[k - 1]; fixed at deployment (an
# immutable lives in the code, so no transaction can change it).
VERIFIERS: immutable(address[MAX_KINDS])

games: public(HashMap[uint256, Game])
game_count: public(uint256)

# @dev Game id -> the wei of gas its challenger spent in its moves
# (`choose`, `pick`, `step`, and `timeout` when the challenger calls it),
# priced by `gas_meter.price()`; the market refunds it to a winner.
_challenger_gas: HashMap[uint256, uint256]

# @dev Set by the first metered move of a transaction, which alone is
# allowed the transaction's intrinsic gas (a batch pays it once).
_tx_metered: transient(bool)


# ---------------------------------------------------------------------------
# CONSTRUCTOR
# ---------------------------------------------------------------------------

@deploy
def __init__(arity: uint256, clock: uint256, verifiers: DynArray[address, MAX_KINDS]):
    """
    @param arity States per bisection move plus one: a power of two in
           [2, MAX_ARITY].
    @param clock Seconds each side may think in total during one game.
    @param verifiers The verifier of kind k at index k - 1: a deployed
           contract, or the zero address for a kind without one (its
           steps are refused); kinds past the list have none.
    """
    # INVARIANT: q_i = lo + i*L/p needs p >= 2, and a power of two keeps
    # every level's point spacing even.
    assert arity >= 2 and arity <= MAX_ARITY, "game: arity out of range"
    assert arity & (arity - 1) == 0, "game: arity must be a power of two"
    assert clock > 0, "game: zero clock"
    table: address[MAX_KINDS] = empty(address[MAX_KINDS])
    for i: uint256 in range(len(verifiers), bound=MAX_KINDS):
        # INVARIANT: a verifier has code now, so a step never calls an
        # address that a later deployment could fill.
        assert verifiers[i] == empty(address) or verifiers[i].is_contract, "game: verifier is not a contract"
        table[i] = verifiers[i]
    ARITY = arity
    CLOCK = clock
    VERIFIERS = table


# ---------------------------------------------------------------------------
# OWNER
# ---------------------------------------------------------------------------

@external
@nonreentrant
def open(solver: address, challenger: address, ops_root: bytes32, n_ops: uint256,
         s_0: bytes32, s_n: bytes32) -> uint256:
    """
    @notice Opens a game over the run from `s_0` (agreed) to `s_n`
            (disputed) of a model with `n_ops` ops; the caller owns it.
    @return The new game's id (ids start at 1).
    """
    assert solver != empty(address) and challenger != empty(address), "game: zero address"
    assert solver != challenger, "game: solver and challenger must differ"
    assert n_ops >= 1 and n_ops <= MAX_OPS, "game: op count out of range"

    game_id: uint256 = self.game_count + 1
    self.game_count = game_id
    phase: uint256 = BISECT
    if n_ops == 1:
        phase = TRANSITION
    self.games[game_id] = Game(
        owner=msg.sender, solver=solver, challenger=challenger, phase=phase,
        ops_root=ops_root, n_ops=n_ops, lo=0, hi=n_ops, s_lo=s_0, s_hi=s_n,
        roots_hash=empty(bytes32), solver_time=CLOCK, challenger_time=CLOCK,
        last_move=block.timestamp, op_hash=empty(bytes32), rows=0, cols=0,
        out_dtype=0, node=empty(bytes32), node_index=0, levels_left=0,
        row_word_root=empty(bytes32),
    )
    log GameOpened(game_id=game_id, owner=msg.sender, solver=solver,
                   challenger=challenger, n_ops=n_ops, s_0=s_0, s_n=s_n)
    return game_id


@external
@nonreentrant
def close(game_id: uint256):
    """
    @notice Ends an unfinished game without a winner; owner only (the
            market closes the other games of a rejected result).
    """
    assert self.games[game_id].owner == msg.sender, "game: caller is not the owner"
    # INVARIANT: a finished game keeps its winner.
    assert self._in_play(self.games[game_id].phase), "game: game is over"
    self.games[game_id].phase = CLOSED
    log GameClosed(game_id=game_id)


# ---------------------------------------------------------------------------
# OP BISECTION (protocol.md 7.1)
# ---------------------------------------------------------------------------

@external
@nonreentrant
def bisect(game_id: uint256, roots: DynArray[bytes32, MAX_ROOTS]):
    """
    @notice Solver: posts the states S_{q_1} .. S_{q_{p-1}} inside the
            disputed interval.
    """
    self._begin_move(game_id, BISECT)
    lo: uint256 = self.games[game_id].lo
    hi: uint256 = self.games[game_id].hi
    # INVARIANT: exactly one root per inner bisection point.
    assert len(roots) == min(ARITY, hi - lo) - 1, "game: wrong number of roots"
    self.games[game_id].roots_hash = keccak256(abi_encode(roots))
    self.games[game_id].phase = CHOOSE
    log Bisected(game_id=game_id, lo=lo, hi=hi, roots=roots)


@external
@nonreentrant
def choose(game_id: uint256, index: uint256, roots: DynArray[bytes32, MAX_ROOTS]):
    """
    @notice Challenger: agrees with S_{q_index} and disputes
            S_{q_{index+1}}; `roots` repeats the solver's last `bisect`.
    """
    start: uint256 = msg.gas
    self._begin_move(game_id, CHOOSE)
    # INVARIANT: the roots are the solver's, not the challenger's.
    assert keccak256(abi_encode(roots)) == self.games[game_id].roots_hash, "game: roots differ from the solver's"
    lo: uint256 = self.games[game_id].lo
    span: uint256 = self.games[game_id].hi - lo
    parts: uint256 = min(ARITY, span)
    assert index < parts, "game: index out of range"

    # q_i = lo + floor(i * L / p); the ends keep the stored S_lo / S_hi.
    if index > 0:
        self.games[game_id].s_lo = roots[index - 1]
    if index + 1 < parts:
        self.games[game_id].s_hi = roots[index]
    new_lo: uint256 = lo + index * span // parts
    new_hi: uint256 = lo + (index + 1) * span // parts
    self.games[game_id].lo = new_lo
    self.games[game_id].hi = new_hi
    self.games[game_id].roots_hash = empty(bytes32)
    if new_hi == new_lo + 1:
        self.games[game_id].phase = TRANSITION
    else:
        self.games[game_id].phase = BISECT
    log Chosen(game_id=game_id, index=index, lo=new_lo, hi=new_hi)
    self._meter(game_id, start, 4 + 3 * 32 + gas_meter.words(len(roots)), MOVE_OVERHEAD_GAS)


# ---------------------------------------------------------------------------
# TRANSITION (protocol.md 7.2)
# ---------------------------------------------------------------------------

@external
@nonreentrant
def transition(game_id: uint256, desc: IVerifier.OpDescriptor, desc_proof: DynArray[bytes32, MAX_PROOF],
               inputs: DynArray[IVerifier.SlotHeader, MAX_INPUTS],
               input_proofs: DynArray[DynArray[bytes32, MAX_PROOF], MAX_INPUTS],
               params: Bytes[MAX_PARAMS], output: IVerifier.SlotHeader,
               output_proof: DynArray[bytes32, MAX_PROOF]):
    """
    @notice Solver: reveals the disputed op `hi`'s descriptor, the headers
            of the input slots it reads (in S_lo: `input_a`, then
            `input_b`), its params header (the preimage of
            `params_root`) and its output header (the only difference
            between S_lo and S_hi).
    @dev Hashes that do not verify revert (a rejected move). With every
         hash valid, the solver loses if an input slot is not before the
         op, the kind has no verifier, the kind's verifier finds the op
         breaking its kind's rules (flags, unused fields, input dtypes,
         columns and rows, params ranges), or the output header differs
         from the kind's shape rule. The verifier's `output_header`
         reverting (a wrong input count, a params header that does not
         hash) rejects the move.
    """
    self._begin_move(game_id, TRANSITION)
    op: uint256 = self.games[game_id].hi
    s_lo: bytes32 = self.games[game_id].s_lo
    state_depth: uint256 = merkle.depth(self.games[game_id].n_ops + 1)

    # INVARIANT: the descriptor is op `op` of the registered model.
    leaf: bytes32 = keccak256(abi_encode(desc.kind, desc.flags, desc.input_a, desc.input_b,
                                         desc.in_cols, desc.out_cols, desc.params_root))
    assert merkle.verify(leaf, op - 1, desc_proof, merkle.depth(self.games[game_id].n_ops),
                         self.games[game_id].ops_root), "game: descriptor not in the model"
    # An op reads only earlier slots (section 5): a later slot of S_lo is
    # Z[0], which no header can be proven to fill, so this is a loss, not
    # a move the solver could retry.
    if desc.input_a >= op or desc.input_b >= op:
        self._resolve(game_id, False, "input slot not before the op")
        return
    # INVARIANT: each input header is the agreed content of its slot.
    assert len(inputs) >= 1 and len(inputs) == len(input_proofs), "game: wrong number of input proofs"
    for i: uint256 in range(len(inputs), bound=MAX_INPUTS):
        slot: uint256 = desc.input_a
        if i == 1:
            slot = desc.input_b
        assert merkle.verify(self._header_root(inputs[i]), slot, input_proofs[i], state_depth, s_lo), \
            "game: input header not in the agreed state"
    # INVARIANT: S_hi is S_lo with slot `op` filled by the output, nothing else.
    assert merkle.verify_update(op, output_proof, state_depth, s_lo, self._header_root(output),
                                self.games[game_id].s_hi), \
        "game: output is not the one change from the agreed state"

    log Transitioned(game_id=game_id, op=op, output_rows=output.rows, output_cols=output.cols,
                     output_dtype=output.dtype, output_rows_root=output.rows_root)

    # The hashes hold: the solver is bound to these headers. A kind the
    # game cannot check, or an op its kind's rules forbid, is a loss.
    verifier: address = self._verifier_of(desc.kind)
    if verifier == empty(address):
        self._resolve(game_id, False, "unknown op")
        return
    rows: uint256 = 0
    cols: uint256 = 0
    dtype: uint256 = 0
    rows, cols, dtype = staticcall IVerifier(verifier).output_header(desc, inputs, params)
    if rows == 0 or rows > MAX_ROWS:
        self._resolve(game_id, False, "op breaks its kind's rules")
        return
    if output.rows != rows or output.cols != cols or output.dtype != dtype:
        self._resolve(game_id, False, "output header differs from the shape rule")
        return

    self.games[game_id].op_hash = keccak256(abi_encode(desc, inputs))
    self.games[game_id].rows = rows
    self.games[game_id].cols = cols
    self.games[game_id].out_dtype = dtype
    self.games[game_id].node = output.rows_root
    self.games[game_id].node_index = 0
    levels: uint256 = merkle.depth(rows)
    self.games[game_id].levels_left = levels
    if levels == 0:
        self.games[game_id].phase = ROW
    else:
        self.games[game_id].phase = CHILDREN


# ---------------------------------------------------------------------------
# ROW DESCENT (protocol.md 7.3)
# ---------------------------------------------------------------------------

@external
@nonreentrant
def reveal_children(game_id: uint256, left: bytes32, right: bytes32):
    """
    @notice Solver: reveals the two children of the disputed node of the
            output's row tree.
    """
    self._begin_move(game_id, CHILDREN)
    assert merkle.hash_pair(left, right) == self.games[game_id].node, \
        "game: children do not hash to the node"
    self.games[game_id].phase = PICK
    log ChildrenRevealed(game_id=game_id, levels_left=self.games[game_id].levels_left,
                         node_index=self.games[game_id].node_index, left=left, right=right)


@external
@nonreentrant
def pick(game_id: uint256, right_side: bool, left: bytes32, right: bytes32):
    """
    @notice Challenger: disputes one of the children the solver revealed
            (`left`, `right` repeat them).
    @dev At a leaf past the last row the game ends: padding must be Z[0].
    """
    start: uint256 = msg.gas
    self._begin_move(game_id, PICK)
    assert merkle.hash_pair(left, right) == self.games[game_id].node, \
        "game: children differ from the solver's"
    node: bytes32 = left
    index: uint256 = 2 * self.games[game_id].node_index
    if right_side:
        node = right
        index += 1
    levels: uint256 = self.games[game_id].levels_left - 1
    self.games[game_id].node = node
    self.games[game_id].node_index = index
    self.games[game_id].levels_left = levels
    log ChildPicked(game_id=game_id, right=right_side, levels_left=levels, node_index=index)

    if levels > 0:
        self.games[game_id].phase = CHILDREN
    elif index >= self.games[game_id].rows:
        # INVARIANT: a padding leaf is Z[0] (protocol.md section 3).
        self._resolve(game_id, node == empty(bytes32), "padding leaf")
    else:
        self.games[game_id].phase = ROW
    self._meter(game_id, start, 4 + 4 * 32, MOVE_OVERHEAD_GAS)


# ---------------------------------------------------------------------------
# ONE STEP (protocol.md 7.4)
# ---------------------------------------------------------------------------

@external
@nonreentrant
def reveal_row(game_id: uint256, row: Bytes[MAX_ROW_BYTES]):
    """
    @notice Solver: reveals the disputed output row; the contract keeps
            only the root of its word tree (protocol.md 10.3).
    """
    self._begin_move(game_id, ROW)
    width: uint256 = packed_rows.width(self.games[game_id].out_dtype)
    assert len(row) == self.games[game_id].cols * width, "game: row length differs from the output's cols"
    assert keccak256(row) == self.games[game_id].node, "game: row does not hash to the leaf"
    self.games[game_id].row_word_root = tensor.word_root(row)
    self.games[game_id].phase = STEP
    log RowRevealed(game_id=game_id, row_index=self.games[game_id].node_index, row=row)


@external
@nonreentrant
def step(game_id: uint256, column: uint256, row_word: bytes32,
         row_word_proof: DynArray[bytes32, MAX_PROOF], desc: IVerifier.OpDescriptor,
         inputs: DynArray[IVerifier.SlotHeader, MAX_INPUTS], row_index: uint256,
         witness: Bytes[MAX_WITNESS]):
    """
    @notice Challenger: names a column of the revealed row and supplies
            the witness of the op kind's one step; the kind's verifier
            recomputes the element. A difference: the solver loses;
            equality: the challenger loses. A witness the verifier
            rejects (it reverts) rejects the move, as a bad hash does.
    @param row_word The revealed row's word holding `column`, with its
           proof in the row word tree.
    @param desc The disputed op's descriptor and `inputs` the headers of
           its input slots, as the transition revealed them (the game
           keeps only their hash).
    @param row_index The revealed row's index (the game's `node_index`).
    @param witness The kind's witness (protocol.md 10.9), passed to its
           verifier unread.
    @dev The verifier is sent this call's own calldata: its `step` has
         this function's selector and arguments (IVerifier). Everything
         else is done in `_step`, whose frame Vyper places below this
         one, so that this frame holds only the arguments: the 80 KiB
         witness buffer is the highest memory laid out, the move pays
         memory only for the witness it sends, and `raw_call` copies
         `msg.data` just above it (any local here, or an ABI-encoded
         call, would sit above the whole buffer: about 66k gas of
         memory expansion at any witness length).
    """
    self._step(msg.gas, game_id, column, row_word, row_word_proof, desc, inputs, row_index, len(witness))


@internal
def _step(start: uint256, game_id: uint256, column: uint256, row_word: bytes32,
          row_word_proof: DynArray[bytes32, MAX_PROOF], desc: IVerifier.OpDescriptor,
          inputs: DynArray[IVerifier.SlotHeader, MAX_INPUTS], row_index: uint256, witness_len: uint256):
    """
    @dev `step`'s checks, its verifier call and its verdict, from the
         move's first `msg.gas` (`start`); `witness_len` is
         `len(witness)`.
    """
    self._begin_move(game_id, STEP)
    cols: uint256 = self.games[game_id].cols
    assert row_index == self.games[game_id].node_index, "game: not the revealed row"
    assert column < cols, "game: column out of range"
    # INVARIANT: the verifier is given the transition's op, no other.
    assert keccak256(abi_encode(desc, inputs)) == self.games[game_id].op_hash, \
        "game: op differs from the transition's"
    # The transition found a verifier for this kind (the table never
    # changes), and op_hash binds desc to that transition.
    verifier: address = self._verifier_of(desc.kind)

    # INVARIANT: the claimed element is element `column` of the revealed
    # row: bytes `column * width ...` of it, inside one word (the
    # widths 1, 2, 4 divide 32).
    width: uint256 = packed_rows.width(self.games[game_id].out_dtype)
    at: uint256 = column * width
    words: uint256 = (cols * width + WORD_BYTES - 1) // WORD_BYTES
    assert merkle.verify(row_word, at // WORD_BYTES, row_word_proof, merkle.depth(words),
                         self.games[game_id].row_word_root), "game: row word not in the revealed row"
    # Move the element to the top bits, then shift it down arithmetically
    # (`>>` on int256 is SAR): the sign extension of a big-endian element.
    top: uint256 = convert(row_word, uint256) << (8 * (at % WORD_BYTES))
    claimed: int256 = convert(convert(top, bytes32), int256) >> (256 - 8 * width)

    # The verifier proves every part of the witness against the roots in
    # desc and inputs, or reverts: its revert (a bad witness, or out of
    # gas) reverts this move whole, so only a returned value decides.
    # It decodes the same calldata with the same types, so it reads the
    # desc, inputs, row_index and column checked above (inside a
    # `multicall`, `msg.data` is this move's own sub-call).
    returned: Bytes[32] = raw_call(verifier, msg.data, max_outsize=32, is_static_call=True)
    # INVARIANT: a return shorter than one word (none at all, from an
    # address without code) is no element.
    assert len(returned) == 32, "game: verifier returned no element"
    computed: int256 = abi_decode(returned, int256)
    log Stepped(game_id=game_id, row_index=row_index, column=column, claimed=claimed,
                computed=computed)
    if computed == claimed:
        self._resolve(game_id, True, "element matches")
    else:
        self._resolve(game_id, False, "element differs")
    self._meter(game_id, start, 4 + 14 * 32 + gas_meter.words(len(row_word_proof))
                + 32 + 4 * 32 * len(inputs) + gas_meter.bytes_tail(witness_len),
                STEP_OVERHEAD_GAS)


# ---------------------------------------------------------------------------
# CLOCKS
# ---------------------------------------------------------------------------

@external
@nonreentrant
def timeout(game_id: uint256):
    """
    @notice Anyone: ends a game whose side to move has used up its clock;
            that side loses.
    @dev Metered when the game's challenger calls it.
    """
    start: uint256 = msg.gas
    phase: uint256 = self.games[game_id].phase
    assert self._in_play(phase), "game: not in play"
    solver_moves: bool = self._solver_moves(phase)
    # INVARIANT: only a side whose clock has run out loses on time.
    assert block.timestamp - self.games[game_id].last_move > self._time_left_of(game_id, solver_moves), \
        "game: clock has not run out"
    self._resolve(game_id, not solver_moves, "timeout")
    if msg.sender == self.games[game_id].challenger:
        self._meter(game_id, start, 4 + 32, MOVE_OVERHEAD_GAS)


# ---------------------------------------------------------------------------
# MULTICALL (many moves of many games in one transaction)
# ---------------------------------------------------------------------------

# @dev The widest row a batched move carries (`reveal_row`, `step`):
# a move of wider rows goes in a transaction of its own.
BATCH_COLS: constant(uint256) = 128

# @dev The largest batched move's calldata: a `linear` `step` with rows
# of BATCH_COLS and three MAX_PROOF-deep proofs (selector, 14 head words,
# the row word's proof, two input headers, then the witness: its length
# word, 8 head words, two proofs, two rows with their length words). A
# longer move goes in a transaction of its own: a wider `reveal_row` or
# `step`, and a `transition` past 2,980 bytes (two inputs with proofs
# near MAX_PROOF deep, or a `lut`'s 512-byte table; at MiniLM's 97 ops a
# two-input transition is about 2,100 bytes). A larger bound would make
# every batch pay memory for it: Vyper copies the whole argument.
MAX_CALL_BYTES: public(constant(uint256)) = 4 + 32 * 14 + (32 + 32 * MAX_PROOF) + (32 + 2 * 4 * 32) \
    + 32 + 32 * 8 + 2 * (32 + 32 * MAX_PROOF) + 2 * (32 + BATCH_COLS)

# @dev Sub-calls per batch. Vyper copies the whole argument into memory,
# so the batch pays memory for MAX_CALLS x MAX_CALL_BYTES (about 88k
# gas, under 1,400 a move in a full batch); 64 moves of 50k-250k gas
# fill 3M-16M gas, a block's share or EIP-7825's transaction cap.
MAX_CALLS: public(constant(uint256)) = 64

# @dev Bytes of a failed sub-call's revert data kept in `CallSkipped`:
# an `Error(string)` of the contract's reasons (all under 64 bytes).
MAX_REASON: constant(uint256) = 4 + 32 + 32 + 64

event CallSkipped:
    caller: indexed(address)
    index: uint256
    reason: Bytes[MAX_REASON]


@external
def multicall(calls: DynArray[Bytes[MAX_CALL_BYTES], MAX_CALLS]) -> DynArray[bool, MAX_CALLS]:
    """
    @notice Makes each of `calls` (the ABI-encoded calls of this
            contract's own functions: moves and timeouts of any games) as
            if the caller had sent it alone, in order; a failing one is
            skipped, not the batch.
    @dev Each sub-call is a delegatecall to this contract's own code, so
         `msg.sender` stays the caller and a sub-call can do nothing the
         caller could not do by a transaction of its own: it runs this
         contract's functions on this contract's storage, under their
         checks. It touches no other code but the verifiers `step`
         calls with `staticcall` (which can change no state) and holds
         no ETH (the function is not payable, so no `msg.value` is
         counted twice). Reentrancy: each sub-call takes and releases
         the contract's lock itself (this function does not hold it, or
         every sub-call would revert); a verifier runs under
         `staticcall`, so no callee can re-enter with a state change. A sub-call that reverts
         (a game that timed out or moved meanwhile) undoes only its own
         changes and logs `CallSkipped` with its index and the start of
         its revert data, so the sender can tell which moves landed.
    @param calls At most MAX_CALLS calls of at most MAX_CALL_BYTES each
           (the largest batched move's calldata); more is refused by
           the ABI decoder before anything runs.
    @return Whether each sub-call succeeded, in order.
    """
    # INVARIANT: a batch moves something (an empty one is a mistake).
    assert len(calls) > 0, "game: empty multicall"
    landed: DynArray[bool, MAX_CALLS] = []
    for i: uint256 in range(len(calls), bound=MAX_CALLS):
        ok: bool = False
        reason: Bytes[MAX_REASON] = b""
        ok, reason = raw_call(self, calls[i], max_outsize=MAX_REASON, is_delegate_call=True,
                              revert_on_failure=False)
        if not ok:
            log CallSkipped(caller=msg.sender, index=i, reason=reason)
        landed.append(ok)
    return landed


# ---------------------------------------------------------------------------
# VIEWS
# ---------------------------------------------------------------------------

@view
@external
def result(game_id: uint256) -> uint256:
    """
    @notice 0 while in play (or unknown), 1 if the solver won, 2 if the
            challenger won, 3 if closed by the owner without a winner.
    """
    phase: uint256 = self.games[game_id].phase
    if phase == SOLVER_WON:
        return RESULT_SOLVER_WON
    if phase == CHALLENGER_WON:
        return RESULT_CHALLENGER_WON
    if phase == CLOSED:
        return RESULT_CLOSED
    return RESULT_NONE


@view
@external
def challenger_gas(game_id: uint256) -> uint256:
    """
    @notice The wei of gas the game's challenger spent in its moves so
            far, as the market refunds it (`gas_meter`).
    """
    return self._challenger_gas[game_id]


@view
@external
def to_move(game_id: uint256) -> address:
    """
    @notice The address whose move it is, or empty if the game is over.
    """
    phase: uint256 = self.games[game_id].phase
    if not self._in_play(phase):
        return empty(address)
    if self._solver_moves(phase):
        return self.games[game_id].solver
    return self.games[game_id].challenger


@view
@external
def deadline(game_id: uint256) -> uint256:
    """
    @notice The last timestamp at which the side to move may still move;
            `timeout` succeeds after it.
    """
    phase: uint256 = self.games[game_id].phase
    assert self._in_play(phase), "game: not in play"
    return self.games[game_id].last_move + self._time_left_of(game_id, self._solver_moves(phase))


@view
@external
def points(game_id: uint256) -> DynArray[uint256, MAX_ARITY + 1]:
    """
    @notice The bisection points q_0 .. q_p of the current interval
            (protocol.md 7.1); empty once bisection is over.
    """
    lo: uint256 = self.games[game_id].lo
    span: uint256 = self.games[game_id].hi - lo
    result: DynArray[uint256, MAX_ARITY + 1] = []
    if span < 2:
        return result
    parts: uint256 = min(ARITY, span)
    for i: uint256 in range(MAX_ARITY + 1):
        if i > parts:
            break
        result.append(lo + i * span // parts)
    return result


# ---------------------------------------------------------------------------
# INTERNALS
# ---------------------------------------------------------------------------

@view
@external
def verifier(kind: uint256) -> address:
    """
    @notice The verifier contract of op kind `kind`, fixed at
            deployment; the zero address for a kind without one.
    """
    return self._verifier_of(kind)


@view
@internal
def _verifier_of(kind: uint256) -> address:
    if kind >= 1 and kind <= MAX_KINDS:
        return VERIFIERS[kind - 1]
    return empty(address)


@pure
@internal
def _header_root(header: IVerifier.SlotHeader) -> bytes32:
    """
    @dev A slot's tensor root by its dtype's rule (protocol.md section
         3): `H(enc(rows, cols, R))` for `int8`, `H(enc(rows, cols, R,
         dtype))` for any other dtype.
    """
    return tensor.header_root(header.rows, header.cols, header.rows_root, header.dtype)


@pure
@internal
def _in_play(phase: uint256) -> bool:
    return phase >= BISECT and phase <= STEP


@pure
@internal
def _solver_moves(phase: uint256) -> bool:
    return phase == BISECT or phase == TRANSITION or phase == CHILDREN or phase == ROW


@view
@internal
def _time_left_of(game_id: uint256, solver: bool) -> uint256:
    if solver:
        return self.games[game_id].solver_time
    return self.games[game_id].challenger_time


@internal
def _begin_move(game_id: uint256, phase: uint256):
    """
    @dev The checks every move starts with, then the clock: the mover
         pays the seconds since the last move from its own budget.
    """
    assert game_id != 0 and game_id <= self.game_count, "game: unknown game"
    # INVARIANT: right phase.
    assert self.games[game_id].phase == phase, "game: wrong phase"
    solver_moves: bool = self._solver_moves(phase)
    mover: address = self.games[game_id].challenger
    if solver_moves:
        mover = self.games[game_id].solver
    # INVARIANT: right party.
    assert msg.sender == mover, "game: not your move"
    # INVARIANT: clock not run out.
    spent: uint256 = block.timestamp - self.games[game_id].last_move
    left: uint256 = self._time_left_of(game_id, solver_moves)
    assert spent <= left, "game: clock ran out"
    if solver_moves:
        self.games[game_id].solver_time = left - spent
    else:
        self.games[game_id].challenger_time = left - spent
    self.games[game_id].last_move = block.timestamp


@internal
def _meter(game_id: uint256, start: uint256, canonical: uint256, overhead: uint256):
    """
    @dev Adds the gas of the current move, from `start` (its first
         `msg.gas`), to its challenger's meter: the measured body plus
         the allowances of `gas_meter`. Runs the same inside a
         self-delegatecall batch: `msg.gas` and `msg.data` are then the
         move's own, and only the batch's first metered move is allowed
         the transaction's intrinsic gas.
    @param canonical The move's ABI calldata length, selector included.
    @param overhead The move's gas outside its measured body.
    """
    allowance: uint256 = overhead + gas_meter.calldata_gas(canonical)
    if not self._tx_metered:
        self._tx_metered = True
        allowance += gas_meter.TX_GAS
    spent: uint256 = self._challenger_gas[game_id]
    if spent == 0:
        allowance += FIRST_WRITE_GAS
    self._challenger_gas[game_id] = spent + (start - msg.gas + allowance) * gas_meter.price()


@internal
def _resolve(game_id: uint256, solver_won: bool, reason: String[64]):
    """
    @dev Records the winner; the owner reads it with `result`.
    """
    if solver_won:
        self.games[game_id].phase = SOLVER_WON
    else:
        self.games[game_id].phase = CHALLENGER_WON
    log GameResolved(game_id=game_id, solver_won=solver_won, reason=reason)

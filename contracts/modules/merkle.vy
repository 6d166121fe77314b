#pragma version ~=0.4.3
"""
@title Merkle Trees
@custom:contract-name merkle
@notice Binary keccak256 Merkle trees of section 2 of
        `docs/protocol.md`: `depth(n)`, the zero hashes `Z[h]`, inner
        nodes `H(left ‖ right)`, the verification of a proof of one
        leaf against a root whose depth is fixed by the caller, and the
        initial state root `S_0` (section 6).
@dev Stateless: import it (`from ..modules import merkle`) and call
     `merkle.verify(...)`; it needs no `initializes:`.

     Definitions (section 2): `depth(n)` is the smallest `d >= 0` with
     `2**d >= n`; `Z[0] = 0x00..00`, `Z[h + 1] = H(Z[h] ‖ Z[h])`; a
     proof of leaf `i` in a tree of depth `d` is exactly `d` siblings,
     bottom-up, folded as `node = H(node ‖ sib[h])` when bit `h` of `i`
     is 0 and `node = H(sib[h] ‖ node)` when it is 1. The depth is
     always fixed by what was committed (a shape or a count) and never
     taken from the proof, so a proof of the wrong length is rejected
     and an inner node can never pass for a leaf.
"""


# @dev The most siblings a proof may carry (protocol.md section 10.0):
# every tree of the protocol has depth at most 16 (section 8).
MAX_PROOF: constant(uint256) = 16


# @dev The largest height `zero_hash` serves: `Z[0] ... Z[32]`, as in
# `tests/vectors/merkle.json`.
MAX_ZERO_HEIGHT: constant(uint256) = 32


@internal
@pure
def depth(n: uint256) -> uint256:
    """
    @dev The depth of a tree over `n` leaves: the smallest `d >= 0`
         with `2**d >= n`, i.e. the bit length of `n - 1`
         (`depth(1) = 0`, `depth(2) = 1`, `depth(3) = depth(4) = 2`).
         Defined for every `n >= 1` (the protocol uses `n <= 2**32`).
         Reverts with "merkle: zero leaves" if `n == 0`.
    @param n The number of leaves, at least 1.
    @return uint256 The tree depth.
    """
    assert n != 0, "merkle: zero leaves"
    # INVARIANT: `m` is `n - 1` shifted right `d` times; the loop
    # stops when it is 0, so `d` is the bit length of `n - 1`.
    m: uint256 = unsafe_sub(n, 1)
    d: uint256 = 0
    for _: uint256 in range(256):
        if m == 0:
            break
        m = m >> 1
        d = unsafe_add(d, 1)
    return d


@internal
@pure
def zero_hash(h: uint256) -> bytes32:
    """
    @dev The root of an all-padding subtree of height `h`:
         `Z[0] = 0x00..00`, `Z[h + 1] = H(Z[h] ‖ Z[h])`. Reverts with
         "merkle: height out of range" if `h > 32`.
    @param h The subtree height, in [0, 32].
    @return bytes32 `Z[h]`.
    """
    assert h <= MAX_ZERO_HEIGHT, "merkle: height out of range"
    z: bytes32 = empty(bytes32)
    for i: uint256 in range(MAX_ZERO_HEIGHT):
        if i == h:
            break
        z = keccak256(concat(z, z))
    return z


@internal
@pure
def hash_pair(a: bytes32, b: bytes32) -> bytes32:
    """
    @dev An inner node: `H(a ‖ b)`, 64 bytes hashed.
    @param a The left child.
    @param b The right child.
    @return bytes32 `keccak256(a ‖ b)`.
    """
    return keccak256(concat(a, b))


@internal
@pure
def root_from_proof(leaf: bytes32, index: uint256, proof: DynArray[bytes32, MAX_PROOF]) -> bytes32:
    """
    @dev Folds a proof bottom-up (section 2): for `h = 0 ...
         len(proof) - 1`, `node = H(node ‖ proof[h])` if bit `h` of
         `index` is 0, else `node = H(proof[h] ‖ node)`. Bits of
         `index` at and above `len(proof)` are ignored; `verify`
         rejects them. Never reverts.
    @param leaf The leaf value (not hashed again).
    @param index The leaf's position; bit `h` selects the side at
           height `h`.
    @param proof The siblings, bottom-up.
    @return bytes32 The root the proof leads to.
    """
    node: bytes32 = leaf
    bits: uint256 = index
    for sibling: bytes32 in proof:
        if bits & 1 == 0:
            node = keccak256(concat(node, sibling))
        else:
            node = keccak256(concat(sibling, node))
        bits = bits >> 1
    return node


@internal
@pure
def verify(
    leaf: bytes32,
    index: uint256,
    proof: DynArray[bytes32, MAX_PROOF],
    depth_: uint256,
    root: bytes32,
) -> bool:
    """
    @dev Whether `proof` proves `leaf` at `index` in the tree of
         depth `depth_` with root `root` (section 2): true iff the
         proof has exactly `depth_` siblings, `index < 2**depth_` and
         the fold of `root_from_proof` equals `root`. Never reverts
         for a well-typed bad proof: it returns False.
    @param leaf The leaf value.
    @param index The leaf's position.
    @param proof The siblings, bottom-up.
    @param depth_ The committed depth of the tree (never taken from
           the proof).
    @param root The committed root.
    @return bool True iff the proof is valid.
    """
    if len(proof) != depth_:
        return False
    # `depth_ <= MAX_PROOF` here, so `index >> depth_` is exact:
    # nonzero iff `index >= 2**depth_`.
    if index >> depth_ != 0:
        return False
    return self.root_from_proof(leaf, index, proof) == root


@internal
@pure
def verify_update(
    index: uint256,
    proof: DynArray[bytes32, MAX_PROOF],
    depth_: uint256,
    before: bytes32,
    leaf: bytes32,
    after: bytes32,
) -> bool:
    """
    @dev The slot-update proof of the state tree (protocol.md section
         6): one sibling list proves that leaf `index` is empty (`Z[0]`)
         under `before` and holds `leaf` under `after`, so the two roots
         differ in that leaf alone.
    @param index The slot.
    @param proof The `depth_` siblings of the slot, shared by both roots.
    @param depth_ The committed depth of the state tree.
    @param before The root with the slot empty (`S_{j-1}`).
    @param leaf The slot's new value (`T_j`).
    @param after The root with the slot filled (`S_j`).
    @return bool True iff both proofs hold.
    """
    return self.verify(empty(bytes32), index, proof, depth_, before) and \
        self.verify(leaf, index, proof, depth_, after)


@internal
@pure
def initial_state(input_root: bytes32, depth_: uint256) -> bytes32:
    """
    @dev The initial state root `S_0 = root([T_0], D)` (section 6): slot
         0 is the leftmost leaf, so at every level the node is a left
         child whose right sibling is an empty subtree `Z[h]`.
    @param input_root The input's tensor root `T_0`.
    @param depth_ The model's state depth `D`, at most MAX_PROOF.
    @return bytes32 The initial state root `S_0`.
    """
    node: bytes32 = input_root
    zero: bytes32 = empty(bytes32)
    for h: uint256 in range(depth_, bound=MAX_PROOF):
        node = self.hash_pair(node, zero)
        zero = self.hash_pair(zero, zero)
    return node

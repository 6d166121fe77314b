#pragma version ~=0.4.3
"""
@title Merkle Module Reference Implementation
@custom:contract-name merkle_mock
@notice Test harness: exposes the stateless `merkle` module's functions
        as external pure functions, so the tests can check them against
        `tests/vectors/merkle.json`.
@dev Not for deployment outside tests.
"""


# @dev The stateless module under test; it needs no `initializes:`.
from ..modules import merkle


@external
@pure
def depth(n: uint256) -> uint256:
    """
    @dev Returns `merkle.depth(n)`.
    @param n The number of leaves, at least 1.
    @return uint256 The smallest `d` with `2**d >= n`.
    """
    return merkle.depth(n)


@external
@pure
def zero_hash(h: uint256) -> bytes32:
    """
    @dev Returns `merkle.zero_hash(h)`.
    @param h The subtree height, in [0, 32].
    @return bytes32 `Z[h]`.
    """
    return merkle.zero_hash(h)


@external
@pure
def hash_pair(a: bytes32, b: bytes32) -> bytes32:
    """
    @dev Returns `merkle.hash_pair(a, b)`.
    @param a The left child.
    @param b The right child.
    @return bytes32 `keccak256(a ‖ b)`.
    """
    return merkle.hash_pair(a, b)


@external
@pure
def root_from_proof(leaf: bytes32, index: uint256, proof: DynArray[bytes32, merkle.MAX_PROOF]) -> bytes32:
    """
    @dev Returns `merkle.root_from_proof(leaf, index, proof)`.
    @param leaf The leaf value.
    @param index The leaf's position.
    @param proof The siblings, bottom-up.
    @return bytes32 The root the proof leads to.
    """
    return merkle.root_from_proof(leaf, index, proof)


@external
@pure
def verify(
    leaf: bytes32,
    index: uint256,
    proof: DynArray[bytes32, merkle.MAX_PROOF],
    depth_: uint256,
    root: bytes32,
) -> bool:
    """
    @dev Returns `merkle.verify(leaf, index, proof, depth_, root)`.
    @param leaf The leaf value.
    @param index The leaf's position.
    @param proof The siblings, bottom-up.
    @param depth_ The committed tree depth.
    @param root The committed root.
    @return bool True iff the proof is valid.
    """
    return merkle.verify(leaf, index, proof, depth_, root)


@external
@pure
def verify_update(
    index: uint256,
    proof: DynArray[bytes32, merkle.MAX_PROOF],
    depth_: uint256,
    before: bytes32,
    leaf: bytes32,
    after: bytes32,
) -> bool:
    """
    @notice `merkle.verify_update`: slot `index` empty under `before`
            and holding `leaf` under `after`, with one sibling list.
    """
    return merkle.verify_update(index, proof, depth_, before, leaf, after)

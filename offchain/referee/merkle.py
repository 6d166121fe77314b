"""Binary keccak Merkle trees of fixed depth, padded with zero leaves (protocol section 2).

A tree keeps all its levels so that a dispute move (children of a node, the proof of a leaf)
is answered without rehashing. Each level is one contiguous ``bytes`` of 32-byte nodes, so a
whole level is hashed in one ``keccak256_many`` call (native and threaded where built) and a
tree of a 4096-row slot costs a dozen calls, not 4096 of them.
"""

from collections.abc import Sequence
from functools import lru_cache

from .hashing import WORD, ZERO32, keccak256, keccak256_many

MAX_DEPTH = 64


def depth_for(count: int) -> int:
    """Smallest d >= 0 with 2**d >= count."""
    if count < 1:
        raise ValueError(f"a Merkle tree needs at least one leaf, got {count}")
    return (count - 1).bit_length()


@lru_cache(maxsize=None)
def zero_hash(height: int) -> bytes:
    """Root of an all-padding subtree of the given height: Z[0] = 0, Z[h+1] = H(Z[h] || Z[h])."""
    if height == 0:
        return ZERO32
    below = zero_hash(height - 1)
    return keccak256(below + below)


def hash_pair(left: bytes, right: bytes) -> bytes:
    return keccak256(left + right)


class TreeWalk:
    """What any depth-``depth`` tree answers from its ``node(height, index)``: the children of a
    node and a leaf's proof. ``MerkleTree`` holds every level; the trace store's split tree
    (referee.trace) reads its lower levels from the rank that holds them."""

    depth: int

    def node(self, height: int, index: int) -> bytes:
        raise NotImplementedError

    def check_node(self, height: int, index: int) -> None:
        """IndexError unless (height, index) is a node of the tree."""
        if not 0 <= height <= self.depth or not 0 <= index < (1 << (self.depth - height)):
            raise IndexError(f"no node at height {height}, index {index} in a depth-{self.depth} tree")

    def children(self, height: int, index: int) -> tuple[bytes, bytes]:
        """The two children of a node above the leaves."""
        if height < 1:
            raise IndexError("a leaf has no children")
        return self.node(height - 1, 2 * index), self.node(height - 1, 2 * index + 1)

    def proof(self, index: int) -> list[bytes]:
        """Siblings of leaf ``index``, bottom-up."""
        if not 0 <= index < (1 << self.depth):
            raise IndexError(f"leaf {index} is outside a depth-{self.depth} tree")
        return [self.node(h, (index >> h) ^ 1) for h in range(self.depth)]


class MerkleTree(TreeWalk):
    """All levels of a depth-``depth`` tree over ``leaves``; level 0 is the leaves.

    ``leaves`` is a sequence of 32-byte values or their concatenation (what
    ``keccak256_many`` returns); either way the tree keeps each level as one ``bytes``.
    """

    def __init__(self, leaves: Sequence[bytes] | bytes, depth: int | None = None):
        if isinstance(leaves, (bytes, bytearray, memoryview)):
            data = bytes(leaves)
            if len(data) % WORD:
                raise ValueError(f"concatenated leaves must be 32 bytes each, got {len(data)} bytes")
        else:
            leaves = list(leaves)
            if any(len(leaf) != WORD for leaf in leaves):
                raise ValueError("every leaf must be 32 bytes")
            data = b"".join(leaves)
        count = len(data) // WORD
        self.depth = depth_for(count) if depth is None else depth
        if not count or count > (1 << self.depth):
            raise ValueError(f"{count} leaves do not fit a tree of depth {self.depth}")
        self.leaf_count = count
        self._levels: list[bytes] = [data]
        for height in range(self.depth):
            below = self._levels[-1]
            if len(below) // WORD % 2:
                below += zero_hash(height)
            self._levels.append(keccak256_many(below, 2 * WORD))

    @property
    def root(self) -> bytes:
        return self._levels[-1]

    def level(self, height: int) -> list[bytes]:
        """The stored nodes at ``height`` (0 = leaves), without the padding beyond them."""
        data = self._levels[height]
        return [data[i:i + WORD] for i in range(0, len(data), WORD)]

    @property
    def levels(self) -> list[list[bytes]]:
        """Every level as a list of nodes (a copy, for inspection)."""
        return [self.level(h) for h in range(self.depth + 1)]

    def node(self, height: int, index: int) -> bytes:
        """The node at ``height`` (0 = leaves) and position ``index`` within its level."""
        self.check_node(height, index)
        level = self._levels[height]
        return level[WORD * index:WORD * (index + 1)] if WORD * index < len(level) else zero_hash(height)


def merkle_root(leaves: list[bytes], depth: int | None = None) -> bytes:
    return MerkleTree(leaves, depth).root


def root_from_proof(leaf: bytes, index: int, siblings: list[bytes]) -> bytes:
    """Fold a leaf up its sibling path; the caller compares the result with a known root."""
    node = leaf
    for height, sibling in enumerate(siblings):
        node = hash_pair(sibling, node) if (index >> height) & 1 else hash_pair(node, sibling)
    return node


def verify_proof(leaf: bytes, index: int, siblings: list[bytes], root: bytes) -> bool:
    return 0 <= index < (1 << len(siblings)) and root_from_proof(leaf, index, siblings) == root

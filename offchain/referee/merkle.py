"""Binary keccak Merkle trees of fixed depth, padded with zero leaves (protocol section 2).

A tree keeps all its levels so that a dispute move (children of a node, the proof of a leaf)
is answered without rehashing.
"""

from functools import lru_cache

from .hashing import ZERO32, keccak256

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


class MerkleTree:
    """All levels of a depth-``depth`` tree over ``leaves``; level 0 is the leaves."""

    def __init__(self, leaves: list[bytes], depth: int | None = None):
        self.depth = depth_for(len(leaves)) if depth is None else depth
        if not leaves or len(leaves) > (1 << self.depth):
            raise ValueError(f"{len(leaves)} leaves do not fit a tree of depth {self.depth}")
        self.leaf_count = len(leaves)
        self.levels: list[list[bytes]] = [list(leaves)]
        for height in range(self.depth):
            below = self.levels[-1]
            if len(below) % 2:
                below = below + [zero_hash(height)]
            self.levels.append([hash_pair(below[i], below[i + 1]) for i in range(0, len(below), 2)])

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def node(self, height: int, index: int) -> bytes:
        """The node at ``height`` (0 = leaves) and position ``index`` within its level."""
        if not 0 <= height <= self.depth or not 0 <= index < (1 << (self.depth - height)):
            raise IndexError(f"no node at height {height}, index {index} in a depth-{self.depth} tree")
        level = self.levels[height]
        return level[index] if index < len(level) else zero_hash(height)

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

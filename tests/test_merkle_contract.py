"""Merkle trees on-chain: contracts/modules/merkle.vy (through merkle_mock) against
docs/protocol.md section 2, the golden vectors in tests/vectors/merkle.json and random trees
built by tests/reference.py.

Every check is an eth_call (no transaction). `verify` must return False, never revert, for a
well-typed bad proof: wrong length, index out of range or on the wrong side, a changed
sibling, leaf or root.
"""

import random

import ape
import pytest
from helpers import h, load_vectors

import reference as ref

ZERO = b"\x00" * 32


@pytest.fixture(scope="module")
def vectors():
    """tests/vectors/merkle.json, loaded once."""
    data = load_vectors("merkle")
    assert data["trees"], "merkle.json has no trees"
    return data


def _proof_cases(vectors):
    """(tree name, leaf, index, siblings, depth, root) for every proof in the vectors."""
    out = []
    for tree in vectors["trees"]:
        leaves = [h(x) for x in tree["leaves"]]
        for proof in tree["proofs"]:
            i = proof["index"]
            leaf = leaves[i] if i < len(leaves) else ZERO
            out.append((tree["name"], leaf, i, [h(s) for s in proof["siblings"]], tree["depth"], h(tree["root"])))
    return out


def _flip(value: bytes, byte: int = 31) -> bytes:
    out = bytearray(value)
    out[byte] ^= 0x01
    return bytes(out)


# ---------------------------------------------------------------------------
# depth
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 255, 256, 257, 65535, 65536, 65537, 2**31 + 1, 2**32, 2**32 + 1]
)
def test_depth_values_succeeds(merkle_mock, n):
    assert merkle_mock.depth(n) == ref.depth(n)


def test_depth_largest_input_succeeds(merkle_mock):
    # Defined for every n >= 1: the bit length of n - 1.
    assert merkle_mock.depth(2**256 - 1) == 256
    assert merkle_mock.depth(2**255) == 255
    assert merkle_mock.depth(2**255 + 1) == 256


def test_depth_zero_leaves_reverts(merkle_mock):
    with ape.reverts("merkle: zero leaves"):
        merkle_mock.depth(0)


# ---------------------------------------------------------------------------
# zero_hash and hash_pair
# ---------------------------------------------------------------------------


def test_zero_hash_vectors_succeeds(merkle_mock, vectors):
    zs = vectors["zero_hashes"]
    assert len(zs) == 33
    assert h(zs[0]) == ZERO
    failures = [i for i, z in enumerate(zs) if merkle_mock.zero_hash(i) != h(z)]
    assert not failures, f"zero hashes differ at heights {failures}"


@pytest.mark.parametrize("height", [33, 34, 2**256 - 1])
def test_zero_hash_height_out_of_range_reverts(merkle_mock, height):
    with ape.reverts("merkle: height out of range"):
        merkle_mock.zero_hash(height)


def test_hash_pair_succeeds(merkle_mock):
    rng = random.Random(1)
    for _ in range(5):
        a, b = rng.randbytes(32), rng.randbytes(32)
        assert merkle_mock.hash_pair(a, b) == ref.keccak256(a + b)
    assert merkle_mock.hash_pair(ZERO, ZERO) == ref.zero_hashes(2)[1]


def test_hash_pair_order_matters_succeeds(merkle_mock):
    a, b = b"\x01" * 32, b"\x02" * 32
    assert merkle_mock.hash_pair(a, b) != merkle_mock.hash_pair(b, a)


# ---------------------------------------------------------------------------
# root_from_proof and verify on the golden vectors
# ---------------------------------------------------------------------------


def test_root_from_proof_vectors_succeeds(merkle_mock, vectors):
    failures = []
    for name, leaf, index, siblings, _, root in _proof_cases(vectors):
        if merkle_mock.root_from_proof(leaf, index, siblings) != root:
            failures.append(f"{name} index {index}")
    assert not failures, "\n".join(failures)


def test_verify_vectors_succeeds(merkle_mock, vectors):
    failures = []
    for name, leaf, index, siblings, depth, root in _proof_cases(vectors):
        if not merkle_mock.verify(leaf, index, siblings, depth, root):
            failures.append(f"{name} index {index}")
    assert not failures, "\n".join(failures)


def test_root_from_proof_depth_zero_is_leaf_succeeds(merkle_mock):
    leaf = b"\xab" * 32
    assert merkle_mock.root_from_proof(leaf, 0, []) == leaf
    assert merkle_mock.verify(leaf, 0, [], 0, leaf)


# ---------------------------------------------------------------------------
# verify rejects bad proofs (returns False, does not revert)
# ---------------------------------------------------------------------------


def test_verify_wrong_length_proof_succeeds(merkle_mock, vectors):
    for name, leaf, index, siblings, depth, root in _proof_cases(vectors):
        # One sibling too few or too many for the committed depth.
        if siblings:
            assert not merkle_mock.verify(leaf, index, siblings[:-1], depth, root), name
            assert not merkle_mock.verify(leaf, index, siblings[:-1], depth - 1, root), name
        assert not merkle_mock.verify(leaf, index, siblings + [ZERO], depth, root), name
        assert not merkle_mock.verify(leaf, index, siblings, depth + 1, root), name


def test_verify_index_out_of_range_succeeds(merkle_mock, vectors):
    # index + 2^depth has the same low bits, so root_from_proof still matches the root;
    # verify must reject it because index >= 2^depth.
    for name, leaf, index, siblings, depth, root in _proof_cases(vectors):
        bad = index + 2**depth
        assert merkle_mock.root_from_proof(leaf, bad, siblings) == root, name
        assert not merkle_mock.verify(leaf, bad, siblings, depth, root), name
        assert not merkle_mock.verify(leaf, 2**256 - 1, siblings, depth, root), name


def test_verify_wrong_index_succeeds(merkle_mock, vectors):
    for name, leaf, index, siblings, depth, root in _proof_cases(vectors):
        for h_ in range(depth):
            bad = index ^ (1 << h_)
            if siblings[h_] == leaf or _would_collide(leaf, siblings, index, bad):
                continue
            assert not merkle_mock.verify(leaf, bad, siblings, depth, root), f"{name} {index}->{bad}"


def _would_collide(leaf, siblings, index, bad):
    """Whether a flipped index still folds to the same root (identical subtrees, e.g. padding)."""
    def fold(i):
        node = leaf
        for hh, s in enumerate(siblings):
            node = ref.keccak256(node + s) if (i >> hh) & 1 == 0 else ref.keccak256(s + node)
        return node
    return fold(index) == fold(bad)


def test_verify_wrong_sibling_succeeds(merkle_mock, vectors):
    for name, leaf, index, siblings, depth, root in _proof_cases(vectors):
        for h_ in range(depth):
            bad = list(siblings)
            bad[h_] = _flip(bad[h_])
            assert not merkle_mock.verify(leaf, index, bad, depth, root), f"{name} {index} sibling {h_}"


def test_verify_wrong_leaf_or_root_succeeds(merkle_mock, vectors):
    for name, leaf, index, siblings, depth, root in _proof_cases(vectors):
        assert not merkle_mock.verify(_flip(leaf, 0), index, siblings, depth, root), name
        assert not merkle_mock.verify(leaf, index, siblings, depth, _flip(root)), name


def test_verify_inner_node_as_leaf_succeeds(merkle_mock, vectors):
    # An inner node with a shortened proof is rejected: the depth is the committed one.
    tree = next(t for t in vectors["trees"] if t["name"] == "leaves_8")
    leaves = [h(x) for x in tree["leaves"]]
    inner = ref.keccak256(leaves[0] + leaves[1])
    siblings = [h(s) for s in tree["proofs"][0]["siblings"]][1:]
    assert merkle_mock.root_from_proof(inner, 0, siblings) == h(tree["root"])
    assert not merkle_mock.verify(inner, 0, siblings, tree["depth"], h(tree["root"]))


# ---------------------------------------------------------------------------
# Random trees against tests/reference.py
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_verify_random_trees_succeeds(merkle_mock, seed):
    rng = random.Random(seed)
    n = rng.choice([1, 2, 3, 6, 13, 31, 33, 100])
    d = ref.depth(n) + rng.choice([0, 0, 1])
    leaves = [rng.randbytes(32) for _ in range(n)]
    root = ref.merkle_root(leaves, d)
    for index in rng.sample(range(2**d), min(3, 2**d)):
        leaf = leaves[index] if index < n else ZERO
        siblings = ref.merkle_proof(leaves, d, index)
        assert merkle_mock.root_from_proof(leaf, index, siblings) == root
        assert merkle_mock.verify(leaf, index, siblings, d, root)
        assert ref.merkle_verify(leaf, index, siblings, root, depth=d)


def test_verify_max_depth_succeeds(merkle_mock):
    # A proof of MAX_PROOF = 16 siblings (a tree over 2^16 leaves, mostly padding).
    rng = random.Random(16)
    leaf = rng.randbytes(32)
    index = 2**16 - 1
    siblings = [rng.randbytes(32) for _ in range(16)]
    root = merkle_mock.root_from_proof(leaf, index, siblings)
    node = leaf
    for s in siblings:
        node = ref.keccak256(s + node)
    assert root == node
    assert merkle_mock.verify(leaf, index, siblings, 16, root)
    assert not merkle_mock.verify(leaf, 2**16, siblings, 16, root)


# ---------------------------------------------------------------------------
# verify_update: the slot-update proof of the state tree (protocol section 6)
# ---------------------------------------------------------------------------


def test_verify_update_model_vectors_succeeds(merkle_mock):
    """Every step of every golden model: S_{j-1} -> S_j at slot j, and no other pair of roots."""
    checked = 0
    for model in load_vectors("models")["models"]:
        roots = [h(r) for r in model["state_roots"]]
        depth = model["state_depth"]
        for update in model["slot_update_proofs"]:
            j, siblings = update["step"], [h(s) for s in update["siblings"]]
            slot_root = h(model["slots"][j]["tensor_root"])
            assert merkle_mock.verify_update(j, siblings, depth, roots[j - 1], slot_root, roots[j])
            # the same proof cannot skip a step, reuse a slot, or fill a slot that was not empty
            if j >= 2:
                assert not merkle_mock.verify_update(j, siblings, depth, roots[j - 2], slot_root, roots[j])
            assert not merkle_mock.verify_update(j, siblings, depth, roots[j], slot_root, roots[j])
            assert not merkle_mock.verify_update(j - 1, siblings, depth, roots[j - 1], slot_root, roots[j])
            assert not merkle_mock.verify_update(j, siblings[:-1], depth, roots[j - 1], slot_root, roots[j])
            checked += 1
    assert checked >= 9

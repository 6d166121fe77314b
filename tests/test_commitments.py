"""Merkle trees and commitments of offchain/referee against the golden vectors."""

import pytest

from helpers import h, int8_tensor, linear_case_model, load_vectors, to_integer_model
from referee import commitments as cm
from referee.game import bisection_points
from referee.hashing import keccak256
from referee.merkle import MerkleTree, depth_for, verify_proof, zero_hash
from referee.trace import Trace


def test_keccak_is_ethereum_keccak_succeeds():
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_zero_hashes_golden_vectors_succeeds():
    assert [zero_hash(i) for i in range(33)] == [h(z) for z in load_vectors("merkle")["zero_hashes"]]


def test_merkle_trees_golden_vectors_succeeds():
    for tree_vec in load_vectors("merkle")["trees"]:
        leaves = [h(leaf) for leaf in tree_vec["leaves"]]
        tree = MerkleTree(leaves, tree_vec["depth"])
        assert tree.root == h(tree_vec["root"]), tree_vec["name"]
        for proof in tree_vec["proofs"]:
            siblings = [h(s) for s in proof["siblings"]]
            assert tree.proof(proof["index"]) == siblings
            assert verify_proof(leaves[proof["index"]], proof["index"], siblings, tree.root)


def test_merkle_proof_wrong_sibling_or_index_fails():
    leaves = [keccak256(bytes([i])) for i in range(5)]
    tree = MerkleTree(leaves)
    proof = tree.proof(3)
    assert verify_proof(leaves[3], 3, proof, tree.root)
    assert not verify_proof(leaves[3], 2, proof, tree.root)
    assert not verify_proof(leaves[3], 3, proof[:-1], tree.root)
    assert not verify_proof(leaves[3], 3 + 8, proof, tree.root)
    assert not verify_proof(leaves[3], 3, [proof[0][::-1]] + proof[1:], tree.root)


def test_merkle_depth_table_succeeds():
    assert [depth_for(n) for n in (1, 2, 3, 4, 5, 8, 9)] == [0, 1, 2, 2, 3, 3, 4]
    with pytest.raises(ValueError):
        depth_for(0)


def test_tensor_commitments_golden_vectors_succeeds():
    for case in load_vectors("tensors")["cases"]:
        tensor = int8_tensor(case["values"])
        commitment = cm.commit_tensor(tensor)
        assert cm.packed(tensor) == h(case["packed"]), case["name"]
        assert cm.row_leaves(tensor) == [h(leaf) for leaf in case["row_leaves"]], case["name"]
        assert commitment.rows_root == h(case["rows_root"]), case["name"]
        assert commitment.root == h(case["tensor_root"]), case["name"]
        for proof in case["row_proofs"]:
            assert commitment.tree.proof(proof["index"]) == [h(s) for s in proof["siblings"]], case["name"]


def test_weight_leaves_golden_vectors_succeeds():
    for case in load_vectors("linear")["cases"]:
        model = linear_case_model(case)
        op = model.ops[0]
        assert cm.weight_leaves(op.weight, op.bias, op.multiplier, op.shift) == [h(case["weight_leaf"])], case["name"]


def test_models_golden_vectors_every_commitment_succeeds():
    for vec in load_vectors("models")["models"]:
        model = to_integer_model(vec)
        assert model.state_depth == vec["state_depth"]
        for op, op_vec in zip(model.ops, vec["ops"]):
            assert op.weights.tree.levels[0] == [h(x) for x in op_vec["weight_leaves"]]
            assert op.weights.rows_root == h(op_vec["weights_rows_root"])
            assert op.weights.root == h(op_vec["weights_root"])
            assert op.descriptor() == h(op_vec["descriptor"])
        for j, op_vec in enumerate(vec["ops"], start=1):
            assert model.op_tree.levels[0][j - 1] == h(op_vec["op_leaf"])
            assert model.op_tree.proof(j - 1) == [h(s) for s in op_vec["op_proof"]]
        assert model.ops_root == h(vec["ops_root"])
        assert model.root == h(vec["model_root"]), vec["name"]

        trace = Trace(model.root, [int8_tensor(slot["values"]) for slot in vec["slots"]])
        assert trace.slot_roots == [h(slot["tensor_root"]) for slot in vec["slots"]]
        assert [c.rows_root for c in trace.slot_commitments] == [h(slot["rows_root"]) for slot in vec["slots"]]
        assert trace.state_roots == [h(s) for s in vec["state_roots"]]
        for proof in vec["slot_update_proofs"]:
            assert trace.slot_update_proof(proof["step"]) == [h(s) for s in proof["siblings"]]


def test_slot_update_proof_proves_both_states_succeeds():
    vec = load_vectors("models")["models"][-1]
    trace = Trace(b"\0" * 32, [int8_tensor(slot["values"]) for slot in vec["slots"]])
    for step in range(1, trace.op_count + 1):
        siblings = trace.slot_update_proof(step)
        assert verify_proof(cm.EMPTY_SLOT, step, siblings, trace.state_roots[step - 1])
        assert verify_proof(trace.slot_roots[step], step, siblings, trace.state_roots[step])
        assert not verify_proof(trace.slot_roots[step], step, siblings, trace.state_roots[step - 1])


def test_bisection_points_golden_vectors_succeeds():
    for case in load_vectors("bisection")["cases"]:
        assert bisection_points(case["lo"], case["hi"], case["arity"]) == case["points"], case


@pytest.mark.parametrize("lo, hi, arity", [(3, 3, 2), (5, 2, 2), (0, 8, 3), (0, 8, 1)])
def test_bisection_points_bad_interval_fails(lo, hi, arity):
    with pytest.raises(ValueError):
        bisection_points(lo, hi, arity)

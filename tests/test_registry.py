"""ModelRegistry (contracts/ModelRegistry.vy) against docs/protocol.md sections 5 and 10.1.

Model roots and state depths are recomputed with ``referee.commitments`` and checked against
the golden models of tests/vectors/models.json; every revert reason is checked once.
"""

import ape
import pytest

from helpers import h, load_vectors
from referee.commitments import model_root, state_depth
from referee.hashing import keccak256

MAX_OPS = 65535
MAX_COLS = 16384
OPS_ROOT = keccak256(b"ops root")


@pytest.fixture(scope="module")
def registry(project, deployer):
    return deployer.deploy(project.ModelRegistry)


@pytest.fixture(scope="module")
def registrant(accounts):
    return accounts[1]


# ---------------------------------------------------------------------------
# register
# ---------------------------------------------------------------------------


def test_register_succeeds(registry, registrant):
    tx = registry.register(3, 64, 10, OPS_ROOT, sender=registrant)
    root = model_root(3, 64, 10, OPS_ROOT)
    assert registry.model_count() == 1
    assert registry.model_id(root) == 1
    model = registry.model(1)
    assert model.root == root
    assert model.ops_root == OPS_ROOT
    assert (model.n_ops, model.input_cols, model.output_cols) == (3, 64, 10)
    assert model.state_depth == 2  # depth(4): slots 0..3
    assert model.registrant == registrant.address
    [log] = tx.decode_logs(registry.ModelRegistered)
    assert log.model_id == 1 and log.root == root and log.registrant == registrant.address
    assert (log.n_ops, log.input_cols, log.output_cols, log.ops_root) == (3, 64, 10, OPS_ROOT)


def test_register_ids_increment_succeeds(registry, registrant, accounts):
    roots = []
    for i in range(3):
        ops_root = keccak256(b"model %d" % i)
        registry.register(1 + i, 8, 4, ops_root, sender=accounts[1 + i])
        roots.append(model_root(1 + i, 8, 4, ops_root))
    assert registry.model_count() == 3
    for i, root in enumerate(roots):
        assert registry.model_id(root) == i + 1
        assert registry.model(i + 1).root == root
        assert registry.model(i + 1).registrant == accounts[1 + i].address


@pytest.mark.parametrize("n_ops,want", [(1, 1), (2, 2), (3, 2), (4, 3), (7, 3), (8, 4), (MAX_OPS, 16)])
def test_register_state_depth_succeeds(registry, registrant, n_ops, want):
    # D = depth(N + 1): slots 0..N (protocol.md section 5).
    assert state_depth(n_ops) == want
    registry.register(n_ops, 1, 1, OPS_ROOT, sender=registrant)
    assert registry.model(1).state_depth == want


def test_register_bounds_succeeds(registry, registrant):
    registry.register(MAX_OPS, MAX_COLS, MAX_COLS, OPS_ROOT, sender=registrant)
    registry.register(1, 1, 1, OPS_ROOT, sender=registrant)
    assert registry.model(1).root == model_root(MAX_OPS, MAX_COLS, MAX_COLS, OPS_ROOT)
    assert registry.model(2).root == model_root(1, 1, 1, OPS_ROOT)


def test_register_same_ops_root_other_shape_succeeds(registry, registrant):
    # The shapes are part of the model root: one ops root, two models.
    registry.register(2, 8, 4, OPS_ROOT, sender=registrant)
    registry.register(2, 8, 5, OPS_ROOT, sender=registrant)
    assert registry.model(1).root != registry.model(2).root


def test_register_vector_models_succeeds(registry, registrant):
    for i, vec in enumerate(load_vectors("models")["models"], start=1):
        n_ops = len(vec["ops"])
        registry.register(n_ops, vec["input_cols"], vec["output_cols"], h(vec["ops_root"]), sender=registrant)
        model = registry.model(i)
        assert model.root == h(vec["model_root"]), vec["name"]
        assert model.state_depth == vec["state_depth"], vec["name"]
        assert registry.model_id(h(vec["model_root"])) == i


def test_register_duplicate_reverts(registry, registrant, accounts):
    registry.register(3, 64, 10, OPS_ROOT, sender=registrant)
    with ape.reverts("registry: model already registered"):
        registry.register(3, 64, 10, OPS_ROOT, sender=accounts[2])
    assert registry.model_count() == 1


@pytest.mark.parametrize("n_ops", [0, MAX_OPS + 1, 2**256 - 1])
def test_register_op_count_out_of_range_reverts(registry, registrant, n_ops):
    with ape.reverts("registry: op count out of range"):
        registry.register(n_ops, 8, 4, OPS_ROOT, sender=registrant)


@pytest.mark.parametrize("cols", [0, MAX_COLS + 1])
def test_register_input_cols_out_of_range_reverts(registry, registrant, cols):
    with ape.reverts("registry: input cols out of range"):
        registry.register(2, cols, 4, OPS_ROOT, sender=registrant)


@pytest.mark.parametrize("cols", [0, MAX_COLS + 1])
def test_register_output_cols_out_of_range_reverts(registry, registrant, cols):
    with ape.reverts("registry: output cols out of range"):
        registry.register(2, 8, cols, OPS_ROOT, sender=registrant)


def test_register_zero_ops_root_reverts(registry, registrant):
    with ape.reverts("registry: zero ops root"):
        registry.register(2, 8, 4, bytes(32), sender=registrant)


# ---------------------------------------------------------------------------
# views
# ---------------------------------------------------------------------------


def test_model_unknown_reverts(registry, registrant):
    with ape.reverts("registry: unknown model"):
        registry.model(0)
    with ape.reverts("registry: unknown model"):
        registry.model(1)
    registry.register(2, 8, 4, OPS_ROOT, sender=registrant)
    registry.model(1)
    with ape.reverts("registry: unknown model"):
        registry.model(2)
    with ape.reverts("registry: unknown model"):
        registry.model(0)


def test_model_id_unknown_root_succeeds(registry, registrant):
    assert registry.model_id(model_root(2, 8, 4, OPS_ROOT)) == 0
    registry.register(2, 8, 4, OPS_ROOT, sender=registrant)
    assert registry.model_id(model_root(2, 8, 4, OPS_ROOT)) == 1
    assert registry.model_id(bytes(32)) == 0
    assert registry.model_id(OPS_ROOT) == 0


def test_model_count_empty_succeeds(registry):
    assert registry.model_count() == 0

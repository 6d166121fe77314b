"""ModelRegistry (contracts/ModelRegistry.vy) against docs/protocol.md sections 5 and 10.1.

Model roots and state depths are recomputed with ``referee.commitments`` and checked against
the golden models of tests/vectors/models.json; every revert reason is checked once.
"""

import ape
import pytest

from helpers import h, load_vectors
from referee.commitments import model_root, state_depth
from referee.hashing import enc, keccak256
from referee.model import RegistryFacts, entry_key

MAX_OPS = 65535
MAX_COLS = 16384
MAX_ROWS = 65536
OPS_ROOT = keccak256(b"ops root")
# the facts of an int8 MLP: int8 in and out, any row count, the output as many rows as the input
I8 = (0, 0, 1, MAX_ROWS, 1, 1)


def key(root: bytes, facts=I8) -> bytes:
    """The registry's entry key (protocol 10.1): the model root and every other fact."""
    return entry_key(root, RegistryFacts(*facts))


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
    tx = registry.register(3, 64, 10, OPS_ROOT, *I8, sender=registrant)
    root = model_root(3, 64, 10, OPS_ROOT)
    assert registry.model_count() == 1
    assert registry.model_id(key(root)) == 1
    model = registry.model(1)
    assert model.root == root
    assert model.ops_root == OPS_ROOT
    assert (model.n_ops, model.input_cols, model.output_cols) == (3, 64, 10)
    assert model.state_depth == 2  # depth(4): slots 0..3
    assert model.registrant == registrant.address
    assert model.entry == key(root) == keccak256(root + enc(*I8[1:]))
    assert (model.input_dtype, model.output_dtype, model.row_step, model.max_input_rows, model.out_rows_num,
            model.out_rows_den) == I8
    [log] = tx.decode_logs(registry.ModelRegistered)
    assert log.entry == key(root) and (log.input_dtype, log.output_dtype, log.row_step, log.max_input_rows,
                                       log.out_rows_num, log.out_rows_den) == I8
    assert log.model_id == 1 and log.root == root and log.registrant == registrant.address
    assert (log.n_ops, log.input_cols, log.output_cols, log.ops_root) == (3, 64, 10, OPS_ROOT)


def test_register_ids_increment_succeeds(registry, registrant, accounts):
    roots = []
    for i in range(3):
        ops_root = keccak256(b"model %d" % i)
        registry.register(1 + i, 8, 4, ops_root, *I8, sender=accounts[1 + i])
        roots.append(model_root(1 + i, 8, 4, ops_root))
    assert registry.model_count() == 3
    for i, root in enumerate(roots):
        assert registry.model_id(key(root)) == i + 1
        assert registry.model(i + 1).root == root
        assert registry.model(i + 1).registrant == accounts[1 + i].address


@pytest.mark.parametrize("n_ops,want", [(1, 1), (2, 2), (3, 2), (4, 3), (7, 3), (8, 4), (MAX_OPS, 16)])
def test_register_state_depth_succeeds(registry, registrant, n_ops, want):
    # D = depth(N + 1): slots 0..N (protocol.md section 5).
    assert state_depth(n_ops) == want
    registry.register(n_ops, 1, 1, OPS_ROOT, *I8, sender=registrant)
    assert registry.model(1).state_depth == want


def test_register_bounds_succeeds(registry, registrant):
    registry.register(MAX_OPS, MAX_COLS, MAX_COLS, OPS_ROOT, *I8, sender=registrant)
    registry.register(1, 1, 1, OPS_ROOT, *I8, sender=registrant)
    assert registry.model(1).root == model_root(MAX_OPS, MAX_COLS, MAX_COLS, OPS_ROOT)
    assert registry.model(2).root == model_root(1, 1, 1, OPS_ROOT)


def test_register_same_ops_root_other_shape_succeeds(registry, registrant):
    # The shapes are part of the model root: one ops root, two models.
    registry.register(2, 8, 4, OPS_ROOT, *I8, sender=registrant)
    registry.register(2, 8, 5, OPS_ROOT, *I8, sender=registrant)
    assert registry.model(1).root != registry.model(2).root


def test_register_vector_models_succeeds(registry, registrant):
    for i, vec in enumerate(load_vectors("models")["models"], start=1):
        n_ops = len(vec["ops"])
        registry.register(n_ops, vec["input_cols"], vec["output_cols"], h(vec["ops_root"]), *I8, sender=registrant)
        model = registry.model(i)
        assert model.root == h(vec["model_root"]), vec["name"]
        assert model.state_depth == vec["state_depth"], vec["name"]
        assert registry.model_id(key(h(vec["model_root"]))) == i


def test_register_duplicate_reverts(registry, registrant, accounts):
    registry.register(3, 64, 10, OPS_ROOT, *I8, sender=registrant)
    with ape.reverts("registry: model already registered"):
        registry.register(3, 64, 10, OPS_ROOT, *I8, sender=accounts[2])
    assert registry.model_count() == 1


@pytest.mark.parametrize("n_ops", [0, MAX_OPS + 1, 2**256 - 1])
def test_register_op_count_out_of_range_reverts(registry, registrant, n_ops):
    with ape.reverts("registry: op count out of range"):
        registry.register(n_ops, 8, 4, OPS_ROOT, *I8, sender=registrant)


@pytest.mark.parametrize("cols", [0, MAX_COLS + 1])
def test_register_input_cols_out_of_range_reverts(registry, registrant, cols):
    with ape.reverts("registry: input cols out of range"):
        registry.register(2, cols, 4, OPS_ROOT, *I8, sender=registrant)


@pytest.mark.parametrize("cols", [0, MAX_COLS + 1])
def test_register_output_cols_out_of_range_reverts(registry, registrant, cols):
    with ape.reverts("registry: output cols out of range"):
        registry.register(2, 8, cols, OPS_ROOT, *I8, sender=registrant)


def test_register_zero_ops_root_reverts(registry, registrant):
    with ape.reverts("registry: zero ops root"):
        registry.register(2, 8, 4, bytes(32), *I8, sender=registrant)


# the facts of 10.1: dtypes and row rule, the 160-byte root of a token model, squatting


def test_register_token_model_root_has_input_dtype_succeeds(registry, registrant):
    # protocol 5: an int32 input appends its dtype (160 bytes hashed); the int8 root is unchanged
    facts = (1, 1, 1, 65536 // 6, 6, 1)  # a decoder [1, 6] ids -> [6, 1] int32
    registry.register(4, 6, 1, OPS_ROOT, *facts, sender=registrant)
    root = keccak256(enc(4, 6, 1, OPS_ROOT, 1))
    assert root == model_root(4, 6, 1, OPS_ROOT, 1) != model_root(4, 6, 1, OPS_ROOT)
    model = registry.model(1)
    assert model.root == root and model.entry == key(root, facts) and registry.model_id(key(root, facts)) == 1
    assert (model.input_dtype, model.output_dtype, model.row_step, model.max_input_rows, model.out_rows_num,
            model.out_rows_den) == facts


def test_register_squatter_wrong_facts_does_not_block_true_entry_succeeds(registry, registrant, accounts):
    # a squatter registers the true root with wrong facts first: its entry has another key, and
    # the true one is still registered, and found by its own key
    true_facts, wrong = (1, 1, 1, 65536 // 6, 6, 1), (1, 1, 1, 65536 // 6, 1, 1)
    registry.register(4, 6, 1, OPS_ROOT, *wrong, sender=accounts[2])
    registry.register(4, 6, 1, OPS_ROOT, *true_facts, sender=registrant)
    root = model_root(4, 6, 1, OPS_ROOT, 1)
    assert registry.model(1).root == registry.model(2).root == root
    assert registry.model_id(key(root, wrong)) == 1 and registry.model_id(key(root, true_facts)) == 2
    for i, facts in enumerate([(0, 1, 1, 65536 // 6, 6, 1), (1, 0, 1, 65536 // 6, 6, 1), (1, 1, 2, 10922, 6, 1),
                               (1, 1, 1, 10000, 6, 1), (1, 1, 1, 65536 // 6, 3, 1)], start=3):
        registry.register(4, 6, 1, OPS_ROOT, *facts, sender=accounts[2])  # every fact is in the key
        assert registry.model_id(key(model_root(4, 6, 1, OPS_ROOT, facts[0]), facts)) == i
    with ape.reverts("registry: model already registered"):
        registry.register(4, 6, 1, OPS_ROOT, *true_facts, sender=accounts[2])


@pytest.mark.parametrize("facts, reason", [
    ((2, 0, 1, MAX_ROWS, 1, 1), "registry: input dtype out of range"),
    ((3, 0, 1, MAX_ROWS, 1, 1), "registry: input dtype out of range"),
    ((0, 3, 1, MAX_ROWS, 1, 1), "registry: output dtype out of range"),
    ((0, 0, 0, MAX_ROWS, 1, 1), "registry: row step out of range"),
    ((0, 0, MAX_ROWS + 1, MAX_ROWS, 1, 1), "registry: row step out of range"),
    ((0, 0, 1, 0, 1, 1), "registry: max input rows out of range"),
    ((0, 0, 4, 2, 1, 1), "registry: max input rows out of range"),
    ((0, 0, 4, 6, 1, 1), "registry: max input rows out of range"),
    ((0, 0, 1, MAX_ROWS + 1, 1, 1), "registry: max input rows out of range"),
    ((0, 0, 1, MAX_ROWS, 0, 1), "registry: output row rule out of range"),
    ((0, 0, 1, MAX_ROWS, 1, 0), "registry: output row rule out of range"),
    ((0, 0, 1, MAX_ROWS, MAX_ROWS + 1, 1), "registry: output row rule out of range"),
    ((0, 0, 1, MAX_ROWS, 1, MAX_ROWS + 1), "registry: output row rule out of range"),
    ((0, 0, 1, MAX_ROWS, 2, 2), "registry: output row rule not in lowest terms"),
    ((0, 0, 1, MAX_ROWS, 6, 4), "registry: output row rule not in lowest terms"),
])
def test_register_bad_facts_reverts(registry, registrant, facts, reason):
    with ape.reverts(reason):
        registry.register(2, 8, 4, OPS_ROOT, *facts, sender=registrant)


def test_register_fact_bounds_succeeds(registry, registrant):
    registry.register(2, 8, 4, OPS_ROOT, 1, 2, MAX_ROWS, MAX_ROWS, MAX_ROWS, 1, sender=registrant)
    registry.register(2, 8, 4, OPS_ROOT, 0, 1, 3, 65535, 46368, 28657, sender=registrant)  # Fibonacci: gcd 1
    assert registry.model_count() == 2


# ---------------------------------------------------------------------------
# views
# ---------------------------------------------------------------------------


def test_model_unknown_reverts(registry, registrant):
    with ape.reverts("registry: unknown model"):
        registry.model(0)
    with ape.reverts("registry: unknown model"):
        registry.model(1)
    registry.register(2, 8, 4, OPS_ROOT, *I8, sender=registrant)
    registry.model(1)
    with ape.reverts("registry: unknown model"):
        registry.model(2)
    with ape.reverts("registry: unknown model"):
        registry.model(0)


def test_model_id_unknown_root_succeeds(registry, registrant):
    assert registry.model_id(key(model_root(2, 8, 4, OPS_ROOT))) == 0
    registry.register(2, 8, 4, OPS_ROOT, *I8, sender=registrant)
    assert registry.model_id(key(model_root(2, 8, 4, OPS_ROOT))) == 1
    assert registry.model_id(bytes(32)) == 0
    assert registry.model_id(OPS_ROOT) == 0


def test_model_count_empty_succeeds(registry):
    assert registry.model_count() == 0

"""The native batch keccak (offchain/referee/native/keccak.c) and the path without it.

Every lane width the CPU runs (1, 4 with AVX2, 8 with AVX-512) and 1, 2 and many threads give
the same digests as safe-pysha3, message by message, for lengths around the 136-byte rate and
counts around the lane groups; the per-message fallback (forced) gives the same bits; Merkle
trees and tensor commitments agree across both paths and with the independent reference. No
timings here: speed is for benchmarks/bench_transformer.py.
"""

import os
import random
import subprocess
import sys

import numpy as np
import pytest
import sha3
import torch

import reference as ref
from referee import commitments as cm
from referee import hashing
from referee.merkle import MerkleTree, depth_for, verify_proof

NATIVE = hashing._NATIVE is not None
LANES = [1] + ([4] if hashing._NATIVE_STATE in (4, 8) else []) + ([8] if hashing._NATIVE_STATE == 8 else []) \
    if NATIVE else []
LENGTHS = [0, 1, 7, 8, 31, 32, 63, 64, 135, 136, 137, 200, 271, 272, 273, 384, 1000, 1536, 4096]
needs_native = pytest.mark.skipif(not NATIVE, reason=f"native keccak {hashing._NATIVE_STATE} (make native builds it)")


def pysha3_many(data: bytes, length: int, count: int) -> bytes:
    return b"".join(sha3.keccak_256(data[k * length:(k + 1) * length]).digest() for k in range(count))


@pytest.fixture
def per_message(monkeypatch):
    """Force the path a machine without the library takes."""
    monkeypatch.setattr(hashing, "_NATIVE", None)


@needs_native
@pytest.mark.parametrize("length", LENGTHS)
def test_native_equals_pysha3_every_lane_width_and_thread_count_succeeds(length):
    rng = random.Random(length)
    for count in (1, 3, 4, 7, 8, 9, 17, 33):
        data = rng.randbytes(length * count)
        want = pysha3_many(data, length, count)
        for lanes in LANES:
            for threads in (1, 2, 7):
                assert hashing.keccak256_many(data, length, count, threads, lanes) == want, (count, lanes, threads)


@needs_native
@pytest.mark.parametrize("length", [64, 384, 1536])
def test_native_splits_large_batches_across_threads_equal_succeeds(length):
    # Enough blocks that the library starts every thread asked for (2048 blocks each at least),
    # and a count that is no multiple of 8: chunks end on lane groups, the rest runs 1 lane.
    count = 8 * 2048 * 2 // (length // 136 + 1) + 5
    data = random.Random(count).randbytes(length * count)
    want = pysha3_many(data, length, count)
    for lanes in LANES:
        for threads in (1, 2, 3, 16):
            assert hashing.keccak256_many(data, length, count, threads, lanes) == want, (lanes, threads)


@pytest.mark.parametrize("length", [0, 1, 136, 384])
def test_per_message_fallback_equals_pysha3_succeeds(per_message, length):
    data = random.Random(7).randbytes(length * 11)
    assert hashing.keccak256_many(data, length, 11) == pysha3_many(data, length, 11)


def test_keccak256_many_takes_any_buffer_without_changing_bits_succeeds():
    data = random.Random(1).randbytes(384 * 20)
    want = pysha3_many(data, 384, 20)
    array = np.frombuffer(bytearray(data), dtype=np.uint8)
    for buffer in (data, bytearray(data), memoryview(data), array, array.reshape(20, 384),
                   torch.frombuffer(bytearray(data), dtype=torch.uint8).numpy()):
        assert hashing.keccak256_many(buffer, 384) == want
    assert hashing.keccak256_many(data, 384, 3) == want[:96]  # a prefix of the buffer
    assert hashing.keccak256_many(b"", 0, 2) == pysha3_many(b"", 0, 2)


def test_keccak256_many_refuses_what_does_not_fit_fails():
    with pytest.raises(ValueError, match="do not fit"):
        hashing.keccak256_many(bytes(100), 50, 3)
    with pytest.raises(ValueError, match="count is needed"):
        hashing.keccak256_many(b"", 0)


@pytest.mark.parametrize("mode", ["native", "per message"])
def test_merkle_trees_equal_the_reference_succeeds(request, mode):
    if mode == "per message":
        request.getfixturevalue("per_message")
    elif not NATIVE:
        pytest.skip("no native keccak")
    rng = random.Random(3)
    for count in [1, 2, 3, 5, 8, 13, 33, 64, 100]:
        leaves = [rng.randbytes(32) for _ in range(count)]
        for depth in (depth_for(count), depth_for(count) + 2):
            tree = MerkleTree(leaves, depth)
            assert tree.root == ref.merkle_root(leaves, depth)
            assert tree.level(0) == leaves and tree.levels[0] == leaves
            assert MerkleTree(b"".join(leaves), depth).root == tree.root  # leaves given concatenated
            for index in {0, count // 2, count - 1, (1 << depth) - 1}:
                assert tree.proof(index) == ref.merkle_proof(leaves, depth, index)
                leaf = leaves[index] if index < count else bytes(32)
                assert tree.node(0, index) == leaf and verify_proof(leaf, index, tree.proof(index), tree.root)


def test_merkle_tree_refuses_leaves_that_are_not_32_bytes_fails():
    with pytest.raises(ValueError, match="32 bytes"):
        MerkleTree([bytes(32), bytes(31)])
    with pytest.raises(ValueError, match="32 bytes"):
        MerkleTree(bytes(33))


def test_tensor_commitments_native_and_per_message_equal_succeeds(monkeypatch):
    gen = torch.Generator().manual_seed(5)
    tensors = [torch.randint(-128, 128, shape, generator=gen, dtype=torch.int8)
               for shape in [(1, 1), (5, 384), (33, 136), (64, 1536)]]
    tensors += [torch.randint(-2**31, 2**31, (7, 13), generator=gen, dtype=torch.int32)]
    weights = (tensors[2], torch.arange(-16, 17, dtype=torch.int32), torch.arange(1, 34, dtype=torch.int32),
               torch.full((33,), 9, dtype=torch.int32))

    def commit():
        return [(c.root, c.tree.levels) for c in map(cm.commit_tensor, tensors)] + \
            [cm.commit_weights(*weights).root, cm.weight_leaves(*weights)]

    got = commit()
    monkeypatch.setattr(hashing, "_NATIVE", None)
    assert commit() == got
    for t, (root, _) in zip(tensors, got):  # and the independent reference: row by row
        rows = [bytes(cm.packed(t[r:r + 1])) for r in range(t.shape[0])]
        leaves = [sha3.keccak_256(row).digest() for row in rows]
        rows_root = ref.merkle_root(leaves, ref.depth(t.shape[0]))
        assert cm.header_root(t.shape[0], t.shape[1], rows_root, cm.dtype_code(t)) == root


def test_native_keccak_off_or_missing_is_said_and_per_message_succeeds(monkeypatch, tmp_path):
    code = "from referee import hashing; print(hashing.describe()); print(hashing._NATIVE is None)"
    env = dict(os.environ, REFEREE_NATIVE_KECCAK="0")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.splitlines() == ["safe-pysha3 per message, batches too (native keccak off (REFEREE_NATIVE_KECCAK=0))",
                                "True"]
    monkeypatch.delenv("REFEREE_NATIVE_KECCAK", raising=False)  # the suite may run with it set to 0
    monkeypatch.setattr(hashing, "NATIVE_LIBRARY", tmp_path / "keccak.so")
    assert hashing._load_native() == (None, "not built (make setup builds it with cc)")
    (tmp_path / "keccak.so").write_bytes(b"not a library")
    lib, why = hashing._load_native()
    assert lib is None and why.startswith("cannot load keccak.so")
    (tmp_path / "keccak.c").write_text("/* edited after the build */")
    os.utime(tmp_path / "keccak.so", (1, 1))
    assert hashing._load_native() == (None, "stale: keccak.c is newer (make setup rebuilds it)")


def test_build_compiles_once_and_says_so_without_a_compiler_succeeds(tmp_path):
    """native/build.py on a copy: no compiler -> one line, exit 0, no library; with one -> the
    library, atomically; a second run (nothing changed) does nothing."""
    native = tmp_path / "offchain" / "referee" / "native"
    native.mkdir(parents=True)
    for name in ("keccak.c", "build.py"):
        (native / name).write_bytes((hashing.NATIVE_LIBRARY.parent / name).read_bytes())

    def build(cc: str) -> str:
        env = dict(os.environ, CC=cc)
        done = subprocess.run([sys.executable, str(native / "build.py")], capture_output=True, text=True, env=env)
        assert done.returncode == 0 and not done.stderr, done.stderr
        return done.stdout

    assert build("no-such-cc") == "native keccak: not built (no C compiler 'no-such-cc'); hashing row by row instead\n"
    assert not (native / "keccak.so").exists()
    if subprocess.run(["sh", "-c", "command -v cc"], capture_output=True).returncode != 0:
        pytest.skip("no C compiler here")
    assert build("cc") == "native keccak: built offchain/referee/native/keccak.so\n"
    assert build("cc") == ""  # up to date: nothing to do
    assert [p.name for p in native.iterdir() if p.suffix == ".so"] == ["keccak.so"]  # no partial file left

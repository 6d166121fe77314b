"""The trace store: persistent, atomic, self-verifying, and enough to answer every dispute move."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from helpers import int8_tensor, random_input, random_ref_model, small_transformer, to_integer_model, token_ids
from referee import commitments as cm
from referee.executor import run_model
from referee.game import bisection_points
from referee.errors import TraceStoreError
from referee.hashing import keccak256
from referee.merkle import hash_pair, verify_proof
from referee.parallel_commit import commit_local
from referee.trace import SplitTrace, Trace, TraceStore, _read_metadata


@pytest.fixture(scope="module")
def model_and_trace():
    rng = random.Random(11)
    model = to_integer_model(random_ref_model(rng, 20, [16, 12, 12, 8, 5]))
    x = int8_tensor(random_input(rng, 6, 20))
    return model, Trace(model.root, run_model(model, x, "cpu"))


def test_save_then_load_in_new_store_succeeds(tmp_path, model_and_trace):
    model, trace = model_and_trace
    path = TraceStore(tmp_path).save(trace)
    assert path.name.endswith(".trace") and not list(path.parent.glob(".*.tmp"))
    loaded = TraceStore(tmp_path).load(model.root, trace.input_root)  # a fresh store: a restart
    assert loaded.state_roots == trace.state_roots
    assert all(a.equal(b) for a, b in zip(loaded.slots, trace.slots))
    assert (model.root, trace.input_root) in TraceStore(tmp_path)


def test_load_unknown_key_fails(tmp_path, model_and_trace):
    model, _ = model_and_trace
    with pytest.raises(TraceStoreError, match="no stored trace"):
        TraceStore(tmp_path).load(model.root, b"\1" * 32)


@pytest.mark.parametrize("cut", [3, 50, -1])
def test_load_truncated_file_fails(tmp_path, model_and_trace, cut):
    model, trace = model_and_trace
    path = TraceStore(tmp_path).save(trace)
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(TraceStoreError, match="corrupt or truncated"):
        TraceStore(tmp_path).load(model.root, trace.input_root)


def test_load_flipped_value_fails(tmp_path, model_and_trace):
    model, trace = model_and_trace
    path = TraceStore(tmp_path).save(trace)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # the last byte of the last slot tensor
    path.write_bytes(bytes(data))
    with pytest.raises(TraceStoreError, match="does not verify"):
        TraceStore(tmp_path).load(model.root, trace.input_root)


@pytest.mark.parametrize("edit, message", [
    ({"slot_roots": "not json"}, "malformed metadata"),
    ({"model_root": "0xzz"}, "malformed metadata"),
    ({"format": "other"}, "not a Referee trace file"),
])
def test_load_bad_metadata_fails(tmp_path, model_and_trace, edit, message):
    model, trace = model_and_trace
    path = TraceStore(tmp_path).save(trace)
    tensors = load_safetensors(path.read_bytes())
    metadata = {**_read_metadata(path.read_bytes()), **edit}
    path.write_bytes(save_safetensors(tensors, metadata=metadata))
    with pytest.raises(TraceStoreError, match=message):
        TraceStore(tmp_path).load(model.root, trace.input_root)


def test_load_wrong_slot_dtype_fails(tmp_path, model_and_trace):
    model, trace = model_and_trace
    path = TraceStore(tmp_path).save(trace)
    tensors = load_safetensors(path.read_bytes())
    tensors["slot1"] = tensors["slot1"].to(torch.int64)
    path.write_bytes(save_safetensors(tensors, metadata=_read_metadata(path.read_bytes())))
    with pytest.raises(TraceStoreError, match="not a 2-D int8, int16 or int32 tensor"):
        TraceStore(tmp_path).load(model.root, trace.input_root)


def test_crash_before_rename_leaves_no_trace_succeeds(tmp_path, model_and_trace, monkeypatch):
    model, trace = model_and_trace

    def crash(*_):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        TraceStore(tmp_path).save(trace)
    monkeypatch.undo()
    with pytest.raises(TraceStoreError, match="no stored trace"):
        TraceStore(tmp_path).load(model.root, trace.input_root)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # the temporary file is gone too


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.45])
def test_killed_writer_never_leaves_a_torn_file_succeeds(tmp_path, delay):
    """SIGKILL a process that rewrites a large trace in a loop; what is left must verify."""
    script = textwrap.dedent(f"""
        import torch
        from referee.trace import Trace, TraceStore, _read_metadata
        g = torch.Generator().manual_seed(0)
        slots = [torch.randint(-128, 128, (256, 4096), dtype=torch.int8, generator=g) for _ in range(4)]
        store = TraceStore({str(tmp_path)!r})
        trace = Trace(b"\\x07" * 32, slots)
        while True:
            store.save(trace)
            print("saved", trace.input_root.hex(), flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        input_root = bytes.fromhex(proc.stdout.readline().split()[1])
        time.sleep(delay)  # somewhere inside a later write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    loaded = TraceStore(tmp_path).load(b"\x07" * 32, input_root)
    assert loaded.slots[0].shape == (256, 4096)


def test_trace_answers_every_dispute_move_succeeds(tmp_path, model_and_trace):
    model, trace = model_and_trace
    TraceStore(tmp_path).save(trace)
    t = TraceStore(tmp_path).load(model.root, trace.input_root)
    n = t.op_count
    # Bisection: every state the solver may be asked for is at hand.
    assert bisection_points(0, n, 4)[1:-1] and all(len(t.state_roots[q]) == 32 for q in bisection_points(0, n, 4))
    for step in range(1, n + 1):
        op = model.ops[step - 1]
        # Transition: slot update, input slot proof in S_{step-1}, op descriptor against the ops root.
        siblings = t.slot_update_proof(step)
        assert verify_proof(cm.EMPTY_SLOT, step, siblings, t.state_roots[step - 1])
        assert verify_proof(t.slot_roots[step], step, siblings, t.state_roots[step])
        in_proof = t.state_tree(step - 1).proof(op.input_slot)
        assert verify_proof(t.slot_roots[op.input_slot], op.input_slot, in_proof, t.state_roots[step - 1])
        assert verify_proof(keccak256(op.descriptor()), step - 1, model.op_tree.proof(step - 1), model.ops_root)
        out = t.slot_commitments[step]
        assert cm.header_root(*out.header) == t.slot_roots[step]
        # Row descent: children of every node hash to the node.
        tree = out.tree
        for height in range(tree.depth, 0, -1):
            for index in range(1 << (tree.depth - height)):
                assert hash_pair(*tree.children(height, index)) == tree.node(height, index)
        # One step: the row bytes, the input row and the weight row, each with its proof.
        for row in range(out.rows):
            y = t.row_bytes(step, row)
            assert keccak256(y) == tree.node(0, row)
            x_row = t.row_bytes(op.input_slot, row)
            x_tree = t.slot_commitments[op.input_slot].tree
            assert verify_proof(keccak256(x_row), row, x_tree.proof(row), x_tree.root)
        for c in range(op.out_cols):
            assert verify_proof(op.weights.tree.node(0, c), c, op.weights.tree.proof(c), op.weights.rows_root)
    for row in range(t.slots[0].shape[0], 1 << t.slot_commitments[1].tree.depth):
        assert t.slot_commitments[1].tree.node(0, row) == cm.EMPTY_SLOT  # padding rows are zero leaves


def test_token_model_trace_int16_int32_slots_roundtrip_succeeds(tmp_path):
    # int32 slots: the token ids (slot 0), the wide logits and the argmax ids of a decoder;
    # int16 slots: its residual stream, norm, GELU and softmax outputs (transformer_compile.WIDE16)
    model = small_transformer("decoder")
    trace = Trace(model.root, run_model(model, token_ids(model, 2), "cpu"))
    dtypes = {slot.dtype for slot in trace.slots}
    assert dtypes == {torch.int8, torch.int16, torch.int32} and trace.output.dtype == torch.int32
    TraceStore(tmp_path).save(trace)
    loaded = TraceStore(tmp_path).load(model.root, trace.input_root)
    assert loaded.state_roots == trace.state_roots and [s.dtype for s in loaded.slots] == [s.dtype for s in trace.slots]
    assert trace.row_bytes(0, 1) == cm.packed(trace.slots[0][1:2])  # 4 big-endian bytes per id


# --- A split trace (tensor parallel, issue 20): each rank's rows in its own directory ----------

def _save_split(tmp_path, trace: Trace, ranks: int) -> TraceStore:
    TraceStore(tmp_path).save(SplitTrace.from_commits(trace.model_root, commit_local(trace.slots, ranks)))
    return TraceStore(tmp_path)  # a fresh store: what a restarted process opens


@pytest.mark.parametrize("ranks", [2, 3, 4])
def test_split_trace_answers_every_dispute_move_as_the_single_one(tmp_path, model_and_trace, ranks):
    from referee import game

    model, trace = model_and_trace
    split = _save_split(tmp_path, trace, ranks).load(model.root, trace.input_root)
    assert isinstance(split, SplitTrace) and split.trace_root == trace.trace_root
    n = trace.op_count
    assert game.bisection_roots(split, 0, n, 4) == game.bisection_roots(trace, 0, n, 4)
    for op in range(1, n + 1):
        assert game.transition(model, split, op) == game.transition(model, trace, op)
        depth = trace.slot_commitments[op].tree.depth
        for levels in range(1, depth + 1):
            for index in range(1 << (depth - levels)):
                assert game.row_children(split, op, levels, index) == game.row_children(trace, op, levels, index)
        for row in range(trace.slots[op].shape[0]):
            revealed = bytes(b ^ 1 for b in trace.row_bytes(op, row))
            assert split.row_bytes(op, row) == trace.row_bytes(op, row)
            assert game.step(model, split, op, row, revealed) == game.step(model, trace, op, row, revealed)


def test_agent_restarts_and_finds_its_split_trace(tmp_path, model_and_trace):
    """The agents' trace cache (``agents.traces``) loads a split trace from the store on restart,
    as it loads a single one: nothing is run again."""
    from types import SimpleNamespace

    from referee.agents.traces import Traces

    model, trace = model_and_trace
    store = _save_split(tmp_path / "traces", trace, 2)
    x = trace.slots[0]
    row = SimpleNamespace(job_id=1, model_id=7, rows=x.shape[0], input=cm.packed(x))
    traces = Traces({7: model}, store, None, "cpu", journal=None, log=lambda line: None)
    loaded, ran = traces._load_or_run(row)
    assert ran is None and isinstance(loaded, SplitTrace)
    assert loaded.state_roots == trace.state_roots and loaded.output.equal(trace.output)


def test_agent_restarts_on_a_split_trace_from_a_real_ranks_run(tmp_path, model_and_trace, monkeypatch):
    """How an operator serves a split model (docs/agents.md): ``referee run --ranks 2`` into the
    agent's store, then a restarted agent's trace cache finds the split trace (nothing run again)
    and every move its solver plays (the commit, bisection, row descent, the one step) is the
    single-process trace's."""
    from types import SimpleNamespace

    from click.testing import CliRunner

    from referee import game
    from referee.agents.traces import Traces
    from referee.cli import main
    from referee.inputs import save_rows
    from referee.modelfile import save_model

    model, trace = model_and_trace
    x = trace.slots[0]
    save_model(model, tmp_path / "model")
    save_rows(x, tmp_path / "input.json")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two ranks on a small shared machine
    run = CliRunner().invoke(main, ["run", str(tmp_path / "model"), str(tmp_path / "input.json"), "--ranks", "2",
                                    "--store", str(tmp_path / "agent" / "traces")])
    assert run.exit_code == 0, run.output
    row = SimpleNamespace(job_id=1, model_id=7, rows=x.shape[0], input=cm.packed(x))
    traces = Traces({7: model}, TraceStore(tmp_path / "agent" / "traces"), None, "cpu", journal=None,
                    log=lambda line: None)
    split, ran = traces._load_or_run(row)
    assert ran is None and isinstance(split, SplitTrace) and split.ranks == 2
    n = trace.op_count
    assert (cm.packed(split.output), split.trace_root, split.state_tree(n).proof(n)) == \
        (cm.packed(trace.output), trace.trace_root, trace.state_tree(n).proof(n))
    roots = game.bisection_roots(split, 0, n, 4)
    assert roots == game.bisection_roots(trace, 0, n, 4)
    lying = [bytes(32)] * len(roots)
    assert game.disputed_part(split, 0, n, 4, lying) == game.disputed_part(trace, 0, n, 4, lying)
    for op in range(1, n + 1):
        assert game.transition(model, split, op) == game.transition(model, trace, op)
        depth = trace.slot_commitments[op].tree.depth
        if depth:
            assert game.row_children(split, op, depth, 0) == game.row_children(trace, op, depth, 0)
        for r in range(trace.slots[op].shape[0]):
            revealed = bytes(b ^ 1 for b in trace.row_bytes(op, r))
            assert game.step(model, split, op, r, revealed) == game.step(model, trace, op, r, revealed)


def test_split_trace_of_one_ranks_commitment_has_every_root_and_the_output(model_and_trace):
    """``SplitTrace.of_commit``: what rank 0 prints after a split run (no store, no other rank's
    files): every root, the output whole, its own rows; another rank's row is refused."""
    model, trace = model_and_trace
    commits = commit_local(trace.slots, 2)
    mine = SplitTrace.of_commit(model.root, commits[0], trace.output)
    assert mine.slot_roots == trace.slot_roots and mine.trace_root == trace.trace_root
    assert mine.output.equal(trace.output) and mine.slot_commitments[0].rows == trace.slots[0].shape[0]
    assert mine.row_bytes(1, 0) == trace.row_bytes(1, 0)  # rank 0's rows: [0, 4) of 6
    with pytest.raises(TraceStoreError, match="held by rank 1"):
        mine.row_bytes(1, 5)
    with pytest.raises(ValueError):
        SplitTrace.of_commit(model.root, commits[0], trace.output[:1])

"""The split commitment and the split trace store: the same roots at 1, 2 and 4 ranks, any row
found by (slot, row) -> rank, a restart that finds the trace, a tampered rank file refused.

One gloo world per rank count for the whole module (``commit_worlds.launch``): each rank
commits its shards of every case and saves its rows in a trace store. The shards of a small
Llama and a small encoder are the tensor-parallel runtime's (``parallel_runtime.simulate``:
each rank's slots as a world of processes holds them, the plan's column blocks); in the
"runtime" case each rank runs the runtime itself (``RankRun``, its all-reduces in the same
world) and commits what it holds; the odd row counts (1, 3, 5 rows) are cut from whole slots,
some blocks shared by two ranks."""

import json
import random

import pytest
import torch
from safetensors.torch import save_file

from helpers import small_transformer, token_ids
from referee import commitments as cm
from referee.errors import TraceStoreError
from referee.executor import run_model, trace_commitment
from referee.hashing import to_hex
from referee.llama import FloatLlama, LlamaConfig
from referee.llama_compile import compile_llama
from referee.modelfile import save_model
from referee.commit_worlds import launch
from referee.parallel_commit import Layout, commit_local, shards_of
from referee.parallel_runtime import simulate
from referee.trace import SplitTrace, Trace, TraceStore

RANKS = (1, 2, 4)


def _llama():
    cfg = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=8)
    ids = torch.randint(0, 96, (2, 8), generator=torch.Generator().manual_seed(0))
    return compile_llama(FloatLlama(cfg, seed=3), ids), ids[:1].to(torch.int32)


def _odd(rows: int, seed: int) -> list[torch.Tensor]:
    """Slots of ``rows`` rows (1, 3, 5, ...: not a multiple of the ranks), every dtype."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(-100, 100, (r, c), generator=g).to(dt)
            for r, c, dt in ((rows, 4, torch.int32), (rows, 8, torch.int8), (2 * rows + 1, 8, torch.int16),
                             (rows, 12, torch.int8))]


def _runtime_shards(model, x):
    """ranks -> (tensors, plan entry): each rank's slots from the tensor-parallel runtime."""
    def cut(ranks):
        results = simulate(model, x, ranks)
        tensors = {f"r{r.rank}.{j}": t.contiguous().clone() for r in results for j, t in enumerate(r.shards)}
        blocks = [[[shard.col0, shard.cols] for shard in shards_of(r)] for r in results]
        return tensors, {"blocks": blocks}
    return cut


def _in_the_world(directory, x):
    """ranks -> (tensors, plan entry): each rank runs the saved model itself."""
    return lambda ranks: ({"input": x.clone()}, {"model_dir": str(directory)})


def _column_blocks(slots, parts):
    """ranks -> (tensors, plan entry): whole slots, cut by the worker in ``parts(ranks)`` blocks."""
    def cut(ranks):
        return {str(j): s.clone() for j, s in enumerate(slots)}, {"parts": parts(ranks)}
    return cut


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """name -> (model root, single-process slots, ranks -> the shards' tensors and plan entry)."""
    llama, ids = _llama()
    encoder = small_transformer("encoder")
    x = token_ids(encoder, 2)
    out = {"llama": (llama.root, run_model(llama, ids, "cpu"), _runtime_shards(llama, ids)),
           "encoder": (encoder.root, run_model(encoder, x, "cpu"), _runtime_shards(encoder, x))}
    directory = save_model(llama, tmp_path_factory.mktemp("models") / "llama")
    out["runtime"] = (llama.root, out["llama"][1], _in_the_world(directory, ids))
    for rows in (1, 3, 5):
        # slots 1 and 3 in as many column blocks as ranks; slot 2 in 2 blocks (each shared by two
        # ranks at 4, as a KV group can be), slot 0 replicated
        slots = _odd(rows, rows)
        out[f"rows{rows}"] = (bytes([rows]) * 32, slots, _column_blocks(slots, lambda n: [1, n, min(n, 2), n]))
    return out


@pytest.fixture(scope="module")
def worlds(cases, tmp_path_factory):
    """ranks -> (each rank's results, the trace store its ranks saved to): one world per count."""
    out = {}
    for ranks in RANKS:
        work = tmp_path_factory.mktemp(f"world{ranks}")
        tensors, plan = {}, {}
        for name, (root, _, cut) in cases.items():
            mine, entry = cut(ranks)
            tensors |= {f"{name}.{key}": t for key, t in mine.items()}
            plan[name] = {**entry, "model_root": to_hex(root)}
        save_file(tensors, str(work / "slots.safetensors"))
        (work / "plan.json").write_text(json.dumps(plan))
        store = work / "store"
        out[ranks] = launch(str(work), ranks, env={"REFEREE_SPLIT_STORE": str(store)}), store
    return out


@pytest.mark.parametrize("ranks", RANKS)
def test_roots_equal_single_process_at_any_rank_count(cases, worlds, ranks):
    results, _ = worlds[ranks]
    for name, (_, slots, _) in cases.items():
        roots, states = trace_commitment(slots)
        for rank, result in enumerate(results):
            assert result[name]["slot_roots"] == [to_hex(r) for r in roots], (name, rank)
            assert result[name]["trace_root"] == to_hex(states[-1]), (name, rank)
            if name in ("llama", "encoder", "runtime"):  # every rank holds rows of others in its column blocks
                assert (result[name]["sent"] > 0) == (ranks > 1), (name, rank)


def test_llama_moves_fewer_bytes_per_rank_than_the_trace(cases, worlds):
    """A rank sends at most its share of the split slots, never the whole trace."""
    _, slots, _ = cases["llama"]
    total = sum(s.numel() * s.element_size() for s in slots)
    for ranks in (2, 4):
        assert all(0 < r["llama"]["sent"] < total / ranks for r in worlds[ranks][0])


@pytest.mark.parametrize("rows", [1, 2, 3, 5, 7, 8, 9, 33])
@pytest.mark.parametrize("ranks", [1, 2, 3, 4, 5, 8])
def test_layout_covers_rows_in_aligned_ranges(rows, ranks):
    layout = Layout(rows, ranks)
    ranges = [layout.rows_of(r) for r in range(ranks)]
    assert ranges[0][0] == 0 and ranges[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # contiguous, in rank order
    assert all(r0 % (1 << layout.chunk_height) == 0 for r0, r1 in ranges if r1 > r0)  # whole subtrees
    for row in range(rows):
        r0, r1 = ranges[layout.owner(row)]
        assert r0 <= row < r1


@pytest.mark.parametrize("rows", [1, 3, 5, 9])
@pytest.mark.parametrize("ranks", [1, 2, 3, 4, 8])
def test_local_split_equals_single_process(rows, ranks):
    slots = _odd(rows, 7 * rows + ranks)
    assert commit_local(slots, ranks)[0].state_roots == trace_commitment(slots)[1]


def _split_trace(worlds, cases, name, ranks=4) -> tuple[SplitTrace, Trace]:
    root, slots, _ = cases[name]
    single = Trace(root, slots)
    return TraceStore(worlds[ranks][1]).load(root, single.input_root), single


@pytest.mark.parametrize("name", ["llama", "rows3", "rows5"])
def test_lookup_finds_every_row_in_its_rank_file_only(cases, worlds, name):
    trace, single = _split_trace(worlds, cases, name)  # a fresh store: what a restart loads
    assert isinstance(trace, SplitTrace) and trace.ranks == 4
    read = trace._read_rows
    opened = []
    trace._read_rows = lambda rank, slot, a, b: opened.append(rank) or read(rank, slot, a, b)
    for j, slot in enumerate(single.slots):
        for row in range(slot.shape[0]):
            opened.clear()
            assert trace.row_bytes(j, row) == single.row_bytes(j, row)
            assert opened == [trace.owner(j, row)]  # one rank's file, the one holding the row
            assert trace.slot_commitments[j].tree.proof(row) == single.slot_commitments[j].tree.proof(row)
        tree, want = trace.slot_commitments[j].tree, single.slot_commitments[j].tree
        for height in range(1, tree.depth + 1):
            for index in range(1 << (tree.depth - height)):
                assert tree.children(height, index) == want.children(height, index)
    assert trace.state_roots == single.state_roots and trace.output.equal(single.output)


def test_restart_finds_the_split_trace(cases, worlds):
    """Each rank wrote its own directory; a new process's store finds the trace under the same
    key as a single-device trace, and it is one the agents can play from."""
    root, slots, _ = cases["encoder"]
    store = TraceStore(worlds[2][1])
    key = (root, Trace(root, slots).input_root)
    assert key in store
    trace = store.load(*key)
    assert trace.trace_root == trace_commitment(slots)[1][-1]
    assert sorted(p.name for p in store.split_path(*key).iterdir()) == ["rank0", "rank1"]


def _copy_store(worlds, tmp_path):
    import shutil
    shutil.copytree(worlds[4][1], tmp_path / "store")
    return TraceStore(tmp_path / "store")


def test_tampered_rank_file_is_refused(cases, worlds, tmp_path):
    store = _copy_store(worlds, tmp_path)
    root, slots, _ = cases["llama"]
    key = (root, Trace(root, slots).input_root)
    path = store.split_path(*key) / "rank2" / "rows.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # the last byte of the last slot's rows
    path.write_bytes(bytes(data))
    with pytest.raises(TraceStoreError, match="rank 2: rows .* do not hash to their committed root"):
        store.load(*key)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "rank1" / "rows.safetensors").unlink(), "rank 1's rows file is missing or corrupt"),
    (lambda d: (d / "rank3" / "rows.safetensors").write_bytes(b"\0" * 20), "rank 3's rows file is missing or corrupt"),
    (lambda d: (d / "rank0" / "index.json").write_text("{}"), "missing or malformed index"),
    (lambda d: (d / "rank2" / "index.json").write_text(
        (d / "rank0" / "index.json").read_text().replace("0x", "0x1", 1)), "rank 2's index differs"),
])
def test_damaged_split_store_is_refused(cases, worlds, tmp_path, damage, message):
    store = _copy_store(worlds, tmp_path)
    root, slots, _ = cases["rows5"]
    key = (root, Trace(root, slots).input_root)
    damage(store.split_path(*key))
    with pytest.raises(TraceStoreError, match=message):
        store.load(*key)


def test_a_rank_that_never_saved_leaves_no_trace(cases, worlds, tmp_path):
    """A run whose rank 3 died before saving: the store does not hold the trace, and loading
    it says which rank is missing (the agent then runs the job again)."""
    import shutil

    store = _copy_store(worlds, tmp_path)
    root, slots, _ = cases["llama"]
    key = (root, Trace(root, slots).input_root)
    assert key in store
    shutil.rmtree(store.split_path(*key) / "rank3")
    assert key not in store
    with pytest.raises(TraceStoreError, match="rank 3's rows file is missing"):
        store.load(*key)


def test_split_store_of_one_process_trace_round_trips(tmp_path):
    """A trace split in one process (``commit_local``) saves and loads like the distributed one."""
    rng = random.Random(5)
    slots = _odd(rng.randint(2, 9), 3)
    single = Trace(b"\7" * 32, slots)
    split = SplitTrace.from_commits(single.model_root, commit_local(slots, 3))
    TraceStore(tmp_path).save(split)
    loaded = TraceStore(tmp_path).load(single.model_root, single.input_root)
    assert [cm.header_root(*c.full_header) for c in loaded.slot_commitments] == single.slot_roots
    assert all(a.equal(b) for a, b in zip(loaded.slots, single.slots))

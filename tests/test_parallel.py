"""Tensor-parallel exact execution (referee.parallel*): the same bits at any split.

The plan is derived from the model alone (unit tests, no processes). Then one world per rank
count (1, 2 and 4 gloo processes on the CPU, started once for the module) runs every model: a
small Llama (GQA), the committed models/moby-llama compiled, a MiniLM-shaped encoder with the
key mask, a GPT-2-shaped decoder and a plain MLP; every slot, so every slot root, the trace
root and the output root, equals the single-process Executor's. ``referee run --ranks`` and the cluster entry
(torchrun -m referee.parallel_main) commit split, each rank saving its rows, and print the same
roots as one process. A rank that dies or hangs mid-run, mid-commit or before its save ends
``referee run --ranks`` with one Error line, and the store holds nothing of the job.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from referee.cli import main
from referee.executor import Executor, run_op
from referee.hashing import to_hex
from referee.llama import FloatLlama, LlamaConfig, load_llama
from referee.llama_compile import compile_llama
from referee.model import LinearOp
from referee.modelfile import save_model
from referee.parallel import COLS, FULL, plan
from referee.parallel_launch import Job, run_worlds
from referee.parallel_runtime import RankRun, RowParallel, join, simulate
from referee.quantize import quantize_sequential
from referee.errors import TraceStoreError
from referee.trace import SplitTrace, Trace, TraceStore
from referee.transformer import FloatTransformer, TransformerConfig
from referee.transformer_compile import compile_transformer

ROOT = Path(__file__).resolve().parents[1]
MOBY = ROOT / "models" / "moby-llama"
RANKS = (1, 2, 4)


def _ids(vocab: int, rows: int, t: int, seed: int, low: int = 0) -> torch.Tensor:
    return torch.randint(low, vocab, (rows, t), generator=torch.Generator().manual_seed(seed), dtype=torch.int32)


def _llama():
    cfg = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16)
    return compile_llama(FloatLlama(cfg, seed=1), _ids(300, 4, 16, 0), name="small-llama")


def _moby():
    model = load_llama(MOBY)
    t = 64  # a shorter context than its 128: the same ops, half the work
    return compile_llama(model, _ids(256, 2, t, 1), name="moby-llama")


def _transformer(kind: str, pad_id: int | None = None):
    cfg = TransformerConfig(kind=kind, layers=2, width=64, heads=4, ffn=128, seq=16, vocab=300, pad_id=pad_id)
    return compile_transformer(FloatTransformer(cfg, seed=2), _ids(300, 4, 16, 3, low=1), name=kind)


def _mlp():
    torch.manual_seed(4)
    net = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.ReLU(), torch.nn.Linear(96, 48), torch.nn.ReLU(),
                              torch.nn.Linear(48, 10))
    return quantize_sequential(net, torch.randn(32, 64), name="mlp")


def _padded(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[0, 11:] = 0  # the pad id: the key mask's work
    x[1, 5:] = 0
    return x


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread here and in every rank: on a small shared machine OpenMP threads spin
    waiting for a core, and these models are small (measured: a compile 60x slower with two)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")  # the spawned ranks and torchrun's read it
        yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def jobs() -> dict[str, Job]:
    llama = _llama()
    return {
        "llama": Job(llama, _ids(300, 2, 16, 5)),
        "moby": Job(_moby(), _ids(256, 1, 64, 6)),
        "encoder": Job(_transformer("encoder", pad_id=0), _padded(_ids(300, 3, 16, 7, low=1))),
        "decoder": Job(_transformer("decoder"), _ids(300, 2, 16, 8)),
        "mlp": Job(_mlp(), torch.randint(-128, 128, (5, 64), generator=torch.Generator().manual_seed(9),
                                         dtype=torch.int8)),
    }


@pytest.fixture(scope="module")
def worlds(jobs) -> dict[int, dict[str, dict]]:
    """One set of 4 processes for every world (ranks 0..R-1 of it): rank count -> model name ->
    {"slots", "moved"}."""
    names = list(jobs)
    results = run_worlds(list(jobs.values()), list(RANKS), device="cpu", timeout=120)
    return {r: dict(zip(names, results[r])) for r in RANKS}


def test_plan_llama_splits_heads_and_ffn(jobs):
    model = jobs["llama"].model
    p = plan(model, 2)
    by_kind = {}
    for op, mode in zip(model.ops, p.modes):
        by_kind.setdefault(type(op).__name__, set()).add(mode)
    assert by_kind["RopeOp"] == by_kind["SoftmaxOp"] == by_kind["MulOp"] == by_kind["LutOp"] == {"shard"}
    assert by_kind["LinearOp"] == {"column", "row", "replicate"}  # q k v gate up | o down | the head
    assert by_kind["NormOp"] == by_kind["EmbedOp"] == by_kind["AddOp"] == {"replicate"}
    assert p.split[0] == p.split[-1] == FULL and not p.notes
    assert plan(model, 1).modes == p.modes  # one rank runs the very same code path
    # 4 ranks, 2 KV heads: the attention stays whole (and says so), the FFN (96 = 4 x 24) splits.
    p4 = plan(model, 4)
    assert all(mode == "replicate" for op, mode in zip(model.ops, p4.modes) if type(op).__name__ == "RopeOp")
    assert any(mode == "shard" for op, mode in zip(model.ops, p4.modes) if type(op).__name__ == "MulOp")
    assert "2 heads, not a multiple of 4 ranks" in p4.describe() and "rope" in p4.describe()


def test_plan_encoder_mask_and_mlp(jobs):
    enc = jobs["encoder"].model
    p = plan(enc, 4)
    for j, op in enumerate(enc.ops, start=1):
        if type(op).__name__ == "SoftmaxOp":
            assert p.modes[j - 1] == "shard" and p.split[op.input_b] == FULL  # the key mask stays whole
    mlp = jobs["mlp"].model
    assert plan(mlp, 2).modes == ["column", "row", "replicate"]
    assert plan(mlp, 2).split == [FULL, COLS, FULL, FULL]
    assert plan(mlp, 5).modes == ["replicate"] * 3 and "96 output channels" in plan(mlp, 5).describe()


@pytest.fixture(scope="module")
def single(jobs) -> dict[str, Trace]:
    """The single-process Executor's trace of each job."""
    return {name: Trace(job.model.root, Executor(job.model, device="cpu").run(job.x)) for name, job in jobs.items()}


@pytest.mark.parametrize("ranks", RANKS)
def test_same_bits_at_any_split(jobs, worlds, single, ranks):
    for name, job in jobs.items():
        want = single[name]
        got = Trace(job.model.root, worlds[ranks][name]["slots"])
        assert len(got.slots) == len(want.slots)
        for j, (a, b) in enumerate(zip(got.slots, want.slots)):
            assert a.dtype == b.dtype and torch.equal(a, b), (name, ranks, j)
        assert got.slot_roots == want.slot_roots, (name, ranks)
        assert (got.trace_root, got.output_root) == (want.trace_root, want.output_root)
        print(f"{name:8s} ranks {ranks}: output {to_hex(got.output_root)[:18]} trace {to_hex(got.trace_root)[:18]}")


def test_all_reduce_bytes(jobs, worlds):
    """One int32 all-reduce of [rows, width] per row-parallel linear, on every rank."""
    model, x = jobs["llama"].model, jobs["llama"].x
    tokens = x.numel()
    rows = sum(1 for mode in plan(model, 2).modes if mode == "row")
    assert rows == 4
    for moved in worlds[2]["llama"]["moved"]:
        assert moved["all_reduce"] == rows * tokens * 64 * 4


def _saved(tmp_path: Path, job: Job) -> tuple[Path, Path]:
    from referee.inputs import save_rows

    model_dir = save_model(job.model, tmp_path / "model")
    save_rows(job.x, tmp_path / "input.json")
    return model_dir, tmp_path / "input.json"


def _roots(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("output root", "trace root"))]


@pytest.mark.parametrize("ranks", [3, 4, 8])
def test_same_bits_simulated(jobs, single, ranks):
    """All ranks in one process (parallel_runtime.simulate): rank counts the worlds skip, 3 (heads
    and widths it does not divide: replicated regions) and 8 (one head or less per rank)."""
    for name, job in jobs.items():
        got = join(simulate(job.model, job.x, ranks))
        assert all(torch.equal(a, b) for a, b in zip(got, single[name].slots)), (name, ranks)
        assert Trace(job.model.root, got).trace_root == single[name].trace_root


def test_each_rank_holds_its_shards_of_the_weights(jobs):
    """Two ranks of the small Llama: every split linear's weights halve, the head stays whole."""
    model = jobs["llama"].model
    p = plan(model, 2)
    whole = sum(op.weight.numel() for op in model.ops if isinstance(op, LinearOp))
    split = sum(op.weight.numel() for op, mode in zip(model.ops, p.modes) if mode in ("column", "row"))
    held = [RankRun(model, p, r, "cpu").linear_weights for r in range(2)]
    assert held == [whole - split // 2] * 2 and split > whole // 2


def test_row_parallel_partials_sum_exactly_on_every_backend():
    """Four ranks' int32 partials, added, then bias and rq: the whole linear's kernel on every
    backend, int8 and int16 inputs, narrow, ReLU and wide outputs (no processes: the sum is
    what the all-reduce computes)."""
    g = torch.Generator().manual_seed(10)
    n, kk = 24, 64
    for relu, wide, i16 in ((False, False, False), (True, False, True), (False, True, False)):
        op = LinearOp(1, torch.randint(-128, 128, (n, kk), generator=g, dtype=torch.int8),
                      torch.randint(-5000, 5000, (n,), generator=g, dtype=torch.int32),
                      torch.randint(1 << 20, 1 << 21, (n,), generator=g, dtype=torch.int32),
                      torch.randint(28, 34, (n,), generator=g, dtype=torch.int32), relu, wide=wide, i16=i16)
        for dtype, top in ((torch.int8, 128), (torch.int16, 1 << 12)):
            x = torch.randint(-top, top, (5, kk), generator=g, dtype=dtype)
            for backend in ("float", "int_mm", "int64"):
                want = run_op(op, [x], backend=backend)
                parts = [RowParallel(op, r * kk // 4, (r + 1) * kk // 4, torch.device("cpu"), backend, None)
                         for r in range(4)]
                acc = sum(p.partial_sum(x[:, r * kk // 4:(r + 1) * kk // 4]) for r, p in enumerate(parts))
                assert torch.equal(parts[0].finish(acc), want), (relu, wide, i16, dtype, backend)


def _key(model_dir: Path, x: Path):
    from referee import commitments as cm
    from referee.inputs import load_input
    from referee.modelfile import load_model

    model = load_model(model_dir)
    return model.root, cm.commit_tensor(load_input(x, model.input_dtype)).root


def test_torchrun_entry_and_ranks_print_the_same_roots(jobs, tmp_path):
    """``--ranks 2`` and torchrun commit split: each rank saves its rows, the store loads a
    SplitTrace with one process's roots, and both print one process's lines."""
    model_dir, x = _saved(tmp_path, jobs["llama"])
    single = CliRunner().invoke(main, ["run", str(model_dir), str(x), "--no-store"])
    assert single.exit_code == 0, single.output
    local = CliRunner().invoke(main, ["run", str(model_dir), str(x), "--store", str(tmp_path / "local"),
                                      "--ranks", "2"])
    assert local.exit_code == 0, local.output
    def same(out):
        return [line for line in out.splitlines() if not line.startswith(("time", "split", "stored"))]
    assert same(local.stdout) == same(single.stdout)
    want = Trace(jobs["llama"].model.root, Executor(jobs["llama"].model, device="cpu").run(jobs["llama"].x))
    key = _key(model_dir, x)
    for store in (tmp_path / "local", tmp_path / "st"):
        if store.name == "st":
            split = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                                    "-m", "referee.parallel_main", str(model_dir), str(x), "--store", str(store)],
                                   capture_output=True, text=True, timeout=120)
            assert split.returncode == 0, split.stderr
            assert _roots(split.stdout) == _roots(single.output) and len(_roots(single.output)) == 2
        held = TraceStore(store).load(*key)
        assert isinstance(held, SplitTrace) and held.ranks == 2 and not any(store.rglob("*.trace"))
        assert held.slot_roots == want.slot_roots and held.trace_root == want.trace_root
        assert sorted(p.name for p in TraceStore(store).split_path(*key).iterdir()) == ["rank0", "rank1"]


@pytest.mark.parametrize("where,fault", [("12", "die"), ("commit", "hang"), ("save", "die")])
def test_a_rank_that_dies_or_hangs_ends_the_job(jobs, tmp_path, monkeypatch, where, fault):
    """Mid-run (op 12, o_proj: an all-reduce), mid-commit (after the row exchange) or before its
    save (rank 0 has saved its part): one Error line, and the store holds nothing of the job."""
    model_dir, x = _saved(tmp_path, jobs["llama"])
    monkeypatch.setenv("REFEREE_TP_FAULT", f"1:{where}:{fault}")
    store = tmp_path / "store"
    result = CliRunner().invoke(main, ["run", str(model_dir), str(x), "--ranks", "2", "--store", str(store),
                                       "--collective-timeout", "3"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "nothing was stored" in errors[0], result.output
    assert ("died" in errors[0]) if fault == "die" else ("waited 3 s" in errors[0])
    key = _key(model_dir, x)
    assert key not in TraceStore(store) and not TraceStore(store).split_path(*key).exists()
    with pytest.raises(TraceStoreError):
        TraceStore(store).load(*key)


def test_bad_input_and_generation_refused_before_any_rank_starts(jobs, tmp_path):
    model_dir, _ = _saved(tmp_path, jobs["llama"])
    (tmp_path / "short.json").write_text("[[1, 2, 3]]\n")
    for args in (["run", str(model_dir), str(tmp_path / "short.json"), "--ranks", "2"],
                 ["run", str(model_dir), "--text", "hi", "--tokens", "2", "--ranks", "2"]):
        result = CliRunner().invoke(main, args)
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert result.exit_code == 1 and len(errors) == 1, result.output

"""benchmarks/llama_paper.py's op plan is the op list referee.llama_compile emits.

The 70B table is computed from ``op_plan`` (benchmarks/llama_paper.py), so the plan must be the
compiler's: for small random Llamas of several shapes (GQA ratios, a split head, several
contexts) every op's kind, output rows, columns and dtype equal the compiled model's slot by
slot. Also the script's small arithmetic: depth, the worst-case bisection rounds against a
brute-force walk of protocol 7.1, and the gas model's calibration point (protocol 10.7).
"""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import llama_paper as paper  # noqa: E402
from referee.llama import FloatLlama, LlamaConfig  # noqa: E402
from referee.llama_compile import compile_llama  # noqa: E402
from referee.model import kind_name  # noqa: E402

DTYPES = {0: "int8", 1: "int32", 2: "int16"}


@pytest.mark.parametrize("shape", [
    dict(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
         num_key_value_heads=2, max_position_embeddings=16),
    dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
         num_key_value_heads=1, max_position_embeddings=8),
    dict(vocab_size=100, hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=2,
         num_key_value_heads=2, max_position_embeddings=8),
])
def test_plan_is_the_compilers_op_list_succeeds(shape):
    cfg = LlamaConfig(**shape)
    t = cfg.max_position_embeddings
    model = compile_llama(FloatLlama(cfg, seed=5), torch.randint(0, cfg.vocab_size, (4, t), generator=torch.Generator().manual_seed(1)))
    shapes = model.slot_shapes(1)
    plan = paper.op_plan(cfg.to_hf(), t)
    assert len(plan) == len(model.ops)
    for j, (op, planned) in enumerate(zip(model.ops, plan), start=1):
        rows, cols, dtype = shapes[j]
        assert (planned.kind, planned.rows, planned.cols, planned.dtype) == (kind_name(op), rows, cols, DTYPES[dtype]), \
            (j, planned.name)


def test_split_head_plan_matches_the_compiler_succeeds():
    cfg = LlamaConfig(vocab_size=9000, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4)
    model = compile_llama(FloatLlama(cfg, seed=2), torch.randint(0, 9000, (2, 4), generator=torch.Generator().manual_seed(3)))
    plan = paper.op_plan(cfg.to_hf(), 4)
    assert [p.kind for p in plan] == [kind_name(op) for op in model.ops]
    assert [p.cols for p in plan[-4:]] == [8192, 808, 2, 1]


def test_bisection_rounds_equal_a_walk_of_every_choice_succeeds():
    def worst(lo, hi, arity):
        length = hi - lo
        if length <= 1:
            return 0
        p = min(arity, length)
        q = [lo + i * length // p for i in range(p + 1)]
        return 1 + max(worst(q[i], q[i + 1], arity) for i in range(p))

    for n in (1, 2, 3, 5, 17, 80, 100, 618):
        for arity in (2, 4, 8):
            assert paper.bisection_rounds(n, arity) == worst(0, n, arity), (n, arity)


def test_depth_and_gas_model_succeed():
    assert [paper.depth(n) for n in (1, 2, 3, 4, 5, 4096, 4097)] == [0, 1, 2, 2, 3, 12, 13]
    # protocol 10.7 measured 1,331,640 for a linear step at k = 16384: the model is within 7%
    calib = paper.gas(paper.ABI_OVERHEAD + 2 * 16384 + 3 * 16 * paper.WORD + 4 * paper.WORD, 16384)
    assert abs(calib - 1_331_640) / 1_331_640 < 0.07

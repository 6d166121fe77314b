"""Generation by teacher forcing: exact incremental (KV-cached) greedy decoding of one sequence,
and the check that one forward pass over the teacher-forced input gives the same tokens.

A generation model is a causal token decoder (protocol, "Generation by teacher forcing"): its
input is one row of T token ids, its last op an ``argmax`` writing [T, 1], the greedy next
token after every position. A job is a prompt p_0..p_{P-1} and n new tokens, P + n - 1 <= T.

Producing (``Decoder``): the slot buffers of one sequence at their full row counts (B = 1),
filled a few positions at a time. Feeding the ids of positions row0 .. row0 + m - 1 computes
only those positions' part of every op, with the executor's own kernels: the row-wise kinds
(linear, add, lut, norm, argmax, mul) and the position-dependent ones (embed, softmax, rope,
given ``row0``) on the new rows; ``matmul`` the new rows of A against the whole B buffer (the
KV cache: K's rows, or the columns of transpose(V)); ``transpose`` writes the new positions as
columns of its output. Verifying (``verified_input``, ``verify_generation``): one ordinary
forward over [prompt ‖ tokens[:-1] ‖ 0 ...] whose argmax rows P-1 .. P+n-2 must be the tokens.

Why both give the same bits on every row (and transpose column) of a position p < P + n - 1.
By induction over the ops in order, every slot's part at positions <= p is a function of the
ids at positions <= p alone, and the incremental buffers hold exactly the full pass's values
there (``plan`` refuses any model where a rule below does not apply):

* ids, embed, the row-wise kinds and rope: row p reads row p of its inputs (embed: id p, and
  position row p of its table; rope: the rotation of position p), the same in both.
* ``transpose`` of a [T, H*C] slot with R_in = T: column h*T + p is row p of its input.
* ``matmul`` whose B has a row per position (Q·Kᵀ): it must be ``causal`` with T_a = R_b = T;
  entry (p, h*T + j) reads row j of B for j <= p, filled in both, and is the dtype's minimum
  for j > p whatever B holds there (unfilled zeros in the cache, padded positions in the full
  pass). A non-causal one would read later positions: refused.
* ``matmul`` whose B is a transpose (P·V): acc[p, h*Rb + c] = Σ_k A[p, h*T + k] B[.., hb*T + k]
  sums over positions k; A must be the output of a ``causal`` ``softmax`` over L = T keys,
  whose masked entries (k > p) are exactly 0 (5.5: e_u = 0, so ⌊ONE·0/S⌋ = 0). The terms
  k > p are then 0 · (anything) = 0, whether B's column k is an unfilled zero or a padded
  position's value: the exact integer sum, hence rq, is the same.
* ``softmax`` reads one row; ``causal`` masks keys u > p by position (row0 + i for the i-th
  new row), and a keymask (an encoder's pad mask, one row per sequence) is refused.

Rows at positions >= P + n - 1 (the padded tail) differ between the two and are never
compared: nothing at a position < P + n - 1 reads them (the rules above).
"""

from collections.abc import Callable

import torch

from . import commitments as cm
from . import ops as k
from .errors import InputError, ModelCompileError, RefereeError
from .executor import TORCH_DTYPES, Executor, _ieee_float32_matmul
from .model import INT32, IntegerModel, input_slots, kind_name

KIND_LINEAR = cm.KIND_LINEAR
KIND_ROPE, KIND_MUL = 10, 11  # protocol 5.12, 5.13 (referee.ops once they land)
ROW_WISE = {KIND_LINEAR, k.KIND_ADD, k.KIND_LUT, k.KIND_NORM, k.KIND_ARGMAX, KIND_ROPE, KIND_MUL}
POSITIONAL = {k.KIND_SOFTMAX, KIND_ROPE}  # row-wise kinds whose kernel takes row0 (embed, matmul too)
IDS, ROWS, COLS = "ids", "rows", "cols"  # a slot's positions: id columns, rows, columns h*T + p


class GenerationMismatch(RefereeError):
    """The teacher-forced pass does not give the claimed tokens."""


def _refuse(model: IntegerModel, condition: bool, why: str) -> None:
    if not condition:
        raise ModelCompileError(f"{model.name} is not a causal token decoder (a generation model): {why}")


def plan(model: IntegerModel) -> list[str]:
    """Each slot's layout (IDS, ROWS or COLS, module doc) for one sequence; ModelCompileError
    naming the first op where incremental decoding would not equal the full pass."""
    _refuse(model, model.input_dtype == INT32, "its input is not token ids (int32)")
    t = model.input_cols
    try:
        shapes = model.slot_shapes(1)
    except InputError as exc:
        _refuse(model, False, str(exc))
    layout, zero_upper = [IDS], set()  # zero_upper: causal softmax outputs, 0 at keys after the row
    for j, op in enumerate(model.ops, start=1):
        where = f"op {j} ({kind_name(op)})"
        ins = input_slots(op)
        seen = [layout[s] for s in ins]
        if op.kind == k.KIND_EMBED:
            _refuse(model, seen == [IDS], f"{where} embeds something other than the token ids")
            out = ROWS
        elif op.kind == k.KIND_TRANSPOSE:
            _refuse(model, seen == [ROWS] and op.out_cols // op.heads == t,
                    f"{where} transposes other than a row per position (R_in = T = {t})")
            out = COLS
        elif op.kind == k.KIND_MATMUL:
            _refuse(model, seen[0] == ROWS and op.seq == t, f"{where}: A is not a row per position (T_a = {t})")
            if seen[1] == ROWS:
                _refuse(model, op.causal and op.out_cols // op.heads == t,
                        f"{where} is not causal over T = {t} keys: its B depends on later positions")
            else:
                _refuse(model, seen[1] == COLS and ins[0] in zero_upper and op.in_cols // op.heads == t,
                        f"{where}: A·transpose needs A from a causal softmax over T = {t} keys "
                        "(exact zeros after each position)")
            out = ROWS
        elif op.kind == k.KIND_SOFTMAX:
            _refuse(model, seen == [ROWS] and not op.keymask and (op.seq == t or not op.causal),
                    f"{where} is not a per-position softmax (seq = T, no keymask)")
            if op.causal and op.cols // op.heads == t:
                zero_upper.add(j)
            out = ROWS
        elif op.kind in ROW_WISE:
            _refuse(model, all(s == ROWS for s in seen), f"{where} reads a slot that is not a row per position")
            out = ROWS
        else:
            _refuse(model, False, f"{where}: kind {op.kind} has no incremental rule")
        _refuse(model, out != ROWS or shapes[j][0] == t, f"{where} writes {shapes[j][0]} rows, not T = {t}")
        layout.append(out)
    last = model.ops[-1]
    _refuse(model, last.kind == k.KIND_ARGMAX and last.out_cols == 1,
            "its last op is not an argmax writing the next token after every position")
    return layout


def vocab(model: IntegerModel) -> int:
    """V of the embed op that reads the ids: valid ids are 0 .. V - 1."""
    return next(op.vocab for op in model.ops if op.kind == k.KIND_EMBED and op.input_slot == 0)


def check_job(model: IntegerModel, prompt: list[int], n: int) -> None:
    """A generation job's rules: P >= 1, n >= 1, P + n - 1 <= T, prompt ids in [0, V)."""
    t, v = model.input_cols, vocab(model)
    if len(prompt) < 1:
        raise InputError("the prompt is empty: a generation needs at least one token")
    if not isinstance(n, int) or n < 1:
        raise InputError(f"{n} new tokens: a generation makes at least 1")
    if len(prompt) + n - 1 > t:
        raise InputError(f"a prompt of {len(prompt)} tokens and {n} new tokens need {len(prompt) + n - 1} positions; "
                         f"{model.name} has a context of {t} (at most {t - len(prompt) + 1} new tokens)")
    _check_ids(prompt, v, "prompt")


def _check_ids(ids: list[int], v: int, what: str) -> None:
    for i, x in enumerate(ids):
        if not isinstance(x, int) or not 0 <= x < v:
            raise InputError(f"{what} id {i} is {x!r}, outside the vocabulary [0, {v})")


class Decoder:
    """Exact greedy decoding of one sequence with a KV cache (module doc): ``generate`` or ``feed``."""

    def __init__(self, model: IntegerModel, device: str = "auto", backend: str = "auto",
                 executor: Executor | None = None):
        self.layouts = plan(model)
        self.model = model
        self.executor = executor or Executor(model, device, backend)  # its prepared kernels, and the full pass
        self.device = self.executor.device
        self.reset()

    def reset(self) -> None:
        """Empty buffers: position 0 comes next."""
        with torch.inference_mode():
            self.buffers = [torch.zeros(rows, cols, dtype=TORCH_DTYPES[dtype], device=self.device)
                            for rows, cols, dtype in self.model.slot_shapes(1)]
        self.length = 0

    def feed(self, ids: list[int]) -> int:
        """Append positions length .. length + len(ids) - 1; the greedy token after the last one."""
        m, row0, t = len(ids), self.length, self.model.input_cols
        if m < 1 or row0 + m > t:
            raise InputError(f"{m} more positions after {row0} do not fit the context of {t}")
        _check_ids(ids, vocab(self.model), "fed")
        buf, new = self.buffers, slice(row0, row0 + m)
        with torch.inference_mode(), _ieee_float32_matmul():
            ids_t = torch.tensor([ids], dtype=torch.int32, device=self.device)
            buf[0][:, new] = ids_t
            for j, (op, kernel) in enumerate(zip(self.model.ops, self.executor.kernels), start=1):
                ins = input_slots(op)
                if op.kind == k.KIND_EMBED:
                    y = kernel(ids_t, row0=row0)
                elif op.kind == k.KIND_TRANSPOSE:  # the new positions become columns h*T + p
                    h = op.heads
                    c = op.in_cols // h
                    buf[j].view(c, h, t)[:, :, new] = buf[ins[0]][new].view(m, h, c).permute(2, 1, 0)
                    continue
                elif op.kind == k.KIND_MATMUL:  # new rows of A against the whole cache B
                    y = kernel(buf[ins[0]][new], buf[ins[1]], row0=row0)
                elif op.kind in POSITIONAL:
                    y = kernel(*[buf[s][new] for s in ins], row0=row0)
                else:
                    y = kernel(*[buf[s][new] for s in ins])
                buf[j][new] = y
            token = int(buf[-1][row0 + m - 1, 0])
        self.length += m
        return token

    def generate(self, prompt: list[int], n: int, on_token: Callable[[int], None] | None = None) -> list[int]:
        """n greedy tokens after ``prompt`` (from an empty cache); ``on_token(id)`` as each comes."""
        check_job(self.model, prompt, n)
        self.reset()
        tokens = []
        token = self.feed(list(prompt))
        while True:
            tokens.append(token)
            if on_token:
                on_token(token)
            if len(tokens) == n:
                return tokens
            token = self.feed([token])

    def slots(self) -> list[torch.Tensor]:
        """The buffers on the CPU: positions < length hold the full pass's values."""
        return [b.cpu() for b in self.buffers]


def verified_input(model: IntegerModel, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    """Slot 0 of the verifying pass: one row [prompt ‖ tokens[:-1] ‖ 0 ...] of T int32 ids."""
    check_job(model, prompt, len(tokens))
    _check_ids(tokens, vocab(model), "token")
    return teacher_forced_input(model, prompt, tokens)


def teacher_forced_input(model: IntegerModel, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    """The same row for any int32 ids, in the vocabulary or not (an id outside it embeds as
    its position row alone, 5.7): what a challenger re-runs over a committed generation,
    whatever tokens a solver committed. InputError if they do not fit the context."""
    row = list(prompt) + list(tokens[:-1])
    if not prompt or not tokens or len(row) > model.input_cols:
        raise InputError(f"a prompt of {len(prompt)} ids and {len(tokens)} tokens do not fit a context of "
                         f"{model.input_cols}")
    return torch.tensor([row + [0] * (model.input_cols - len(row))], dtype=torch.int32)


def generated_tokens(output: torch.Tensor, prompt_len: int, n: int) -> list[int]:
    """The tokens a teacher-forced output slot [T, 1] gives: rows P-1 .. P+n-2."""
    return [int(v) for v in output[prompt_len - 1:prompt_len - 1 + n, 0]]


def verify_generation(executor: Executor, prompt: list[int], tokens: list[int],
                      on_op: Callable[[int], None] | None = None) -> list[torch.Tensor]:
    """The verifying pass's slots (what a solver commits); GenerationMismatch if its argmax rows
    P-1 .. P+n-2 are not ``tokens``."""
    plan(executor.model)
    slots = executor.run(verified_input(executor.model, prompt, tokens), on_op=on_op)
    got = generated_tokens(slots[-1], len(prompt), len(tokens))
    if got != list(tokens):
        i = next(i for i, (a, b) in enumerate(zip(got, tokens)) if a != b)
        raise GenerationMismatch(f"token {i} is {tokens[i]}, but the teacher-forced pass gives {got[i]} "
                                 f"(position {len(prompt) - 1 + i})")
    return slots

"""Transformer-shaped jobs for the randomized market suites (tests/test_random_games.py,
tests/test_hostile_calls.py): the models, random token inputs of several rows, and
generation jobs with the tokens an honest solver, or a wrong-token cheat, commits.

The models are the golden vectors' six (tests/vectors/transformer_models.json): a post-norm
encoder, one with the key mask of protocol 5.9 (its pad id masked), a causal decoder, the
16-bit variants and a Llama-shaped decoder with rope, mul, grouped matmuls and a split head.
Between them they hold every kind of 5.1-5.14 and both mask settings. The decoders, whose
output is the next token after each position (int32 [T, 1]), also take generation jobs (5.15).
"""

import random
from dataclasses import dataclass
from functools import cache

import torch

from helpers import load_vectors
from referee import decode
from referee.cheats import changed_token, committed_token
from referee.errors import ModelCompileError
from referee.executor import Executor
from referee.graph_dict import model_from_dict
from referee.model import IntegerModel
from referee.ops import KIND_EMBED
from referee.trace import Trace


@dataclass(frozen=True)
class TokenModel:
    name: str
    model: IntegerModel
    pad: int | None  # the id a key-masked encoder masks
    generates: bool  # a causal decoder with an argmax head: takes generation jobs


def _pad_id(model: IntegerModel) -> int | None:
    """The masked id of a key-masked encoder: its first op is the mask's width-1 embed (5.9),
    whose token table is 1 but for the pad row."""
    first = model.ops[0]
    if first.kind != KIND_EMBED or first.out_cols != 1:
        return None
    return int((first.token_table[:, 0] == 0).nonzero()[0])


def _generates(model: IntegerModel) -> bool:
    try:
        decode.plan(model)
    except ModelCompileError:
        return False
    return True


@cache
def token_models() -> tuple[TokenModel, ...]:
    found = []
    for vec in load_vectors("transformer_models")["models"]:
        model = model_from_dict({"input_cols": vec["input_cols"], "input_dtype": vec["input_dtype"],
                                 "ops": vec["ops"]})
        found.append(TokenModel(vec["name"], model, _pad_id(model), _generates(model)))
    return tuple(found)


def run(model: IntegerModel, x: torch.Tensor) -> Trace:
    return Trace(model.root, Executor(model, "cpu").run(x))


def random_ids(rng: random.Random, tm: TokenModel, rows: int) -> torch.Tensor:
    """``rows`` sequences of T ids, now and then one outside the vocabulary (it embeds as its
    position row alone, 5.7); a key-masked encoder's sequences end in pad ids after a random
    length, some all padding."""
    t, v = tm.model.input_cols, decode.vocab(tm.model)
    ids = []
    for _ in range(rows):
        row = [rng.randrange(v) for _ in range(t)]
        if rng.random() < 0.1:
            row[rng.randrange(t)] = rng.choice([-1, v])
        if tm.pad is not None:
            length = rng.randrange(t + 1)
            row[length:] = [tm.pad] * (t - length)
        ids.append(row)
    return torch.tensor(ids, dtype=torch.int32)


def random_generation(rng: random.Random, tm: TokenModel) -> tuple[list[int], int]:
    """A prompt of 1..T ids and a token count that fits the context (P + n - 1 <= T)."""
    t, v = tm.model.input_cols, decode.vocab(tm.model)
    prompt = [rng.randrange(v) for _ in range(rng.randint(1, t))]
    return prompt, rng.randint(1, t - len(prompt) + 1)


def generation_trace(model: IntegerModel, prompt: list[int], tokens: list[int]) -> Trace:
    """The teacher-forced pass over ``tokens`` (any ids): the trace the market's S_0 opens on
    once they are committed, and so what an honest challenger re-runs."""
    return run(model, decode.teacher_forced_input(model, prompt, tokens))


def greedy(model: IntegerModel, prompt: list[int], n: int, first: int | None = None) -> list[int]:
    """The ``n`` tokens an honest solver generates (each the argmax after the ids so far, which
    KV-cached decoding gives too), or the text generated on from a forced ``first`` token."""
    tokens = [] if first is None else [first]
    while len(tokens) < n:
        output = generation_trace(model, prompt, tokens + [0]).output
        tokens.append(int(output[len(prompt) - 1 + len(tokens), 0]))
    return tokens


def committed_tokens(believed: Trace, prompt: list[int], n: int) -> list[int]:
    """The tokens a solver holding ``believed`` commits: its output's rows P-1 .. P+n-2."""
    return decode.generated_tokens(believed.output, len(prompt), n)


def wrong_token(model: IntegerModel, prompt: list[int], n: int) -> tuple[Trace, Trace]:
    """The wrong-token cheat (referee.cheats): the first token changed and the text generated on
    from it. Returns the teacher-forced trace of those tokens (the truth the game is played
    over) and the cheat's, whose argmax row P-1 claims the changed token."""
    first = changed_token(greedy(model, prompt, 1)[0], decode.vocab(model))
    truth = generation_trace(model, prompt, greedy(model, prompt, n, first))
    return truth, committed_token(truth, len(prompt), n)

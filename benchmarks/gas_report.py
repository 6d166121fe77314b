"""Gas report: every call of a job's life and of whole disputes, measured on a local anvil.

For each bisection arity (2, 4, 8 by default) it deploys ModelRegistry, the verifiers, DisputeGame
and JobMarket on a fresh anvil (ape-foundry) and, for each model, runs one job whose solver lies in
the last row of its output, so that an honest challenger wins a full game:

* the digits MLP (64 -> 64 -> 32 -> 10) on its 450 test digits;
* the LLM-sized MLP 4096 -> 11008 -> 4096 of ``bench_forward.py``, batch 16, lying once in the
  hidden slot (the one step is at k = 4096) and once in the output (k = 11008).

It prints the gas of ``post``, ``claim``, ``commit``, ``challenge``, every game move (mean over
the game) and the whole dispute per party; then the one-step transaction alone at
k = 512, 4096, 8192 and 16384 (a one-op model k -> 4096) against the targets
(<= 400,000 at k = 4096, <= 800,000 at k = 8192, < 2^24 at k = 16384). Every figure is
``receipt.gas_used`` (anvil charges the EIP-7623 calldata floor where it applies).

Run: ``make gas`` or ``python benchmarks/gas_report.py [--arity 2 4 8] [--quick]``
(``--quick``: digits only, arity 2, one-step at k = 512 and 4096; ``--step-only K ...``: the
one-step table alone, at the given k).
"""

import argparse
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]

from ape import accounts, chain, project  # noqa: E402

from bench_forward import large_case  # noqa: E402
from dispute_driver import Party, play  # noqa: E402
from referee import commitments as cm  # noqa: E402
from referee.agents.localchain import local_chain  # noqa: E402
from referee.cheats import wrong_element  # noqa: E402
from referee.agents.deployment import deploy_game  # noqa: E402
from referee.digits import train_and_quantize  # noqa: E402
from referee.executor import run_model  # noqa: E402
from referee.model import IntegerModel, LinearOp  # noqa: E402
from referee.quantize import quantize_input  # noqa: E402
from referee.trace import Trace  # noqa: E402

CLOCK = 3600
FEE, SOLVER_BOND, CHALLENGER_BOND = 10**16, 10**18, 10**17
WINDOWS = (600, 600, 1800)
STEP_TARGETS = {4096: 400_000, 8192: 800_000, 16384: 1 << 24}
MOVE_ORDER = ("bisect", "choose", "transition", "reveal_children", "pick", "reveal_row", "step", "timeout")
SOLVER_MOVES = {"bisect", "transition", "reveal_children", "reveal_row"}


def digits_case():
    result = train_and_quantize()
    return result.integer_model, quantize_input(result.data.test_x, result.integer_model.input_scale)


def one_op_case(k: int, n: int = 4096):
    """A one-op model k -> n with random int8 weights inside the accumulator bound."""
    gen = torch.Generator().manual_seed(k)
    weight = torch.randint(-127, 128, (n, k), generator=gen, dtype=torch.int8)
    op = LinearOp(0, weight, torch.zeros(n, dtype=torch.int32), torch.full((n,), 1 << 20, dtype=torch.int32),
                  torch.full((n,), 30, dtype=torch.int32), False)
    rows = min(16, 65536 // k)
    return IntegerModel(k, [op], name=f"one-op k={k}").validate(), \
        torch.randint(-128, 128, (rows, k), generator=gen, dtype=torch.int8)


class Deployment:
    def __init__(self, arity: int):
        self.deployer, self.requester, self.solver, self.challenger, self.sink = accounts.test_accounts[:5]
        self.registry = self.deployer.deploy(project.ModelRegistry)
        self.game = deploy_game(self.deployer, arity, CLOCK, project)
        self.market = self.deployer.deploy(project.JobMarket, self.registry, self.game, CHALLENGER_BOND,
                                           CHALLENGER_BOND, 1000, 300, self.sink, 60, 30 * 86400)
        self.market.deposit(value=100 * SOLVER_BOND, sender=self.solver)

    def dispute(self, model: IntegerModel, x: torch.Tensor, lie_slot: int) -> dict:
        """One job with a solver lying in the last row of ``lie_slot``; gas of every call."""
        honest = Trace(model.root, run_model(model, x, "cpu"))
        rows, cols = honest.slots[lie_slot].shape
        lying = wrong_element(honest, lie_slot, row=rows - 1, col=cols - 1)
        m = self.market
        if self.registry.model_id(model.entry) == 0:
            self.registry.register(*model.registration(), sender=self.deployer)
        gas = {}
        receipt = m.post(self.registry.model_id(model.entry), rows, cm.packed(x), SOLVER_BOND, *WINDOWS,
                         value=FEE, sender=self.requester)
        gas["post"] = receipt.gas_used
        job = m.job_count()
        gas["claim"] = m.claim(job, sender=self.solver).gas_used
        n = len(model.ops)
        gas["commit"] = m.commit(job, cm.packed(lying.output), lying.trace_root, lying.state_tree(n).proof(n),
                                 sender=self.solver).gas_used
        gas["challenge"] = m.challenge(job, value=CHALLENGER_BOND, sender=self.challenger).gas_used
        game_id = self.game.game_count()
        outcome = play(chain, self.game, game_id, Party(self.solver, model, lying),
                       Party(self.challenger, model, honest))
        assert not outcome.solver_won, "the honest challenger must win"
        gas["settle"] = m.settle(game_id, sender=self.challenger).gas_used
        gas["moves"] = dict(outcome.gas)
        gas["solver_total"] = sum(sum(v) for k, v in outcome.gas.items() if k in SOLVER_MOVES)
        gas["challenger_total"] = gas["challenge"] + gas["settle"] + sum(sum(v) for k, v in outcome.gas.items()
                                                         if k not in SOLVER_MOVES)
        gas["move_count"] = outcome.moves
        return gas


def _fmt(value) -> str:
    return f"{value:,}" if isinstance(value, int) else value


def print_job_table(results: dict) -> None:
    """results[(case, arity)] -> gas dict."""
    columns = list(results)
    header = "| call | " + " | ".join(f"{case}, a={arity}" for case, arity in columns) + " |"
    print(header)
    print("|" + " --- |" * (len(columns) + 1))
    for name in ("post", "claim", "commit", "challenge", "settle"):
        print(f"| {name} | " + " | ".join(_fmt(results[c][name]) for c in columns) + " |")
    for move in MOVE_ORDER:
        cells = []
        for c in columns:
            values = results[c]["moves"].get(move)
            cells.append(f"{_fmt(round(statistics.mean(values)))} ×{len(values)}" if values else "–")
        print(f"| {move} (mean × count) | " + " | ".join(cells) + " |")
    for name, label in (("move_count", "game moves"), ("solver_total", "solver: all moves"),
                        ("challenger_total", "challenger: challenge + moves + settle")):
        print(f"| {label} | " + " | ".join(_fmt(results[c][name]) for c in columns) + " |")
    print("| whole dispute (both parties) | " + " | ".join(
        _fmt(results[c]["solver_total"] + results[c]["challenger_total"]) for c in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arity", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--quick", action="store_true", help="digits only, arity 2, small one-step sizes")
    parser.add_argument("--step-only", type=int, nargs="+", metavar="K",
                        help="only the one-step table, at these k")
    args = parser.parse_args()
    arities = [2] if args.quick else args.arity
    step_ks = (512, 4096) if args.quick else (512, 4096, 8192, 16384)
    if args.step_only:
        print_step_table(args.step_only)
        return

    print("preparing models (digits training, large MLP weights) ...", flush=True)
    cases = {"digits": (*digits_case(), 3)}
    if not args.quick:
        large = large_case(torch.device("cpu"))
        cases["large MLP, lie in hidden"] = (large.model, large.x_int, 1)
        cases["large MLP, lie in output"] = (large.model, large.x_int, 2)

    results = {}
    for arity in arities:
        for name, (model, x, lie_slot) in cases.items():
            print(f"  arity {arity}: {name} ...", flush=True)
            results[(name, arity)] = fresh_chain_dispute(arity, model, x, lie_slot)
    print("\n## Job and dispute gas\n")
    print_job_table(results)

    print_step_table(step_ks)


def print_step_table(step_ks) -> None:
    """The one-step transaction alone: a one-op model k -> 4096 whose solver lies in its output."""
    print("\n## One-step transaction (the challenger's `step`), one-op model k -> 4096\n")
    print("| k | rows | step gas | target | verdict |")
    print("| --- | --- | --- | --- | --- |")
    for k in step_ks:
        model, x = one_op_case(k)
        gas = fresh_chain_dispute(2, model, x, 1)["moves"]["step"][0]
        target = STEP_TARGETS.get(k)
        verdict = "–" if target is None else ("PASS" if gas <= target else "MISS")
        print(f"| {k} | {x.shape[0]} | {gas:,} | {_fmt(target) if target else '–'} | {verdict} |", flush=True)


def fresh_chain_dispute(arity: int, model: IntegerModel, x: torch.Tensor, lie_slot: int) -> dict:
    """One dispute on a fresh anvil started without ``--steps-tracing`` (``local_chain``).

    With that flag (ape-foundry's default) anvil keeps every transaction's full step trace in
    memory: gigabytes for calls with 64 KiB buffers, and it was killed for memory on this
    24 GiB machine. Gas figures do not depend on tracing.
    """
    with local_chain():
        return Deployment(arity).dispute(model, x, lie_slot)

if __name__ == "__main__":
    main()

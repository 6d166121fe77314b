"""How fast an agent gets the moves of K games out: one transaction per move against multicalls.

On a fresh local anvil (ape-foundry) with automine off, an honest solver (the real
``referee.agents.solver.Solver``) commits a job and a Sybil attacker (``tests/flood.py``'s
``Attacker``) opens K games against it and answers every move in the next block. Each round
the solver ticks (reads every game, decides every move, sends them), then one block is mined.
The same flood is played twice in one run, on two deployments of one chain:

- ``one move a tx``: the agent as it was, every move its own transaction (an estimate, a nonce
  read, a signature and a send each; a multicall limit of 1 call);
- ``multicall``: the moves of all games packed into ``DisputeGame.multicall`` transactions.

Per mode it prints the transactions per second while sending, the moves per transaction and
per second, the mean tick, the blocks it took for the first round of K moves to be out, and
the capacity its measured sending gives at 1-second blocks and a 60 s clock (the setting of
issue 16) next to the bound of block gas alone, then the ratios side by side.

Run: ``python benchmarks/bench_agent_throughput.py [--games 100] [--rounds 4]``.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "offchain")]

from flood import FEE, ROWS, SOLVER_BOND, WINDOWS, Attacker, Lockstep, job_input  # noqa: E402
from helpers import random_ref_model, to_integer_model  # noqa: E402
from referee import cheats  # noqa: E402
from referee import commitments as cm  # noqa: E402
from referee.agents import capacity as cap  # noqa: E402
from referee.agents.client import COMMITTED, ChainClient  # noqa: E402
from referee.agents.deployment import deploy  # noqa: E402
from referee.agents.journal import Journal  # noqa: E402
from referee.agents.localchain import local_chain  # noqa: E402
from referee.agents.solver import Solver  # noqa: E402
from referee.executor import run_model  # noqa: E402
from referee.trace import Trace, TraceStore  # noqa: E402

CLOCK = 3600


def play(mode: str, accounts, model, games: int, rounds: int, home: Path) -> dict:
    """One flood of ``games`` Sybil games against a fresh solver; the solver's sending figures."""
    import ape

    d = deploy(accounts[0], sink=str(accounts[9].address), clock=CLOCK)
    ChainClient(d, accounts[0]).registry.register(*model.registration(), sender=accounts[0])
    solver_account, attacker_account = (accounts[2], accounts[3]) if mode == "multicall" else (accounts[4], accounts[5])
    journal = Journal(home / mode / "solver.sqlite")
    client = ChainClient(d, solver_account, journal, patience=30)
    if mode != "multicall":
        client.max_calls = 1  # every move alone: the agent before batching
    solver = Solver(client, journal, [model], TraceStore(home / mode / "traces"), name="solver", device="cpu",
                    block_time=12, log=lambda line: None)
    solver.ensure_stake(SOLVER_BOND)
    x = job_input(1)
    client.market.post(1, ROWS, cm.packed(x), SOLVER_BOND, *WINDOWS, value=FEE, sender=accounts[1])
    job = client.market.job_count()
    lie = cheats.apply("wrong-output", Trace(model.root, run_model(model, x, "cpu")), model)
    attacker = Attacker(ChainClient(d, attacker_account, Journal(home / mode / "attacker.sqlite")), model,
                        lambda job_id: lie, as_solver=False, never=("step",))
    ticks, first_round_blocks = [], None
    with Lockstep(ape.chain.provider.uri) as lockstep:
        lockstep.run([solver], [solver], lambda: client.market.job(job).status == COMMITTED)
        attacker.challenge(job, games)
        attacker.tick()
        lockstep.mine()
        solver.tick()  # reads the JobChallenged logs: the games are followed from the next tick
        lockstep.mine()
        moved, blocks = 0, 0
        for _ in range(rounds):
            started = time.perf_counter()
            sent = solver.tick()
            ticks.append((sent, *solver._sending, time.perf_counter() - started))
            lockstep.mine()
            blocks += 1
            moved += sent
            if first_round_blocks is None and moved >= games:
                first_round_blocks = blocks
            attacker.tick()
            lockstep.mine()
        solver.tick()  # the last receipts
    busy = [t for t in ticks if t[1]]
    moves, txs, seconds = sum(t[0] for t in busy), sum(t[1] for t in busy), sum(t[2] for t in busy)
    journal.close()
    c = solver.capacity(model, ROWS)
    at_1s = cap.Capacity(1, c.block_gas, 60, c.moves, c.move_gas, send_rate=c.send_rate, tick_time=c.tick_time,
                         moves_per_tx=c.moves_per_tx)
    return {"mode": mode, "tx/s": txs / seconds, "moves/tx": moves / txs, "moves/s": moves / seconds,
            "tick s": statistics.mean(t[3] for t in busy), "blocks for K moves": first_round_blocks,
            "capacity at 1 s": at_1s.games, "gas bound at 1 s": cap.Capacity(1, c.block_gas, 60, c.moves,
                                                                            c.move_gas).games}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", type=int, default=100, help="Sybil games K (default 100)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of moves measured (default 4)")
    args = parser.parse_args()
    model = to_integer_model(random_ref_model(__import__("random").Random(7), 7, [6, 5, 8, 4, 6]))
    with local_chain(), tempfile.TemporaryDirectory() as home:
        import ape

        accounts = ape.accounts.test_accounts
        results = [play(mode, accounts, model, args.games, args.rounds, Path(home))
                   for mode in ("one move a tx", "multicall")]
    names = list(results[0])[1:]
    print(f"K={args.games} Sybil games, {args.rounds} rounds of solver moves (bisect, transition, "
          "reveal_children), the solver's sending while it ticks")
    print(f"{'':22}" + "".join(f"{r['mode']:>16}" for r in results) + f"{'ratio':>10}")
    for name in names:
        a, b = results[0][name], results[1][name]
        ratio = f"{b / a:.1f}x" if a and b else ""
        print(f"{name:22}" + "".join(f"{r[name]:>16.2f}" if isinstance(r[name], float) else f"{r[name]!s:>16}"
                                     for r in results) + f"{ratio:>10}")
    print("(capacity at 1 s: games at once at 1-second blocks and a 60 s clock, from the measured send rate "
          "and tick; gas bound: the same from block gas alone)")


if __name__ == "__main__":
    main()

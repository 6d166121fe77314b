"""The whole Referee story on a fresh local chain, told by ``make demo`` (``referee demo``).

1. Deploy the registry, verifiers, game and market; register the model.
2. An honest solver answers a job (the language model: a prompt to continue by N tokens; the
   digits MLP: rows to classify); the challenger re-runs it, agrees, and after the challenge
   window the solver is paid.
3. A cheating solver answers the same job again with a lie (the language model: another first
   token, and the text generated on from it; the MLP: one output element changed); the
   challenger catches it, the game is played move by move down to the op of the lie, whose
   kind's verifier recomputes one element, and the solver's bond is slashed.

Everything is real: anvil (started and stopped here), the compiled contracts, the agents
that ``referee solve`` and ``referee watch`` run, ticking in turn while the chain's clock is
moved past each deadline. Prints a timeline stamped with chain time, then the gas and ETH of
each party.
"""

import shutil
import time
from pathlib import Path

import click

from ..hashing import to_hex
from ..cheats import MODES as CHEATS
from ..model import IntegerModel, kind_name
from .agent import ether
from .cli import build_agent, quiet_ape
from .client import FINALIZED, REJECTED, ChainClient
from .deployment import deploy, register_model
from .drive import drive
from .localchain import local_chain

FEE = 10**16           # 0.01 ETH per job
SOLVER_BOND = 10**18   # 1 ETH asked of the solver
WINDOWS = (600, 600, 1800)  # claim, commit, challenge (seconds)
ROLES = ("deployer", "requester", "honest solver", "cheating solver", "challenger", "sink")


class Timeline:
    """Prints lines stamped with the chain's time since the story began."""

    def __init__(self):
        import ape

        self._chain = ape.chain
        self.start = ape.chain.blocks.head.timestamp

    def __call__(self, line: str) -> None:
        elapsed = self._chain.blocks.head.timestamp - self.start
        click.echo(f"  [{elapsed // 3600:02d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {line}")

    def warp(self, old: int, new: int) -> None:
        self(f"... {new - old:,} s pass on the chain clock ...")


class RowsJob:
    """A job of input rows (the digits MLP): what the requester posts and what it reads back."""

    def __init__(self, x, what: str):
        self.x, self.what = x, what

    def post(self, client: ChainClient, model_id: int):
        return client.post(model_id, self.x, FEE, SOLVER_BOND, WINDOWS)

    def result(self, client: ChainClient, job_id: int) -> str | None:
        return None


class GenerationJob:
    """A generation job (protocol 5.15): a prompt, continued by ``n`` tokens; its result is the
    text of the committed tokens."""

    def __init__(self, prompt: list[int], n: int, decode_ids, what: str):
        self.prompt, self.n, self.decode_ids, self.what = prompt, n, decode_ids, what

    def post(self, client: ChainClient, model_id: int):
        return client.post_generation(model_id, self.prompt, self.n, FEE, SOLVER_BOND, WINDOWS)

    def result(self, client: ChainClient, job_id: int) -> str | None:
        from .client import unpack_ids

        logs = client.logs(client.market, "TokensGenerated", client.deployment.block, client.head(), job_id=job_id)
        return f"\"{self.decode_ids(unpack_ids(bytes(logs[0].tokens)))}\"" if logs else None


def _post(client: ChainClient, model_id: int, job, timeline) -> int:
    receipt = job.post(client, model_id)
    job_id = client.market.job_count()
    timeline(f"requester: job {job_id} posted, {job.what}, fee {ether(FEE)} (gas {receipt.gas_used:,})")
    return job_id


def tell(model: IntegerModel, job, workdir: Path, cheat: str = "wrong-output") -> None:
    """Run the story for ``model`` and ``job`` (a RowsJob or a GenerationJob), posted twice: an
    honest solver answers the first, a solver with ``cheat`` the second."""
    import ape

    chain_dir = workdir / "chain"
    shutil.rmtree(chain_dir, ignore_errors=True)  # a fresh chain: no journal from an old one
    started = time.perf_counter()
    quiet_ape()
    with local_chain():
        accounts = dict(zip(ROLES, ape.accounts.test_accounts))
        opening = {name: account.balance for name, account in accounts.items()}
        timeline = Timeline()
        click.echo("4. a fresh local chain (anvil): deploy and register the model")
        deployment = deploy(accounts["deployer"], sink=str(accounts["sink"].address))
        deployment.save(chain_dir / "deployment.json")
        client = ChainClient(deployment, accounts["deployer"])
        market = client.market
        timeline(f"deployed market {deployment.market}, game {deployment.game} (arity "
                 f"{deployment.params['arity']}, clock {deployment.params['clock']} s) and a verifier per op kind")
        receipt = register_model(client.registry, model, accounts["deployer"])
        model_id = client.model_id(model)
        timeline(f"registered {model.name} as model {model_id}, root {to_hex(model.root)[:12]}… "
                 f"(gas {receipt.gas_used:,})")
        requester = ChainClient(deployment, accounts["requester"])

        def told(line: str) -> None:  # each transaction once, when mined with its gas, not when sent;
            if not line.endswith(": sent") and ": alive: " not in line:  # no heartbeat in a story
                timeline(line)

        agents = {name: build_agent("solver" if "solver" in name else "challenger", accounts[name], deployment,
                                    [model], chain_dir, log=told, name=name, device="cpu",
                                    cheat=cheat if "cheating" in name else None)
                  for name in ("honest solver", "cheating solver", "challenger")}
        for name in ("honest solver", "cheating solver"):
            agents[name].ensure_stake(SOLVER_BOND)

        click.echo("5. an honest solver answers a job; the challenger checks it; the solver is paid")
        job_id = _post(requester, model_id, job, timeline)
        honest, challenger = agents["honest solver"], agents["challenger"]
        drive([honest, challenger], lambda: market.job(job_id).status == FINALIZED and client.read(
            market.credit, honest.client.address) == 0, on_warp=timeline.warp)
        honest_text = job.result(client, job_id)
        if honest_text:
            timeline(f"the generated text, paid for: {honest_text}")

        click.echo(f"6. a cheating solver answers the same job with a lie ({cheat}: {CHEATS[cheat]}); "
                   "the challenger disputes it")
        job_id = _post(requester, model_id, job, timeline)
        cheater = agents["cheating solver"]
        drive([cheater, challenger], lambda: market.job(job_id).status == REJECTED
              and not challenger.journal.active_games() and market.credit(challenger.client.address) == 0,
              on_warp=timeline.warp)
        lie = job.result(client, job_id)
        if lie:
            timeline(f"the cheater's text, rejected: {lie}")
        for game_id in challenger.journal.games_of(job_id):
            g = client.game.games(game_id)
            timeline(f"game {game_id} ended at op {g.hi} of {len(model.ops)} ({kind_name(model.ops[g.hi - 1])}): "
                     f"its verifier recomputed one element of row {g.node_index} and found the lie")
        if market.credit(accounts["requester"]) > 0:
            receipt = market.withdraw(sender=accounts["requester"])
            timeline(f"requester: fee refunded and withdrawn (gas {receipt.gas_used:,})")
        receipt = market.release_to_sink(sender=accounts["deployer"])
        timeline(f"the slashed remainder sent to the sink (gas {receipt.gas_used:,})")
        honest.withdraw_stake()

        click.echo("7. gas and ETH per party")
        for name in ROLES:
            address = accounts[name].address
            gas = sum(r.gas_used for r in ape.chain.history[address])
            stake = market.stake(address)
            click.echo(f"  {name:<16} {gas:>10,} gas   stake {ether(stake):>9}   balance change "
                       f"{ether(accounts[name].balance - opening[name]):>12}")
        click.echo(f"  market balance {ether(market.balance)}, obligations {ether(market.obligations())}")
    click.echo(f"chain stopped; story told in {time.perf_counter() - started:.0f} s")

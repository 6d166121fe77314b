"""The whole Referee story on a fresh local chain, told by ``make demo`` (``referee demo``).

1. Deploy the registry, game and market; register the digits model.
2. An honest solver answers a job; the challenger re-runs it, agrees, and after the
   challenge window the solver is paid.
3. A cheating solver answers a second job with one output element changed; the challenger
   catches it, the game is played move by move, the solver's bond is slashed.

Everything is real: anvil (started and stopped here), the compiled contracts, the agents
that ``referee solve`` and ``referee watch`` run, ticking in turn while the chain's clock is
moved past each deadline. Prints a timeline stamped with chain time, then the gas and ETH of
each party.
"""

import shutil
import time
from pathlib import Path

import click

from .. import commitments as cm
from ..hashing import to_hex
from ..model import IntegerModel
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


def _post(market, model_id: int, x, requester, timeline) -> int:
    receipt = market.post(model_id, x.shape[0], cm.packed(x), SOLVER_BOND, *WINDOWS, value=FEE, sender=requester)
    job_id = market.job_count()
    timeline(f"requester: job {job_id} posted, {x.shape[0]} digits, fee {ether(FEE)} (gas {receipt.gas_used:,})")
    return job_id


def tell(model: IntegerModel, x, workdir: Path) -> None:
    """Run the story for ``model`` on input rows ``x`` (two jobs on the same input)."""
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
                 f"{deployment.params['arity']}, clock {deployment.params['clock']} s)")
        receipt = register_model(client.registry, model, accounts["deployer"])
        model_id = client.model_id(model)
        timeline(f"registered {model.name} as model {model_id}, root {to_hex(model.root)[:12]}… "
                 f"(gas {receipt.gas_used:,})")

        def told(line: str) -> None:  # each transaction once, when mined with its gas, not when sent;
            if not line.endswith(": sent") and ": alive: " not in line:  # no heartbeat in a story
                timeline(line)

        agents = {name: build_agent("solver" if "solver" in name else "challenger", accounts[name], deployment,
                                    [model], chain_dir, log=told, name=name, device="cpu",
                                    cheat="wrong-output" if "cheating" in name else None)
                  for name in ("honest solver", "cheating solver", "challenger")}
        for name in ("honest solver", "cheating solver"):
            agents[name].ensure_stake(SOLVER_BOND)

        click.echo("5. an honest solver answers a job; the challenger checks it; the solver is paid")
        job = _post(market, model_id, x, accounts["requester"], timeline)
        honest, challenger = agents["honest solver"], agents["challenger"]
        drive([honest, challenger], lambda: market.job(job).status == FINALIZED and client.read(
            market.credit, honest.client.address) == 0, on_warp=timeline.warp)

        click.echo("6. a cheating solver changes one output element; the challenger disputes it")
        job = _post(market, model_id, x, accounts["requester"], timeline)
        cheater = agents["cheating solver"]
        drive([cheater, challenger], lambda: market.job(job).status == REJECTED and not challenger.journal.active_games()
              and market.credit(challenger.client.address) == 0, on_warp=timeline.warp)
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

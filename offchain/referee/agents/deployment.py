"""Deploying the three contracts and remembering where they are, one file per network.

A deployments file (``deployments/<ecosystem>-<network>.json`` by default) records the chain
id, the block the market was deployed in (where agents start reading logs), the addresses and
the parameters. Agents and scripts load it to find the contracts; a file written for another
chain is refused, so an agent never plays against the wrong contracts.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import write_atomic
from ..errors import RefereeError

DEPLOYMENTS_DIR = Path("deployments")

# Defaults for a local chain; a real deployment sets each from flags (scripts/deploy.py).
DEFAULT_PARAMS = {
    "arity": 4,                    # bisection parts per round (power of two, 2..64)
    "clock": 3600,                 # seconds on each side's chess clock
    "challenger_bond": 10**17,     # wei, exactly this per challenge
    "min_solver_bond": 10**17,     # wei, the least a job may ask of its solver
    "reward_share_bps": 5000,      # share of a slashed solver bond paid to the challenger
}


@dataclass
class Deployment:
    """Where the contracts are on one chain, and how they were configured."""

    chain_id: int
    network: str
    registry: str
    game: str
    market: str
    block: int  # deployment block: log scans start here
    params: dict = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        write_atomic(Path(path), (json.dumps(asdict(self), indent=2) + "\n").encode())
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> "Deployment":
        try:
            data = json.loads(Path(path).read_text())
            return cls(**data)
        except FileNotFoundError:
            raise RefereeError(f"no deployments file {path}: deploy first (ape run deploy) or pass --deployment") \
                from None
        except (json.JSONDecodeError, TypeError) as exc:
            raise RefereeError(f"deployments file {path} is malformed: {exc}") from None


def default_path(ecosystem: str, network: str) -> Path:
    return DEPLOYMENTS_DIR / f"{ecosystem}-{network}.json"


def contracts_project():
    """The Ape project holding Referee's contracts: the current one, or this repository's."""
    import ape

    if "JobMarket" in getattr(ape.project, "contracts", {}):
        return ape.project
    root = Path(__file__).resolve().parents[3]
    if not (root / "contracts" / "JobMarket.vy").is_file():
        raise RefereeError("cannot find Referee's contracts: run from the repository root")
    return ape.Project(root)


def deploy(account, sink: str, **overrides) -> Deployment:
    """Deploy registry, game and market from ``account``; parameters default to DEFAULT_PARAMS."""
    import ape

    unknown = set(overrides) - set(DEFAULT_PARAMS)
    if unknown:
        raise RefereeError(f"unknown deployment parameters: {', '.join(sorted(unknown))}")
    params = {**DEFAULT_PARAMS, **{k: v for k, v in overrides.items() if v is not None}}
    project = contracts_project()
    first_block = ape.chain.blocks.height + 1
    registry = account.deploy(project.ModelRegistry)
    game = account.deploy(project.DisputeGame, params["arity"], params["clock"])
    market = account.deploy(project.JobMarket, registry, game, params["challenger_bond"],
                            params["min_solver_bond"], params["reward_share_bps"], sink)
    provider = ape.chain.provider
    return Deployment(
        chain_id=provider.chain_id,
        network=f"{provider.network.ecosystem.name}:{provider.network.name}",
        registry=str(registry.address), game=str(game.address), market=str(market.address),
        block=first_block,
        params={**params, "sink": sink},
    )

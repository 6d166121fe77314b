"""Deploying the three contracts and remembering where they are, one file per network.

A deployments file (``deployments/<ecosystem>-<network>.json`` by default) records the chain
id, the block the market was deployed in (where agents start reading logs), the addresses and
the parameters. Agents and scripts load it to find the contracts. Loaded while connected, it
is checked against the chain: a file written for another chain, or for a local chain since
restarted (the same chain id, but no code at its addresses), is refused with what happened and
what to do, so an agent never plays against the wrong contracts (or none).
"""

import json
import re
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
    "reward_share_bps": 1000,      # bonus pool of a slashed solver bond, shared by the winning games (<= 1000)
    "dilution_fee_bps": 300,       # fee each winning game pays out of its share (2 x fee < pool < 6 x fee)
    "min_window": 60,              # seconds: the shortest claim/commit/challenge window (5 blocks of 12 s)
    "max_window": 30 * 86400,      # seconds: the longest window, so no job locks a bond for longer
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
    def load(cls, path: Path, check: bool = True) -> "Deployment":
        """The deployment in ``path``; when Ape is connected (and ``check``), checked against
        the chain (``check_chain``)."""
        try:
            deployment = cls(**json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise RefereeError(f"no deployments file {path}: deploy first (ape run deploy) or pass --deployment") \
                from None
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
            raise RefereeError(f"deployments file {path} is malformed: {exc}") from None
        if check and _connected():
            deployment.check_chain(path)
        return deployment

    def check_chain(self, path: Path | str = "the deployment") -> None:
        """Refuse a deployment the connected chain does not hold: another chain id, or an
        address without code (the chain was reset, e.g. anvil restarted, since the file was
        written). Ape would otherwise fail deep inside with ContractNotFoundError."""
        import ape

        provider = ape.chain.provider
        chain_id = provider.chain_id
        redo = ("deploy on this chain (ape run deploy, with --force to replace the file) or pass --deployment "
                "with this chain's file")
        if chain_id != self.chain_id:
            raise RefereeError(f"deployments file {path} is for chain {self.chain_id}, but the node is chain "
                               f"{chain_id}: {redo}")
        missing = [name for name in ("registry", "game", "market") if not provider.get_code(getattr(self, name))]
        if missing:
            head = provider.get_block("latest").number
            names = " and ".join(missing) if len(missing) < 3 else "registry, game and market"
            raise RefereeError(
                f"deployments file {path}: no contract at its {names} address{'es' if len(missing) > 1 else ''} "
                f"({missing[-1]} {getattr(self, missing[-1])}) on this chain (chain {chain_id}, {head + 1:,} blocks): "
                "the chain was reset since the file was written (a restarted anvil starts empty), or the file is "
                f"another chain's; {redo}")


def _connected() -> bool:
    import ape

    provider = ape.networks.active_provider
    return provider is not None and provider.is_connected


def connection_error(network: str, exc: BaseException) -> str:
    """One line saying why ``network`` could not be used: Ape's own messages run to dozens of
    lines (a stack, or every ecosystem it knows after a bad choice)."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first = re.sub(r"[.:]?\s*Options:?$", "", first).rstrip(". :")  # Ape's list of choices follows
    if re.fullmatch(r"[\w.-]+:\d+(/.*)?", network):  # host:port, the scheme forgotten
        return (f"--network {network}: a node's URL needs its scheme, e.g. http://{network} "
                "(or give an Ape network choice such as ethereum:sepolia:node)")
    if "://" in network:
        return f"cannot connect to {network}: {first}; is the node running and is the URL right?"
    return (f"cannot use network {network}: {first}; give an Ape network choice such as ethereum:sepolia:node "
            "(see `ape networks list`) or a node's URL such as http://127.0.0.1:8545")


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


# The verifier contract of each op kind, kind k at index k - 1 (protocol 10.3, 10.9): the game's
# table, fixed at its deployment. A kind whose contract the project lacks gets the zero address
# (the game refuses its steps).
VERIFIER_CONTRACTS = ("LinearVerifier", "MatmulVerifier", "TransposeVerifier", "AddVerifier", "LutVerifier",
                      "SoftmaxVerifier", "NormVerifier", "EmbedVerifier", "ArgmaxVerifier", "RopeVerifier",
                      "MulVerifier")
ZERO_ADDRESS = "0x" + "00" * 20


def deploy_verifiers(account, project=None) -> list[str]:
    """Deploy every kind's verifier that ``project`` has, in kind order; the zero address for the rest."""
    project = project if project is not None else contracts_project()
    names = getattr(project, "contracts", {})
    return [str(account.deploy(getattr(project, name)).address) if name in names else ZERO_ADDRESS
            for name in VERIFIER_CONTRACTS]


def deploy_game(account, arity: int, clock: int, project=None):
    """The verifiers first, then a DisputeGame over them (protocol 10, deployment order)."""
    project = project if project is not None else contracts_project()
    return account.deploy(project.DisputeGame, arity, clock, deploy_verifiers(account, project))


def deploy(account, sink: str, **overrides) -> Deployment:
    """Deploy registry, verifiers, game and market from ``account``; parameters default to DEFAULT_PARAMS."""
    import ape

    unknown = set(overrides) - set(DEFAULT_PARAMS)
    if unknown:
        raise RefereeError(f"unknown deployment parameters: {', '.join(sorted(unknown))}")
    params = {**DEFAULT_PARAMS, **{k: v for k, v in overrides.items() if v is not None}}
    project = contracts_project()
    first_block = ape.chain.blocks.height + 1
    registry = account.deploy(project.ModelRegistry)
    game = deploy_game(account, params["arity"], params["clock"], project)
    market = account.deploy(project.JobMarket, registry, game, params["challenger_bond"],
                            params["min_solver_bond"], params["reward_share_bps"], params["dilution_fee_bps"], sink,
                            params["min_window"],
                            params["max_window"])
    provider = ape.chain.provider
    return Deployment(
        chain_id=provider.chain_id,
        network=f"{provider.network.ecosystem.name}:{provider.network.name}",
        registry=str(registry.address), game=str(game.address), market=str(market.address),
        block=first_block,
        params={**params, "sink": sink},
    )


def register_model(registry, model, sender):
    """Register ``model`` in ``registry`` from ``sender`` with every fact its model file gives
    (``IntegerModel.registration``: shapes, ops root, dtypes, row rule); the receipt."""
    return registry.register(*model.registration(), sender=sender)

"""``referee solve``, ``referee watch`` and ``referee rehearse``: the operator commands.

Networks are chosen the Ape way (``--network ethereum:sepolia:node``, or a node's URL such as
``http://127.0.0.1:8545``); accounts come from Ape's keystore (``--account ALIAS``; the
passphrase from ``REFEREE_PASSPHRASE`` or a prompt) or, on a local chain, its test accounts
(``--account TEST::1``). Each agent keeps its journal and traces under
``--home/<role>-<address>/`` unless ``--state``/``--store`` say otherwise.
"""

import contextlib
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from ..cheats import MODES as CHEATS
from ..errors import RefereeError
from ..executor import check_device
from ..modelfile import load_model
from .deployment import Deployment, connection_error, default_path
from .terms import DEFAULT_MAX_BOND, DEFAULT_MAX_WINDOW

DEFAULT_NETWORK = "http://127.0.0.1:8545"
DEFAULT_HOME = Path.home() / ".referee"


class EtherAmount(click.ParamType):
    """An amount in ETH (``0.5``), converted to wei."""

    name = "ETH"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            wei = Decimal(str(value)) * 10**18
        except InvalidOperation:
            self.fail(f"{value!r} is not an amount of ETH", param, ctx)
        if wei < 0 or wei != wei.to_integral_value():
            self.fail(f"{value!r} is not a whole number of wei", param, ctx)
        return int(wei)


ETH = EtherAmount()


def quiet_ape() -> None:
    """Ape's own INFO lines (every confirmed transaction), its revert traces and a pydantic
    warning are noise next to the agents' log (``logs.quiet_ape``)."""
    from .logs import quiet_ape as quiet

    quiet()


@contextlib.contextmanager
def connected(network: str):
    """Connect Ape to ``network``; a clear error when it cannot be reached or parsed."""
    import ape
    from ape.exceptions import ApeException

    quiet_ape()

    try:
        context = ape.networks.parse_network_choice(network)
        provider = context.__enter__()
    except ApeException as exc:
        raise RefereeError(connection_error(network, exc)) from None
    try:
        yield provider
    finally:
        context.__exit__(None, None, None)


@contextlib.contextmanager
def user_errors():
    """A user mistake or a reverted transaction ends in one ``Error:`` line, not a traceback."""
    from ape.exceptions import ApeException, ContractLogicError
    from web3.exceptions import Web3RPCError

    try:
        yield
    except RefereeError as exc:
        raise click.ClickException(str(exc)) from None
    except ContractLogicError as exc:
        raise click.ClickException(f"transaction reverted: {exc.message or exc}") from None
    except ApeException as exc:  # the node refused a transaction (funds, nonce, gas), and the like
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise click.ClickException(f"{type(exc).__name__}: {first}") from None
    except Web3RPCError as exc:  # the node refused a call Ape let through unwrapped
        message = exc.rpc_response.get("error", {}).get("message") if isinstance(exc.rpc_response, dict) else None
        raise click.ClickException(f"the node refused: {message or str(exc).splitlines()[0]}") from None


def load_account(name: str):
    """``TEST::N`` (a local test account) or an alias in Ape's keystore, unlocked for signing."""
    import ape
    from ape.exceptions import AccountsError

    if name.upper().startswith("TEST::"):
        try:
            return ape.accounts.test_accounts[int(name.split("::", 1)[1])]
        except (ValueError, IndexError):
            raise RefereeError(f"no test account {name!r}; use TEST::0 to TEST::9") from None
    try:
        account = ape.accounts.load(name)
    except (AccountsError, IndexError, KeyError):
        raise RefereeError(f"no account {name!r} in Ape's keystore (see `ape accounts list`)") from None
    passphrase = os.environ.get("REFEREE_PASSPHRASE")
    if passphrase is None:
        passphrase = click.prompt(f"Passphrase for account {name!r}", hide_input=True, err=True)
    try:
        # an agent signs unattended: without autosign Ape would ask before every transaction
        account.set_autosign(True, passphrase=passphrase)
    except AccountsError:
        raise RefereeError(f"wrong passphrase for account {name!r}") from None
    return account


def resolve_deployment(path: Path | None) -> Deployment:
    import ape

    network = ape.chain.provider.network
    return Deployment.load(path or default_path(network.ecosystem.name, network.name))


def _models(model_dirs: tuple[Path, ...]) -> list:
    return [load_model(d) for d in model_dirs]


def build_agent(kind: str, account, deployment: Deployment, models: list, home: Path, state: Path | None = None,
                store: Path | None = None, log=click.echo, model_dirs: tuple[Path, ...] = (), **options):
    """A Solver or Challenger with its journal and trace store (defaults under ``home``); the
    command line, the demo and rehearsals all build their agents here. ``model_dirs`` (the
    ``--model`` folders) are remembered in the journal, for ``ape run dispute --move``."""
    from ..trace import TraceStore
    from .challenger import Challenger
    from .client import ChainClient
    from .journal import Journal
    from .solver import Solver

    agent_dir = home / f"{kind}-{str(account.address).lower()}"
    journal = Journal(state or agent_dir / "state.sqlite")
    if model_dirs:
        journal.remember_models(model_dirs)
    name = options.get("name", kind)
    client = ChainClient(deployment, account, journal, log=lambda line: log(f"{name}: {line}"))
    cls = Solver if kind == "solver" else Challenger
    return cls(client, journal, models, TraceStore(store or agent_dir / "traces"), log=log, **options)


def _agent_options(command):
    options = [
        click.option("--network", default=DEFAULT_NETWORK, show_default=True, envvar="REFEREE_NETWORK",
                     help="Ape network choice or node URL (env REFEREE_NETWORK)."),
        click.option("--account", required=True, envvar="REFEREE_ACCOUNT",
                     help="Ape keystore alias, or TEST::N on a local chain (env REFEREE_ACCOUNT)."),
        click.option("--deployment", type=click.Path(path_type=Path),
                     help="Deployments file [default: deployments/<ecosystem>-<network>.json]."),
        click.option("--model", "model_dirs", multiple=True, required=True, type=click.Path(path_type=Path),
                     help="A model directory to serve or watch (repeat for several)."),
        click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True,
                     help="Where agents keep their journal and traces."),
        click.option("--state", type=click.Path(path_type=Path), help="SQLite journal (overrides --home)."),
        click.option("--store", type=click.Path(path_type=Path), help="Trace store directory (overrides --home)."),
        click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda[:N]."),
        click.option("--poll", type=click.FloatRange(0.1), default=2.0, show_default=True,
                     help="Seconds between passes over the chain."),
        click.option("--once", is_flag=True, help="Act until there is nothing to send now, then exit."),
        click.option("--confirmations", type=click.IntRange(0), default=0, show_default=True,
                     help="Read logs this many blocks behind the head (a few on a real chain, against reorgs)."),
        click.option("--block-time", type=click.FloatRange(0.1), default=None,
                     help="Seconds between blocks: the capacity in games, and the commit window a solver "
                          "accepts (at least 5 blocks) [default: measured from recent blocks; 12 where they say "
                          "nothing, or on a local chain that mines a block per transaction]."),
        click.option("--log-file", type=click.Path(path_type=Path), help="Also append the log lines to this file."),
        click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
                     show_default=True, help="The least level of line to show."),
        click.option("--metrics-port", type=click.IntRange(0, 65535),
                     help="Serve Prometheus metrics on http://127.0.0.1:PORT/metrics."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _agent_log(role: str, level: str, log_file: Path | None):
    """Timestamped, levelled lines on stderr (and ``log_file``): ``referee.agents.logs``."""
    from .logs import agent_logger, line_logger, setup_logging

    setup_logging(level, log_file)
    return line_logger(agent_logger(role), prefix=f"{role}: ")


@contextlib.contextmanager
def _metrics(agent, port: int | None):
    """With ``port``, the agent's Prometheus endpoint for as long as it runs."""
    if port is None:
        yield
        return
    from .metrics import AgentMetrics

    agent.metrics = AgentMetrics(agent.role, agent.client.address)
    server = agent.metrics.start_server(port)
    agent.log(f"metrics on {server.url}")
    try:
        yield
    finally:
        server.close()


@contextlib.contextmanager
def _sigterm_stops():
    """SIGTERM (``kill``, ``docker stop``, systemd) stops an agent as Ctrl-C does: between two
    steps, saying which games are still in play (``Agent.stop_notes``)."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (an agent run from a test's thread): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


CHEAT_HELP = "For demonstrations and tests only: " + "; ".join(f"{k}: {v}" for k, v in CHEATS.items()) + "."


@click.command()
@_agent_options
@click.option("--stake", type=ETH, default=0, show_default=True,
              help="Keep at least this much ETH staked in the market (deposits the difference).")
@click.option("--max-bond", type=ETH, default=DEFAULT_MAX_BOND, show_default="1 ETH",
              help="Skip jobs asking a larger solver bond (ETH).")
@click.option("--min-fee", type=ETH, default=None,
              help="Skip jobs paying less (ETH) [default: the gas of serving the job at the current gas price].")
@click.option("--max-window", type=click.IntRange(1), default=DEFAULT_MAX_WINDOW, show_default=True,
              help="Skip jobs whose commit and challenge windows together would lock the bond longer (seconds).")
@click.option("--cheat", type=click.Choice(sorted(CHEATS)),
              help=CHEAT_HELP)
def solve(network, account, deployment, model_dirs, home, state, store, device, poll, once, confirmations,
          block_time, log_file, log_level, metrics_port, stake, max_bond, min_fee, max_window, cheat):
    """Serve jobs on the given models: claim, run exactly, commit, defend every game, get paid."""
    with user_errors():
        models = _models(model_dirs)  # a model the chain cannot take is refused before any chain work
    with user_errors(), connected(network):
        agent = build_agent("solver", load_account(account), resolve_deployment(deployment), models, home,
                            state, store, log=_agent_log("solver", log_level, log_file), model_dirs=model_dirs,
                            device=check_device(device), cheat=cheat, max_bond=max_bond, min_fee=min_fee,
                            max_window=max_window, block_time=block_time, confirmations=confirmations)
        with contextlib.closing(agent.journal), _metrics(agent, metrics_port):  # closing: the lock goes
            if stake:
                agent.ensure_stake(stake)
            with _sigterm_stops():
                agent.run(poll, once)


@click.command()
@click.option("--network", default=DEFAULT_NETWORK, show_default=True, envvar="REFEREE_NETWORK",
              help="Ape network choice or node URL (env REFEREE_NETWORK).")
@click.option("--account", required=True, envvar="REFEREE_ACCOUNT",
              help="Ape keystore alias, or TEST::N on a local chain (env REFEREE_ACCOUNT).")
@click.option("--deployment", type=click.Path(path_type=Path),
              help="Deployments file [default: deployments/<ecosystem>-<network>.json].")
def unstake(network, account, deployment):
    """Withdraw the solver's free stake (what no claimed or committed job has locked)."""
    from .agent import ether
    from .client import ChainClient

    with user_errors(), connected(network):
        client = ChainClient(resolve_deployment(deployment), load_account(account))
        free = client.free_stake()
        if free == 0:
            raise RefereeError(f"{client.address} has no free stake in market {client.market.address}")
        receipt = client.send(f"unstake:{client.head()}", client.market, "withdraw_stake", free)
        click.echo(f"withdrew {ether(free)} of stake (gas {receipt.gas_used:,})")


@click.command()
@_agent_options
@click.option("--max-bond", type=ETH, default=DEFAULT_MAX_BOND, show_default="1 ETH",
              help="Do not challenge when the challenger bond is above this (ETH).")
@click.option("--cheat", type=click.Choice(sorted(CHEATS)),
              help="For tests only: believe a wrong trace, and so challenge right results.")
def watch(network, account, deployment, model_dirs, home, state, store, device, poll, once, confirmations,
          block_time, log_file, log_level, metrics_port, max_bond, cheat):
    """Check every committed result on the given models; challenge wrong ones and play to the end."""
    with user_errors():
        models = _models(model_dirs)  # a model the chain cannot take is refused before any chain work
    with user_errors(), connected(network):
        agent = build_agent("challenger", load_account(account), resolve_deployment(deployment), models,
                            home, state, store, log=_agent_log("challenger", log_level, log_file),
                            model_dirs=model_dirs, device=check_device(device), cheat=cheat, max_bond=max_bond,
                            block_time=block_time, confirmations=confirmations)
        with contextlib.closing(agent.journal), _metrics(agent, metrics_port), _sigterm_stops():
            agent.run(poll, once)


@click.command()
@click.option("--fork-url", required=True, help="URL of the real chain's node to fork (read only).")
@click.option("--job", "job_id", required=True, type=click.IntRange(1), help="The job whose dispute to rehearse.")
@click.option("--account", required=True, envvar="REFEREE_ACCOUNT",
              help="Ape keystore alias, or TEST::N (env REFEREE_ACCOUNT): the side to rehearse.")
@click.option("--deployment", type=click.Path(path_type=Path), required=True, help="The real chain's deployments file.")
@click.option("--model", "model_dirs", multiple=True, required=True, type=click.Path(path_type=Path),
              help="The job's model directory.")
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True,
              help="Where the agent keeps its traces (read; the rehearsal journal is temporary).")
@click.option("--store", type=click.Path(path_type=Path), help="Trace store directory (overrides --home).")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda[:N].")
def rehearse(fork_url, job_id, account, deployment, model_dirs, home, store, device):
    """Play job N's pending dispute on an anvil fork of --fork-url and report outcome and gas."""
    import ape

    from .localchain import fork
    from .rehearse import print_report
    from .rehearse import rehearse as play_on_fork

    with user_errors():
        models = _models(model_dirs)  # a model the chain cannot take is refused before any chain work
    with user_errors(), fork(fork_url) as url, connected(url):
        signer = load_account(account)
        chosen = Deployment.load(deployment)

        def build(kind, state):
            return build_agent(kind, signer, chosen, models, home, state, store, device=device)

        report = play_on_fork(build, job_id)
        print_report(report, ape.chain.provider.gas_price)

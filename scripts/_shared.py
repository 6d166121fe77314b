"""What every Ape script here shares (``ape run`` skips files whose name starts with ``_``).

``OperatorCommand`` is Ape's ``ConnectedProviderCommand`` with one-line errors for what goes
wrong before and around a script's own code: a ``--network`` that is not a network (a node's
URL without ``http://`` made Ape list its 60 ecosystems), a node that cannot be reached (38
lines of stack, then ``ProviderError``), and any Ape exception a script lets through (a
``TransactionError`` for too little ETH, say). It also quiets Ape (``referee.agents.logs.quiet_ape``:
no call trace dumping raw input bytes on a revert, no INFO line per transaction) and the
pydantic-settings warning Ape's pinned stack raises on every ``ape run``.

``confirm_cost`` shows what a transaction will cost and risk before it is sent, and asks
(``--yes`` skips the question, for scripts; with nothing to read an answer from, nothing is sent).
"""

import re
import warnings

# Raised inside pydantic-settings when the pinned Ape stack loads its config, after the scripts
# are imported (ape imports every script to list them) and before any of them runs: not ours to
# fix, and it would print on every call. pyproject's pytest filterwarnings does the same in tests.
warnings.filterwarnings("ignore", message="Field 'import_remapping' has an incomplete definition")

import click  # noqa: E402
from ape.cli import ConnectedProviderCommand  # noqa: E402

CONNECTED = "referee.connected"
VERBOSE = "referee.verbose"
NETWORK = "referee.network"


def _network_arg(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg == "--network" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--network="):
            return arg.split("=", 1)[1]
    return None


def one_line(exc: BaseException) -> str:
    """``TypeName: first line`` of an exception Ape raised (its messages run to many lines)."""
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class OperatorCommand(ConnectedProviderCommand):
    """An Ape script command whose failures around the script (network, node, Ape) are one line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from referee.agents.deployment import connection_error

        network = _network_arg(list(args))
        ctx.meta[NETWORK] = network
        ctx.meta[VERBOSE] = any(a in ("-v", "--verbosity") or a.startswith("--verbosity=") for a in args)
        if network is not None and re.fullmatch(r"[\w.-]+:\d+(/.*)?", network):
            raise click.ClickException(connection_error(network, ValueError("no scheme")))
        try:
            return super().parse_args(ctx, args)
        except click.BadParameter as exc:
            if exc.param is not None and exc.param.name == "network":
                raise click.ClickException(connection_error(network or "", exc.message)) from None
            raise

    def invoke(self, ctx: click.Context):
        from ape.exceptions import ApeException

        from referee.agents.deployment import connection_error

        if not ctx.meta.get(VERBOSE):  # Ape's "Connecting to a node" line, unless -v asked for Ape's lines
            from ape.logging import LogLevel, logger

            logger.set_level(LogLevel.WARNING)
        try:
            return super().invoke(ctx)
        except ApeException as exc:
            if not ctx.meta.get(CONNECTED):  # Ape failed to connect, before the script ran
                network = ctx.meta.get(NETWORK) or "the default network"
                raise click.ClickException(connection_error(network, exc)) from None
            raise click.ClickException(one_line(exc)) from None

    def _invoke(self, ctx: click.Context, provider=None):
        from referee.agents.logs import quiet_ape

        ctx.meta[CONNECTED] = True
        verbosity = None
        if ctx.meta.get(VERBOSE):
            from ape.logging import logger

            verbosity = logger.level
        quiet_ape()
        if verbosity is not None:
            from ape.logging import logger

            logger.set_level(verbosity)
        return super()._invoke(ctx, provider=provider)


def yes_option(command):
    return click.option("--yes", "-y", is_flag=True,
                        help="Send without asking (for scripts): the cost is still shown.")(command)


def eth(wei: int) -> str:
    """``10,000 ETH``, ``0.000786 ETH``: exact to the micro-ether, with thousands separators
    (balances and costs side by side; ``1e+04 ETH`` reads badly next to ``0.0108 ETH``)."""
    from decimal import ROUND_HALF_EVEN, Decimal

    value = (Decimal(int(wei)) / 10**18).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)
    text = f"{value:,f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + " ETH"


def gas_price() -> int:
    import ape

    return int(ape.chain.provider.gas_price)


def gas_within_balance(account, gas: int) -> tuple[int, int]:
    """(gas, price) of a call that sends no value, once the account's balance is seen to pay
    for it (a clear error otherwise, before anything is asked or sent)."""
    from referee.errors import RefereeError

    price, balance = gas_price(), int(account.balance)
    if balance < gas * price:
        raise RefereeError(f"{account.address} has {eth(balance)}, less than the gas {eth(gas * price)}: "
                           "fund the account")
    return gas, price


def confirm_cost(lines: list[str], yes: bool, what: str) -> None:
    """Print the cost lines, then ask before ``what`` is sent (``--yes``: do not ask)."""
    for line in lines:
        click.echo(line)
    if yes:
        return
    try:
        answer = click.confirm(f"{what[0].upper()}{what[1:]}?", default=False)
    except click.Abort:  # no answer to read (stdin closed or not a terminal): never send unasked
        click.echo()
        raise click.ClickException(f"nothing sent: pass --yes to {what} without being asked") from None
    if not answer:
        raise click.ClickException(f"nothing sent: not confirmed (--yes would {what} without asking)")


def agent_dir(home, role: str, address: str):
    """Where ``referee solve|watch`` keeps an account's journal and traces (``--home``'s layout)."""
    from pathlib import Path

    return Path(home) / f"{role}-{str(address).lower()}"


def job_model(client, job_id: int, model_dir, journal_path):
    """The model of job ``job_id``: ``model_dir``, or the one of the agent's own models (named
    in its journal at ``journal_path``) that the job runs; a clear error when neither is."""
    from referee.agents.journal import Journal
    from referee.errors import RefereeError
    from referee.hashing import to_hex
    from referee.modelfile import load_model

    model_id = client.job(job_id).model_id
    if model_dir is None:
        candidates = Journal(journal_path, lock=False).model_dirs() if journal_path.is_file() else []
        for candidate in candidates:
            if candidate.is_dir():
                model = load_model(candidate)  # loaded once: loading verifies every commitment
                if client.model_id(model) == model_id:
                    return model
        known = f"the agent's journal {journal_path} names {len(candidates)} model(s), none of them it" \
            if journal_path.is_file() else f"no agent journal at {journal_path} to take it from"
        raise RefereeError(f"job {job_id} runs model {model_id}: pass --model DIR, its model directory ({known})")
    model = load_model(model_dir)
    found = client.model_id(model)
    if found != model_id:
        registered = f"is model {found}" if found else "is not registered"
        raise RefereeError(f"--model {model_dir} ({to_hex(model.root)[:12]}…) {registered} on this chain, but job "
                           f"{job_id} runs model {model_id}")
    return model


def job_trace(client, job_id: int, model, store, save: bool = True):
    """The trace of job ``job_id`` on ``model``: from the trace store ``store``, or run here
    (exactly, as the agents do) and, with ``save``, kept there so an agent or a later move
    finds it."""
    from referee import commitments as cm
    from referee.agents.agent import job_rows
    from referee.executor import Executor
    from referee.trace import Trace, TraceStore

    x = job_rows(client.posted_input(job_id), client.job(job_id).rows, model.input_cols, model.input_dtype)
    key = (model.root, cm.commit_tensor(x).root)
    traces = TraceStore(store)
    if key in traces:
        return traces.load(*key)
    click.echo(f"no stored trace in {store}: running {model.name} on job {job_id}'s {x.shape[0]} rows here")
    trace = Trace(model.root, Executor(model, "auto").run(x))
    if save:
        traces.save(trace)
    return trace

"""A fresh local chain for the demo, the gas report and rehearsals: anvil, started and stopped.

``local_chain`` connects Ape to ``ethereum:local:foundry``; ape-foundry starts the anvil
binary on a free port and stops it on exit. Every anvil started here is lean (``lean_anvil``):
- without ``--steps-tracing`` (ape-foundry's default): with that flag anvil keeps every
  transaction's full step trace in memory, gigabytes for calls with 64 KiB buffers, and nothing
  here needs the traces;
- with ``--max-persisted-states 0``: by default anvil moves old blocks' states out of memory
  into ``~/.foundry/anvil/tmp``, about 0.5 GB for a few minutes of tests and 4-5 GB for a
  long run, and leaves them there when it is killed rather than stopped (ape-foundry kills it);
  a test session filled a CI machine's disk that way. Nothing here reads the state of a block
  older than the ones anvil keeps in memory.

``fork`` starts the anvil binary itself, forked from another node, on a free port, and stops
it (its whole process group) on exit.

``advance_clock`` mines a block at a later time on a local chain, where nothing happens between
transactions: ``ape run advance`` uses it to move past a job's window or a game's clock.
"""

import contextlib
import shutil
import socket
import subprocess
import time

from ..errors import RefereeError


# Keep no state on disk (see above); every anvil this project starts takes these flags.
LEAN_FLAGS = ("--max-persisted-states", "0")


def lean_anvil() -> None:
    """From now on, ape-foundry starts anvil lean: no step traces, no states on disk (idempotent)."""
    from ape_foundry.provider import FoundryProvider

    build_command = FoundryProvider.build_command
    if getattr(build_command, "lean", False):
        return

    def lean(self):
        return [arg for arg in build_command(self) if arg != "--steps-tracing"] + list(LEAN_FLAGS)

    lean.lean = True
    FoundryProvider.build_command = lean


@contextlib.contextmanager
def local_chain():
    import ape

    lean_anvil()
    with ape.networks.parse_network_choice("ethereum:local:foundry") as provider:
        yield provider


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def fork(url: str, timeout: float = 30.0):
    """An anvil forked from ``url`` at its latest block; yields the fork's URL."""
    binary = shutil.which("anvil")
    if binary is None:
        raise RefereeError("anvil is not on PATH (make setup installs it)")
    port = _free_port()
    process = subprocess.Popen([binary, "--fork-url", url, "--port", str(port), "--silent", *LEAN_FLAGS],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                error = process.stderr.read().decode(errors="replace").strip().splitlines()
                raise RefereeError(f"anvil could not fork {url}: {error[-1] if error else 'it exited'}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise RefereeError(f"anvil did not start forking {url} within {timeout:.0f} s")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def advance_clock(timestamp: int) -> int:
    """Mine one block at ``timestamp`` on the connected local chain (anvil, hardhat); return its
    number. A node that does not let its clock be set (any real chain) is a clear error."""
    import ape

    web3 = ape.chain.provider.web3
    now = ape.chain.blocks.head.timestamp
    if timestamp <= now:
        raise RefereeError(f"the chain's clock is already at {now}, past {timestamp}: nothing to advance")
    for method, params in (("evm_setNextBlockTimestamp", [int(timestamp)]), ("evm_mine", [])):
        response = web3.provider.make_request(method, params)
        if isinstance(response, dict) and response.get("error"):
            error = response["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise RefereeError(f"this node does not let its clock be set ({method}: {message}): only a local chain "
                               "(anvil) can be advanced; on a real chain, wait")
    return ape.chain.blocks.head.number

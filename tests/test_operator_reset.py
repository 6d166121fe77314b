"""A chain reset under a running agent stops it with an ERROR line and a non-zero exit.

A real anvil of the test's own, on a free port: the contracts are deployed and a model
registered on it, and ``referee watch`` runs against it as its own process (as an operator runs
it). The anvil is then stopped and a fresh one started on the same port, as a restarted local
chain is. The agent used to go on with "alive: head 0"; now its next pass sees the head go
back (and the deployment's block gone) and it exits 1, saying so in its log (ERROR) and in one
``Error:`` line."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import ape

from flood import model  # noqa: F401 (fixture)
from referee.agents.client import ChainClient
from referee.agents.deployment import deploy
from referee.agents.localchain import LEAN_FLAGS
from referee.modelfile import save_model

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _anvil(port: int) -> subprocess.Popen:
    process = subprocess.Popen([shutil.which("anvil") or "anvil", "--port", str(port), "--silent", *LEAN_FLAGS],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    raise AssertionError("anvil did not start")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_operator_chain_reset_under_a_running_agent_stops_it_reverts(accounts, model, tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    chain, watch = _anvil(port), None
    try:
        with ape.networks.parse_network_choice(url):
            d = deploy(accounts[0], sink=str(accounts[9].address))
            ChainClient(d, accounts[0]).registry.register(*model.registration(), sender=accounts[0])
            for _ in range(3):  # a few blocks past the deployment, so a fresh chain's head is behind
                accounts[1].transfer(accounts[2], 1)
        d.save(tmp_path / "deployment.json")
        save_model(model, tmp_path / "model")
        log = tmp_path / "watch.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "offchain"), os.environ.get("PYTHONPATH", "")])}
        watch = subprocess.Popen([sys.executable, "-m", "referee.cli", "watch", "--network", url, "--account",
                                  "TEST::3", "--deployment", str(tmp_path / "deployment.json"), "--model",
                                  str(tmp_path / "model"), "--home", str(tmp_path / "home"), "--poll", "0.5",
                                  "--block-time", "12", "--log-file", str(log)], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        for _ in range(2400):  # until its first pass is done (a bound, not a timing assertion)
            if log.exists() and "alive: head" in log.read_text():
                break
            assert watch.poll() is None, watch.stdout.read()
            time.sleep(0.1)
        else:
            raise AssertionError(log.read_text() if log.exists() else "no log")
        _stop(chain)
        chain = _anvil(port)  # the same URL, an empty chain
        out, _ = watch.communicate(timeout=180)
    finally:
        _stop(chain)
        if watch is not None:
            _stop(watch)
    assert watch.returncode == 1, out
    errors = [line for line in out.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "the chain was reset under the agent: its head went back from block" in errors[0], out
    assert "deploy again" in errors[0] and "Traceback" not in out, out
    logged = [line for line in log.read_text().splitlines() if "the chain was reset" in line]
    assert logged and " ERROR challenger " in logged[0], logged
    assert "alive: head 0" not in log.read_text()

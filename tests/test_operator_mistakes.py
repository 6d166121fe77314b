"""What goes wrong around the agents is said plainly: a ``referee solve --stake`` above the
account's balance ends in one ``Error:`` line that names the fix (it printed a 56-line
traceback); a node outage names its real cause, turns to ERROR lines once it has lasted a
while, and counts every failed attempt in the RPC-error metric as it happens (it counted only
after two minutes); a waited send the node refuses leaves no stale ``sent`` row in the journal;
another ABI cached by Ape at the market's address does not break the client's log queries.
The command runs in-process through click's runner against the test chain; the outage is a real
proxy in front of it that drops every connection (tests/flaky_proxy.py)."""

import io

import ape
from click.testing import CliRunner

from flaky_proxy import FlakyProxy
from flood import deployment, model  # noqa: F401 (fixtures)
from referee.agents.challenger import Challenger
from referee.agents.client import ChainClient
from referee.agents.journal import Journal
from referee.agents.logs import agent_logger, line_logger, setup_logging
from referee.agents.metrics import AgentMetrics
from referee.trace import TraceStore
from referee.cli import main as referee
from referee.modelfile import save_model
from test_operator_errors import one_error_line


def test_operator_solve_stake_above_the_balance_one_line_reverts(chain, accounts, deployment, model, tmp_path):
    save_model(model, tmp_path / "model")
    deployment.save(tmp_path / "deployment.json")
    balance = int(accounts[2].balance)
    head = chain.blocks.height
    result = CliRunner().invoke(referee, ["solve", "--account", "TEST::2", "--stake", str(balance // 10**18 + 1),
                                          "--network", chain.provider.uri, "--deployment",
                                          str(tmp_path / "deployment.json"), "--model", str(tmp_path / "model"),
                                          "--home", str(tmp_path / "home"), "--once", "--log-level", "warning"])
    assert result.exit_code == 1, result.output
    line = one_error_line(result.output, f"{accounts[2].address} has")
    assert "--stake" in line and "fund the account or lower --stake" in line, line
    assert chain.blocks.height == head  # nothing sent


def test_operator_node_outage_named_escalated_and_counted_at_once_succeeds(chain, accounts, deployment, model,
                                                                            tmp_path):
    stream = io.StringIO()
    setup_logging("info", stream=stream)
    proxy = FlakyProxy(int(chain.provider.uri.rsplit(":", 1)[1]))
    try:
        with ape.networks.parse_network_choice(proxy.url):
            journal = Journal(tmp_path / "state.sqlite")
            log = line_logger(agent_logger("challenger"), prefix="challenger: ")
            client = ChainClient(deployment, accounts[3], journal, log=log, alarm_after=1.0)
            agent = Challenger(client, journal, [model], TraceStore(tmp_path / "traces"), device="cpu",
                               block_time=12, log=log)
            agent.metrics = AgentMetrics(agent.role, accounts[3].address)
            proxy.drop_for(4.0)
            assert client.head() > 0  # the read waits the outage out
            failed = agent.metrics.registry.get_sample_value(
                "referee_rpc_errors_total", {**agent.metrics.labels, "kind": "unreachable"})
    finally:
        proxy.close()
    lines = stream.getvalue().splitlines()
    outage = [line for line in lines if "unreachable" in line]
    first, escalated = outage[0], [line for line in outage if " ERROR " in line]
    assert " WARNING " in first and "node unreachable (" in first and "retrying for up to 120 s" in first, lines
    # the socket's own error, not the wrapper Ape raised around it
    assert any(name in first for name in ("ConnectionResetError", "RemoteDisconnected", "ConnectionRefusedError",
                                          "BrokenPipeError")), first
    assert escalated and "the node has been unreachable for" in escalated[0], lines
    sleeps = 1 + sum(1 for line in outage if "error: the node" in line)
    assert failed is not None and failed >= max(3, sleeps), (failed, lines)  # counted while it lasted


def test_refused_waited_send_leaves_no_stale_journal_row_succeeds(chain, accounts, deployment, tmp_path):
    """A waited send the node refuses (too little ETH) forgets its ``sent`` row: left behind, the
    next transaction taking its nonce made a restart read it as mined, and the deposit was never
    sent again once the account was funded."""
    journal = Journal(tmp_path / "state.sqlite")
    account = accounts[6]
    client = ChainClient(deployment, account, journal)
    key = "deposit:test"
    too_much = int(account.balance) - 10**12  # the estimate passes; the value and the gas do not fit
    try:
        client.send(key, client.market, "deposit", value=too_much)
    except Exception:
        pass
    else:
        raise AssertionError("the node took a deposit that leaves no gas")
    assert journal.tx(key) is None  # no stale 'sent' row
    account.transfer(accounts[7], 1)  # a later transaction takes the nonce the refused one had
    journal.close()
    journal = Journal(tmp_path / "state.sqlite")  # a restart
    client = ChainClient(deployment, account, journal)
    receipt = client.send(key, client.market, "deposit", value=10**17)
    assert receipt is not None and client.read(client.market.stake, account.address) == 10**17
    assert journal.tx(key).status == "mined"
    journal.close()


def test_client_reads_its_own_abi_whatever_ape_cached_at_the_address_succeeds(chain, accounts, deployment):
    """Another ABI cached at the market's address (a chain redeployed from changed sources at the
    same deterministic addresses, or another checkout's contracts): the client's market still has
    one ``JobPosted`` event and its logs can be read. Ape merged the two, and every log query
    failed (``ContractEventWrapper`` has no ``range``): ``ape run status`` crashed mid-recipe."""
    from ethpm_types.abi import EventABI, EventABIType

    market_type = ChainClient(deployment, accounts[0]).market.contract_type
    other = EventABI(name="JobPosted", inputs=[EventABIType(name="job_id", type="uint256", indexed=True)])
    changed = market_type.model_copy(update={"abi": [*market_type.abi, other]})
    ape.chain.contracts.instance_at(deployment.market, contract_type=changed, replace=True)  # what was cached
    client = ChainClient(deployment, accounts[0])
    assert client.logs(client.market, "JobPosted", deployment.block, client.head()) == []

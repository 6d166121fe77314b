"""Pipelined transactions (``ChainClient.prepare``/``submit``/``poll``) are sent once per key, on
the real chain: one the node refuses is forgotten and sent again later; one journaled but never
received is found missing by its hash after a restart and sent again; one mined is found by its
hash and never sent again. (A key left "sent" for a transaction the node never had would look
mined once a later transaction took its nonce, and its action would never be sent.)

Blocks are mined by the test (automine off): ``poll`` looks once and does not wait, and an
automining anvil may answer a send a moment before its receipt is stored, which a busy machine
makes likely (``[mined] = client.poll()`` then found nothing).
"""

import dataclasses

import pytest

from flood import deployment, model  # noqa: F401 (fixtures)
from referee.agents.client import ChainClient
from referee.agents.journal import Journal
from rpc import Node


def client_of(deployment, account, path):
    return ChainClient(deployment, account, Journal(path), patience=5)


@pytest.fixture
def node(chain):
    """The test chain with automine off; ``node.request("evm_mine", [])`` mines one block."""
    node = Node(chain.provider.uri)
    node.request("evm_setAutomine", [False])
    yield node
    node.request("evm_setAutomine", [True])
    node.request("evm_mine", [])


def test_refused_transaction_is_forgotten_and_sent_again(accounts, deployment, node, tmp_path):
    client = client_of(deployment, accounts[2], tmp_path / "a.sqlite")
    tx = client.prepare("deposit:1", client.market, "deposit", value=10**17)
    # between the estimate and the send the account's balance no longer covers it: refused
    with pytest.raises(Exception, match="(?i)insufficient funds"):
        client.submit(dataclasses.replace(tx, value=10**30))
    assert client.journal.tx("deposit:1") is None and not client.in_flight()
    again = client.prepare("deposit:1", client.market, "deposit", value=10**17)
    assert again is not None
    client.submit(again)
    node.request("evm_mine", [])
    [mined] = client.poll()
    assert mined.ok and mined.keys == ("deposit:1",) and client.journal.tx("deposit:1").status == "mined"
    assert client.read(client.market.stake, client.address) == 10**17


def test_restart_resolves_a_sent_key_by_its_hash(accounts, deployment, node, tmp_path):
    path = tmp_path / "b.sqlite"
    client = client_of(deployment, accounts[3], path)
    client.submit(client.prepare("deposit:mined", client.market, "deposit", value=10**17))
    node.request("evm_mine", [])
    nonce = client.txmgr.next_nonce
    # journaled, never handed to the node (the process died between the two)
    client.journal.tx_sent("deposit:lost", nonce, "0x" + "ab" * 32)
    client.journal.close()

    restarted = client_of(deployment, accounts[3], path)  # what it submitted: only the journal's
    assert restarted.prepare("deposit:mined", restarted.market, "deposit", value=10**17) is None
    [mined] = restarted.poll()  # re-adopted from the journal, its receipt found by its hash
    assert mined.keys == ("deposit:mined",) and restarted.journal.tx("deposit:mined").status == "mined"
    lost = restarted.prepare("deposit:lost", restarted.market, "deposit", value=10**17)
    assert lost is not None and restarted.journal.tx("deposit:lost") is None  # forgotten: send it
    restarted.submit(lost)
    node.request("evm_mine", [])
    assert [m.ok for m in restarted.poll()] == [True]
    assert restarted.read(restarted.market.stake, restarted.address) == 2 * 10**17


def test_multi_key_transaction_journals_every_key_with_one_nonce_and_hash(accounts, deployment, node, tmp_path):
    client = client_of(deployment, accounts[4], tmp_path / "c.sqlite")
    tx = client.prepare(("deposit:a", "deposit:b"), client.market, "deposit", value=10**17)
    assert tx.keys == ("deposit:a", "deposit:b") and tx.key == "deposit:a"
    submitted = client.submit(tx)
    rows = [client.journal.tx(k) for k in tx.keys]
    assert {(r.nonce, r.tx_hash, r.status) for r in rows} == {(submitted.nonce, submitted.tx_hash, "sent")}
    assert client.prepare("deposit:b", client.market, "deposit", value=1) is None  # in flight
    node.request("evm_mine", [])
    [mined] = client.poll()
    assert mined.keys == tx.keys and [client.journal.tx(k).status for k in tx.keys] == ["mined", "mined"]
    client.journal.forget_tx("deposit:b")  # one sub-call failed: that key alone is decided again
    assert client.journal.tx("deposit:a").status == "mined" and client.journal.tx("deposit:b") is None
    assert client.prepare("deposit:b", client.market, "deposit", value=1) is not None

"""Pipelined transactions (``ChainClient.prepare``/``submit``/``poll``) are sent once per key, on
the real chain: one the node refuses is forgotten and sent again later; one journaled but never
received is found missing by its hash after a restart and sent again; one mined is found by its
hash and never sent again. (A key left "sent" for a transaction the node never had would look
mined once a later transaction took its nonce, and its action would never be sent.)
"""

import dataclasses

import pytest

from flood import deployment, model  # noqa: F401 (fixtures)
from referee.agents.client import ChainClient
from referee.agents.journal import Journal


def client_of(deployment, account, path):
    return ChainClient(deployment, account, Journal(path), patience=5)


def test_refused_transaction_is_forgotten_and_sent_again(accounts, deployment, tmp_path):
    client = client_of(deployment, accounts[2], tmp_path / "a.sqlite")
    tx = client.prepare("deposit:1", client.market, "deposit", value=10**17)
    # between the estimate and the send the account's balance no longer covers it: refused
    with pytest.raises(Exception, match="(?i)insufficient funds"):
        client.submit(dataclasses.replace(tx, value=10**30))
    assert client.journal.tx("deposit:1") is None and not client.in_flight()
    again = client.prepare("deposit:1", client.market, "deposit", value=10**17)
    assert again is not None
    client.submit(again)
    [mined] = client.poll()
    assert mined.ok and client.journal.tx("deposit:1").status == "mined"
    assert client.read(client.market.stake, client.address) == 10**17


def test_restart_resolves_a_sent_key_by_its_hash(accounts, deployment, tmp_path):
    path = tmp_path / "b.sqlite"
    client = client_of(deployment, accounts[3], path)
    client.submit(client.prepare("deposit:mined", client.market, "deposit", value=10**17))
    nonce = client._next_nonce
    # journaled, never handed to the node (the process died between the two)
    client.journal.tx_sent("deposit:lost", nonce, "0x" + "ab" * 32)
    client.journal.close()

    restarted = client_of(deployment, accounts[3], path)  # no memory of what it submitted
    assert restarted.prepare("deposit:mined", restarted.market, "deposit", value=10**17) is None
    assert restarted.journal.tx("deposit:mined").status == "mined"  # found by its hash
    lost = restarted.prepare("deposit:lost", restarted.market, "deposit", value=10**17)
    assert lost is not None and restarted.journal.tx("deposit:lost") is None  # forgotten: send it
    restarted.submit(lost)
    assert [m.ok for m in restarted.poll()] == [True]
    assert restarted.read(restarted.market.stake, restarted.address) == 2 * 10**17

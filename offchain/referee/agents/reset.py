"""Noticing a chain reset under a running agent: an anvil restarted on the same URL.

A restarted local chain starts empty at block 0, on the same URL and chain id, so nothing in
the connection says it changed. Its head goes back, and the block the market was deployed in
is gone or, once the new chain is long enough, has another hash. ``ResetWatch.check`` (once per
tick: a head read and one block's hash) raises ``ChainReset`` then: the agent logs it as an
ERROR and stops, rather than going on with "alive: head 0" while every job and game its journal
follows is gone.
"""

from ..errors import RefereeError


class ChainReset(RefereeError):
    """The chain under the agent is no longer the one its market was deployed on."""


class ResetWatch:
    """The highest head seen and the deployment block's hash, checked against the chain."""

    def __init__(self, client, deployed_in: str):
        self.client, self.deployed_in = client, deployed_in
        self.last_head = 0

    def check(self) -> None:
        client, deployed = self.client, self.client.deployment.block
        head, reason = client.head(), None
        if head < self.last_head:
            reason = f"its head went back from block {self.last_head:,} to {head:,}"
        elif head < deployed:
            reason = f"it has {head + 1:,} blocks, and the market was deployed in block {deployed:,}"
        elif client.block_hash(deployed) != self.deployed_in:
            reason = f"block {deployed:,}, where the market was deployed, has another hash"
        if reason is not None:
            raise ChainReset(f"the chain was reset under the agent: {reason}; the market {client.deployment.market} "
                             "and every job and game in this journal are gone (a restarted anvil starts empty): "
                             "deploy again (ape run deploy --force) and start the agent with a fresh --home or --state")
        self.last_head = head

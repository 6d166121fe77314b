"""A copycat with no model, playing off an honest challenger's pending transactions.

It watches the node's pool (``txpool_content``). When the honest challenger's ``challenge``
of the job is pending, it sends its own with the same tip, so both games open in the same
block, its own just after. A lying solver plays every game of the job from one trace, so the
two games pass through the same positions; each honest challenger move (``choose``, ``pick``,
``step``) seen pending is copied into its own game, only the game id changed, with a higher tip
so it is mined first in the same block. Its ``step`` so lands before the honest one, and it
settles its win the moment it has it, again with the higher tip: the settle order in which the
first game settled used to take the reward.
"""

from eth_account import Account
from eth_utils import keccak

from rpc import Node

GWEI = 10**9
COPIED = ("choose", "pick", "step")


def _selectors(contract, names) -> dict[bytes, str]:
    return {keccak(text=abi.selector)[:4]: abi.name for abi in contract.contract_type.mutable_methods
            if abi.name in names}


class Copycat:
    def __init__(self, uri: str, account, market, game, honest: str, job_id: int):
        self.node, self.key = Node(uri), account.private_key
        self.address, self.market, self.game, self.job_id = str(account.address), market, game, job_id
        self.honest = honest.lower()
        self.game_moves = _selectors(game, COPIED)
        self.challenge_selector = next(iter(_selectors(market, ("challenge",))))
        self.copied: set[str] = set()  # honest transaction hashes already copied
        self.own_game = self.honest_game = None
        self.settled = False
        self.chain_id = int(self.node.request("eth_chainId", []), 16)

    def _send(self, to: str, data: bytes, tip: int, value: int = 0) -> None:
        nonce = int(self.node.request("eth_getTransactionCount", [self.address, "pending"]), 16)
        base = int(self.node.request("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
        tx = {"to": to, "data": data, "value": value, "gas": 2_000_000, "nonce": nonce, "chainId": self.chain_id,
              "maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base + tip, "type": 2}
        signed = Account.sign_transaction(tx, self.key)
        self.node.request("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])

    def _games(self) -> None:
        for log in self.market.JobChallenged.range(0, self.node_height() + 1, search_topics={"job_id": self.job_id}):
            if str(log.challenger).lower() == self.honest:
                self.honest_game = log.game_id
            elif str(log.challenger).lower() == self.address.lower():
                self.own_game = log.game_id

    def node_height(self) -> int:
        return int(self.node.request("eth_blockNumber", []), 16)

    def tick(self) -> int:
        sent = 0
        self._games()
        pending = self.node.request("txpool_content", [])["pending"]
        honest_txs = next((txs for sender, txs in pending.items() if sender.lower() == self.honest), {})
        for tx in sorted(honest_txs.values(), key=lambda t: int(t["nonce"], 16)):
            if tx["hash"] in self.copied:
                continue
            data = bytes.fromhex(tx["input"][2:])
            tip = int(tx.get("maxPriorityFeePerGas") or "0x0", 16)
            to = tx["to"].lower()
            if to == str(self.market.address).lower() and data[:4] == self.challenge_selector and self.own_game is None:
                self._send(str(self.market.address), data, tip, value=int(tx["value"], 16))  # same tip: just after
            elif to == str(self.game.address).lower() and data[:4] in self.game_moves and self.own_game is not None:
                if int.from_bytes(data[4:36], "big") != self.honest_game:
                    continue
                if self.game.games(self.own_game).phase != self.game.games(self.honest_game).phase:
                    continue  # not at the same position (yet)
                self._send(str(self.game.address), data[:4] + self.own_game.to_bytes(32, "big") + data[36:],
                           tip + GWEI)
            else:
                continue
            self.copied.add(tx["hash"])
            sent += 1
        if self.own_game is not None and not self.settled and self.game.result(self.own_game) == 2:
            self._send(str(self.market.address), bytes(self.market.settle.encode_input(self.own_game)), 10 * GWEI)
            self.settled, sent = True, sent + 1
        return sent

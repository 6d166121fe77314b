#pragma version ~=0.4.3
"""
@title Payout
@custom:contract-name payout
@license MIT
@notice Sends ETH out of the market: the one way a wei leaves it.
@dev Stateless: imported by `JobMarket.vy` and `stakes.vy`. Callers send
     only from `@nonreentrant` functions, after every state update (pull
     payments, protocol.md 10.2).
"""


@internal
def send(to: address, amount: uint256):
    """
    @dev Sends ETH with all remaining gas, so contract wallets can
         receive; reverts if the receiver does.
    @param to The receiver.
    @param amount The wei sent.
    """
    raw_call(to, b"", value=amount, gas=msg.gas, revert_on_failure=True)

#pragma version ~=0.4.3
"""
@title Escrow module harness
@custom:contract-name escrow_mock
@notice Exposes `contracts/modules/escrow.vy` for its own tests: its
        externals as the market exports them, and ways to put ETH into
        a credit or the sink's share, as settlements do in the market.
"""


from ..modules import stakes
from ..modules import escrow

initializes: stakes
initializes: escrow[stakes := stakes]

exports: (
    escrow.withdraw, escrow.release_to_sink, escrow.credit, escrow.obligations, escrow.SINK,
    escrow.total_escrow, escrow.total_bonds, escrow.total_credit, escrow.sink_pending,
    stakes.deposit, stakes.total_stake,
)


@deploy
def __init__(sink: address):
    """
    @param sink The sink.
    """
    escrow.__init__(sink)


@payable
@external
def fund_credit(account: address):
    """
    @notice Credits `msg.value` to `account` (`escrow._add_credit`).
    @param account The account credited.
    """
    escrow._add_credit(account, msg.value)


@payable
@external
def fund_sink():
    """
    @notice Adds `msg.value` to the sink's share.
    """
    escrow.sink_pending += msg.value

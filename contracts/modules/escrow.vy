#pragma version ~=0.4.3
"""
@title Escrow
@custom:contract-name escrow
@license MIT
@notice The market's money other than stakes (protocol.md 10.2): escrowed
        fees and held slashed bonds, open challenger bonds, credits and
        the sink's share, and the two pull payments that send them out,
        `withdraw` and `release_to_sink`.
@dev Stateful: `JobMarket.vy` initializes it (with `stakes`, whose total
     the obligations include) and exports its externals. The market
     moves wei between these totals as jobs and games settle; every wei
     it holds is in exactly one of them or in `stakes.total_stake`, so
     `balance == obligations()` always (ETH forced in without a call
     aside, which `release_to_sink` sweeps).
"""


# ---------------------------------------------------------------------------
# INTERFACES
# ---------------------------------------------------------------------------


# @dev The market's events.
from ..interfaces import IJobMarket


# ---------------------------------------------------------------------------
# MODULES
# ---------------------------------------------------------------------------


# @dev Stateless: sends ETH.
from . import payout


# @dev Stateful, read only: the stakes total is part of the obligations.
from . import stakes
uses: stakes


# ---------------------------------------------------------------------------
# STORAGE
# ---------------------------------------------------------------------------


# @dev Receives the rest of a slashed solver bond (burn by default).
SINK: public(immutable(address))


# @dev Account -> ETH credited and not yet withdrawn.
_credit: HashMap[address, uint256]


# @dev The sum of the fees of OPEN, CLAIMED and COMMITTED jobs, and of the
# slashed bonds REJECTED jobs hold until their last game closes.
total_escrow: public(uint256)


# @dev The sum of the bonds of open challenges.
total_bonds: public(uint256)


# @dev The sum of all credits.
total_credit: public(uint256)


# @dev Slashed solver bond owed to `SINK`.
sink_pending: public(uint256)


# ---------------------------------------------------------------------------
# CONSTRUCTOR
# ---------------------------------------------------------------------------


@deploy
def __init__(sink: address):
    """
    @dev Fixes the sink.
    @param sink The receiver of the rest of a slashed bond; nonzero (a
           burn address such as 0x...dEaD, never the zero address, which
           a payment to would only look like a burn).
    """
    # INVARIANT: a slashed bond always has somewhere to go.
    assert sink != empty(address), "market: zero sink"
    SINK = sink


# ---------------------------------------------------------------------------
# EXTERNAL FUNCTIONS
# ---------------------------------------------------------------------------


@external
@nonreentrant
def withdraw():
    """
    @notice Sends the caller its whole credit.
    """
    amount: uint256 = self._credit[msg.sender]
    # INVARIANT: a withdrawal moves ETH.
    assert amount > 0, "market: nothing to withdraw"

    self._credit[msg.sender] = 0
    self.total_credit -= amount
    log IJobMarket.CreditWithdrawn(account=msg.sender, amount=amount)
    payout.send(msg.sender, amount)


@external
@nonreentrant
def release_to_sink():
    """
    @notice Sends the accrued slashed-bond remainder to `SINK`, with any
            surplus: ETH that reached the market without a call
            (SELFDESTRUCT, a block reward) and that no one is owed.
    @dev Anyone may call it; the sink is fixed at deployment. Without
         the sweep such ETH would be stuck for good: every other path
         pays out recorded obligations only.
    """
    # INVARIANT: the balance never falls below the obligations, so this
    # cannot underflow; it is zero unless ETH was forced in.
    surplus: uint256 = self.balance - self._obligations()
    amount: uint256 = self.sink_pending + surplus
    # INVARIANT: a release moves ETH.
    assert amount > 0, "market: nothing to release"

    self.sink_pending = 0
    log IJobMarket.SinkReleased(sink=SINK, amount=amount)
    payout.send(SINK, amount)


@view
@external
def credit(account: address) -> uint256:
    """
    @notice ETH credited to an account and not yet withdrawn.
    @param account The account.
    @return uint256 The credit in wei.
    """
    return self._credit[account]


@view
@external
def obligations() -> uint256:
    """
    @notice Everything the market owes: stakes, escrowed fees, open
            challenger bonds, credits and the sink's share. Equal to the
            market's balance, unless ETH was forced in without a call
            (`release_to_sink` sweeps that surplus).
    @return uint256 The sum of the five totals, in wei.
    """
    return self._obligations()


# ---------------------------------------------------------------------------
# INTERNAL FUNCTIONS
# ---------------------------------------------------------------------------


@view
@internal
def _obligations() -> uint256:
    """
    @dev The five totals: what the market owes, in wei.
    """
    return stakes.total_stake + self.total_escrow + self.total_bonds + self.total_credit + self.sink_pending


@internal
def _add_credit(account: address, amount: uint256):
    """
    @dev Credits `amount` to `account`; the ETH is already held (moved
         from escrow, stake or bonds by the caller).
    @param account The account credited.
    @param amount The wei credited.
    """
    self._credit[account] += amount
    self.total_credit += amount

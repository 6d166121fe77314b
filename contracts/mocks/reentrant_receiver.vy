#pragma version ~=0.4.3
"""
@title Reentrant Receiver
@custom:contract-name reentrant_receiver
@notice Test harness: an account contract that acts on the job market
        (deposit, post, cancel, withdraw ...) through `execute`, and
        that, when it receives ETH, calls back into the market with
        calldata armed beforehand (e.g. `withdraw()` again). It records
        whether that reentrant call succeeded, so a test can show the
        market's lock refuses it while the outer payment goes through
        once.
@dev Not for deployment outside tests. With `reject` set it reverts on
     receipt instead, to show a failed payment reverts the whole
     withdrawal and leaves the credit in place.
"""


# ---------------------------------------------------------------------------
# EVENTS
# ---------------------------------------------------------------------------


# @dev One reentrant attempt and whether the market accepted it.
event Reentered:
    success: bool


# ---------------------------------------------------------------------------
# CONSTANTS
# ---------------------------------------------------------------------------


# @dev The longest calldata `execute` forwards (a market call with a
# small input tensor) and the longest armed reentrant call.
MAX_CALLDATA: constant(uint256) = 2048


# ---------------------------------------------------------------------------
# STORAGE
# ---------------------------------------------------------------------------


# @dev The contract the reentrant call goes to.
target: public(address)


# @dev The calldata of the reentrant call; empty means "do not reenter".
reentry: public(Bytes[MAX_CALLDATA])


# @dev Reentrant calls attempted and those that succeeded.
attempts: public(uint256)
successes: public(uint256)


# @dev Total wei received.
received: public(uint256)


# @dev Revert on every receipt.
reject: public(bool)


# ---------------------------------------------------------------------------
# CONSTRUCTOR
# ---------------------------------------------------------------------------


@deploy
def __init__():
    """
    @dev Starts disarmed and accepting ETH.
    """
    pass


# ---------------------------------------------------------------------------
# EXTERNAL FUNCTIONS
# ---------------------------------------------------------------------------


@external
def arm(target: address, data: Bytes[MAX_CALLDATA]):
    """
    @notice Sets the call made back into `target` on the next receipt.
    @param target The contract called back.
    @param data The calldata of the reentrant call (empty: none).
    """
    self.target = target
    self.reentry = data


@external
def set_reject(reject: bool):
    """
    @notice Makes every receipt revert (or accept again).
    @param reject True to revert on receipt.
    """
    self.reject = reject


@payable
@external
def execute(target: address, data: Bytes[MAX_CALLDATA]):
    """
    @notice Calls `target` with `data` and `msg.value`, as this account;
            bubbles up a revert.
    @param target The contract called.
    @param data The calldata.
    """
    raw_call(target, data, value=msg.value)


@payable
@external
def __default__():
    """
    @notice Receives ETH; if armed, makes the reentrant call once (the
            calldata is cleared first) and records its outcome without
            reverting.
    """
    # INVARIANT: a rejecting receiver makes the sender's call revert.
    assert not self.reject, "reentrant_receiver: rejected"
    self.received += msg.value
    if len(self.reentry) == 0:
        return
    data: Bytes[MAX_CALLDATA] = self.reentry
    self.reentry = b""
    self.attempts += 1
    success: bool = raw_call(self.target, data, max_outsize=0, revert_on_failure=False)
    if success:
        self.successes += 1
    log Reentered(success=success)

#pragma version ~=0.4.3
"""
@title Gas Meter
@custom:contract-name gas_meter
@license MIT
@notice The price and the allowances of the gas refunds a winning
        challenger is paid out of the slashed solver bond (protocol.md
        section 10.2, "Who gets a slashed solver bond").
@dev Stateless: imported by `DisputeGame.vy` (the challenger's moves)
     and `JobMarket.vy` (its `challenge`, `settle` and `reclaim`). A
     metered call reads `msg.gas` on entry and, on exit, prices
     `start - msg.gas` plus an allowance for what the call paid outside
     its body: the transaction's intrinsic gas, its calldata, and the
     storage writes after the last `msg.gas` read.

     The price is `min(tx.gasprice, block.basefee + REFUND_TIP_CAP)`.
     The base fee is burned, so refunding it returns nothing to anyone;
     only the tip reaches the block's builder, and a builder who is the
     liar can recover at most `REFUND_TIP_CAP` per refunded gas unit,
     never mint a refund by naming a large gas price.
"""


# @dev The most tip per gas unit a refund repays, in wei (2 gwei: above
# what an honest transaction needs on L1 outside congestion, far above
# an L2's tips).
REFUND_TIP_CAP: constant(uint256) = 2 * 10**9


# @dev The intrinsic gas of a transaction (EIP-2028).
TX_GAS: constant(uint256) = 21000


# @dev Gas per calldata byte when nonzero (EIP-2028); zero bytes cost 4,
# so counting every byte at 16 over-refunds a zero byte by 12 gas.
CALLDATA_BYTE_GAS: constant(uint256) = 16


@view
@internal
def price() -> uint256:
    """
    @dev The wei one refunded gas unit of this transaction is worth.
    @return uint256 `min(tx.gasprice, block.basefee + REFUND_TIP_CAP)`.
    """
    return min(tx.gasprice, block.basefee + REFUND_TIP_CAP)


@view
@internal
def calldata_gas(canonical: uint256) -> uint256:
    """
    @dev The calldata allowance of the current call: 16 gas per byte of
         `msg.data`, counted up to `canonical` bytes (the call's ABI
         encoding), so bytes padded past the encoding earn nothing.
    @param canonical The length of the call's canonical ABI encoding,
           selector included.
    @return uint256 The allowance in gas.
    """
    return CALLDATA_BYTE_GAS * min(len(msg.data), canonical)


@pure
@internal
def words(n: uint256) -> uint256:
    """
    @dev The bytes an ABI-encoded dynamic array of `n` words takes after
         its head: the length word and the items.
    @param n The item count.
    @return uint256 `32 * (n + 1)`.
    """
    return 32 * (n + 1)


@pure
@internal
def bytes_tail(n: uint256) -> uint256:
    """
    @dev The bytes an ABI-encoded `Bytes` of length `n` takes after its
         head: the length word and the data padded to whole words.
    @param n The byte length.
    @return uint256 `32 + 32 * ceil(n / 32)`.
    """
    return 32 + 32 * ((n + 31) // 32)

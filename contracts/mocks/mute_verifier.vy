#pragma version ~=0.4.3
"""
@title Mute Verifier
@custom:contract-name mute_verifier
@notice Test harness: a verifier whose `step` returns nothing (no
        revert, no word), and whose `output_header` is a real
        verifier's, so that a game reaches the step. The game must not
        read the missing word as an element (it reverts the move).
@dev Not for deployment outside tests. `step` has IVerifier's selector
     and arguments but no return value.
"""

from ..interfaces import IVerifier

REAL: immutable(address)


@deploy
def __init__(real: address):
    REAL = real


@external
@view
def output_header(desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2],
                  params: Bytes[512]) -> (uint256, uint256, uint256):
    return staticcall IVerifier(REAL).output_header(desc, inputs, params)


@external
@view
def step(game_id: uint256, column: uint256, row_word: bytes32, row_word_proof: DynArray[bytes32, 16],
         desc: IVerifier.OpDescriptor, inputs: DynArray[IVerifier.SlotHeader, 2], row: uint256,
         witness: Bytes[81920]):
    pass

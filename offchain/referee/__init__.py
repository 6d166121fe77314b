"""Referee off-chain core: exact integer inference and its keccak commitments.

The numerics and every hash follow ``docs/protocol.md``; the golden vectors in
``tests/vectors/`` are the proof that this package, the contracts and the independent
reference (``tests/reference.py``) agree.
"""

__version__ = "0.1.0"

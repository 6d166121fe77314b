"""What the transaction manager knows of one transaction it follows, and its settings.

``Tracked`` is one transaction from its submission to its receipt; the journal keeps it as
``to_fields`` writes it (``inflight``), so a restarted agent follows it on (``txmgr.adopt``).
``Knobs`` are the manager's settings, after Optimism's ``op-service/txmgr``.
"""

from dataclasses import asdict, dataclass, field

GWEI = 10**9
FILL_GAS = 21_000  # a plain transfer


@dataclass(frozen=True)
class Knobs:
    """The manager's settings (Optimism's names in brackets)."""

    bump_after_blocks: int = 3      # blocks pending before a bump [ResubmissionTimeout]
    hurry_blocks: int = 10          # within this many blocks of the deadline: a bump every block
    bump_per_mille: int = 1125      # each bump multiplies both fees by this / 1000 [priceBump]
    not_in_pool_blocks: int = 2     # blocks unmined and unknown to the node before "dropped" (0 near
    #                                 the deadline) [TxNotInMempoolTimeout]
    nonce_too_low_retries: int = 3  # fresh nonces tried when the node says "nonce too low" [SafeAbortNonceTooLowCount]
    stake_share_bps: int = 1000     # the fee cap: this share of the stake, per unit of gas limit [FeeLimitMultiplier]
    lagging_blocks: int = 10        # "N transactions in flight for more than K blocks"

    def __post_init__(self):
        # INVARIANT: a bump must meet geth's replacement rule (both fees at least 10% higher)
        if self.bump_per_mille < 1100:
            raise ValueError(f"bump_per_mille {self.bump_per_mille} is under geth's 10% replacement rule (1100)")
        if min(self.bump_after_blocks, self.lagging_blocks) < 1 or self.not_in_pool_blocks < 0:
            raise ValueError("bump_after_blocks and lagging_blocks must be at least 1, not_in_pool_blocks at least 0")


@dataclass
class Tracked:
    """One transaction followed from its submission to its receipt."""

    keys: tuple[str, ...]
    method: str
    to: str
    data: bytes
    value: int
    gas_limit: int
    stake: int
    deadline: int | None
    nonce: int
    max_fee: int
    tip: int
    first_tip: int  # the tip it was first signed with: the fee cap's floor keeps it
    sent_block: int  # the head when it was first submitted
    hashes: list[str] = field(default_factory=list)  # oldest first; any may be mined
    priced_block: int = 0  # the head when it was last signed
    missing_since: int | None = None  # the head when the node was first seen without it
    capped: bool = False  # the fee cap was logged
    passed_at: int | None = None  # the poll that first saw the chain's nonce past it with no receipt of ours


def to_fields(t: Tracked) -> dict:
    """``t`` as the journal keeps it (JSON: calldata in hex; where it was seen missing or passed is not kept)."""
    fields = asdict(t)
    fields.update(keys=list(t.keys), data=t.data.hex())
    del fields["missing_since"], fields["passed_at"]
    return fields


def from_fields(fields: dict) -> Tracked:
    return Tracked(**{**fields, "keys": tuple(fields["keys"]), "data": bytes.fromhex(fields["data"])})


def bumped(fee: int, per_mille: int) -> int:
    return -(-fee * per_mille // 1000)


def gwei(wei: int) -> str:
    return f"{wei / GWEI:.4g} gwei"


def is_fill(t: Tracked) -> bool:
    return t.method == "fill"


def what(t: Tracked) -> str:
    return t.keys[0] if len(t.keys) == 1 else f"{t.keys[0]} and {len(t.keys) - 1} more"

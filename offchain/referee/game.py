"""Dispute-game arithmetic shared by the solver and challenger (protocol section 7)."""


def bisection_points(lo: int, hi: int, arity: int) -> list[int]:
    """q_0..q_p for the interval (lo, hi): p = min(arity, hi - lo), q_i = lo + floor(i * L / p).

    The solver posts the states at q_1..q_{p-1}; the challenger picks sub-interval (q_i, q_{i+1}).
    """
    if arity < 2 or arity & (arity - 1):
        raise ValueError(f"arity must be a power of two >= 2, got {arity}")
    length = hi - lo
    if lo < 0 or length < 2:
        raise ValueError(f"interval ({lo}, {hi}) has nothing to bisect")
    parts = min(arity, length)
    return [lo + i * length // parts for i in range(parts + 1)]

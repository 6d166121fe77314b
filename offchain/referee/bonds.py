"""Bond sizing: the smallest bonds that keep an honest party whole at a given gas price.

Playing a dispute game costs gas, and the protocol repays it only out of bonds (protocol
section 10.2):

- an honest solver challenged by a liar spends ``G_defend`` gas to win, and is paid the
  challenger's bond, so ``challenger_bond >= G_defend * gas_price``;
- an honest challenger who proves a solver wrong spends ``G_challenge`` gas (its own bond
  comes back), which is refunded, metered, out of the slashed solver bond ahead of the bonus
  pool of ``solver_bond * reward_share_bps / 10000``; the bond must hold that refund beside the
  pool, so ``min_solver_bond >= G_challenge * gas_price * 10000 / (10000 - reward_share_bps)``.

Both gas figures get ``HEADROOM_PCT`` (25%) added before they are priced.

``G_defend`` and ``G_challenge`` are measured, per deployment (arity, largest model), from full
games: tests/test_griefing.py measures them on its model and replays the game at the gas price
the bonds were sized for; benchmarks/gas_report.py measures the digits MLP and an LLM-sized
layer. docs/security.md gives the formula with those numbers.
"""

from dataclasses import dataclass

BPS = 10_000
MAX_REWARD_SHARE_BPS = 1000  # JobMarket.MAX_REWARD_SHARE_BPS
HEADROOM_PCT = 25


@dataclass(frozen=True)
class Bonds:
    challenger_bond: int  # wei
    min_solver_bond: int  # wei


def minimum_bonds(defend_gas: int, challenge_gas: int, gas_price: int, reward_share_bps: int,
                  headroom_pct: int = HEADROOM_PCT) -> Bonds:
    """The smallest challenger bond and minimum solver bond that repay an honest solver's
    ``defend_gas`` and an honest challenger's ``challenge_gas`` at ``gas_price`` wei per gas,
    with ``headroom_pct`` percent added to the gas (a game's gas varies by a few thousand with
    its timing and path; see docs/benchmarks.md)."""
    if not 0 <= reward_share_bps <= MAX_REWARD_SHARE_BPS:
        raise ValueError(f"reward share must be in [0, {MAX_REWARD_SHARE_BPS}] basis points, got {reward_share_bps}")
    if min(defend_gas, challenge_gas, gas_price) < 0:
        raise ValueError("gas and gas price must not be negative")
    defend = -(-defend_gas * (100 + headroom_pct) // 100)
    challenge = -(-challenge_gas * (100 + headroom_pct) // 100)
    # ceil: the refund and the pool must both fit in the bond
    min_solver_bond = -(-challenge * gas_price * BPS // (BPS - reward_share_bps))
    return Bonds(challenger_bond=defend * gas_price, min_solver_bond=min_solver_bond)


def bonus(solver_bond: int, reward_share_bps: int, dilution_fee_bps: int, winners: int) -> int:
    """Each winning game's bonus when ``winners`` games won against a slashed ``solver_bond``, as
    ``JobMarket._release`` pays it (refunds leaving the pool whole): the pool's equal share less
    the dilution fee, never below zero (protocol section 10.2)."""
    if winners < 1:
        raise ValueError(f"a rejected job has at least one winning game, got {winners}")
    share = solver_bond * reward_share_bps // BPS // winners
    fee = solver_bond * dilution_fee_bps // BPS
    return share - fee if share > fee else 0

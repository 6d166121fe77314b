"""Job terms an agent refuses before it puts a bond at risk, each with the reason it logs.

The market refuses terms no one could honour (an output larger than ``commit`` takes, windows
outside the deployment's limits), but a deployment's limits are wide and older deployments
had none, so each agent checks every job itself, against its own limits:

- a solver claims only a job whose output fits ``commit``, whose bond is within ``max_bond``,
  whose fee pays at least ``min_fee`` (by default the gas of serving it at the current gas
  price), whose commit window lasts ``MIN_WINDOW_BLOCKS`` blocks and whose commit and
  challenge windows together lock its bond for at most ``max_window`` seconds, and only while
  its games in play are below its capacity (``capacity.py``);
- a challenger challenges only within ``max_bond`` and its capacity;
- both take a bond only where buying the block space of the window its transactions must
  land in costs more than the bond (``stuffing_cost``): the commit window for a solver's bond,
  a game's clock for either side's. Filling ``w`` blocks of gas limit ``G`` ahead of our
  transactions costs at least ``w * G * (base_fee + tip)`` (the base fee read from the latest
  block; full blocks raise it 12.5% each, so the true cost is higher); a requester who could
  stuff a 5-block commit window for less than the solver's bond would buy the blocks and take
  the bond (issue 16: 0.45-0.5 ETH of stuffing took a 1 ETH bond). docs/security.md, "Block
  stuffing".
"""

from dataclasses import dataclass

ETHER = 10**18
MAX_TENSOR_BYTES = 65536   # JobMarket: the largest output `commit` takes (protocol 10.0)
MIN_WINDOW_BLOCKS = 5      # a window shorter than this many blocks may close before a tx lands
DEFAULT_MAX_BOND = ETHER   # the most an agent puts at risk on one job or game unless told
DEFAULT_MAX_WINDOW = 7 * 86400  # the longest a solver lets one job lock its bond
# claim, commit, finalize and withdraw of a small job, measured (docs/benchmarks.md, demo)
SERVE_GAS = 600_000
SERVE_GAS_PER_OUTPUT_BYTE = 16  # the output is committed in calldata and hashed


def ether(wei: int) -> str:
    return f"{wei / ETHER:.4g} ETH"


@dataclass(frozen=True)
class Limits:
    """An agent's own limits on the jobs and games it takes on."""

    max_bond: int = DEFAULT_MAX_BOND
    min_fee: int | None = None          # None: the gas of serving the job at the current price
    max_window: int = DEFAULT_MAX_WINDOW


@dataclass(frozen=True)
class BlockSpace:
    """What block space costs now: the block gas limit, the latest base fee and the tip we pay."""

    block_gas: int
    base_fee: int
    tip: int


def stuffing_cost(window: int, block_time: float, space: BlockSpace) -> int:
    """Wei to fill every block of a ``window``-second window ahead of our transactions: its
    blocks times a block's gas at the base fee plus a tip above ours."""
    return blocks_in(window, block_time) * space.block_gas * (space.base_fee + space.tip)


def blocks_in(window: int, block_time: float) -> int:
    return int(window // max(block_time, 1))


def _stuffable(what: str, window: int, block_time: float, space: BlockSpace | None, bond: int) -> str | None:
    """The reason a bond is refused when stuffing ``window`` costs no more than it, else None."""
    if space is None:
        return None
    cost = stuffing_cost(window, block_time, space)
    if cost > bond:
        return None
    return (f"stuffing {what} ({blocks_in(window, block_time)} blocks of {space.block_gas:,} gas at base fee "
            f"{space.base_fee / 10**9:.3g} gwei + tip {space.tip / 10**9:.3g} gwei) costs {ether(cost)}, no more than "
            f"the bond {ether(bond)}: block space is too cheap to guard it")


def serve_cost(output_bytes: int, gas_price: int) -> int:
    """Wei of gas a solver spends to claim, commit, finalize and withdraw one job."""
    return (SERVE_GAS + SERVE_GAS_PER_OUTPUT_BYTE * output_bytes) * gas_price


def solver_refusal(job, output_cols: int, limits: Limits, gas_price: int, block_time: float,
                   games_in_play: int, capacity: int, space: BlockSpace | None = None, clock: int = 0) -> str | None:
    """Why a solver does not claim ``job`` (a ``JobMarket.job`` record), or None to claim it.
    With ``space`` (what block space costs now) and the game ``clock``: also when stuffing the
    commit window, or a game's clock, costs no more than the bond."""
    output_bytes = job.rows * output_cols
    if output_bytes > MAX_TENSOR_BYTES:
        return f"its output ({output_bytes:,} bytes) is larger than commit takes ({MAX_TENSOR_BYTES:,})"
    if job.solver_bond > limits.max_bond:
        return f"bond {ether(job.solver_bond)} is above --max-bond {ether(limits.max_bond)}"
    min_fee = limits.min_fee if limits.min_fee is not None else serve_cost(output_bytes, gas_price)
    if job.fee < min_fee:
        source = "--min-fee" if limits.min_fee is not None else "the gas of serving it at the current price"
        return f"fee {ether(job.fee)} is below {source} ({ether(min_fee)})"
    if job.commit_window < MIN_WINDOW_BLOCKS * block_time:
        return (f"commit window {job.commit_window} s is under {MIN_WINDOW_BLOCKS} blocks of {block_time:g} s: "
                "a commit might not land in time")
    locked = job.commit_window + job.challenge_window
    if locked > limits.max_window:
        return f"it would lock the bond for {locked:,} s, above --max-window {limits.max_window:,} s"
    stuffed = (_stuffable(f"its {job.commit_window} s commit window", job.commit_window, block_time, space,
                          job.solver_bond)
               or clock and _stuffable(f"a game's {clock} s clock", clock, block_time, space, job.solver_bond))
    if stuffed:
        return stuffed
    if games_in_play >= capacity:
        return f"{games_in_play} games in play already, at capacity {capacity:,}"
    return None


def challenger_refusal(bond: int, limits: Limits, games_in_play: int, capacity: int,
                       space: BlockSpace | None = None, clock: int = 0, block_time: float = 12) -> str | None:
    """Why a challenger does not challenge a wrong result, or None to challenge it (with
    ``space``: also when stuffing a game's ``clock`` costs no more than its bond)."""
    if bond > limits.max_bond:
        return f"bond {ether(bond)} is above --max-bond {ether(limits.max_bond)}"
    stuffed = clock and _stuffable(f"a game's {clock} s clock", clock, block_time, space, bond)
    if stuffed:
        return stuffed
    if games_in_play >= capacity:
        return f"{games_in_play} games in play already, at capacity {capacity:,}"
    return None

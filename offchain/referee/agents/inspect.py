"""Reading a job and its games back from the chain, for people: ``ape run status`` and ``dispute``.

``timeline`` merges every market and game log about one job into one list, oldest first, each
line stamped with its block's time; ``game_state`` says where a game stands (phase, who is to
move, how long each side has left on its clock). Large values in logs (inputs, outputs, rows,
roots) are shown by size, amounts of wei in ETH.
"""

import datetime
from dataclasses import dataclass

from .agent import ether
from .client import JOB_STATUS, ChainClient, open_window
from .player import PHASE_NAMES, SOLVER_PHASES

MARKET_EVENTS = ("JobPosted", "JobClaimed", "JobExpired", "JobCommitted", "JobChallenged", "GameSettled",
                 "JobRejected", "ChallengeReclaimed", "JobFinalized", "JobCancelled")
GAME_EVENTS = ("Bisected", "Chosen", "Transitioned", "ChildrenRevealed", "ChildPicked", "RowRevealed", "Stepped",
               "GameResolved", "GameClosed")
WEI_FIELDS = {"fee", "solver_bond", "bond", "amount", "refund", "reward", "to_sink", "to_solver", "to_challenger",
              "slashed"}
HIDDEN_FIELDS = {"job_id", "game_id"}
RESULTS = {0: "in play", 1: "solver won", 2: "challenger won", 3: "closed"}


def _show(name: str, value) -> str:
    if name in WEI_FIELDS:
        return f"{name}={ether(int(value))}"
    if isinstance(value, (bytes, bytearray)) or type(value).__name__ == "HexBytes":
        data = bytes(value)
        return f"{name}=0x{data.hex()[:10]}…" if len(data) == 32 else f"{name}=<{len(data)} bytes>"
    if isinstance(value, (list, tuple)):
        return f"{name}=<{len(value)} values>"
    return f"{name}={value}"


def describe(log) -> str:
    """``EventName a=1 b=0.1 ETH ...`` for one decoded log."""
    fields = " ".join(_show(k, v) for k, v in log.event_arguments.items() if k not in HIDDEN_FIELDS)
    game = f"game {log.event_arguments['game_id']}: " if "game_id" in log.event_arguments else ""
    return f"{game}{log.event_name} {fields}".rstrip()


def _stamp(client: ChainClient, block: int) -> str:
    timestamp = client.block_timestamp(block)
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def timeline(client: ChainClient, job_id: int) -> list[str]:
    """Every log about job ``job_id`` and its games, oldest first, one line each."""
    start, head = client.deployment.block, client.head()
    logs = [log for name in MARKET_EVENTS for log in client.logs(client.market, name, start, head, job_id=job_id)]
    game_ids = [log.game_id for log in logs if log.event_name == "JobChallenged"]
    logs += [log for game_id in game_ids for name in GAME_EVENTS
             for log in client.logs(client.game, name, start, head, game_id=game_id)]
    logs.sort(key=lambda log: (log.block_number, log.log_index))
    return [f"{_stamp(client, log.block_number)}  block {log.block_number:<6} {describe(log)}" for log in logs]


@dataclass
class GameState:
    game_id: int
    result: str
    phase: str
    to_move: str  # "solver" / "challenger" / "" when over
    deadline: int  # the mover's last second; 0 when over
    solver_time: int
    challenger_time: int
    interval: tuple[int, int]

    def lines(self, now: int) -> list[str]:
        if self.result != "in play":
            return [f"game {self.game_id}: {self.result}"]
        left = self.deadline - now
        clock = f"{left:,} s left" if left >= 0 else f"clock ran out {-left:,} s ago: anyone may call timeout"
        return [f"game {self.game_id}: {self.phase}, ops ({self.interval[0]}, {self.interval[1]}], "
                f"{self.to_move} to move ({clock})",
                f"  clocks: solver {self.solver_time:,} s used, challenger {self.challenger_time:,} s used"]


def game_state(client: ChainClient, game_id: int) -> GameState:
    g = client.read(client.game.games, game_id)
    result = RESULTS.get(client.read(client.game.result, game_id), "unknown")
    in_play = result == "in play"
    return GameState(
        game_id=game_id, result=result, phase=PHASE_NAMES.get(g.phase, "over"),
        to_move=("solver" if g.phase in SOLVER_PHASES else "challenger") if in_play else "",
        deadline=client.read(client.game.deadline, game_id) if in_play else 0,
        solver_time=g.solver_time, challenger_time=g.challenger_time, interval=(g.lo, g.hi))


def job_summary(client: ChainClient, job_id: int) -> list[str]:
    job = client.job(job_id)
    now = client.now()
    lines = [f"job {job_id}: {JOB_STATUS.get(job.status, 'unknown')}, model {job.model_id}, {job.rows} rows, "
             f"fee {ether(job.fee)}, solver bond {ether(job.solver_bond)}"]
    window = open_window(job)
    if window:
        name, deadline = window
        left = deadline - now
        lines.append(f"  {name} window: {f'{left:,} s left' if left >= 0 else f'closed {-left:,} s ago'}")
    if job.status >= 2:
        lines.append(f"  solver {job.solver}, open games {job.open_games}")
    return lines


def games_of(client: ChainClient, job_id: int) -> list[int]:
    return [log.game_id for log in client.logs(client.market, "JobChallenged", client.deployment.block,
                                                client.head(), job_id=job_id)]

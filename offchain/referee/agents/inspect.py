"""Reading a job and its games back from the chain, for people: ``ape run status`` and ``dispute``.

``timeline`` merges every market and game log about one job into one list, oldest first, each
line stamped with its block's time (UTC) and saying in words who did what: who posted,
claimed, committed and challenged, and in each game what each move means (the ops interval
or the op the bisection narrowed to and its kind, the rows of the op's output the row descent
narrowed to, the op and column the one step checked, the claimed and computed values). ``game_state``
says where a game stands: phase, who is to move and how long it has left, and both chess
clocks as time *left* (the contract stores seconds left; the mover's clock runs down from
its last move). Amounts are in ETH; large values (inputs, outputs, rows, roots) are shown
by size or by a short prefix.
"""

import datetime
from dataclasses import dataclass

from .agent import ether
from .client import JOB_STATUS, ChainClient, open_window, unpack_ids
from .logs import seconds
from ..model import DTYPE_NAMES
from .player import PHASE_NAMES, SOLVER_PHASES

MARKET_EVENTS = ("JobPosted", "JobClaimed", "JobExpired", "JobCommitted", "JobChallenged", "GameSettled",
                 "JobRejected", "RewardPaid", "RewardsReleased", "ChallengeReclaimed", "JobFinalized", "JobCancelled")
GAME_EVENTS = ("Bisected", "Chosen", "Transitioned", "ChildrenRevealed", "ChildPicked", "RowRevealed", "Stepped",
               "GameResolved", "GameClosed")
RESULTS = {0: "in play", 1: "solver won", 2: "challenger won", 3: "closed"}
# op kinds by descriptor code (protocol section 5.10)
KINDS = {1: "linear", 2: "matmul", 3: "transpose", 4: "add", 5: "lut", 6: "softmax", 7: "norm", 8: "embed",
         9: "argmax", 10: "rope", 11: "mul"}
# what each phase asks of the side to move, in words
PHASE_WORDS = {"bisect": "bisect the disputed ops", "choose": "choose the disputed part",
               "transition": "reveal the disputed op's output", "reveal_children": "reveal two halves of rows",
               "pick": "pick the disputed half", "reveal_row": "reveal the disputed row",
               "step": "name the disputed column for the one-step check"}


def short(address) -> str:
    text = str(address)
    return f"{text[:6]}…{text[-4:]}" if len(text) > 12 else text


def _root(value) -> str:
    return "0x" + bytes(value).hex()[:10] + "…"


def _ops(lo: int, hi: int) -> str:
    """The ops of the interval (lo, hi]: ``op 3`` or ``ops 2-4``."""
    return f"op {hi}" if hi == lo + 1 else f"ops {lo + 1}-{hi}"


def _rows(levels_left: int, node_index: int, rows: int | None) -> str:
    """The rows under one node of the row tree (padded to a power of two), within ``rows``."""
    first = node_index << levels_left
    last = ((node_index + 1) << levels_left) - 1
    if rows is not None:
        last = min(last, rows - 1)
        if first > last:
            return f"padding row {first}"
    return f"row {first}" if first == last else f"rows {first}-{last}"


def revealed_kind(client: ChainClient, log) -> str | None:
    """The kind of the op a ``Transitioned`` log is about, from its transaction's calldata (the
    descriptor the solver proved; the event does not carry it). A batch of moves (a call whose
    arguments are calls) is searched for this game's ``transition``. None when it cannot be
    read."""
    import ape

    try:
        tx = client.read(lambda: ape.chain.provider.web3.eth.get_transaction(log.transaction_hash))
    except (ValueError, KeyError):
        return None
    desc = _find_transition(client.game, bytes(tx["input"]), log.game_id, depth=2)
    if desc is None:
        return None
    kind = int(desc["kind"] if isinstance(desc, dict) else desc[0])
    return KINDS.get(kind, f"kind {kind}")


def _find_transition(game, calldata: bytes, game_id: int, depth: int):
    """The ``desc`` argument of the ``transition`` call for ``game_id`` in ``calldata``."""
    from ape.exceptions import ApeException

    try:
        selector, args = game.decode_input(calldata)
    except (ApeException, ValueError, TypeError):  # not a call of the game (another contract's batch)
        return None
    if selector.startswith("transition("):
        return args.get("desc") if int(args.get("game_id", -1)) == game_id else None
    if depth == 0:
        return None
    for value in args.values():  # a batch: each argument that is a list of calls
        if isinstance(value, (list, tuple)):
            for inner in value:
                if isinstance(inner, (bytes, bytearray)) or type(inner).__name__ == "HexBytes":
                    found = _find_transition(game, bytes(inner), game_id, depth - 1)
                    if found is not None:
                        return found
    return None


class _Story:
    """The context one line needs from the lines before it: each game's op and row count."""

    def __init__(self, ops_kinds: dict[int, str] | None = None, reveal=lambda log: None):
        self.ops_kinds = ops_kinds or {}
        self.reveal = reveal  # log -> the op's kind from the chain, when the model is not given
        self.op: dict[int, int] = {}
        self.rows: dict[int, int] = {}

    def op_name(self, op: int) -> str:
        kind = self.ops_kinds.get(op)
        return f"op {op} ({kind})" if kind else f"op {op}"

    def describe(self, log, block_time: int) -> str:
        if log.event_name == "Transitioned" and log.op not in self.ops_kinds:
            kind = self.reveal(log)
            if kind:
                self.ops_kinds[log.op] = kind
        return self._describe(log, block_time)

    def _describe(self, log, block_time: int) -> str:
        a = log.event_arguments
        name = log.event_name
        g = a.get("game_id")
        game = f"game {g}: " if g is not None and name in GAME_EVENTS else ""
        return game + self._text(name, a, g, block_time)

    def _text(self, name: str, a: dict, g, t: int) -> str:  # noqa: C901 (one branch per event)
        if name == "JobPosted":
            size = job_size(a["rows"], a.get("n_tokens", 0))
            return (f"requester {short(a['requester'])} posted job {a['job_id']}: model {a['model_id']} "
                    f"{'for' if a.get('n_tokens') else 'on'} {size}, fee {ether(a['fee'])}, solver bond {ether(a['solver_bond'])}; windows: "
                    f"claim {seconds(a['claim_window'])}, commit {seconds(a['commit_window'])}, "
                    f"challenge {seconds(a['challenge_window'])}")
        if name == "JobClaimed":
            return (f"solver {short(a['solver'])} claimed it, locking a bond of {ether(a['bond'])}; "
                    f"it must commit within {seconds(a['commit_deadline'] - t)}")
        if name == "JobExpired":
            return (f"solver {short(a['solver'])} did not commit in time: its bond {ether(a['slashed'])} went to "
                    "the requester, and the job is open to claim again")
        if name == "JobCommitted":
            return (f"solver {short(a['solver'])} committed its result (S_N {_root(a['trace_root'])}, "
                    f"{len(bytes(a['output']))} output bytes); anyone may challenge for "
                    f"{seconds(a['challenge_deadline'] - t)}")
        if name == "JobChallenged":
            return f"challenger {short(a['challenger'])} challenged with a bond of {ether(a['bond'])}: game {g} opened"
        if name == "GameSettled":
            winner = "solver" if a["solver_won"] else "challenger"
            return (f"game {g} settled, the {winner} won: credited {ether(a['to_solver'])} to the solver, "
                    f"{ether(a['to_challenger'])} to the challenger")
        if name == "JobRejected":
            return (f"the result is rejected (game {g}, challenger {short(a['challenger'])}): requester refunded "
                    f"{ether(a['refund'])}; the solver's bond {ether(a['held'])} held for the winners' gas and bonus")
        if name == "RewardPaid":
            return (f"bonus {ether(a['reward'])} paid to challenger {short(a['challenger'])} (game {g}, after a "
                    f"fee of {ether(a['fee'])})")
        if name == "RewardsReleased":
            return (f"the job's last game closed: {a['winners']} winning game(s), {ether(a['reward'])} bonus each, "
                    f"{ether(a['to_sink'])} to the sink")
        if name == "ChallengeReclaimed":
            return (f"game {g} closed, the job already rejected: challenger {short(a['challenger'])} took back its "
                    f"bond {ether(a['bond'])} and {ether(a['refund'])} of gas")
        if name == "JobFinalized":
            return (f"finalized, no challenge won: fee {ether(a['fee'])} credited to solver {short(a['solver'])}, "
                    "its bond unlocked")
        if name == "JobCancelled":
            return f"requester {short(a['requester'])} cancelled it: {ether(a['refund'])} refunded"
        return self._game_text(name, a, g)

    def _game_text(self, name: str, a: dict, g) -> str:
        if name == "Bisected":
            lo, hi, roots = a["lo"], a["hi"], a["roots"]
            return (f"the solver split {_ops(lo, hi)} into {len(roots) + 1} parts, posting its state roots "
                    f"at {len(roots)} points between them")
        if name == "Chosen":
            lo, hi = a["lo"], a["hi"]
            found = "; the disputed op is found" if hi == lo + 1 else ""
            return f"the challenger disputes part {a['index'] + 1}: {_ops(lo, hi)}{found}"
        if name == "Transitioned":
            self.op[g], self.rows[g] = a["op"], a["output_rows"]
            dtype = DTYPE_NAMES.get(a["output_dtype"], f"dtype {a['output_dtype']}")
            return (f"the solver revealed {self.op_name(a['op'])}'s output, {a['output_rows']} x {a['output_cols']} "
                    f"{dtype}; the row descent begins")
        if name == "ChildrenRevealed":
            rows = _rows(a["levels_left"], a["node_index"], self.rows.get(g))
            return f"the solver revealed the two halves of {rows}"
        if name == "ChildPicked":
            side = "right" if a["right"] else "left"
            rows = _rows(a["levels_left"], a["node_index"], self.rows.get(g))
            return f"the challenger disputes the {side} half: {rows}"
        if name == "RowRevealed":
            where = self.op_name(self.op[g]) if g in self.op else "the op"
            return f"the solver revealed row {a['row_index']} of {where}'s output ({len(bytes(a['row']))} values)"
        if name == "Stepped":
            where = self.op_name(self.op[g]) if g in self.op else "the op"
            verdict = "they match" if a["claimed"] == a["computed"] else "they differ"
            return (f"the challenger had the contract recompute row {a['row_index']}, column {a['column']} of "
                    f"{where}: the solver claimed {a['claimed']}, the contract computed {a['computed']}: {verdict}")
        if name == "GameResolved":
            winner = "the solver" if a["solver_won"] else "the challenger"
            return f"over: {winner} won ({a['reason']})"
        if name == "GameClosed":
            return "closed before it ended (the job was already rejected)"
        return name


def _stamp(timestamp: int) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _events(contract, names: tuple[str, ...]) -> list[str]:
    """The names the contract's ABI has (an older deployment may lack a newer event)."""
    have = {event.name for event in contract.contract_type.events}
    return [name for name in names if name in have]


def timeline(client: ChainClient, job_id: int, ops_kinds: dict[int, str] | None = None) -> list[str]:
    """Every log about job ``job_id`` and its games, oldest first, one line each, in words.

    ``ops_kinds`` (op number -> kind, from the model when the caller has it) names each op;
    without it, the disputed op's kind is read from the transition's calldata."""
    start, head = client.deployment.block, client.head()
    logs = [log for name in _events(client.market, MARKET_EVENTS)
            for log in client.logs(client.market, name, start, head, job_id=job_id)]
    game_ids = [log.game_id for log in logs if log.event_name == "JobChallenged"]
    logs += [log for game_id in game_ids for name in _events(client.game, GAME_EVENTS)
             for log in client.logs(client.game, name, start, head, game_id=game_id)]
    logs.sort(key=lambda log: (log.block_number, log.log_index))
    story, lines, times = _Story(dict(ops_kinds or {}), lambda log: revealed_kind(client, log)), [], {}
    for log in logs:
        if log.block_number not in times:
            times[log.block_number] = client.block_timestamp(log.block_number)
        t = times[log.block_number]
        lines.append(f"{_stamp(t)}  block {log.block_number:<6} {story.describe(log, t)}")
    return lines


@dataclass
class GameState:
    game_id: int
    result: str
    phase: str
    to_move: str  # "solver" / "challenger" / "" when over
    deadline: int  # the mover's last second; 0 when over
    solver_time: int  # seconds left on the solver's clock when it last stopped (the contract's figure)
    challenger_time: int  # likewise for the challenger
    interval: tuple[int, int]

    def left(self, side: str, now: int) -> int:
        """Seconds left on ``side``'s clock now: the mover's runs down to its deadline."""
        if side == self.to_move:
            return self.deadline - now
        return self.solver_time if side == "solver" else self.challenger_time

    def lines(self, now: int) -> list[str]:
        if self.result != "in play":
            return [f"game {self.game_id}: over, {self.result}"]
        left = self.deadline - now
        clock = f"{seconds(left)} left" if left >= 0 else \
            f"its clock ran out {seconds(-left)} ago: anyone may call timeout"
        where = _ops(*self.interval)
        return [f"game {self.game_id}: {self.phase} ({where}): {self.to_move} to move, to "
                f"{PHASE_WORDS.get(self.phase, self.phase)} ({clock})",
                f"  clocks: solver {seconds(max(self.left('solver', now), 0))} left, "
                f"challenger {seconds(max(self.left('challenger', now), 0))} left"]


def game_state(client: ChainClient, game_id: int) -> GameState:
    g = client.read(client.game.games, game_id)
    result = RESULTS.get(client.read(client.game.result, game_id), "unknown")
    in_play = result == "in play"
    return GameState(
        game_id=game_id, result=result, phase=PHASE_NAMES.get(g.phase, "over"),
        to_move=("solver" if g.phase in SOLVER_PHASES else "challenger") if in_play else "",
        deadline=client.read(client.game.deadline, game_id) if in_play else 0,
        solver_time=g.solver_time, challenger_time=g.challenger_time, interval=(g.lo, g.hi))


def job_size(rows: int, n_tokens: int) -> str:
    """What a job asks for: its input rows, or a generation's new tokens (its input is one row)."""
    if n_tokens:
        return f"a generation of {n_tokens} token{'s' * (n_tokens != 1)}"
    return f"{rows} row{'s' * (rows != 1)}"


def job_summary(client: ChainClient, job_id: int) -> list[str]:
    job = client.job(job_id)
    now = client.now()
    lines = [f"job {job_id}: {JOB_STATUS.get(job.status, 'unknown')}, model {job.model_id}, "
             f"{job_size(job.rows, job.n_tokens)}, "
             f"fee {ether(job.fee)}, solver bond {ether(job.solver_bond)}"]
    window = open_window(job)
    if window:
        name, deadline = window
        left = deadline - now
        lines.append(f"  {name} window: {f'{seconds(left)} left' if left >= 0 else f'closed {seconds(-left)} ago'} "
                     f"(until {_stamp(deadline)})")
    if job.status >= 2:
        lines.append(f"  solver {job.solver}, open games {job.open_games}")
    return lines


def games_of(client: ChainClient, job_id: int) -> list[int]:
    return [log.game_id for log in client.logs(client.market, "JobChallenged", client.deployment.block,
                                                client.head(), job_id=job_id)]


# -- a job's input and result, in words (``ape run status``) --------------------------------

SHOWN_IDS = 32  # token ids listed before "(+N more)"
SHOWN_TEXTS = 8  # an encoder job's texts shown, one line each


def _ids(ids: list[int]) -> str:
    more = f" (+{len(ids) - SHOWN_IDS} more)" if len(ids) > SHOWN_IDS else ""
    return " ".join(map(str, ids[:SHOWN_IDS])) + more


def _tokens(ids: list[int], tokenizer, skip_special: bool = False) -> str:
    """``N tokens: 'text'`` with a tokenizer (the whole text: it is the result), else the ids."""
    plural = "s" * (len(ids) != 1)
    if tokenizer is None:
        return f"{len(ids)} token id{plural}: {_ids(ids)}"
    return f"{len(ids)} token{plural}: {tokenizer.decode(ids, skip_special_tokens=skip_special)!r}"


def job_result(client: ChainClient, job_id: int, tokenizer=None, kind: str | None = None) -> list[str]:
    """Lines on what job ``job_id`` was asked and what its solver committed, as ``job_summary``
    indents them. A generation job (5.15): the prompt and the generated tokens (``TokensGenerated``),
    as text with ``tokenizer`` (a ``tokenizers.Tokenizer``: the model's), else as ids. Any other
    job: its input's and its committed output's shape and dtype (from the registry entry and
    the ``JobCommitted`` log), an encoder's texts when ``tokenizer`` reads its rows of ids.
    ``kind`` (mlp, encoder or decoder, from the model file) names the output; without it, the
    registry's dtypes do."""
    job = client.job(job_id)
    entry = client.read(client.registry.model, job.model_id)
    start, head = client.deployment.block, client.head()
    posted = client.posted_input(job_id)
    committed = client.logs(client.market, "JobCommitted", start, head, job_id=job_id)
    n_tokens = int(getattr(job, "n_tokens", 0) or 0)
    if n_tokens:
        lines = [f"  prompt: {_tokens(unpack_ids(posted), tokenizer)}"]
        generated = client.logs(client.market, "TokensGenerated", start, head, job_id=job_id) \
            if "TokensGenerated" in _events(client.market, ("TokensGenerated",)) else []
        if not generated:
            lines.append(f"  generated: nothing committed yet ({n_tokens} token{'s' * (n_tokens != 1)} asked)")
        else:
            ids = unpack_ids(bytes(generated[-1].tokens))
            root = f", output root {_root(committed[-1].output_root)}" if committed else ""
            lines.append(f"  generated: {_tokens(ids, tokenizer)}{root}")
        if tokenizer is None:
            lines.append("  (--model DIR, the job's model with its tokenizer, shows them as text)")
        return lines
    rows, cols, dtype = job.rows, entry.input_cols, entry.input_dtype
    what = " (token ids)" if dtype == 1 else ""
    lines = [f"  input: {rows:,} row{'s' * (rows != 1)} of {cols} {DTYPE_NAMES.get(dtype, f'dtype {dtype}')} "
             f"values{what}"]
    if tokenizer is not None and dtype == 1 and len(posted) == rows * cols * 4:
        ids = unpack_ids(posted)
        for i in range(min(rows, SHOWN_TEXTS)):
            row = tokenizer.decode(ids[i * cols:(i + 1) * cols], skip_special_tokens=True)
            lines.append(f"    text {i + 1}: {row!r}")
        if rows > SHOWN_TEXTS:
            lines.append(f"    (+{rows - SHOWN_TEXTS} more)")
    if not committed:
        lines.append("  output: nothing committed yet")
        return lines
    out_rows = rows * entry.out_rows_num // entry.out_rows_den
    out_dtype = DTYPE_NAMES.get(entry.output_dtype, f"dtype {entry.output_dtype}")
    if kind is None:  # from the registry's facts: token ids in, a row of int8/int16 values per row out
        kind = "mlp" if dtype == 0 else "encoder" if entry.output_dtype != 1 else "decoder"
    meaning = {"encoder": " (an embedding per sequence)", "decoder": " (the greedy next token after each position)"}
    lines.append(f"  output: {out_rows:,} row{'s' * (out_rows != 1)} of {entry.output_cols} {out_dtype} "
                 f"value{'s' * (entry.output_cols != 1)}{meaning.get(kind, '')}, "
                 f"output root {_root(committed[-1].output_root)} ({len(bytes(committed[-1].output)):,} bytes)")
    return lines

"""Honest and lying parties for randomized dispute games, and the arena that plays them.

A ``Party`` believes a trace (the honest one, or a lie built by ``referee.cheats``) and plays
each move from it (``referee.game``). A liar may also, at any move, tell a move-level lie
(``SOLVER_TRICKS``, ``CHALLENGER_TRICKS``): forge a root, a proof, a row, a column, replay a
proof from another job, or just run out its clock. A lie the contract rejects leaves the
liar to fall back on its own trace or stall; an honest move must never be rejected.

The ``Arena`` plays every open game of one job at once on the chain's one clock, as the
agents would: the next action is always the earliest planned one across games; the side to
move takes a random delay (up to its deadline for an honest side, sometimes past it for a
liar), and the other side calls ``timeout`` the first second it may. After every transaction
it runs ``check`` (the money invariant). All choices come from a ``Chooser`` (hypothesis
data), so a failing game shrinks to a short one.
"""

import random
from collections import Counter
from dataclasses import dataclass, field

from eth_abi import decode, encode

from referee import game as moves
from referee import witness
from referee.model import IntegerModel
from referee.trace import Trace
from rpc import Abi, Node, Reverted

BISECT, CHOOSE, TRANSITION, CHILDREN, PICK, ROW, STEP = range(1, 8)
SOLVER_WON, CHALLENGER_WON, CLOSED = 8, 9, 10
SOLVER_PHASES = {BISECT, TRANSITION, CHILDREN, ROW}


class Chooser:
    """Random choices from hypothesis ``data`` (decisions, so they shrink) and a seeded ``Random``
    (bulk bytes)."""

    def __init__(self, data, strategies, seed: int | None = None):
        """From hypothesis ``data``; or, with ``data=None``, from ``seed`` alone (for a replay)."""
        self.data, self.st = data, strategies
        self.rng = random.Random(seed if data is None else data.draw(strategies.integers(0, 2**32 - 1), label="seed"))

    def integer(self, lo: int, hi: int, label: str = "") -> int:
        if self.data is None:
            return self.rng.randint(lo, hi)
        return self.data.draw(self.st.integers(lo, hi), label=label or None)

    def chance(self, percent: int, label: str = "") -> bool:
        """True with ``percent``% odds; shrinks to False."""
        return self.integer(0, 99, label) >= 100 - percent

    def pick(self, options: list, label: str = ""):
        return options[self.integer(0, len(options) - 1, label)]

    def delay(self, left: int) -> int:
        """Seconds to think, within ``left``: often none or all of it (the clock's edges)."""
        kind = self.integer(0, 3, "delay kind")
        return (0, left, self.rng.randint(0, left), min(left, 1))[kind]


@dataclass(eq=False)  # a party is itself: compared by identity
class Party:
    name: str
    address: str
    model: IntegerModel
    trace: Trace  # what it believes
    honest: bool
    other_job: Trace  # the same model run on another input: proofs to replay
    lies: int = 20  # percent odds of a move-level lie at each move (liars only)


@dataclass
class Stats:
    """What the randomized games tried and how they ended (printed at the end of the run)."""

    games: int = 0
    jobs: int = 0
    outcomes: Counter = field(default_factory=Counter)  # "solver won: step ..." etc.
    lies_tried: Counter = field(default_factory=Counter)
    lies_rejected: Counter = field(default_factory=Counter)
    trace_lies: Counter = field(default_factory=Counter)
    moves: int = 0
    token_jobs: Counter = field(default_factory=Counter)  # transformer-shaped jobs, by input
    kind_lies: Counter = field(default_factory=Counter)  # element lies in a token model, by slot kind
    kinds_decided: Counter = field(default_factory=Counter)  # token games won at a step, by op kind
    kinds_caught: Counter = field(default_factory=Counter)  # token jobs a solver's element lie lost, by kind
    figures: list = field(default_factory=list)  # measured lines other suites add (bond sizing)

    def report(self) -> str:
        if not self.jobs:
            return "\n".join(self.figures)
        lines = [f"{self.jobs} jobs, {self.games} games, {self.moves} moves",
                 f"trace lies: {sum(self.trace_lies.values())}  " + ", ".join(f"{k} {v}" for k, v in sorted(self.trace_lies.items())),
                 f"move lies tried: {sum(self.lies_tried.values())}, rejected by the contract: "
                 f"{sum(self.lies_rejected.values())}"]
        every = sorted(set(SOLVER_TRICKS) | set(CHALLENGER_TRICKS) | set(self.lies_tried))
        lines += [f"  {name}: {self.lies_tried[name]} tried, {self.lies_rejected[name]} rejected" for name in every]
        lines += ["outcomes:"] + [f"  {name}: {count}" for name, count in sorted(self.outcomes.items())]
        for title, counts in (("transformer-shaped jobs", self.token_jobs),
                              ("their element lies, by slot kind", self.kind_lies),
                              ("solvers' element lies caught, by slot kind", self.kinds_caught),
                              ("their games won at a step, by op kind", self.kinds_decided)):
            if counts:
                lines.append(f"{title}: {sum(counts.values())}  "
                             + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        return "\n".join(lines + self.figures)


# ---------------------------------------------------------------------------
# Moves from a party's own trace
# ---------------------------------------------------------------------------


@dataclass
class Seen:
    """What the chain's events told both sides of one game so far."""

    roots: list = field(default_factory=list)
    children: tuple = (b"", b"")
    row: bytes = b""


def trace_move(party: Party, phase: int, gid: int, g: dict, seen: Seen, arity: int) -> tuple[str, list]:
    """The move ``party`` makes from its own trace (raises if its trace has no answer)."""
    trace, lo, hi = party.trace, g["lo"], g["hi"]
    levels, index = g["levels_left"], g["node_index"]
    if phase == BISECT:
        return "bisect", [gid, moves.bisection_roots(trace, lo, hi, arity)]
    if phase == CHOOSE:
        return "choose", [gid, moves.disputed_part(trace, lo, hi, arity, seen.roots), seen.roots]
    if phase == TRANSITION:
        return "transition", [gid, *moves.transition(party.model, trace, hi).args()]
    if phase == CHILDREN:
        return "reveal_children", [gid, *moves.row_children(trace, hi, levels, index)]
    if phase == PICK:
        return "pick", [gid, moves.disputed_child(trace, hi, levels, index, *seen.children), *seen.children]
    if phase == ROW:
        return "reveal_row", [gid, trace.row_bytes(hi, index)]
    return "step", [gid, *moves.step(party.model, trace, hi, index, seen.row).args()]


def _flip(data: bytes, rng: random.Random) -> bytes:
    """``data`` with one byte changed."""
    i = rng.randrange(len(data))
    return data[:i] + bytes([data[i] ^ (1 + rng.randrange(255))]) + data[i + 1:]


def _flip_in(proof: list, rng: random.Random) -> list:
    i = rng.randrange(len(proof))
    return proof[:i] + [_flip(proof[i], rng)] + proof[i + 1:]


def remember(seen: Seen, method: str, args: list) -> None:
    """What an accepted move put on the chain: its event carries the same roots, children or row,
    which is all the other side reads."""
    if method == "bisect":
        seen.roots = list(args[1])
    elif method == "reveal_children":
        seen.children = (args[1], args[2])
    elif method == "reveal_row":
        seen.row = args[1]


# Each trick: (phase, applies(args, g) -> bool, lie(party, args, g, seen, rng, arity) -> args).
# Arguments are the ABI-ordered list of trace_move, the game id first.


def _other_transition(party, args, g, seen, rng, arity):
    return [args[0], *moves.transition(party.model, party.other_job, g["hi"]).args()]


def _forged_transition_proof(party, args, g, seen, rng, arity):
    """One element of the descriptor, an input or the output proof changed (those not empty)."""
    args = list(args)
    proofs = [(2, None), (7, None)] + [(4, k) for k, proof in enumerate(args[4]) if proof]
    i, k = rng.choice([(i, k) for i, k in proofs if (args[i] if k is None else args[i][k])])
    if k is None:
        args[i] = _flip_in(args[i], rng)
    else:
        args[i] = [_flip_in(p, rng) if j == k else p for j, p in enumerate(args[i])]
    return args


def _other_step(party, args, g, seen, rng, arity):
    step = moves.step(party.model, party.other_job, g["hi"], g["node_index"], seen.row, args[1])
    return [args[0], *step.args()]


def _linear(args, g) -> bool:
    """The step is a linear op's (its descriptor's kind is 1): its witness is LINEAR_WITNESS."""
    return args[4][0] == 1


def forged_witness(witness: bytes) -> bytes:
    """Any kind's witness with its last nonzero byte changed: data (a row, a proof, a table, a
    value), never ABI padding, and every part of a witness is hashed, proven or checked."""
    data = bytearray(witness)
    data[max(i for i, b in enumerate(data) if b)] ^= 1
    return bytes(data)


def _forged_witness(party, args, g, seen, rng, arity):
    return [*args[:-1], forged_witness(args[-1])]


def _witness(args) -> list:
    """The parts of a step's linear witness (referee.witness.LINEAR_WITNESS): x, x_proof, bias,
    multiplier, shift, w, w_proof, weights_rows_root."""
    return [list(p) if isinstance(p, tuple) else p for p in decode(witness.LINEAR_WITNESS, args[-1])]


def _witness_lie(change):
    """A step lie that changes the witness's parts (``change(parts, rng)`` in place)."""
    def lie(party, args, g, seen, rng, arity):
        parts = _witness(args)
        change(parts, rng)
        return [*args[:-1], encode(witness.LINEAR_WITNESS, tuple(parts))]
    return lie


def _wrong_part(party, args, g, seen, rng, arity):
    parts = len(seen.roots) + 1
    return [args[0], (args[1] + 1 + rng.randrange(parts - 1)) % parts, args[2]]


def _wrong_column(party, args, g, seen, rng, arity):
    cols = g["cols"]
    column = (args[1] + 1 + rng.randrange(cols - 1)) % cols
    step = moves.step(party.model, party.trace, g["hi"], g["node_index"], seen.row, column)
    return [args[0], *step.args()]


SOLVER_TRICKS = {
    "forged bisection root": (BISECT, lambda a, g: a[1],
                              lambda p, a, g, s, rng, ar: [a[0], _flip_in(a[1], rng)]),
    "stale bisection root (S_lo)": (BISECT, lambda a, g: a[1],
                                    lambda p, a, g, s, rng, ar: [a[0], [g["s_lo"]] + a[1][1:]]),
    "wrong number of roots": (BISECT, lambda a, g: True,
                              lambda p, a, g, s, rng, ar: [a[0], a[1] + [bytes(32)]]),
    "forged transition proof": (TRANSITION, lambda a, g: True, _forged_transition_proof),
    "transition proof of the wrong depth": (TRANSITION, lambda a, g: True,
                                            lambda p, a, g, s, rng, ar: [*a[:7], a[7][:-1]]),
    "forged output header": (TRANSITION, lambda a, g: True,
                             lambda p, a, g, s, rng, ar: [*a[:6], (a[6][0] + 1, *a[6][1:]), a[7]]),
    "transition replayed from another job": (TRANSITION, lambda a, g: True, _other_transition),
    "forged children": (CHILDREN, lambda a, g: True,
                        lambda p, a, g, s, rng, ar: [a[0], _flip(a[1], rng), a[2]]),
    "forged row": (ROW, lambda a, g: True, lambda p, a, g, s, rng, ar: [a[0], _flip(a[1], rng)]),
    "row one byte long": (ROW, lambda a, g: True, lambda p, a, g, s, rng, ar: [a[0], a[1] + b"\x00"]),
}

CHALLENGER_TRICKS = {
    "wrong sub-interval": (CHOOSE, lambda a, g: len(a[2]) > 0, _wrong_part),
    "sub-interval out of range": (CHOOSE, lambda a, g: True,
                                  lambda p, a, g, s, rng, ar: [a[0], len(a[2]) + 1, a[2]]),
    "roots not the solver's": (CHOOSE, lambda a, g: len(a[2]) > 0,
                               lambda p, a, g, s, rng, ar: [a[0], a[1], _flip_in(a[2], rng)]),
    "wrong child": (PICK, lambda a, g: True, lambda p, a, g, s, rng, ar: [a[0], not a[1], a[2], a[3]]),
    "children not the solver's": (PICK, lambda a, g: True,
                                  lambda p, a, g, s, rng, ar: [a[0], a[1], a[2], _flip(a[3], rng)]),
    "wrong column": (STEP, lambda a, g: g["cols"] > 1, _wrong_column),
    "column out of range": (STEP, lambda a, g: True, lambda p, a, g, s, rng, ar: [a[0], g["cols"], *a[2:]]),
    "forged witness": (STEP, lambda a, g: any(a[-1]), _forged_witness),
    "forged input row": (STEP, _linear, _witness_lie(lambda w, rng: w.__setitem__(0, _flip(w[0], rng)))),
    "forged weight row": (STEP, _linear, _witness_lie(lambda w, rng: w.__setitem__(5, _flip(w[5], rng)))),
    "wrong bias": (STEP, _linear, _witness_lie(lambda w, rng: w.__setitem__(2, w[2] + 1))),
    "input proof of the wrong depth": (STEP, lambda a, g: _linear(a, g) and len(_witness(a)[1]) > 0,
                                       _witness_lie(lambda w, rng: w.__setitem__(1, w[1][:-1]))),
    "forged input header": (STEP, lambda a, g: True,
                            lambda p, a, g, s, rng, ar: [*a[:5], [(a[5][0][0] + 1, *a[5][0][1:])], *a[6:]]),
    "step replayed from another job": (STEP, lambda a, g: True, _other_step),
}


# ---------------------------------------------------------------------------
# The arena: every game of one job, interleaved on one clock
# ---------------------------------------------------------------------------


@dataclass
class Match:
    gid: int
    solver: Party
    challenger: Party
    opened: int
    seen: Seen = field(default_factory=Seen)
    stalled: str = ""  # the name of a side that gave up answering
    plan: tuple | None = None  # (time, what) of the next action
    result: int = 0
    reason: str = ""
    ended: int = 0


class Arena:
    def __init__(self, node: Node, game: Abi, choose: Chooser, stats: Stats, check, clock: int, arity: int,
                 referee: str):
        self.node, self.game, self.choose, self.stats = node, game, choose, stats
        self.check, self.clock, self.arity = check, clock, arity
        self.referee = referee  # a bystander who calls timeout for a stalled side's opponent

    def play(self, matches: list[Match], on_end) -> None:
        """Plays every match to its end; ``on_end(match)`` after each (it may end others)."""
        while True:
            live = [m for m in matches if not m.result]
            if not live:
                return
            for m in live:
                if m.plan is None:
                    self._plan(m)
            m = min(live, key=lambda m: (m.plan[0], m.gid))
            self._act(m)
            if m.result:
                on_end(m)

    def _state(self, m: Match) -> dict:
        return self.game.view("games", m.gid)

    def _plan(self, m: Match) -> None:
        g = self._state(m)
        if g["phase"] >= SOLVER_WON:
            self._ended(m, g["phase"])
            m.plan = (self.node.timestamp(), "over")
            return
        mover = m.solver if g["phase"] in SOLVER_PHASES else m.challenger
        deadline = self.game.view("deadline", m.gid)
        now = max(self.node.timestamp(), g["last_move"])
        left = deadline - now
        assert left >= 0 or not mover.honest, f"{mover.name}'s deadline passed before its turn was planned"
        if m.stalled == mover.name or (not mover.honest and self.choose.chance(5, "liar runs out its clock")):
            m.stalled = mover.name
            m.plan = (deadline + 1, "timeout")
        else:
            m.plan = (now + self.choose.delay(max(left, 0)), "move")

    def _send(self, sender: str, method: str, args: list, at: int):
        receipt = self.game.transact(sender, method, *args, at=max(at, self.node.timestamp()))
        self.check()
        return receipt

    def _act(self, m: Match) -> None:
        at, what = m.plan
        m.plan = None
        if what == "over":
            return
        g = self._state(m)
        phase = g["phase"]
        mover = m.solver if phase in SOLVER_PHASES else m.challenger
        if what == "timeout":
            if self.choose.chance(30, "late move tried"):
                self._late_move(m, mover, phase, g, at)
            caller = self.choose.pick([m.solver.address, m.challenger.address, self.referee], "timeout caller")
            receipt = self._send(caller, "timeout", [m.gid], at)
            self._resolved(m, receipt)
            return
        try:
            self._move(m, mover, phase, g, at, lie=not mover.honest and self.choose.chance(mover.lies, "lie"))
        except Reverted as exc:
            assert not mover.honest, f"{mover.name}'s honest {phase} move was rejected: {exc.reason}"
            if self.choose.chance(30, "liar stalls after a rejected lie"):
                m.stalled = mover.name  # otherwise it falls back on its trace at the next plan

    def _late_move(self, m: Match, mover: Party, phase: int, g: dict, at: int) -> None:
        """The stalled side wakes up one second too late: refused, nothing changes."""
        try:
            method, args = trace_move(mover, phase, m.gid, g, m.seen, self.arity)
        except (IndexError, ValueError, KeyError, RuntimeError):
            return
        self.stats.lies_tried["move after the clock ran out"] += 1
        try:
            self._send(mover.address, method, args, at)
        except Reverted as exc:
            assert exc.reason == "game: clock ran out", exc.reason
            self.stats.lies_rejected["move after the clock ran out"] += 1
        else:
            raise AssertionError(f"{mover.name}'s {method} after its deadline was accepted")
        assert self._state(m) == g, "a refused move changed the game"

    def _move(self, m: Match, mover: Party, phase: int, g: dict, at: int, lie: bool = False) -> None:
        try:
            method, args = trace_move(mover, phase, m.gid, g, m.seen, self.arity)
        except (IndexError, ValueError, KeyError, RuntimeError):
            # a lying trace can have no answer at all (a slot too short, a row that is not there)
            assert not mover.honest, f"{mover.name} has no honest move in phase {phase}"
            m.stalled = mover.name
            return
        name = None
        if lie:
            tricks = SOLVER_TRICKS if mover is m.solver else CHALLENGER_TRICKS
            usable = sorted(n for n, (p, applies, _) in tricks.items() if p == phase and applies(args, g))
            if usable:
                name = self.choose.pick(usable, "trick")
                try:
                    args = tricks[name][2](mover, args, g, m.seen, self.choose.rng, self.arity)
                except (IndexError, ValueError, KeyError, RuntimeError):
                    name = None  # the liar could not even build it; it moves from its trace
                else:
                    self.stats.lies_tried[name] += 1
        try:
            receipt = self._send(mover.address, method, args, at)
        except Reverted:
            if name:
                self.stats.lies_rejected[name] += 1
            assert self._state(m) == g, "a refused move changed the game"
            raise
        self.stats.moves += 1
        remember(m.seen, method, args)
        self._resolved(m, receipt)

    def _resolved(self, m: Match, receipt) -> None:
        for log in self.game.event_logs(receipt, "GameResolved"):
            m.reason = log["reason"]
            self._ended(m, SOLVER_WON if log["solver_won"] else CHALLENGER_WON)

    def _ended(self, m: Match, phase: int) -> None:
        if not m.result:
            m.result, m.ended = phase, self.node.timestamp()


STATS = Stats()  # this test session's totals, printed by tests/conftest.py

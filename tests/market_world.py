"""One deployment of the three contracts on the test chain, driven through bare JSON-RPC, and
the money each party is owed by the rules (for tests/test_random_games.py and
tests/test_griefing.py).

``World`` deploys ModelRegistry, DisputeGame and JobMarket with ape and then addresses them
through ``rpc.Abi`` (a transaction or a view in a few milliseconds). ``Ledger`` computes every
credit, the solver's stake and the sink's share from game outcomes by protocol section 10.2,
never reading them from the market, so a test can compare the two.
"""

import random

from ape import chain

from accounting import COMMITTED, FINALIZED, REJECTED, assert_accounting, assert_drained
from game_bots import SOLVER_PHASES, SOLVER_WON, Match, Party, remember, trace_move
from helpers import int8_tensor, random_input, random_ref_model, to_integer_model
from referee import commitments as cm
from referee import decode
from referee.agents.client import pack_ids
from referee.executor import run_model
from referee.trace import Trace
from referee.agents.deployment import deploy_game
from rpc import Abi, Node

ARITY = 4
CLOCK = 3600
CHALLENGER_BOND = 10**17 + 3
MIN_SOLVER_BOND = 10**17
SOLVER_BOND = 10**18 + 1
FEE = 3 * 10**16 + 7
SHARE_BPS = 999  # rounds: the bonus pool, the fee and the sink's part are all odd figures
FEE_BPS = 301  # the dilution fee: 2 x 301 < 999 < 6 x 301
WINDOWS = (600, 600, 1800)  # claim, commit, challenge (seconds)
WINDOW_LIMITS = (1, 365 * 86400)  # the deployment's: any window the state machine may draw
SINK = "0x000000000000000000000000000000000000dEaD"


def model_and_traces(seed: int, input_cols: int, widths: list[int], rows: int):
    """A random model with its honest trace on a random input, and a second job's trace (another
    input) for replayed proofs: the ``job_model`` triple the parties are built from."""
    rng = random.Random(seed)
    model = to_integer_model(random_ref_model(rng, input_cols, widths))
    honest, other = (Trace(model.root, run_model(model, int8_tensor(random_input(rng, rows, input_cols)), "cpu"))
                     for _ in range(2))
    return model, honest, other


class World:
    """The contracts and the parties' accounts, addressed through bare RPC."""

    def __init__(self, project, accounts, challenger_bond: int = CHALLENGER_BOND,
                 min_solver_bond: int = MIN_SOLVER_BOND):
        # the jobs' solver bond is the larger of SOLVER_BOND and the deployment's minimum
        self.challenger_bond, self.solver_bond = challenger_bond, max(SOLVER_BOND, min_solver_bond)
        self.fee = FEE
        self.pool = self.solver_bond * SHARE_BPS // 10000
        self.fee_each = self.solver_bond * FEE_BPS // 10000
        self.reward = self.pool - self.fee_each  # a sole winner's bonus
        deployer = accounts[0]
        registry = deployer.deploy(project.ModelRegistry)
        game = deploy_game(deployer, ARITY, CLOCK, project)
        market = deployer.deploy(project.JobMarket, registry, game, challenger_bond, min_solver_bond, SHARE_BPS,
                                 FEE_BPS, SINK, *WINDOW_LIMITS)
        self.node = Node(chain.provider.uri)
        self.registry = Abi(self.node, registry.address, registry.contract_type.abi)
        self.game = Abi(self.node, game.address, game.contract_type.abi)
        self.market = Abi(self.node, market.address, market.contract_type.abi)
        self.requester, self.solver, self.referee = (str(a.address) for a in accounts[1:4])
        self.challengers = [str(a.address) for a in accounts[4:7]]

    def check(self):
        assert_accounting(self.market.address, self.node)

    def open_books(self, accounts: list[str]) -> dict:
        """Each account's balance and gas paid so far, for ``close_out``."""
        return {a: (self.node.balance(a), self.node.gas_paid[a.lower()]) for a in accounts + [SINK]}

    def post_and_commit(self, model, honest, believed, generation: tuple[list[int], int] | None = None) -> int:
        """Registers ``model`` (once), posts the honest input (or, for a ``generation`` job, its
        prompt and token count), and has the solver stake, claim and commit the trace it
        believes (with the tokens its output gives, for a generation job); returns the job id."""
        model_id = self.registry.view("model_id", model.entry)
        if model_id == 0:
            self.registry.transact(self.requester, "register", *model.registration())
            model_id = self.registry.view("model_count")
        if generation is None:
            self.market.transact(self.requester, "post", model_id, honest.slots[0].shape[0],
                                 cm.packed(honest.slots[0]), self.solver_bond, *WINDOWS, value=self.fee)
        else:
            prompt, n_tokens = generation
            self.market.transact(self.requester, "post_generation", model_id, pack_ids(prompt), n_tokens,
                                 self.solver_bond, *WINDOWS, value=self.fee)
        job_id = self.market.view("job_count")
        self.market.transact(self.solver, "deposit", value=self.solver_bond)
        self.market.transact(self.solver, "claim", job_id)
        n = believed.op_count
        output_proof = believed.state_tree(n).proof(n)
        if generation is None:
            self.market.transact(self.solver, "commit", job_id, cm.packed(believed.output), believed.trace_root,
                                 output_proof)
        else:
            tokens = decode.generated_tokens(believed.output, len(prompt), n_tokens)
            self.market.transact(self.solver, "commit_generation", job_id, pack_ids(prompt), pack_ids(tokens),
                                 cm.packed(believed.output), believed.trace_root, output_proof)
        self.check()
        return job_id

    def close_out(self, job_id: int, ledger: "Ledger", books: dict, bonds: dict) -> int:
        """Finalizes the job if no one won against it, checks every credit, the stake and the
        sink against ``ledger``, has everyone withdraw to an empty market, and checks that each
        account's ETH moved by exactly what it was owed minus what it put in (``bonds`` per
        challenger) and its gas. Returns the job's final status."""
        market, node = self.market, self.node
        job = market.view("job", job_id)
        if job["status"] == COMMITTED:
            node.mine(max(node.timestamp(), job["challenge_deadline"]) + 1)
            market.transact(self.referee, "finalize", job_id)
            ledger.finalize()
            self.check()
        status = market.view("job", job_id)["status"]
        assert status == (REJECTED if ledger.rejected else FINALIZED)

        for who in books:
            if who != SINK:
                assert market.view("credit", who) == ledger.credit.get(who, 0), who
        assert market.view("stake", self.solver) == ledger.stake
        assert market.view("sink_pending") == ledger.sink
        for who in ledger.credit:
            market.transact(who, "withdraw")
            self.check()
        if ledger.stake:
            market.transact(self.solver, "withdraw_stake", ledger.stake)
        if ledger.sink:
            market.transact(self.referee, "release_to_sink")
        assert_drained(market.address, node)

        paid_in = {self.requester: self.fee, self.solver: self.solver_bond, **bonds}
        for who, (balance, gas_before) in books.items():
            if who == SINK:
                assert node.balance(SINK) - balance == ledger.sink
                continue
            gas = node.gas_paid[who.lower()] - gas_before
            got = ledger.credit.get(who, 0) + (ledger.stake if who == self.solver else 0)
            assert node.balance(who) - balance == got - paid_in.get(who, 0) - gas, f"{who} was paid wrongly"
        return status


class Ledger:
    """What each party is owed, computed from the rules and ``world``'s parameters, never read
    from the market; only each game's metered gas refund is read (``refund_of``), since it is
    what the challenger's transactions cost. ``games`` is the number of games opened on the job:
    each winner is credited its bond and refund when settled, and once the last game is closed
    every winner gets the pool's equal share less the dilution fee (if positive), the sink the
    rest. A challenger that settles its own won game, or reclaims it, is also refunded that
    transaction's gas (``caller_refund``, from the receipt's ``SettleGasRefunded``)."""

    def __init__(self, world: World, games: int = 1):
        self.requester, self.solver, self.fee = world.requester, world.solver, world.fee
        self.bond, self.solver_bond = world.challenger_bond, world.solver_bond
        self.pool, self.fee_each = world.pool, world.fee_each
        self.market = world.market
        self.credit = {}
        self.sink = 0
        self.stake = world.solver_bond
        self.rejected = False
        self.games_left = games
        self.held = 0  # the slashed bond not yet paid out
        self.winners = []  # the challengers of the games won, in settle order

    def add(self, who: str, amount: int):
        if amount:
            self.credit[who] = self.credit.get(who, 0) + amount

    def settle(self, m, caller_refund: int = 0):
        """A ``game_bots.Match`` that ended with a winner is settled (``caller_refund``: the settle
        gas refunded to its challenger, if it settled its won game itself)."""
        if m.result == SOLVER_WON:
            self.add(self.solver, self.bond)
        else:
            if not self.rejected:
                self.rejected = True
                self.add(self.requester, self.fee)
                self.stake -= self.solver_bond
                self.held = self.solver_bond
            self.add(m.challenger.address, self.bond + self._refund(m))
            self.winners.append(m.challenger.address)
        self._closed(m.challenger.address, caller_refund)

    def reclaim(self, m, caller_refund: int):
        """Its challenger closed ``m``; ``caller_refund`` is the gas of that ``reclaim`` it was
        credited (metered by the market, as ``refund_of``)."""
        self.add(m.challenger.address, self.bond + self._refund(m))
        self._closed(m.challenger.address, caller_refund)

    def _refund(self, m) -> int:
        refund = min(self.market.view("refund_of", m.gid), self.held)
        self.held -= refund
        return refund

    def _closed(self, challenger: str, caller_refund: int):
        # the market's order: the bonus once the last game closes, then the caller's gas, then the sink
        self.games_left -= 1
        last = self.games_left == 0 and self.rejected
        if last:
            share = min(self.pool, self.held) // len(self.winners)
            bonus = share - self.fee_each if share > self.fee_each else 0
            for who in self.winners:
                self.add(who, bonus)
            self.held -= bonus * len(self.winners)
        assert caller_refund <= self.held
        self.held -= caller_refund
        self.add(challenger, caller_refund)
        if last:
            self.sink += self.held
            self.held = 0

    def finalize(self):
        self.add(self.solver, self.fee)


# ---------------------------------------------------------------------------
# Playing games from traces (scripted: who stalls, who is slow)
# ---------------------------------------------------------------------------


def party(name, address, model_and_traces, trace=None, honest=True) -> Party:
    model, honest_trace, other = model_and_traces
    return Party(name, address, model, trace or honest_trace, honest, other, lies=0)


def caller_refund(w: "World", receipt) -> int:
    """The settle or reclaim gas ``receipt``'s sender was refunded (its ``SettleGasRefunded``)."""
    return sum(log["refund"] for log in w.market.event_logs(receipt, "SettleGasRefunded"))


def challenge(w: "World", job_id: int, who: Party, solver: Party, at: int | None = None) -> Match:
    w.market.transact(who.address, "challenge", job_id, value=w.challenger_bond, at=at)
    w.check()
    return Match(w.game.view("game_count"), solver, who, w.node.timestamp())


def play(w: "World", matches: list[Match], stalls=(), slow=(), pause_at_challenger: bool = False,
         until_phase: int = 0):
    """Plays ``matches`` at once on the chain's clock, each side from its own trace: a party in
    ``stalls`` never moves (the other side calls timeout the first second it may), one in
    ``slow`` moves at its deadline each time (its whole clock on its first move), the others
    move at once. The earliest action across games goes first. With ``pause_at_challenger``
    a game stops when its challenger is to move; with ``until_phase``, on reaching that phase."""
    live = list(matches)
    while live:
        actions = []
        for m in list(live):
            g = w.game.view("games", m.gid)
            phase = g["phase"]
            mover = m.solver if phase in SOLVER_PHASES else m.challenger
            if phase >= SOLVER_WON or phase == until_phase or (pause_at_challenger and mover is m.challenger):
                m.result, m.ended = phase, w.node.timestamp()
                live.remove(m)
                continue
            deadline = w.game.view("deadline", m.gid)
            at = deadline + 1 if mover in stalls else deadline if mover in slow else w.node.timestamp()
            actions.append((at, m.gid, m, g, mover))
        if not actions:
            return
        at, _, m, g, mover = min(actions, key=lambda a: a[:2])
        if mover in stalls:
            other = m.challenger if mover is m.solver else m.solver
            receipt = w.game.transact(other.address, "timeout", m.gid, at=at)
        else:
            method, args = trace_move(mover, g["phase"], m.gid, g, m.seen, ARITY)
            receipt = w.game.transact(mover.address, method, *args, at=at)
            remember(m.seen, method, args)
        w.check()
        for log in w.game.event_logs(receipt, "GameResolved"):
            m.reason = log["reason"]

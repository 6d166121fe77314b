"""Driving agents on a chain whose clock we control: a local anvil (demo, tests) or a fork.

On a real chain agents tick on a timer and time passes by itself. On a local chain nothing
happens between transactions, so ``drive`` ticks every agent in turn and, when a whole round
sends nothing, moves the chain's clock to just past the earliest deadline any of them is
waiting for (a claim, commit or challenge window, a game clock) with anvil's
``evm_setNextBlockTimestamp``. A round with nothing sent and no deadline ahead means the
agents are stuck, which is an error.
"""

from collections.abc import Callable

from ..errors import RefereeError
from .agent import Agent
from .client import IN_PLAY, open_window


def warp(timestamp: int) -> None:
    """Mine one block at ``timestamp`` (anvil and hardhat RPC)."""
    import ape

    web3 = ape.chain.provider.web3
    web3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])
    web3.provider.make_request("evm_mine", [])


def deadlines(agent: Agent) -> list[int]:
    """Every deadline ``agent`` may be waiting for: its jobs' windows and its games' clocks."""
    client, found = agent.client, []
    for row in agent.journal.active_jobs():
        window = open_window(client.job(row.job_id))
        found += [window[1]] if window else []
    for game_id, _ in agent.journal.active_games():
        if client.read(client.game.result, game_id) == IN_PLAY:
            found.append(client.read(client.game.deadline, game_id))
    found += getattr(agent, "watched", {}).values()  # other players' games it waits to close
    return found


def drive(agents: list[Agent], done: Callable[[], bool], max_rounds: int = 400,
          on_warp: Callable[[int, int], None] = lambda old, new: None) -> int:
    """Tick ``agents`` until ``done()``, warping the clock when all are waiting; returns rounds."""
    client, idle = agents[0].client, 0
    for rounds in range(1, max_rounds + 1):
        sent = 0
        for agent in agents:  # each agent's transactions are mined before the next one looks
            sent += agent.tick()
            agent.await_receipts()
        if done():
            return rounds
        if not sent and any([agent.await_traces() for agent in agents]):
            continue  # a trace finished in the background: its job acts on the next round
        idle = 0 if sent else idle + 1
        if sent:
            continue
        now = client.now()
        ahead = [d for agent in agents for d in deadlines(agent) if d >= now]
        if not ahead:
            if idle == 1:
                continue  # one more look: a tick may have closed what the next one acts on
            raise RefereeError("the agents are stuck: nothing to send and no deadline ahead")
        target = min(ahead) + 1
        on_warp(now, target)
        warp(target)
    raise RefereeError(f"the agents did not finish within {max_rounds} rounds")

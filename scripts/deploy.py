"""``ape run deploy``: deploy the model registry, the op kinds' verifiers, the dispute game and the
job market.

Parameters come from flags (defaults suit a local chain); the addresses, chain id, deployment
block and parameters are written to a deployments file, one per network, which the other
scripts and the agents read.

    ape run deploy --network ethereum:local:foundry --account TEST::0
    ape run deploy --network http://127.0.0.1:8545 --account TEST::0 --clock 7200
"""

from pathlib import Path

import click
from ape.cli import account_option

from scripts._shared import OperatorCommand
from referee.agents.cli import ETH, user_errors
from referee.agents.deployment import (DEFAULT_PARAMS, VERIFIER_CONTRACTS, ZERO_ADDRESS, contracts_project,
                                       default_path, deploy)
from referee.errors import RefereeError


@click.command(cls=OperatorCommand, short_help="Deploy the registry, game and market")
@account_option()
@click.option("--arity", type=int, default=DEFAULT_PARAMS["arity"], show_default=True,
              help="Parts per bisection round: a power of two from 2 to 64.")
@click.option("--clock", type=click.IntRange(1), default=DEFAULT_PARAMS["clock"], show_default=True,
              help="Seconds on each side's chess clock for a whole game.")
@click.option("--challenger-bond", type=ETH, default=DEFAULT_PARAMS["challenger_bond"], show_default="0.1",
              help="ETH a challenger puts up per challenge; it must repay an honest solver's gas for a "
                   "whole game at the gas prices you expect (docs/security.md, minimum bonds).")
@click.option("--min-solver-bond", type=ETH, default=DEFAULT_PARAMS["min_solver_bond"], show_default="0.1",
              help="The least solver bond (ETH) a job may ask for; its reward share must repay an honest "
                   "challenger's gas for a whole game (docs/security.md, minimum bonds).")
@click.option("--reward-share-bps", type=click.IntRange(0, 1000), default=DEFAULT_PARAMS["reward_share_bps"],
              show_default=True, help="Bonus pool of a slashed solver bond, in 1/10000, shared equally by the winning "
                                      "games (winners' gas is refunded on top).")
@click.option("--dilution-fee-bps", type=click.IntRange(0, 1000), default=DEFAULT_PARAMS["dilution_fee_bps"],
              show_default=True, help="Fee in 1/10000 of the solver bond each winning game pays out of its share: "
                                      "more than a sixth of the pool and less than half of it.")
@click.option("--min-window", type=click.IntRange(1), default=DEFAULT_PARAMS["min_window"], show_default=True,
              help="The shortest claim, commit or challenge window (seconds) a job may ask for: several blocks, "
                   "so a claim, a commit and a challenge can always be mined in time.")
@click.option("--max-window", type=click.IntRange(1, 365 * 86400), default=DEFAULT_PARAMS["max_window"],
              show_default=True, help="The longest window (seconds) a job may ask for: bounds how long a job "
                                      "can lock a solver's bond.")
@click.option("--sink", help="Address that receives the rest of slashed bonds [default: the deploying account].")
@click.option("--out", type=click.Path(path_type=Path),
              help="Deployments file to write [default: deployments/<ecosystem>-<network>.json].")
@click.option("--force", is_flag=True, help="Replace an existing deployments file.")
def cli(ecosystem, network, account, arity, clock, challenger_bond, min_solver_bond, reward_share_bps,
        dilution_fee_bps, min_window, max_window, sink, out, force):
    """Deploy Referee's contracts (registry, the kinds' verifiers, game, market) and record them in a
    deployments file."""
    with user_errors():
        if arity < 2 or arity > 64 or arity & (arity - 1):
            raise RefereeError(f"--arity must be a power of two from 2 to 64, got {arity}")
        if (reward_share_bps or dilution_fee_bps) and not 2 * dilution_fee_bps < reward_share_bps < 6 * dilution_fee_bps:
            raise RefereeError(f"--dilution-fee-bps {dilution_fee_bps} must be above a sixth and below half of "
                               f"--reward-share-bps {reward_share_bps} (or both 0)")
        if min_window > max_window:
            raise RefereeError(f"--min-window {min_window} is longer than --max-window {max_window}")
        out = out or default_path(ecosystem.name, network.name)
        if out.exists() and not force:
            raise RefereeError(f"{out} exists; pass --force to replace it (or --out another file)")
        deployment = deploy(account, sink=sink or str(account.address), arity=arity, clock=clock,
                            challenger_bond=challenger_bond, min_solver_bond=min_solver_bond,
                            reward_share_bps=reward_share_bps, dilution_fee_bps=dilution_fee_bps,
                            min_window=min_window, max_window=max_window)
        deployment.save(out)
        for name in ("registry", "game", "market"):
            click.echo(f"{name:<10}{getattr(deployment, name)}")
        # the game's verifier table, fixed at its deployment (protocol 10.3): one line per kind
        game = contracts_project().DisputeGame.at(deployment.game)
        for kind, contract in enumerate(VERIFIER_CONTRACTS, start=1):
            address = game.verifier(kind)
            click.echo(f"kind {kind:<5}{address if address != ZERO_ADDRESS else 'no verifier'} ({contract})")
        click.echo(f"written   {out}")

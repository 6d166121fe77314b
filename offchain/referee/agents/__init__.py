"""On-chain side of Referee: deployments, the chain client, the solver and challenger agents.

Everything here talks to the contracts through Ape and imports it lazily, so the plain
``referee quantize|run|info`` commands start without loading the chain stack.
"""

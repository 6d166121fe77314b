"""``ape run post_job``: post a job on a registered model, with its fee escrowed.

The input is an INPUT_FILE of rows (.json or .npy, as ``referee run`` reads: int8 rows for an
MLP, ``referee quantize-input`` makes them from float rows; int32 token ids for a token model)
or, for a model compiled with its tokenizer, text: ``--text`` (repeatable) posts an encoder's
job of one row of token ids per text, and ``--text PROMPT --tokens N`` on a decoder posts a
generation job (protocol 5.15: N greedy tokens after the prompt's ids; ``status --model``
reads them back as text). The rows are checked against the model and its registry entry's
row rule, the prompt against its context, and the fee, bond and windows against the market,
before anything is sent. Then the cost is shown (the fee, the gas at the node's current price,
the total against the account's balance) and confirmed; ``--yes`` sends without asking.

    ape run post_job build/demo/digits-model build/demo/input.json --fee 0.01 \\
        --network http://127.0.0.1:8545 --account TEST::1 --yes
    ape run post_job build/minilm --text "A man is playing a guitar." --text "Someone plays." \\
        --network http://127.0.0.1:8545 --account TEST::1 --yes
    ape run post_job build/moby --text "Call me Ishmael." --tokens 32 \\
        --network http://127.0.0.1:8545 --account TEST::1 --yes
"""

from pathlib import Path

import click
from ape.cli import account_option

from scripts._shared import OperatorCommand, confirm_cost, eth, gas_price, yes_option
from referee import commitments as cm
from referee.agents.agent import ether
from referee.agents.cli import ETH, resolve_deployment, user_errors
from referee.agents.client import ChainClient, pack_ids
from referee.errors import RefereeError
from referee.executor import Executor
from referee.hashing import to_hex
from referee.inputs import load_input
from referee.modelfile import load_model

DAY = 86_400
MAX_CONTEXT = 4096  # protocol 10.0: a generation model's context, on a market too old to say


@click.command(cls=OperatorCommand, short_help="Post a job")
@account_option()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("input_file", type=click.Path(path_type=Path), required=False)
@click.option("--text", "texts", multiple=True, metavar="TEXT",
              help="Text instead of INPUT_FILE, for a model with a tokenizer: an encoder's sentence, one row "
                   "each (repeatable); a decoder's prompt, with --tokens.")
@click.option("--tokens", type=int, metavar="N",
              help="A generation job: N greedy tokens after the --text prompt (a decoder with a tokenizer).")
@click.option("--fee", type=ETH, default=10**16, show_default="0.01", help="ETH paid to the solver, escrowed now.")
@click.option("--bond", type=ETH, help="Solver bond to ask for (ETH) [default: the market's minimum].")
@click.option("--claim-window", type=click.IntRange(1, 365 * DAY), default=3600, show_default=True,
              help="Seconds for a solver to claim the job.")
@click.option("--commit-window", type=click.IntRange(1, 365 * DAY), default=3600, show_default=True,
              help="Seconds for the solver to commit once it claimed.")
@click.option("--challenge-window", type=click.IntRange(1, 365 * DAY), default=DAY, show_default=True,
              help="Seconds anyone may challenge the committed result.")
@click.option("--deployment", type=click.Path(path_type=Path),
              help="Deployments file [default: deployments/<ecosystem>-<network>.json].")
@yes_option
def cli(account, model_dir, input_file, texts, tokens, fee, bond, claim_window, commit_window, challenge_window,
        deployment, yes):
    """Post a job: MODEL_DIR's model on INPUT_FILE's rows, on --text (tokenized), or a generation
    of --tokens N after a --text prompt; print the job id."""
    with user_errors():
        job = _job(model_dir, input_file, texts, tokens)  # every file and text mistake before the chain
        model = job.model
        client = ChainClient(resolve_deployment(deployment), account)
        model_id = client.model_id(model)
        if model_id == 0:
            raise RefereeError(f"{model.name} is not registered on this chain (ape run register_model)")
        minimum = client.market.MIN_SOLVER_BOND()
        bond = minimum if bond is None else bond
        windows = {"claim": claim_window, "commit": commit_window, "challenge": challenge_window}
        _check_terms(client.market, fee, bond, minimum, windows, job.rows)
        if job.prompt is not None:
            context = _constant(client.market, "MAX_CONTEXT", MAX_CONTEXT)
            if model.input_cols > context:
                raise RefereeError(f"{model.name} has a context of {model.input_cols:,} tokens; this market's "
                                   f"generation jobs take at most {context:,}")
            function = "post_generation"
            args = (model_id, pack_ids(job.prompt), job.n_tokens, bond, claim_window, commit_window, challenge_window)
        else:
            function = "post"
            args = (model_id, job.rows, cm.packed(job.x), bond, claim_window, commit_window, challenge_window)
        balance = int(account.balance)
        if balance < fee:
            raise RefereeError(f"{account.address} has {eth(balance)}, less than the fee {eth(fee)}: "
                               "fund the account or lower --fee")
        # estimated with a 1 wei fee: the node caps an estimate's gas at what the balance leaves
        # after the value, so a fee that fits but leaves too little for the gas would fail the
        # estimate itself ("Out of gas ... set the gas limit manually") instead of being named
        method = getattr(client.market, function)
        gas, price = method.estimate_gas_cost(*args, sender=account, value=1), gas_price()
        total = fee + gas * price
        if balance < total:
            raise RefereeError(f"{account.address} has {eth(balance)}; the fee and the gas need {eth(total)} "
                               f"(short by {eth(total - balance)}): fund the account or lower --fee")
        confirm_cost([
            f"post a {'generation ' if job.prompt is not None else ''}job: {model.name} (model {model_id}) "
            f"{job.what}",
            *job.notes,
            f"  fee          {eth(fee)}, escrowed now (refunded if the job is cancelled or the result rejected)",
            f"  solver bond  {eth(bond)}, asked of the solver (not yours)",
            f"  windows      claim {claim_window:,} s, commit {commit_window:,} s, challenge {challenge_window:,} s",
            f"  gas          about {gas:,} at {price / 1e9:.4g} gwei = {eth(gas * price)}",
            f"  total        {eth(total)} of {account.address}'s {eth(balance)}",
        ], yes, "post the job")
        count = client.market.job_count()
        receipt = client.send(f"post:{count}", client.market, function, *args, value=fee)
        (posted,) = receipt.decode_logs(client.market.JobPosted)
        root = "prompt hash" if job.prompt is not None else "input root"
        click.echo(f"job {posted.job_id}: {model.name} {job.what}, fee {ether(fee)}, bond {ether(bond)}, "
                   f"{root} {to_hex(bytes(posted.input_root))[:12]}… (gas {receipt.gas_used:,})")


class _Job:
    """What is posted: the model, and its rows ``x`` or a generation's ``prompt`` and ``n_tokens``;
    ``what`` says it in words, ``notes`` are lines shown before the cost."""

    def __init__(self, model, x=None, prompt=None, n_tokens=0, what="", notes=()):
        self.model, self.x, self.prompt, self.n_tokens, self.what, self.notes = \
            model, x, prompt, n_tokens, what, list(notes)
        self.rows = 1 if prompt is not None else x.shape[0]


def _job(model_dir: Path, input_file: Path | None, texts: tuple[str, ...], tokens: int | None) -> _Job:
    """The job the arguments describe, checked against the model (one RefereeError line for
    every mistake: no input or two, text for a model without a tokenizer, --tokens on a model
    that does not generate or with other than one prompt, a prompt and N beyond the context,
    rows off the registry's row rule)."""
    from referee import text
    from referee.cli import model_kind

    if (input_file is not None) == bool(texts):
        raise RefereeError("give either INPUT_FILE, or --text (for a model with a tokenizer)")
    if tokens is not None and (input_file is not None or len(texts) != 1):
        raise RefereeError("--tokens continues one prompt: give it as a single --text (and no INPUT_FILE)")
    given = text.texts_given(texts, None)[0] if texts else []  # the texts' own mistakes before the model loads
    model = load_model(model_dir)
    kind = model_kind(model)
    if tokens is not None:
        if kind != "decoder":
            raise RefereeError(f"--tokens posts a generation job, on a decoder; {model_dir} is "
                               f"{'an encoder' if kind == 'encoder' else 'an MLP'} (drop --tokens to post "
                               f"{'its texts' if kind == 'encoder' else 'rows'})")
        return _generation(model, model_dir, given[0], tokens)
    notes = []
    if input_file is not None:
        x = load_input(input_file, model.input_dtype)
        source = ""
    else:
        spec = model.meta.get("tokenizer") if isinstance(model.meta, dict) else None
        if kind == "decoder" and isinstance(spec, dict) and "sha256" in spec:
            raise RefereeError(f"{model_dir} is a decoder: add --tokens N to post a generation job of N tokens "
                               "after the --text prompt")
        x, cut = text.encode_texts(model, model_dir, given)
        if cut:
            numbers = ", ".join(map(str, cut))
            notes.append(f"  truncated    text{'s' * (len(cut) > 1)} {numbers}: longer than {model.input_cols} "
                         f"tokens, cut to the first {model.input_cols - 2} and [SEP]")
        source = f" ({len(given)} text{'s' * (len(given) != 1)} tokenized, {model.input_cols} ids each)"
    _check_rows(model, x.shape[0])
    Executor(model, "cpu").check_input(x)
    return _Job(model, x=x, what=f"on {x.shape[0]:,} rows{source}", notes=notes)


def _generation(model, model_dir: Path, prompt_text: str, n: int) -> _Job:
    from referee import decode, text

    decode.plan(model)  # a causal token decoder ending in an argmax, or the op that is not
    facts = model.registry_facts()
    if (facts.output_dtype, model.output_cols, facts.row_step, facts.out_rows_num, facts.out_rows_den) != \
            (1, 1, 1, model.input_cols, 1):  # the market's own test (protocol 10.2): the model generates
        raise RefereeError(f"{model.name} does not generate: its registry entry is not one row of "
                           f"{model.input_cols} ids in, {model.input_cols} int32 rows of one id out")
    tokenizer = text.generation_tokenizer(model, model_dir)
    prompt = text.prompt_ids(tokenizer, prompt_text)
    decode.check_job(model, prompt, n)
    return _Job(model, prompt=prompt, n_tokens=n,
                what=f"to continue a prompt of {len(prompt)} tokens ({text.short(prompt_text)}) by {n} tokens")


def _check_rows(model, rows: int) -> None:
    """The registry entry's row rule (protocol 10.1), which the market applies at ``post``."""
    facts = model.registry_facts()
    if rows % facts.row_step:
        raise RefereeError(f"the input has {rows:,} rows; {model.name} takes a multiple of {facts.row_step} "
                           f"(its registry row step)")
    if rows > facts.max_input_rows:
        raise RefereeError(f"the input has {rows:,} rows; {model.name} takes at most {facts.max_input_rows:,} "
                           "per job (its registry max_input_rows)")


def _check_terms(market, fee: int, bond: int, minimum: int, windows: dict, rows: int) -> None:
    """The market's own checks, said in terms of this command's options (the contract's
    revert reasons name its parameters, not the flags)."""
    if fee <= 0:
        raise RefereeError("--fee must be more than 0: the market pays the solver from it")
    if bond < minimum:
        raise RefereeError(f"--bond {ether(bond)} is below this market's minimum solver bond {ether(minimum)}")
    low = _constant(market, "MIN_WINDOW", 1)
    high = _constant(market, "MAX_WINDOW", None) or _constant(market, "WINDOW_LIMIT", 365 * DAY)
    for name, seconds in windows.items():
        if not low <= seconds <= high:
            raise RefereeError(f"--{name}-window {seconds:,} s is outside this market's windows, {low:,} to {high:,} s")
    most = _constant(market, "MAX_ROWS", None)
    if most is not None and rows > most:
        raise RefereeError(f"the input has {rows:,} rows; this market takes at most {most:,} per job")


def _constant(market, name: str, default):
    """A market constant, or ``default`` on a market deployed before it existed (absent from
    the ABI, or from the deployed code: the call reverts)."""
    from ape.exceptions import ContractLogicError

    try:
        return int(getattr(market, name)())
    except (AttributeError, ContractLogicError):
        return default

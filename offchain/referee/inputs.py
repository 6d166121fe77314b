"""Reading a job input from a file: JSON (a list of rows, or one flat row) or NumPy ``.npy``.

Values must be integers in [-128, 127]; anything else is refused with the first offending
position, never silently rounded or wrapped. Float rows (``load_float_input``, for
``referee quantize-input``) are read from the same two formats and must be finite.
"""

import json
from pathlib import Path

import numpy as np
import torch

from .errors import InputError


def _json_rows(path: Path) -> list:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if isinstance(data, list) and data and all(not isinstance(v, list) for v in data):
        data = [data]  # one flat row
    if not isinstance(data, list) or not data or not all(isinstance(row, list) for row in data):
        raise InputError(f"{path}: expected a list of rows (lists of integers)")
    widths = {len(row) for row in data}
    if len(widths) != 1:
        raise InputError(f"{path}: rows have different lengths {sorted(widths)}")
    return data


def _from_json(path: Path) -> np.ndarray:
    data = _json_rows(path)
    for r, row in enumerate(data):
        for c, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(f"{path}: row {r}, column {c} is {value!r}; inputs must be integers in [-128, 127]")
    return np.array(data, dtype=object)


def _npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"{path} is not a readable .npy file: {exc}") from None
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.size == 0:
        raise InputError(f"{path}: expected a 2-D array (rows, cols), got shape {array.shape}")
    return array


def _from_npy(path: Path) -> np.ndarray:
    array = _npy(path)
    if array.dtype.kind not in "iu":
        raise InputError(f"{path} holds {array.dtype} values; inputs must be integers in [-128, 127] "
                         "(referee quantize-input turns float rows into them)")
    return array.astype(object)


def _reader(path: Path, readers: dict):
    if not path.is_file():
        raise InputError(f"input file {path} not found")
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise InputError(f"{path}: unknown input format {path.suffix!r}; use .json or .npy")
    return reader


def load_float_input(path: Path) -> torch.Tensor:
    """A float64 tensor (rows, cols) of finite numbers from ``path`` (.json or .npy)."""
    path = Path(path)
    reader = _reader(path, {".json": _json_rows, ".npy": _npy})
    data = reader(path)
    if isinstance(data, list):
        for r, row in enumerate(data):
            for c, value in enumerate(row):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise InputError(f"{path}: row {r}, column {c} is {value!r}; float inputs must be numbers")
    elif data.dtype.kind not in "iuf":
        raise InputError(f"{path} holds {data.dtype} values; float inputs must be numbers")
    array = np.asarray(data, dtype=np.float64)
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        r, c = bad[0]
        raise InputError(f"{path}: row {r}, column {c} is {array[r, c]}; float inputs must be finite")
    return torch.from_numpy(array)


def load_input(path: Path) -> torch.Tensor:
    """An int8 tensor (rows, cols) from ``path``."""
    path = Path(path)
    array = _reader(path, {".json": _from_json, ".npy": _from_npy})(path)
    out_of_range = np.argwhere((array < -128) | (array > 127))
    if len(out_of_range):
        r, c = out_of_range[0]
        raise InputError(f"{path}: row {r}, column {c} is {array[r, c]}; inputs must be integers in [-128, 127]")
    return torch.tensor(array.astype(np.int8))


def save_rows(x: torch.Tensor, path: Path) -> None:
    """Write int8 rows as JSON, the format ``load_input`` reads (used for inputs and outputs)."""
    try:
        Path(path).write_text(json.dumps(x.tolist()) + "\n")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None

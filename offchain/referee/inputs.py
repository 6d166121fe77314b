"""Reading a job input: JSON (a list of rows, or one flat row), NumPy ``.npy``, or rows given
as Python lists (``rows_tensor``).

Values must be integers in the model's input dtype: [-128, 127] for int8, [-2^31, 2^31 - 1]
for int32 token ids; anything else is refused with the first offending position, never
silently rounded or wrapped. Float rows (``load_float_input``, for ``referee
quantize-input``) are read from the same two formats and must be finite.
"""

import json
from pathlib import Path

import numpy as np
import torch

from .commitments import DTYPE_INT8, DTYPE_INT32
from .errors import InputError

RANGES = {DTYPE_INT8: (-128, 127), DTYPE_INT32: (-(1 << 31), (1 << 31) - 1)}
NUMPY = {DTYPE_INT8: np.int8, DTYPE_INT32: np.int32}


def _range_text(dtype: int) -> str:
    low, high = RANGES[dtype]
    return f"integers in [{low}, {high}]"


def _list_rows(data, where: str) -> list:
    """A list of rows of one length (one flat row is one row); InputError naming what is wrong."""
    if isinstance(data, list) and data and all(not isinstance(v, list) for v in data):
        data = [data]  # one flat row
    if not isinstance(data, list) or not data or not all(isinstance(row, list) for row in data):
        raise InputError(f"{where}: expected a list of rows (lists of integers)")
    widths = {len(row) for row in data}
    if len(widths) != 1:
        raise InputError(f"{where}: rows have different lengths {sorted(widths)}")
    return data


def _json_rows(path: Path) -> list:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    return _list_rows(data, str(path))


def _integer_rows(data: list, where: str, dtype: int) -> np.ndarray:
    for r, row in enumerate(data):
        for c, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(f"{where}: row {r}, column {c} is {value!r}; inputs must be {_range_text(dtype)}")
    return np.array(data, dtype=object)


def _checked(array: np.ndarray, where: str, dtype: int) -> torch.Tensor:
    """The object or integer array as a tensor of ``dtype``; InputError at the first value outside it."""
    low, high = RANGES[dtype]
    out_of_range = np.argwhere((array < low) | (array > high))
    if len(out_of_range):
        r, c = out_of_range[0]
        raise InputError(f"{where}: row {r}, column {c} is {array[r, c]}; inputs must be {_range_text(dtype)}")
    return torch.tensor(array.astype(NUMPY[dtype]))


def rows_tensor(rows, dtype: int = DTYPE_INT8, where: str = "input") -> torch.Tensor:
    """Rows given as Python lists of ints as a 2-D tensor of ``dtype``, refused rather than wrapped."""
    return _checked(_integer_rows(_list_rows(rows, where), where, dtype), where, dtype)


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


def _from_npy(path: Path, dtype: int) -> np.ndarray:
    array = _npy(path)
    if array.dtype.kind not in "iu":
        raise InputError(f"{path} holds {array.dtype} values; inputs must be {_range_text(dtype)}"
                         + (" (referee quantize-input turns float rows into them)" if dtype == DTYPE_INT8 else ""))
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


def load_input(path: Path, dtype: int = DTYPE_INT8) -> torch.Tensor:
    """A tensor (rows, cols) of ``dtype`` (int8 rows, or int32 token ids) from ``path``."""
    path = Path(path)
    readers = {".json": lambda p: _integer_rows(_json_rows(p), str(p), dtype), ".npy": lambda p: _from_npy(p, dtype)}
    return _checked(_reader(path, readers)(path), str(path), dtype)


def save_rows(x: torch.Tensor, path: Path) -> None:
    """Write integer rows as JSON, the format ``load_input`` reads (used for inputs and outputs)."""
    try:
        Path(path).write_text(json.dumps(x.tolist()) + "\n")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None

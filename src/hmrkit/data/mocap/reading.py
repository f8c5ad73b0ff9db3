"""What the readers share: the parse error, reading a text file with one-line errors, and
length units."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from hmrkit.errors import InputError

INCH_M = 0.0254  # metres per inch
CMU_UNIT_M = INCH_M / 0.45  # metres per CMU ASF length unit (':units length 0.45', inches)


class ParseError(Exception):
    """A parse problem; turned into InputError(path, message) at the public entry."""


def read_text(path: Path, kind: str) -> str:
    if not path.exists():
        raise InputError(path, f"no such file; check the path to the {kind} file")
    if path.is_dir():
        raise InputError(path, f"is a folder, not a {kind} file")
    data = path.read_bytes()
    if not data.strip():
        raise InputError(path, f"empty file; expected a {kind} file")
    if b"\x00" in data[:65536]:
        raise InputError(path, f"binary data, not a text {kind} file")
    return data.decode("utf-8", errors="replace")


def floats(tokens: Sequence[str], what: str) -> np.ndarray:
    try:
        return np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        raise ParseError(f"non-numeric value in {what}: {' '.join(tokens)[:60]!r}") from None

"""Atomic writes: a file appears complete under its final name, or not at all.

Each writer creates a temporary file in the destination folder (so ``os.replace`` is a
rename on the same file system), fsyncs it and renames it over the destination. When
the body of the ``with`` block raises, the temporary file is removed and the destination
is left untouched: a run that fails never leaves a half-written file, and never destroys
a previous good one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from hmrkit.errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def ensure_folder(folder) -> Path:
    """Create ``folder`` (and its parents) if needed; InputError naming it when that fails."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(folder, "cannot create the output folder: a file of that name is in the way") from None
    except PermissionError:
        raise InputError(folder, "cannot create the output folder (permission denied); choose another one") from None
    except OSError as e:
        raise InputError(folder, f"cannot create the output folder ({e.strerror or e}); choose another one") from None
    if not folder.is_dir():
        raise InputError(folder, "the output path is not a folder; choose another one")
    return folder


def temp_path_for(path, suffix: str | None = None) -> tuple[int, Path]:
    """(fd, temporary path) beside ``path``: same folder, hidden name, same suffix unless given.

    Raises InputError naming the folder when it cannot be written."""
    path = Path(path)
    folder = ensure_folder(path.parent if str(path.parent) else Path("."))
    suffix = path.suffix if suffix is None else suffix
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=folder)
    except PermissionError:
        raise InputError(folder, "cannot write to the output folder (permission denied); choose another one") from None
    except OSError as e:
        raise InputError(folder, f"cannot write to the output folder ({e.strerror or e}); choose another one") from None
    # mkstemp creates 0600; give the file the permissions an ordinary open() would.
    with contextlib.suppress(OSError):
        os.chmod(tmp, 0o666 & ~_umask())
    return fd, Path(tmp)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit(tmp: Path, path) -> None:
    """Rename the finished temporary file over ``path`` (atomic on POSIX and Windows)."""
    path = Path(path)
    try:
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise InputError(path, f"cannot write the output file ({e.strerror or e})") from None
    _fsync_folder(path.parent if str(path.parent) else Path("."))


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", encoding: str = "utf-8"):
    """Open ``path`` for writing atomically; yields the file object.

    mode: ``"wb"`` (bytes) or ``"w"`` (text, ``encoding``). The folder is created when
    missing. On success the data is fsynced and renamed over ``path``; when the block
    raises, the temporary file is removed, ``path`` is untouched and the error propagates.
    An unwritable folder raises InputError naming the folder."""
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    fd, tmp = temp_path_for(path)
    try:
        f = os.fdopen(fd, mode, encoding=None if "b" in mode else encoding)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    commit(tmp, path)


def save_npz_atomic(path, **arrays) -> Path:
    """Write arrays to an uncompressed ``.npz`` at ``path`` atomically; returns ``path``.

    Values are anything ``np.asarray`` accepts (torch tensors are detached to CPU first);
    strings become 0-d unicode arrays. Loading needs no pickle (``allow_pickle=False``)."""
    prepared = {}
    for key, value in arrays.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        if arr.dtype == object:
            raise ValueError(f"save_npz_atomic: {key!r} is an object array; store numbers or strings")
        prepared[key] = arr
    with atomic_write(path, "wb") as f:
        np.savez(f, **prepared)
    return Path(path)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "detach"):  # torch tensor
        return obj.detach().cpu().tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def save_json_atomic(path, obj, indent: int = 2) -> Path:
    """Write ``obj`` as UTF-8 JSON at ``path`` atomically; returns ``path``.

    numpy scalars/arrays, torch tensors, paths and sets are converted; anything else
    that json cannot encode raises TypeError before the destination is touched."""
    text = json.dumps(obj, indent=indent, default=_json_default, ensure_ascii=False)
    with atomic_write(path, "w") as f:
        f.write(text + "\n")
    return Path(path)

"""Reading any supported motion-capture file, and finding them in a folder."""

from __future__ import annotations

from pathlib import Path

from hmrkit.data.mocap.asf_amc import load_amc
from hmrkit.data.mocap.bvh import load_bvh
from hmrkit.data.mocap.clip import MocapClip
from hmrkit.errors import InputError

def load_mocap(path, asf=None, scale: float | None = None) -> MocapClip:
    """Read a .bvh, or a .amc (with its .asf: beside it, or ``asf=``) -> MocapClip.

    Bad, missing, truncated or unsupported files raise InputError naming the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".bvh":
        return load_bvh(path, scale=scale)
    if suffix == ".amc":
        return load_amc(path, asf=asf, scale=scale)
    if suffix == ".asf":
        raise InputError(path, "an .asf holds only the skeleton; load one of its .amc motions")
    raise InputError(path, f"unsupported motion-capture format {suffix or '(no suffix)'!r}; expected .bvh or .amc")


def list_mocap_files(root) -> list[Path]:
    """All .amc and .bvh files under the folder ``root`` (recursive), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "not a folder; expected a folder of .amc/.bvh files")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".amc", ".bvh"))

"""Acclaim ASF (skeleton) / AMC (motion) readers and Acclaim forward kinematics.

Joint 0 is ``root``; every other joint is a *bone* of the ASF and its position is the
bone's END (where its children start). So the knee is the end of ``lfemur``.

Conventions, pinned by tests with hand-computed values: ``order``, ``axis`` and ``dof``
list rotations about FIXED axes in the order applied, so ``axis 10 20 30 XYZ`` gives
C = Rz(30) @ Ry(20) @ Rx(10) and ``dof rx ry rz`` gives M = Rz @ Ry @ Rx. A bone's world
rotation is L = L_parent @ C @ M @ C^-1 and its end is the parent's end + L @ (direction *
length). The root: L = C @ M @ C^-1 (C from ``orientation`` in ``axis`` order; zero in CMU
files), position = ``position`` + the AMC translation. ``MocapClip.rotations[:, j]`` is
C @ M @ C^-1 of joint j: it turns bone j itself.

Lengths: ``:units length m`` means lengths are inches / m (CMU: ``length 0.45``), so
metres = value / m * 0.0254.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hmrkit.data.mocap.clip import MocapClip
from hmrkit.data.mocap.reading import INCH_M, ParseError, floats, read_text
from hmrkit.data.mocap.rotations import compose_fixed
from hmrkit.data.mocap.skeletons import detect_skeleton
from hmrkit.errors import InputError

@dataclass(frozen=True)
class AsfSkeleton:
    """An Acclaim skeleton. Joint 0 is the root; bones follow, parents first."""

    names: tuple[str, ...]        # (J,) 'root' then bone names
    parents: tuple[int, ...]      # (J,) -1 for the root
    directions: np.ndarray        # (J, 3) unit bone directions, world rest frame (root: 0)
    lengths: np.ndarray           # (J,) bone lengths, file units (root: 0)
    axes: np.ndarray              # (J, 3, 3) C: each bone's local axes in the world rest frame
    dofs: tuple[tuple[str, ...], ...]  # per joint, AMC value order: root 'tx'.. 'rz'; bones 'rx'..
    root_position: np.ndarray     # (3,) file units (ASF ':root position')
    scale: float                  # metres per file length unit
    angles_in_degrees: bool       # ASF ':units angle'
    limits: tuple[tuple[tuple[float, float], ...], ...]  # per joint, per dof (file angle units)
    source: str


def _asf_lines(text: str):
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].replace("(", " ").replace(")", " ").replace(",", " ")
        toks = line.split()
        if toks:
            yield toks


def _parse_asf(text: str, scale: float | None, source: str) -> AsfSkeleton:
    units = {"mass": "1.0", "length": "1.0", "angle": "deg"}
    root = {"order": ["TX", "TY", "TZ", "RX", "RY", "RZ"], "axis": ["XYZ"],
            "position": ["0", "0", "0"], "orientation": ["0", "0", "0"]}
    bones: dict[str, dict] = {}
    hierarchy: list[list[str]] = []
    section = None
    bone: dict | None = None
    in_hier = False
    for toks in _asf_lines(text):
        head = toks[0]
        if head.startswith(":"):
            section = head[1:].lower()
            continue
        key = head.lower()
        if section == "units":
            if len(toks) >= 2:
                units[key] = toks[1]
        elif section == "root":
            root[key] = toks[1:]
        elif section == "bonedata":
            if key == "begin":
                bone = {"dof": [], "limits": [], "axis": ["0", "0", "0", "XYZ"]}
            elif key == "end":
                if bone is None or "name" not in bone:
                    raise ParseError("a :bonedata block has no name")
                if bone["name"] in bones or bone["name"] == "root":
                    raise ParseError(f"bone {bone['name']!r} is defined twice")
                bones[bone["name"]] = bone
                bone = None
            elif bone is None:
                raise ParseError(f"{head!r} outside a begin/end block in :bonedata")
            elif key == "name":
                bone["name"] = toks[1]
            elif key in ("direction", "axis", "length", "id", "bodymass", "cofmass"):
                bone[key] = toks[1:]
            elif key == "dof":
                bone["dof"] = [t.lower() for t in toks[1:]]
            elif key == "limits":
                bone["limits"].extend(toks[1:])
            else:
                try:  # continuation lines of 'limits'
                    float(head)
                    bone["limits"].extend(toks)
                except ValueError:
                    pass  # an unknown keyword: ignored, as the format asks
        elif section == "hierarchy":
            if key == "begin":
                in_hier = True
            elif key == "end":
                in_hier = False
            elif in_hier:
                hierarchy.append(toks)
    if bone is not None:
        raise ParseError("the file ends inside a :bonedata block; it is truncated")
    if not bones:
        raise ParseError("no :bonedata bones; not an ASF skeleton")
    if not hierarchy:
        raise ParseError("no :hierarchy section (or it is empty); the file is truncated")

    angle_deg = units.get("angle", "deg").lower().startswith("deg")
    to_rad = (lambda v: np.deg2rad(v)) if angle_deg else (lambda v: np.asarray(v, np.float64))
    try:
        length_mult = float(units.get("length", "1.0"))
    except ValueError:
        raise ParseError(f":units length {units.get('length')!r} is not a number") from None
    if scale is None:
        if length_mult <= 0:
            raise ParseError(f":units length {length_mult} must be positive")
        scale = INCH_M / length_mult

    # Order bones parents-first (breadth-first from the root).
    children: dict[str, list[str]] = {}
    for toks in hierarchy:
        for c in toks[1:]:
            if c in children.get(toks[0], []):
                continue
            children.setdefault(toks[0], []).append(c)
    names, parents = ["root"], [-1]
    queue = ["root"]
    while queue:
        p = queue.pop(0)
        for c in children.get(p, []):
            if c not in bones:
                raise ParseError(f":hierarchy names bone {c!r} that :bonedata does not define")
            if c in names:
                raise ParseError(f"bone {c!r} has two parents in :hierarchy")
            names.append(c)
            parents.append(names.index(p))
            queue.append(c)
    missing = [b for b in bones if b not in names]
    if missing:
        raise ParseError(f"bones {missing} are not connected to the root in :hierarchy")

    J = len(names)
    directions = np.zeros((J, 3))
    lengths = np.zeros(J)
    axes = np.zeros((J, 3, 3))
    dofs: list[tuple[str, ...]] = []
    limits: list[tuple] = []
    # root
    order = [t.lower() for t in root["order"]]
    if sorted(order) != sorted(set(order)) or any(t not in ("tx", "ty", "tz", "rx", "ry", "rz") for t in order):
        raise ParseError(f":root order {root['order']} must list tx ty tz rx ry rz tokens once each")
    dofs.append(tuple(order))
    limits.append(())
    axis_order = root.get("axis", ["XYZ"])[0].lower()
    rpos = floats(root.get("position", ["0"] * 3)[:3], ":root position")
    rori = floats(root.get("orientation", ["0"] * 3)[:3], ":root orientation")
    if len(rpos) != 3 or len(rori) != 3 or sorted(axis_order) != ["x", "y", "z"]:
        raise ParseError(":root needs 'axis' (e.g. XYZ), 'position x y z' and 'orientation x y z'")
    axes[0] = compose_fixed(axis_order, to_rad(rori[["xyz".index(a) for a in axis_order]]))
    for j, name in enumerate(names[1:], start=1):
        b = bones[name]
        if "direction" not in b or "length" not in b:
            raise ParseError(f"bone {name!r} lacks direction or length")
        d = floats(b["direction"][:3], f"the direction of {name}")
        ln = floats(b["length"][:1], f"the length of {name}")
        if len(d) != 3 or len(ln) != 1:
            raise ParseError(f"bone {name!r}: bad direction or length")
        norm = np.linalg.norm(d)
        directions[j] = d / norm if norm > 0 else d
        lengths[j] = ln[0]
        ax = b["axis"]
        ax_order = ax[3].lower() if len(ax) > 3 else "xyz"
        ang = floats(ax[:3], f"the axis of {name}")
        if len(ang) != 3 or sorted(ax_order) != ["x", "y", "z"]:
            raise ParseError(f"bone {name!r}: bad axis {' '.join(ax)!r}; expected 3 angles and an order like XYZ")
        axes[j] = compose_fixed(ax_order, to_rad(ang[["xyz".index(a) for a in ax_order]]))
        dof = tuple(b["dof"])
        bad = [t for t in dof if t not in ("rx", "ry", "rz")]
        if bad:
            raise ParseError(f"bone {name!r}: dof {bad} not supported (only rx ry rz)")
        if len(set(dof)) != len(dof):
            raise ParseError(f"bone {name!r}: repeated dof {list(dof)}")
        dofs.append(dof)
        lim = b["limits"]
        try:
            pairs = tuple((float(lim[2 * k]), float(lim[2 * k + 1])) for k in range(len(lim) // 2))
        except ValueError:
            pairs = ()
        limits.append(pairs)
    return AsfSkeleton(
        names=tuple(names), parents=tuple(parents), directions=directions, lengths=lengths,
        axes=axes, dofs=tuple(dofs), root_position=rpos, scale=float(scale),
        angles_in_degrees=angle_deg, limits=tuple(limits), source=source,
    )


def load_asf(path, scale: float | None = None) -> AsfSkeleton:
    """Read an Acclaim skeleton file. ``scale``: metres per length unit (None: from
    ``:units length``, lengths being inches / that value)."""
    path = Path(path)
    text = read_text(path, "ASF")
    try:
        return _parse_asf(text, scale, str(path))
    except ParseError as e:
        raise InputError(path, str(e)) from None


def _amc_header(text: str, degrees: bool) -> tuple[int, bool]:
    """-> (character offset of the first frame-number line, angles in degrees)."""
    pos = 0
    for raw in io.StringIO(text):
        parts = raw.split()
        if parts:
            head = parts[0]
            if len(parts) == 1 and head.isdigit():
                return pos, degrees
            if head.upper() == ":RADIANS":
                degrees = False
            elif head.upper() == ":DEGREES":
                degrees = True
            elif not head.startswith((":", "#")):
                raise ParseError(f"unexpected line before the first frame number: {raw.strip()[:60]!r}")
        pos += len(raw)
    raise ParseError("no frames (no frame-number lines); not an AMC file or empty")


def _amc_body_fast(body: str, ndof: dict[str, int]):
    """Vectorised AMC body reader for the usual layout (every frame lists the same bones in
    the same order, one bone per line, no comments). -> (values, frames) or None when the
    layout differs (the caller then uses the line-by-line reader, which words errors)."""
    lines = body.split("\n", 64)
    order = []
    for raw in lines[1:]:
        parts = raw.split()
        if len(parts) == 1 and parts[0].isdigit():
            break
        if not parts or parts[0] not in ndof or len(parts) - 1 != ndof[parts[0]] or parts[0] in order:
            return None
        order.append(parts[0])
    else:
        if len(lines) > 64:
            return None
    per_frame = 1 + sum(1 + ndof[n] for n in order)
    tokens = body.split()
    T = len(tokens) // per_frame
    if T == 0 or len(tokens) != T * per_frame:
        return None
    col, value_cols = 1, {}
    for n in order:
        if tokens[col::per_frame] != [n] * T:
            return None
        value_cols[n] = slice(col + 1, col + 1 + ndof[n])
        col += 1 + ndof[n]
    tok = np.array(tokens, dtype=object).reshape(T, per_frame)
    try:
        frames = tok[:, 0].astype(np.int64)
        values = {n: tok[:, c].astype(np.float64) for n, c in value_cols.items()}
    except (ValueError, TypeError):
        return None
    return values, frames


def _amc_body_slow(body: str, ndof: dict[str, int]):
    """Line-by-line AMC body reader: any bone order, comments; precise errors."""
    rows: dict[str, list] = {n: [] for n, k in ndof.items() if k}
    frames: list[int] = []
    lines = body.splitlines()
    last = max((i for i, raw in enumerate(lines) if raw.strip()), default=-1)
    for i, raw in enumerate(lines):
        parts = raw.split()
        if not parts or parts[0].startswith("#"):
            continue
        head = parts[0]
        if len(parts) == 1 and head.isdigit():
            frames.append(int(head))
            continue
        problem = None
        lst = rows.get(head)
        if lst is None:
            if head in ndof:  # a bone without dofs written anyway
                if len(parts) > 1:
                    problem = f"bone {head!r} has no dof in the ASF but values here"
                else:
                    continue
            else:
                problem = f"unknown bone {head!r} (not in the ASF skeleton)"
        elif len(parts) - 1 != ndof[head]:
            problem = f"{head} has {len(parts) - 1} values, the ASF gives it {ndof[head]} dof; wrong ASF?"
        elif len(lst) >= len(frames):
            problem = f"bone {head!r} appears twice"
        if problem:
            where = f"frame {frames[-1]}" if frames else "before the first frame"
            tail = "; it is the file's last line, so the file looks truncated" if i == last else ""
            raise ParseError(f"{where}: {problem}{tail}")
        lst.append(parts[1:])
    T = len(frames)
    counts = {name: len(lst) for name, lst in rows.items()}
    short = [n for n, c in counts.items() if c != T]
    if short:
        if all(counts[n] == T - 1 for n in short):
            raise ParseError(f"the last frame ({frames[-1]}) is incomplete (no {short[0]}); the file is truncated")
        n = short[0]
        raise ParseError(f"bone {n!r} has values in {counts[n]} of {T} frames")
    values = {}
    for name, lst in rows.items():
        try:
            values[name] = np.array(lst, dtype=np.float64).reshape(T, ndof[name])
        except ValueError:
            raise ParseError(f"non-numeric value for bone {name!r}") from None
    return values, np.array(frames, dtype=np.int64)


def _parse_amc(text: str, skel: AsfSkeleton, fast: bool = True
               ) -> tuple[dict[str, np.ndarray], np.ndarray, bool]:
    """-> ({joint name: (T, ndof) float64 values}, frame numbers (T,), angles in degrees)."""
    ndof = {n: len(d) for n, d in zip(skel.names, skel.dofs)}
    start, degrees = _amc_header(text, skel.angles_in_degrees)
    body = text[start:]
    got = _amc_body_fast(body, ndof) if fast else None
    if got is None or set(got[0]) != {n for n, k in ndof.items() if k}:
        got = _amc_body_slow(body, ndof)
    values, fr = got
    if len(fr) > 1 and not np.all(np.diff(fr) == 1):
        k = int(np.nonzero(np.diff(fr) != 1)[0][0])
        raise ParseError(f"frame numbers jump from {fr[k]} to {fr[k + 1]}; frames are missing or repeated")
    for name, v in values.items():
        if not np.isfinite(v).all():
            raise ParseError(f"non-finite value (nan/inf) for bone {name!r}")
    return values, fr, degrees


def _asf_fk(skel: AsfSkeleton, values: dict[str, np.ndarray], degrees: bool, T: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Acclaim FK -> positions (T, J, 3) file units (root, then bone ends), local rotations
    (T, J, 3, 3) = C M C^-1 in world rest axes."""
    J = len(skel.names)
    P = np.zeros((T, J, 3))
    L = np.zeros((T, J, 3, 3))
    R_local = np.zeros((T, J, 3, 3))
    conv = np.deg2rad if degrees else (lambda v: v)
    for j, name in enumerate(skel.names):
        dof = skel.dofs[j]
        v = values.get(name)
        C = skel.axes[j]
        rot_axes = [d[1] for d in dof if d.startswith("r")]
        if v is not None and rot_axes:
            cols = [k for k, d in enumerate(dof) if d.startswith("r")]
            M = compose_fixed(rot_axes, conv(v[:, cols]))
            local = C @ M @ C.T
        else:
            local = np.broadcast_to(np.eye(3), (T, 3, 3))
        R_local[:, j] = local
        p = skel.parents[j]
        if p < 0:
            t = np.broadcast_to(skel.root_position, (T, 3)).copy()
            if v is not None:
                for k, d in enumerate(dof):
                    if d.startswith("t"):
                        t[:, "xyz".index(d[1])] += v[:, k]
            P[:, j] = t
            L[:, j] = local
        else:
            L[:, j] = L[:, p] @ local
            bone = skel.directions[j] * skel.lengths[j]
            P[:, j] = P[:, p] + L[:, j] @ bone
    return P, R_local


def _find_asf(amc: Path) -> Path:
    asfs = sorted(p for p in amc.parent.iterdir() if p.suffix.lower() == ".asf")
    if len(asfs) == 1:
        return asfs[0]
    subject = amc.stem.split("_")[0]
    for p in asfs:
        if p.stem == subject:
            return p
    if not asfs:
        raise InputError(amc, "no .asf skeleton beside the .amc; pass asf=PATH")
    raise InputError(amc, f"several .asf files beside the .amc and none named {subject}.asf; pass asf=PATH")


def load_amc(path, asf=None, scale: float | None = None, fps: float = 120.0) -> MocapClip:
    """Read an AMC motion with its ASF skeleton and run Acclaim FK -> MocapClip.

    ``asf``: the skeleton file (default: the one .asf beside the .amc, or ``<subject>.asf``
    for CMU names like ``01_02.amc``). ``scale``: metres per length unit (default from the
    ASF units). ``fps``: AMC files do not store it; CMU captures are 120 fps."""
    path = Path(path)
    text = read_text(path, "AMC")
    asf_path = Path(asf) if asf is not None else _find_asf(path)
    skel = load_asf(asf_path, scale=scale)
    try:
        values, frames, degrees = _parse_amc(text, skel)
    except ParseError as e:
        raise InputError(path, str(e)) from None
    T = len(frames)
    P, R = _asf_fk(skel, values, degrees, T)
    rest, _ = _asf_fk(skel, {}, degrees, 1)
    rest = rest[0] - rest[0, 0]
    s = skel.scale
    return MocapClip(
        joint_names=skel.names,
        parents=skel.parents,
        positions=(P * s).astype(np.float32),
        rotations=R.astype(np.float32),
        rest_positions=(rest * s).astype(np.float32),
        fps=float(fps),
        source=str(path),
        skeleton=detect_skeleton(skel.names),
        scale=float(s),
    )

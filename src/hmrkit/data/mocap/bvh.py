"""BVH reader and forward kinematics.

A joint is where its bone starts (the classic hierarchy of offsets); an ``End Site``
becomes a joint named ``<parent>_end`` (e.g. ``Head_end``: the top of the head).

Conventions, pinned by tests with hand-computed values: ``CHANNELS ... Zrotation Yrotation
Xrotation`` gives the local rotation R = Rz @ Ry @ Rx, i.e. the product in the listed order
(rotations about moving axes); any order is accepted. A joint's position is parent position
+ G_parent @ offset, its world rotation G = G_parent @ R. Position channels replace the
OFFSET (root and non-root alike), except a root's that stay nearer zero than its non-zero
OFFSET: those are relative to it and added (``_relative_to_offset``; the CC conversions). ``MocapClip.rotations[:, j]`` is R of joint j: it turns
the bones to j's children.

BVH files do not state their unit; it is guessed from the rest-pose size (metres, cm, mm,
inches or CMU units, whichever makes the skeleton closest to 1.7 m) unless ``scale``
(metres per file unit) is given. The CMU BVH conversions are in CMU ASF units
(1 unit = 0.0254 / 0.45 m). Axes are read as they are.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hmrkit.data.mocap.clip import MocapClip
from hmrkit.data.mocap.reading import CMU_UNIT_M, INCH_M, ParseError, floats, read_text
from hmrkit.data.mocap.rotations import compose_moving
from hmrkit.data.mocap.skeletons import detect_skeleton
from hmrkit.errors import InputError

# Candidate BVH units (metres per file unit) for the guess; see ``load_bvh``.
_BVH_UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": INCH_M, "cmu": CMU_UNIT_M}
_TYPICAL_HEIGHT_M = 1.7


def _nice_fps(fps: float) -> float:
    r = round(fps)
    return float(r) if r > 0 and abs(fps - r) < 0.01 else float(fps)


_CHANNELS = {f"{a}{kind}": (kind, a.lower()) for a in "XYZ" for kind in ("position", "rotation")}


@dataclass
class _BvhJoint:
    name: str
    parent: int
    offset: np.ndarray
    channels: list  # [(kind 'position'|'rotation', axis 'x'|'y'|'z'), ...]
    column: int     # first column of its channels in a MOTION row


def _parse_bvh_hierarchy(text: str) -> list[_BvhJoint]:
    toks = text.replace("{", " { ").replace("}", " } ").split()
    pos = 0

    def nxt(what: str) -> str:
        nonlocal pos
        if pos >= len(toks):
            raise ParseError(f"the HIERARCHY ends early (expected {what}); the file is truncated")
        pos += 1
        return toks[pos - 1]

    def expect(word: str) -> None:
        t = nxt(word)
        if t.upper() != word.upper():
            raise ParseError(f"expected {word!r} in the HIERARCHY, found {t!r}")

    joints: list[_BvhJoint] = []
    names: set[str] = set()
    ncols = 0

    def parse(kind: str, parent: int) -> None:
        nonlocal ncols
        if kind == "end":
            expect("Site")
            base = f"{joints[parent].name}_end"
            name, n = base, 1
            while name in names:
                n += 1
                name = f"{base}{n}"
        else:
            name = nxt("a joint name")
            if name in names:
                raise ParseError(f"joint name {name!r} appears twice")
        names.add(name)
        expect("{")
        expect("OFFSET")
        offset = floats([nxt("3 OFFSET values") for _ in range(3)], f"the OFFSET of {name}")
        index = len(joints)
        joint = _BvhJoint(name, parent, offset, [], ncols)
        joints.append(joint)
        if kind == "end":
            expect("}")
            return
        expect("CHANNELS")
        count = nxt("the channel count")
        if not count.isdigit():
            raise ParseError(f"bad CHANNELS count {count!r} for {name}")
        for _ in range(int(count)):
            ch = nxt("a channel name")
            key = ch[0].upper() + ch[1:].lower()
            if key not in _CHANNELS:
                raise ParseError(f"unknown channel {ch!r} for {name}; expected X/Y/Z position/rotation")
            joint.channels.append(_CHANNELS[key])
        ncols += len(joint.channels)
        while True:
            t = nxt("'}'")
            if t.upper() == "JOINT":
                parse("joint", index)
            elif t.upper() == "END":
                parse("end", index)
            elif t == "}":
                return
            else:
                raise ParseError(f"unexpected {t!r} inside joint {name}")

    expect("HIERARCHY")
    while pos < len(toks):
        t = nxt("ROOT")
        if t.upper() != "ROOT":
            raise ParseError(f"expected ROOT in the HIERARCHY, found {t!r}")
        parse("joint", -1)
    if not joints:
        raise ParseError("no ROOT joint in the HIERARCHY")
    return joints


def _relative_to_offset(channels: np.ndarray, offset: np.ndarray) -> bool:
    """Whether a root's position channels (T, k) are relative to its OFFSET (k,) rather than
    absolute: they stay nearer zero than the offset (Reallusion CC conversions write the hip
    height in the OFFSET and small channel values; most files write absolute positions and
    a zero or rest-position OFFSET)."""
    if not np.any(offset):
        return False
    near_zero = np.median(np.linalg.norm(channels, axis=-1))
    near_offset = np.median(np.linalg.norm(channels - offset, axis=-1))
    return bool(near_zero < near_offset)


def _bvh_fk(joints: list[_BvhJoint], motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """motion (T, C) channel values (degrees, file units) -> positions (T, J, 3) file units,
    local rotations (T, J, 3, 3)."""
    T, J = motion.shape[0], len(joints)
    P = np.zeros((T, J, 3))
    G = np.zeros((T, J, 3, 3))
    R_local = np.zeros((T, J, 3, 3))
    for j, jt in enumerate(joints):
        t = np.broadcast_to(jt.offset, (T, 3)).copy()
        rot_axes, rot_cols = [], []
        pos_axes, pos_cols = [], []
        for c, (kind, ax) in enumerate(jt.channels):
            if kind == "position":
                pos_axes.append("xyz".index(ax))
                pos_cols.append(jt.column + c)
            else:
                rot_axes.append(ax)
                rot_cols.append(jt.column + c)
        if pos_axes:
            ch = motion[:, pos_cols]
            if jt.parent < 0 and _relative_to_offset(ch, jt.offset[pos_axes]):
                ch = ch + jt.offset[pos_axes]
            t[:, pos_axes] = ch
        if rot_axes:
            R = compose_moving(rot_axes, np.deg2rad(motion[:, rot_cols]))
        else:
            R = np.broadcast_to(np.eye(3), (T, 3, 3))
        R_local[:, j] = R
        if jt.parent < 0:
            P[:, j] = t
            G[:, j] = R
        else:
            p = jt.parent
            P[:, j] = P[:, p] + np.einsum("tab,tb->ta", G[:, p], t)
            G[:, j] = G[:, p] @ R
    return P, R_local


def _guess_unit(rest: np.ndarray) -> float:
    """Metres per file unit from a rest pose (J, 3) in file units: the candidate unit that
    brings its largest extent closest (in ratio) to a typical 1.7 m body."""
    size = float(np.ptp(rest, axis=0).max()) if len(rest) > 1 else 0.0
    if size <= 0:
        return 1.0
    return min(_BVH_UNITS.values(), key=lambda s: abs(math.log(size * s / _TYPICAL_HEIGHT_M)))


def load_bvh(path, scale: float | None = None) -> MocapClip:
    """Read a BVH file and run forward kinematics -> MocapClip (positions in metres).

    ``scale``: metres per file length unit; None guesses it (see the module doc; CMU
    BVH conversions come out in CMU units, 0.0254 / 0.45 m)."""
    path = Path(path)
    text = read_text(path, "BVH")
    try:
        m = re.search(r"^\s*MOTION\b", text, flags=re.MULTILINE)
        if not text.lstrip().upper().startswith("HIERARCHY"):
            raise ParseError("does not start with HIERARCHY; not a BVH file")
        if m is None:
            raise ParseError("no MOTION section; the file is truncated or not a BVH file")
        joints = _parse_bvh_hierarchy(text[:m.start()])
        body = text[m.end():]
        mf = re.search(r"Frames\s*:\s*(\S+)", body)
        mt = re.search(r"Frame\s+Time\s*:\s*(\S+)[^\n]*\n?", body)
        if mf is None or mt is None:
            raise ParseError("MOTION lacks 'Frames:' or 'Frame Time:'")
        try:
            n_frames, dt = int(mf.group(1)), float(mt.group(1))
        except ValueError:
            raise ParseError(f"bad 'Frames: {mf.group(1)}' or 'Frame Time: {mt.group(1)}'") from None
        if n_frames <= 0 or not dt > 0:
            raise ParseError(f"Frames: {n_frames}, Frame Time: {dt}; expected positive values")
        ncols = sum(len(j.channels) for j in joints)
        try:
            values = np.array(body[mt.end():].split(), dtype=np.float64)
        except ValueError:
            raise ParseError("non-numeric value in the MOTION data") from None
        if values.size != n_frames * ncols:
            complete = values.size // max(ncols, 1)
            if values.size < n_frames * ncols:
                raise ParseError(f"declares {n_frames} frames but holds {complete} complete ones "
                           f"({ncols} channels each); the file is truncated")
            raise ParseError(f"declares {n_frames} frames of {ncols} channels but holds "
                       f"{values.size} values; frame count or channels are wrong")
        if not np.isfinite(values).all():
            raise ParseError("non-finite value (nan/inf) in the MOTION data")
        motion = values.reshape(n_frames, ncols)
    except ParseError as e:
        raise InputError(path, str(e)) from None

    P, R = _bvh_fk(joints, motion)
    rest, _ = _bvh_fk(joints, np.zeros((1, ncols)))
    rest = rest[0] - rest[0, 0]
    if scale is None:
        scale = _guess_unit(rest)
    names = tuple(j.name for j in joints)
    return MocapClip(
        joint_names=names,
        parents=tuple(j.parent for j in joints),
        positions=(P * scale).astype(np.float32),
        rotations=R.astype(np.float32),
        rest_positions=(rest * scale).astype(np.float32),
        fps=_nice_fps(1.0 / dt),
        source=str(path),
        skeleton=detect_skeleton(names),
        scale=float(scale),
    )

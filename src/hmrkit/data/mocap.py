"""Motion-capture readers (BVH, Acclaim ASF/AMC) and forward kinematics, in numpy.

Written from the format descriptions; no third-party mocap package.

World frame of every clip: Y up, right-handed, metres. CMU data (ASF/AMC and the CMU BVH
conversions) is already Y up with the rest pose facing +z, so the subject's left is +x
in the rest pose; no axis change is applied (other BVH files are read as they are).

Joints. ``MocapClip.joint_names`` are the source's names. Where a joint *is* differs:

- BVH: a joint is where its bone starts (the classic hierarchy of offsets); an ``End Site``
  becomes a joint named ``<parent>_end`` (e.g. ``Head_end``: the top of the head).
- ASF/AMC: joint 0 is ``root``; every other joint is a *bone* of the ASF and its position
  is the bone's END (where its children start). So the knee is the end of ``lfemur``.

``MocapClip.semantic`` maps either to hmrkit's semantic names (``conventions.SMPL24`` and a
few extras), where a joint's position is where its body part starts (the knee is where the
shin starts), through the explicit tables below.

Conventions, pinned by tests with hand-computed values:

- BVH ``CHANNELS ... Zrotation Yrotation Xrotation``: local rotation R = Rz @ Ry @ Rx, i.e.
  the product in the listed order (rotations about moving axes); any order is accepted.
  A joint's position is parent position + G_parent @ offset, its world rotation
  G = G_parent @ R. Position channels replace the OFFSET (root and non-root alike).
- ASF/AMC: ``order``, ``axis`` and ``dof`` list rotations about FIXED axes in the order
  applied, so ``axis 10 20 30 XYZ`` gives C = Rz(30) @ Ry(20) @ Rx(10) and ``dof rx ry rz``
  gives M = Rz @ Ry @ Rx. A bone's world rotation is L = L_parent @ C @ M @ C^-1 and its end
  is the parent's end + L @ (direction * length). The root: L = C @ M @ C^-1 (C from
  ``orientation`` in ``axis`` order; zero in CMU files), position = ``position`` + the AMC
  translation.
- ``rotations[:, j]`` is joint j's rotation relative to its parent, expressed in the
  world-aligned rest axes: G_j = G_parent(j) @ rotations[:, j] (world rotation for the root).
  For BVH it turns the bones to j's children; for ASF it turns bone j itself.

Lengths: ASF ``:units length m`` means lengths are inches / m (CMU: ``length 0.45``), so
metres = value / m * 0.0254. BVH files do not state their unit; it is guessed from the
rest-pose size (metres, cm, mm, inches or CMU units, whichever makes the skeleton closest to
1.7 m) unless ``scale`` (metres per file unit) is given. The CMU BVH conversions are in CMU
ASF units (1 unit = 0.0254 / 0.45 m).

Reading errors a user can cause raise ``hmrkit.errors.InputError`` naming the file.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from hmrkit.conventions import SMPL24
from hmrkit.errors import InputError

__all__ = [
    "MocapClip", "AsfSkeleton", "load_mocap", "load_bvh", "load_amc", "load_asf",
    "subsample", "list_mocap_files", "canonicalize", "mirror", "mirror_names",
    "SEMANTIC_TABLES", "SEMANTIC_NAMES", "CMU_UNIT_M",
]

CMU_UNIT_M = 0.0254 / 0.45  # metres per CMU ASF length unit (':units length 0.45', inches)
_INCH = 0.0254
# Candidate BVH units (metres per file unit) for the guess; see ``load_bvh``.
_BVH_UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": _INCH, "cmu": CMU_UNIT_M}
_TYPICAL_HEIGHT_M = 1.7


# --------------------------------------------------------------------------------------
# Semantic mapping tables: semantic name -> source joints whose positions are averaged.
# --------------------------------------------------------------------------------------

# CMU ASF (Vicon BodyBuilder skeleton). Positions are bone ENDS, so each semantic joint
# is the end of the bone before it: hip = end of lhipjoint (= start of lfemur), knee = end
# of lfemur, ankle = end of ltibia, foot (ball of the foot) = end of lfoot (= start of
# ltoes). Spine: lowerback/upperback/thorax ends ~0.12/0.23/0.35 m above the root, which
# match SMPL's spine1/2/3; the thorax end is also where the clavicles start. neck = end of
# lowerneck (base of the neck, just above the shoulder line), head = end of upperneck
# (skull base / head centre; SMPL's head joint), head_top = end of head. The collar is the
# middle of the clavicle (SMPL's collar joint lies between sternum and shoulder).
# Wrist = end of lradius: the CMU ``lwrist`` segment (0.1 m, a single twist dof ``ry``)
# and ``lhand``/``lfingers`` (0.04 + 0.03 m) are the hand: radius end -> fingers end is
# 0.17 m, a hand's length, while the arm span then matches the height. SMPL's hand joint
# (knuckles, ~8 cm past the wrist) is the end of ``lwrist``.
CMU_ASF_SEMANTIC: dict[str, tuple[str, ...]] = {
    "pelvis": ("root",),
    "mid_hip": ("lhipjoint", "rhipjoint"),
    "left_hip": ("lhipjoint",),
    "right_hip": ("rhipjoint",),
    "spine1": ("lowerback",),
    "left_knee": ("lfemur",),
    "right_knee": ("rfemur",),
    "spine2": ("upperback",),
    "left_ankle": ("ltibia",),
    "right_ankle": ("rtibia",),
    "spine3": ("thorax",),
    "left_foot": ("lfoot",),
    "right_foot": ("rfoot",),
    "left_foot_index": ("ltoes",),
    "right_foot_index": ("rtoes",),
    "neck": ("lowerneck",),
    "left_collar": ("thorax", "lclavicle"),
    "right_collar": ("thorax", "rclavicle"),
    "head": ("upperneck",),
    "head_top": ("head",),
    "left_shoulder": ("lclavicle",),
    "right_shoulder": ("rclavicle",),
    "left_elbow": ("lhumerus",),
    "right_elbow": ("rhumerus",),
    "left_wrist": ("lradius",),
    "right_wrist": ("rradius",),
    "left_hand": ("lwrist",),
    "right_hand": ("rwrist",),
}

# CMU BVH as in ../shared/data/mocap/bvh (subject 131; 31 joints + End Sites). Positions
# are joint (bone start) positions, so names map directly. Quirks of this conversion: the
# ASF thorax and lwrist segments have zero length (``lowerneck`` and the collars sit on
# ``Chest2``, ``lhand`` on ``LeftWrist``), so spine3 coincides with spine2, and the hand
# joint is taken one segment further (``LFingers``).
CMU_BVH_SEMANTIC: dict[str, tuple[str, ...]] = {
    "pelvis": ("Hips",),
    "mid_hip": ("LeftHip", "RightHip"),
    "left_hip": ("LeftHip",),
    "right_hip": ("RightHip",),
    "spine1": ("Chest",),
    "left_knee": ("LeftKnee",),
    "right_knee": ("RightKnee",),
    "spine2": ("Chest2",),
    "left_ankle": ("LeftAnkle",),
    "right_ankle": ("RightAnkle",),
    "spine3": ("lowerneck",),
    "left_foot": ("LeftToe",),
    "right_foot": ("RightToe",),
    "left_foot_index": ("LeftToe_end",),
    "right_foot_index": ("RightToe_end",),
    "neck": ("Neck",),
    "left_collar": ("LeftCollar", "LeftShoulder"),
    "right_collar": ("RightCollar", "RightShoulder"),
    "head": ("Head",),
    "head_top": ("Head_end",),
    "left_shoulder": ("LeftShoulder",),
    "right_shoulder": ("RightShoulder",),
    "left_elbow": ("LeftElbow",),
    "right_elbow": ("RightElbow",),
    "left_wrist": ("LeftWrist",),
    "right_wrist": ("RightWrist",),
    "left_hand": ("LFingers",),
    "right_hand": ("RFingers",),
}

# The widely distributed "MotionBuilder-friendly" CMU BVH conversion (cgspeed): Hips,
# LHipJoint, LeftUpLeg, LeftLeg, LeftFoot, LeftToeBase, LowerBack, Spine, Spine1, Neck,
# Neck1, Head, LeftShoulder (clavicle), LeftArm, LeftForeArm, LeftHand, LeftFingerBase,
# LeftHandIndex1, LThumb. Written from that published hierarchy; the shared data does not
# contain such a file (only the synthetic test exercises this table).
CMU_BVH_CGSPEED_SEMANTIC: dict[str, tuple[str, ...]] = {
    "pelvis": ("Hips",),
    "mid_hip": ("LeftUpLeg", "RightUpLeg"),
    "left_hip": ("LeftUpLeg",),
    "right_hip": ("RightUpLeg",),
    "spine1": ("Spine",),
    "left_knee": ("LeftLeg",),
    "right_knee": ("RightLeg",),
    "spine2": ("Spine1",),
    "left_ankle": ("LeftFoot",),
    "right_ankle": ("RightFoot",),
    "spine3": ("Neck",),
    "left_foot": ("LeftToeBase",),
    "right_foot": ("RightToeBase",),
    "left_foot_index": ("LeftToeBase_end",),
    "right_foot_index": ("RightToeBase_end",),
    "neck": ("Neck1",),
    "left_collar": ("LeftShoulder", "LeftArm"),
    "right_collar": ("RightShoulder", "RightArm"),
    "head": ("Head",),
    "head_top": ("Head_end",),
    "left_shoulder": ("LeftArm",),
    "right_shoulder": ("RightArm",),
    "left_elbow": ("LeftForeArm",),
    "right_elbow": ("RightForeArm",),
    "left_wrist": ("LeftHand",),
    "right_wrist": ("RightHand",),
    "left_hand": ("LeftFingerBase",),
    "right_hand": ("RightFingerBase",),
}

SEMANTIC_TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "cmu_asf": CMU_ASF_SEMANTIC,
    "cmu_bvh": CMU_BVH_SEMANTIC,
    "cmu_bvh_cgspeed": CMU_BVH_CGSPEED_SEMANTIC,
}
# Every semantic name some table provides: SMPL24 plus head_top, *_foot_index, mid_hip.
SEMANTIC_NAMES: tuple[str, ...] = SMPL24 + ("mid_hip", "head_top", "left_foot_index", "right_foot_index")


def _detect_skeleton(joint_names: Sequence[str]) -> str:
    have = set(joint_names)
    for key, table in SEMANTIC_TABLES.items():
        if all(src in have for srcs in table.values() for src in srcs):
            return key
    return "unknown"


# --------------------------------------------------------------------------------------
# The clip
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MocapClip:
    """One motion-capture take after forward kinematics.

    World frame: Y up, right-handed, metres (CMU: the rest pose faces +z, left is +x)."""

    joint_names: tuple[str, ...]  # (J,) source names (BVH End Sites as '<parent>_end')
    parents: tuple[int, ...]      # (J,) parent index, -1 for the root; parents come first
    positions: np.ndarray         # (T, J, 3) float32 metres, world (see module doc)
    rotations: np.ndarray         # (T, J, 3, 3) float32 local rotations (see module doc)
    rest_positions: np.ndarray    # (J, 3) float32 metres, all rotations identity, root at 0
    fps: float                    # frames per second
    source: str                   # the file read (the .amc or .bvh)
    skeleton: str = "unknown"     # key of SEMANTIC_TABLES that fits, or "unknown"
    scale: float = 1.0            # metres per length unit of the file

    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, name: str) -> int:
        """Index of the source joint ``name``."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(f"{self.source}: no joint {name!r}; joints are {list(self.joint_names)}") from None

    def semantic(self, names: Sequence[str] = SMPL24,
                 table: Mapping[str, Sequence[str]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Semantic joints: ((T, len(names), 3) float32 metres, world; (len(names),) bool mask).

        ``names`` are hmrkit semantic names (default ``conventions.SMPL24``; see
        ``SEMANTIC_NAMES``). Names the skeleton lacks get zeros and mask False. ``table``
        overrides the mapping (semantic name -> source joints averaged)."""
        if table is None:
            if self.skeleton not in SEMANTIC_TABLES:
                raise ValueError(
                    f"{self.source}: skeleton not recognised for semantic joints (joints "
                    f"{list(self.joint_names)[:6]}...); pass table={{semantic: (source, ...)}}, "
                    f"known skeletons: {sorted(SEMANTIC_TABLES)}")
            table = SEMANTIC_TABLES[self.skeleton]
        index = {n: i for i, n in enumerate(self.joint_names)}
        out = np.zeros((self.num_frames, len(names), 3), dtype=np.float32)
        mask = np.zeros(len(names), dtype=bool)
        for k, name in enumerate(names):
            srcs = table.get(name)
            if not srcs:
                continue
            missing = [s for s in srcs if s not in index]
            if missing:
                raise KeyError(f"{self.source}: mapping for {name!r} names missing joints {missing}")
            out[:, k] = self.positions[:, [index[s] for s in srcs]].mean(axis=1)
            mask[k] = True
        return out, mask


# --------------------------------------------------------------------------------------
# Rotation helpers (numpy, float64)
# --------------------------------------------------------------------------------------


def _axis_rotmat(axis: str, angle: np.ndarray) -> np.ndarray:
    """angle (...,) radians -> (..., 3, 3): rotation about the x, y or z axis (right hand)."""
    angle = np.asarray(angle, dtype=np.float64)
    i = "xyz".index(axis.lower())
    j, k = (i + 1) % 3, (i + 2) % 3
    c, s = np.cos(angle), np.sin(angle)
    R = np.zeros(angle.shape + (3, 3))
    R[..., i, i] = 1.0
    R[..., j, j] = c
    R[..., k, k] = c
    R[..., j, k] = -s
    R[..., k, j] = s
    return R


def _compose_moving(axes: Sequence[str], angles: np.ndarray) -> np.ndarray:
    """Rotations about moving axes in the listed order: R = R_a0 @ R_a1 @ ... .
    angles (..., n) radians -> (..., 3, 3). (A BVH channel list.)"""
    angles = np.asarray(angles, dtype=np.float64)
    R = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for n, ax in enumerate(axes):
        R = R @ _axis_rotmat(ax, angles[..., n])
    return R


def _compose_fixed(axes: Sequence[str], angles: np.ndarray) -> np.ndarray:
    """Rotations about fixed axes applied in the listed order: R = ... @ R_a1 @ R_a0.
    angles (..., n) radians -> (..., 3, 3). (An Acclaim order/axis/dof list.)"""
    angles = np.asarray(angles, dtype=np.float64)
    return _compose_moving(list(axes)[::-1], angles[..., ::-1])


# --------------------------------------------------------------------------------------
# Reading helpers
# --------------------------------------------------------------------------------------


class _Bad(Exception):
    """A parse problem; turned into InputError(path, message) at the public entry."""


def _read_text(path: Path, kind: str) -> str:
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


def _floats(tokens: Sequence[str], what: str) -> np.ndarray:
    try:
        return np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        raise _Bad(f"non-numeric value in {what}: {' '.join(tokens)[:60]!r}") from None


def _nice_fps(fps: float) -> float:
    r = round(fps)
    return float(r) if r > 0 and abs(fps - r) < 0.01 else float(fps)


# --------------------------------------------------------------------------------------
# BVH
# --------------------------------------------------------------------------------------

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
            raise _Bad(f"the HIERARCHY ends early (expected {what}); the file is truncated")
        pos += 1
        return toks[pos - 1]

    def expect(word: str) -> None:
        t = nxt(word)
        if t.upper() != word.upper():
            raise _Bad(f"expected {word!r} in the HIERARCHY, found {t!r}")

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
                raise _Bad(f"joint name {name!r} appears twice")
        names.add(name)
        expect("{")
        expect("OFFSET")
        offset = _floats([nxt("3 OFFSET values") for _ in range(3)], f"the OFFSET of {name}")
        index = len(joints)
        joint = _BvhJoint(name, parent, offset, [], ncols)
        joints.append(joint)
        if kind == "end":
            expect("}")
            return
        expect("CHANNELS")
        count = nxt("the channel count")
        if not count.isdigit():
            raise _Bad(f"bad CHANNELS count {count!r} for {name}")
        for _ in range(int(count)):
            ch = nxt("a channel name")
            key = ch[0].upper() + ch[1:].lower()
            if key not in _CHANNELS:
                raise _Bad(f"unknown channel {ch!r} for {name}; expected X/Y/Z position/rotation")
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
                raise _Bad(f"unexpected {t!r} inside joint {name}")

    expect("HIERARCHY")
    while pos < len(toks):
        t = nxt("ROOT")
        if t.upper() != "ROOT":
            raise _Bad(f"expected ROOT in the HIERARCHY, found {t!r}")
        parse("joint", -1)
    if not joints:
        raise _Bad("no ROOT joint in the HIERARCHY")
    return joints


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
        for c, (kind, ax) in enumerate(jt.channels):
            if kind == "position":
                t[:, "xyz".index(ax)] = motion[:, jt.column + c]
            else:
                rot_axes.append(ax)
                rot_cols.append(jt.column + c)
        if rot_axes:
            R = _compose_moving(rot_axes, np.deg2rad(motion[:, rot_cols]))
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
    text = _read_text(path, "BVH")
    try:
        m = re.search(r"^\s*MOTION\b", text, flags=re.MULTILINE)
        if not text.lstrip().upper().startswith("HIERARCHY"):
            raise _Bad("does not start with HIERARCHY; not a BVH file")
        if m is None:
            raise _Bad("no MOTION section; the file is truncated or not a BVH file")
        joints = _parse_bvh_hierarchy(text[:m.start()])
        body = text[m.end():]
        mf = re.search(r"Frames\s*:\s*(\S+)", body)
        mt = re.search(r"Frame\s+Time\s*:\s*(\S+)[^\n]*\n?", body)
        if mf is None or mt is None:
            raise _Bad("MOTION lacks 'Frames:' or 'Frame Time:'")
        try:
            n_frames, dt = int(mf.group(1)), float(mt.group(1))
        except ValueError:
            raise _Bad(f"bad 'Frames: {mf.group(1)}' or 'Frame Time: {mt.group(1)}'") from None
        if n_frames <= 0 or not dt > 0:
            raise _Bad(f"Frames: {n_frames}, Frame Time: {dt}; expected positive values")
        ncols = sum(len(j.channels) for j in joints)
        try:
            values = np.array(body[mt.end():].split(), dtype=np.float64)
        except ValueError:
            raise _Bad("non-numeric value in the MOTION data") from None
        if values.size != n_frames * ncols:
            complete = values.size // max(ncols, 1)
            if values.size < n_frames * ncols:
                raise _Bad(f"declares {n_frames} frames but holds {complete} complete ones "
                           f"({ncols} channels each); the file is truncated")
            raise _Bad(f"declares {n_frames} frames of {ncols} channels but holds "
                       f"{values.size} values; frame count or channels are wrong")
        if not np.isfinite(values).all():
            raise _Bad("non-finite value (nan/inf) in the MOTION data")
        motion = values.reshape(n_frames, ncols)
    except _Bad as e:
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
        skeleton=_detect_skeleton(names),
        scale=float(scale),
    )


# --------------------------------------------------------------------------------------
# ASF / AMC
# --------------------------------------------------------------------------------------


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
                    raise _Bad("a :bonedata block has no name")
                if bone["name"] in bones or bone["name"] == "root":
                    raise _Bad(f"bone {bone['name']!r} is defined twice")
                bones[bone["name"]] = bone
                bone = None
            elif bone is None:
                raise _Bad(f"{head!r} outside a begin/end block in :bonedata")
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
        raise _Bad("the file ends inside a :bonedata block; it is truncated")
    if not bones:
        raise _Bad("no :bonedata bones; not an ASF skeleton")
    if not hierarchy:
        raise _Bad("no :hierarchy section (or it is empty); the file is truncated")

    angle_deg = units.get("angle", "deg").lower().startswith("deg")
    to_rad = (lambda v: np.deg2rad(v)) if angle_deg else (lambda v: np.asarray(v, np.float64))
    try:
        length_mult = float(units.get("length", "1.0"))
    except ValueError:
        raise _Bad(f":units length {units.get('length')!r} is not a number") from None
    if scale is None:
        if length_mult <= 0:
            raise _Bad(f":units length {length_mult} must be positive")
        scale = _INCH / length_mult

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
                raise _Bad(f":hierarchy names bone {c!r} that :bonedata does not define")
            if c in names:
                raise _Bad(f"bone {c!r} has two parents in :hierarchy")
            names.append(c)
            parents.append(names.index(p))
            queue.append(c)
    missing = [b for b in bones if b not in names]
    if missing:
        raise _Bad(f"bones {missing} are not connected to the root in :hierarchy")

    J = len(names)
    directions = np.zeros((J, 3))
    lengths = np.zeros(J)
    axes = np.zeros((J, 3, 3))
    dofs: list[tuple[str, ...]] = []
    limits: list[tuple] = []
    # root
    order = [t.lower() for t in root["order"]]
    if sorted(order) != sorted(set(order)) or any(t not in ("tx", "ty", "tz", "rx", "ry", "rz") for t in order):
        raise _Bad(f":root order {root['order']} must list tx ty tz rx ry rz tokens once each")
    dofs.append(tuple(order))
    limits.append(())
    axis_order = root.get("axis", ["XYZ"])[0].lower()
    rpos = _floats(root.get("position", ["0"] * 3)[:3], ":root position")
    rori = _floats(root.get("orientation", ["0"] * 3)[:3], ":root orientation")
    if len(rpos) != 3 or len(rori) != 3 or sorted(axis_order) != ["x", "y", "z"]:
        raise _Bad(":root needs 'axis' (e.g. XYZ), 'position x y z' and 'orientation x y z'")
    axes[0] = _compose_fixed(axis_order, to_rad(rori[["xyz".index(a) for a in axis_order]]))
    for j, name in enumerate(names[1:], start=1):
        b = bones[name]
        if "direction" not in b or "length" not in b:
            raise _Bad(f"bone {name!r} lacks direction or length")
        d = _floats(b["direction"][:3], f"the direction of {name}")
        ln = _floats(b["length"][:1], f"the length of {name}")
        if len(d) != 3 or len(ln) != 1:
            raise _Bad(f"bone {name!r}: bad direction or length")
        norm = np.linalg.norm(d)
        directions[j] = d / norm if norm > 0 else d
        lengths[j] = ln[0]
        ax = b["axis"]
        ax_order = ax[3].lower() if len(ax) > 3 else "xyz"
        ang = _floats(ax[:3], f"the axis of {name}")
        if len(ang) != 3 or sorted(ax_order) != ["x", "y", "z"]:
            raise _Bad(f"bone {name!r}: bad axis {' '.join(ax)!r}; expected 3 angles and an order like XYZ")
        axes[j] = _compose_fixed(ax_order, to_rad(ang[["xyz".index(a) for a in ax_order]]))
        dof = tuple(b["dof"])
        bad = [t for t in dof if t not in ("rx", "ry", "rz")]
        if bad:
            raise _Bad(f"bone {name!r}: dof {bad} not supported (only rx ry rz)")
        if len(set(dof)) != len(dof):
            raise _Bad(f"bone {name!r}: repeated dof {list(dof)}")
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
    text = _read_text(path, "ASF")
    try:
        return _parse_asf(text, scale, str(path))
    except _Bad as e:
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
                raise _Bad(f"unexpected line before the first frame number: {raw.strip()[:60]!r}")
        pos += len(raw)
    raise _Bad("no frames (no frame-number lines); not an AMC file or empty")


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
            raise _Bad(f"{where}: {problem}{tail}")
        lst.append(parts[1:])
    T = len(frames)
    counts = {name: len(lst) for name, lst in rows.items()}
    short = [n for n, c in counts.items() if c != T]
    if short:
        if all(counts[n] == T - 1 for n in short):
            raise _Bad(f"the last frame ({frames[-1]}) is incomplete (no {short[0]}); the file is truncated")
        n = short[0]
        raise _Bad(f"bone {n!r} has values in {counts[n]} of {T} frames")
    values = {}
    for name, lst in rows.items():
        try:
            values[name] = np.array(lst, dtype=np.float64).reshape(T, ndof[name])
        except ValueError:
            raise _Bad(f"non-numeric value for bone {name!r}") from None
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
        raise _Bad(f"frame numbers jump from {fr[k]} to {fr[k + 1]}; frames are missing or repeated")
    for name, v in values.items():
        if not np.isfinite(v).all():
            raise _Bad(f"non-finite value (nan/inf) for bone {name!r}")
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
            M = _compose_fixed(rot_axes, conv(v[:, cols]))
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
    text = _read_text(path, "AMC")
    asf_path = Path(asf) if asf is not None else _find_asf(path)
    skel = load_asf(asf_path, scale=scale)
    try:
        values, frames, degrees = _parse_amc(text, skel)
    except _Bad as e:
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
        skeleton=_detect_skeleton(skel.names),
        scale=float(s),
    )


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


# --------------------------------------------------------------------------------------
# Utilities
# --------------------------------------------------------------------------------------


def subsample(clip: MocapClip, fps: float) -> MocapClip:
    """The clip at a lower frame rate ``fps``, taking the nearest source frame for each
    output time k / fps (exact striding when fps divides clip.fps)."""
    if not fps > 0 or fps > clip.fps * (1 + 1e-9):
        raise ValueError(f"subsample: fps must be in (0, {clip.fps}], got {fps}")
    T = clip.num_frames
    n = int(math.floor((T - 1) * fps / clip.fps + 1e-9)) + 1
    idx = np.minimum(np.round(np.arange(n) * (clip.fps / fps)).astype(np.int64), T - 1)
    return replace(clip, positions=clip.positions[idx], rotations=clip.rotations[idx], fps=float(fps))


def _pick(positions: np.ndarray, names: Sequence[str], mask: np.ndarray, name: str):
    if name in names:
        i = list(names).index(name)
        if mask[i]:
            return positions[..., i, :]
    return None


def canonicalize(positions: np.ndarray, mask: np.ndarray | None = None,
                 names: Sequence[str] = SMPL24, per_frame: bool = True) -> np.ndarray:
    """Remove the global translation and heading: (..., K, 3) metres, Y up -> (..., K, 3).

    The pelvis (or the middle of the hips) goes to the origin, and a rotation about +y
    turns the subject to face +z, the facing being taken from the hips and shoulders
    (left = +x, forward = left x up). ``mask`` (K,) says which of ``names`` are valid;
    left_hip and right_hip are required. ``per_frame=False``: positions are (T, K, 3) and
    frame 0's transform is applied to all frames (keeps the trajectory)."""
    positions = np.asarray(positions)
    names = list(names)
    if positions.ndim < 2 or positions.shape[-1] != 3 or positions.shape[-2] != len(names):
        raise ValueError(f"canonicalize: expected (..., {len(names)}, 3), got {positions.shape}")
    mask = np.ones(len(names), bool) if mask is None else np.asarray(mask, bool)
    get = lambda n: _pick(positions, names, mask, n)  # noqa: E731
    lh, rh = get("left_hip"), get("right_hip")
    if lh is None or rh is None:
        raise ValueError("canonicalize: needs valid left_hip and right_hip")
    pelvis = get("pelvis")
    if pelvis is None:
        pelvis = 0.5 * (lh + rh)
    left = (lh - rh).astype(np.float64)
    ls, rs = get("left_shoulder"), get("right_shoulder")
    if ls is not None and rs is not None:
        left = left + (ls - rs)
    if not per_frame:
        if positions.ndim != 3:
            raise ValueError(f"canonicalize(per_frame=False): expected (T, K, 3), got {positions.shape}")
        left, pelvis = left[:1], pelvis[:1]
    # forward = left x up = (-left_z, 0, left_x); heading angle about +y from +z.
    fx, fz = -left[..., 2], left[..., 0]
    theta = np.where(np.hypot(fx, fz) > 1e-9, np.arctan2(fx, fz), 0.0)
    R = _axis_rotmat("y", -theta)  # (..., 3, 3)
    centred = positions - pelvis[..., None, :]
    out = np.einsum("...ab,...kb->...ka", R, centred)
    return out.astype(positions.dtype if positions.dtype.kind == "f" else np.float64)


def mirror_names(names: Sequence[str]) -> list[int]:
    """flip[k] = index of the left/right counterpart of names[k] (k itself if central).

    Knows 'left'/'right' anywhere in a name (any case), and one-letter l/r/L/R prefixes
    when the swapped name exists (CMU: lfemur/rfemur, LHipJoint/RHipJoint)."""
    names = list(names)
    index = {n: i for i, n in enumerate(names)}
    flip = []
    for n in names:
        cands = []
        for a, b in (("left", "right"), ("Left", "Right"), ("LEFT", "RIGHT")):
            if a in n:
                cands.append(n.replace(a, b))
            if b in n:
                cands.append(n.replace(b, a))
        if len(n) > 1 and n[0] in "lrLR":
            cands.append({"l": "r", "r": "l", "L": "R", "R": "L"}[n[0]] + n[1:])
        flip.append(next((index[c] for c in cands if c in index), index[n]))
    for k, f in enumerate(flip):
        if flip[f] != k:
            raise ValueError(f"mirror: {names[k]!r} -> {names[f]!r} is not a left/right pair")
    return flip


def mirror(positions: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Mirror a pose (..., K, 3) through the x = 0 plane (x -> -x) and swap left/right
    joints, so the result is again a pose in the ``names`` order (Y-up world, +z forward)."""
    positions = np.asarray(positions)
    if positions.shape[-2:] != (len(names), 3):
        raise ValueError(f"mirror: expected (..., {len(names)}, 3), got {positions.shape}")
    out = positions[..., mirror_names(names), :].copy()
    out[..., 0] = -out[..., 0]
    return out

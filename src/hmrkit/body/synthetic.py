"""Synthetic SMPL / SMPL-H / SMPL-X model files in the official formats, for tests.

The real files are licensed and absent from CI; these stand-ins have the official keys,
array shapes, dtypes, vertex counts and kinematic trees, so both hmrkit and the smplx
package load them. The body itself is made up: a T-posed figure of tubes (one per joint,
from the joint to its main child) in SMPL's frame (y up, facing +z, left at +x), with
random small blend shapes. The vertices that the official topologies use as keypoints
(nose, eyes, ears, toes, heels, fingertips; ``smpl.VERTEX_IDS``) are placed where those
body points are, so keypoint regressors give sensible positions.
"""

from __future__ import annotations

import os
import pickle
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from hmrkit.body.smpl import JOINT_NAMES, NUM_VERTICES, PARENTS, VERTEX_IDS

# Rest joints of the body, metres, SMPL frame (roughly SMPL's neutral T-pose).
_BODY_REST = {
    "pelvis": (0.0, -0.22, 0.02), "left_hip": (0.06, -0.31, 0.01), "right_hip": (-0.06, -0.31, 0.01),
    "spine1": (0.0, -0.11, -0.01), "left_knee": (0.10, -0.69, 0.01), "right_knee": (-0.10, -0.69, 0.01),
    "spine2": (0.0, 0.03, 0.01), "left_ankle": (0.09, -1.09, -0.03), "right_ankle": (-0.09, -1.09, -0.03),
    "spine3": (0.0, 0.08, 0.03), "left_foot": (0.12, -1.15, 0.09), "right_foot": (-0.12, -1.15, 0.09),
    "neck": (0.0, 0.29, -0.01), "left_collar": (0.08, 0.19, 0.0), "right_collar": (-0.08, 0.19, 0.0),
    "head": (0.0, 0.36, 0.04), "left_shoulder": (0.17, 0.23, -0.01), "right_shoulder": (-0.17, 0.23, -0.01),
    "left_elbow": (0.43, 0.21, -0.03), "right_elbow": (-0.43, 0.21, -0.03),
    "left_wrist": (0.68, 0.22, -0.03), "right_wrist": (-0.68, 0.22, -0.03),
    "left_hand": (0.77, 0.21, -0.04), "right_hand": (-0.77, 0.21, -0.04),
    "jaw": (0.0, 0.33, 0.06), "left_eye_smplx": (0.032, 0.44, 0.115), "right_eye_smplx": (-0.032, 0.44, 0.115),
}
# Left-hand finger bases (relative to the wrist), direction and phalanx lengths; the palm
# faces down, fingers point +x, the thumb forward (+z).
_FINGER = {
    "index": ((0.085, -0.005, 0.025), (1.0, 0.0, 0.0), (0.035, 0.025, 0.02)),
    "middle": ((0.09, -0.005, 0.005), (1.0, 0.0, 0.0), (0.04, 0.028, 0.022)),
    "pinky": ((0.075, -0.012, -0.033), (1.0, 0.0, -0.1), (0.028, 0.02, 0.018)),
    "ring": ((0.085, -0.008, -0.015), (1.0, 0.0, -0.05), (0.036, 0.026, 0.02)),
    "thumb": ((0.025, -0.015, 0.03), (0.6, -0.1, 0.8), (0.035, 0.03, 0.025)),
}
_RADIUS = {
    "pelvis": 0.14, "spine1": 0.13, "spine2": 0.13, "spine3": 0.14, "neck": 0.055, "head": 0.095,
    "hip": 0.08, "knee": 0.055, "ankle": 0.045, "foot": 0.04, "collar": 0.05, "shoulder": 0.05,
    "elbow": 0.04, "wrist": 0.035, "hand": 0.03, "jaw": 0.03, "eye": 0.012,
}
_MAIN_CHILD = {
    "pelvis": "spine1", "spine1": "spine2", "spine2": "spine3", "spine3": "neck", "neck": "head",
    "hip": "knee", "knee": "ankle", "ankle": "foot", "collar": "shoulder", "shoulder": "elbow",
    "elbow": "wrist",
}
_SEGMENTS = 12  # vertices per tube ring


def _base(name: str) -> str:
    for side in ("left_", "right_"):
        if name.startswith(side):
            name = name[len(side):]
    return name.replace("_smplx", "")


def _rest_joints(kind: str, rng) -> np.ndarray:
    names = JOINT_NAMES[kind]
    J = np.zeros((len(names), 3))
    for i, n in enumerate(names):
        if n in _BODY_REST:
            J[i] = _BODY_REST[n]
            continue
        side = n.split("_")[0]
        finger, k = n[len(side) + 1:-1], int(n[-1])
        base, direction, lengths = (np.array(a, dtype=float) for a in _FINGER[finger])
        direction /= np.linalg.norm(direction)
        mirror = np.array([1.0 if side == "left" else -1.0, 1.0, 1.0])
        J[i] = np.array(_BODY_REST[f"{side}_wrist"]) + (base + direction * sum(lengths[: k - 1])) * mirror
    return J + rng.normal(0.0, 0.002, J.shape)  # a little asymmetry


def _segments(kind: str, J: np.ndarray):
    """Per joint: (start, end, radius) of its tube."""
    names = JOINT_NAMES[kind]
    index = {n: i for i, n in enumerate(names)}
    out = []
    for i, n in enumerate(names):
        b = _base(n)
        side = n.split("_")[0] if n.startswith(("left_", "right_")) else ""
        pre = f"{side}_" if side else ""
        sign = -1.0 if side == "right" else 1.0
        radius = _RADIUS.get(b, 0.009 if not b.startswith("thumb") else 0.011)
        child = None
        if b in _MAIN_CHILD:
            child = pre + _MAIN_CHILD[b] if pre + _MAIN_CHILD[b] in index else _MAIN_CHILD[b]
        elif b == "wrist":
            child = f"{pre}hand" if kind == "smpl" else f"{pre}middle1"
        elif b[:-1] in _FINGER and b[-1] in "12":
            child = f"{pre}{b[:-1]}{int(b[-1]) + 1}"
        if child is not None:
            end = J[index[child]]
        elif b == "head":
            end = J[i] + (0.0, 0.2, 0.0)
        elif b == "foot":
            end = J[i] + (0.0, -0.01, 0.09)
        elif b == "hand":
            end = J[i] + (sign * 0.09, 0.0, 0.0)
        elif b == "jaw":
            end = J[i] + (0.0, -0.03, 0.07)
        elif b == "eye":
            end = J[i] + (0.0, 0.0, 0.012)
        else:  # a finger tip segment: continue the finger
            d = J[i] - J[index[f"{pre}{b[:-1]}2"]]
            end = J[i] + d / np.linalg.norm(d) * _FINGER[b[:-1]][2][2]
        out.append((J[i], np.asarray(end, dtype=float), radius))
    return out


def _landmarks(kind: str, J: np.ndarray):
    """{vertex id: (position, joint index)} for the topology's keypoint vertices."""
    names = JOINT_NAMES[kind]
    index = {n: i for i, n in enumerate(names)}
    head = J[index["head"]]
    out = {}
    vid = VERTEX_IDS[kind]
    out[vid["nose"]] = (head + (0.0, 0.05, 0.1), index["head"])
    for side, s in (("left", 1.0), ("right", -1.0)):
        out[vid[f"{side}_eye"]] = (head + (s * 0.032, 0.08, 0.085), index["head"])
        out[vid[f"{side}_ear"]] = (head + (s * 0.075, 0.06, 0.0), index["head"])
        foot, ankle = J[index[f"{side}_foot"]], J[index[f"{side}_ankle"]]
        out[vid[f"{side}_big_toe"]] = (foot + (-s * 0.02, -0.03, 0.07), index[f"{side}_foot"])
        out[vid[f"{side}_small_toe"]] = (foot + (s * 0.03, -0.03, 0.05), index[f"{side}_foot"])
        out[vid[f"{side}_heel"]] = (ankle + (0.0, -0.07, -0.05), index[f"{side}_ankle"])
        for finger in _FINGER:
            if kind == "smpl":
                base, direction, lengths = (np.array(a, dtype=float) for a in _FINGER[finger])
                base, direction = base * (s, 1, 1), direction * (s, 1, 1)
                tip = J[index[f"{side}_wrist"]] + base + direction / np.linalg.norm(direction) * sum(lengths)
                out[vid[f"{side}_{finger}_tip"]] = (tip, index[f"{side}_hand"])
            else:
                j3, j2 = J[index[f"{side}_{finger}3"]], J[index[f"{side}_{finger}2"]]
                d = (j3 - j2) / np.linalg.norm(j3 - j2)
                out[vid[f"{side}_{finger}_tip"]] = (j3 + d * _FINGER[finger][2][2], index[f"{side}_{finger}3"])
    return out


def _orthonormal_frame(d):
    d = d / np.linalg.norm(d)
    a = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(d, a)
    u /= np.linalg.norm(u)
    return u, np.cross(d, u)


def _build(kind: str, seed: int, num_shape: int):
    rng = np.random.default_rng(seed)
    V, N = NUM_VERTICES[kind], len(PARENTS[kind])
    parents = PARENTS[kind]
    J = _rest_joints(kind, rng)
    segs = _segments(kind, J)
    marks = _landmarks(kind, J)

    verts = np.zeros((V, 3))
    label = np.zeros(V, dtype=np.int64)
    along = np.zeros(V)  # position along its tube in [0, 1] (landmarks: 0.5)
    free = np.setdiff1d(np.arange(V), np.fromiter(marks, dtype=np.int64))

    # rings per tube, proportional to its area
    area = np.array([max(np.linalg.norm(e - s), 0.01) * r for s, e, r in segs])
    rings = np.maximum(2, np.floor(area / area.sum() * len(free) / _SEGMENTS)).astype(int)
    while rings.sum() * _SEGMENTS > len(free):
        rings[rings.argmax()] -= 1
    faces, cursor = [], 0
    head_faces = []
    for j, ((start, end, radius), n) in enumerate(zip(segs, rings)):
        u, w = _orthonormal_frame(end - start)
        ids = free[cursor: cursor + n * _SEGMENTS].reshape(n, _SEGMENTS)
        cursor += n * _SEGMENTS
        t = np.linspace(0.0, 1.0, n)
        ang = 2 * np.pi * (np.arange(_SEGMENTS) + rng.uniform(-0.1, 0.1, (n, _SEGMENTS))) / _SEGMENTS
        rad = radius * (1.0 + rng.normal(0.0, 0.04, (n, _SEGMENTS)))
        p = (start + t[:, None] * (end - start))[:, None] + rad[..., None] * (
            np.cos(ang)[..., None] * u + np.sin(ang)[..., None] * w)
        verts[ids] = p
        label[ids] = j
        along[ids] = t[:, None]
        for r in range(n - 1):
            for s in range(_SEGMENTS):
                a, b = ids[r, s], ids[r, (s + 1) % _SEGMENTS]
                c, d = ids[r + 1, s], ids[r + 1, (s + 1) % _SEGMENTS]
                faces += [(a, b, d), (a, d, c)]
                if JOINT_NAMES[kind][j] == "head":
                    head_faces += [len(faces) - 2, len(faces) - 1]
    # leftover vertices (fewer than a ring): on the torso's axis
    rest = free[cursor:]
    verts[rest] = J[0] + np.linspace(0.0, 0.1, len(rest))[:, None] * (0, 1, 0)
    for v, (pos, j) in marks.items():
        verts[v], label[v], along[v] = pos, j, 0.5

    # skinning: own joint, blended with the parent near the start and the child near the end
    weights = np.zeros((V, N))
    weights[np.arange(V), label] = 1.0
    first_child = {}
    for k in range(N - 1, 0, -1):
        first_child[parents[k]] = k
    for v in range(V):
        j = label[v]
        if along[v] < 0.25 and parents[j] >= 0:
            x = 0.5 * (0.25 - along[v]) / 0.25
            weights[v, j] -= x
            weights[v, parents[j]] += x
        elif along[v] > 0.75 and j in first_child:
            x = 0.3 * (along[v] - 0.75) / 0.25
            weights[v, j] -= x
            weights[v, first_child[j]] += x

    # joint regressor: each joint from its tube's first ring (around the joint), rows sum to 1
    J_regressor = np.zeros((N, V))
    start_ring = np.zeros(N, dtype=np.int64)
    cursor = 0
    for j, n in enumerate(rings):
        ring = free[cursor: cursor + _SEGMENTS]
        cursor += n * _SEGMENTS
        w = rng.uniform(0.5, 1.5, _SEGMENTS)
        J_regressor[j, ring] = w / w.sum()
        start_ring[j] = ring[0]

    # shape blend shapes: stature, girth, then random smooth per-joint offsets
    centred = verts - J[0]
    joint_dirs = rng.normal(0.0, 0.01, (num_shape, N, 3))
    shapedirs = (weights @ joint_dirs.transpose(1, 0, 2).reshape(N, -1)).reshape(V, num_shape, 3).transpose(0, 2, 1)
    shapedirs += 0.0005 * rng.standard_normal((V, 3, num_shape), dtype=np.float32)
    shapedirs[:, :, 0] += 0.03 * centred
    if num_shape > 1:
        radial = verts - np.stack([s + np.clip(((verts - s) @ (e - s)) / max((e - s) @ (e - s), 1e-9), 0, 1)[:, None]
                                   * (e - s) for s, e, _ in segs])[label, np.arange(V)]
        shapedirs[:, :, 1] += 0.15 * radial
    num_expression = 0
    if kind == "smplx":  # expression components act on the head only
        num_expression = num_shape // 2
        head = np.isin(label, [JOINT_NAMES[kind].index(n) for n in ("head", "jaw")])
        shapedirs[:, :, -num_expression:] = 0.0
        shapedirs[head, :, -num_expression:] = rng.normal(0.0, 0.004, (head.sum(), 3, num_expression))

    # pose blend shapes: each vertex responds to its own joint's and its parent's rotation
    posedirs = np.zeros((V, 3, (N - 1) * 9))
    for j in range(1, N):
        for k in (j, parents[j]):
            if k < 1:
                continue
            idx = np.nonzero(label == j)[0]
            posedirs[idx, :, 9 * (k - 1): 9 * k] = rng.normal(0.0, 0.003, (len(idx), 3, 9))

    kintree = np.stack([np.array(parents, dtype=np.int64), np.arange(N)])
    kintree[0, 0] = 4294967295  # the official files' "no parent"
    data = {
        "v_template": verts,
        "f": np.asarray(faces, dtype=np.int64),
        "J_regressor": J_regressor,
        "kintree_table": kintree,
        "J": J_regressor @ verts,
        "weights": weights,
        "posedirs": posedirs,
        "shapedirs": shapedirs,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    if kind != "smpl":
        for s in ("l", "r"):
            q, _ = np.linalg.qr(rng.normal(size=(45, 45)))
            data[f"hands_components{s}"] = q
            data[f"hands_mean{s}"] = rng.normal(0.0, 0.1, 45)
    if kind == "smplx":
        hf = np.asarray(head_faces)
        bary = rng.uniform(0.1, 1.0, (51, 3))
        data["lmk_faces_idx"] = rng.choice(hf, 51).astype(np.int64)
        data["lmk_bary_coords"] = bary / bary.sum(1, keepdims=True)
        bary = rng.uniform(0.1, 1.0, (79, 17, 3))
        data["dynamic_lmk_faces_idx"] = rng.choice(hf, (79, 17)).astype(np.int64)
        data["dynamic_lmk_bary_coords"] = bary / bary.sum(-1, keepdims=True)
    return data


class _FakeCh:
    """What a pickled chumpy ``Ch`` looks like: its array in the state under 'x'."""

    def __init__(self, x):
        self.x = np.asarray(x, dtype=np.float64)
        self._dirty_vars = set()
        self._itr = None
        self._make_dense = False
        self._make_sparse = False
        self._depends_on_deps = {}

    def __array__(self, dtype=None, copy=None):
        return self.x if dtype is None else self.x.astype(dtype)

    @property
    def shape(self):
        return self.x.shape

    def __getitem__(self, item):
        return self.x[item]


@contextmanager
def fake_chumpy():
    """Install a stub ``chumpy.ch.Ch`` (``_FakeCh``) in sys.modules for the duration, so
    chumpy-style pickles can be written (and read by code that imports chumpy's classes)."""
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    pkg, mod = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    Ch = type("Ch", (_FakeCh,), {"__module__": "chumpy.ch", "__qualname__": "Ch"})
    mod.Ch, pkg.ch, pkg.Ch = Ch, mod, Ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, mod
    try:
        yield Ch
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


_OFFICIAL_NAME = {"smpl": "SMPL_NEUTRAL", "smplh": "SMPLH_NEUTRAL", "smplx": "SMPLX_NEUTRAL"}
_DEFAULT_SHAPE = {"smpl": 10, "smplh": 16, "smplx": 20}


def write_synthetic_model(path, kind: str = "smpl", fmt: str = "pkl", seed: int = 0,
                          chumpy_style: bool = False, num_shape: int | None = None) -> Path:
    """Write a synthetic model file of ``kind`` (smpl | smplh | smplx) in the official
    format ``fmt`` (pkl | npz) and return its path.

    path: the file to write, or an existing folder (then the official neutral name, e.g.
    ``SMPL_NEUTRAL.pkl``, inside it). num_shape: shapedirs columns (default as the official
    files: 10 SMPL, 16 SMPL-H, 20 SMPL-X = 10 betas + 10 expression; 400 for SMPL-X v1.1).
    chumpy_style (pkl only): store the dense arrays as pickled ``chumpy.ch.Ch`` objects, as
    the official SMPL pickles do. pkl files hold float64 arrays and a scipy sparse
    J_regressor; npz files float32 arrays and a dense J_regressor."""
    if kind not in NUM_VERTICES:
        raise ValueError(f"unknown kind {kind!r}; choose from {list(NUM_VERTICES)}")
    if fmt not in ("pkl", "npz"):
        raise ValueError(f"unknown format {fmt!r}; choose from ['pkl', 'npz']")
    if chumpy_style and fmt != "pkl":
        raise ValueError("chumpy_style needs fmt='pkl'")
    path = Path(path)
    if path.is_dir():
        path = path / f"{_OFFICIAL_NAME[kind]}.{fmt}"
    data = _build(kind, seed, num_shape or _DEFAULT_SHAPE[kind])
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "npz":
        arrays = {k: (v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v)
                  for k, v in data.items()}
        arrays["f"] = arrays["f"].astype(np.int32)
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    else:
        import scipy.sparse

        data["f"] = data["f"].astype(np.uint32)
        data["J_regressor"] = scipy.sparse.csc_matrix(data["J_regressor"])
        if chumpy_style:
            with fake_chumpy() as Ch:
                for k in ("v_template", "shapedirs", "posedirs", "weights", "J"):
                    data[k] = Ch(data[k])
                with open(tmp, "wb") as fh:
                    pickle.dump(data, fh, protocol=2)
        else:
            with open(tmp, "wb") as fh:
                pickle.dump(data, fh, protocol=2)
    os.replace(tmp, path)
    return path

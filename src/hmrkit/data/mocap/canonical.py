"""Pose utilities on semantic joints: removing translation and heading, mirroring."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hmrkit.conventions import SMPL24
from hmrkit.data.mocap.rotations import axis_rotmat


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
    R = axis_rotmat("y", -theta)  # (..., 3, 3)
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

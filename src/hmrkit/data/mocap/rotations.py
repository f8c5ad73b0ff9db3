"""Rotations about the coordinate axes and their compositions (numpy, float64), as the
mocap formats list them: BVH channels (moving axes), Acclaim order/axis/dof (fixed axes)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def axis_rotmat(axis: str, angle: np.ndarray) -> np.ndarray:
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


def compose_moving(axes: Sequence[str], angles: np.ndarray) -> np.ndarray:
    """Rotations about moving axes in the listed order: R = R_a0 @ R_a1 @ ... .
    angles (..., n) radians -> (..., 3, 3). (A BVH channel list.)"""
    angles = np.asarray(angles, dtype=np.float64)
    R = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for n, ax in enumerate(axes):
        R = R @ axis_rotmat(ax, angles[..., n])
    return R


def compose_fixed(axes: Sequence[str], angles: np.ndarray) -> np.ndarray:
    """Rotations about fixed axes applied in the listed order: R = ... @ R_a1 @ R_a0.
    angles (..., n) radians -> (..., 3, 3). (An Acclaim order/axis/dof list.)"""
    angles = np.asarray(angles, dtype=np.float64)
    return compose_moving(list(axes)[::-1], angles[..., ::-1])

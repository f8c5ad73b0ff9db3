"""Rotation conversions: thin wrappers over roma with the conventions named.

Every function accepts any number of leading batch dimensions.

6D layout (``*_6d``): the first two *columns* of the rotation matrix, column-major,
``x = (R00, R10, R20, R01, R11, R21)``. (HMR/SPIN's code reads a (3, 2) row-major
reshape instead, PyTorch3D the first two rows; weights are not interchangeable.)
Axis-angle (``*_aa``): rotation vector, axis times angle in radians.
"""

from __future__ import annotations

import roma
import torch
from torch import Tensor


def rotmat_from_6d(x: Tensor) -> Tensor:
    """(..., 6) -> (..., 3, 3). x holds the first two columns of R, column-major;
    orthonormalised by Gram-Schmidt (the first column keeps its direction)."""
    if x.shape[-1] != 6:
        raise ValueError(f"rotmat_from_6d: expected (..., 6), got {tuple(x.shape)}")
    cols = x.reshape(*x.shape[:-1], 2, 3).transpose(-1, -2)  # (..., 3, 2)
    return roma.special_gramschmidt(cols)


def rotmat_to_6d(R: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns of R, column-major."""
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"rotmat_to_6d: expected (..., 3, 3), got {tuple(R.shape)}")
    return R[..., :, :2].transpose(-1, -2).reshape(*R.shape[:-2], 6)


def rotmat_from_aa(aa: Tensor) -> Tensor:
    """(..., 3) rotation vector (radians) -> (..., 3, 3)."""
    return roma.rotvec_to_rotmat(aa)


def rotmat_to_aa(R: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 3) rotation vector, angle in [0, pi]."""
    return roma.rotmat_to_rotvec(R)


def rotmat_power(R: Tensor, w) -> Tensor:
    """R^w: the rotation about R's axis by w times its angle.

    R (..., 3, 3); w a float or a tensor broadcasting to R's batch shape. Differentiable,
    also at the identity."""
    aa = roma.rotmat_to_rotvec(R)
    if isinstance(w, Tensor):
        w = w[..., None]
    return roma.rotvec_to_rotmat(aa * w)


def geodesic_angle(R1: Tensor, R2: Tensor) -> Tensor:
    """(..., 3, 3), (..., 3, 3) -> (...,) angle of R1^T R2 in radians."""
    return roma.rotmat_geodesic_distance(R1, R2)


# Mirroring through the body's sagittal plane: x -> -x in the rest frame (left <-> right).
_MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))


def mirror_rotmat(R: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 3, 3): the rotation seen in a mirror x -> -x, M R M with
    M = diag(-1, 1, 1) (axis-angle (a, b, c) -> (a, -b, -c)). A left joint's mirrored
    rotation is what its right twin does in the mirrored pose; an involution."""
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"mirror_rotmat: expected (..., 3, 3), got {tuple(R.shape)}")
    M = _MIRROR.to(R)
    return M @ R @ M


def mirror_points(X: Tensor) -> Tensor:
    """(..., 3) -> (..., 3): points mirrored x -> -x (the frame of ``mirror_rotmat``)."""
    return X * _MIRROR.diagonal().to(X)

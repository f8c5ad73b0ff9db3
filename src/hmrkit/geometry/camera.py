"""Perspective cameras, OpenCV frame (x right, y down, z forward), metres and pixels."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def transform_points(points: Tensor, R: Tensor, t: Tensor) -> Tensor:
    """points (..., N, 3); R (..., 3, 3); t (..., 3) -> R @ p + t, (..., N, 3)."""
    return points @ R.transpose(-1, -2) + t[..., None, :]


def project(points_cam: Tensor, K: Tensor, eps: float = 1e-6) -> Tensor:
    """points_cam (..., N, 3) metres, OpenCV frame; K (..., 3, 3) -> (..., N, 2) pixels.

    Depths are clamped to eps so points behind the camera do not produce infinities."""
    z = points_cam[..., 2:3].clamp(min=eps)
    xy = points_cam[..., :2] / z
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    cx, cy = K[..., 0, 2, None], K[..., 1, 2, None]
    skew = K[..., 0, 1, None]
    u = fx * xy[..., 0] + skew * xy[..., 1] + cx
    v = fy * xy[..., 1] + cy
    return torch.stack([u, v], dim=-1)


def _check_size(height, width) -> None:
    if not (math.isfinite(height) and math.isfinite(width) and height > 0 and width > 0):
        raise ValueError(f"image size must be positive (height, width) px, got ({height}, {width})")


def intrinsics_from_fov(height: int, width: int, fov_deg: float, dtype=torch.float32) -> Tensor:
    """K (3, 3) for an image of (height, width) px whose larger side spans fov_deg degrees;
    principal point at the image centre. ValueError unless 0 < fov_deg < 180 and the size
    is positive."""
    _check_size(height, width)
    if not (math.isfinite(fov_deg) and 0.0 < fov_deg < 180.0):
        raise ValueError(f"field of view must be between 0 and 180 degrees (exclusive), got {fov_deg}")
    f = 0.5 * max(height, width) / math.tan(math.radians(fov_deg) / 2)
    return torch.tensor(
        [[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]], dtype=dtype
    )


# A 55-degree field of view over the larger image side: a typical phone/consumer camera
# (CameraHMR and others default to about this when EXIF is missing).
DEFAULT_FOV_DEG = 55.0


def default_intrinsics(height: int, width: int, focal: float | None = None, fov_deg: float | None = None,
                       dtype=torch.float32) -> Tensor:
    """K (3, 3): from a focal length in pixels if given, else from a field of view
    (default DEFAULT_FOV_DEG over the larger side). ValueError for a focal length that is
    not a positive finite number, a field of view outside (0, 180) or a non-positive size."""
    if focal is not None:
        _check_size(height, width)
        if not (math.isfinite(focal) and focal > 0):
            raise ValueError(f"focal length must be a positive number of pixels, got {focal}")
        return torch.tensor(
            [[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]], dtype=dtype
        )
    return intrinsics_from_fov(height, width, fov_deg if fov_deg is not None else DEFAULT_FOV_DEG, dtype)


def intrinsics_problem(K) -> str | None:
    """Why K cannot be a pinhole camera's intrinsics, or None when it can.

    K: (3, 3) pixels, numpy or torch. A camera matrix is [[fx, s, cx], [0, fy, cy],
    [0, 0, 1]] with finite entries and fx, fy > 0 (so never singular); ``project`` reads it
    that way. The answer is one short phrase (e.g. "all zeros", "focal lengths must be
    positive, got fx=-500, fy=-500") for a message about the file it came from."""
    if isinstance(K, Tensor):
        K = K.detach().cpu().numpy()
    try:
        K = np.asarray(K, dtype=np.float64)
    except (TypeError, ValueError):
        return "not numbers"
    if K.shape != (3, 3):
        return f"expected shape (3, 3), got {K.shape}"
    if not np.isfinite(K).all():
        return "contains NaN or infinity"
    if not K.any():
        return "all zeros"
    fx, fy = float(K[0, 0]), float(K[1, 1])
    if not (fx > 0 and fy > 0):
        return f"focal lengths must be positive, got fx={fx:g}, fy={fy:g}"
    scale = max(1.0, float(np.abs(K).max()))
    if abs(K[1, 0]) > 1e-6 * scale or np.abs(K[2] - (0.0, 0.0, 1.0)).max() > 1e-6:
        return "singular or not of the form [[fx, s, cx], [0, fy, cy], [0, 0, 1]]"
    return None


def crop_to_full_translation(cam_crop: Tensor, bbox_center: Tensor, bbox_size: Tensor, K: Tensor,
                             crop_focal: float | None = None) -> Tensor:
    """Weak-perspective crop camera -> translation of the body in the full-image camera.

    cam_crop (..., 3) = (s, tx, ty): scale and offset in normalised crop coordinates
    ([-1, 1] across a square crop of side bbox_size px), as HMR/SPIN regress it;
    bbox_center (..., 2) px; bbox_size (...,) px; K (..., 3, 3) full-image intrinsics.
    Returns (..., 3) metres, the CLIFF conversion: the body at depth
    tz = 2 f / (s * bbox_size), shifted so that the crop centre lands on bbox_center.
    crop_focal is unused by the conversion and only kept for signature compatibility
    with weak-perspective code (SPIN's 5000 px for 224 px crops)."""
    s, tx, ty = cam_crop[..., 0], cam_crop[..., 1], cam_crop[..., 2]
    fx, fy = K[..., 0, 0], K[..., 1, 1]
    cx, cy = K[..., 0, 2], K[..., 1, 2]
    f = 0.5 * (fx + fy)
    s = s.clamp(min=1e-6)
    tz = 2.0 * f / (s * bbox_size)
    # The crop centre (bbox_center) sits at the image point whose ray hits the body
    # origin offset by (tx, ty) in metres at depth tz.
    bx = tx + 2.0 * (bbox_center[..., 0] - cx) / (s * bbox_size) * (f / fx)
    by = ty + 2.0 * (bbox_center[..., 1] - cy) / (s * bbox_size) * (f / fy)
    return torch.stack([bx, by, tz], dim=-1)

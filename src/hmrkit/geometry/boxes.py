"""The square box around a person's keypoints, in image pixels."""

from __future__ import annotations

import math

import torch
from torch import Tensor

BOX_SCALE = 1.2  # the regressors' crop: side = this x the larger extent of the keypoints
MIN_BOX = 32.0  # px, the smallest crop side


def keypoint_box(kp2d: Tensor, min_confidence: float = 0.2, scale: float = BOX_SCALE,
                 min_size: float = MIN_BOX, empty_size: float = 256.0) -> tuple[Tensor, Tensor]:
    """Square box around the keypoints with confidence > 0 and >= ``min_confidence``.

    kp2d (B, K, 3): x, y px and confidence (0 = missing); the coordinates of the
    keypoints used must be finite.
    -> centre (B, 2) px: the middle of their extent (0, 0 where none is used);
       side (B,) px: ``scale`` x their larger extent (x or y), ``empty_size`` where none
       is used, at least ``min_size``.
    The defaults give the regressors' crop (``hmrkit.models.inputs``)."""
    c = kp2d[..., 2]
    vis = (c > 0) & (c >= min_confidence)
    xy = kp2d[..., :2]
    lo = torch.where(vis[..., None], xy, torch.full_like(xy, math.inf)).min(1).values
    hi = torch.where(vis[..., None], xy, torch.full_like(xy, -math.inf)).max(1).values
    ok = vis.any(-1)
    center = torch.where(ok[:, None], 0.5 * (lo + hi), torch.zeros_like(lo))
    size = torch.where(ok, (hi - lo).max(-1).values * scale, torch.full_like(lo[:, 0], empty_size))
    return center, size.clamp(min=min_size)

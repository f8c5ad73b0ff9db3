"""Loss terms of the SMPLify-style fitting. Pure functions of tensors."""

from __future__ import annotations

import torch
from torch import Tensor


def geman_mcclure(sq: Tensor, sigma: float) -> Tensor:
    """Geman-McClure robust penalty of squared residuals: sigma^2 r^2 / (sigma^2 + r^2)."""
    s2 = sigma * sigma
    return s2 * sq / (s2 + sq)


def reprojection_loss(pred_px: Tensor, obs: Tensor, scale: Tensor, sigma: float) -> Tensor:
    """Robust, confidence-weighted 2D error.

    pred_px (B, K, 2) projected model keypoints, pixels; obs (B, K, 3) observed x, y, conf;
    scale (B,) pixels -> crop units (224 / person size, so sigma is in SPIN's units).
    Returns (B,): sum over keypoints of conf^2 * GM(|r|^2)."""
    r = (pred_px - obs[..., :2]) * scale[:, None, None]
    sq = (r ** 2).sum(-1)
    return (obs[..., 2] ** 2 * geman_mcclure(sq, sigma)).sum(-1)


def align_scale_translation(pred_px: Tensor, obs: Tensor) -> Tensor:
    """pred_px (B, K, 2) moved and scaled in the image onto obs (B, K, 3) x, y, conf: the
    confident points' centroids made equal and their RMS spreads too (no rotation).
    Differentiable; frames with fewer than 2 confident points are returned unchanged."""
    w = (obs[..., 2] > 0).to(pred_px.dtype)[..., None]
    n = w.sum(1, keepdim=True)
    ok = n > 1.5
    n = n.clamp(min=1.0)
    cp = (w * pred_px).sum(1, keepdim=True) / n
    co = (w * obs[..., :2]).sum(1, keepdim=True) / n
    sp = ((w * (pred_px - cp) ** 2).sum((1, 2), keepdim=True) / n).clamp(min=1e-9).sqrt()
    so = ((w * (obs[..., :2] - co) ** 2).sum((1, 2), keepdim=True) / n).sqrt()
    aligned = (pred_px - cp) * (so / sp) + co
    return torch.where(ok, aligned, pred_px)


def keypoints3d_loss(pred: Tensor, obs: Tensor, root_pred: Tensor, root_obs: Tensor, sigma: float = 0.5) -> Tensor:
    """Root-relative 3D keypoint error, robust in metres.

    pred (B, K, 3), obs (B, K, 4) x, y, z, conf; root_* (B, 3). Returns (B,)."""
    d = (pred - root_pred[:, None]) - (obs[..., :3] - root_obs[:, None])
    sq = (d ** 2).sum(-1)
    return (obs[..., 3] * geman_mcclure(sq, sigma)).sum(-1)


def smoothness_loss(x: Tensor) -> Tensor:
    """x (T, ..., 3): mean squared difference of consecutive frames, as (T,) per-frame
    contributions (the first frame gets 0)."""
    if x.shape[0] < 2:
        return x.new_zeros(x.shape[0])
    d = ((x[1:] - x[:-1]) ** 2).reshape(x.shape[0] - 1, -1).sum(-1)
    return torch.cat([d.new_zeros(1), d])

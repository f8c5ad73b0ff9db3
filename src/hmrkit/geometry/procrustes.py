"""Similarity Procrustes alignment (scale, rotation, translation), batched."""

from __future__ import annotations

import torch
from torch import Tensor


def similarity_procrustes(source: Tensor, target: Tensor, weights: Tensor | None = None):
    """The similarity transform that best maps source onto target in least squares.

    source, target (..., N, 3); weights (..., N) non-negative or None.
    Returns (scale (...,), R (..., 3, 3), t (..., 3)) with target ~ scale * R @ source + t.
    Reflections are excluded (det R = +1)."""
    if source.shape != target.shape:
        raise ValueError(f"similarity_procrustes: shapes differ, {tuple(source.shape)} vs {tuple(target.shape)}")
    if weights is None:
        weights = torch.ones(source.shape[:-1], dtype=source.dtype, device=source.device)
    w = weights / weights.sum(-1, keepdim=True).clamp(min=1e-12)
    mu_s = (w[..., None] * source).sum(-2)
    mu_t = (w[..., None] * target).sum(-2)
    xs = source - mu_s[..., None, :]
    xt = target - mu_t[..., None, :]
    cov = (w[..., None] * xt).transpose(-1, -2) @ xs  # (..., 3, 3) target x source
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.sign(torch.det(U @ Vh))
    ones = torch.ones_like(d)
    D = torch.diag_embed(torch.stack([ones, ones, d], dim=-1))
    R = U @ D @ Vh
    var_s = (w * (xs ** 2).sum(-1)).sum(-1).clamp(min=1e-12)
    scale = (S * torch.diagonal(D, dim1=-2, dim2=-1)).sum(-1) / var_s
    t = mu_t - scale[..., None] * (R @ mu_s[..., None])[..., 0]
    return scale, R, t


def procrustes_align(source: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """source (..., N, 3) aligned onto target (..., N, 3) by similarity Procrustes."""
    scale, R, t = similarity_procrustes(source, target, weights)
    return scale[..., None, None] * source @ R.transpose(-1, -2) + t[..., None, :]

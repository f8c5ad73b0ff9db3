"""What a regressor sees: 2D evidence in a square crop around the person.

Every learned method of hmrkit reads the same ``CropInputs``: the body keypoints in one
convention (``mediapipe33``), normalised to a square box around the confident keypoints
(x, y in [-1, 1] across the box, as HMR's crops), their confidences, optional
root-relative metric 3D keypoints (MediaPipe's world landmarks), and the box in the full
image with the intrinsics, so the crop camera can be converted to the full-image camera
(CLIFF) and the network can be told where the box sits in the field of view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from hmrkit.geometry.boxes import keypoint_box

INPUT_CONVENTION = "mediapipe33"


@dataclass(frozen=True)
class CropInputs:
    """kp:        (B, K, 3) x, y in [-1, 1] across the square box, confidence in [0, 1]
                  (0 = missing; coordinates of missing keypoints are 0);
    kp3d:        (B, K, 4) root-relative metres (OpenCV camera axes) + confidence, or None;
    center:      (B, 2) box centre, px; size: (B,) box side, px;
    K:           (B, 3, 3) full-image intrinsics, px;
    bbox_info:   (B, 3) CLIFF's box descriptor: ((cx - K_cx) / f, (cy - K_cy) / f, size / f)."""

    kp: Tensor
    kp3d: Optional[Tensor]
    center: Tensor
    size: Tensor
    K: Tensor
    bbox_info: Tensor

    @property
    def batch_size(self) -> int:
        return self.kp.shape[0]


def to_input_convention(kp2d: Tensor, convention: str, kp3d: Tensor | None = None):
    """(B, K, 3) keypoints (and (B, K, 4) 3D ones) in ``convention`` -> the same in
    INPUT_CONVENTION; keypoints the source lacks get confidence 0. ``holistic`` keeps its
    body part (the first 33 points)."""
    from hmrkit import conventions as C

    if convention == INPUT_CONVENTION:
        return kp2d, kp3d
    if convention == "holistic":
        n = len(C.MEDIAPIPE33)
        return kp2d[:, :n], None if kp3d is None else kp3d[:, :n]
    kp = torch.as_tensor(C.convert_with_confidence(np.asarray(kp2d.detach().cpu()), convention, INPUT_CONVENTION),
                         dtype=kp2d.dtype)
    k3 = None if kp3d is None else C.convert(kp3d, convention, INPUT_CONVENTION)[0]
    return kp, k3


def crop_inputs(kp2d: Tensor, K: Tensor, convention: str = INPUT_CONVENTION, kp3d: Tensor | None = None,
                min_confidence: float = 0.2, image_wh: Tensor | None = None) -> CropInputs:
    """Keypoints (B, K, 3) px + confidence in ``convention``, intrinsics (B, 3, 3), optional
    (B, K, 4) root-relative 3D keypoints -> CropInputs in INPUT_CONVENTION. Keypoints below
    ``min_confidence`` are treated as missing, and so are keypoints outside the image when
    ``image_wh`` (B, 2) px is given: detectors guess those (MediaPipe does, with some
    confidence), the synthetic training data has none."""
    kp2d, kp3d = to_input_convention(torch.as_tensor(kp2d), convention,
                                     None if kp3d is None else torch.as_tensor(kp3d))
    K = torch.as_tensor(K, dtype=kp2d.dtype)
    if image_wh is not None:
        wh = torch.as_tensor(image_wh, dtype=kp2d.dtype)[:, None]
        inside = ((kp2d[..., :2] >= 0) & (kp2d[..., :2] < wh)).all(-1)
        kp2d = torch.cat([kp2d[..., :2], kp2d[..., 2:] * inside[..., None]], -1)
    center, size = keypoint_box(kp2d, min_confidence)
    conf = kp2d[..., 2] * (kp2d[..., 2] >= min_confidence)
    xy = (kp2d[..., :2] - center[:, None]) / (0.5 * size[:, None, None])
    xy = (xy * (conf[..., None] > 0)).clamp(-2.0, 2.0)
    kp = torch.cat([xy, conf[..., None]], -1)
    if kp3d is not None:
        kp3d = kp3d.to(kp2d.dtype).clone()
        kp3d[..., 3] = kp3d[..., 3] * (conf > 0)
        kp3d[..., :3] = kp3d[..., :3] * (kp3d[..., 3:] > 0)
    f = 0.5 * (K[:, 0, 0] + K[:, 1, 1])
    info = torch.stack([(center[:, 0] - K[:, 0, 2]) / f, (center[:, 1] - K[:, 1, 2]) / f, size / f], -1)
    return CropInputs(kp=kp, kp3d=kp3d, center=center, size=size, K=K, bbox_info=info)


def to_crop(points_px: Tensor, inputs: CropInputs) -> Tensor:
    """(B, N, 2) px -> (B, N, 2) normalised crop coordinates of ``inputs``' boxes."""
    return (points_px - inputs.center[:, None]) / (0.5 * inputs.size[:, None, None])


# ---------------------------------------------------------------------------- evidence maps


def evidence_maps(inputs: CropInputs, edges: list[tuple[int, int]], resolution: int = 64,
                  sigma: float = 1.5, mask: Tensor | None = None) -> Tensor:
    """Pixel-aligned evidence (B, K + E + 2, R, R) in the crop: one Gaussian heat map per
    keypoint (peak = its confidence), one map per limb (Gaussian of the distance to the
    segment, peak = the smaller confidence of its ends), the person mask (B, R, R) in the
    crop (zeros when None) and a constant channel telling whether the mask is given.
    sigma is in map pixels."""
    B, Kn = inputs.kp.shape[:2]
    dtype = inputs.kp.dtype
    R = resolution
    g = (torch.arange(R, dtype=dtype, device=inputs.kp.device) + 0.5) / R * 2 - 1  # pixel centres in [-1, 1]
    s2 = 2 * (sigma * 2.0 / R) ** 2
    xy, conf = inputs.kp[..., :2], inputs.kp[..., 2]
    # a Gaussian is separable: exp(-(dx^2 + dy^2) / 2s^2) = exp(-dx^2 / 2s^2) exp(-dy^2 / 2s^2)
    ex = torch.exp(-(g - xy[..., :1]) ** 2 / s2)  # (B, K, R) along x
    ey = torch.exp(-(g - xy[..., 1:]) ** 2 / s2)  # (B, K, R) along y
    maps = [conf[..., None, None] * ey[..., :, None] * ex[..., None, :]]  # (B, K, R(y), R(x))
    if edges:
        a = torch.tensor([e[0] for e in edges], device=xy.device)
        b = torch.tensor([e[1] for e in edges], device=xy.device)
        pa, pb = xy[:, a], xy[:, b]  # (B, E, 2)
        ab = pb - pa
        inv = 1.0 / (ab ** 2).sum(-1).clamp(min=1e-8)  # (B, E)
        dx = g[None, None, None, :] - pa[..., 0, None, None]  # (B, E, 1, R): x - ax
        dy = g[None, None, :, None] - pa[..., 1, None, None]  # (B, E, R, 1): y - ay
        abx, aby = ab[..., 0, None, None], ab[..., 1, None, None]
        t = ((dx * abx + dy * aby) * inv[..., None, None]).clamp(0, 1)  # (B, E, R, R)
        dist2 = (dx - t * abx) ** 2 + (dy - t * aby) ** 2
        c = torch.minimum(conf[:, a], conf[:, b])[..., None, None]
        maps.append(c * torch.exp(-dist2 / s2))
    out = torch.cat(maps, 1)
    m = torch.zeros(B, 1, R, R, dtype=dtype, device=out.device) if mask is None else mask.to(dtype).reshape(B, 1, R, R)
    has = torch.full((B, 1, R, R), 0.0 if mask is None else 1.0, dtype=dtype, device=out.device)
    return torch.cat([out, m, has], 1)


def crop_mask(mask: np.ndarray, center, size: float, resolution: int = 64) -> np.ndarray:
    """A full-image person mask (H, W) in [0, 1] -> (R, R) float32 sampled in the square box
    (centre px, side px); outside the image is 0."""
    H, W = mask.shape
    g = (np.arange(resolution) + 0.5) / resolution - 0.5
    xs = np.round(center[0] + g * size - 0.5).astype(int)
    ys = np.round(center[1] + g * size - 0.5).astype(int)
    out = np.zeros((resolution, resolution), np.float32)
    okx, oky = (xs >= 0) & (xs < W), (ys >= 0) & (ys < H)
    out[np.ix_(oky, okx)] = mask[np.ix_(ys[oky], xs[okx])]
    return out

"""Synthetic bodies with known ground truth: poses from the shipped mocap pose library,
sampled shapes and cameras, projected to 2D keypoints, with a detector-like noise model.

Everything is seeded: the same seed gives the same samples on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import roma
import torch
from torch import Tensor

from hmrkit.body.priors import WEIGHTS_DIR, body_joint_indices
from hmrkit.geometry.camera import project
from hmrkit.types import BodyParams


@lru_cache(maxsize=4)
def load_pose_library(name: str = "anny"):
    """(body_pose_aa (N, Jb, 3), global_orient_aa (N, 3), joint_names) of the shipped library."""
    path = WEIGHTS_DIR / f"pose_library_{name}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no pose library; build it with scripts/build_pose_prior.py")
    z = np.load(path)
    return z["body_pose_aa"], z["global_orient_aa"], [str(n) for n in z["joint_names"]]


@dataclass(frozen=True)
class SceneConfig:
    """Camera and placement of a synthetic person."""

    image_size: tuple = (720, 720)  # (H, W)
    fov_deg: tuple = (40.0, 70.0)  # field of view range over the larger side
    distance: tuple = (2.5, 6.0)  # metres from the camera to the pelvis
    yaw_deg: float = 180.0  # body heading spread around facing the camera (+-)
    pitch_deg: float = 10.0  # camera elevation spread (+-)
    roll_deg: float = 5.0
    offset: float = 0.25  # pelvis off the optical axis, as a fraction of the distance
    shape_spread: float = 0.35  # Anny phenotypes sampled in 0.5 +- spread (clipped to [0, 1])


@dataclass(frozen=True)
class NoiseConfig:
    """A detector-like noise model on 2D keypoints (px + confidence).

    jitter: Gaussian std as a fraction of the person's height in px;
    drop: probability that a keypoint is missing (confidence 0);
    low_conf: probability that a kept keypoint gets a low confidence in [0.2, 0.5];
    swap: probability that the left/right pair of a limb is swapped."""

    jitter: float = 0.0
    drop: float = 0.0
    low_conf: float = 0.0
    swap: float = 0.0

    @staticmethod
    def clean() -> "NoiseConfig":
        return NoiseConfig()

    @staticmethod
    def realistic() -> "NoiseConfig":
        return NoiseConfig(jitter=0.012, drop=0.05, low_conf=0.1, swap=0.01)


@dataclass(frozen=True)
class SyntheticBatch:
    params: BodyParams  # ground truth, camera frame
    K: Tensor  # (B, 3, 3)
    image_size: tuple  # (H, W)


def sample_scenes(body, n: int, seed: int = 0, config: SceneConfig = SceneConfig()) -> SyntheticBatch:
    """n people in front of n cameras: library poses (mirrored included), sampled shapes."""
    g = np.random.default_rng(seed)
    pose_aa, go_aa, names = load_pose_library("anny" if body.name == "anny" else "smpl")
    bidx = body_joint_indices(body)
    if [body.pose_joint_names[i] for i in bidx] != names:
        raise ValueError("the pose library does not match this body model's joints")
    pick = g.integers(0, len(pose_aa), n)
    dtype = body.dtype
    aa = torch.zeros(n, body.num_pose_joints, 3, dtype=dtype)
    aa[:, bidx] = torch.as_tensor(pose_aa[pick], dtype=dtype)
    pose = roma.rotvec_to_rotmat(aa)
    # body orientation: library orientation (heading removed), a random heading, then the
    # camera's pitch/roll, then into the OpenCV camera frame (y down, facing the camera)
    go_lib = roma.rotvec_to_rotmat(torch.as_tensor(go_aa[pick], dtype=dtype))
    yaw = np.radians(g.uniform(-config.yaw_deg, config.yaw_deg, n))
    pitch = np.radians(g.uniform(-config.pitch_deg, config.pitch_deg, n))
    roll = np.radians(g.uniform(-config.roll_deg, config.roll_deg, n))
    R_yaw = roma.rotvec_to_rotmat(torch.tensor(np.stack([0 * yaw, yaw, 0 * yaw], -1), dtype=dtype))
    R_cam = roma.rotvec_to_rotmat(torch.tensor(np.stack([pitch, 0 * pitch, roll], -1), dtype=dtype))
    to_cv = torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]], dtype=dtype)
    go = R_cam @ to_cv @ R_yaw @ go_lib
    shape = torch.as_tensor(np.clip(0.5 + g.uniform(-1, 1, (n, body.num_shape)) * config.shape_spread, 0, 1)
                            if body.shape_range is not None else g.normal(0, 1, (n, body.num_shape)), dtype=dtype)
    dist = g.uniform(*config.distance, n)
    off = g.uniform(-config.offset, config.offset, (n, 2)) * dist[:, None]
    transl = torch.tensor(np.concatenate([off, dist[:, None]], -1), dtype=dtype)
    expr = torch.zeros(n, body.num_expression, dtype=dtype) if body.num_expression else None
    params = BodyParams(go, pose, shape, transl, expr)
    H, W = config.image_size
    fov = np.radians(g.uniform(*config.fov_deg, n))
    f = 0.5 * max(H, W) / np.tan(fov / 2)
    K = torch.zeros(n, 3, 3, dtype=dtype)
    K[:, 0, 0] = torch.as_tensor(f, dtype=dtype)
    K[:, 1, 1] = torch.as_tensor(f, dtype=dtype)
    K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = W / 2, H / 2, 1.0
    return SyntheticBatch(params=params, K=K, image_size=(H, W))


def keypoints2d(body, batch: SyntheticBatch, convention: str, noise: NoiseConfig = NoiseConfig(),
                seed: int = 0) -> Tensor:
    """(B, K, 3) projected keypoints in px with confidence, noisy per ``noise``; keypoints
    outside the image get confidence 0."""
    from hmrkit import conventions as C

    with torch.no_grad():
        out = body(batch.params)
        X = body.keypoints(out, convention)
        uv = project(X, batch.K)
    B, Kn = uv.shape[:2]
    g = torch.Generator().manual_seed(seed)
    conf = torch.ones(B, Kn, dtype=uv.dtype) * body.keypoint_valid(convention).to(uv.dtype)
    height = (uv[..., 1].max(1).values - uv[..., 1].min(1).values).clamp(min=10.0)
    if noise.jitter > 0:
        uv = uv + torch.randn(uv.shape, generator=g, dtype=uv.dtype) * (noise.jitter * height)[:, None, None]
    if noise.swap > 0:
        flip = list(C.get(convention).flip) if convention in C.available() else list(range(Kn))
        swap = torch.rand(B, generator=g) < noise.swap
        uv = torch.where(swap[:, None, None], uv[:, flip], uv)
    if noise.low_conf > 0:
        low = torch.rand(B, Kn, generator=g) < noise.low_conf
        conf = torch.where(low, conf * (0.2 + 0.3 * torch.rand(B, Kn, generator=g, dtype=uv.dtype)), conf)
    if noise.drop > 0:
        conf = torch.where(torch.rand(B, Kn, generator=g) < noise.drop, torch.zeros_like(conf), conf)
    H, W = batch.image_size
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H)
    conf = conf * inside
    return torch.cat([uv, conf[..., None]], -1)

"""Synthetic video sequences: short mocap clips retargeted onto a body model at 30 fps,
seen by a slowly moving camera.

The shipped library (``weights/sequences_anny.npz``, built by ``scripts/build_sequences.py``)
holds contiguous CMU clips of a few seconds, each retargeted as a whole with
``hmrkit.fit.fit3d.fit_keypoints3d`` (one shape per clip), lightly smoothed in time:

  body_pose_aa     (S, T, Jb, 3) float16  axis-angle of the body joints (``joint_names``),
                                          fingers at rest; local rotations as in BodyParams
  global_orient_aa (S, T, 3) float32      body frame -> mocap world (Y up, metres)
  transl           (S, T, 3) float32      pelvis trajectory in the mocap world, metres
  shape            (S, num_shape) float32 the shape fitted to each clip's skeleton
  fps, source (S,), start_frame (S,) (at fps), retarget_error_mm (S,), joint_names,
  body_model, attribution (the CMU credit line)

``sample_sequence`` places one clip in front of a camera that orbits and dollies slowly
(and pans to follow the subject), and returns per-frame camera-frame BodyParams, K and 2D
keypoints: ground truth for the video methods (MAED, DynaBOA) and temporal metrics.

The data used in this project was obtained from mocap.cs.cmu.edu. The database was
created with funding from NSF EIA-0196217.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import roma
import torch
from torch import Tensor

from hmrkit.body.priors import WEIGHTS_DIR, body_joint_indices
from hmrkit.conventions import SMPL24
from hmrkit.types import BodyOutput, BodyParams

__all__ = [
    "CMU_ATTRIBUTION", "RETARGET_NAMES", "SequenceLibrary", "SequenceCameraConfig", "SyntheticSequence",
    "load_sequences", "retarget_window", "smooth_rotations", "smooth_positions", "sample_sequence", "look_at",
]

CMU_ATTRIBUTION = ("The data used in this project was obtained from mocap.cs.cmu.edu. "
                   "The database was created with funding from NSF EIA-0196217.")

# The mocap joints fitted (shared with scripts/build_pose_prior.py), re-exported here.
from hmrkit.fit.fit3d import RETARGET_NAMES  # noqa: E402


# ----------------------------------------------------------------------------------------
# Building (used by scripts/build_sequences.py)


def smooth_rotations(R: Tensor, sigma: float) -> Tensor:
    """(T, ..., 3, 3) -> (T, ..., 3, 3): a Gaussian filter of ``sigma`` frames over time,
    on unit quaternions made sign-consistent frame to frame, then renormalised. sigma <= 0
    returns R unchanged. Ends are handled by renormalising the truncated kernel."""
    if sigma <= 0:
        return R
    q = roma.rotmat_to_unitquat(R)  # (T, ..., 4)
    for t in range(1, q.shape[0]):  # hemisphere continuity
        flip = (q[t] * q[t - 1]).sum(-1, keepdim=True) < 0
        q[t] = torch.where(flip, -q[t], q[t])
    T = q.shape[0]
    r = int(np.ceil(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=q.dtype) / sigma) ** 2)
    out = torch.empty_like(q)
    for t in range(T):
        lo, hi = max(0, t - r), min(T, t + r + 1)
        w = k[lo - t + r:hi - t + r]
        out[t] = (q[lo:hi] * w.view(-1, *([1] * (q.ndim - 1)))).sum(0) / w.sum()
    out = out / out.norm(dim=-1, keepdim=True)
    return roma.unitquat_to_rotmat(out)


def smooth_positions(x: Tensor, sigma: float) -> Tensor:
    """(T, ..., 3) Gaussian filter over time (sigma frames, truncated kernel renormalised)."""
    if sigma <= 0:
        return x
    T = x.shape[0]
    r = int(np.ceil(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype) / sigma) ** 2)
    out = torch.empty_like(x)
    for t in range(T):
        lo, hi = max(0, t - r), min(T, t + r + 1)
        w = k[lo - t + r:hi - t + r]
        out[t] = (x[lo:hi] * w.view(-1, *([1] * (x.ndim - 1)))).sum(0) / w.sum()
    return out


def retarget_window(body, positions: np.ndarray, mask: np.ndarray, iters: int = 150, smooth_sigma: float = 1.0):
    """Fit ``body`` to one mocap window as a whole (one shared shape).

    positions (T, len(RETARGET_NAMES), 3) metres, mocap world (Y up); mask (K,) bool.
    Returns (BodyParams (T, ...) in the mocap world, per-frame joint error (T,) metres of
    the unsmoothed fit). The fitted rotations and pelvis trajectory are then smoothed
    over time with a Gaussian of ``smooth_sigma`` frames (per-frame fits jitter a little
    where the keypoints leave a rotation free, e.g. a straight limb's twist)."""
    from hmrkit.fit.fit3d import Fit3DConfig, fit_keypoints3d

    target = torch.as_tensor(positions, dtype=body.dtype)
    p, err = fit_keypoints3d(body, target, RETARGET_NAMES, Fit3DConfig(iters=iters),
                             mask=torch.as_tensor(mask, dtype=torch.bool))
    go = smooth_rotations(p.global_orient, smooth_sigma)
    pose = smooth_rotations(p.pose, smooth_sigma)
    transl = smooth_positions(p.transl, smooth_sigma)
    return BodyParams(go, pose, p.shape, transl, p.expression), err


# ----------------------------------------------------------------------------------------
# The shipped library


@dataclass(frozen=True)
class SequenceLibrary:
    """Retargeted clips (see the module docstring for the fields' shapes and frames)."""

    body_pose_aa: np.ndarray  # (S, T, Jb, 3) float32
    global_orient_aa: np.ndarray  # (S, T, 3)
    transl: np.ndarray  # (S, T, 3) metres, mocap world (Y up)
    shape: np.ndarray  # (S, num_shape)
    joint_names: tuple
    fps: float
    source: tuple  # (S,) clip file names
    start_frame: np.ndarray  # (S,) first frame of the window, at fps
    retarget_error_mm: np.ndarray  # (S,)
    body_model: str
    attribution: str

    def __len__(self) -> int:
        return int(self.body_pose_aa.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.body_pose_aa.shape[1])


@lru_cache(maxsize=4)
def load_sequences(name: str = "anny", path: str | None = None) -> SequenceLibrary:
    """The shipped sequence library of body model ``name`` (or the npz at ``path``)."""
    p = Path(path) if path is not None else WEIGHTS_DIR / f"sequences_{name}.npz"
    if not p.exists():
        raise FileNotFoundError(f"{p}: no sequence library; build it with scripts/build_sequences.py")
    z = np.load(p, allow_pickle=False)
    return SequenceLibrary(
        body_pose_aa=z["body_pose_aa"].astype(np.float32), global_orient_aa=z["global_orient_aa"].astype(np.float32),
        transl=z["transl"].astype(np.float32), shape=z["shape"].astype(np.float32),
        joint_names=tuple(str(n) for n in z["joint_names"]), fps=float(z["fps"]),
        source=tuple(str(s) for s in z["source"]), start_frame=z["start_frame"].astype(np.int64),
        retarget_error_mm=z["retarget_error_mm"].astype(np.float32), body_model=str(z["body_model"]),
        attribution=str(z["attribution"]),
    )


# ----------------------------------------------------------------------------------------
# Sampling a sequence in front of a moving camera


@dataclass(frozen=True)
class SequenceCameraConfig:
    """A slowly moving camera around a clip.

    image_size (H, W); fov_deg: field of view over the larger side, sampled once per
    sequence; height: camera height above the floor (m); elevation: none (the camera
    looks at the subject's pelvis line, so its pitch follows from the height);
    orbit_deg: total change of the viewing azimuth over the clip (+-); dolly: relative
    change of the distance over the clip (+-); follow: how much the camera position
    tracks the subject's travel (0: a fixed tripod that pans, 1: a tracking shot), sampled
    in this range; margin: extra room around the body (fraction of its radius);
    roll_deg: constant camera roll (+-); shape_spread: phenotype spread when a random
    shape is asked for (as SceneConfig); shake_deg: a handheld camera's shake, the std of a
    smooth random rotation (a Gaussian-filtered random walk, about 4 frames) added to the
    camera each frame, drawn in this range per sequence (0, 0: a steady camera, the
    evaluation sets' default; drawn after everything else, so it moves no other draw)."""

    image_size: tuple = (720, 720)
    fov_deg: tuple = (40.0, 70.0)
    height: tuple = (0.6, 2.0)
    orbit_deg: float = 35.0
    dolly: float = 0.2
    follow: tuple = (0.0, 1.0)
    margin: tuple = (1.15, 1.6)
    roll_deg: float = 3.0
    shape_spread: float = 0.35
    shake_deg: tuple = (0.0, 0.0)


@dataclass(frozen=True)
class SyntheticSequence:
    """One synthetic video with ground truth.

    params: BodyParams (T, ...) camera frame (OpenCV, metres), one shape for all frames.
    K: (T, 3, 3) px (constant intrinsics, repeated). image_size: (H, W). fps.
    keypoints2d: convention -> (T, K, 3) x, y px and confidence (1 inside the image and
      produced by the body model, else 0).
    cam_R_world, cam_t_world: (T, 3, 3), (T, 3): x_cam = R @ x_world + t, world = the
      mocap world (Y up, metres); body params in the world are recovered with R^T.
    source: the mocap clip's file name; index: the library index; seed."""

    params: BodyParams
    K: Tensor
    image_size: tuple
    fps: float
    keypoints2d: dict
    cam_R_world: Tensor
    cam_t_world: Tensor
    source: str
    index: int
    seed: int

    @property
    def num_frames(self) -> int:
        return self.params.batch_size


def look_at(eye: Tensor, target: Tensor, up=(0.0, 1.0, 0.0)) -> Tensor:
    """cam_R_world (..., 3, 3) of OpenCV cameras at ``eye`` (..., 3) looking at ``target``
    (..., 3) in a world whose up is ``up``: rows are the camera's x (right), y (down) and
    z (forward) axes in world coordinates."""
    z = target - eye
    z = z / z.norm(dim=-1, keepdim=True)
    u = torch.as_tensor(up, dtype=eye.dtype).expand_as(z)
    x = torch.linalg.cross(z, u)
    x = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    y = torch.linalg.cross(z, x)
    return torch.stack([x, y, z], dim=-2)


def _line_fit(x: Tensor) -> Tensor:
    """(T, 3) -> (T, 3): the least-squares straight line through x over time."""
    T = x.shape[0]
    t = torch.linspace(-1, 1, T, dtype=x.dtype)[:, None]
    a = x.mean(0)
    b = (t * (x - a)).sum(0) / (t * t).sum().clamp(min=1e-9)
    return a + t * b


def sample_sequence(body, seq_index: int, seed: int = 0, config: SequenceCameraConfig = SequenceCameraConfig(),
                    shape: str | Tensor = "fitted", conventions=("coco17", "mediapipe33", "holistic"),
                    library: SequenceLibrary | None = None) -> SyntheticSequence:
    """Clip ``seq_index`` of the library seen by a slowly moving camera.

    The camera looks at the subject's pelvis line (a straight line fitted to the pelvis
    trajectory, so it pans smoothly), from a random azimuth that changes linearly by up
    to ``config.orbit_deg`` over the clip, at a distance that keeps the whole body in
    view and changes by up to ``config.dolly``. shape: ``"fitted"`` (the shape retargeted
    to the clip's skeleton), ``"random"`` (phenotypes as sample_scenes; the trajectory is
    scaled by the ratio of pelvis heights so feet do not slide much more), or a (S,)
    tensor. Deterministic in (seq_index, seed)."""
    from hmrkit.data.render_synthetic import keypoints_from_output
    from hmrkit.geometry.camera import intrinsics_from_fov

    lib = library if library is not None else load_sequences(body.name)
    if lib.body_model != body.name:
        raise ValueError(f"the sequence library is for {lib.body_model!r}, the body model is {body.name!r}")
    if not 0 <= seq_index < len(lib):
        raise IndexError(f"seq_index {seq_index} out of range: the library has {len(lib)} sequences")
    bidx = body_joint_indices(body)
    if [body.pose_joint_names[i] for i in bidx] != list(lib.joint_names):
        raise ValueError("the sequence library does not match this body model's joints")
    g = np.random.default_rng(np.random.SeedSequence([int(seed), int(seq_index), 0x5E0]))
    dtype = body.dtype
    T = lib.num_frames
    aa = torch.zeros(T, body.num_pose_joints, 3, dtype=dtype)
    aa[:, bidx] = torch.as_tensor(lib.body_pose_aa[seq_index], dtype=dtype)
    pose = roma.rotvec_to_rotmat(aa)
    go_w = roma.rotvec_to_rotmat(torch.as_tensor(lib.global_orient_aa[seq_index], dtype=dtype))
    tr_w = torch.as_tensor(lib.transl[seq_index], dtype=dtype)
    fitted = torch.as_tensor(lib.shape[seq_index], dtype=dtype)
    expr = torch.zeros(T, body.num_expression, dtype=dtype) if body.num_expression else None

    def world_params(s: Tensor, transl: Tensor) -> BodyParams:
        return BodyParams(go_w, pose, s[None].expand(T, -1), transl, expr)

    with torch.no_grad():
        out = body(world_params(fitted, tr_w))
        floor = float(out.joints[..., 1].min())  # the lowest joint over the clip (ankles, toes)
        s = fitted
        if isinstance(shape, str) and shape == "random":
            spread = config.shape_spread
            s = torch.as_tensor(np.clip(0.5 + g.uniform(-1, 1, body.num_shape) * spread, 0, 1)
                                if body.shape_range is not None else g.normal(0, 1, body.num_shape), dtype=dtype)
        elif isinstance(shape, Tensor):
            s = shape.to(dtype).reshape(-1)
        elif shape != "fitted":
            raise ValueError(f"shape: expected 'fitted', 'random' or a tensor, got {shape!r}")
        if s is not fitted:
            h0 = -float(body.rest_output(fitted[None].clone()).vertices[0, :, 1].min())
            h1 = -float(body.rest_output(s[None].clone()).vertices[0, :, 1].min())
            anchor = torch.tensor([float(tr_w[0, 0]), floor, float(tr_w[0, 2])], dtype=dtype)
            tr_w = anchor + (tr_w - anchor) * (h1 / h0)
            floor = anchor[1].item()
            out = body(world_params(s, tr_w))
    joints_w = out.joints  # (T, J, 3), world

    H, W = config.image_size
    fov = float(g.uniform(*config.fov_deg))
    K1 = intrinsics_from_fov(H, W, fov, dtype=dtype)
    half_small = np.arctan(min(H, W) / max(H, W) * np.tan(np.radians(fov) / 2))
    # the camera looks at the pelvis line; the body stays within `radius` of it
    target = _line_fit(tr_w)
    radius = float((joints_w - target[:, None]).norm(dim=-1).max())
    dolly = g.uniform(-config.dolly, config.dolly)
    d_min = radius * g.uniform(*config.margin) / np.tan(half_small)
    d0 = d_min / min(1.0, 1.0 + dolly)  # the closest point of the dolly is d_min
    follow = g.uniform(*config.follow)
    # a camera that does not follow the subject all the way starts farther back by what
    # it does not follow, so the subject never comes closer than d_min
    travel = float((target[-1] - target[0]).norm())
    dist = torch.as_tensor(d0 * (1 + dolly * np.linspace(0, 1, T)) + (1 - follow) * travel, dtype=dtype)
    az0 = g.uniform(-np.pi, np.pi)
    az = torch.as_tensor(az0 + np.radians(g.uniform(-config.orbit_deg, config.orbit_deg)) * np.linspace(0, 1, T),
                         dtype=dtype)
    cam_h = floor + g.uniform(*config.height)
    base = target[0] + follow * (target - target[0])  # where the camera's orbit is centred
    horiz = torch.sqrt((dist ** 2 - (cam_h - target[:, 1]) ** 2).clamp(min=(0.3 * dist) ** 2))
    eye = torch.stack([base[:, 0] + horiz * torch.sin(az), torch.full_like(dist, cam_h),
                       base[:, 2] + horiz * torch.cos(az)], -1)
    R = look_at(eye, target)
    roll = np.radians(g.uniform(-config.roll_deg, config.roll_deg))
    R_roll = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.0, roll], dtype=dtype))
    R = R_roll @ R
    if config.shake_deg[1] > 0:  # a handheld camera: a smooth random rotation per frame
        sd = np.radians(g.uniform(*config.shake_deg))
        walk = smooth_positions(torch.as_tensor(g.normal(0, 1, (T, 3)), dtype=dtype), 4.0)
        walk = walk / walk.std(0, keepdim=True).clamp(min=1e-6) * sd
        R = roma.rotvec_to_rotmat(walk) @ R
    t = -(R @ eye[..., None])[..., 0]

    go_c = R @ go_w
    tr_c = (R @ tr_w[..., None])[..., 0] + t
    params = BodyParams(go_c, pose, s[None].expand(T, -1).clone(), tr_c, expr)
    K = K1.expand(T, 3, 3).clone()
    # the camera-frame body is the world body moved rigidly: no second forward pass
    Rt = R.transpose(-1, -2)
    out_c = BodyOutput(vertices=out.vertices @ Rt + t[:, None], joints=out.joints @ Rt + t[:, None], faces=out.faces)
    kps = {c: keypoints_from_output(body, out_c, K, (H, W), c) for c in conventions}
    return SyntheticSequence(params=params, K=K, image_size=(H, W), fps=lib.fps, keypoints2d=kps, cam_R_world=R,
                             cam_t_world=t, source=lib.source[seq_index], index=int(seq_index), seed=int(seed))

"""Fitting a body model to 3D keypoints: retargeting motion capture onto a body model.

Bone lengths of a mocap skeleton differ from the body model's, so the objective compares
bone *directions* (unit vectors between named joints) and, with a smaller weight, root-
relative positions after the fit's own shape has been chosen; one shape is shared by all
frames of a clip (``shared_shape``). The pose prior is not used here (this fit builds it),
only the hinge prior against hyperextension.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hmrkit.body.base import BodyModel
from hmrkit.body.priors import HingePrior, body_joint_indices
from hmrkit.geometry.procrustes import similarity_procrustes
from hmrkit.geometry.rotation import rotmat_from_6d, rotmat_to_6d
from hmrkit.types import BodyParams

from hmrkit.conventions import SMPL24 as _SMPL24

# Mocap joints used for retargeting: pelvis, spine and collar joints are placed differently
# by every skeleton (CMU's root sits about 9 cm from Anny's pelvis) and the hand joints are
# unreliable, so they are left out; the spine is seen through hips -> neck.
RETARGET_NAMES = tuple(n for n in _SMPL24 if n not in ("pelvis", "spine1", "spine2", "spine3", "left_hand",
                                                        "right_hand", "left_collar", "right_collar"))

# Bones compared by direction (semantic names of hmrkit.conventions.SMPL24).
BONES = (
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("left_ankle", "left_foot"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("right_ankle", "right_foot"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_hip", "neck"), ("right_hip", "neck"), ("neck", "head"),
    ("right_hip", "left_hip"), ("right_shoulder", "left_shoulder"),
    ("neck", "left_shoulder"), ("neck", "right_shoulder"),
)


@dataclass(frozen=True)
class Fit3DConfig:
    iters: int = 150
    lr: float = 0.05
    w_direction: float = 1.0
    w_position: float = 0.2
    w_bend: float = 0.1
    w_rest: float = 0.01  # pull joints the keypoints do not see (wrists' twist, toes...) to rest
    shared_shape: bool = True


def fit_keypoints3d(body: BodyModel, target: Tensor, names, config: Fit3DConfig = Fit3DConfig(),
                    mask: Tensor | None = None):
    """Fit pose (and one shared shape) to 3D keypoints.

    target (T, K, 3) metres in the body frame (y up); names (K,) semantic names of SMPL24;
    mask (K,) bool of usable keypoints. Returns (BodyParams (T, ...) with transl placing
    the pelvis, mean joint error in metres (T,) over the masked keypoints)."""
    T = target.shape[0]
    dtype = body.dtype
    target = target.to(dtype)
    names = list(names)
    reg = body.regressors["smpl24"]
    from hmrkit.conventions import SMPL24

    ours = [SMPL24.index(n) for n in names]
    if mask is None:
        mask = torch.ones(len(names), dtype=torch.bool)
    mask = mask & reg.valid[ours]
    bones = [(names.index(a), names.index(b)) for a, b in BONES if a in names and b in names
             and mask[names.index(a)] and mask[names.index(b)]]
    ba = torch.tensor([a for a, _ in bones])
    bb = torch.tensor([b for _, b in bones])

    def keypoints(p):  # without the mesh where the body model can skip it
        return body.forward_keypoints(p, ("smpl24",))["smpl24"][:, ours]

    def unit(x, a, b):
        v = x[:, b] - x[:, a]
        return v / v.norm(dim=-1, keepdim=True).clamp(min=1e-6)

    # initial global orientation by Procrustes of the rest skeleton onto each frame
    mean = body.mean_params(T)
    rest = keypoints(mean[:1])[0]
    w = mask.to(dtype).expand(T, -1)
    _, R0, t0 = similarity_procrustes(rest.expand(T, -1, -1), target, w)
    go6 = rotmat_to_6d(R0).clone().requires_grad_(True)
    transl = t0.clone().requires_grad_(True)
    pose6 = rotmat_to_6d(mean.pose).clone().requires_grad_(True)
    shape = mean.shape[:1].clone() if config.shared_shape else mean.shape.clone()
    shape.requires_grad_(True)
    hinge = HingePrior(body)
    free = torch.zeros(body.num_pose_joints, dtype=torch.bool)
    free[body_joint_indices(body)] = True
    opt = torch.optim.Adam([go6, transl, pose6, shape], lr=config.lr)
    lo, hi = body.shape_range if body.shape_range is not None else (-1e9, 1e9)
    eye6 = rotmat_to_6d(torch.eye(3, dtype=dtype))

    def params():
        p6 = torch.where(free[None, :, None], pose6, eye6)  # fingers stay at rest
        s = shape.clamp(lo, hi).expand(T, -1)
        return BodyParams(rotmat_from_6d(go6), rotmat_from_6d(p6), s, transl, mean.expression)

    for it in range(config.iters):
        opt.zero_grad()
        p = params()
        X = keypoints(p)
        d = (unit(X, ba, bb) - unit(target, ba, bb)).pow(2).sum(-1).sum(-1)
        pos = ((X - target).pow(2).sum(-1) * w).sum(-1)
        rest_pull = (pose6 - eye6).pow(2).sum((-1, -2))
        loss = (config.w_direction * d + config.w_position * pos + config.w_bend * hinge(p.pose)
                + config.w_rest * rest_pull)
        loss.sum().backward()
        opt.step()
    with torch.no_grad():
        p = params()
        X = keypoints(p)
        err = ((X - target).norm(dim=-1) * w).sum(-1) / w.sum(-1)
    return p.detach(), err

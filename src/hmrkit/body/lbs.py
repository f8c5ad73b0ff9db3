"""Linear blend skinning (LBS) as pure functions, for SMPL-family body models.

Notation: B batch, V vertices, N = J + 1 joints (root first, parents before children),
S blend-shape coefficients. Rotations are rotation matrices (..., 3, 3); positions are in
metres in the model frame (SMPL: y up, the body faces +z, its left is +x).

The model, for shape coefficients beta and joint rotations R_0..R_J (R_0 the root):

    v_shaped = template + sum_s beta_s * shape_dirs[s]                 (blend_shapes)
    joints   = joint_regressor @ v_shaped                              (regress_joints)
    v_posed  = v_shaped + sum_p f_p * pose_dirs[p],
               f = (vec(R_1 - I), ..., vec(R_J - I))                    (pose_blend_offsets)
    G_k      = G_parent(k) @ [R_k | joints_k - joints_parent(k)]        (forward_kinematics)
    v        = sum_k w_vk (G_k with its rest joint removed) @ v_posed   (skin)

The root's transform is [R_0 | joints_0]: the body turns about its rest root joint, and
no translation is applied here (a caller adds its ``transl`` afterwards).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor


def blend_shapes(coeffs: Tensor, dirs: Tensor) -> Tensor:
    """coeffs (B, S); dirs (S, V, 3) metres per unit coefficient -> offsets (B, V, 3)."""
    if dirs.ndim != 3 or coeffs.shape[-1] != dirs.shape[0]:
        raise ValueError(f"blend_shapes: coeffs {tuple(coeffs.shape)} and dirs {tuple(dirs.shape)}; "
                         "expected (B, S) and (S, V, 3)")
    S, V = dirs.shape[:2]
    return (coeffs @ dirs.reshape(S, V * 3)).reshape(-1, V, 3)


def regress_joints(joint_regressor: Tensor, vertices: Tensor) -> Tensor:
    """joint_regressor (N, V) (rows sum to 1); vertices (B, V, 3) -> joints (B, N, 3)."""
    return torch.einsum("nv,bvc->bnc", joint_regressor, vertices)


def pose_features(rotmats: Tensor) -> Tensor:
    """rotmats (B, N, 3, 3) including the root -> (B, J*9): vec(R_k - I) for the J non-root
    joints, each 3x3 flattened row-major (the order of SMPL's ``posedirs``)."""
    eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
    return (rotmats[:, 1:] - eye).flatten(1)


def pose_blend_offsets(rotmats: Tensor, pose_dirs: Tensor) -> Tensor:
    """rotmats (B, N, 3, 3) including the root (ignored); pose_dirs (J*9, V, 3) metres ->
    pose-corrective offsets (B, V, 3), zero at the rest pose."""
    return blend_shapes(pose_features(rotmats), pose_dirs)


@lru_cache(maxsize=32)
def kinematic_levels(parents: tuple, device=None) -> tuple:
    """parents (N,) with -1 for the root -> ((joints, their parents), ...) per tree depth
    below the root, as int64 tensors on device: the joints of one level can be posed
    together."""
    parents = tuple(int(p) for p in parents)
    if parents[0] != -1 or any(not 0 <= p < k for k, p in enumerate(parents) if k > 0):
        raise ValueError(f"parents must start with -1 and list each parent before its child, got {parents}")
    depth = [0] * len(parents)
    for k in range(1, len(parents)):
        depth[k] = depth[parents[k]] + 1
    levels = []
    for d in range(1, max(depth) + 1):
        joints = [k for k in range(len(parents)) if depth[k] == d]
        levels.append((torch.tensor(joints, device=device),
                       torch.tensor([parents[k] for k in joints], device=device)))
    return tuple(levels)


def forward_kinematics(rotmats: Tensor, rest_joints: Tensor, parents) -> tuple[Tensor, Tensor]:
    """Pose a skeleton by local rotations about its rest joints.

    rotmats (B, N, 3, 3) local rotations, the root's first; rest_joints (B, N, 3) metres;
    parents (N,) ints, -1 for the root, parents before children.
    Returns (world_R (B, N, 3, 3), world_t (B, N, 3)): each joint's frame in the model
    frame (model_from_joint). world_t are the posed joint positions; the root stays at its
    rest position."""
    parents = tuple(int(p) for p in parents)
    B, N = rest_joints.shape[:2]
    if rotmats.shape != (B, N, 3, 3) or len(parents) != N:
        raise ValueError(f"forward_kinematics: rotmats {tuple(rotmats.shape)}, rest_joints "
                         f"{tuple(rest_joints.shape)}, {len(parents)} parents; expected (B, N, 3, 3), (B, N, 3), N")
    # Bone vectors (child minus parent, rest pose); the root's "bone" is its position.
    parent_index = torch.tensor(parents[1:], device=rest_joints.device)
    offsets = torch.cat([rest_joints[:, :1], rest_joints[:, 1:] - rest_joints[:, parent_index]], dim=1)
    world_R, world_t = rotmats, offsets
    for joints, par in kinematic_levels(parents, rest_joints.device):
        parent_R = world_R[:, par]
        R = parent_R @ rotmats[:, joints]
        t = (parent_R @ offsets[:, joints, :, None])[..., 0] + world_t[:, par]
        world_R = world_R.index_copy(1, joints, R)
        world_t = world_t.index_copy(1, joints, t)
    return world_R, world_t


def skin(vertices: Tensor, weights: Tensor, world_R: Tensor, world_t: Tensor, rest_joints: Tensor) -> Tensor:
    """Linear blend skinning.

    vertices (B, V, 3) rest-pose vertices (with blend shapes), metres; weights (V, N)
    (rows sum to 1); world_R (B, N, 3, 3), world_t (B, N, 3) from ``forward_kinematics``;
    rest_joints (B, N, 3). Returns posed vertices (B, V, 3), model frame:
    v' = sum_k w_vk (world_R_k (v - rest_joint_k) + world_t_k)."""
    B, N = world_t.shape[:2]
    # Per-joint affine maps acting on rest positions: R_k v + (t_k - R_k j_k).
    shift = world_t - (world_R @ rest_joints[..., None])[..., 0]
    A = torch.cat([world_R.reshape(B, N, 9), shift], dim=-1)  # (B, N, 12)
    T = weights @ A  # (B, V, 12) blended per vertex
    R = T[..., :9].reshape(B, -1, 3, 3)
    return (R @ vertices[..., None])[..., 0] + T[..., 9:]


def lbs(
    coeffs: Tensor,
    rotmats: Tensor,
    template: Tensor,
    shape_dirs: Tensor,
    pose_dirs: Tensor,
    joint_regressor: Tensor,
    parents,
    weights: Tensor,
) -> tuple[Tensor, Tensor]:
    """The full SMPL-family model, without translation.

    coeffs (B, S) shape (and expression) coefficients; rotmats (B, N, 3, 3) local rotations,
    root first; template (V, 3) metres; shape_dirs (S, V, 3); pose_dirs ((N-1)*9, V, 3);
    joint_regressor (N, V); parents (N,); weights (V, N).
    Returns (vertices (B, V, 3), joints (B, N, 3)) posed, model frame, metres."""
    v_shaped = template + blend_shapes(coeffs, shape_dirs)
    rest_joints = regress_joints(joint_regressor, v_shaped)
    v_posed = v_shaped + pose_blend_offsets(rotmats, pose_dirs)
    world_R, world_t = forward_kinematics(rotmats, rest_joints, parents)
    return skin(v_posed, weights, world_R, world_t, rest_joints), world_t

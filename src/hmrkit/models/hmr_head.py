"""HMR's iterative error feedback (IEF) head, with a perspective camera.

From the mean parameters, ``iterations`` times: the features, the box descriptor (CLIFF)
and the current estimate go through an MLP whose output is added to the estimate. The
estimate is  [global orientation 6D | pose 6D per regressed joint | shape | crop camera],
6D = the first two columns of the rotation matrix, column-major (hmrkit.geometry).
The crop camera (log s, tx, ty) is a weak-perspective camera in normalised crop units,
converted to the full-image perspective translation by ``crop_to_full_translation``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hmrkit.geometry.camera import crop_to_full_translation
from hmrkit.geometry.rotation import rotmat_from_6d, rotmat_to_6d
from hmrkit.types import BodyParams

# the body facing the camera, upright, in the OpenCV camera frame (y down, z forward)
CV_FROM_BODY = torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])


@dataclass(frozen=True)
class HeadConfig:
    hidden: int = 512
    iterations: int = 3
    dropout: float = 0.1


@dataclass(frozen=True)
class HeadOutput:
    """global_orient (B, 3, 3) camera frame; pose (B, Jr, 3, 3) of the regressed joints;
    shape (B, S) unclamped; cam (B, 3) = (log s, tx, ty); states: the estimate vector
    (B, D) after each iteration."""

    global_orient: Tensor
    pose: Tensor
    shape: Tensor
    cam: Tensor
    states: tuple


class HMRHead(nn.Module):
    def __init__(self, feature_dim: int, num_joints: int, mean_shape: Tensor, config: HeadConfig = HeadConfig()):
        super().__init__()
        self.config = config
        self.num_joints = num_joints
        self.num_shape = int(mean_shape.shape[-1])
        mean = torch.cat([
            rotmat_to_6d(CV_FROM_BODY),
            rotmat_to_6d(torch.eye(3)).repeat(num_joints),
            mean_shape.reshape(-1).float(),
            torch.zeros(3),
        ])
        self.register_buffer("mean", mean)
        D = mean.numel()
        self.dim = D
        self.mlp = nn.Sequential(
            nn.Linear(feature_dim + 3 + D, config.hidden), nn.ReLU(inplace=True), nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.hidden), nn.ReLU(inplace=True), nn.Dropout(config.dropout),
        )
        self.dec = nn.Linear(config.hidden, D)
        nn.init.xavier_uniform_(self.dec.weight, gain=0.01)
        nn.init.zeros_(self.dec.bias)

    def forward(self, features: Tensor, bbox_info: Tensor) -> HeadOutput:
        B = features.shape[0]
        state = self.mean.to(features.dtype).expand(B, -1)
        states = []
        for _ in range(self.config.iterations):
            state = state + self.dec(self.mlp(torch.cat([features, bbox_info, state], -1)))
            states.append(state)
        J, S = self.num_joints, self.num_shape
        go = rotmat_from_6d(state[:, :6])
        pose = rotmat_from_6d(state[:, 6:6 + 6 * J].reshape(B, J, 6))
        shape = state[:, 6 + 6 * J:6 + 6 * J + S]
        cam = state[:, -3:]
        return HeadOutput(go, pose, shape, cam, tuple(states))


def head_to_params(body, out: HeadOutput, joint_index: list[int], center: Tensor, size: Tensor,
                   K: Tensor) -> BodyParams:
    """HeadOutput -> BodyParams of ``body`` in the full-image camera frame: the regressed
    joints at ``joint_index`` of the pose, the others at the mean (identity); shape
    clamped to the body's range; translation from the crop camera (CLIFF)."""
    B = out.pose.shape[0]
    mean = body.mean_params(B)
    pose = mean.pose.to(out.pose.dtype).index_copy(1, torch.as_tensor(joint_index), out.pose)
    shape = out.shape
    if body.shape_range is not None:
        shape = shape.clamp(*body.shape_range)
    cam = torch.stack([out.cam[:, 0].exp(), out.cam[:, 1], out.cam[:, 2]], -1)
    transl = crop_to_full_translation(cam, center, size, K)
    expr = None if mean.expression is None else mean.expression.to(out.pose.dtype)
    return BodyParams(out.global_orient, pose, shape, transl, expr)

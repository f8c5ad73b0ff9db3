"""Frozen dataclasses shared by every module of hmrkit.

Conventions (see DESIGN.md): metres and radians; rotations are rotation matrices;
the camera frame is OpenCV's (x right, y down, z forward). Body frames are the SMPL
convention for every body model: y up, the body faces +z, its left is +x.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Optional

import numpy as np
import torch
from torch import Tensor


def _map_tensors(obj, fn):
    """Apply fn to every tensor field of a frozen dataclass, returning a new one."""
    changes = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, Tensor):
            changes[f.name] = fn(value)
    return replace(obj, **changes)


@dataclass(frozen=True)
class BodyParams:
    """Parameters of a body model, uniform in layout across body models.

    global_orient: (B, 3, 3) rotation of the body frame (see module docstring).
    pose:          (B, J, 3, 3) local rotations of the model's regression skeleton
                   (``BodyModel.pose_joint_names``), parents before children.
    shape:         (B, S) Anny phenotypes in [0, 1], or SMPL betas.
    transl:        (B, 3) metres, added after the global rotation.
    expression:    (B, E) or None; Anny facial actions in [0, 1], or SMPL-X expression.
    """

    global_orient: Tensor
    pose: Tensor
    shape: Tensor
    transl: Tensor
    expression: Optional[Tensor] = None

    def __post_init__(self):
        b = self.global_orient.shape[0]
        expect = {
            "global_orient": (b, 3, 3),
            "transl": (b, 3),
        }
        for name, shape in expect.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"BodyParams.{name}: expected shape {shape}, got {got}")
        if self.pose.ndim != 4 or self.pose.shape[0] != b or self.pose.shape[-2:] != (3, 3):
            raise ValueError(f"BodyParams.pose: expected shape ({b}, J, 3, 3), got {tuple(self.pose.shape)}")
        if self.shape.ndim != 2 or self.shape.shape[0] != b:
            raise ValueError(f"BodyParams.shape: expected shape ({b}, S), got {tuple(self.shape.shape)}")
        if self.expression is not None and (self.expression.ndim != 2 or self.expression.shape[0] != b):
            raise ValueError(
                f"BodyParams.expression: expected shape ({b}, E), got {tuple(self.expression.shape)}"
            )

    @property
    def batch_size(self) -> int:
        return self.global_orient.shape[0]

    def map(self, fn) -> "BodyParams":
        """A copy with fn applied to every tensor (e.g. ``lambda t: t.detach()``)."""
        return _map_tensors(self, fn)

    def detach(self) -> "BodyParams":
        return self.map(lambda t: t.detach())

    def to(self, *args, **kwargs) -> "BodyParams":
        return self.map(lambda t: t.to(*args, **kwargs))

    def __getitem__(self, index) -> "BodyParams":
        """Select batch elements; an int index keeps the batch dimension."""
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return self.map(lambda t: t[index])

    @staticmethod
    def cat(items: "list[BodyParams]") -> "BodyParams":
        first = items[0]
        expression = None
        if first.expression is not None:
            expression = torch.cat([p.expression for p in items])
        return BodyParams(
            global_orient=torch.cat([p.global_orient for p in items]),
            pose=torch.cat([p.pose for p in items]),
            shape=torch.cat([p.shape for p in items]),
            transl=torch.cat([p.transl for p in items]),
            expression=expression,
        )


@dataclass(frozen=True)
class BodyOutput:
    """What a body model produces.

    vertices: (B, V, 3) metres, in the frame of ``global_orient``/``transl``
              (the camera frame once the body is placed in front of a camera).
    joints:   (B, J+1, 3) the regression skeleton's joints, root first
              (``BodyModel.joint_names``), same frame.
    faces:    (F, 3) int64 triangles, shared by the batch.
    """

    vertices: Tensor
    joints: Tensor
    faces: Tensor

    def map(self, fn) -> "BodyOutput":
        return _map_tensors(self, fn)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera, OpenCV frame (x right, y down, z forward), metres and pixels.

    K: (B, 3, 3) intrinsics [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels.
    R: (B, 3, 3) rotation cam_from_world; identity when the body is already in the
       camera frame (hmrkit's estimators place it there through global_orient/transl).
    t: (B, 3) translation cam_from_world, metres.
    """

    K: Tensor
    R: Optional[Tensor] = None
    t: Optional[Tensor] = None

    def __post_init__(self):
        if self.K.ndim != 3 or self.K.shape[-2:] != (3, 3):
            raise ValueError(f"Camera.K: expected shape (B, 3, 3), got {tuple(self.K.shape)}")

    @property
    def batch_size(self) -> int:
        return self.K.shape[0]

    def project(self, points_world: Tensor) -> Tensor:
        """points (B, N, 3) metres -> (B, N, 2) pixels."""
        from hmrkit.geometry.camera import project, transform_points

        pts = points_world
        if self.R is not None:
            t = self.t if self.t is not None else torch.zeros_like(self.R[..., 0])
            pts = transform_points(pts, self.R, t)
        return project(pts, self.K)

    def map(self, fn) -> "Camera":
        return _map_tensors(self, fn)


@dataclass(frozen=True)
class Evidence:
    """2D (and optional 3D) evidence of one person in one image.

    image_size:  (H, W) pixels.
    keypoints2d: (K, 3) float32: x, y in pixels and confidence in [0, 1] (0 = missing),
                 in ``convention`` (a name known to ``hmrkit.conventions``).
    bbox:        (4,) float32 xyxy pixels.
    keypoints3d: (K, 4) or None: metric x, y, z root-relative (OpenCV camera axes) and a
                 confidence, same convention.
    mask:        (H, W) float32 in [0, 1] person mask, or None.
    source:      where it came from (``mediapipe``, ``coco-json:FILE``, ...).
    """

    image_size: tuple
    keypoints2d: np.ndarray
    convention: str
    bbox: np.ndarray
    keypoints3d: Optional[np.ndarray] = None
    mask: Optional[np.ndarray] = None
    source: str = ""

    def __post_init__(self):
        kp = np.asarray(self.keypoints2d)
        if kp.ndim != 2 or kp.shape[1] != 3:
            raise ValueError(f"Evidence.keypoints2d: expected shape (K, 3), got {kp.shape}")
        if np.asarray(self.bbox).shape != (4,):
            raise ValueError(f"Evidence.bbox: expected shape (4,), got {np.asarray(self.bbox).shape}")


@dataclass(frozen=True)
class Prediction:
    """One estimator's result for a batch (frames or people).

    params: body parameters in the camera frame (global_orient/transl place the body).
    camera: the camera used (K; R, t identity).
    output: the body model's output for ``params``, or None if not computed.
    method: the estimator's name.
    valid:  (B,) bool, False where no person was found or the fit failed.
    info:   free-form diagnostics (losses, timings), not part of the contract.
    """

    params: BodyParams
    camera: Camera
    method: str
    valid: Tensor
    output: Optional[BodyOutput] = None
    info: dict = field(default_factory=dict)

"""Frozen dataclasses shared by every module of hmrkit.

Conventions (see DESIGN.md): metres and radians; rotations are rotation matrices;
the camera frame is OpenCV's (x right, y down, z forward). Body frames are the SMPL
convention for every body model: y up, the body faces +z, its left is +x.
"""

from __future__ import annotations

import numbers
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
        if isinstance(index, numbers.Integral):
            index = int(index)
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


def _as_tensor(x, dtype=torch.float32) -> Optional[Tensor]:
    if x is None:
        return None
    return x.to(dtype) if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x), dtype=dtype)


@dataclass(frozen=True)
class Observation:
    """What every estimator reads: a batch of person-observations, one per (frame, person).

    Leading dims ``lead`` are (B,) for single frames, or (B, T) for B windows of T
    consecutive frames of one track each (``is_window``). Pixels of the full image;
    confidences in [0, 1], 0 = missing (coordinates of missing points are 0).

    body:            (*lead, K, 3) body keypoints x, y px + confidence, in ``body_convention``;
    body_convention: a name known to ``hmrkit.conventions`` (``mediapipe33``, ``coco17``, ...);
    K:               (*lead, 3, 3) intrinsics, px (the principal point is K's, not the image centre);
    image_size:      (*lead, 2) (H, W) px of the image the evidence was found in;
    bbox:            (*lead, 4) the person's box, xyxy px;
    frame_index:     (*lead,) int64 frame of the input (0 for a photo);
    track_id:        (*lead,) int64 identity of the person across frames (-1: untracked);
    body3d:          (*lead, K, 4) metric root-relative body keypoints (OpenCV camera axes,
                     metres) + confidence (MediaPipe's world landmarks), or None;
    hands:           (*lead, 2, 21, 3) the subject's left then right hand (hand21), px +
                     confidence, or None;
    face:            (*lead, F, 3) face landmarks in the ``face`` convention, or None;
    mask:            (*lead, M, M) the person mask sampled in the square ``mask_box``, or None;
    mask_box:        (*lead, 3) centre x, y and side (px) of that square, or None.
    """

    body: Tensor
    body_convention: str
    K: Tensor
    image_size: Tensor
    bbox: Tensor
    frame_index: Tensor
    track_id: Tensor
    body3d: Optional[Tensor] = None
    hands: Optional[Tensor] = None
    face: Optional[Tensor] = None
    mask: Optional[Tensor] = None
    mask_box: Optional[Tensor] = None

    def __post_init__(self):
        from hmrkit import conventions as C

        if self.body.ndim not in (3, 4) or self.body.shape[-1] != 3:
            raise ValueError(f"Observation.body: expected shape (B, K, 3) or (B, T, K, 3), got {tuple(self.body.shape)}")
        lead = tuple(self.body.shape[:-2])
        n = self.body.shape[-2]
        try:
            names = C.get(self.body_convention).names
        except Exception:
            raise ValueError(f"Observation.body_convention: unknown convention {self.body_convention!r}") from None
        if len(names) != n:
            raise ValueError(f"Observation.body: {self.body_convention} has {len(names)} keypoints, got {n}")
        expect = {"K": lead + (3, 3), "image_size": lead + (2,), "bbox": lead + (4,),
                  "frame_index": lead, "track_id": lead}
        if self.body3d is not None:
            expect["body3d"] = lead + (n, 4)
        if self.hands is not None:
            expect["hands"] = lead + (2, 21, 3)
        if self.face is not None:
            expect["face"] = lead + (len(C.FACE), 3)
        if (self.mask is None) != (self.mask_box is None):
            raise ValueError("Observation.mask and mask_box: give both or neither")
        if self.mask_box is not None:
            expect["mask_box"] = lead + (3,)
            if tuple(self.mask.shape[:-2]) != lead or self.mask.shape[-1] != self.mask.shape[-2]:
                raise ValueError(f"Observation.mask: expected shape {lead + ('M', 'M')}, got {tuple(self.mask.shape)}")
        for name, shape in expect.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"Observation.{name}: expected shape {shape}, got {got}")
        f = self.K[..., 0, 0], self.K[..., 1, 1]
        if not (torch.isfinite(self.K).all() and (f[0] > 0).all() and (f[1] > 0).all()):
            raise ValueError("Observation.K: the focal lengths must be finite and positive")

    # ------------------------------------------------------------------ shape
    @property
    def lead(self) -> tuple:
        return tuple(self.body.shape[:-2])

    @property
    def batch_size(self) -> int:
        return self.body.shape[0]

    @property
    def is_window(self) -> bool:
        return self.body.ndim == 4

    def map(self, fn) -> "Observation":
        return _map_tensors(self, fn)

    def __getitem__(self, index) -> "Observation":
        """Select along the first dim (an int keeps it)."""
        if isinstance(index, numbers.Integral):
            index = int(index)
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return self.map(lambda t: t[index])

    def flatten(self) -> "Observation":
        """(B, T, ...) windows -> (B * T, ...) frames; frames stay as they are."""
        if not self.is_window:
            return self
        return self.map(lambda t: t.reshape(-1, *t.shape[2:]))

    def unflatten(self, T: int) -> "Observation":
        """(B * T, ...) frames -> (B, T, ...) windows."""
        return self.map(lambda t: t.reshape(-1, T, *t.shape[1:]))

    @staticmethod
    def cat(items: "list[Observation]", dim: int = 0) -> "Observation":
        """Concatenate along the batch (dim 0) or, for windows, time (dim 1). Optional
        fields survive only when every item has them."""
        first = items[0]
        if any(o.body_convention != first.body_convention for o in items):
            raise ValueError("Observation.cat: the items' body conventions differ")
        changes = {}
        for f in fields(first):
            vals = [getattr(o, f.name) for o in items]
            if isinstance(vals[0], Tensor) or vals[0] is None:
                changes[f.name] = None if any(v is None for v in vals) else torch.cat(vals, dim)
        if changes["mask"] is None or changes["mask_box"] is None:
            changes["mask"] = changes["mask_box"] = None
        return replace(first, **changes)

    def stack_time(self) -> "Observation":
        """T frames (T, ...) of one track -> one window (1, T, ...)."""
        return self.map(lambda t: t[None])

    # ------------------------------------------------------------------ evidence
    def holistic(self) -> tuple:
        """The evidence as the fitter reads it: (keypoints (*lead, K, 3), convention,
        3D keypoints (*lead, K, 4) or None). With hands or face: ``holistic`` (body as
        mediapipe33, both hands, the face; missing parts at confidence 0), else the body
        in its own convention."""
        from hmrkit import conventions as C

        if self.hands is None and self.face is None:
            return self.body, self.body_convention, self.body3d
        lead = self.lead
        body, b3 = self.body, self.body3d
        if self.body_convention != "mediapipe33":
            flat = body.reshape(-1, *body.shape[-2:])
            body = torch.as_tensor(C.convert_with_confidence(flat.numpy(), self.body_convention, "mediapipe33"),
                                   dtype=self.body.dtype).reshape(*lead, len(C.MEDIAPIPE33), 3)
            b3 = None
        hands = self.hands if self.hands is not None else body.new_zeros(*lead, 2, 21, 3)
        face = self.face if self.face is not None else body.new_zeros(*lead, len(C.FACE), 3)
        kp = torch.cat([body, hands.reshape(*lead, 42, 3), face], -2)
        k3 = None
        if b3 is not None:
            k3 = torch.cat([b3, b3.new_zeros(*lead, kp.shape[-2] - b3.shape[-2], 4)], -2)
        return kp, "holistic", k3

    @staticmethod
    def from_evidence(evidence: "list[Evidence]", K, frame_index=None, track_id=None,
                      mask_resolution: int = 64) -> "Observation":
        """One Observation (B,) from B Evidence values of one convention (``holistic`` is
        split into body, hands and face). K: (B, 3, 3) or (3, 3) px. Non-finite keypoint
        values count as missing."""
        if not evidence:
            raise ValueError("Observation.from_evidence: no evidence given")
        B = len(evidence)
        conv = evidence[0].convention
        if any(e.convention != conv for e in evidence):
            raise ValueError("Observation.from_evidence: the evidence comes in different conventions")

        def clean(a):
            a = np.array(a, dtype=np.float32)
            bad = ~np.isfinite(a).all(-1)
            a[bad] = 0.0
            return a

        kp = np.stack([clean(e.keypoints2d) for e in evidence])
        k3 = None
        if all(e.keypoints3d is not None for e in evidence):
            k3 = np.stack([clean(e.keypoints3d) for e in evidence])
        kp, body_conv, k3, hands, face = split_holistic(kp, conv, k3)
        K = np.asarray(K, dtype=np.float32)
        if K.shape == (3, 3):
            K = np.repeat(K[None], B, 0)
        mask = mask_box = None
        if all(e.mask is not None for e in evidence):
            boxes = np.stack([np.asarray(e.bbox, np.float32) for e in evidence])
            c = 0.5 * (boxes[:, :2] + boxes[:, 2:])
            side = np.maximum(boxes[:, 2:] - boxes[:, :2], 1.0).max(-1) * 1.1
            mask_box = np.concatenate([c, side[:, None]], -1).astype(np.float32)
            mask = np.stack([_crop_square(np.asarray(e.mask, np.float32), mb, mask_resolution)
                             for e, mb in zip(evidence, mask_box)])
        fi = np.zeros(B, np.int64) if frame_index is None else np.asarray(frame_index, np.int64).reshape(B)
        ti = np.full(B, -1, np.int64) if track_id is None else np.asarray(track_id, np.int64).reshape(B)
        return Observation(
            body=_as_tensor(kp), body_convention=body_conv, K=_as_tensor(K),
            image_size=torch.as_tensor(np.array([e.image_size for e in evidence], np.int64)),
            bbox=_as_tensor(np.stack([np.asarray(e.bbox, np.float32) for e in evidence])),
            frame_index=torch.as_tensor(fi), track_id=torch.as_tensor(ti), body3d=_as_tensor(k3),
            hands=_as_tensor(hands), face=_as_tensor(face), mask=_as_tensor(mask), mask_box=_as_tensor(mask_box))


def split_holistic(kp, convention: str, kp3d=None) -> tuple:
    """(B, K, 3) keypoints in ``convention`` (numpy or torch) -> (body, body convention,
    body 3D or None, hands (B, 2, 21, 3) or None, face (B, F, 3) or None): ``holistic`` is
    split into the mediapipe33 body, both hands and the face; any other convention is all body."""
    from hmrkit import conventions as C

    if convention != "holistic":
        return kp, convention, kp3d, None, None
    nb, nh = len(C.MEDIAPIPE33), 21
    hands = kp[:, nb:nb + 2 * nh].reshape(kp.shape[0], 2, nh, 3)
    return kp[:, :nb], "mediapipe33", None if kp3d is None else kp3d[:, :nb], hands, kp[:, nb + 2 * nh:]


def _crop_square(mask: np.ndarray, box, resolution: int) -> np.ndarray:
    """(H, W) mask -> (R, R) float32 sampled in the square box (cx, cy, side px); 0 outside."""
    H, W = mask.shape
    g = (np.arange(resolution) + 0.5) / resolution - 0.5
    xs = np.floor(box[0] + g * box[2]).astype(int)
    ys = np.floor(box[1] + g * box[2]).astype(int)
    out = np.zeros((resolution, resolution), np.float32)
    okx, oky = (xs >= 0) & (xs < W), (ys >= 0) & (ys < H)
    out[np.ix_(oky, okx)] = mask[np.ix_(ys[oky], xs[okx])]
    return out


@dataclass(frozen=True)
class Features:
    """What an encoder gives a head (``hmrkit.models.encoders``).

    tokens: (B, N, C) one token per input element (keypoint tokens; a class token first
            when the encoder has one), or None;
    volume: (B, C, H, W) a spatial feature volume aligned with the person's crop (the
            evidence-map encoder's), or None;
    pooled: (B, D) one vector per person: what a global head (HMR's) reads.
    """

    pooled: Tensor
    tokens: Optional[Tensor] = None
    volume: Optional[Tensor] = None

    def __post_init__(self):
        b = self.pooled.shape[0]
        if self.pooled.ndim != 2:
            raise ValueError(f"Features.pooled: expected shape (B, D), got {tuple(self.pooled.shape)}")
        if self.tokens is not None and (self.tokens.ndim != 3 or self.tokens.shape[0] != b):
            raise ValueError(f"Features.tokens: expected shape ({b}, N, C), got {tuple(self.tokens.shape)}")
        if self.volume is not None and (self.volume.ndim != 4 or self.volume.shape[0] != b):
            raise ValueError(f"Features.volume: expected shape ({b}, C, H, W), got {tuple(self.volume.shape)}")

    def map(self, fn) -> "Features":
        return _map_tensors(self, fn)

    def __getitem__(self, index) -> "Features":
        if isinstance(index, numbers.Integral):
            index = int(index)
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return self.map(lambda t: t[index])


@dataclass(frozen=True)
class Prediction:
    """One estimator's result for a batch of B person-observations (``Observation``).

    params:   body parameters in the camera frame (global_orient/transl place the body).
    camera:   the camera used (K (B, 3, 3); R, t None: the body is in the camera frame).
    valid:    (B,) bool, False where there was too little evidence or the estimate failed.
    px_error: (B,) float, mean distance (px) between the body's projected keypoints and
              the confident body keypoints of the evidence; NaN where not valid.
    method:   the estimator's name (``fit``, ``spin``, ``spin+fit``, ...).
    output:   the body model's output for ``params``, or None if not computed.
    features: the encoder's ``Features`` (learned methods), or None.
    timings:  seconds per stage of this call (``{"regress": 0.01, "fit": 0.4}``); diagnostics.
    """

    params: BodyParams
    camera: Camera
    valid: Tensor
    px_error: Tensor
    method: str
    output: Optional[BodyOutput] = None
    features: Optional[Features] = None
    timings: dict = field(default_factory=dict)

    def __post_init__(self):
        b = self.params.batch_size
        for name in ("valid", "px_error"):
            got = tuple(getattr(self, name).shape)
            if got != (b,):
                raise ValueError(f"Prediction.{name}: expected shape ({b},), got {got}")
        if self.camera.batch_size != b:
            raise ValueError(f"Prediction.camera: expected batch {b}, got {self.camera.batch_size}")

    @property
    def batch_size(self) -> int:
        return self.params.batch_size

    def __getitem__(self, index) -> "Prediction":
        """Select batch elements (an int keeps the batch dimension)."""
        if isinstance(index, numbers.Integral):
            index = int(index)
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return Prediction(
            params=self.params[index], camera=self.camera.map(lambda t: t[index]),
            valid=self.valid[index], px_error=self.px_error[index], method=self.method,
            output=None if self.output is None else BodyOutput(
                self.output.vertices[index], self.output.joints[index], self.output.faces),
            features=None if self.features is None else self.features[index], timings=dict(self.timings))

    @staticmethod
    def cat(items: "list[Prediction]") -> "Prediction":
        """Concatenate along the batch (outputs and features only when every item has them)."""
        first = items[0]
        out = None
        if all(p.output is not None for p in items):
            out = BodyOutput(torch.cat([p.output.vertices for p in items]),
                             torch.cat([p.output.joints for p in items]), first.output.faces)
        feats = None
        if all(p.features is not None for p in items):
            def cat_opt(name):
                vals = [getattr(p.features, name) for p in items]
                return None if any(v is None for v in vals) else torch.cat(vals)
            feats = Features(pooled=cat_opt("pooled"), tokens=cat_opt("tokens"), volume=cat_opt("volume"))
        timings = {}
        for p in items:
            for k, v in p.timings.items():
                timings[k] = timings.get(k, 0.0) + v
        return Prediction(
            params=BodyParams.cat([p.params for p in items]),
            camera=Camera(K=torch.cat([p.camera.K for p in items])),
            valid=torch.cat([p.valid for p in items]), px_error=torch.cat([p.px_error for p in items]),
            method=first.method, output=out, features=feats, timings=timings)

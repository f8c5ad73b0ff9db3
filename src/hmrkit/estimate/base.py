"""The estimator contract: what every method of hmrkit takes and gives.

Every method reads an ``Observation`` (``hmrkit.types``: per person the body, hand and face
keypoints with confidences, metric 3D landmarks when present, the box, the mask, the image
size, K, the frame index and the track id; a time axis for windows) and gives a
``Prediction`` (body parameters in the camera frame, the camera, validity, the typed
reprojection error, optional features). Three kinds:

- ``ImageEstimator``: frames are independent; ``predict(obs)`` on a (B,) batch.
- ``WindowEstimator``: ``predict_window(obs)`` on (B, T) windows of consecutive frames of one
  track each (MAED; the fitter, which shares one shape over a window and smooths it);
  ``window_size`` says the T the pipeline should schedule. One with a ``context`` (MAED's
  half window) is also handed up to ``context`` frames of the track *before* the new ones,
  ``predict_window(obs, init, context=c)``, and predicts only the frames after them: its
  sliding windows run across the schedulers' chunk boundaries (``window_context``).
- ``StreamEstimator``: keeps state across the ordered frames of one track (online
  adaptation, DynaBOA): ``step(obs)`` on one frame at a time, ``reset()`` between tracks.

An estimator may be several kinds (the fitter is an image and a window estimator). The
"+fit" refinement is ``Refined(base, fitter)``, a wrapper around any image or window
estimator; ``hmrkit.estimate.registry`` builds every method by name.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from hmrkit.types import BodyParams, Observation, Prediction, split_holistic


@runtime_checkable
class ImageEstimator(Protocol):
    name: str

    def predict(self, obs: Observation, init: Optional[BodyParams] = None) -> Prediction:
        """obs (B,) frames -> Prediction (B,). init: a starting estimate (B,) or None."""


@runtime_checkable
class WindowEstimator(Protocol):
    name: str
    window_size: int

    def predict_window(self, obs: Observation, init: Optional[BodyParams] = None) -> Prediction:
        """obs (B, T) windows of one track each -> Prediction (B * T,), window-major.
        init: a starting estimate (B * T,) or None."""


@runtime_checkable
class StreamEstimator(Protocol):
    name: str

    def step(self, obs: Observation) -> Prediction:
        """obs (1,) the next frame of the current track -> Prediction (1,)."""

    def reset(self) -> None:
        """Forget the state: the next ``step`` starts a new track."""


# The parts of an Observation an estimator may read; it declares the ones it does read as
# ``evidence`` (a frozenset), so the pipeline asks the detector for nothing more (hands,
# face and the mask cost a video a third of its detection time).
EVIDENCE = frozenset({"body", "body3d", "hands", "face", "mask"})


def evidence_used(estimator) -> frozenset:
    """What ``estimator`` reads of an Observation (EVIDENCE when it does not say)."""
    return frozenset(getattr(estimator, "evidence", EVIDENCE))


def window_context(estimator) -> int:
    """How many frames before a chunk a window estimator wants to see (0: none)."""
    return int(getattr(estimator, "context", 0) or 0) if "window" in kinds(estimator) else 0


def kinds(estimator) -> tuple:
    """The kinds an estimator implements: a subset of ("image", "window", "stream")."""
    out = []
    if callable(getattr(estimator, "predict", None)):
        out.append("image")
    if callable(getattr(estimator, "predict_window", None)) and getattr(estimator, "window_size", None):
        out.append("window")
    if callable(getattr(estimator, "step", None)) and callable(getattr(estimator, "reset", None)):
        out.append("stream")
    return tuple(out)


@dataclass
class Refined:
    """``base`` then the fitting refinement, started from ``base``'s estimate: "spin+fit".

    base: an image (and optionally window) estimator; fitter: a ``FitEstimator`` (or any
    estimator with ``refine(obs, init)`` and ``refine_window(obs, init)``). As a window
    estimator it uses the fitter's window (the refinement is what couples the frames)."""

    base: object
    fitter: object

    @property
    def name(self) -> str:
        return f"{self.base.name}+fit"

    @property
    def window_size(self) -> int:
        return getattr(self.fitter, "window_size", 0)

    @property
    def body(self):
        return self.base.body

    @property
    def evidence(self) -> frozenset:
        return evidence_used(self.base) | evidence_used(self.fitter)

    def predict(self, obs: Observation, init: Optional[BodyParams] = None) -> Prediction:
        if obs.is_window:
            return self.predict_window(obs, init)
        start = self.base.predict(obs, init)
        return _renamed(self.fitter.refine(obs, start), self.name, start)

    @property
    def context(self) -> int:
        return window_context(self.base)

    def predict_window(self, obs: Observation, init: Optional[BodyParams] = None, context: int = 0) -> Prediction:
        """As the base's; with ``context``, only the frames after it are refined."""
        if context:
            start = self.base.predict_window(obs, init, context=context)
            obs = obs[:, context:]
        elif "window" in kinds(self.base):
            start = self.base.predict_window(obs, init)
        else:
            start = self.base.predict(obs.flatten(), init)
        return _renamed(self.fitter.refine_window(obs, start), self.name, start)


def _renamed(pred: Prediction, name: str, start: Prediction) -> Prediction:
    from dataclasses import replace

    timings = dict(start.timings)
    for k, v in pred.timings.items():
        timings[k] = timings.get(k, 0.0) + v
    return replace(pred, method=name, features=start.features, timings=timings)


# ---------------------------------------------------------------------------- helpers


def observation_from_arrays(kp2d, convention: str, K, kp3d=None, image_size=None, frame_index=None,
                            track_id=None) -> Observation:
    """An Observation (B,) from stacked arrays, for code that holds keypoints rather than
    ``Evidence`` (evaluation, training, benchmarks).

    kp2d (B, K, 3) px + confidence in ``convention`` (``holistic`` is split into body,
    hands and face); K (B, 3, 3) px; kp3d (B, K, 4) metric root-relative or None;
    image_size (H, W) or (B, 2), required: the image the keypoints are in."""
    from hmrkit.detect.base import bbox_from_keypoints

    kp = torch.as_tensor(np.asarray(kp2d), dtype=torch.float32) if not isinstance(kp2d, Tensor) else kp2d.float()
    kp = torch.where(torch.isfinite(kp).all(-1, keepdim=True), kp, torch.zeros_like(kp))
    B = kp.shape[0]
    K = torch.as_tensor(K, dtype=torch.float32)
    if K.shape == (3, 3):
        K = K.expand(B, 3, 3).clone()
    if image_size is None:
        raise ValueError("observation_from_arrays: image_size (H, W) is required")
    size = torch.as_tensor(np.asarray(image_size), dtype=torch.int64)
    if size.shape == (2,):
        size = size.expand(B, 2).clone()
    k3 = None if kp3d is None else torch.as_tensor(kp3d, dtype=torch.float32)
    kp, body_conv, k3, hands, face = split_holistic(kp, convention, k3)
    fi = torch.zeros(B, dtype=torch.int64) if frame_index is None else torch.as_tensor(frame_index).long()
    ti = torch.full((B,), -1, dtype=torch.int64) if track_id is None else torch.as_tensor(track_id).long()
    bbox = torch.as_tensor(np.stack([bbox_from_keypoints(k.numpy(), tuple(s.tolist()), min_confidence=0.2)
                                     for k, s in zip(kp, size)]))
    return Observation(body=kp, body_convention=body_conv, K=K, image_size=size, bbox=bbox,
                       frame_index=fi, track_id=ti, body3d=k3, hands=hands, face=face)


def body_px_error(body, params: BodyParams, obs: Observation, min_confidence: float = 0.2,
                  output=None) -> Tensor:
    """(B,) mean distance (px) between the body's projected keypoints and the observation's
    body keypoints with confidence >= min_confidence, in the observation's convention where
    the body has it, else converted to mediapipe33; NaN where none is confident."""
    from hmrkit import conventions as C
    from hmrkit.geometry.camera import project

    conv = obs.body_convention
    kp = obs.body
    if conv not in body.regressors:
        kp = torch.as_tensor(C.convert_with_confidence(kp.numpy(), conv, "mediapipe33"), dtype=kp.dtype)
        conv = "mediapipe33"
    with torch.no_grad():
        X = body.keypoints(output, conv) if output is not None else body.forward_keypoints(params, (conv,))[conv]
        uv = project(X, obs.K.to(X.dtype))
    w = ((kp[..., 2] >= min_confidence) & body.keypoint_valid(conv).bool()).to(uv.dtype)
    d = (uv - kp[..., :2].to(uv.dtype)).norm(dim=-1)
    n = w.sum(-1)
    return torch.where(n > 0, (d * w).sum(-1) / n.clamp(min=1), torch.full_like(n, math.nan))


class Timer:
    """``with Timer(timings, "fit"):`` adds the block's seconds to timings["fit"]."""

    def __init__(self, timings: dict, key: str):
        self.timings, self.key = timings, key

    def __enter__(self):
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.timings[self.key] = self.timings.get(self.key, 0.0) + time.perf_counter() - self.t

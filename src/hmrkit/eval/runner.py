"""Running an estimator on a set: ``EvalInputs`` in, ``Estimates`` out. ``run_estimator``
is the one place the evaluation calls an estimator."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable, Optional

import torch
from torch import Tensor


@dataclass(frozen=True)
class EvalInputs:
    """What an estimator sees for N frames.

    keypoints2d: (N, K, 3) x, y px and confidence, in ``convention``.
    K:           (N, 3, 3) intrinsics, px.
    keypoints3d: (N, K, 4) root-relative metric 3D keypoints (camera axes) + confidence,
                 or None.
    found:       (N,) bool: evidence exists (a person was detected); the others are not
                 given to the estimator.
    image_size:  (N, 2) int64 (H, W) px of each frame's image.
    clips:       ((start, stop), ...) runs of consecutive video frames, or () when the
                 frames are independent.
    mask, mask_box: (N, M, M) the person mask in the square (N, 3) box (centre x, y, side
                 px) of ``Observation``, when the detector gave one for every found frame
                 (as ``hmrkit run`` passes it); else None."""

    keypoints2d: Tensor
    convention: str
    K: Tensor
    keypoints3d: Optional[Tensor]
    found: Tensor
    image_size: Tensor
    clips: tuple = ()
    mask: Optional[Tensor] = None
    mask_box: Optional[Tensor] = None

    def __len__(self) -> int:
        return int(self.keypoints2d.shape[0])


@dataclass(frozen=True)
class Estimates:
    """An estimator's output on N frames (frames it was not run on hold zeros).

    vertices (N, V, 3), joints (N, J, 3): metres, camera frame, the estimator's body model;
    valid (N,) bool: a valid estimate exists; px (N,) its reprojection error or NaN;
    seconds: time spent in the estimator, in total."""

    vertices: Tensor
    joints: Tensor
    faces: Tensor
    valid: Tensor
    px: Tensor
    seconds: float

    def output(self):
        from hmrkit.types import BodyOutput

        return BodyOutput(self.vertices, self.joints, self.faces)


def run_estimator(estimator, body, inputs: EvalInputs, batch: int, progress: Optional[Callable] = None) -> Estimates:
    """Run ``estimator`` (any method of ``hmrkit.estimate``) on ``inputs``.

    Independent frames: the found ones, ``batch`` at a time (``predict``). Clips: chunks of
    ``batch`` consecutive frames; a chunk whose found frames are consecutive is one window
    (``predict_window`` of a window estimator, as ``hmrkit run`` schedules a track, with the
    clip's frames before it as context when the estimator asks, ``window_context``), the
    others are frames; each chunk starts from the last valid estimate of the previous one
    (``init``). A stream estimator (online adaptation) on clips: each clip's found frames
    one at a time, in order, after a ``reset()`` (one track per clip). progress(k) after
    each call."""
    from hmrkit.estimate import kinds, observation_from_arrays
    from hmrkit.estimate.base import window_context
    from hmrkit.types import BodyParams

    N = len(inputs)
    found = inputs.found.bool()
    valid = torch.zeros(N, dtype=torch.bool)
    px = torch.full((N,), math.nan, dtype=torch.float64)
    store = {}
    seconds = 0.0
    video = bool(inputs.clips)
    if video and "stream" in kinds(estimator) and "window" not in kinds(estimator):
        return _run_stream(estimator, body, inputs, progress)
    if video and "window" in kinds(estimator):  # a window never outgrows the estimator's own
        batch = min(batch, int(estimator.window_size))
    C = window_context(estimator) if video else 0
    if C:  # as hmrkit run's chunks: a whole window of new frames after the context
        batch = int(estimator.window_size)
    if video:
        chunks = [(list(range(s, min(s + batch, b))), ci) for ci, (a, b) in enumerate(inputs.clips)
                  for s in range(a, b, batch)]
    else:
        idx = torch.nonzero(found)[:, 0].tolist()
        chunks = [(idx[s:s + batch], None) for s in range(0, len(idx), batch)]
    prev, prev_clip = None, None
    for frames, clip in chunks:
        if clip != prev_clip:
            prev, prev_clip = None, clip
        sel = [i for i in frames if bool(found[i])]
        if not sel:
            continue
        contiguous = video and sel == list(range(sel[0], sel[0] + len(sel)))
        ctx = []  # a window estimator's context: the found frames just before, of the same clip
        if contiguous and C:
            a = inputs.clips[clip][0]
            j = sel[0] - 1
            while j >= a and len(ctx) < C and bool(found[j]):
                ctx.insert(0, j)
                j -= 1
        rows = ctx + sel
        init = BodyParams.cat([prev] * len(rows)) if video and prev is not None else None
        k3 = None if inputs.keypoints3d is None else inputs.keypoints3d[rows]
        obs = observation_from_arrays(inputs.keypoints2d[rows], inputs.convention, inputs.K[rows], kp3d=k3,
                                      image_size=inputs.image_size[rows], frame_index=rows)
        if inputs.mask is not None:
            obs = replace(obs, mask=inputs.mask[rows], mask_box=inputs.mask_box[rows])
        t0 = time.perf_counter()
        if contiguous and "window" in kinds(estimator):
            if ctx:
                pred = estimator.predict_window(obs.stack_time(), init, context=len(ctx))
            else:
                pred = estimator.predict_window(obs.stack_time(), init)
        else:
            pred = estimator.predict(obs, init)
        seconds += time.perf_counter() - t0
        out = pred.output
        if out is None:
            with torch.no_grad():
                out = body(pred.params)
        if not store:
            store["v"] = torch.zeros((N,) + tuple(out.vertices.shape[1:]), dtype=out.vertices.dtype)
            store["j"] = torch.zeros((N,) + tuple(out.joints.shape[1:]), dtype=out.joints.dtype)
            store["f"] = out.faces
        ii = torch.as_tensor(sel)
        store["v"][ii] = out.vertices.detach().cpu().to(store["v"].dtype)
        store["j"][ii] = out.joints.detach().cpu().to(store["j"].dtype)
        ok = torch.as_tensor(pred.valid).bool().cpu().reshape(-1)
        valid[ii] = ok
        px[ii] = pred.px_error.detach().cpu().to(torch.float64).reshape(-1)
        for j in range(len(sel) - 1, -1, -1):
            if bool(ok[j]):
                prev = pred.params[j].detach()
                break
        if progress is not None:
            progress(len(sel))
    if not store:  # nobody found anywhere: empty estimates of the body's shape
        with torch.no_grad():
            rest = body(body.mean_params(1))
        store = {"v": rest.vertices.new_zeros((N,) + tuple(rest.vertices.shape[1:])),
                 "j": rest.joints.new_zeros((N,) + tuple(rest.joints.shape[1:])), "f": rest.faces}
    return Estimates(store["v"], store["j"], store["f"], valid, px, seconds)


def _run_stream(estimator, body, inputs: EvalInputs, progress: Optional[Callable] = None) -> Estimates:
    """Each clip through ``estimator.step`` frame by frame, reset at every clip."""
    from hmrkit.estimate import observation_from_arrays

    N = len(inputs)
    found = inputs.found.bool()
    valid = torch.zeros(N, dtype=torch.bool)
    px = torch.full((N,), math.nan, dtype=torch.float64)
    store, seconds = {}, 0.0
    for a, b in inputs.clips:
        estimator.reset()
        for i in range(a, b):
            if not bool(found[i]):
                continue
            k3 = None if inputs.keypoints3d is None else inputs.keypoints3d[i:i + 1]
            obs = observation_from_arrays(inputs.keypoints2d[i:i + 1], inputs.convention, inputs.K[i:i + 1], kp3d=k3,
                                          image_size=inputs.image_size[i:i + 1], frame_index=[i])
            if inputs.mask is not None:
                obs = replace(obs, mask=inputs.mask[i:i + 1], mask_box=inputs.mask_box[i:i + 1])
            t0 = time.perf_counter()
            pred = estimator.step(obs)
            seconds += time.perf_counter() - t0
            with torch.no_grad():
                out = pred.output if pred.output is not None else body(pred.params)
            if not store:
                store["v"] = torch.zeros((N,) + tuple(out.vertices.shape[1:]), dtype=out.vertices.dtype)
                store["j"] = torch.zeros((N,) + tuple(out.joints.shape[1:]), dtype=out.joints.dtype)
                store["f"] = out.faces
            store["v"][i] = out.vertices[0].detach().cpu().to(store["v"].dtype)
            store["j"][i] = out.joints[0].detach().cpu().to(store["j"].dtype)
            valid[i] = bool(pred.valid[0])
            px[i] = float(pred.px_error[0])
            if progress is not None:
                progress(1)
    if not store:
        with torch.no_grad():
            rest = body(body.mean_params(1))
        store = {"v": rest.vertices.new_zeros((N,) + tuple(rest.vertices.shape[1:])),
                 "j": rest.joints.new_zeros((N,) + tuple(rest.joints.shape[1:])), "f": rest.faces}
    return Estimates(store["v"], store["j"], store["f"], valid, px, seconds)

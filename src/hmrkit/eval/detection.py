"""Detection for the evaluation: the default detector, finding the detection of a given
person (a box), and the estimator's inputs from per-frame evidence."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from hmrkit.eval.runner import EvalInputs


def default_detector():
    """MediaPipe Holistic in static image mode (the pipeline's image detector)."""
    from hmrkit.detect import MediaPipeHolistic, MediaPipeHolisticConfig

    return MediaPipeHolistic(MediaPipeHolisticConfig(static_image_mode=True))


def match_detection(evidence: list, box_xyxy, min_share: float = 0.5, grow: float = 0.1):
    """The detection (an Evidence of ``evidence``) of the person in ``box_xyxy`` (px), or
    None: the one with the largest share of its confident keypoints (confidence >= 0.5,
    or > 0 if none is) inside the box grown by ``grow`` of its size on each side, when that
    share is at least ``min_share``. Works for single- and multi-person detectors; a
    detection of someone (or something) else has its keypoints outside the box."""
    b = np.asarray(box_xyxy, np.float64)
    w, h = b[2] - b[0], b[3] - b[1]
    lo = b[:2] - grow * np.array([w, h])
    hi = b[2:] + grow * np.array([w, h])
    best, best_share = None, -1.0
    for ev in evidence:
        kp = np.asarray(ev.keypoints2d, np.float64)
        sel = kp[:, 2] >= 0.5
        if not sel.any():
            sel = kp[:, 2] > 0
        if not sel.any():
            continue
        xy = kp[sel, :2]
        share = float(((xy >= lo) & (xy <= hi)).all(1).mean())
        if share >= min_share and share > best_share:
            best, best_share = ev, share
    return best


def detect_in_box(detector, image: np.ndarray, box_xyxy, pad: float = 0.2):
    """Run ``detector`` on a crop of ``image`` around ``box_xyxy`` (grown by ``pad`` of its
    size on each side, clipped to the image) and return the detection matching the box
    (``match_detection``) with its keypoints, box and mask in full-image pixels, or None.
    Cropping keeps a single-person detector on the person the box names."""
    from hmrkit.types import Evidence

    H, W = image.shape[:2]
    b = np.asarray(box_xyxy, np.float64)
    w, h = b[2] - b[0], b[3] - b[1]
    x0, y0 = int(max(0, math.floor(b[0] - pad * w))), int(max(0, math.floor(b[1] - pad * h)))
    x1, y1 = int(min(W, math.ceil(b[2] + pad * w))), int(min(H, math.ceil(b[3] + pad * h)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    found = []
    for ev in detector.detect(np.ascontiguousarray(image[y0:y1, x0:x1])):
        kp = np.array(ev.keypoints2d, dtype=np.float32, copy=True)
        kp[:, 0] += x0
        kp[:, 1] += y0
        kp[kp[:, 2] <= 0, :2] = 0.0  # missing points stay at the origin
        mask = None
        if ev.mask is not None:
            mask = np.zeros((H, W), np.float32)
            mask[y0:y1, x0:x1] = ev.mask
        bbox = np.asarray(ev.bbox, np.float32) + np.array([x0, y0, x0, y0], np.float32)
        found.append(Evidence(image_size=(H, W), keypoints2d=kp, convention=ev.convention, bbox=bbox,
                              keypoints3d=ev.keypoints3d, mask=mask, source=ev.source))
    return match_detection(found, b)


def inputs_from_evidence(evidence: list, K: Tensor) -> EvalInputs:
    """EvalInputs of per-frame Evidence (None: nobody found) and (N, 3, 3) K. 3D keypoints
    and the person mask are passed when every found frame has them (as ``hmrkit run``)."""
    N = len(evidence)
    got = [e for e in evidence if e is not None]
    conv = got[0].convention if got else "holistic"
    from hmrkit import conventions as C

    nk = got[0].keypoints2d.shape[0] if got else len(C.get(conv))
    kp = torch.zeros(N, nk, 3, dtype=torch.float32)
    use3d = bool(got) and all(e.keypoints3d is not None for e in got)
    k3 = torch.zeros(N, nk, 4, dtype=torch.float32) if use3d else None
    for i, e in enumerate(evidence):
        if e is None:
            continue
        if e.convention != conv:
            raise ValueError(f"evidence in {e.convention!r} and {conv!r} in one set")
        kp[i] = torch.from_numpy(np.asarray(e.keypoints2d, np.float32))
        if use3d:
            k3[i] = torch.from_numpy(np.asarray(e.keypoints3d, np.float32))
    found = torch.tensor([e is not None for e in evidence], dtype=torch.bool)
    size = torch.tensor([e.image_size if e is not None else (0, 0) for e in evidence], dtype=torch.int64)
    mask = mask_box = None
    if got and all(e.mask is not None for e in got):  # as hmrkit run: the mask in a square box
        from hmrkit.types import Observation

        crops = [Observation.from_evidence([e], K[i:i + 1].numpy()) if e is not None else None
                 for i, e in enumerate(evidence)]
        M = next(c for c in crops if c is not None).mask.shape[-1]
        mask = torch.zeros(N, M, M, dtype=torch.float32)
        mask_box = torch.zeros(N, 3, dtype=torch.float32)
        mask_box[:, 2] = 1.0
        for i, c in enumerate(crops):
            if c is not None:
                mask[i], mask_box[i] = c.mask[0], c.mask_box[0]
    return EvalInputs(kp, conv, K.to(torch.float32), k3, found, size.reshape(N, 2), mask=mask, mask_box=mask_box)

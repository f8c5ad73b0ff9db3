"""The evaluation loop: run an estimator on a set (``evaluate_synthetic``,
``evaluate_dataset``, ``evaluate`` for any spec) and compare with the ground truth.

Metrics (millimetres), per frame; frames without a valid estimate (nobody detected, or
the estimator reported the frame as not valid) are left out of every metric and counted
in ``valid`` (the fraction of frames with one):

- synthetic sets (ground truth in the predicting body model): MPJPE on coco17 rooted at
  the hip midpoint, PA-MPJPE on coco17, PVE rooted at the same hip midpoint; sequences
  also the acceleration error (mm/frame^2, coco17, per 3-frame window, windows touching
  a frame without a valid estimate dropped); closeups also the hand and face errors
  (``hand L``, ``hand R`` wrist-aligned, ``hand PA``, ``face PA``: ``_hand_face_metrics``).
- 3dpw / h36m: MPJPE and PA-MPJPE on J14 rooted at the H36M pelvis, as SPIN's
  evaluation. Joints come from SPIN's H36M regressor where both the prediction and the
  ground truth can use it (SMPL-topology meshes; Human3.6M's ground truth is its mocap
  joints); otherwise from each body model's own coco17 keypoints, converted by name to
  h36m17 (pelvis = hip midpoint, thorax = shoulder midpoint), which leaves 13 of the 14
  J14 joints (no head top): the ``joints`` note says which. PVE (pelvis-rooted) only
  when the prediction is a SMPL mesh, as the 3DPW ground truth.
- ``2D px``: the estimator's own reprojection error (``Prediction.px_error``);
  ``s/frame``: seconds per frame in the estimator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from hmrkit.errors import InputError
from hmrkit.eval.benchmarks import dataset_intrinsics, h36m_joints, j14, load_ground_truth_models, read_dataset
from hmrkit.eval.detection import default_detector, detect_in_box, inputs_from_evidence
from hmrkit.eval.runner import run_estimator
from hmrkit.eval.sets import SyntheticSet, build_synthetic
from hmrkit.eval.specs import DatasetSpec, SyntheticSpec


def _nan_where(values: Tensor, keep: Tensor) -> Tensor:
    """(N,) values as float64 on the CPU, NaN where ``keep`` (N,) bool is False."""
    values = values.detach().cpu().to(torch.float64)
    return torch.where(keep, values, torch.full_like(values, math.nan))


@dataclass(frozen=True)
class EvalResult:
    """The metrics of one set.

    name: the spec written out; metrics: {name: per-frame (or per-window) values, NaN for
    those not counted} (pool with ``metrics.summarize``); notes: {key: str}, e.g. the
    joint set; frames: how many frames the set has."""

    name: str
    metrics: dict
    notes: dict = field(default_factory=dict)
    frames: int = 0


def evaluate_synthetic(estimator, body, spec: SyntheticSpec, progress=None, detector=None,
                       data: Optional[SyntheticSet] = None) -> EvalResult:
    """Build the set of ``spec`` (``build_synthetic``; or take ``data`` built before, to
    compare several estimators on one set), run ``estimator`` on it and compare with the
    ground truth in ``body`` (module docstring: Metrics)."""
    from hmrkit.eval.metrics import accel_error_per_window, mpjpe, pa_mpjpe, pelvis_indices, pve, root_of

    data = build_synthetic(body, spec, detector) if data is None else data
    est = run_estimator(estimator, body, data.inputs, spec.batch, progress)
    with torch.no_grad():
        gt = body(data.params)
    out = est.output()
    pk, gk = body.keypoints(out, "coco17"), body.keypoints(gt, "coco17").to(out.vertices.dtype)
    root = pelvis_indices("coco17")
    ok = est.valid
    metrics = {
        "MPJPE": _nan_where(mpjpe(pk, gk, root), ok),
        "PA-MPJPE": _nan_where(pa_mpjpe(pk, gk), ok),
        "PVE": _nan_where(pve(out.vertices, gt.vertices.to(out.vertices.dtype), root_of(pk, root),
                              root_of(gk, root)), ok),
    }
    if spec.kind == "closeups":
        metrics.update(_hand_face_metrics(body, out, gt, ok))
    if data.inputs.clips:
        windows = []
        for a, b in data.inputs.clips:
            e, _ = accel_error_per_window(pk[a:b], gk[a:b], root, valid=ok[a:b])
            windows.append(e.detach().to(torch.float64))
        metrics["accel"] = torch.cat(windows)
    metrics["2D px"] = _nan_where(est.px, ok)
    metrics["valid"] = ok.to(torch.float64)
    metrics["s/frame"] = torch.tensor([est.seconds / max(1, int(data.inputs.found.sum()))], dtype=torch.float64)
    notes = {"joints": "coco17", **data.notes}
    return EvalResult(spec.name, metrics, notes, len(data.inputs))


def _hand_face_metrics(body, out, gt, ok: Tensor) -> dict:
    """The closeups set's extra columns (mm, per frame): ``hand L`` / ``hand R`` the hand21
    keypoints' error with both wrists aligned, ``hand PA`` their mean error after a
    similarity Procrustes per hand (the two hands averaged), ``face PA`` the face
    keypoints' (``FACE``) error after Procrustes: the expression and the face's shape."""
    from hmrkit.eval.metrics import mpjpe, pa_mpjpe

    m = {}
    pa = []
    for side, key in (("left", "hand L"), ("right", "hand R")):
        conv = f"hand21_{side}"
        if conv not in body.regressors:
            continue
        p, g = body.keypoints(out, conv), body.keypoints(gt, conv).to(out.vertices.dtype)
        m[key] = _nan_where(mpjpe(p, g, (0,)), ok)
        pa.append(pa_mpjpe(p, g))
    if pa:
        m["hand PA"] = _nan_where(torch.stack(pa).mean(0), ok)
    if "face" in body.regressors:
        p, g = body.keypoints(out, "face"), body.keypoints(gt, "face").to(out.vertices.dtype)
        m["face PA"] = _nan_where(pa_mpjpe(p, g), ok)
    return m


def evaluate_dataset(estimator, body, spec: DatasetSpec, model_path=None, progress=None, detector=None,
                     chunk: int = 64) -> EvalResult:
    """Run ``estimator`` (predicting ``body``) on SPIN's 3DPW / H36M file of ``spec`` with
    its images, ``chunk`` rows at a time (module docstring: Metrics).

    model_path: the user's SMPL files for 3DPW's ground truth (a folder with the male and
    female models, or None for $HMRKIT_SMPL_DIR). detector: None for MediaPipe Holistic
    (static image mode), or any Detector. Rows whose image is missing or unreadable, or
    where nobody matching the row's box is found, count as not valid."""
    from hmrkit.eval.datasets import _h36m_regressor
    from hmrkit.eval.metrics import mpjpe, pa_mpjpe, pve
    from hmrkit.geometry.camera import default_intrinsics
    from hmrkit.io import read_image
    from hmrkit.types import BodyOutput

    data, rows = read_dataset(spec)
    regressor = _h36m_regressor(spec.regressor, torch.float32) if spec.regressor else None
    models = None
    if spec.kind == "3dpw":
        models = load_ground_truth_models(model_path, num_betas=data.betas.shape[1])
    same_mesh = spec.kind == "3dpw" and getattr(body, "name", "") == "smpl" and \
        body.num_vertices == next(iter(models.values())).num_vertices
    # both sides use the H36M regressor only when both can (3DPW: SMPL predictions;
    # H36M: its ground truth is mocap joints, so only the prediction needs it)
    use_reg = regressor if regressor is not None and (spec.kind == "h36m" or same_mesh) else None
    cam_K = dataset_intrinsics(spec.path)
    root = Path(spec.root).expanduser()
    own = detector is None
    if own:
        detector = default_detector()
    keys = ("MPJPE", "PA-MPJPE") + (("PVE",) if same_mesh else ()) + ("2D px", "valid")
    acc = {k: [] for k in keys}
    seconds, unreadable, nobody = 0.0, 0, 0
    sources = set()
    try:
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            evidence, Ks = [], []
            for r in part:
                try:
                    image = read_image(root / str(data.imgname[r]))
                except InputError:
                    unreadable += 1
                    evidence.append(None)
                    Ks.append(torch.eye(3))
                    continue
                h, w = image.shape[:2]
                Ks.append(torch.as_tensor(cam_K[r], dtype=torch.float32) if cam_K is not None
                          else default_intrinsics(h, w))
                half = 100.0 * float(data.scale[r])
                box = np.concatenate([data.center[r] - half, data.center[r] + half])
                ev = detect_in_box(detector, image, box)
                nobody += ev is None
                evidence.append(ev)
            inputs = inputs_from_evidence(evidence, torch.stack(Ks))
            est = run_estimator(estimator, body, inputs, spec.batch, progress)
            seconds += est.seconds
            out = est.output()
            pred_j, pred_m, src = h36m_joints(body, out, use_reg)
            if spec.kind == "3dpw":
                gt = data.ground_truth(models, index=part, h36m_regressor=None)
                ref = next(iter(models.values()))
                gt_out = BodyOutput(gt.vertices, gt.joints, ref.faces)
                gt_j, gt_m, _ = h36m_joints(ref, gt_out, use_reg)
            else:
                gt_j, conf = data.h36m17()
                gt_j = gt_j[part]
                gt_m = (conf[part] > 0).all(0)
            sources.add(src)
            pj, m1 = j14(pred_j.to(torch.float64), pred_m)
            gj, m2 = j14(gt_j.to(torch.float64), gt_m)
            mask = m1 & m2
            ok = est.valid
            acc["MPJPE"].append(_nan_where(mpjpe(pj, gj, None, joint_mask=mask), ok))
            acc["PA-MPJPE"].append(_nan_where(pa_mpjpe(pj, gj, joint_mask=mask), ok))
            if same_mesh:
                pv = out.vertices.to(torch.float64) - pred_j[:, :1].to(torch.float64)
                gv = gt.vertices.to(torch.float64) - gt_j[:, :1].to(torch.float64)
                acc["PVE"].append(_nan_where(pve(pv, gv), ok))
            acc["2D px"].append(_nan_where(est.px, ok))
            acc["valid"].append(ok.to(torch.float64))
    finally:
        if own:
            detector.close()
    metrics = {k: torch.cat(v) for k, v in acc.items()}
    metrics["s/frame"] = torch.tensor([seconds / max(1, len(rows) - unreadable - nobody)], dtype=torch.float64)
    njoints = int(mask.sum())
    notes = {"joints": f"j14 ({' / '.join(sorted(sources))}" + (f", {njoints} of 14)" if njoints < 14 else ")"),
             "root": "pelvis (h36m17 joint 0)", "rows": f"{len(rows)} of {len(data)}",
             "nobody detected": str(nobody), "unreadable images": str(unreadable),
             "PVE": "SMPL mesh" if same_mesh else "not comparable (the predicting body is not SMPL)"
             if spec.kind == "3dpw" else "no ground-truth mesh"}
    return EvalResult(spec.name, metrics, notes, len(rows))


def evaluate(estimator, body, spec, model_path=None, progress=None, detector=None) -> EvalResult:
    """Evaluate on any spec of ``parse_data_spec``."""
    if isinstance(spec, SyntheticSpec):
        return evaluate_synthetic(estimator, body, spec, progress, detector)
    return evaluate_dataset(estimator, body, spec, model_path, progress, detector)

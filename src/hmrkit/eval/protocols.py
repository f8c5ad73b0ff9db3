"""Evaluation protocols: fixed-seed synthetic test sets every method is evaluated on.

A data spec is ``synthetic:KIND[,key=value...]``:
  synthetic:frames      single frames, keypoint evidence (mediapipe33 projected from the
                        ground-truth body), ``noise=clean|realistic`` (default realistic),
                        ``n=`` (default 48), ``seed=`` (default 2024), ``world3d=`` the std in
                        metres of simulated world landmarks (default 0 = none).
All sets are fixed by their seed: the same spec gives the same samples on every machine.
Metrics (mm): MPJPE (root mid-hips), PA-MPJPE on coco17, PVE (root-aligned), and the fit's
2D error in px and time per frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from hmrkit.errors import InputError


@dataclass(frozen=True)
class SyntheticSpec:
    kind: str = "frames"
    n: int = 48
    seed: int = 2024
    noise: str = "realistic"
    world3d: float = 0.0
    batch: int = 8

    @staticmethod
    def parse(text: str) -> "SyntheticSpec":
        """'synthetic:frames,n=16,noise=clean' -> SyntheticSpec."""
        if not text.startswith("synthetic:"):
            raise InputError(None, f"unknown data spec {text!r}; expected synthetic:KIND[,key=value]")
        body = text.split(":", 1)[1]
        parts = [p for p in body.split(",") if p]
        if not parts:
            raise InputError(None, f"{text!r}: name a kind, e.g. synthetic:frames")
        spec = SyntheticSpec(kind=parts[0])
        if spec.kind not in ("frames",):
            raise InputError(None, f"{text!r}: unknown synthetic set {spec.kind!r}; choose from ['frames']")
        fields = {"n": int, "seed": int, "noise": str, "world3d": float, "batch": int}
        changes = {}
        for p in parts[1:]:
            if "=" not in p:
                raise InputError(None, f"{text!r}: expected key=value, got {p!r}")
            k, v = p.split("=", 1)
            if k not in fields:
                raise InputError(None, f"{text!r}: unknown key {k!r}; choose from {sorted(fields)}")
            try:
                changes[k] = fields[k](v)
            except ValueError:
                raise InputError(None, f"{text!r}: {k}={v!r} is not a {fields[k].__name__}") from None
        spec = replace(spec, **changes)
        if spec.noise not in ("clean", "realistic"):
            raise InputError(None, f"{text!r}: noise must be clean or realistic")
        if spec.n < 1:
            raise InputError(None, f"{text!r}: n must be at least 1")
        return spec

    @property
    def name(self) -> str:
        s = f"synthetic:{self.kind},n={self.n},seed={self.seed},noise={self.noise}"
        return s + (f",world3d={self.world3d}" if self.world3d else "")


def evaluate_synthetic_frames(estimator, body, spec: SyntheticSpec, progress=None) -> dict:
    """Run ``estimator`` (an object with ``.fit(kp2d, convention, K, kp3d=None)``, e.g.
    hmrkit.fit.Fitter) on the set; returns {metric: per-sample tensor} plus timings."""
    from hmrkit.data.synthetic import NoiseConfig, SceneConfig, keypoints2d, sample_scenes
    from hmrkit.eval.metrics import mpjpe, pa_mpjpe, pelvis_indices, pve
    from hmrkit.types import BodyOutput

    scenes = sample_scenes(body, spec.n, seed=spec.seed, config=SceneConfig(yaw_deg=60))
    with torch.no_grad():
        gt = body(scenes.params)
    noise = NoiseConfig.clean() if spec.noise == "clean" else NoiseConfig.realistic()
    kp = keypoints2d(body, scenes, "mediapipe33", noise, seed=spec.seed + 1)
    k3 = None
    if spec.world3d > 0:
        X = body.keypoints(gt, "mediapipe33")
        g = torch.Generator().manual_seed(spec.seed + 2)
        rel = X - 0.5 * (X[:, 23:24] + X[:, 24:25]) + spec.world3d * torch.randn(X.shape, generator=g, dtype=X.dtype)
        k3 = torch.cat([rel, torch.ones(*X.shape[:2], 1, dtype=X.dtype)], -1)
    verts, joints, px, valid = [], [], [], []
    t0 = time.perf_counter()
    for s in range(0, spec.n, spec.batch):
        sl = slice(s, s + spec.batch)
        pred = estimator.fit(kp[sl], "mediapipe33", scenes.K[sl], kp3d=None if k3 is None else k3[sl])
        verts.append(pred.output.vertices)
        joints.append(pred.output.joints)
        px.append(pred.info["mean_px_error"])
        valid.append(pred.valid)
        if progress is not None:
            progress(len(pred.valid))
    seconds = (time.perf_counter() - t0) / spec.n
    out = BodyOutput(torch.cat(verts), torch.cat(joints), gt.faces)
    pk, gk = body.keypoints(out, "coco17"), body.keypoints(gt, "coco17")
    root = pelvis_indices("coco17")
    return {
        "MPJPE": mpjpe(pk, gk, root),
        "PA-MPJPE": pa_mpjpe(pk, gk),
        "PVE": pve(out.vertices, gt.vertices, pk[:, list(root)].mean(1), gk[:, list(root)].mean(1)),
        "2D px": torch.cat(px),
        "valid": torch.cat(valid).float(),
        "s/frame": torch.tensor([seconds]),
    }

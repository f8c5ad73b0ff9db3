"""PARE on the sample photos with and without the person mask and the world landmarks.

    .venv/bin/python scripts/pare_evidence_check.py [WEIGHTS]

The detector of `hmrkit run` (mask on) once per photo; the largest person; `pare` on its
evidence as detected, without the mask, without the world landmarks, without either.
Prints the 2D error (px, the regressor alone) and the depth of the estimate (m).
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import hmrkit.body
from hmrkit.cli import _filtered_native_stderr
from hmrkit.estimate import build
from hmrkit.pipeline import make_detector
from hmrkit.io import read_image
from hmrkit.geometry.camera import default_intrinsics
from hmrkit.types import Observation

REPO = Path(__file__).resolve().parents[1]
body = hmrkit.body.load("anny")
w = sys.argv[1] if len(sys.argv) > 1 else None
est = build("pare", body, weights=w)
with _filtered_native_stderr():
    det = make_detector(video=False, evidence=frozenset({"body", "body3d", "mask"}))
    for name in ["cameraman.png", "astronaut.png", "lunge_pexels.jpg", "messi5.jpg", "basketball1.png"]:
        img = read_image(REPO.parent / "shared" / "samples" / "images" / name)
        H, W = img.shape[:2]
        K = default_intrinsics(H, W).numpy()
        evs = det.detect(img)
        ev = max(evs, key=lambda e: (e.bbox[2]-e.bbox[0])*(e.bbox[3]-e.bbox[1]))
        out = []
        for variant in ("mask+3d", "no mask", "no 3d", "neither"):
            e = ev
            if "no mask" in variant or variant == "neither": e = replace(e, mask=None)
            if "no 3d" in variant or variant == "neither": e = replace(e, keypoints3d=None)
            obs = Observation.from_evidence([e], K[None])
            p = est.predict(obs)
            out.append(f"{variant} {float(p.px_error[0]):.1f}px z={float(p.params.transl[0,2]):.2f}")
        print(name, " | ".join(out))
    det.close()

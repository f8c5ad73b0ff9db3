"""The fitting's finger and face stage alone, from one body fit, under variants of its
settings: how docs/hands.md chose them (on the val split, never the test split).

    .venv/bin/python scripts/tune_detail_stage.py [--data synthetic:closeups,n=64,render=1,split=val,seed=11] \
        [--variants default legacy w5 w20 ...] [--true-parts]

The body is fitted once (the fit without its finger and face stage, from the mean body);
then only the finger and face stage runs, once per variant (``VARIANTS``: FitConfig
changes from today's defaults), from that same start. Printed per variant: hand PA of the
hands with evidence (left, right; mm), face PA of the faces with evidence, and per hand
the change against the start (mean, median, how many got better, the worst), also by the
hand's size in the image. ``--true-parts``: the hand and face keypoints replaced by their
true projections (where the detector found them): what the stage does with exact
evidence from the same start.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import torch  # noqa: E402

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from hands import VARIANTS as BENCH_VARIANTS  # noqa: E402

# the stage as it was (bench/hands.py's "legacy" without its body-stage part: the start here
# is one body fit for every variant)
LEGACY = {k: v for k, v in BENCH_VARIANTS["legacy"].items() if k != "body_holds_fingers"}
VARIANTS = {
    "default": {},
    "legacy": LEGACY,
    "legacy+align+head+e50": {**LEGACY, "detail_align": True, "detail_head": True, "w_expression_prior": 50.0},
    "free-fingers": {"finger_model": "free"},
    "no-align": {"detail_align": False},
    "no-head": {"detail_head": False},
    "e0.5": {"w_expression_prior": 0.5},
    "e5": {"w_expression_prior": 5.0},
    "e200": {"w_expression_prior": 200.0},
    "w5": {"w_finger_prior": 5.0},
    "w20": {"w_finger_prior": 20.0},
    "w50": {"w_finger_prior": 50.0},
    "w100": {"w_finger_prior": 100.0},
    "w500": {"w_finger_prior": 500.0},
    "sigma10": {"detail_sigma": 10.0},
    "hand-check": {"hand_check": 1.0},
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="synthetic:closeups,n=64,render=1,split=val,seed=11")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--true-parts", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    import hmrkit.body
    from hmrkit import conventions as C
    from hmrkit.cli import _filtered_native_stderr
    from hmrkit.eval.metrics import pa_mpjpe
    from hmrkit.eval.protocols import SyntheticSpec, build_synthetic
    from hmrkit.fit import FitConfig
    from hmrkit.fit.fitter import Fitter, _State
    from hmrkit.geometry.boxes import keypoint_box
    from hmrkit.geometry.rotation import rotmat_from_6d, rotmat_to_6d

    body = hmrkit.body.load("anny")
    spec = SyntheticSpec.parse(args.data)
    with _filtered_native_stderr():
        data = build_synthetic(body, spec)
    inp = data.inputs
    fi = inp.found.nonzero()[:, 0]
    kp, K = inp.keypoints2d[fi].clone(), inp.K[fi]
    names = C.get("holistic").names
    hand_idx = {s: [names.index(f"{s}_hand.{k}") for k in C.HAND21] for s in ("left", "right")}
    face_idx = [i for i, n in enumerate(names) if n.startswith("face.")]
    if args.true_parts:
        from hmrkit.data.synthetic import true_keypoints
        from hmrkit.eval.sets import closeup_scenes

        scenes, _, _ = closeup_scenes(body, spec.n, spec.seed, spec.split)
        _, uv, _ = true_keypoints(body, scenes, "holistic")
        parts = hand_idx["left"] + hand_idx["right"] + face_idx
        seen = kp[:, parts, 2:] > 0
        kp[:, parts, :2] = torch.where(seen, uv[fi][:, parts], kp[:, parts, :2])
    has = {s: (kp[:, idx, 2] > 0).all(-1) for s, idx in hand_idx.items()}
    has_face = (kp[:, face_idx, 2] > 0).all(-1)
    size = {s: (kp[:, idx, :2].max(1).values - kp[:, idx, :2].min(1).values).max(-1).values
            for s, idx in hand_idx.items()}
    start = Fitter(body, replace(FitConfig(), fit_hands=False, fit_face=False)).fit(kp, inp.convention, K).params
    with torch.no_grad():
        gt = body(data.params[fi])

    def errors(params):
        with torch.no_grad():
            o = body(params)
        hands = {s: pa_mpjpe(body.keypoints(o, f"hand21_{s}"), body.keypoints(gt, f"hand21_{s}")) for s in has}
        return hands, pa_mpjpe(body.keypoints(o, "face"), body.keypoints(gt, "face"))

    h0, f0 = errors(start)
    print(f"{spec.name}{' (true hand and face points)' if args.true_parts else ''}: {len(fi)} found, hands with "
          f"evidence left {int(has['left'].sum())} right {int(has['right'].sum())}, faces {int(has_face.sum())}")
    print(f"start (no finger/face stage): hand PA L {h0['left'][has['left']].mean():.1f} "
          f"R {h0['right'][has['right']].mean():.1f}, face PA {f0[has_face].mean():.2f}")
    print("| variant | hand PA L | hand PA R | face PA | hand change mean | median | better | worst "
          "| <50 px | 50-90 px | >=90 px |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.variants:
        fitter = Fitter(body, replace(FitConfig(), **VARIANTS[name]))
        parts = fitter._parts(inp.convention, kp, None)
        _, side = keypoint_box(parts[0][1], min_confidence=0.0, scale=1.0, min_size=32.0, empty_size=224.0)
        s0 = _State(rotmat_to_6d(start.global_orient), rotmat_to_6d(start.pose), start.shape, start.transl,
                    start.expression.clone())
        s1 = fitter._stage_detail(parts, K, 224.0 / side, s0, False)
        out = replace(start, global_orient=rotmat_from_6d(s1.go6), pose=rotmat_from_6d(s1.pose6),
                      expression=s1.expression)
        h1, f1 = errors(out)
        d = torch.cat([(h1[s] - h0[s])[has[s]] for s in has])
        sz = torch.cat([size[s][has[s]] for s in has])
        bins = [d[(sz >= lo) & (sz < hi)] for lo, hi in ((0, 50), (50, 90), (90, 1e9))]
        cells = " | ".join(f"{b.mean():+.2f} ({len(b)})" if len(b) else "-" for b in bins)
        print(f"| {name} | {h1['left'][has['left']].mean():.1f} | {h1['right'][has['right']].mean():.1f} | "
              f"{f1[has_face].mean():.2f} | {d.mean():+.2f} | {d.median():+.2f} | {int((d < 0).sum())}/{len(d)} | "
              f"{d.max():+.1f} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

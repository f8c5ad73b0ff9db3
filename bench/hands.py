"""Hands and faces: body, hand and face errors on the close-up sets, for the methods and for
variants of the fitting's finger and face stage (docs/hands.md).

    .venv/bin/python bench/hands.py [--sets closeups-clean closeups-realistic] \
        [--variants spin fit spin+fit spin+fit:no-detail ...] [--n 48]

Sets: ``synthetic:closeups`` (upper-body close-ups, both hands posed by the gesture
sampler, a facial expression; holistic evidence, clean or with the calibrated noise, or
the scenes rendered and seen by MediaPipe Holistic: ``closeups-rendered``).
Variants: a method name (``hmrkit eval``'s), or ``METHOD:VARIANT`` for a fitting method
with the finger and face stage changed (``VARIANTS``). Each set is built once; every row
sees the same evidence. Columns (mm): body PA-MPJPE (coco17), ``hand L`` / ``hand R``
(hand21, wrist-aligned), ``hand PA`` (per hand after Procrustes, both averaged),
``face PA`` (the face keypoints after Procrustes); ms/frame of the estimator alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

import torch

SETS = {
    "closeups-clean": "synthetic:closeups,noise=clean",
    "closeups-realistic": "synthetic:closeups,noise=realistic",
    "closeups-rendered": "synthetic:closeups,render=1",
    # the val split (subjects and motions neither training nor the test sets use): for choosing settings
    "closeups-val": "synthetic:closeups,noise=realistic,split=val",
    "closeups-val-rendered": "synthetic:closeups,render=1,split=val",
}

# FitConfig changes of the finger and face stage. "legacy" is the stage as it was before
# docs/hands.md's fix; the others take one part of the fix out.
VARIANTS = {
    "no-detail": {"fit_hands": False, "fit_face": False},
    "legacy": {"finger_prior": "l2", "w_finger_prior": 0.05, "detail_head": False, "body_holds_fingers": False,
               "w_expression_prior": 0.5, "finger_model": "free", "detail_align": False},
    # the fix with one part taken out
    "no-hold": {"body_holds_fingers": False},
    "free-fingers": {"finger_model": "free"},
    "no-align": {"detail_align": False},
    "no-head": {"detail_head": False},
    "legacy-priors": {"finger_prior": "l2", "w_finger_prior": 0.05, "w_expression_prior": 0.5},
    # pixie+fit's shape term: the one Gaussian of the other refinements instead of PIXIE's gender-aware prior
    "gaussian-shape": {"shape_prior": "gaussian"},
    # pixie+fit with the finger and face stage of the other refinements (no anchor to PIXIE's hands and face)
    "unanchored": {"finger_model": "coupled", "detail_anchor": 1e-12, "w_expression_prior": 50.0},
    # pixie+fit's finger and face stage: free fingers, kept near PIXIE's (detail_anchor), no pull to a neutral face
    **{f"anchor-{a:g}": {"finger_model": "free", "detail_anchor": a, "w_expression_prior": 0.0}
       for a in (1, 10, 100, 1000, 10000)},
    **{f"anchor-{a:g}-coupled": {"detail_anchor": a, "w_expression_prior": 0.0} for a in (10, 100)},
}


def _estimator(name: str, body):
    from hmrkit.estimate import build
    from hmrkit.estimate.registry import REFINE_FIT_ITERS, scaled_fit_config
    from hmrkit.fit import FitConfig

    method, _, variant = name.partition(":")
    if not variant:
        return build(method, body)
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}; choose from {sorted(VARIANTS)}")
    base = FitConfig() if method == "fit" else scaled_fit_config(REFINE_FIT_ITERS)
    return build(method, body, fit_config=replace(base, **VARIANTS[variant]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--variants", nargs="+", default=["spin", "fit:legacy", "fit", "spin+fit:legacy", "spin+fit",
                                                       "spin+fit:no-detail"])
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import hmrkit.body
    from hmrkit.cli import _filtered_native_stderr
    from hmrkit.eval.metrics import format_table
    from rows import result_row
    from hmrkit.eval.protocols import SyntheticSpec, build_synthetic

    body = hmrkit.body.load("anny")
    rows = []
    t0 = time.perf_counter()
    for key in args.sets:
        spec = SyntheticSpec.parse(SETS[key] + f",n={args.n}")
        with _filtered_native_stderr():
            data = build_synthetic(body, spec)
        for name in args.variants:
            row = result_row(_estimator(name, body), body, spec, data, key, name)
            rows.append(row)
            print(f"{key} {name}: PA-MPJPE {row['PA-MPJPE']:.1f} hand PA {row['hand PA']:.1f} "
                  f"face PA {row['face PA']:.2f} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        print(f"{key}: {data.notes}", file=sys.stderr)
    cols = ["data", "method", "PA-MPJPE", "hand L", "hand R", "hand PA", "face PA", "2D px", "ms/frame"]
    print(format_table(rows, cols, digits=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

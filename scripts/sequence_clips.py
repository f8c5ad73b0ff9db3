"""Per-clip PA-MPJPE of regressors on a fixed sequence set: where a mean comes from.

    .venv/bin/python scripts/sequence_clips.py                       # spin and pare, 16 clips, clean keypoints
    .venv/bin/python scripts/sequence_clips.py --data synthetic:sequences,n=16,noise=realistic

Each clip of the set (``hmrkit eval``'s ``synthetic:sequences``: clips cycle through the
shipped test sequences) with its source sequence, each method's mean PA-MPJPE over its
frames (coco17, mm) and its worst frame. docs/pare.md quotes it.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="synthetic:sequences,n=16,noise=clean")
    ap.add_argument("--methods", nargs="+", default=["spin", "pare"])
    args = ap.parse_args(argv)

    import hmrkit.body
    from hmrkit.data.sequences import load_sequences
    from hmrkit.data.splits import split_of
    from hmrkit.estimate import build
    from hmrkit.eval.metrics import pa_mpjpe
    from hmrkit.eval.runner import run_estimator
    from hmrkit.eval.sets import build_synthetic
    from hmrkit.eval.specs import SyntheticSpec
    from hmrkit.types import BodyOutput

    body = hmrkit.body.load("anny")
    spec = SyntheticSpec.parse(args.data)
    if spec.kind != "sequences":
        print("sequence_clips.py: --data must be a synthetic:sequences spec", file=sys.stderr)
        return 2
    data = build_synthetic(body, spec)
    with torch.no_grad():
        gt = body.keypoints(body(data.params), "coco17")
    err = {}
    for m in args.methods:
        e = run_estimator(build(m, body), body, data.inputs, spec.batch)
        err[m] = pa_mpjpe(body.keypoints(BodyOutput(e.vertices, e.joints, e.faces), "coco17"), gt).numpy()
    # the clips' sources, as build_synthetic draws them
    lib = load_sequences(body.name)
    pool = np.array([i for i, s in enumerate(lib.source) if spec.split == "all" or split_of(s) == spec.split])
    order = pool[np.random.default_rng(np.random.SeedSequence([spec.seed, 0x5E9])).permutation(len(pool))]
    print(f"{spec.name}\n")
    print("| clip | sequence | " + " | ".join(f"{m} mean | {m} worst" for m in args.methods) + " |")
    print("|---:|---|" + "---:|---:|" * len(args.methods))
    for c, (a, b) in enumerate(data.inputs.clips):
        src = str(lib.source[order[c % len(order)]])
        cells = " | ".join(f"{err[m][a:b].mean():.1f} | {err[m][a:b].max():.0f}" for m in args.methods)
        print(f"| {c} | {src} | {cells} |")
    print("\nall frames: " + ", ".join(f"{m} mean {err[m].mean():.1f} median {np.median(err[m]):.1f}"
                                        for m in args.methods))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""SPIN's generalisation: unseen subjects and motions, per input keypoint convention.

    .venv/bin/python bench/generalisation.py --weights before=runs/old/spin_anny.pt after=src/hmrkit/weights/spin_anny.pt
    .venv/bin/python bench/generalisation.py --methods spin --n 256      # the shipped weights, spin alone

Sets (``synthetic:frames``, docs/eval.md): the test split (hmrkit.data.splits: salsa lead,
modern dance, which training never sees; bodies over all phenotypes) with the evidence in
each input convention a user brings (COCO-17, OpenPose BODY_25, MediaPipe 33, MediaPipe 33
with world landmarks, MediaPipe Holistic: body, hands and face), and the in-distribution set (training's subjects, labelled as such).
Each set is built once; every method and weights see the same evidence. mm.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

SETS = {
    "test coco17": "synthetic:frames,split=test,input=coco17",
    "test openpose25": "synthetic:frames,split=test,input=openpose25",
    "test mediapipe33": "synthetic:frames,split=test",
    "test mediapipe33+3d": "synthetic:frames,split=test,world3d=0.05",
    "test holistic": "synthetic:frames,split=test,input=holistic",
    "in-distribution mediapipe33": "synthetic:frames,split=train",
    "in-distribution coco17": "synthetic:frames,split=train,input=coco17",
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--methods", nargs="+", default=["spin", "spin+fit"])
    ap.add_argument("--weights", nargs="+", default=["shipped="], metavar="LABEL=PATH",
                    help="regressor weights to compare (an empty PATH: the shipped ones)")
    ap.add_argument("--n", type=int, default=128, help="people per set")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import hmrkit.body
    from hmrkit.estimate import build
    from hmrkit.eval.metrics import format_table, summarize
    from hmrkit.eval.protocols import SyntheticSpec, build_synthetic, evaluate_synthetic

    weights = [w.split("=", 1) if "=" in w else (w, w) for w in args.weights]
    body = hmrkit.body.load("anny")
    rows = []
    t_all = time.perf_counter()
    for key in args.sets:
        spec = SyntheticSpec.parse(f"{SETS[key]},n={args.n},seed={args.seed}")
        data = build_synthetic(body, spec)
        for label, path in weights:
            for method in args.methods:
                est = build(method, body, weights=path or None)
                summ = summarize(evaluate_synthetic(est, body, spec, data=data).metrics)
                rows.append({"set": key, "weights": label, "method": method, "MPJPE": summ["MPJPE"].mean,
                             "PA-MPJPE": summ["PA-MPJPE"].mean, "PVE": summ["PVE"].mean,
                             "valid": summ["valid"].mean, "ms/frame": 1000 * summ["s/frame"].mean})
                print(f"  {key} {label} {method}: PA-MPJPE {rows[-1]['PA-MPJPE']:.1f}", file=sys.stderr, flush=True)
    print(f"\nSPIN's generalisation ({os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); {time.perf_counter() - t_all:.0f} s)\n")
    for k in args.sets:
        print(f"- {k}: {SyntheticSpec.parse(f'{SETS[k]},n={args.n},seed={args.seed}').name}")
    print()
    print(format_table(rows, ["set", "weights", "method", "MPJPE", "PA-MPJPE", "PVE", "valid", "ms/frame"], digits=1))
    if len(weights) == 2:  # the change from the first weights to the second, per set and method
        a, b = (w[0] for w in weights)
        print(f"\nPA-MPJPE change, {b} against {a}:\n")
        by = {(r["set"], r["weights"], r["method"]): r["PA-MPJPE"] for r in rows}
        diff = [{"set": s, "method": m, a: by[(s, a, m)], b: by[(s, b, m)],
                 "change %": 100 * (by[(s, b, m)] / by[(s, a, m)] - 1)} for s in args.sets for m in args.methods]
        print(format_table(diff, ["set", "method", a, b, "change %"], digits=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

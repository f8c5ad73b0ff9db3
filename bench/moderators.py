"""PIXIE's moderators at work: the same close-ups with the hand (or face) evidence removed
or degraded, and where the fusion weight goes (docs/pixie.md).

    .venv/bin/python bench/moderators.py [--set closeups-realistic] [--n 96] [--methods pixie spin]

Each condition changes the evidence of ``synthetic:closeups`` (built once; the same people
and noise in every row) and runs the estimators on it:

- ``full``: the evidence as the set has it;
- ``hands removed``: both hands' 21 points given confidence 0 (the body's own hand points,
  mediapipe33's wrist, pinky, index and thumb, stay);
- ``hands jittered 10 %`` / ``30 %``: each hand point moved by Gaussian noise of that fraction
  of the hand's size, confidence halved;
- ``hands shrunk to 25 %``: each hand's points drawn towards its wrist to a quarter of the
  size (a far, tiny hand: the shape kept, the resolution lost is not simulated);
- ``hands swapped``: the left hand's evidence given as the right's and back;
- ``face removed``: the face landmarks given confidence 0.

Columns: the moderators' mean weight on the part expert (``w hand`` over both hands,
``w face``; 1 - it is the body expert's), hand errors (mm; ``hand L``/``hand R`` wrist-aligned,
``hand PA`` after Procrustes), ``face PA`` (mm). ``spin`` (fingers at rest, neutral face) is
the reference a method with no hand or face information gets.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import torch

SETS = {"closeups-realistic": "synthetic:closeups,noise=realistic", "closeups-clean": "synthetic:closeups,noise=clean",
        "closeups-rendered": "synthetic:closeups,render=1"}


def _parts(names):
    left = [i for i, n in enumerate(names) if n.startswith("left_hand.")]
    right = [i for i, n in enumerate(names) if n.startswith("right_hand.")]
    face = [i for i, n in enumerate(names) if n.startswith("face.")]
    return left, right, face


def condition(kp: torch.Tensor, names, which: str, seed: int = 0) -> torch.Tensor:
    """(N, 116, 3) holistic evidence -> the same under condition ``which``."""
    kp = kp.clone()
    left, right, face = _parts(names)
    g = torch.Generator().manual_seed(seed)
    if which == "full":
        return kp
    if which == "hands removed":
        kp[:, left + right] = 0.0
    elif which.startswith("hands jittered"):
        frac = float(which.split()[-2]) / 100
        for idx in (left, right):
            part = kp[:, idx]
            found = part[..., 2] > 0
            xy = part[..., :2]
            lo = torch.where(found[..., None], xy, torch.full_like(xy, 1e9)).amin(1)
            hi = torch.where(found[..., None], xy, torch.full_like(xy, -1e9)).amax(1)
            size = (hi - lo).amax(-1).clamp(1.0, 1e4)
            noise = torch.randn(xy.shape, generator=g) * (frac * size)[:, None, None]
            kp[:, idx] = torch.cat([xy + noise, 0.5 * part[..., 2:]], -1) * found[..., None]
    elif which.startswith("hands shrunk"):
        frac = float(which.split()[-2]) / 100
        for idx in (left, right):
            part = kp[:, idx]
            found = part[..., 2:] > 0
            wrist = part[:, :1, :2]
            kp[:, idx] = torch.cat([wrist + frac * (part[..., :2] - wrist), part[..., 2:]], -1) * found
    elif which == "hands swapped":
        kp[:, left], kp[:, right] = kp[:, right].clone(), kp[:, left].clone()
    elif which == "face removed":
        kp[:, face] = 0.0
    else:
        raise SystemExit(f"unknown condition {which!r}")
    return kp


CONDITIONS = ("full", "hands removed", "hands jittered 10 %", "hands jittered 30 %", "hands shrunk 25 %",
              "hands swapped", "face removed")


class _Weights:
    """Wraps a PixieEstimator to collect its moderators' weights over every predict."""

    def __init__(self, est):
        self.est, self.seen = est, []

    def __getattr__(self, name):
        return getattr(self.est, name)

    def predict(self, obs, init=None):
        pred = self.est.predict(obs, init)
        self.seen.append(self.est.last_weights)
        return pred

    def mean(self, part: str) -> float:
        w = [s[part][:, 1] for s in self.seen if part in s]
        return float(torch.cat(w).mean()) if w else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="closeups-realistic", choices=list(SETS))
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--methods", nargs="+", default=["pixie", "spin"])
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    ap.add_argument("--weights", default=None, help="pixie weights (default: the shipped ones)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import hmrkit.body
    from hmrkit import conventions as C
    from hmrkit.cli import _filtered_native_stderr
    from hmrkit.estimate import build
    from hmrkit.eval.metrics import format_table
    from hmrkit.eval.protocols import SyntheticSpec, build_synthetic
    from rows import result_row

    body = hmrkit.body.load("anny")
    spec = SyntheticSpec.parse(SETS[args.set] + f",n={args.n}")
    with _filtered_native_stderr():
        data = build_synthetic(body, spec)
    if data.inputs.convention != "holistic":
        raise SystemExit(f"{args.set}: expected holistic evidence, got {data.inputs.convention}")
    names = C.get("holistic").names
    rows = []
    for which in args.conditions:
        d = replace(data, inputs=replace(data.inputs, keypoints2d=condition(data.inputs.keypoints2d, names, which)))
        for method in args.methods:
            est = build(method, body, weights=args.weights if method.startswith("pixie") else None)
            probe = _Weights(est) if method == "pixie" else est
            row = result_row(probe, body, spec, d, which, method)
            row["w hand"] = 0.5 * (probe.mean("left_hand") + probe.mean("right_hand")) if method == "pixie" else float("nan")
            row["w face"] = probe.mean("face") if method == "pixie" else float("nan")
            rows.append(row)
            print(f"{which} {method}: hand PA {row['hand PA']:.1f} w hand {row['w hand']:.2f}", file=sys.stderr,
                  flush=True)
    cols = ["data", "method", "w hand", "w face", "hand L", "hand R", "hand PA", "face PA", "PA-MPJPE"]
    print(f"set: {spec}  (data = the evidence's condition)")
    print(format_table(rows, cols, digits=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

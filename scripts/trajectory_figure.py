"""One joint's trajectory over time on a synthetic test sequence: ground truth, spin and
maed (and their acceleration), the picture behind docs/maed.md's smoothness claim.

    .venv/bin/python scripts/trajectory_figure.py [--clip 0] [--joint left_wrist] \
        [--maed-weights runs/maed/maed_anny.pt] [--out docs/maed_trajectory.png]

The first clip of ``synthetic:sequences,n=1,frames=64,noise=realistic`` (the eval set's
fixed seed, a test-split motion), run as ``hmrkit eval`` runs it; the joint is a coco17
keypoint, pelvis-relative (camera axes, mm).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="synthetic:sequences,n=1,frames=64,noise=realistic")
    ap.add_argument("--joint", default="left_wrist")
    ap.add_argument("--maed-weights", default=None)
    ap.add_argument("--out", default="docs/maed_trajectory.png")
    args = ap.parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import hmrkit.body
    from hmrkit import conventions as C
    from hmrkit.estimate import build
    from hmrkit.eval.metrics import pelvis_indices
    from hmrkit.eval.protocols import SyntheticSpec, build_synthetic
    from hmrkit.eval.runner import run_estimator

    body = hmrkit.body.load("anny")
    spec = SyntheticSpec.parse(args.data)
    data = build_synthetic(body, spec)
    names = list(C.get("coco17").names)
    j = names.index(args.joint)
    root = pelvis_indices("coco17")

    with torch.no_grad():
        gt = body.forward_keypoints(data.params, ("coco17",))["coco17"]
    series = {"ground truth": gt}
    for m in ("spin", "maed"):
        est = build(m, body, weights=args.maed_weights if m == "maed" else None)
        res = run_estimator(est, body, data.inputs, spec.batch)
        from hmrkit.types import BodyOutput

        out = BodyOutput(res.vertices, res.joints, res.faces)
        series[m] = body.keypoints(out, "coco17")
    fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    colors = {"ground truth": "k", "spin": "tab:orange", "maed": "tab:blue"}
    T = gt.shape[0]
    t = np.arange(T)
    for name, X in series.items():
        rel = (X[:, j] - X[:, root].mean(1)).numpy() * 1000
        axes[0].plot(t, rel[:, 1], color=colors[name], label=name, lw=1.5 if name != "ground truth" else 2.5)
        acc = np.linalg.norm(rel[2:] - 2 * rel[1:-1] + rel[:-2], axis=-1)
        axes[1].plot(t[1:-1], acc, color=colors[name], lw=1.2)
    axes[0].set_ylabel(f"{args.joint} y (mm, pelvis-relative)")
    axes[1].set_ylabel("acceleration (mm/frame²)")
    axes[1].set_xlabel("frame (30 fps)")
    axes[0].legend(loc="upper right")
    axes[0].set_title(f"{spec.name}: clip 0")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

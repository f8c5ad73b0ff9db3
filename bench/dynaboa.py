"""DynaBOA (#14): the regressors with and without online adaptation on the out-of-domain
streams, its ablations, in-domain streams, and the per-frame error over a long stream.

    .venv/bin/python bench/dynaboa.py --threads 1                       # the test table
    .venv/bin/python bench/dynaboa.py --split val --variants full --set lr=1e-5   # tuning: val takes only
    .venv/bin/python bench/dynaboa.py --plot docs/dynaboa_frames.png --shifts high --methods spin

Sets: ``synthetic:sequences,library=streams,frames=F,temporal=1,n=N,split=S,shift=X``
(docs/eval.md, "Out-of-domain streams": the test split's four 300-frame takes, or the val
split's four for tuning), and the in-domain ``indomain`` rows: the shipped clips of the
*train* split's motions under training's cameras (``library=clips,split=train,frames=64``).
Variants: ``full`` (AdaptConfig as shipped), ``no-exemplars``, ``no-teacher``,
``no-dynamic``. Columns: PA-MPJPE, MPJPE (coco17, mm), accel (mm/frame^2), ms/frame in
the estimator, updates per frame, frames not learned from.

``--plot``: each method alone and adapted on one long stream -- the split's takes one
after another as one track (1200 frames, the motion changing every 300, never reset) --
per-frame PA-MPJPE (a 15-frame running mean) in a PNG.

``--fps``: frames per second of each method's ``+adapt`` stepping through the first val
take (300 frames; the evidence given, no detection), on ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import torch

from hmrkit.eval.specs import SHIFTS

VARIANTS = {
    "full": {},
    "no-exemplars": {"exemplars": False},
    "no-teacher": {"teacher": False},
    "no-dynamic": {"dynamic": False},
}


def parse_set(items) -> dict:
    out = {}
    for it in items or []:
        k, v = it.split("=", 1)
        out[k] = {"true": True, "false": False}.get(v.lower(), None)
        if out[k] is None:
            out[k] = float(v) if any(ch in v for ch in ".e") else int(v)
    return out


def adapted(method: str, body, variant: str, changes: dict):
    from hmrkit.adapt import AdaptConfig, Adapted
    from hmrkit.estimate import build

    return Adapted(build(method, body), replace(AdaptConfig(), **{**VARIANTS[variant], **changes}))


def long_stream(data):
    """The set's clips as one track (one clip spanning them all)."""
    return replace(data, inputs=replace(data.inputs, clips=((0, len(data.inputs)),)))


def plot(body, methods, shift, split, changes, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from hmrkit.estimate import build
    from hmrkit.eval.loop import evaluate_synthetic
    from hmrkit.eval.protocols import SyntheticSpec, build_synthetic

    spec = SyntheticSpec.parse(f"synthetic:sequences,library=streams,frames=300,temporal=1,n=4,split={split},"
                               f"shift={shift}")
    data = long_stream(build_synthetic(body, spec))
    fig, ax = plt.subplots(figsize=(10, 3.6), dpi=110)
    colours = {"spin": "tab:blue", "maed": "tab:green", "pare": "tab:purple"}
    for m in methods:
        for est, style in ((build(m, body), "--"), (adapted(m, body, "full", changes), "-")):
            pa = evaluate_synthetic(est, body, spec, data=data).metrics["PA-MPJPE"].numpy()
            run = np.convolve(np.nan_to_num(pa, nan=np.nanmean(pa)), np.ones(15) / 15, mode="same")
            ax.plot(run, style, color=colours.get(m, "k"), lw=1.4, label=f"{est.name}  (mean {np.nanmean(pa):.1f})")
            print(f"plot {est.name}: PA-MPJPE first 300 {np.nanmean(pa[:300]):.1f}, last 300 "
                  f"{np.nanmean(pa[-300:]):.1f}", file=sys.stderr, flush=True)
    for x in range(300, len(data.inputs), 300):
        ax.axvline(x, color="0.7", lw=0.8)
    ax.set_xlabel("frame (one track: four held-out takes in a row, never reset)")
    ax.set_ylabel("PA-MPJPE, mm (15-frame mean)")
    ax.set_title(f"Online adaptation over a long stream: shift={shift}, {split} takes")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}", file=sys.stderr)


def fps(body, methods, split: str, changes: dict | None = None) -> None:
    from hmrkit.estimate import observation_from_arrays
    from hmrkit.eval.protocols import SyntheticSpec, build_synthetic

    spec = SyntheticSpec.parse(f"synthetic:sequences,library=streams,frames=300,temporal=1,n=1,split={split},shift=high")
    x = build_synthetic(body, spec).inputs
    obs = [observation_from_arrays(x.keypoints2d[i:i + 1], x.convention, x.K[i:i + 1], image_size=x.image_size[i:i + 1],
                                   frame_index=[i]) for i in range(len(x))]
    print(f"threads: {torch.get_num_threads()}; {len(obs)} frames of {spec.name}; AdaptConfig changes: {changes or 'none'}")
    print("| method | ms/frame | frames/s | updates/frame |\n|---|---:|---:|---:|")
    for m in methods:
        est = adapted(m, body, "full", changes or {})
        t = time.perf_counter()
        for o in obs:
            est.step(o)
        dt = time.perf_counter() - t
        print(f"| {est.name} | {1000 * dt / len(obs):.0f} | {len(obs) / dt:.1f} | {est.updates / est.frames:.2f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["spin", "maed"])
    ap.add_argument("--shifts", nargs="+", default=list(SHIFTS), choices=list(SHIFTS))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--ablate", nargs="+", default=["spin"], help="methods whose ablations run (the others: full)")
    ap.add_argument("--split", default="test", choices=["val", "test"])
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--indomain", action="store_true", help="also the in-domain rows (train-split clips)")
    ap.add_argument("--no-base", action="store_true", help="skip the unadapted rows")
    ap.add_argument("--set", nargs="*", default=[], help="AdaptConfig changes, e.g. lr=1e-5 lr_probe=1e-4")
    ap.add_argument("--plot", default=None, help="write the long-stream per-frame plot here instead of the table")
    ap.add_argument("--fps", action="store_true", help="time the adapted methods instead of the table")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import hmrkit.body
    from hmrkit.estimate import build
    from hmrkit.eval.metrics import format_table
    from hmrkit.eval.protocols import SyntheticSpec, build_synthetic
    from rows import result_row

    body = hmrkit.body.load("anny")
    changes = parse_set(args.set)
    if args.plot:
        plot(body, args.methods, args.shifts[0], args.split, changes, args.plot)
        return 0
    if args.fps:
        fps(body, args.methods, "val", changes)
        return 0
    sets = [(s, f"synthetic:sequences,library=streams,frames={args.frames},temporal=1,n={args.n},"
                f"split={args.split},shift={s}") for s in args.shifts]
    if args.indomain:
        sets.append(("indomain", "synthetic:sequences,frames=64,temporal=1,n=8,split=train"))
    rows = []
    t0 = time.perf_counter()
    for key, text in sets:
        spec = SyntheticSpec.parse(text)
        data = build_synthetic(body, spec)
        for method in args.methods:
            ests = [] if args.no_base else [(build(method, body), method)]
            for v in args.variants:
                if v != "full" and method not in args.ablate:
                    continue
                ests.append((adapted(method, body, v, changes), f"{method}+adapt" + ("" if v == "full" else f" {v}")))
            for est, label in ests:
                row = result_row(est, body, spec, data, key, label)
                n = max(1, getattr(est, "frames", 0))
                row["updates/frame"] = getattr(est, "updates", 0) / n if hasattr(est, "updates") else 0.0
                row["not learned"] = sum(getattr(est, "skipped", {}).values()) if hasattr(est, "skipped") else 0
                rows.append(row)
                print(f"{key} {label}: PA-MPJPE {row['PA-MPJPE']:.1f} MPJPE {row['MPJPE']:.1f} accel {row['accel']:.1f} "
                      f"{row['ms/frame']:.0f} ms/frame ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    print(f"split={args.split}, n={args.n}, frames={args.frames}, AdaptConfig changes: {changes or 'none'}")
    print(format_table(rows, ["data", "method", "PA-MPJPE", "MPJPE", "accel", "ms/frame", "updates/frame",
                              "not learned"], digits=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

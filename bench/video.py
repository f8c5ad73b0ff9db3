"""The video methods on the fixed synthetic sequence sets: MPJPE, PA-MPJPE, PVE and the
acceleration error of spin, spin+fit, fit, maed and maed+fit (hmrkit eval's metrics).

    .venv/bin/python bench/video.py [--sets sequences-clean ...] [--methods spin maed ...]
        [--maed-weights runs/maed/maed_anny.pt] [--label NOTE] [--maed-stride 4]

Sets (unseen test-split motions: salsa, modern dance; 30 fps, slowly moving cameras):
``sequences-clean`` (exact keypoints), ``sequences-realistic`` (MediaPipe-calibrated
noise drawn independently per frame), ``sequences-rendered``
(frames rendered and run through MediaPipe Holistic in video mode). Every method sees the
same evidence, scheduled as ``hmrkit run`` schedules a track (chunks of consecutive frames,
each started from the previous one; maed with the previous half window as context).
mm, mm/frame^2; ms/frame is the estimator's time only (not detection or rendering).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

CLIPS = "n=8,frames=48"
SETS = {
    "sequences-clean": f"synthetic:sequences,{CLIPS},noise=clean",
    "sequences-realistic": f"synthetic:sequences,{CLIPS},noise=realistic",
    "sequences-rendered": f"synthetic:sequences,{CLIPS},render=1",
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--methods", nargs="+", default=["spin", "spin+fit", "fit", "maed", "maed+fit"])
    ap.add_argument("--maed-weights", default=None, help="MAED weights (default: the shipped ones)")
    ap.add_argument("--label", default=None, help="a note for the rows of --maed-weights")
    ap.add_argument("--maed-stride", type=int, default=None,
                    help="frames between maed's windows (default half a window; the maed rows only)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.maed_stride is not None and args.maed_stride < 1:
        ap.error(f"--maed-stride must be >= 1, got {args.maed_stride}")
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    if args.threads:
        torch.set_num_threads(args.threads)

    import hmrkit.body
    from hmrkit.cli import _filtered_native_stderr
    from hmrkit.estimate import build
    from hmrkit.eval.metrics import format_table
    from rows import result_row
    from hmrkit.eval.protocols import SyntheticSpec, build_synthetic

    body = hmrkit.body.load("anny")
    rows, names = [], []
    t_all = time.perf_counter()
    with _filtered_native_stderr():
        for key in args.sets:
            try:
                spec = SyntheticSpec.parse(SETS[key])
            except Exception as e:  # a set this checkout cannot build yet
                print(f"  {key}: skipped ({str(e).splitlines()[0]})", file=sys.stderr)
                continue
            names.append((key, spec.name))
            data = build_synthetic(body, spec)
            for method in args.methods:
                w = args.maed_weights if method.startswith("maed") else None
                label = f"{method} ({args.label})" if args.label and w else method
                if args.maed_stride and method == "maed":
                    from hmrkit.models.maed import MaedEstimator, MaedEstimatorConfig

                    est = MaedEstimator(body, MaedEstimatorConfig(weights=w, stride=args.maed_stride))
                    label = f"{label}, stride {args.maed_stride}"
                else:
                    est = build(method, body, weights=w)
                row = result_row(est, body, spec, data, key, label)
                rows.append(row)
                print(f"  {key} {label}: PA-MPJPE {row['PA-MPJPE']:.1f} accel {row.get('accel', float('nan')):.1f}",
                      file=sys.stderr, flush=True)
    cols = ["data", "method", "MPJPE", "PA-MPJPE", "PVE", "accel", "valid", "ms/frame"]
    print(f"\nhmrkit video methods on the fixed synthetic sequences ({os.cpu_count()} CPU cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s); {time.perf_counter() - t_all:.0f} s)\n")
    for k, name in names:
        print(f"- {k}: {name}")
    print()
    print(format_table(rows, cols, digits=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every method on the fixed synthetic test sets, in one table (hmrkit eval's metrics).

    .venv/bin/python bench/methods.py [--sets frames-realistic ...] [--methods fit spin spin+fit]
    .venv/bin/python bench/methods.py --methods spin spin+fit \
        --weights runs/spin_noloop/spin_anny.pt --label "no loop"

Rows per set: fit (from the mean body), spin (the regressor alone), spin+fit (the
regressor refined by fitting), and pare / pare+fit when asked (``--methods``). The
regressors are the shipped ones, or ``--weights`` (SPIN) / ``--pare-weights`` (PARE),
whose rows get ``--label``. The occluded sets: ``frames-occluded`` (an occluding box or
bar over every person, its keypoints in the noise model's calibrated boxed state),
``frames-truncated`` (the frame cuts off 20-50 % of every person), ``rendered-occluded``
(an occluder pasted into every render before MediaPipe sees it). Each set is built once and every method
sees the same evidence. mm; 2D px; ms/frame is the
estimator's time only (not detection or rendering).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

SETS = {
    "frames-clean": "synthetic:frames,noise=clean",
    "frames-realistic": "synthetic:frames,noise=realistic",
    "frames-realistic-3d": "synthetic:frames,noise=realistic,world3d=0.05",
    "rendered": "synthetic:rendered",
    "sequences-realistic": "synthetic:sequences,noise=realistic",
    "frames-occluded": "synthetic:frames,noise=realistic,occlusion=1",
    "frames-truncated": "synthetic:frames,noise=realistic,truncation=1",
    "rendered-occluded": "synthetic:rendered,occlusion=1",
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--methods", nargs="+", default=["fit", "spin", "spin+fit"])
    ap.add_argument("--weights", default=None, help="SPIN regressor weights (default: the shipped ones)")
    ap.add_argument("--pare-weights", default=None, help="PARE regressor weights (default: the shipped ones)")
    ap.add_argument("--label", default=None, help="a note for the rows of --weights")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    if args.threads:
        torch.set_num_threads(args.threads)

    import hmrkit.body
    from hmrkit.cli import _filtered_native_stderr
    from hmrkit.estimate import build
    from hmrkit.eval.metrics import format_table
    from rows import result_row
    from hmrkit.eval.protocols import SyntheticSpec, build_synthetic, default_detector

    body = hmrkit.body.load("anny")
    def weights_of(m):
        return args.weights if m.startswith("spin") else args.pare_weights if m.startswith("pare") else None

    variants = [(f"{m} ({args.label})" if args.label and weights_of(m) else m, m, weights_of(m)) for m in args.methods]
    rows = []
    t_all = time.perf_counter()
    with _filtered_native_stderr():
        detector = None
        for key in args.sets:
            spec = SyntheticSpec.parse(SETS[key])
            if spec.kind == "rendered" and detector is None:
                detector = default_detector()
            data = build_synthetic(body, spec, detector)
            for label, method, weights in variants:
                row = result_row(build(method, body, weights=weights), body, spec, data, key, label)
                rows.append(row)
                print(f"  {key} {label}: PA-MPJPE {row['PA-MPJPE']:.1f}", file=sys.stderr, flush=True)
    cols = ["data", "method", "MPJPE", "PA-MPJPE", "PA-MPJPE median", "PVE", "accel", "2D px", "valid", "ms/frame"]
    print(f"\nhmrkit methods on the fixed synthetic sets ({os.cpu_count()} CPU cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s); {time.perf_counter() - t_all:.0f} s)\n")
    for k in args.sets:
        print(f"- {k}: {SyntheticSpec.parse(SETS[k]).name}")
    print()
    print(format_table(rows, cols, digits=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

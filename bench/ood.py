"""The out-of-domain streams (#14, DynaBOA's benchmark): long test-split takes under camera
and body shifts, for the regressors as they are (docs/eval.md, "Out-of-domain streams").

    .venv/bin/python bench/ood.py [--methods spin maed] [--shifts none low high tele wide child elder noisy] [--n 4]

Each set is ``synthetic:sequences,library=streams,frames=300,temporal=1,shift=S``: n of the
four 300-frame test takes (salsa, modern dance: motions no training saw), realistic
detector noise correlated over time as MediaPipe's in video mode, scored per frame in
order. Columns: PA-MPJPE, MPJPE (coco17, mm), acceleration error (mm/frame^2), ms/frame.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from hmrkit.eval.specs import SHIFTS


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["spin", "maed"])
    ap.add_argument("--shifts", nargs="+", default=list(SHIFTS), choices=list(SHIFTS))
    ap.add_argument("--n", type=int, default=4)
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
    rows = []
    t0 = time.perf_counter()
    for shift in args.shifts:
        spec = SyntheticSpec.parse(f"synthetic:sequences,library=streams,frames=300,temporal=1,n={args.n},shift={shift}")
        data = build_synthetic(body, spec)
        for method in args.methods:
            row = result_row(build(method, body), body, spec, data, shift, method)
            rows.append(row)
            print(f"{shift} {method}: PA-MPJPE {row['PA-MPJPE']:.1f} accel {row['accel']:.1f} "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    print(f"sets: synthetic:sequences,library=streams,frames=300,temporal=1,n={args.n},shift=(data)")
    print(format_table(rows, ["data", "method", "PA-MPJPE", "MPJPE", "accel", "ms/frame"], digits=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Batch runs: wall time of ``hmrkit run`` over a folder, here and on Ray, and whether the
Ray results are the local ones bit for bit (docs/batch.md).

    .venv/bin/python bench/batch.py [FOLDER ...] [--method spin+fit] [--workers 1 2] [--copies 2] [--limit 20]

Each input folder's images (default: tests/data/images) are copied ``--copies`` times under
new names, so there are enough inputs to share out. Rows: the local run, then ``--ray``
with each number of workers (a local Ray started by hmrkit: its start-up is in the time).
Columns: inputs, wall seconds (models loaded included), inputs per minute, and the outputs
against the local run's: ``identical`` (every array of every NAME.npz), else the largest
difference of the vertices.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def compare(a: Path, b: Path) -> str:
    """"identical" (every array of every npz equal), else the largest vertex difference, or
    what is missing."""
    worst = 0.0
    same = True
    for f in sorted(a.glob("*.npz")):
        g = b / f.name
        if not g.exists():
            return f"{f.name} missing"
        with np.load(f) as x, np.load(g) as y:
            for k in x.files:
                if k not in y.files or x[k].shape != y[k].shape:
                    return f"{f.name}: {k} differs"
                if not np.array_equal(x[k], y[k], equal_nan=x[k].dtype.kind == "f"):
                    same = False
                    if k == "vertices":
                        worst = max(worst, float(np.nanmax(np.abs(x[k] - y[k]))))
    return "identical" if same else f"vertices within {worst:.1e} m"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="*", default=[str(REPO / "tests" / "data" / "images")])
    ap.add_argument("--method", default="spin+fit")
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="at most this many inputs")
    args = ap.parse_args(argv)
    hmrkit = str(Path(sys.executable).parent / "hmrkit")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "in"
        src.mkdir()
        for c in range(args.copies):
            for f, folder in enumerate(args.folders):
                for p in sorted(Path(folder).iterdir()):
                    if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
                        if args.limit is None or len(list(src.iterdir())) < args.limit:
                            shutil.copy(p, src / f"{f}_{p.stem}_{c}{p.suffix}")
        n = len(list(src.iterdir()))
        rows = []
        runs = [("local", None)] + [("ray", w) for w in args.workers]
        for mode, w in runs:
            out = tmp / f"out_{mode}_{w}"
            cmd = [hmrkit, "run", str(src), "--method", args.method, "--out", str(out), "--no-overlay"]
            if mode == "ray":
                cmd += ["--ray", "--workers", str(w)]
            t0 = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if res.returncode != 0:
                print(res.stderr, file=sys.stderr)
                return 1
            ident = "-" if mode == "local" else compare(tmp / "out_local_None", out)
            rows.append((mode if w is None else f"ray, {w} worker{'s' if w > 1 else ''}", n, wall, 60 * n / wall, ident))
            print(f"{rows[-1][0]}: {wall:.1f} s", file=sys.stderr, flush=True)
    print(f"method {args.method}, {n} inputs ({', '.join(args.folders)} x {args.copies})")
    print("| run | inputs | wall s | inputs/min | outputs against the local run's |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} | {r[4]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

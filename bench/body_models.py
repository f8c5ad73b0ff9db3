"""Forward time of the body models on this machine, as a markdown table.

    python bench/body_models.py [--repeats 20] [--threads N]

Rows: Anny (``hmrkit.body.load("anny")``), hmrkit's SMPL backend and the smplx package's
``SMPLLayer`` on the same synthetic SMPL file (written to a temporary folder; the timing
does not depend on the values in the file). Each forward gets random rotation matrices,
shapes and translations; times are medians in milliseconds, under ``torch.no_grad``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from importlib.metadata import version

import torch

from hmrkit.body import load
from hmrkit.geometry import rotmat_from_aa
from hmrkit.types import BodyParams


def random_params(body, batch_size: int, seed: int = 0) -> BodyParams:
    g = torch.Generator().manual_seed(seed)
    R = rotmat_from_aa(torch.randn(batch_size, body.num_pose_joints + 1, 3, generator=g) * 0.4)
    mean = body.mean_params(batch_size)
    shape = mean.shape + 0.1 * torch.randn(mean.shape.shape, generator=g)
    if body.shape_range is not None:
        shape = shape.clamp(*body.shape_range)
    return BodyParams(R[:, 0], R[:, 1:], shape, torch.randn(batch_size, 3, generator=g), mean.expression)


def median_ms(fns, repeats: int, warmup: int = 2) -> list[float]:
    """Median time of each of fns, in ms. The calls are interleaved (one of each per
    round), so that load from other processes on a shared machine hits them alike."""
    times = [[] for _ in fns]
    with torch.no_grad():
        for _ in range(warmup):
            for fn in fns:
                fn()
        for _ in range(repeats):
            for fn, ts in zip(fns, times):
                t0 = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(ts) for ts in times]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per cell (B=64 gets a quarter)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the core count)")
    args = parser.parse_args(argv)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = args.threads or cores
    torch.set_num_threads(threads)
    import smplx

    from hmrkit.body.synthetic import write_synthetic_model

    with tempfile.TemporaryDirectory() as tmp:
        path = write_synthetic_model(tmp, "smpl", "pkl")
        ours = load("smpl", model_path=path)
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning per load
            theirs = smplx.SMPLLayer(model_path=str(path), num_betas=10)
        with contextlib.redirect_stdout(io.StringIO()):  # Warp's start-up messages
            anny = load("anny")
            with torch.no_grad():
                anny(anny.mean_params(1))

        def smplx_forward(p):
            return theirs(betas=p.shape, global_orient=p.global_orient, body_pose=p.pose, transl=p.transl)

        models = [
            ("Anny (hmrkit.body.load('anny'))", anny, anny),
            ("SMPL, hmrkit (hmrkit.body.smpl)", ours, ours),
            (f"SMPL, smplx {version('smplx')} (SMPLLayer)", ours, smplx_forward),
        ]
        cells = []
        for batch_size, repeats in ((1, args.repeats), (64, max(3, args.repeats // 4))):
            fns = []
            for _, body, fn in models:
                p = random_params(body, batch_size)
                fns.append(lambda fn=fn, p=p: fn(p))
            cells.append(median_ms(fns, repeats))
        rows = [(label, body.num_vertices, t1, t64) for (label, body, _), t1, t64 in zip(models, *cells)]

    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Body model forward time, ms (median), torch {torch.__version__} on CPU, "
          f"torch.set_num_threads({threads}) on this machine's {cores} cores, torch.no_grad; "
          f"calls interleaved; 1-min load average {load1:.1f} (the machine is shared)\n")
    print("| model | vertices | batch 1 | batch 64 |")
    print("| --- | ---: | ---: | ---: |")
    for label, V, t1, t64 in rows:
        print(f"| {label} | {V:,} | {t1:.2f} | {t64:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

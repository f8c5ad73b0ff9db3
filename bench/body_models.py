"""Forward time of the body models on this machine, as a markdown table.

    python bench/body_models.py [--repeats 20] [--threads N]

Rows: Anny (``hmrkit.body.load("anny")``), hmrkit's SMPL backend and the smplx package's
``SMPLLayer`` on the same synthetic SMPL file (written to a temporary folder; the timing
does not depend on the values in the file). Each forward gets random rotation matrices,
shapes (distinct per sample) and translations; times are medians in milliseconds, under
``torch.no_grad``.

A second table times what fitting and training need, keypoints only: the full forward
followed by the regressors against ``forward_keypoints`` (no mesh), forward alone and
forward + backward (the gradient of the keypoints' sum w.r.t. every parameter).
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


def median_ms(fns, repeats: int, warmup: int = 2, grad: bool = False) -> list[float]:
    """Median time of each of fns, in ms. The calls are interleaved (one of each per
    round), so that load from other processes on a shared machine hits them alike."""
    times = [[] for _ in fns]
    with torch.set_grad_enabled(grad):
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

        keypoint_rows = keypoint_times(anny, ours, args.repeats)

    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Body model forward time, ms (median), torch {torch.__version__} on CPU, "
          f"torch.set_num_threads({threads}) on this machine's {cores} cores, torch.no_grad; "
          f"calls interleaved; 1-min load average {load1:.1f} (the machine is shared)\n")
    print("| model | vertices | batch 1 | batch 64 |")
    print("| --- | ---: | ---: | ---: |")
    for label, V, t1, t64 in rows:
        print(f"| {label} | {V:,} | {t1:.2f} | {t64:.1f} |")
    print("\nKeypoints only, ms (median), distinct shapes per sample; fwd under torch.no_grad, "
          "fwd+bwd the gradient of the keypoints' sum w.r.t. every parameter\n")
    print("| model | path | B=1 fwd | B=1 fwd+bwd | B=64 fwd | B=64 fwd+bwd |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for model, path, cells in keypoint_rows:
        print(f"| {model} | {path} | " + " | ".join(f"{t:.1f}" for t in cells) + " |")
    return 0


def keypoint_times(anny, smpl, repeats: int):
    """[(model, path, [B=1 fwd, B=1 fwd+bwd, B=64 fwd, B=64 fwd+bwd] ms)]: the full forward
    then the regressors vs ``forward_keypoints``, for the conventions a fit uses."""
    holistic = ("mediapipe33", "hand21_left", "hand21_right", "face")
    paths = [
        ("Anny", "forward + keypoints, mediapipe33", anny, lambda b, p: full_keypoints(b, p, ("mediapipe33",))),
        ("Anny", "forward_keypoints, mediapipe33", anny, lambda b, p: b.forward_keypoints(p, ("mediapipe33",))),
        ("Anny", "forward + keypoints, holistic (body, hands, face)", anny,
         lambda b, p: full_keypoints(b, p, holistic)),
        ("Anny", "forward_keypoints, holistic (body, hands, face)", anny,
         lambda b, p: b.forward_keypoints(p, holistic)),
        ("Anny", "forward_joints (joints only)", anny, lambda b, p: {"joints": b.forward_joints(p)}),
        ("SMPL, hmrkit", "forward + keypoints, mediapipe33", smpl, lambda b, p: full_keypoints(b, p, ("mediapipe33",))),
        ("SMPL, hmrkit", "forward_keypoints, mediapipe33", smpl, lambda b, p: b.forward_keypoints(p, ("mediapipe33",))),
    ]
    cells = []
    for batch_size, n in ((1, repeats), (64, max(3, repeats // 4))):
        forward, backward = [], []
        for _, _, body, run in paths:
            p = random_params(body, batch_size)
            forward.append(lambda run=run, body=body, p=p: run(body, p))
            leaf = p.map(lambda t: t.clone().requires_grad_(True))
            backward.append(lambda run=run, body=body, q=leaf: sum(x.sum() for x in run(body, q).values()).backward())
        cells.append(median_ms(forward, n))
        cells.append(median_ms(backward, n, grad=True))
    return [(model, path, [c[i] for c in cells]) for i, (model, path, _, _) in enumerate(paths)]


def full_keypoints(body, params, conventions) -> dict:
    out = body(params)
    return {c: body.keypoints(out, c) for c in conventions}


if __name__ == "__main__":
    sys.exit(main())

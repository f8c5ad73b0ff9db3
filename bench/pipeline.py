"""Speed and 2D accuracy of ``hmrkit run`` (default fit settings) on the shared samples.

    python bench/pipeline.py [--method spin+fit] [--out /tmp/hmrkit_bench] [--frames 40] [--fit-iters N]

Images: every photo in ``../shared/samples/images``. Videos: the first ``--frames``
frames of each file in ``../shared/samples/videos``. One ``hmrkit.pipeline.Runner`` runs
them all (the models load once, outside the timings); the image detector is warmed up on
the first photo first, so its one-off graph set-up is not charged to any photo. Video mode
rebuilds MediaPipe's tracker for each video, and that cost is in the video's detect time.

Stages (seconds, from the pipeline's own timers): decode (read the file / ffmpeg), detect
(MediaPipe Holistic), fit (the SMPLify-style staged fit), render (overlay PNG / MP4),
write (body model forward for the stacked arrays + the atomic npz). total is the wall
time of the whole input.

2D error, px, on the frame's pixels:
- ``MP33@0.5``: the mean distance between the fitted mesh's MediaPipe-33 body landmarks,
  projected with cam_K, and the detected body landmarks with confidence >= 0.5 (the
  fitter's own body keypoints, so this is the fit residual);
- ``COCO17@0.5``: the npz's ``keypoints2d`` (COCO-17 regressed from the mesh, projected)
  against the detection converted to COCO-17 (name mapping), confidence >= 0.5; this also
  contains the differences between Anny's COCO regressor and MediaPipe's landmark
  definitions (hips, ears);
- ``fit_px_error``: the npz's value (the fitter's mean over body landmarks with confidence
  >= its min_confidence, 0.2).
``height`` is the person's box height in px (detected body landmarks with confidence
>= 0.5), to read the errors against.

Overlays are written to ``--out``: ``NAME_overlay.png`` (photo | mesh | side view) and
``NAME_overlay.mp4`` for the videos.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples"
STAGES = ("decode", "detect", "fit", "render", "write")


def body_errors(body, npz: dict, min_conf: float = 0.5):
    """Per valid frame: (MP33 px error, COCO17 px error, fit_px_error, person height px)."""
    from hmrkit.conventions import convert_with_confidence
    from hmrkit.geometry.camera import project
    from hmrkit.types import BodyParams

    rows = []
    conv = str(npz["evidence_convention"])
    for t in np.nonzero(npz["valid"][:, 0])[0]:
        ev = npz["evidence_keypoints2d"][t, 0]
        p = BodyParams(
            global_orient=torch.from_numpy(npz["global_orient"][t]),
            pose=torch.from_numpy(npz["body_pose"][t]),
            shape=torch.from_numpy(npz["shape"][t]),
            transl=torch.from_numpy(npz["transl"][t]),
            expression=torch.from_numpy(npz["expression"][t]) if "expression" in npz else None,
        )
        K = torch.from_numpy(npz["cam_K"][t])[None]
        with torch.no_grad():
            uv = project(body.keypoints(body(p), "mediapipe33"), K)[0].numpy()
        mp = convert_with_confidence(ev, conv, "mediapipe33") if conv != "mediapipe33" else ev
        ok = mp[:, 2] >= min_conf
        e_mp = float(np.linalg.norm(uv - mp[:, :2], axis=-1)[ok].mean()) if ok.any() else float("nan")
        coco = convert_with_confidence(ev, conv, "coco17")
        okc = coco[:, 2] >= min_conf
        e_coco = (float(np.linalg.norm(npz["keypoints2d"][t, 0] - coco[:, :2], axis=-1)[okc].mean())
                  if okc.any() else float("nan"))
        height = float(np.ptp(mp[ok, 1])) if ok.any() else float("nan")
        rows.append((e_mp, e_coco, float(npz["fit_px_error"][t, 0]), height))
    return rows


def fmt(x, nd=2):
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{nd}f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/hmrkit_bench", help="folder for the npz files and overlays")
    parser.add_argument("--images", default=str(SAMPLES / "images"))
    parser.add_argument("--videos", default=str(SAMPLES / "videos"))
    parser.add_argument("--frames", type=int, default=40, help="frames per video")
    parser.add_argument("--method", default="spin+fit", help="estimator (hmrkit.estimators.METHODS)")
    parser.add_argument("--videos-only", action="store_true", help="skip the photos")
    parser.add_argument("--fit-iters", type=int, default=None, help="fitting budget (default: the fitter's)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)

    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    if args.threads:
        torch.set_num_threads(args.threads)
    from hmrkit.cli import _filtered_native_stderr  # MediaPipe/TFLite/absl log noise off
    from hmrkit.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_image
    from hmrkit.pipeline import Runner, RunConfig, Summary

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if args.videos_only:
        images = []
    videos = sorted(p for p in Path(args.videos).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)

    with _filtered_native_stderr():
        t = time.perf_counter()
        runner = Runner(RunConfig(out_dir=out, method=args.method, max_frames=args.frames, fit_iters=args.fit_iters))
        load_s = time.perf_counter() - t
        if images:
            runner.detector(video=False).detect(read_image(images[0]))  # warm-up, not timed

        image_rows = []
        for path in images:
            runner.summary = Summary()
            t = time.perf_counter()
            runner.run_image(path)
            total = time.perf_counter() - t
            with np.load(out / f"{path.stem}.npz", allow_pickle=False) as z:
                npz = {k: z[k] for k in z.files}
            h, w = read_image(path).shape[:2]
            errs = body_errors(runner.body, npz)
            image_rows.append((path.name, f"{w}x{h}", runner.summary.timings, total, errs))
            print(f"  {path.name}: {total:.1f} s", file=sys.stderr, flush=True)

        video_rows = []
        for path in videos:
            runner.summary = Summary()
            t = time.perf_counter()
            runner.run_video(path)
            total = time.perf_counter() - t
            with np.load(out / f"{path.stem}.npz", allow_pickle=False) as z:
                npz = {k: z[k] for k in z.files}
            errs = body_errors(runner.body, npz)
            n = runner.summary.frames
            video_rows.append((path.name, n, int(npz["valid"].sum()), runner.summary.timings, total, errs))
            print(f"  {path.name}: {total:.1f} s", file=sys.stderr, flush=True)

    threads = torch.get_num_threads()
    fitter = getattr(runner.fitter, "fitter", runner.fitter)  # spin+fit wraps a Fitter; spin has none
    iters = fitter.config if fitter is not None else None
    schedule = (f"fit schedule camera/body/detail = {iters.camera_iters}/{iters.body_iters}/{iters.detail_iters} "
                "iterations" if iters is not None else "no fitting")
    print("\n### hmrkit run, per photo (seconds; 2D errors in px)\n")
    print(f"Method {args.method}. Machine: {os.cpu_count()} CPU cores, torch {torch.__version__} with "
          f"{threads} thread(s); {schedule}; model load {load_s:.1f} s (once, not counted).\n")
    print("| image | size | decode | detect | fit | render | write | total | MP33@0.5 | COCO17@0.5 "
          "| fit_px_error | height |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, size, tm, total, errs in image_rows:
        e = errs[0] if errs else (float("nan"),) * 4
        stages = " | ".join(fmt(tm.get(s, 0.0)) for s in STAGES)
        note = "" if errs else " (nobody found)"
        print(f"| {name}{note} | {size} | {stages} | {fmt(total)} | {fmt(e[0], 1)} | {fmt(e[1], 1)} "
              f"| {fmt(e[2], 1)} | {fmt(e[3], 0)} |")
    if image_rows:
        tot = {s: sum(r[2].get(s, 0.0) for r in image_rows) / len(image_rows) for s in STAGES}
        mean_total = sum(r[3] for r in image_rows) / len(image_rows)
        errs = [r[4][0] for r in image_rows if r[4]]
        me = [float(np.mean([e[i] for e in errs])) if errs else float("nan") for i in range(3)]
        print(f"| **mean** | | {' | '.join(fmt(tot[s]) for s in STAGES)} | {fmt(mean_total)} "
              f"| {fmt(me[0], 1)} | {fmt(me[1], 1)} | {fmt(me[2], 1)} | |")

    print(f"\n### hmrkit run, per video (first {args.frames} frames)\n")
    print("Frames per second overall (frames / wall time) and per stage (frames / stage time); "
          "2D errors are means over the frames with a person.\n")
    print("| video | frames | with person | fps overall | decode | detect | fit | render | write "
          "| MP33@0.5 | COCO17@0.5 | fit_px_error | height |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, nvalid, tm, total, errs in video_rows:
        per = " | ".join(fmt(n / tm[s], 1) if tm.get(s, 0.0) > 1e-3 else "–" for s in STAGES)
        me = [float(np.mean([e[i] for e in errs])) if errs else float("nan") for i in range(4)]
        print(f"| {name} | {n} | {nvalid} | {fmt(n / total, 2)} | {per} | {fmt(me[0], 1)} | {fmt(me[1], 1)} "
              f"| {fmt(me[2], 1)} | {fmt(me[3], 0)} |")
    print(f"\nOverlays and npz files: {out}/")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())

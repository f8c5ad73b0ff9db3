"""Speed, people found and 2D accuracy of ``hmrkit run`` on the shared samples.

    python bench/pipeline.py [--method spin+fit] [--out /tmp/hmrkit_bench] [--frames 40]
                             [--videos-only] [--no-overlay] [--vf FILTER --tag NAME] [--threads 2]

Images: every photo in ``../shared/samples/images``. Videos: the first ``--frames``
frames of each file in ``../shared/samples/videos`` (``--vf``: re-encoded first through an
ffmpeg filter, e.g. ``crop=720:960:360:360`` for a 720x960 cut of two_people.mp4 with one
person in view, ``crop=1080:1440:0:120,scale=720:960`` for both). Each input is one ``hmrkit.pipeline.process_input``
call on models loaded once (``Models``, outside the timings); the first photo and the first
3 frames of the first video are run once first, untimed, so the detectors' one-off graph
set-up and torch's first calls are not charged to any input.

Stages (seconds, from the report's own timers): decode (read the file / ffmpeg), detect
(every person: ``hmrkit.detect.multi``), track (identities across frames), estimate (the
method), render (overlay PNG / MP4), write (body model forward for the stacked arrays +
the atomic npz). total is the wall time of the whole input. ``people`` is the number of
people (tracks) with at least one valid estimate; ``per frame`` the mean number found.

2D error, px, on the frame's pixels, over every valid person-frame:
- ``MP33@0.5``: the mean distance between the mesh's MediaPipe-33 body landmarks,
  projected with cam_K, and the detected body landmarks with confidence >= 0.5;
- ``fit_px_error``: the npz's value (the estimator's own, confidence >= 0.2).
``height`` is the person's box height in px, to read the errors against.
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
STAGES = ("decode", "detect", "track", "estimate", "render", "write")


def body_errors(body, npz: dict, min_conf: float = 0.5):
    """Per valid person-frame: (MP33 px error, fit_px_error, person height px)."""
    from hmrkit.conventions import convert_with_confidence
    from hmrkit.geometry.camera import project
    from hmrkit.types import BodyParams

    rows = []
    conv = str(npz["evidence_convention"])
    for t, p in zip(*np.nonzero(npz["valid"])):
        ev = npz["evidence_keypoints2d"][t, p]
        params = BodyParams(
            global_orient=torch.from_numpy(npz["global_orient"][t, p:p + 1]),
            pose=torch.from_numpy(npz["body_pose"][t, p:p + 1]),
            shape=torch.from_numpy(npz["shape"][t, p:p + 1]),
            transl=torch.from_numpy(npz["model_transl"][t, p:p + 1]),
            expression=torch.from_numpy(npz["expression"][t, p:p + 1]) if "expression" in npz else None,
        )
        K = torch.from_numpy(npz["cam_K"][t])[None]
        with torch.no_grad():
            uv = project(body.keypoints(body(params), "mediapipe33"), K)[0].numpy()
        mp = convert_with_confidence(ev, conv, "mediapipe33") if conv != "mediapipe33" else ev
        ok = mp[:, 2] >= min_conf
        e_mp = float(np.linalg.norm(uv - mp[:, :2], axis=-1)[ok].mean()) if ok.any() else float("nan")
        height = float(np.ptp(mp[ok, 1])) if ok.any() else float("nan")
        rows.append((e_mp, float(npz["fit_px_error"][t, p]), height))
    return rows


def fmt(x, nd=2):
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{nd}f}"


def _filtered(path: Path, vf: str, tag: str, frames: int, folder: Path) -> Path:
    """The first ``frames`` frames of a video re-encoded through the ffmpeg filter ``vf``."""
    import subprocess

    import imageio_ffmpeg

    out = folder / f"{path.stem}_{tag}.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(path),
                    "-frames:v", str(frames), "-vf", vf, "-an", "-crf", "18", str(out)], check=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/hmrkit_bench", help="folder for the npz files and overlays")
    parser.add_argument("--images", default=str(SAMPLES / "images"))
    parser.add_argument("--videos", default=str(SAMPLES / "videos"))
    parser.add_argument("--frames", type=int, default=40, help="frames per video")
    parser.add_argument("--method", default="spin+fit", help="estimator (hmrkit.estimate.method_names())")
    parser.add_argument("--videos-only", action="store_true", help="skip the photos")
    parser.add_argument("--only", nargs="*", default=None, help="only these file names")
    parser.add_argument("--no-overlay", action="store_true", help="no overlay pictures / videos")
    parser.add_argument("--vf", default=None, help="videos re-encoded through this ffmpeg filter first")
    parser.add_argument("--tag", default="vf", help="suffix of the re-encoded videos' names")
    parser.add_argument("--fit-iters", type=int, default=None, help="fitting budget (default: the fitter's)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)

    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    if args.threads:
        torch.set_num_threads(args.threads)
    from hmrkit.cli import _filtered_native_stderr  # MediaPipe/TFLite/absl log noise off
    from hmrkit.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES
    from hmrkit.pipeline import Models, RunConfig, process_input

    out = Path(args.out)
    (out / "warm-up").mkdir(parents=True, exist_ok=True)
    images = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if args.videos_only:
        images = []
    videos = sorted(p for p in Path(args.videos).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if args.only:
        images = [p for p in images if p.name in args.only]
        videos = [p for p in videos if p.name in args.only]
    if args.vf:
        videos = [_filtered(p, args.vf, args.tag, args.frames, out) for p in videos]

    config = RunConfig(out_dir=out, method=args.method, max_frames=args.frames, fit_iters=args.fit_iters,
                       overlay=not args.no_overlay)
    with _filtered_native_stderr():
        t = time.perf_counter()
        models = Models(config)
        load_s = time.perf_counter() - t
        # warm-up, not timed: the detectors' graphs, torch's first calls
        from dataclasses import replace

        for warm in (images[:1] + videos[:1]):
            process_input(warm, replace(config, out_dir=out / "warm-up", max_frames=3), models, name="warm-up")
        rows = []
        for path in images + videos:
            t = time.perf_counter()
            report = process_input(path, config, models)
            total = time.perf_counter() - t
            if not report.produced:
                print(f"  {path.name}: {report.error}", file=sys.stderr)
                continue
            with np.load(out / f"{report.name}.npz", allow_pickle=False) as z:
                npz = {k: z[k] for k in z.files}
            size = f"{int(npz['image_size'][0, 1])}x{int(npz['image_size'][0, 0])}"
            per_frame = float(npz["present"].sum(1).mean()) if npz["present"].size else 0.0
            rows.append((path.name, size, report, total, per_frame, body_errors(models.body, npz)))
            print(f"  {path.name}: {total:.1f} s, {report.people} people", file=sys.stderr, flush=True)

    threads = torch.get_num_threads()
    print(f"\n### hmrkit run (method {args.method}; {os.cpu_count()} CPU cores, torch {torch.__version__} with "
          f"{threads} thread(s); model load {load_s:.1f} s, once, not counted; overlay "
          f"{'off' if args.no_overlay else 'on'})\n")
    print("| input | size | frames | people | per frame | " + " | ".join(f"{s} ms/frame" for s in STAGES)
          + " | fps overall | MP33@0.5 | fit_px_error | height |")
    print("|---|---|---:|---:|---:|" + "---:|" * len(STAGES) + "---:|---:|---:|---:|")
    for name, size, r, total, per_frame, errs in rows:
        n = max(1, r.frames)
        stages = " | ".join(fmt(1000 * r.timings.get(s, 0.0) / n, 1) for s in STAGES)
        me = [float(np.mean([e[i] for e in errs])) if errs else float("nan") for i in range(3)]
        print(f"| {name} | {size} | {r.frames} | {r.people} | {fmt(per_frame, 1)} | {stages} | {fmt(n / total, 2)} "
              f"| {fmt(me[0], 1)} | {fmt(me[1], 1)} | {fmt(me[2], 0)} |")
    print(f"\nOverlays and npz files: {out}/")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())

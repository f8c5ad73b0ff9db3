"""Build the synthetic-sequence library: short contiguous CMU mocap clips retargeted at
30 fps onto a body model.

    .venv/bin/python scripts/build_sequences.py [--mocap ../shared/data/mocap] [--frames 64]

For each clip file in CLIPS (different CMU takes: walking, jumping, boxing, swordplay,
uneven ground, a playground, a BVH subject, basketball; and, for the val and test splits
of hmrkit.data.splits, salsa and modern dance): read it, subsample to --fps, pick the
--frames long window with the most motion (root-relative joint speed plus root speed),
fit the body model to the window as a whole with hmrkit.fit.fit3d (bone directions and
positions, one shape for the clip, RETARGET_NAMES as build_pose_prior.py's NAMES), smooth
the fitted rotations and trajectory with a Gaussian of --smooth frames, and store it.

Writes (small, shipped in the package):
  src/hmrkit/weights/sequences_<body>.npz   see hmrkit.data.sequences for the fields
and prints the figures (retargeting error per clip, time).

    .venv/bin/python scripts/build_sequences.py --train-library [--frames 96] [--iters 80] [--every 2]

The video methods' training library (MAED): every clip of the *train* split
(hmrkit.data.splits) cut into consecutive --frames windows, every --every-th window kept,
each retargeted as above; written to ~/.cache/hmrkit/sequences_train_<body>.npz (not
shipped: ``hmrkit train maed`` builds it when missing, ~20 min on one core).

Data: "The data used in this project was obtained from mocap.cs.cmu.edu. The database was
created with funding from NSF EIA-0196217."
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

import hmrkit.body
from hmrkit.body.priors import WEIGHTS_DIR, body_joint_indices
from hmrkit.data.mocap import load_mocap, subsample
from hmrkit.data.sequences import CMU_ATTRIBUTION, RETARGET_NAMES, retarget_window
from hmrkit.geometry.rotation import rotmat_to_aa

# (path under the mocap folder, what it is): eight takes from different files
CLIPS = (
    ("cmu/02/02_01.amc", "walk"),
    ("cmu/02/02_04.amc", "jump, balance"),
    ("cmu/02/02_05.amc", "punch, strike"),
    ("cmu/02/02_07.amc", "swordplay"),
    ("cmu/02/02_10.amc", "varied motions"),
    ("cmu/03/03_01.amc", "walk on uneven terrain"),
    ("cmu/01/01_01.amc", "playground"),
    ("bvh/cmu_131_01.bvh", "subject 131"),
    ("bvh/cmu_06_01.bvh", "basketball"),
    ("bvh/cmu_07_03.bvh", "walk"),
    # val and test subjects and motions (hmrkit.data.splits): never seen in training
    ("bvh/cmu_61_03.bvh", "salsa (follow), val"),
    ("bvh/cmu_05_15.bvh", "modern dance, val"),
    ("bvh/cmu_60_01.bvh", "salsa (lead), test"),
    ("bvh/cmu_60_09.bvh", "salsa (lead), test"),
    ("bvh/cmu_05_01.bvh", "modern dance, test"),
    ("bvh/cmu_05_04.bvh", "modern dance, test"),
)


# Long takes for the out-of-domain streams (DynaBOA, #14): 300 frames at 30 fps each; the
# test takes first (the benchmark), then val takes (tuning the adaptation: never the test ones)
STREAMS = (
    ("bvh/cmu_60_01.bvh", "salsa (lead), test"),
    ("bvh/cmu_60_09.bvh", "salsa (lead), test"),
    ("bvh/cmu_60_13.bvh", "salsa (lead), test"),
    ("bvh/cmu_05_04.bvh", "modern dance, test"),
    ("bvh/cmu_61_01.bvh", "salsa (follow), val"),
    ("bvh/cmu_61_05.bvh", "salsa (follow), val"),
    ("bvh/cmu_05_12.bvh", "modern dance, val"),
    ("bvh/cmu_05_18.bvh", "modern dance, val"),
)


def pick_window(pos: np.ndarray, frames: int, stride: int = 4) -> int:
    """Start of the ``frames`` long window of pos (T, K, 3) with the most motion."""
    T = len(pos)
    if T < frames:
        raise ValueError(f"clip has {T} frames, fewer than --frames {frames}")
    root = pos.mean(1, keepdims=True)
    speed = np.linalg.norm(np.diff(pos - root, axis=0), axis=-1).mean(-1) + \
        0.5 * np.linalg.norm(np.diff(root[:, 0], axis=0), axis=-1)
    csum = np.concatenate([[0.0], np.cumsum(speed)])
    starts = np.arange(0, T - frames + 1, stride)
    score = csum[starts + frames - 1] - csum[starts]
    return int(starts[np.argmax(score)])


def train_library_path(body_name: str) -> Path:
    from hmrkit.train.data import cache_dir

    return cache_dir() / f"sequences_train_{body_name}.npz"


def windows(root: Path, args):
    """(file, what, start, positions, mask) of each window to retarget: CLIPS' most moving
    window each, or (--train-library) every --every-th --frames window of the train clips."""
    if not args.train_library:
        for rel, what in (STREAMS if args.streams else CLIPS)[: args.limit]:
            clip = subsample(load_mocap(root / rel), args.fps)
            pos, mask = clip.semantic(RETARGET_NAMES)
            yield rel, what, pick_window(pos, args.frames), pos, mask
        return
    from hmrkit.data.mocap import list_mocap_files
    from hmrkit.data.splits import split_of

    files = [f for f in list_mocap_files(root) if split_of(f.name) == "train"][: args.limit]
    for f in files:
        clip = subsample(load_mocap(f), args.fps)
        pos, mask = clip.semantic(RETARGET_NAMES)
        for k, s in enumerate(range(0, len(pos) - args.frames + 1, args.frames)):
            if k % args.every == 0:
                yield str(f.relative_to(root)), "train", s, pos, mask


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mocap", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mocap"))
    ap.add_argument("--body", default="anny")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--iters", type=int, default=150)
    ap.add_argument("--smooth", type=float, default=1.0, help="Gaussian sigma in frames (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="only the first N clips (a quick check)")
    ap.add_argument("--streams", action="store_true",
                    help="the long out-of-domain streams (STREAMS, test split; use --frames 300): "
                         "src/hmrkit/weights/streams_<body>.npz")
    ap.add_argument("--out", default=None, help="output npz (default: the package's weights folder)")
    ap.add_argument("--train-library", action="store_true",
                    help="every train-split clip in windows (MAED's training library) instead of CLIPS")
    ap.add_argument("--every", type=int, default=2, help="--train-library: keep every N-th window of a clip")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

    body = hmrkit.body.load(args.body, **({"expression": False} if args.body == "anny" else {}))
    bidx = body_joint_indices(body)
    root = Path(args.mocap)
    poses, gos, transls, shapes, sources, starts, errs = [], [], [], [], [], [], []
    t0 = time.time()
    for rel, what, s, pos, mask in windows(root, args):
        t1 = time.time()
        p, err = retarget_window(body, pos[s:s + args.frames], mask, iters=args.iters, smooth_sigma=args.smooth)
        poses.append(rotmat_to_aa(p.pose[:, bidx]).numpy())
        gos.append(rotmat_to_aa(p.global_orient).numpy())
        transls.append(p.transl.numpy())
        shapes.append(p.shape[0].numpy())
        sources.append(Path(rel).name)
        starts.append(s)
        errs.append(float(err.mean()) * 1000)
        print(f"{rel} ({what}): frames {s}..{s + args.frames - 1} at {args.fps:g} fps, retarget error "
              f"{errs[-1]:.1f} mm, {time.time() - t1:.0f} s", flush=True)
    if args.out:
        out = Path(args.out)
    elif args.train_library:
        out = train_library_path(body.name)
    elif args.streams:
        out = WEIGHTS_DIR / f"streams_{body.name}.npz"
    else:
        out = WEIGHTS_DIR / f"sequences_{body.name}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        body_pose_aa=np.stack(poses).astype(np.float16),
        global_orient_aa=np.stack(gos).astype(np.float32),
        transl=np.stack(transls).astype(np.float32),
        shape=np.stack(shapes).astype(np.float32),
        joint_names=np.array([body.pose_joint_names[i] for i in bidx]),
        fps=np.float32(args.fps),
        source=np.array(sources),
        start_frame=np.array(starts, dtype=np.int64),
        retarget_error_mm=np.array(errs, dtype=np.float32),
        body_model=np.array(body.name),
        attribution=np.array(CMU_ATTRIBUTION),
        build=np.array(f"scripts/build_sequences.py {'--streams ' if args.streams else ''}--fps {args.fps:g} "
                       f"--frames {args.frames} --iters {args.iters} --smooth {args.smooth:g} --seed {args.seed}"),
    )
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB): {len(poses)} clips x {args.frames} frames, "
          f"mean retarget error {np.mean(errs):.1f} mm, {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()

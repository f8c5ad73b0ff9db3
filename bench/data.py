"""Synthetic-data throughput, as a markdown table; optionally the contact sheet.

    .venv/bin/python bench/data.py [--threads 2] [--n-keypoints 512] [--n-rendered 48]
    .venv/bin/python bench/data.py --contact-sheet docs/synthetic_contact_sheet.png

Rows: the keypoint-only generator (``render_synthetic.generate(rendered=False)``: scenes,
one body forward per chunk, coco17 + mediapipe33 + holistic keypoints), the rendered
generator at two image sizes (RGB with a procedural background + part segmentation), and
``sequences.sample_sequence`` (one 64-frame clip with its moving camera and keypoints).
The first call of each is a warm-up and is not timed (renderer creation, caches).

The contact sheet: 16 rendered samples in a 4 x 4 grid, each tile [RGB with the
mediapipe33 keypoints drawn | part segmentation in PART_COLORS with the same keypoints],
seed 0, 256 x 256 px tiles.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
os.environ.setdefault("WARP_LOG_LEVEL", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def timed(fn, n_items: int, repeats: int = 1) -> float:
    """Items per second of fn() (which produces n_items), best of ``repeats``."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_items / best


def bench(args) -> str:
    import hmrkit.body
    from hmrkit.data.render_synthetic import generate
    from hmrkit.data.sequences import load_sequences, sample_sequence
    from hmrkit.data.synthetic import SceneConfig

    body = hmrkit.body.load("anny")
    rows = []

    list(generate(body, 8, seed=100))  # warm-up
    n = args.n_keypoints
    sps = timed(lambda: list(generate(body, n, seed=1)), n)
    rows.append(("keypoints only (coco17, mediapipe33, holistic)", "720 x 720", n, sps))

    for size in ((256, 256), (720, 720)):
        cfg = SceneConfig(image_size=size)
        list(generate(body, 2, seed=100, rendered=True, scene=cfg))  # warm-up (renderer)
        m = args.n_rendered if size[0] <= 256 else max(8, args.n_rendered // 3)
        sps = timed(lambda: list(generate(body, m, seed=2, rendered=True, scene=cfg)), m)
        rows.append(("rendered: RGB + part segmentation + keypoints", f"{size[0]} x {size[1]}", m, sps))

    lib = load_sequences(body.name)
    sample_sequence(body, 0, seed=100)  # warm-up
    S = len(lib)
    sps = timed(lambda: [sample_sequence(body, i % S, seed=i) for i in range(S)], S)
    rows.append((f"sequence ({lib.num_frames} frames, moving camera, keypoints)", "720 x 720", S, sps))
    rows.append(("  = frames per second of sequences", "720 x 720", S * lib.num_frames, sps * lib.num_frames))

    lines = [
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
        f"PYOPENGL_PLATFORM={os.environ.get('PYOPENGL_PLATFORM')}",
        "",
        "| generator | image | items | items / s |",
        "| --- | --- | ---: | ---: |",
    ]
    for name, size, count, rate in rows:
        lines.append(f"| {name} | {size} | {count} | {rate:.1f} |")
    return "\n".join(lines)


def contact_sheet(path: Path, seed: int = 0, tile: int = 256) -> None:
    """16 rendered samples, each [RGB + keypoints | part colours + keypoints], 4 x 4."""
    from PIL import Image

    import hmrkit.body
    from hmrkit.data.render_synthetic import colorize_parts, generate
    from hmrkit.render import draw_keypoints

    body = hmrkit.body.load("anny")
    from hmrkit.data.render_synthetic import RENDER_SCENE

    cfg = replace(RENDER_SCENE, image_size=(tile, tile))
    tiles = []
    for s in generate(body, 16, seed=seed, rendered=True, scene=cfg):
        kp = s.keypoints2d["mediapipe33"].numpy()
        left = draw_keypoints(s.rgb, kp, "mediapipe33", radius=2, thickness=1)
        right = draw_keypoints(colorize_parts(s.part_seg, background=(24, 24, 24)), kp, "mediapipe33",
                               radius=2, thickness=1)
        t = np.concatenate([left, right], axis=1)
        t[:, tile - 1:tile + 1] = 255  # a thin divider
        tiles.append(t)
    rows = [np.concatenate(tiles[r * 4:(r + 1) * 4], axis=1) for r in range(4)]
    sheet = np.concatenate(rows, axis=0)
    # white grid lines between tiles
    for r in range(1, 4):
        sheet[r * tile - 2:r * tile + 2] = 255
    for c in range(1, 4):
        sheet[:, c * 2 * tile - 2:c * 2 * tile + 2] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path, optimize=True)
    print(f"wrote {path} ({sheet.shape[1]} x {sheet.shape[0]} px, {path.stat().st_size / 1e6:.2f} MB)")


def training_sheet(path: Path, seed: int = 0, n: int = 24, tile: int = 200) -> None:
    """n random training people of the shipped SPIN and PARE recipe (scripts/train_spin.sh:
    ``TrainSetConfig`` with pose perturbation p 0.5 and upper/lower combination p 0.3: the
    train split's poses, all phenotypes, its cameras), rendered as training sees them and
    cropped to the person; each tile says the pose's CMU subject and motion (of the pose it
    was made from), and the body's age and gender phenotypes."""
    from PIL import Image, ImageDraw

    import hmrkit.body
    from hmrkit.data.render_synthetic import render_sample
    from hmrkit.data.splits import MOTIONS, subject_take
    from hmrkit.data.synthetic import SceneConfig, pose_library_sources, sample_scenes
    from hmrkit.geometry.camera import project
    from hmrkit.data.synthetic import PoseAugment
    from hmrkit.train.data import TrainSetConfig

    body = hmrkit.body.load("anny")
    cfg = TrainSetConfig(augment=PoseAugment(perturb=0.5, combine=0.3))  # scripts/train_spin.sh
    scenes = sample_scenes(body, n, seed=seed, config=SceneConfig(
        image_size=cfg.image_size, yaw_deg=cfg.yaw_deg, split=cfg.split, phenotypes=cfg.phenotypes,
        augment=cfg.augment))
    source, _ = pose_library_sources(body.pose_library)
    age_i, gender_i = body.shape_names.index("age"), body.shape_names.index("gender")
    tiles = []
    for i in range(n):
        p = scenes.params[i:i + 1]
        rgb = render_sample(body, p, scenes.K[i], scenes.image_size, seed=seed * 1000 + i).rgb
        with torch.no_grad():
            uv = project(body(p).vertices, scenes.K[i:i + 1])[0].numpy()
        (x0, y0), (x1, y1) = uv.min(0), uv.max(0)
        c, half = ((x0 + x1) / 2, (y0 + y1) / 2), 0.58 * max(x1 - x0, y1 - y0)
        box = (int(c[0] - half), int(c[1] - half), int(c[0] + half), int(c[1] + half))
        im = Image.fromarray(rgb).crop(box).resize((tile, tile), Image.BILINEAR)
        d = ImageDraw.Draw(im)
        subject = subject_take(source[scenes.library_index[i]])[0]
        sh = scenes.params.shape[i]
        d.rectangle((0, 0, tile, 26), fill=(0, 0, 0))
        d.text((3, 1), f"CMU {subject}: {MOTIONS.get(subject, '?')[:24]}", fill=(255, 255, 255))
        d.text((3, 13), f"age {float(sh[age_i]):.2f}  gender {float(sh[gender_i]):.2f}", fill=(255, 255, 0))
        tiles.append(np.asarray(im))
    cols = 6
    rows = [np.concatenate(tiles[r * cols:(r + 1) * cols], axis=1) for r in range(n // cols)]
    sheet = np.concatenate(rows, axis=0)
    for r in range(1, n // cols):
        sheet[r * tile - 1:r * tile + 1] = 255
    for c in range(1, cols):
        sheet[:, c * tile - 1:c * tile + 1] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path, optimize=True)
    print(f"wrote {path} ({sheet.shape[1]} x {sheet.shape[0]} px; {cfg})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-keypoints", type=int, default=512)
    ap.add_argument("--n-rendered", type=int, default=48)
    ap.add_argument("--contact-sheet", type=Path, default=None, help="write the contact sheet here and exit")
    ap.add_argument("--training-sheet", type=Path, default=None,
                    help="write the sheet of 24 random training people (the shipped SPIN recipe) here and exit")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.training_sheet is not None:
        training_sheet(args.training_sheet, seed=args.seed)
        return
    if args.contact_sheet is not None:
        contact_sheet(args.contact_sheet, seed=args.seed)
        return
    print(bench(args))


if __name__ == "__main__":
    main()

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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-keypoints", type=int, default=512)
    ap.add_argument("--n-rendered", type=int, default=48)
    ap.add_argument("--contact-sheet", type=Path, default=None, help="write the contact sheet here and exit")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.contact_sheet is not None:
        contact_sheet(args.contact_sheet, seed=args.seed)
        return
    print(bench(args))


if __name__ == "__main__":
    main()

"""The occlusion sensitivity of several methods on photos, side by side (docs/pare.md).

    .venv/bin/python scripts/occlusion_figure.py --out docs/occlusion_sensitivity.png
    .venv/bin/python scripts/occlusion_figure.py --images my.jpg --methods spin pare --stride 16

For each image, the detector runs once on the photo and on every patched copy
(``hmrkit.eval.occlusion.patched_detections``, the detector of ``hmrkit run``, with the
person mask on, so PARE reads it); every method then measures its per-joint change on the
same detections. One row per method: the map over all joints, then one per body part;
one colour scale per image (0 to the 95th percentile over its methods' maps). Prints the
mean change over the positions run per method and part, and the times; with
``--npz-dir``, the numbers as NAME_METHOD.npz.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGES = [REPO / "tests/data/images/lunge_pexels.jpg", REPO / "tests/data/images/cameraman.png"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", nargs="+", default=[str(p) for p in IMAGES])
    ap.add_argument("--methods", nargs="+", default=["spin", "pare"])
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--stride", type=int, default=32)
    ap.add_argument("--max-side", type=int, default=512, help="images are resized to this longest side first")
    ap.add_argument("--out", default="occlusion_sensitivity.png")
    ap.add_argument("--npz-dir", default=None, help="also write each map's numbers as NAME_METHOD.npz here")
    args = ap.parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

    from PIL import Image

    import hmrkit.body
    from hmrkit.cli import _filtered_native_stderr
    from hmrkit.estimate import build
    from hmrkit.eval.occlusion import (PART_GROUPS, OcclusionConfig, heat_image, colour_bar, patched_detections,
                                       sensitivity, _label)
    from hmrkit.geometry.camera import default_intrinsics
    from hmrkit.io import read_image
    from hmrkit.pipeline import make_detector

    body = hmrkit.body.load("anny")
    ests = {m: build(m, body) for m in args.methods}
    config = OcclusionConfig(patch=args.patch, stride=args.stride)
    out = Path(args.out)
    blocks = []
    with _filtered_native_stderr():
        detector = make_detector(video=False, evidence=frozenset({"body", "body3d", "mask"}))
        try:
            for path in args.images:
                image = read_image(path, for_detector=True)
                H, W = image.shape[:2]
                s = args.max_side / max(H, W)
                if s < 1:
                    image = np.asarray(Image.fromarray(image).resize((round(W * s), round(H * s)), Image.BILINEAR))
                H, W = image.shape[:2]
                K = default_intrinsics(H, W).numpy()
                t0 = time.perf_counter()
                dets = patched_detections(image, detector, config, name=str(path))
                res = {m: sensitivity(dets, K, e, body) for m, e in ests.items()}
                name = Path(path).stem
                print(f"\n{name} ({W} x {H} px): {int(dets.ran.sum())} of {dets.ran.size} positions run, "
                      f"{int((dets.ran & ~dets.found).sum())} lost the person; detector {dets.seconds:.1f} s "
                      f"({dets.seconds / max(1, dets.ran.sum() + 1):.2f} s an image), total "
                      f"{time.perf_counter() - t0:.1f} s")
                maps = np.stack([r.overall for r in res.values()])
                finite = maps[np.isfinite(maps)]
                vmax = float(np.percentile(finite, 95)) if finite.size else 1.0
                print(f"| method | estimator s | all joints | " + " | ".join(PART_GROUPS) + " |")
                print("|---|---:|---:|" + "---:|" * len(PART_GROUPS))
                rows = []
                for m, r in res.items():
                    if args.npz_dir:
                        Path(args.npz_dir).mkdir(parents=True, exist_ok=True)
                        r.save_npz(Path(args.npz_dir) / f"{name}_{m.replace('+', '_')}.npz")
                    cells = [np.nanmean(r.overall)] + [np.nanmean(r.part(k)) for k in PART_GROUPS]
                    print(f"| {m} | {r.seconds['estimate']:.2f} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
                    tiles = []
                    for label, v in [("all joints", r.overall)] + [(k, r.part(k)) for k in PART_GROUPS]:
                        img = heat_image(image, v, r, vmax)
                        tw = round(img.shape[1] * 200 / img.shape[0])
                        img = np.asarray(Image.fromarray(img).resize((tw, 200), Image.BILINEAR))
                        tiles.append(_label(img, f"{m}: {label}"))
                    rows.append(np.concatenate(tiles, 1))
                block = np.concatenate(rows + [colour_bar(rows[0].shape[1], vmax)], 0)
                blocks.append(block)
        finally:
            detector.close()
    width = max(b.shape[1] for b in blocks)
    pad = [np.pad(b, ((0, 8), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in blocks]
    Image.fromarray(np.concatenate(pad, 0)).save(out)
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Side-by-side overlays of several methods on the sample photos -> one PNG.

    .venv/bin/python scripts/compare_methods.py [--methods fit spin spin+fit] \
        [--out docs/spin_vs_fit.png] [--images ../shared/samples/images]

Each row is a photo; each column a method's overlay panel (photo with the mesh | mesh
alone | side view, as ``hmrkit run`` writes it), with the method's name and its mean 2D
error (px, body landmarks with confidence >= 0.5) above it. The detector runs once per
photo; every method gets the same evidence.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def label(panel: np.ndarray, text: str, height: int = 36) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    bar = Image.new("RGB", (panel.shape[1], height), (255, 255, 255))
    draw = ImageDraw.Draw(bar)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 22)
    except OSError:
        font = ImageFont.load_default()
    draw.text((8, 6), text, fill=(0, 0, 0), font=font)
    return np.concatenate([np.asarray(bar), panel], 0)


def fit_width(img: np.ndarray, width: int) -> np.ndarray:
    from PIL import Image

    h = round(img.shape[0] * width / img.shape[1])
    return np.asarray(Image.fromarray(img).resize((width, h), Image.LANCZOS))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["fit", "spin", "spin+fit"])
    ap.add_argument("--images", default=str(REPO.parent / "shared" / "samples" / "images"))
    ap.add_argument("--only", nargs="*", default=None, help="photo names to keep (default: all)")
    ap.add_argument("--out", default=str(REPO / "docs" / "spin_vs_fit.png"))
    ap.add_argument("--column-width", type=int, default=900)
    args = ap.parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

    import torch

    from hmrkit.cli import _filtered_native_stderr
    from hmrkit.estimate import build
    from hmrkit.geometry.camera import project
    from hmrkit.io import IMAGE_SUFFIXES, read_image
    from hmrkit.pipeline import Models, RunConfig, intrinsics
    from hmrkit.render import overlay_panel
    from hmrkit.types import Observation

    paths = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if args.only:
        paths = [p for p in paths if p.stem in args.only or p.name in args.only]
    rows = []
    with _filtered_native_stderr():
        config = RunConfig(method=args.methods[0])
        models = Models(config)
        body = models.body
        estimators = {m: build(m, body) for m in args.methods}
        det = models.detector(video=False)
        for path in paths:
            image = read_image(path)
            H, W = image.shape[:2]
            found = det.detect(image)
            ev = found[0] if found else None
            if ev is None:
                print(f"  {path.name}: nobody found, skipped", file=sys.stderr)
                continue
            K = intrinsics(config, path, H, W)
            Kt = torch.from_numpy(K[None].astype(np.float32))
            obs = Observation.from_evidence([ev], K)
            cols = []
            for m, est in estimators.items():
                t0 = time.perf_counter()
                pred = est.predict(obs)
                seconds = time.perf_counter() - t0
                with torch.no_grad():
                    out = body(pred.params)
                    uv = project(body.keypoints(out, "mediapipe33"), Kt)[0].numpy()
                mp = ev.keypoints2d[:33]
                ok = mp[:, 2] >= 0.5
                err = float(np.linalg.norm(uv - mp[:, :2], axis=-1)[ok].mean()) if ok.any() else float("nan")
                panel = overlay_panel(image, out.vertices[0].numpy(), body.faces.numpy(), K,
                                      keypoints2d=ev.keypoints2d, convention=ev.convention)
                cols.append(label(fit_width(panel, args.column_width), f"{path.name} - {m}: {err:.1f} px"))
                print(f"  {path.name} {m}: {err:.1f} px, {seconds:.2f} s", file=sys.stderr)
            h = max(c.shape[0] for c in cols)
            cols = [np.pad(c, ((0, h - c.shape[0]), (0, 0), (0, 0)), constant_values=255) for c in cols]
            rows.append(np.concatenate(cols, 1))
    from PIL import Image

    sheet = np.concatenate(rows, 0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(args.out)
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

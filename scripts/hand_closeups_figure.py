"""Close-ups of the hands and the face on sample photos: the detector's hand and face
keypoints, and the mesh of each method over the photo (docs/hands.md).

    .venv/bin/python scripts/hand_closeups_figure.py IMAGE [IMAGE ...] \
        [--methods spin spin+fit:legacy spin+fit] [--out docs/hand_closeups.png]

Per photo, the largest person whose hands the detector found: one row per hand and one
for the face, each a square crop around the part (from the detected keypoints); columns:
the photo with the detected keypoints, then each method's mesh blended over the photo.
For each hand it prints the mean 2D distance of each method's hand keypoints to the
detected ones after aligning shift and scale (``align_scale_translation``, as the fit
compares them). Methods as bench/hands.py names them (``spin+fit:legacy`` is the finger and face stage as
it was before the fix). The detector is ``hmrkit run``'s (MediaPipe, every person, hands
and face); K from the default field of view.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def crop_box(pts: np.ndarray, H: int, W: int, grow: float = 1.6, least: float = 48.0):
    """Square (x0, y0, x1, y1) around pts (N, 2), grown; clipped to the image."""
    lo, hi = pts.min(0), pts.max(0)
    c, side = 0.5 * (lo + hi), max(least, grow * float((hi - lo).max()))
    x0, y0 = int(max(0, c[0] - side / 2)), int(max(0, c[1] - side / 2))
    return x0, y0, int(min(W, x0 + side)), int(min(H, y0 + side))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--methods", nargs="+", default=["spin", "spin+fit:legacy", "spin+fit"])
    ap.add_argument("--out", default="docs/hand_closeups.png")
    ap.add_argument("--tile", type=int, default=180)
    args = ap.parse_args(argv)
    from PIL import Image, ImageDraw

    import hmrkit.body
    from hands import _estimator
    from hmrkit import conventions as C
    from hmrkit.cli import _filtered_native_stderr
    from hmrkit.fit.losses import align_scale_translation
    from hmrkit.geometry.camera import default_intrinsics, project
    from hmrkit.io import read_image
    from hmrkit.pipeline import make_detector
    from hmrkit.render.overlay import draw_keypoints, render_overlay
    from hmrkit.types import Observation

    body = hmrkit.body.load("anny")
    estimators = {m: _estimator(m, body) for m in args.methods}
    names = C.get("holistic").names
    parts = {"left hand": [names.index(f"left_hand.{k}") for k in C.HAND21],
             "right hand": [names.index(f"right_hand.{k}") for k in C.HAND21],
             "face": [i for i, n in enumerate(names) if n.startswith("face.")]}
    S = args.tile
    rows = []
    with _filtered_native_stderr():
        det = make_detector(video=False)
        try:
            for path in args.images:
                image = read_image(path)
                H, W = image.shape[:2]
                people = [e for e in det.detect(image) if e.convention == "holistic"]
                people = [e for e in people if any((e.keypoints2d[parts[h], 2] > 0).all() for h in
                                                   ("left hand", "right hand"))]
                if not people:
                    print(f"{path}: no person with a hand found", file=sys.stderr)
                    continue
                ev = max(people, key=lambda e: np.ptp(e.keypoints2d[e.keypoints2d[:, 2] > 0, :2], 0).prod())
                K = default_intrinsics(H, W)
                obs = Observation.from_evidence([ev], K[None])
                overlays, outputs = {}, {}
                for m, est in estimators.items():
                    pred = est.predict(obs)
                    with torch.no_grad():
                        out = pred.output if pred.output is not None else body(pred.params)
                    outputs[m] = out
                    overlays[m] = render_overlay(image, out.vertices[0], body.faces, K, alpha=0.75)
                kp = ev.keypoints2d
                for side in ("left", "right"):
                    idx = parts[f"{side} hand"]
                    if not (kp[idx, 2] > 0).all():
                        continue
                    errs = []
                    for m, out in outputs.items():
                        uv = project(body.keypoints(out, f"hand21_{side}"), torch.as_tensor(K)[None]).double()
                        ev_uv = torch.as_tensor(kp[idx], dtype=torch.float64)[None]
                        a = align_scale_translation(uv, ev_uv)[0].numpy()
                        errs.append(f"{m} {np.linalg.norm(a - kp[idx, :2], axis=-1).mean():.1f} px")
                    size = np.ptp(kp[idx, :2], 0)
                    print(f"{Path(path).stem} {side} hand ({size[0]:.0f} x {size[1]:.0f} px): mean 2D error after "
                          f"aligning shift and scale: {', '.join(errs)}")
                for part, idx in parts.items():
                    if not (kp[idx, 2] > 0).all():
                        continue
                    box = crop_box(kp[idx, :2], H, W)
                    # the keypoints drawn on the enlarged crop, so that they stay small
                    f = S / (box[2] - box[0])
                    crop = np.asarray(Image.fromarray(image).crop(box).resize((S, S)))
                    k = kp.copy()
                    k[:, 0], k[:, 1] = (k[:, 0] - box[0]) * f, (k[:, 1] - box[1]) * f
                    tiles = [draw_keypoints(crop, k, "holistic", radius=2, thickness=1)]
                    tiles += [np.asarray(Image.fromarray(overlays[m]).crop(box).resize((S, S))) for m in args.methods]
                    rows.append((f"{Path(path).stem}: {part}", np.concatenate(tiles, 1)))
        finally:
            det.close()
    if not rows:
        print("no hands found on any image", file=sys.stderr)
        return 1
    head = 16
    Wd = rows[0][1].shape[1]
    sheet = Image.new("RGB", (Wd, head + len(rows) * (S + head)), "white")
    d = ImageDraw.Draw(sheet)
    for k, label in enumerate(["detected"] + args.methods):
        d.text((k * S + 4, 2), label, fill="black")
    for i, (label, img) in enumerate(rows):
        y = head + i * (S + head)
        d.text((4, y + 2), label, fill="black")
        sheet.paste(Image.fromarray(img), (0, y + head))
    sheet.save(args.out)
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

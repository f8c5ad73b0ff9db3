"""Every gesture of the hand sampler on the mean Anny body, both hands, seen from the palm
and from the side: the picture to check that curls bend towards the palm and that the left
hand is the mirror of the right (docs/hands.md).

    .venv/bin/python scripts/hand_gestures_figure.py [--out docs/hand_gestures.png]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch


def view(vertices: np.ndarray, center: np.ndarray, forward: np.ndarray, up: np.ndarray, dist: float):
    """vertices (V, 3) body frame -> camera frame of a camera ``dist`` m from ``center``
    looking along ``forward`` with ``up`` up in the image."""
    z = forward / np.linalg.norm(forward)
    y = -(up - (up @ z) * z)
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    R = np.stack([x, y, z])
    return (vertices - (center - dist * z)) @ R.T


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/hand_gestures.png")
    ap.add_argument("--size", type=int, default=200)
    args = ap.parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    from PIL import Image, ImageDraw

    import hmrkit.body
    from hmrkit.body.hands import finger_axes
    from hmrkit.data.hands import GESTURES
    from hmrkit.render.overlay import render_mesh

    body = hmrkit.body.load("anny")
    axes = finger_axes(body)
    mean = body.mean_params(1)
    names = [g for g in GESTURES if g != "random"]
    S = args.size
    f = S * 1.8
    K = np.array([[f, 0, S / 2], [0, f, S / 2], [0, 0, 1.0]])
    faces = body.faces.numpy()
    rows = []
    for gname in names:
        from hmrkit.data.hands import sample_hand_angles

        angles, _ = sample_hand_angles(body, 1, seed=0, gestures=(gname,))
        pose = mean.pose.clone()
        pose[:, axes.index] = axes.rotations(angles)
        p = type(mean)(mean.global_orient, pose, mean.shape, mean.transl, mean.expression)
        with torch.no_grad():
            out = body(p)
            H = {s: body.keypoints(out, f"hand21_{s}")[0].numpy() for s in ("left", "right")}
        V = out.vertices[0].numpy()
        tiles = []
        for side in ("left", "right"):
            h = H[side]
            wrist, mid = h[0], h[9]
            d = (mid - wrist) / np.linalg.norm(mid - wrist)
            fi = np.nonzero((axes.side == (0 if side == "left" else 1)).numpy() & (axes.segment == 1).numpy()
                            & (axes.finger == 2).numpy())[0][0]
            vol = axes.axes[fi, 1].numpy()
            center = 0.5 * (wrist + h[12])
            for fwd, up in ((-vol, d), (np.cross(d, vol), d)):  # palm view, side view
                Vc = view(V, center, fwd, up, 0.45)
                rgb, _ = render_mesh(Vc, faces, K, (S, S), colors=(0.85, 0.65, 0.5))
                tiles.append(rgb)
        rows.append((gname, np.concatenate(tiles, 1)))
    W = rows[0][1].shape[1]
    sheet = Image.new("RGB", (W, len(rows) * (S + 18)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (gname, img) in enumerate(rows):
        sheet.paste(Image.fromarray(img), (0, i * (S + 18) + 18))
        draw.text((4, i * (S + 18) + 3), f"{gname}: left palm | left side | right palm | right side", fill="black")
    sheet.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

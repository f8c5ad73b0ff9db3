"""How MediaPipe Holistic sees hands and faces in close-ups, against hmrkit's noise model.

The body noise (``NoiseConfig.realistic()``, scripts/calibrate_noise.py) was calibrated on
full-body renders, where a hand is a few dozen pixels. This script renders the
``synthetic:closeups`` scenes (upper body, 0.9-1.5 m, posed hands, facial expressions;
``hmrkit.eval.sets.closeup_scenes``) with skin, clothing and light
(``render_sample``), runs MediaPipe Holistic (static image mode) on each, and compares per
hand and for the face, on the same scenes:

- MediaPipe: how often a hand (face) is found when it is in the image; its keypoints'
  error against the true projections (median and 90th percentile, as a fraction of the
  hand's (face's) own size, the side of its keypoint box), after removing nothing; how
  often a hand slot holds the other hand (left/right swap: the slot's keypoints lie
  nearer the other hand);
- the noise model: the same statistics of ``add_noise(..., NoiseConfig.realistic())``;
- their systematic part: the median error vector per keypoint in the part's frame
  (wrist-to-middle-knuckle up), which a difference of definitions between MediaPipe's
  landmarks and the body model's keypoints would show.

    .venv/bin/python scripts/calibrate_hand_face_noise.py [--n 60] [--seed 7] [--split val]

About 1.5 s a render on one core. Prints markdown tables (docs/hands.md quotes them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
os.environ.setdefault("GLOG_minloglevel", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def part_slices():
    from hmrkit import conventions as C

    names = C.get("holistic").names
    hl = [names.index(f"left_hand.{k}") for k in C.HAND21]
    hr = [names.index(f"right_hand.{k}") for k in C.HAND21]
    face = [i for i, n in enumerate(names) if n.startswith("face.")]
    return {"left hand": np.array(hl), "right hand": np.array(hr), "face": np.array(face)}


def part_stats(uv_true: np.ndarray, inside: np.ndarray, pred: np.ndarray, parts: dict) -> dict:
    """uv_true (N, K, 2), inside (N, K) the true point is in the image and valid;
    pred (N, K, 3) x, y, confidence -> per part: found rate, error quantiles (fraction of
    the part's size), swap rate (hands), systematic offsets (K_part, 2)."""
    out = {}
    for name, idx in parts.items():
        t, ins, p = uv_true[:, idx], inside[:, idx], pred[:, idx]
        present = ins.mean(1) > 0.8  # the part is in the image
        found = present & (p[..., 2] > 0).all(1)
        size = np.maximum((t.max(1) - t.min(1)).max(-1), 1.0)  # (N,) px
        err = np.linalg.norm(p[..., :2] - t, axis=-1) / size[:, None]
        e = err[found]
        r = {"in image": int(present.sum()), "found": float(found.sum() / max(1, present.sum())),
             "median": float(np.median(e)) if e.size else np.nan,
             "p90": float(np.quantile(e, 0.9)) if e.size else np.nan,
             "size px": float(np.median(size[present])) if present.any() else np.nan}
        if name.endswith("hand"):
            other = parts["right hand" if name == "left hand" else "left hand"]
            to = uv_true[:, other]
            d_own = np.linalg.norm(p[..., :2] - t, axis=-1).mean(1)
            d_other = np.linalg.norm(p[..., :2] - to, axis=-1).mean(1)
            r["swap"] = float(((d_other < d_own) & found).sum() / max(1, found.sum()))
            # systematic offsets in the hand's frame: y from the middle knuckle to the wrist
            up = t[:, 0] - t[:, 9]
            up /= np.maximum(np.linalg.norm(up, axis=-1, keepdims=True), 1e-9)
            right = np.stack([-up[:, 1], up[:, 0]], -1)
            d = (p[..., :2] - t) / size[:, None, None]
            local = np.stack([(d * right[:, None]).sum(-1), (d * up[:, None]).sum(-1)], -1)
            keep = found & (d_own <= d_other)
            r["offsets"] = np.median(local[keep], 0) if keep.any() else np.full((len(idx), 2), np.nan)
            # the palm's definition: each MCP's offset along its line to the wrist and the
            # wrist's along its line to the middle knuckle, as fractions of those lines
            lines = {"wrist": (0, 9)} | {f"{f}_mcp": (4 * k + 5, 0) for k, f in enumerate(("index", "middle", "ring", "pinky"))} \
                | {"thumb_cmc": (1, 0)}
            r["palm"] = {}
            for key, (a, b) in lines.items():
                v = t[:, b] - t[:, a]
                L2 = (v ** 2).sum(-1)
                frac = ((p[:, a, :2] - t[:, a]) * v).sum(-1) / np.maximum(L2, 1e-9)
                ok = keep & (L2 > 25.0)
                r["palm"][key] = float(np.median(frac[ok])) if ok.any() else np.nan
        out[name] = r
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--split", default="val")
    ap.add_argument("--save-images", default=None, help="a folder to write the first 8 renders with keypoints")
    args = ap.parse_args(argv)

    import hmrkit.body
    from hmrkit.cli import _filtered_native_stderr
    from hmrkit.data.render_synthetic import render_sample
    from hmrkit.data.synthetic import NoiseConfig, add_noise, true_keypoints
    from hmrkit.eval.detection import default_detector, match_detection
    from hmrkit.eval.sets import closeup_scenes

    body = hmrkit.body.load("anny")
    scenes, gestures, _ = closeup_scenes(body, args.n, args.seed, args.split)
    X, uv, valid = true_keypoints(body, scenes, "holistic")
    H, W = scenes.image_size
    u = uv.numpy()
    inside = (u[..., 0] >= 0) & (u[..., 0] < W) & (u[..., 1] >= 0) & (u[..., 1] < H) & valid.numpy()[None]
    pred = np.zeros((args.n, u.shape[1], 3))
    t0 = time.perf_counter()
    with _filtered_native_stderr():
        det = default_detector()
        try:
            for i in range(args.n):
                r = render_sample(body, scenes.params[i:i + 1], scenes.K[i], (H, W), seed=args.seed * 1000 + i)
                vis = u[i][inside[i]]
                box = np.concatenate([vis.min(0), vis.max(0)])
                ev = match_detection(det.detect(r.rgb), box)
                if ev is not None:
                    pred[i] = ev.keypoints2d
                if args.save_images and i < 8:
                    from PIL import Image

                    from hmrkit.render.overlay import draw_keypoints

                    os.makedirs(args.save_images, exist_ok=True)
                    Image.fromarray(draw_keypoints(r.rgb, pred[i], "holistic")).save(
                        os.path.join(args.save_images, f"closeup_{i}.png"))
                if i % 10 == 9:
                    print(f"{i + 1}/{args.n} renders ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        finally:
            det.close()
    parts = part_slices()
    mp = part_stats(u, inside, pred, parts)
    sim = add_noise(X, uv, valid, "holistic", scenes.image_size, NoiseConfig.realistic(), seed=args.seed + 1).numpy()
    nm = part_stats(u, inside, sim, parts)
    print(f"\n{args.n} close-ups (split {args.split}, seed {args.seed}), MediaPipe Holistic static image mode; "
          "errors as a fraction of the part's size\n")
    print("| part | source | in image | found | median | p90 | swap | size px |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in parts:
        for src, st in (("MediaPipe", mp[name]), ("noise model", nm[name])):
            sw = f"{100 * st['swap']:.1f} %" if "swap" in st else ""
            print(f"| {name} | {src} | {st['in image']} | {100 * st['found']:.0f} % | {100 * st['median']:.1f} % | "
                  f"{100 * st['p90']:.1f} % | {sw} | {st['size px']:.0f} |")
    from hmrkit import conventions as C

    print("\nSystematic offsets of MediaPipe's hand landmarks (median, fraction of the hand's size; "
          "x towards the thumb of a right hand seen from the palm, y towards the wrist):\n")
    print("| keypoint | left x | left y | right x | right y |")
    print("|---|---:|---:|---:|---:|")
    for k, n in enumerate(C.HAND21):
        lo, ro = mp["left hand"]["offsets"][k], mp["right hand"]["offsets"][k]
        print(f"| {n} | {100 * lo[0]:+.1f} % | {100 * lo[1]:+.1f} % | {100 * ro[0]:+.1f} % | {100 * ro[1]:+.1f} % |")
    print("\nThe palm along its lines (median, fraction of the line: a wrist moved towards the middle knuckle, "
          "a knuckle towards the wrist):\n")
    print("| keypoint | line | left | right |")
    print("|---|---|---:|---:|")
    for key in mp["left hand"]["palm"]:
        line = "wrist -> middle_mcp" if key == "wrist" else f"{key} -> wrist"
        print(f"| {key} | {line} | {mp['left hand']['palm'][key]:+.3f} | {mp['right hand']['palm'][key]:+.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

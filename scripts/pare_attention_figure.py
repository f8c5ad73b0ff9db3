"""PARE's part attention for one person, when the part segmentation loss stops and at the
end of training (docs/pare.md).

    .venv/bin/python scripts/pare_attention_figure.py --seg runs/pare/pare_anny_seg.pt \
        --final src/hmrkit/weights/pare_anny.pt --out docs/pare_attention.png

One person of the val split (salsa / modern dance, never trained on; seed ``--seed``),
seen clean and with its left forearm missing from the evidence (the elbow, wrist and hand
keypoints at confidence 0, as a detector reports a limb it cannot see). Per row (a model x a view): the evidence maps (red: keypoint heat maps,
green: limbs), the body model's part labels in the crop (splatted, what the loss sees),
the argmax of the predicted part maps, then the spatial softmax of a few parts over the
evidence. Prints how much of each attention map's mass lies on its own part's cells.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

SHOW = ("head", "left_wrist", "right_elbow", "left_knee", "right_ankle")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seg", required=True, help="weights at the step the segmentation loss stops")
    ap.add_argument("--final", required=True, help="the final weights")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", default="pare_attention.png")
    args = ap.parse_args(argv)
    from PIL import Image

    import hmrkit.body
    from hmrkit.data.render_synthetic import PART_NAMES, colorize_parts, splat_part_labels
    from hmrkit.data.synthetic import NoiseConfig, SceneConfig, keypoints2d, sample_scenes
    from hmrkit.eval.occlusion import _label, colormap
    from hmrkit.models.inputs import crop_inputs
    from hmrkit.models.pare import load_regressor

    body = hmrkit.body.load("anny")
    sc = sample_scenes(body, 1, seed=args.seed, config=SceneConfig(yaw_deg=45, split="val", phenotypes="all"))
    kp = keypoints2d(body, sc, "mediapipe33", NoiseConfig.realistic(), seed=1)
    hidden = kp.clone()
    hidden[0, [13, 15, 17, 19, 21], 2] = 0  # the left elbow, wrist and hand points: missing
    views = {"clean": kp, "L forearm gone": hidden}
    seg, final = load_regressor(body, args.seg), load_regressor(body, args.final)
    seg_at = seg.card.get("config", {}).get("seg_steps", "?")
    models = {f"step {seg_at} (seg. stops)": seg, f"step {final.card.get('steps')} (final)": final}
    T = 128
    rows = []
    for mname, model in models.items():
        V = model.config.volume
        for vname, kp in views.items():
            inp = crop_inputs(kp, sc.K, "mediapipe33")
            with torch.no_grad():
                out = model(inp)
                v = body(sc.params).vertices
            gt = splat_part_labels(body, v, sc.K, inp.center, inp.size, V)[0].numpy()
            maps = model.maps(inp)[0].numpy()
            ev = np.stack([maps[:33].max(0), maps[33:-2].max(0), np.zeros_like(maps[0])], -1)
            ev_img = np.asarray(Image.fromarray((ev.clip(0, 1) * 255).astype(np.uint8)).resize((T, T), Image.BILINEAR))
            arg = out.parts[0].argmax(0).numpy()
            tiles = [_label(ev_img, f"{mname.split(' (')[0]}: {vname}"),
                     _label(np.asarray(Image.fromarray(colorize_parts(gt - 1)).resize((T, T), Image.NEAREST)), "part labels"),
                     _label(np.asarray(Image.fromarray(colorize_parts(arg - 1)).resize((T, T), Image.NEAREST)), "argmax parts")]
            mass = []
            for name in SHOW:
                p = PART_NAMES.index(name)
                a = out.attention[0, p].numpy()
                on = float(a[gt == p + 1].sum())
                mass.append(on)
                heat = colormap(a / max(a.max(), 1e-9)).astype(np.float64)
                heat = np.asarray(Image.fromarray(heat.astype(np.uint8)).resize((T, T), Image.NEAREST)).astype(np.float64)
                img = (0.45 * ev_img + 0.75 * heat).clip(0, 255).astype(np.uint8)
                tiles.append(_label(img, f"{name} {on:.0%}"))
            print(f"{mname}, {vname}: attention mass on own part " +
                  ", ".join(f"{n} {m:.0%}" for n, m in zip(SHOW, mass)))
            rows.append(np.concatenate(tiles, 1))
    Image.fromarray(np.concatenate(rows, 0)).save(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

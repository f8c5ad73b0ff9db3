"""How far MAED's decoder started from SPIN's head (``--spin-head``) is from SPIN at step 0,
on the val windows of MAED's training (``hmrkit.train.maed.validation_windows``).

    .venv/bin/python scripts/maed_spin_head_check.py

Prints SPIN's shipped regressor after one and after three IEF iterations, then an
untrained MAED (``MaedConfig(hidden=512, decoder_act="relu")``) with its spatial branch
and its decoder started from SPIN (``init_from_spin``, ``init_decoder_from_spin``) at
several starting fusion biases (20: the temporal branch held off; 0: the recipe's even
start). docs/maed.md, "Training".
"""

from __future__ import annotations

from dataclasses import replace

import torch


def main() -> int:
    torch.set_num_threads(1)
    import hmrkit.body
    from hmrkit.eval.metrics import accel_error, mpjpe, pa_mpjpe, pelvis_indices
    from hmrkit.models.maed import MaedConfig, MaedRegressor
    from hmrkit.models.spin import load_regressor
    from hmrkit.train.maed import validate, validation_windows

    body = hmrkit.body.load("anny")
    spin = load_regressor(body)
    val = validation_windows(body, 16)
    inputs, gt, F = val
    n = gt.shape[0]
    root = pelvis_indices("coco17")
    print("| model | val PA-MPJPE | val MPJPE | val accel |\n|---|---:|---:|---:|")
    for iters in (1, 3):
        spin.head.config = replace(spin.head.config, iterations=iters)
        with torch.no_grad():
            p = spin.params(body, inputs, spin(inputs))
            pred = body.forward_keypoints(p, ("coco17",))["coco17"].reshape(n, F, 17, 3)
        print(f"| SPIN, {iters} IEF iteration{'s' if iters > 1 else ''} | {float(pa_mpjpe(pred, gt).mean()):.1f} | "
              f"{float(mpjpe(pred, gt, root).mean()):.1f} | {float(accel_error(pred, gt, root).mean()):.1f} |")
    spin.head.config = replace(spin.head.config, iterations=3)
    for fb in (20.0, 2.0, 0.0):
        torch.manual_seed(0)
        m = MaedRegressor(body, MaedConfig(fusion_bias=fb, hidden=512, decoder_act="relu")).to(body.dtype)
        m.init_from_spin(spin)
        m.init_decoder_from_spin(spin)
        r = validate(m, body, val)
        print(f"| MAED at step 0, SPIN's head, fusion bias {fb:g} | {r['val PA-MPJPE']:.1f} | {r['val MPJPE']:.1f} | "
              f"{r['val accel']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

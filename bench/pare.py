"""PARE's costs: parameters, the forward pass, and part labels splatted against rendered.

    .venv/bin/python bench/pare.py [--threads 1]

Prints one markdown table: the shipped network's parameter count and size, its forward
(and forward + backward) time at batch 1 and 64, and the time per person to make part
labels by splatting vertices (``render_synthetic.splat_part_labels``, 64 x 64 cells) and
by rendering the part segmentation with OSMesa (``render_part_seg``, 720 x 720), each the
median of 5 runs after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch


def _median_ms(fn, n: int = 5) -> float:
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    torch.set_num_threads(args.threads)

    import hmrkit.body
    from hmrkit.data.render_synthetic import face_part_labels, render_part_seg, splat_part_labels
    from hmrkit.data.synthetic import NoiseConfig, SceneConfig, keypoints2d, sample_scenes
    from hmrkit.geometry.camera import project
    from hmrkit.models.inputs import crop_inputs
    from hmrkit.models.pare import default_weights, load_regressor

    body = hmrkit.body.load("anny")
    model = load_regressor(body)
    n_par = sum(p.numel() for p in model.parameters())
    rows = [("parameters", f"{n_par / 1e6:.2f} M", f"{default_weights('anny').stat().st_size / 2 ** 20:.1f} MiB file")]
    sc = sample_scenes(body, 64, seed=1, config=SceneConfig(split="val"))
    kp = keypoints2d(body, sc, "mediapipe33", NoiseConfig.realistic(), seed=2)
    for B in (1, 64):
        inp = crop_inputs(kp[:B], sc.K[:B], "mediapipe33")
        with torch.no_grad():
            fwd = _median_ms(lambda: model(inp))
        model.train()

        def step():
            out = model(inp)
            (out.head.pose.sum() + out.parts.sum()).backward()

        both = _median_ms(step)
        model.eval()
        rows.append((f"forward, batch {B}", f"{fwd:.1f} ms", f"forward + backward {both:.1f} ms"))
    with torch.no_grad():
        v = body(sc.params[:16]).vertices
    uv = project(v, sc.K[:16])
    lo, hi = uv.min(1).values, uv.max(1).values
    c, side = (lo + hi) / 2, (hi - lo).max(-1).values * 1.3
    splat = _median_ms(lambda: splat_part_labels(body, v, sc.K[:16], c, side, 64)) / 16
    labels = face_part_labels(body)
    faces = body.faces.numpy()
    render = _median_ms(lambda: [render_part_seg(v[i].numpy(), faces, labels, sc.K[i].numpy(), sc.image_size)
                                 for i in range(4)]) / 4
    rows.append(("part labels, per person", f"splat {splat:.1f} ms (64 x 64 cells)",
                 f"render {render:.1f} ms (720 x 720, OSMesa)"))
    print(f"\nPARE costs ({os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} thread(s))\n")
    print("| what | | |\n|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

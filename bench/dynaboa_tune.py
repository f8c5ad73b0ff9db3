"""Tuning DynaBOA's AdaptConfig on the *val* streams only (never the test takes): one line
per configuration (docs/dynaboa.md, "What changed from the paper's values").

    .venv/bin/python bench/dynaboa_tune.py high 2 spin base "lr=2e-4,max_extra_steps=1,replay=true"
    .venv/bin/python bench/dynaboa_tune.py high:long 4 spin base "lr=2e-4,w_exemplar=0.02"

Arguments: SHIFTS (comma-separated; ``S:long`` = the N val takes one after another as one
track, never reset, with the mean per 300 frames), N (val takes), METHOD, then configs
(``base``: the regressor alone; else AdaptConfig changes ``key=value,...``). One thread.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import numpy as np
import torch


def main(argv) -> int:
    torch.set_num_threads(1)
    import hmrkit.body
    from dynaboa import long_stream, parse_set
    from hmrkit.adapt import AdaptConfig, Adapted
    from hmrkit.estimate import build
    from hmrkit.eval.loop import evaluate_synthetic
    from hmrkit.eval.metrics import summarize
    from hmrkit.eval.protocols import SyntheticSpec, build_synthetic

    shifts, n, method = argv[0].split(","), int(argv[1]), argv[2]
    body = hmrkit.body.load("anny")
    sets = {}
    for s in shifts:
        spec = SyntheticSpec.parse(f"synthetic:sequences,library=streams,frames=300,temporal=1,n={n},split=val,"
                                   f"shift={s.split(':')[0]}")
        data = build_synthetic(body, spec)
        sets[s] = (spec, long_stream(data) if s.endswith(":long") else data)
    for cfg in argv[3:]:
        res, t = [], time.time()
        for s, (spec, data) in sets.items():
            est = build(method, body) if cfg == "base" else \
                Adapted(build(method, body), replace(AdaptConfig(), **parse_set(cfg.split(","))))
            m = evaluate_synthetic(est, body, spec, data=data).metrics
            r = {k: v.mean for k, v in summarize(m).items()}
            if s.endswith(":long"):
                pa = m["PA-MPJPE"].numpy()
                res.append("per 300: " + " ".join(f"{np.nanmean(pa[i:i + 300]):.1f}" for i in range(0, len(pa), 300)))
            upf = getattr(est, "updates", 0) / max(1, getattr(est, "frames", 1))
            res.append(f"{s} PA {r['PA-MPJPE']:.1f} MP {r['MPJPE']:.1f} acc {r['accel']:.1f} "
                       f"{1000 * r['s/frame']:.0f}ms u/f {upf:.2f} skip {sum(getattr(est, 'skipped', {}).values())}")
        print(f"{method} {cfg}: " + " | ".join(res) + f"  ({time.time() - t:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

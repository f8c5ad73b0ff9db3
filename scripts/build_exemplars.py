"""Build DynaBOA's 3D exemplar bank for a method's shipped weights (hmrkit.adapt.exemplars):

    .venv/bin/python scripts/build_exemplars.py --method spin    # -> src/hmrkit/weights/exemplars_spin_anny.npz
    .venv/bin/python scripts/build_exemplars.py --method maed

n train-split synthetic samples (seed 7; realistic detector noise, mediapipe33, no world
landmarks), encoded by the method's shipped network, spherical k-means into k clusters,
per_cluster exemplars nearest each centre. Rebuild whenever the method's weights change
(the bank names their fingerprint and refuses other weights).
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", required=True, choices=["spin", "pare", "maed"])
    ap.add_argument("--body", default="anny")
    ap.add_argument("--n", type=int, default=8000)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--per-cluster", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

    import hmrkit.body
    from hmrkit.adapt.exemplars import build_bank, default_bank
    from hmrkit.estimate import build

    body = hmrkit.body.load(args.body)
    t = time.time()
    bank = build_bank(build(args.method, body), args.method, n=args.n, k=args.k, per_cluster=args.per_cluster,
                      seed=args.seed)
    bank.card["build"] = (f"scripts/build_exemplars.py --method {args.method} --body {args.body} --n {args.n} "
                          f"--k {args.k} --per-cluster {args.per_cluster} --seed {args.seed}")
    out = args.out or default_bank(args.method, body.name)
    bank.save(out)
    print(f"wrote {out} ({os.path.getsize(out) / 1024:.0f} KiB): {len(bank)} exemplars in {args.k} clusters, "
          f"{time.time() - t:.0f} s; {bank.card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

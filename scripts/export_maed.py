"""Write the MAED weights (with their card) from a training checkpoint, e.g. a run stopped
before its last step:

    .venv/bin/python scripts/export_maed.py runs/maed [--out runs/maed/maed_anny.pt] [recipe flags]

The recipe flags must be those of the run (scripts/train_maed.sh's, the default here), or
the checkpoint refuses to load. The card records the steps trained (``trained_steps``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--out", default=None)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--draws", type=int, default=6)
    ap.add_argument("--p-world3d", type=float, default=0.5)
    ap.add_argument("--temporal-noise", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import hmrkit.body
    from hmrkit.train.maed import MaedTrainConfig, VideoSetConfig, load_or_build_video_set, maed_trainer

    body = hmrkit.body.load("anny")
    cfg = MaedTrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, seed=0, temporal_noise=args.temporal_noise,
                          p_world3d=args.p_world3d, val_every=500, data=VideoSetConfig(draws=args.draws, seed=0))
    data = load_or_build_video_set(body, cfg.data)
    run = Path(args.run)
    trainer = maed_trainer(body, data, cfg, run)
    trainer.load()
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    record = [r for r in records if r["step"] == trainer.step][-1]
    out = Path(args.out) if args.out else run / f"maed_{body.name}.pt"
    trainer.save_weights(out, record)
    print(f"wrote {out} (step {trainer.step} of {cfg.steps})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

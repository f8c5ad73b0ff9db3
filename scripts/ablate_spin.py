"""Ablations of SPIN's training data and loop: short runs of `hmrkit train spin`, two at a
time (one CPU thread each), then one table of their final validation (the val split:
subjects and motions training never sees; docs/spin.md).

    .venv/bin/python scripts/ablate_spin.py augment          # the augmentation ablation
    .venv/bin/python scripts/ablate_spin.py loop             # the loop with scarce labels
    .venv/bin/python scripts/ablate_spin.py augment --steps 1000 --n-train 12000 --out runs_ablate

Each arm is a run folder under --out (log.jsonl, last.pt): an arm whose log already ends
at --steps is not run again, and a stopped one resumes (``--resume``), so the command can
be repeated after a stop. Seeds are fixed (--seed); every arm draws the same people.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALL = "mediapipe33,coco17,openpose25"
# arm -> extra `hmrkit train spin` flags (the base of the augment ablation is today's
# recipe on the new data: MediaPipe input only, central phenotypes, no pose augmentation)
ARMS = {
    "augment": {
        "base (mediapipe33 only, central bodies)": ["--conventions", "mediapipe33", "--phenotypes", "central"],
        "+ input conventions": ["--conventions", ALL, "--phenotypes", "central"],
        "+ conventions, all phenotypes": ["--conventions", ALL, "--phenotypes", "all"],
        "+ ... , no mirrored poses": ["--conventions", ALL, "--phenotypes", "all", "--no-mirror"],
        "+ ... , perturbation 0.5": ["--conventions", ALL, "--phenotypes", "all", "--perturb", "0.5"],
        "+ ... , upper/lower combination 0.3": ["--conventions", ALL, "--phenotypes", "all", "--combine", "0.3"],
        "+ ... , any orientation 0.2": ["--conventions", ALL, "--phenotypes", "all", "--any-orientation", "0.2"],
    },
    "loop": {
        "no loop": ["--no-loop"],
        "loop, fits selected by 2D error": ["--fit-select", "px"],
        "loop, fits selected by 2D error and no depth flip": ["--fit-select", "agree"],
    },
}
DEFAULTS = {"augment": {"steps": 1000, "n_train": 12000, "labelled": 0.25, "extra": ["--no-loop"]},
            "loop": {"steps": 1000, "n_train": 12000, "labelled": 0.05, "extra": []}}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")[:60]


def last_record(run: Path) -> dict | None:
    log = run / "log.jsonl"
    if not log.exists():
        return None
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    vals = [r for r in lines if "val PA-MPJPE" in r]
    return vals[-1] if vals else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=list(ARMS))
    ap.add_argument("--out", default=None, help="folder of the runs (default runs_ablate_<which>)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None, help="arm numbers to run (0-based)")
    args = ap.parse_args(argv)
    d = DEFAULTS[args.which]
    steps = args.steps or d["steps"]
    n_train = args.n_train or d["n_train"]
    out = Path(args.out or ROOT / f"runs_ablate_{args.which}")
    arms = list(ARMS[args.which].items())
    todo = []
    for i, (name, flags) in enumerate(arms):
        if args.only is not None and str(i) not in args.only:
            continue
        run = out / f"{i}_{slug(name)}"
        rec = last_record(run)
        if rec is not None and rec.get("step") == steps:
            continue
        cmd = [str(ROOT / ".venv/bin/hmrkit"), "train", "spin", "--out", str(run), "--steps", str(steps),
               "--n-train", str(n_train), "--labelled", str(d["labelled"]), "--seed", str(args.seed),
               "--lr", "5e-4", "--batch", "64", "--fit-every", "6", "--fit-iters", "20", "--val-every", "500",
               "--threads", "1", *d["extra"], *flags]
        if (run / "last.pt").exists():
            cmd.append("--resume")
        todo.append((name, cmd, run))
    running = []
    while todo or running:
        while todo and len(running) < args.parallel:
            name, cmd, run = todo.pop(0)
            run.mkdir(parents=True, exist_ok=True)
            print(f"[ablate] start: {name}: {' '.join(cmd[2:])}", flush=True)
            running.append((name, subprocess.Popen(cmd, stdout=open(run / "stdout.txt", "a"), stderr=subprocess.STDOUT)))
        name, p = running.pop(0)
        if p.wait() != 0:
            print(f"[ablate] {name} failed (exit {p.returncode}); see its stdout.txt", file=sys.stderr)
    rows = []
    for i, (name, flags) in enumerate(arms):
        rec = last_record(out / f"{i}_{slug(name)}")
        if rec is None:
            continue
        rows.append((name, rec))
    print(f"\nSPIN {args.which} ablation: {steps} steps, {n_train} samples ({d['labelled']:.0%} labelled), "
          f"seed {args.seed}; validation on the val split (unseen subjects and motions), mm\n")
    keys = ["val PA-MPJPE", "val MPJPE", "val coco17 PA-MPJPE", "val coco17 MPJPE"]
    extra = ["fit PA-MPJPE", "valid fits"] if args.which == "loop" else []
    print("| arm | " + " | ".join(k.replace("val ", "") + (" (mediapipe33)" if "coco17" not in k and k.startswith("val ")
                                                          else "") for k in keys + extra) + " | time (s) |")
    print("|---|" + "---:|" * (len(keys) + len(extra) + 1))
    for name, rec in rows:
        vals = [f"{rec[k]:.1f}" if isinstance(rec.get(k), float) else str(rec.get(k, "-")) for k in keys + extra]
        print(f"| {name} | " + " | ".join(vals) + f" | {rec.get('time_s', 0):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

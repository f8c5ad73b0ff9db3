#!/usr/bin/env bash
# Trains SPIN's regressor on CPU (one thread; about 45 minutes on 2 shared cores) -- the
# recipe of the shipped spin_anny.pt (2026-12-02).
#
#   bash scripts/train_spin.sh              # -> runs/spin/ (log.jsonl, last.pt, spin_anny.pt)
#   bash scripts/train_spin.sh --resume     # continue a stopped run exactly
#   SHIP=1 bash scripts/train_spin.sh       # ... and copy the weights into the package
#
# The recipe (docs/spin.md, "Generalisation"): 48,000 synthetic people of the train split
# (CMU subjects 01, 02, 03, 06, 07, 131; salsa and modern dance are held out), all Anny
# phenotypes, one input convention per sample (MediaPipe 33, COCO-17, OpenPose BODY_25),
# world landmarks for 90 % of the MediaPipe samples, pose perturbation (p 0.5) and
# upper/lower combination (p 0.3), every sample labelled, 10,000 steps, fitting loop off
# (the loop pays with scarce labels: `scripts/ablate_spin.py loop`; with every synthetic
# sample labelled there is nothing for it to add). 2,605 s on one CPU thread, seed 0.
# Extra flags go to `hmrkit train spin`. The training set is cached in ~/.cache/hmrkit.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/spin}
RECIPE=(--steps 10000 --lr 5e-4 --batch 64 --seed 0 --n-train 48000 --labelled 1.0 --no-loop
        --conventions mediapipe33,coco17,openpose25 --phenotypes all --p-world3d 0.9
        --perturb 0.5 --combine 0.3 --val-every 1000 --threads 1)
.venv/bin/hmrkit train spin --out "$OUT" "${RECIPE[@]}" "$@"
if [ "${SHIP:-0}" = "1" ]; then
    cp "$OUT/spin_anny.pt" src/hmrkit/weights/spin_anny.pt
    echo "copied $OUT/spin_anny.pt -> src/hmrkit/weights/spin_anny.pt"
fi

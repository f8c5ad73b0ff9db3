#!/usr/bin/env bash
# Trains PARE's part-attention regressor on CPU (one thread; about 2 h 25 min on 2 shared cores).
#
#   bash scripts/train_pare.sh              # -> runs/pare/ (log.jsonl, last.pt, pare_anny_seg.pt, pare_anny.pt)
#   bash scripts/train_pare.sh --resume     # continue a stopped run exactly
#   SHIP=1 bash scripts/train_pare.sh       # ... and copy the weights into the package
#
# The recipe (docs/pare.md): the training set of SPIN's recipe (48,000 synthetic people of
# the train split, all phenotypes, one input convention per sample, every sample labelled,
# pose perturbation and upper/lower combination, world landmarks for 90 % of the MediaPipe
# samples), part segmentation supervised for the
# first 1500 of 10,000 steps, occluders on half the samples, truncation on a fifth, the
# person mask given to half. The training set and part maps are cached in ~/.cache/hmrkit.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/pare}
RECIPE=(--steps 10000 --lr 5e-4 --batch 64 --seed 0 --n-train 48000 --labelled 1.0
        --conventions mediapipe33,coco17,openpose25 --phenotypes all --perturb 0.5 --combine 0.3
        --seg-steps 1500 --p-occluder 0.5 --p-truncate 0.2 --p-mask 0.5 --p-world3d 0.9
        --val-every 500 --threads 1)
.venv/bin/hmrkit train pare --out "$OUT" "${RECIPE[@]}" "$@"
if [ "${SHIP:-0}" = "1" ]; then
    cp "$OUT/pare_anny.pt" src/hmrkit/weights/pare_anny.pt
    echo "copied $OUT/pare_anny.pt -> src/hmrkit/weights/pare_anny.pt"
fi

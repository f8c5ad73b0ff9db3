#!/usr/bin/env bash
# Trains PIXIE's hand and face experts, moderators and part heads on CPU (one thread;
# about 40 minutes, plus a minute for the training set the first time). The body expert is
# the shipped SPIN regressor, frozen (docs/pixie.md).
#
#   bash scripts/train_pixie.sh              # -> runs/pixie/ (log.jsonl, last.pt, pixie_anny.pt)
#   bash scripts/train_pixie.sh --resume     # continue a stopped run exactly
#   SHIP=1 bash scripts/train_pixie.sh       # ... and copy the weights into the package
#
# The recipe: 40,000 synthetic people of the train split (60 % upper-body close-ups, the rest
# whole people at 2.5-6 m), both hands posed by the gesture sampler, 0-3 facial action
# groups, all phenotypes; MediaPipe Holistic noise as calibrated (NoiseConfig.realistic);
# per step each hand and the face is removed (15 %) or badly jittered (15 %), the hands
# swapped (5 %); 6000 steps of 128.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/pixie}
RECIPE=(--steps 6000 --batch 128 --lr 5e-4 --seed 0 --n-train 40000 --p-closeup 0.6 --p-drop 0.15 --p-degrade 0.15
        --p-swap 0.05 --val-every 500 --threads 1)
.venv/bin/hmrkit train pixie --out "$OUT" "${RECIPE[@]}" "$@"
if [ "${SHIP:-0}" = "1" ]; then
    cp "$OUT/pixie_anny.pt" src/hmrkit/weights/pixie_anny.pt
    echo "copied $OUT/pixie_anny.pt -> src/hmrkit/weights/pixie_anny.pt"
fi

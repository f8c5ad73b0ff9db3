#!/usr/bin/env bash
# Trains MAED's spatio-temporal regressor on CPU (one thread; about 70 minutes, plus ~20 for
# the training library and ~10 for the video set the first time).
#
#   bash scripts/train_maed.sh              # -> runs/maed/ (log.jsonl, last.pt, maed_anny.pt)
#   bash scripts/train_maed.sh --resume     # continue a stopped run exactly
#   bash scripts/train_maed.sh --export     # write a stopped run's weights (from last.pt), with its card
#   SHIP=1 bash scripts/train_maed.sh       # ... and copy the weights into the package
#
# The recipe (docs/maed.md): every train-split mocap clip retargeted at 30 fps in 96-frame
# windows (every 2nd window; scripts/build_sequences.py --train-library, cached in
# ~/.cache/hmrkit), 6 moving cameras and random bodies per clip, half mirrored, cut into
# 16-frame windows; one input convention per window (MediaPipe 33, COCO-17, BODY_25);
# detector noise drawn fresh every step, correlated over time as MediaPipe's in video mode
# (add_temporal_noise, docs/noise_calibration.md); world landmarks for half of the MediaPipe
# windows; the spatial branch started from the shipped SPIN encoder, the space/time fusion
# started even (--fusion-bias 0); the 3D acceleration loss on (--w-accel 10);
# 6000 steps of 8 windows.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/maed}
LIB="$HOME/.cache/hmrkit/sequences_train_anny.npz"
if [ ! -f "$LIB" ]; then
    OMP_NUM_THREADS=1 .venv/bin/python scripts/build_sequences.py --train-library --frames 96 --iters 80 --every 2
fi
RECIPE=(--steps 6000 --lr 3e-4 --batch 8 --seed 0 --draws 6 --p-world3d 0.5 --fusion-bias 0 --w-accel 10
        --conventions mediapipe33,coco17,openpose25 --val-every 500 --threads 1)
.venv/bin/hmrkit train maed --out "$OUT" "${RECIPE[@]}" "$@"
if [ "${SHIP:-0}" = "1" ]; then
    cp "$OUT/maed_anny.pt" src/hmrkit/weights/maed_anny.pt
    echo "copied $OUT/maed_anny.pt -> src/hmrkit/weights/maed_anny.pt"
fi

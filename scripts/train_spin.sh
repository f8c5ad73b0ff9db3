#!/usr/bin/env bash
# Trains the shipped SPIN weights (fitting in the loop) and the loop-off ablation, on CPU.
#
#   bash scripts/train_spin.sh            # both runs in parallel, one thread each
#
# Writes runs/spin_loop/ and runs/spin_noloop/ (log.jsonl, last.pt, spin_anny.pt), then
# copies the loop run's weights to src/hmrkit/weights/spin_anny.pt. A run that stops can
# be continued with the same command plus --resume (see `hmrkit train spin --help`).
# Extra flags go to both runs and then nothing is copied, e.g. the scarce-label ablation:
#   OUT=runs_scarce bash scripts/train_spin.sh --labelled 0.05 --steps 3000
# The training set (24,000 synthetic samples, seed 0) is cached in ~/.cache/hmrkit.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs}
COMMON=(--steps 6000 --lr 5e-4 --batch 64 --seed 0 --n-train 24000 --labelled 0.25
        --fit-every 6 --fit-iters 20 --val-every 500 --threads 1)
.venv/bin/hmrkit train spin --out "$OUT/spin_loop" "${COMMON[@]}" "$@" &
loop=$!
.venv/bin/hmrkit train spin --out "$OUT/spin_noloop" --no-loop "${COMMON[@]}" "$@" &
noloop=$!
wait "$loop"  # a failed run stops the script here (set -e), before anything is copied
wait "$noloop"
if [ $# -eq 0 ]; then  # the shipped recipe; runs with other flags (ablations) are not shipped
    cp "$OUT/spin_loop/spin_anny.pt" src/hmrkit/weights/spin_anny.pt
    echo "copied $OUT/spin_loop/spin_anny.pt -> src/hmrkit/weights/spin_anny.pt"
fi

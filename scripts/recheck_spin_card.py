"""Recompute the check figure in the card of the shipped SPIN weights, leaving the weights
themselves untouched (the same tensors, byte for byte), when the check set's definition
changes (2026-12-02: the validation set moved to the val split of hmrkit.data.splits).

    .venv/bin/python scripts/recheck_spin_card.py [src/hmrkit/weights/spin_anny.pt]

Prints the old and the new check; tests/test_spin_weights.py recomputes the new one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import hmrkit.body
from hmrkit.models.spin import default_weights, load_regressor
from hmrkit.train.spin import check_figure


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default_weights("anny")
    body = hmrkit.body.load("anny")
    raw = torch.load(path, weights_only=False)
    before = {k: v.clone() for k, v in raw["state_dict"].items()}
    old = dict(raw["card"].get("check", {}))
    new = check_figure(load_regressor(body, path), body)
    raw["card"]["check"] = new
    raw["card"].setdefault("notes", []).append(
        f"check recomputed on {new['set']} (was {old.get('set')}: PA-MPJPE {old.get('PA-MPJPE')}, "
        f"MPJPE {old.get('MPJPE')}); the weights are unchanged")
    assert all(torch.equal(before[k], raw["state_dict"][k]) for k in before)
    torch.save(raw, path)
    print(f"{path}: check {old} -> {new}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

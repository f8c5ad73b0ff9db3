"""The shipped MAED weights: they load, carry a card, still reach the card's figure, and
beat answering the mean pose on unseen motions."""

from __future__ import annotations

import pytest
import torch

from hmrkit.models.maed import default_weights, load_regressor
from hmrkit.train.maed import CHECK_SET, validate, validation_windows

pytestmark = pytest.mark.skipif(not default_weights("anny").exists(), reason="no shipped MAED weights")


def test_shipped_weights_have_a_card(anny_body):
    path = default_weights("anny")
    assert path.stat().st_size < 8 * 2 ** 20
    card = load_regressor(anny_body).card
    for key in ("seed", "steps", "train_time_s", "val", "check", "windows", "data", "model"):
        assert key in card, key
    assert card["model"]["window"] == 16 and card["init_spin_tensors"] > 0  # scripts/train_maed.sh
    assert len(card["data"]["conventions"]) == 3


def test_shipped_weights_reach_their_card(anny_body):
    model = load_regressor(anny_body)
    card = model.card["check"]
    got = validate(model, anny_body, validation_windows(anny_body, model.config.window, **CHECK_SET))
    assert abs(got["val PA-MPJPE"] - card["val PA-MPJPE"]) < 1.0, (got, card)
    assert abs(got["val accel"] - card["val accel"]) < 1.0, (got, card)


def test_shipped_weights_beat_the_mean_pose(anny_body):
    from hmrkit.eval.metrics import pa_mpjpe

    model = load_regressor(anny_body)
    inputs, gt, F = validation_windows(anny_body, model.config.window, **CHECK_SET)
    got = validate(model, anny_body, (inputs, gt, F))
    with torch.no_grad():
        rest = anny_body.forward_keypoints(anny_body.mean_params(1), ("coco17",))["coco17"]
    mean = float(pa_mpjpe(rest.expand_as(gt.flatten(0, 1)), gt.flatten(0, 1)).mean())
    assert got["val PA-MPJPE"] < 0.8 * mean, (got, mean)

"""The shipped SPIN weights: they load, carry a card, and still reach the card's figure."""

from __future__ import annotations

import torch

from hmrkit.models.spin import default_weights, load_regressor
from hmrkit.train.spin import CHECK_SET, CHECK_SET_NAME, check_figure


def test_shipped_weights_have_a_card(anny_body):
    path = default_weights("anny")
    assert path.exists(), f"{path} is missing: run scripts/train_spin.sh"
    assert path.stat().st_size < 8 * 2 ** 20  # a few MB
    card = load_regressor(anny_body).card
    for key in ("seed", "steps", "loop", "data", "train_time_s", "val", "check"):
        assert key in card, key
    # the recipe of 2026-12-02 (scripts/train_spin.sh): every sample labelled, no loop,
    # the train split only, every input convention
    assert card["loop"] is False and card["body"] == "anny" and card["data"]["labelled"] == 1.0
    assert card["data"]["split"] == "train" and len(card["data"]["conventions"]) == 3


def test_shipped_weights_reach_their_card(anny_body):
    """The regressor alone, on the card's fixed synthetic set (realistic detector noise, no
    3D input): its PA-MPJPE within 1 mm of the card's."""
    model = load_regressor(anny_body)
    card = model.card["check"]
    assert card["set"] == CHECK_SET_NAME
    got = check_figure(model, anny_body)
    assert abs(got["PA-MPJPE"] - card["PA-MPJPE"]) < 1.0, (got, card)
    assert abs(got["MPJPE"] - card["MPJPE"]) < 2.0, (got, card)


def test_shipped_weights_beat_the_mean_pose(anny_body):
    """A trained regressor is far better than answering the mean body for everyone."""
    from hmrkit.eval.metrics import pa_mpjpe
    from hmrkit.train.spin import _keypoints, validation_set

    scenes, kp, gt = validation_set(anny_body, **CHECK_SET)
    mean = anny_body.mean_params(kp["mediapipe33"].shape[0])
    with torch.no_grad():
        base = pa_mpjpe(_keypoints(anny_body, mean, ("coco17",))["coco17"], gt).mean()
    got = check_figure(load_regressor(anny_body), anny_body)["PA-MPJPE"]
    assert got < 0.75 * float(base), (got, float(base))

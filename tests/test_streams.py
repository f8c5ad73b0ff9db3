"""The out-of-domain streams (#14): the shipped 300-frame test and val takes, the camera and body
shifts of ``synthetic:sequences``, and their spec."""

from __future__ import annotations

import pytest
import torch

from hmrkit.errors import InputError
from hmrkit.eval.specs import SHIFTS, SyntheticSpec


def test_the_streams_library_is_long_held_out_takes():
    from hmrkit.data.sequences import WEIGHTS_DIR, load_sequences
    from hmrkit.data.splits import split_of

    lib = load_sequences("anny", path=WEIGHTS_DIR / "streams_anny.npz")
    assert len(lib) == 8 and lib.num_frames == 300 and lib.fps == 30.0
    splits = [split_of(s) for s in lib.source]
    # motions no training saw: four test takes (the benchmark), four val takes (tuning the adaptation)
    assert splits == ["test"] * 4 + ["val"] * 4
    # the val and test takes are different people or different dances
    assert not set(lib.source[:4]) & set(lib.source[4:])


def test_spec_keys_round_trip_and_errors():
    s = SyntheticSpec.parse("synthetic:sequences,library=streams,frames=300,shift=low,n=2,temporal=1")
    assert (s.library, s.shift, s.frames) == ("streams", "low", 300)
    assert SyntheticSpec.parse(s.name) == s
    assert "shift" not in SyntheticSpec.parse("synthetic:sequences").name
    for bad, msg in (("shift=sideways", "shift must be one of"), ("library=mine", "library must be clips or streams")):
        with pytest.raises(InputError, match=msg):
            SyntheticSpec.parse(f"synthetic:sequences,{bad}")
    assert SHIFTS[0] == "none"


def test_shifts_change_the_cameras_and_bodies(anny_body):
    from hmrkit.eval.protocols import build_synthetic

    def built(shift):
        return build_synthetic(anny_body, SyntheticSpec.parse(
            f"synthetic:sequences,library=streams,frames=8,n=2,shift={shift}"))

    f = {s: float(built(s).inputs.K[:, 0, 0].mean()) for s in ("tele", "none", "wide")}
    assert f["tele"] > 1.8 * f["none"] and f["wide"] < 0.75 * f["none"], f
    age = anny_body.shape_names.index("age")
    kids = built("child").params.shape[:, age]
    old = built("elder").params.shape[:, age]
    assert (kids <= 0.35).all() and (old >= 0.9).all()

    # the camera frame is OpenCV's (z forward): a low camera looks up at the person, so the
    # torso's up direction leans away from it (+z); a high camera looks down (-z)
    def torso_up_z(shift):
        d = built(shift)
        with torch.no_grad():
            J = anny_body.forward_keypoints(d.params, ("coco17",))["coco17"]
        up = 0.5 * (J[:, 5] + J[:, 6]) - 0.5 * (J[:, 11] + J[:, 12])
        return float((up / up.norm(dim=-1, keepdim=True))[:, 2].mean())

    low, level, high = torso_up_z("low"), torso_up_z("none"), torso_up_z("high")
    assert low > level + 0.08 and high < level - 0.2, (low, level, high)


def test_noisier_scales_jitter_gross_errors_and_swaps():
    from hmrkit.data.synthetic import NoiseConfig

    base = NoiseConfig.realistic()
    two = base.noisier(2.0)
    for name in ("torso", "limbs", "extremities", "hands"):
        for state in ("visible", "back", "hidden", "boxed"):
            a, b = getattr(base, name).state(state), getattr(two, name).state(state)
            assert b.jitter == pytest.approx(2 * a.jitter) and b.gross == pytest.approx(min(1.0, 2 * a.gross))
            assert (b.low_conf, b.drop, b.tail) == (a.low_conf, a.drop, a.tail)
    assert two.swap == pytest.approx(2 * base.swap) and two.hand_swap == pytest.approx(2 * base.hand_swap)
    assert base.noisier(1000.0).limbs.hidden.gross == 1.0  # a probability stays one
    assert base.noisier(1.0) == base


def test_noisy_shift_doubles_the_detector_error_on_the_same_people(anny_body):
    from hmrkit.eval.protocols import build_synthetic

    def built(extra):
        return build_synthetic(anny_body, SyntheticSpec.parse(
            f"synthetic:sequences,library=streams,frames=30,n=2,{extra}"))

    clean, none, noisy = built("noise=clean"), built("shift=none"), built("shift=noisy")
    assert torch.equal(none.params.pose, noisy.params.pose) and torch.equal(clean.params.pose, noisy.params.pose)
    seen = (clean.inputs.keypoints2d[..., 2] > 0) & (none.inputs.keypoints2d[..., 2] > 0) & \
        (noisy.inputs.keypoints2d[..., 2] > 0)

    def err(d):
        return float((d.inputs.keypoints2d[..., :2] - clean.inputs.keypoints2d[..., :2]).norm(dim=-1)[seen].median())

    ratio = err(noisy) / err(none)
    assert 1.6 < ratio < 2.4, ratio
    for bad in ("shift=noisy,noise=clean", "shift=noisy,render=1"):
        with pytest.raises(InputError, match="shift=noisy"):
            SyntheticSpec.parse(f"synthetic:sequences,{bad}")

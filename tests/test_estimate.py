"""The estimator contract: every registered method passes the same checks, on Anny bodies
with known ground truth (hmrkit.data.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmrkit.errors import InputError
from hmrkit.estimate import Refined, build, kinds, method_names, observation_from_arrays
from hmrkit.fit import FitConfig
from hmrkit.types import Evidence, Features, Observation, Prediction

FAST = FitConfig(camera_iters=6, body_iters=8, detail_iters=2)


@pytest.fixture(scope="module")
def scenes(anny_body):
    from hmrkit.data.synthetic import NoiseConfig, keypoints2d, sample_scenes

    sc = sample_scenes(anny_body, 3, seed=11)
    kp = keypoints2d(anny_body, sc, "mediapipe33", NoiseConfig.realistic(), seed=12)
    return sc, kp


@pytest.fixture(scope="module", params=method_names())
def estimator(request, anny_body):
    return build(request.param, anny_body, FAST)


def _obs(scenes, sel=slice(None)):
    sc, kp = scenes
    return observation_from_arrays(kp[sel], "mediapipe33", sc.K[sel], image_size=sc.image_size)


def test_registry_names_every_method_and_refinement():
    names = method_names()
    assert {"fit", "spin", "spin+fit"} <= set(names)
    assert "fit+fit" not in names


REGRESSORS = ("spin", "pare", "maed", "pixie")  # one forward pass each (maed: windows of one on photos), exact batch = loop


def test_contract_shapes_validity_error(estimator, scenes, anny_body):
    obs = _obs(scenes)
    pred = estimator.predict(obs)
    assert isinstance(pred, Prediction)
    B = obs.batch_size
    assert pred.params.global_orient.shape == (B, 3, 3)
    assert pred.params.pose.shape == (B, anny_body.num_pose_joints, 3, 3)
    assert pred.valid.dtype == torch.bool and pred.valid.shape == (B,)
    assert pred.valid.all()  # 33 clean-ish keypoints each
    assert pred.px_error.shape == (B,) and torch.isfinite(pred.px_error).all()
    assert pred.camera.K.shape == (B, 3, 3)
    assert pred.method == estimator.name
    # rotations are rotations
    R = pred.params.pose
    eye = torch.eye(3).expand_as(R)
    assert torch.allclose(R @ R.transpose(-1, -2), eye, atol=1e-4)
    # the body is in front of the camera
    assert (pred.params.transl[:, 2] > 0.5).all()


def test_contract_batch_equals_loop(estimator, scenes):
    obs = _obs(scenes)
    batch = estimator.predict(obs)
    for b in range(obs.batch_size):
        one = estimator.predict(obs[b])
        # float32 fits drift apart a little between batch sizes (tiny differences, then Adam);
        # a regressor is exact
        tol = 1e-4 if estimator.name in REGRESSORS else 2e-2
        assert torch.allclose(one.params.transl, batch.params.transl[b:b + 1], atol=tol), estimator.name
        assert bool(one.valid[0]) == bool(batch.valid[b])


def test_contract_window_kind(estimator, scenes):
    obs = _obs(scenes).stack_time()  # one window of 3 frames
    if "stream" in kinds(estimator):  # online adaptation: a track frame by frame, from a reset
        estimator.reset()
        from dataclasses import replace

        preds = [estimator.step(replace(obs[0, t:t + 1].flatten(), frame_index=torch.tensor([t]))) for t in range(3)]
        assert all(p.batch_size == 1 and p.method == estimator.name and bool(p.valid[0]) for p in preds)
        estimator.reset()
    if "window" not in kinds(estimator):  # an image (or stream) estimator: the pipeline batches its frames
        assert estimator.name in ("spin", "pare", "pixie") or estimator.name.endswith("+adapt")
        assert not hasattr(estimator, "predict_window")
        return
    pred = estimator.predict_window(obs)
    assert pred.batch_size == 3 and pred.px_error.shape == (3,)
    # one shape for the window: it shows one person
    assert torch.allclose(pred.params.shape, pred.params.shape[:1].expand_as(pred.params.shape))


def test_contract_too_little_evidence_is_not_valid(estimator, scenes):
    obs = _obs(scenes, slice(0, 1))
    body = obs.body.clone()
    body[..., 2] = 0.0
    body[:, :3, 2] = 1.0  # three keypoints: too few for a body
    pred = estimator.predict(Observation(**{**obs.__dict__, "body": body}))
    assert not bool(pred.valid[0])


def test_contract_bad_input_one_clear_error(scenes):
    obs = _obs(scenes)
    with pytest.raises(ValueError, match=r"Observation.K: expected shape \(3, 3, 3\)"):
        Observation(**{**obs.__dict__, "K": obs.K[:, :2]})
    with pytest.raises(ValueError, match="focal lengths must be finite and positive"):
        Observation(**{**obs.__dict__, "K": -obs.K})
    with pytest.raises(ValueError, match="mediapipe33 has 33 keypoints, got 17"):
        Observation(**{**obs.__dict__, "body": obs.body[:, :17]})
    with pytest.raises(InputError, match="unknown method 'spun'"):
        build("spun", None)
    with pytest.raises(InputError, match="unknown method 'fit\\+fit'"):
        build("fit+fit", None)


def test_refinement_is_a_wrapper(anny_body, scenes):
    est = build("spin+fit", anny_body, FAST)
    assert isinstance(est, Refined) and est.base.name == "spin" and est.name == "spin+fit"
    obs = _obs(scenes)
    start = est.base.predict(obs)
    pred = est.predict(obs)
    # the fit starts from the regressor and lowers its 2D error; the regressor's features survive
    assert float(pred.px_error.mean()) < float(start.px_error.mean())
    assert pred.features is not None and torch.equal(pred.features.pooled, start.features.pooled)
    assert set(pred.timings) == {"regress", "fit"}


def test_spin_features_tokens(anny_body, scenes):
    pred = build("spin", anny_body).predict(_obs(scenes))
    f = pred.features
    assert isinstance(f, Features)
    assert f.tokens.shape[:2] == (3, 34)  # class token + 33 keypoints
    assert f.pooled.shape[0] == 3 and f.volume is None


def test_map_encoder_gives_a_volume():
    from hmrkit.models.encoders import EncoderConfig, build_encoder
    from hmrkit.models.inputs import crop_inputs

    enc = build_encoder(EncoderConfig(kind="maps"))
    kp = torch.rand(2, 33, 3) * torch.tensor([200.0, 200.0, 1.0])
    K = torch.tensor([[300.0, 0, 100], [0, 300.0, 100], [0, 0, 1]]).expand(2, 3, 3)
    f = enc(crop_inputs(kp, K))
    assert f.volume.ndim == 4 and f.volume.shape[0] == 2 and f.pooled.shape == (2, enc.out_dim)


# ---------------------------------------------------------------------------- Observation


def _holistic_evidence(seed=0, h=400, w=300):
    from hmrkit import conventions as C

    rng = np.random.default_rng(seed)
    kp = np.concatenate([rng.uniform(10, 290, (len(C.HOLISTIC), 2)), rng.uniform(0.5, 1, (len(C.HOLISTIC), 1))], 1)
    k3 = np.zeros((len(C.HOLISTIC), 4), np.float32)
    k3[:33] = rng.normal(size=(33, 4))
    return Evidence(image_size=(h, w), keypoints2d=kp.astype(np.float32), convention="holistic",
                    bbox=np.array([5, 6, 280, 390], np.float32), keypoints3d=k3, mask=np.ones((h, w), np.float32))


def test_observation_from_holistic_evidence_round_trip():
    evs = [_holistic_evidence(0), _holistic_evidence(1)]
    obs = Observation.from_evidence(evs, np.eye(3) * 200 + np.diag([0, 0, -199]), frame_index=[4, 4], track_id=[0, 1])
    assert obs.body_convention == "mediapipe33" and obs.body.shape == (2, 33, 3)
    assert obs.hands.shape == (2, 2, 21, 3) and obs.face.shape == (2, 41, 3)
    assert obs.mask.shape == (2, 64, 64) and obs.mask_box.shape == (2, 3)
    assert obs.track_id.tolist() == [0, 1] and obs.image_size.tolist() == [[400, 300]] * 2
    kp, conv, k3 = obs.holistic()
    assert conv == "holistic"
    np.testing.assert_allclose(kp[0].numpy(), evs[0].keypoints2d, rtol=0, atol=0)
    np.testing.assert_allclose(k3[0].numpy(), evs[0].keypoints3d, rtol=0, atol=0)


def test_observation_non_finite_keypoints_are_missing():
    ev = _holistic_evidence(2)
    kp = ev.keypoints2d.copy()
    kp[3, 0] = np.nan
    kp[5, 2] = np.inf
    ev = Evidence(ev.image_size, kp, "holistic", ev.bbox)
    obs = Observation.from_evidence([ev], np.eye(3))
    assert torch.isfinite(obs.body).all()
    assert float(obs.body[0, 3, 2]) == 0.0 and float(obs.body[0, 5, 2]) == 0.0


def test_observation_windows_flatten_and_cat():
    evs = [_holistic_evidence(i) for i in range(4)]
    obs = Observation.from_evidence(evs, np.eye(3), frame_index=[0, 1, 2, 3], track_id=[7] * 4)
    w = obs.stack_time()
    assert w.is_window and w.lead == (1, 4)
    assert torch.equal(w.flatten().body, obs.body)
    two = Observation.cat([obs[:2].stack_time(), obs[2:].stack_time()])
    assert two.lead == (2, 2)
    assert torch.equal(two.flatten().unflatten(2).body, two.body)
    assert Observation.cat([obs[:2], obs[2:]]).frame_index.tolist() == [0, 1, 2, 3]
    assert Observation.cat([obs[:2].stack_time(), obs[2:].stack_time()], dim=1).lead == (1, 4)


def test_prediction_select_and_cat(anny_body, scenes):
    pred = build("spin", anny_body).predict(_obs(scenes))
    parts = [pred[i] for i in range(pred.batch_size)]
    back = Prediction.cat(parts)
    assert torch.equal(back.params.transl, pred.params.transl)
    assert torch.equal(back.features.tokens, pred.features.tokens)
    with pytest.raises(ValueError, match=r"Prediction.px_error: expected shape \(3,\)"):
        Prediction(pred.params, pred.camera, pred.valid, pred.px_error[:2], "x")


def test_observation_from_arrays_requires_image_size(scenes):
    sc, kp = scenes
    with pytest.raises(ValueError, match="image_size"):
        observation_from_arrays(kp, "mediapipe33", sc.K)
    obs = observation_from_arrays(kp, "mediapipe33", sc.K, image_size=sc.image_size)
    assert (obs.bbox[:, 2] > obs.bbox[:, 0]).all() and (obs.bbox[:, 3] > obs.bbox[:, 1]).all()


def test_estimators_declare_the_evidence_they_read(anny_body):
    """The pipeline asks the detector only for what the estimator reads: spin reads the
    body (and world landmarks), the fit also hands and face, spin+fit both."""
    from hmrkit.estimate import EVIDENCE, evidence_used

    assert evidence_used(build("spin", anny_body)) == {"body", "body3d"}
    assert evidence_used(build("fit", anny_body, FAST)) == {"body", "body3d", "hands", "face"}
    assert evidence_used(build("spin+fit", anny_body, FAST)) == {"body", "body3d", "hands", "face"}
    assert evidence_used(object()) == EVIDENCE  # an estimator that does not say gets everything


def test_spin_reads_only_what_it_declares(anny_body, scenes):
    """Dropping what spin does not declare (hands, face, mask) changes nothing."""
    obs = _obs(scenes)
    full = Observation(**{**obs.__dict__, "hands": torch.rand(3, 2, 21, 3) * 100, "face": torch.rand(3, 41, 3) * 100})
    spin = build("spin", anny_body)
    assert torch.equal(spin.predict(full).params.pose, spin.predict(obs).params.pose)


def test_numpy_integers_index_like_ints(anny_body, scenes):
    pred = build("spin", anny_body).predict(_obs(scenes))
    obs = _obs(scenes)
    for i in (1, np.int64(1), torch.tensor(1).item()):
        assert pred[i].batch_size == 1 and pred.params[i].batch_size == 1 and obs[i].batch_size == 1

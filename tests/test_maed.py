"""MAED: the spatio-temporal encoder, the kinematic decoder, sliding windows with context,
the estimator contract, weights round trip, and a smoke training run."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from hmrkit.estimate import observation_from_arrays
from hmrkit.models.inputs import crop_inputs
from hmrkit.models.maed import (MaedConfig, MaedEstimator, MaedEstimatorConfig, MaedRegressor, STBlock, ancestors,
                                blend_weights, window_starts)

SMALL = MaedConfig(width=32, layers=1, heads=2, window=8, hidden=32)


@pytest.fixture(scope="module")
def small(anny_body):
    torch.manual_seed(0)
    return MaedRegressor(anny_body, SMALL).eval()


def _inputs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand(n, 33, 3, generator=g) * 400 + 100
    kp[..., 2] = 1
    K = torch.tensor([[800.0, 0, 360], [0, 800, 360], [0, 0, 1]]).expand(n, 3, 3)
    return crop_inputs(kp, K)


def test_st_block_mixes_time_and_space_only_as_built():
    torch.manual_seed(0)
    blk = STBlock(16, 2, 0.0).eval()
    x = torch.randn(2, 5, 4, 16)
    y = blk(x)
    x2 = x.clone()
    x2[0, 3, 1] += torch.randn(16)  # one token of one frame of window 0 (not a constant: LayerNorm removes those)
    d = (blk(x2) - y).abs().sum(-1)
    assert d[1].max() == 0  # windows are independent
    assert d[0, 3].min() > 0  # the same frame's tokens see it (space)
    assert d[0, :, 1].min() > 0  # the same token in other frames sees it (time)
    others = [(t, n) for t in range(5) for n in range(4) if t != 3 and n != 1]
    assert max(float(d[0, t, n].detach()) for t, n in others) == 0  # nothing else in one block


def test_fusion_starts_on_the_spatial_branch():
    blk = STBlock(16, 2, 0.0, fusion_bias=2.0)
    a = blk.fuse(torch.randn(3, 32)).reshape(3, 2, 16).softmax(-2)
    assert torch.allclose(a[:, 0], torch.full_like(a[:, 0], 1 / (1 + np.exp(-4))), atol=1e-6)


def test_ancestors_follow_the_body_tree(anny_body):
    from hmrkit.body.priors import body_joint_indices

    idx = body_joint_indices(anny_body)
    names = [anny_body.pose_joint_names[i] for i in idx]
    anc = ancestors(anny_body, idx)
    knee = names.index("left_knee")
    assert names.index("left_hip") in anc[knee]
    assert all(len(anc[a]) < len(anc[k]) for k in range(len(idx)) for a in anc[k])  # parents first
    assert anc[names.index("left_hip")] == []


def test_decoder_children_depend_on_parents(small, anny_body):
    """The knee's rotation changes when only the hip's regressor changes (KTD), not the reverse."""
    inp = _inputs(4)
    names = list(small.joint_names)
    hip, knee = names.index("left_hip"), names.index("left_knee")
    out = small(inp, 4)
    m2 = MaedRegressor(anny_body, SMALL).eval()
    m2.load_state_dict(small.state_dict())
    with torch.no_grad():
        m2.decoder.joints[hip].bias += 0.3
    out2 = m2(inp, 4)
    assert (out2.pose[:, knee] - out.pose[:, knee]).abs().max() > 1e-4
    m3 = MaedRegressor(anny_body, SMALL).eval()
    m3.load_state_dict(small.state_dict())
    with torch.no_grad():
        m3.decoder.joints[knee].bias += 0.3
    out3 = m3(inp, 4)
    assert torch.equal(out3.pose[:, hip], out.pose[:, hip])


def test_shape_is_one_per_window(small):
    out = small(_inputs(2 * 6), 6)
    s = out.shape.reshape(2, 6, -1)
    assert torch.allclose(s, s[:, :1].expand_as(s))


def test_window_starts_cover_every_frame():
    for T in (1, 5, 8, 9, 16, 17, 40):
        st = window_starts(T, 8, 4)
        covered = set(i for s in st for i in range(s, min(T, s + 8)))
        assert covered == set(range(T))
        assert st[0] == 0 and min(T, st[-1] + 8) == T
    w = blend_weights(8)
    assert (w > 0).all() and torch.allclose(w, w.flip(0))


def _estimator(anny_body, small, tmp_path):
    from hmrkit.models.weights import save_weights

    path = tmp_path / "maed.pt"
    save_weights(small.checkpoint({"note": "test"}), path)
    return MaedEstimator(anny_body, MaedEstimatorConfig(weights=str(path)))


def _sequence_obs(anny_body, T):
    from hmrkit.data.sequences import sample_sequence

    seq = sample_sequence(anny_body, 0, seed=3, conventions=("mediapipe33",))
    return observation_from_arrays(seq.keypoints2d["mediapipe33"][:T], "mediapipe33", seq.K[:T],
                                   image_size=seq.image_size)


def test_weights_round_trip(anny_body, small, tmp_path):
    est = _estimator(anny_body, small, tmp_path)
    inp = _inputs(8)
    a, b = small(inp, 8), est.model(inp, 8)
    assert torch.equal(a.pose, b.pose) and torch.equal(a.cam, b.cam)


def test_context_frames_are_seen_not_predicted(anny_body, small, tmp_path):
    """predict_window(obs, context=c) is predict_window(obs) without its first c frames, so
    a scheduler that hands the previous frames as context changes no estimate of them."""
    est = _estimator(anny_body, small, tmp_path)
    obs = _sequence_obs(anny_body, 20).stack_time()
    full = est.predict_window(obs)
    part = est.predict_window(obs, context=4)
    assert part.batch_size == 16
    assert torch.allclose(part.params.pose, full.params.pose[4:])
    assert torch.allclose(part.params.transl, full.params.transl[4:])


def test_short_track_and_photo(anny_body, small, tmp_path):
    est = _estimator(anny_body, small, tmp_path)
    obs = _sequence_obs(anny_body, 3)
    w = est.predict_window(obs.stack_time())  # shorter than a window
    assert w.batch_size == 3 and w.valid.all()
    p = est.predict(obs)  # independent frames: windows of one
    one = est.predict(obs[1])
    assert torch.allclose(p.params.pose[1:2], one.params.pose, atol=1e-6)  # batch equals loop


def test_eval_runner_and_pipeline_hand_context(anny_body, small, tmp_path):
    """The eval runner gives a context estimator the clip's previous frames: its chunked
    estimate equals one call on the whole clip where every window is the same."""
    from hmrkit.eval.runner import EvalInputs, run_estimator

    est = _estimator(anny_body, small, tmp_path)  # window 8, stride 4, context 4
    obs = _sequence_obs(anny_body, 16)
    inputs = EvalInputs(obs.body, "mediapipe33", obs.K, None, torch.ones(16, dtype=torch.bool),
                        obs.image_size, ((0, 16),))
    res = run_estimator(est, anny_body, inputs, batch=8)
    whole = est.predict_window(obs.stack_time())
    with torch.no_grad():
        ref = anny_body(whole.params).joints
    # chunks [0, 8) and [8, 16), the second with context 4: windows 0-8, then 4-12 and 8-16.
    # Frames 8-15 and 0-3 see the whole clip's windows; 4-7 miss window 4-12 (it comes with
    # the next chunk: the schedulers do not hold frames back for the future)
    r = ref.to(res.joints.dtype)
    assert torch.allclose(res.joints[8:], r[8:], atol=1e-4)
    assert torch.allclose(res.joints[:4], r[:4], atol=1e-4)
    assert not torch.allclose(res.joints[4:8], r[4:8], atol=1e-4)


def test_init_from_spin_copies_the_spatial_branch(anny_body):
    from hmrkit.models.spin import default_weights, load_regressor

    if not default_weights("anny").exists():
        pytest.skip("no shipped SPIN weights")
    spin = load_regressor(anny_body)
    m = MaedRegressor(anny_body)
    n = m.init_from_spin(spin)
    assert n > 20
    a = spin.encoder.transformer.layers[0].self_attn.in_proj_weight
    assert torch.equal(m.encoder.blocks[0].self_attn.in_proj_weight, a)
    assert torch.equal(m.encoder.keypoint_embed, spin.encoder.keypoint_embed)
    assert MaedRegressor(anny_body, SMALL).init_from_spin(spin) == 0  # another width: nothing copied


def test_init_decoder_from_spin_reads_as_its_first_iteration(anny_body):
    """A decoder started from SPIN's IEF head gives, on one frame with the fusion held on
    the spatial branch, exactly SPIN's first-iteration estimate (same features, same head)."""
    from hmrkit.models.encoders import EncoderConfig
    from hmrkit.models.hmr_head import HeadConfig
    from hmrkit.models.spin import SpinRegressor

    torch.manual_seed(1)
    spin = SpinRegressor(anny_body, EncoderConfig(width=32, layers=1, heads=2, dropout=0.0),
                         HeadConfig(hidden=48, iterations=1, dropout=0.0)).eval()
    with torch.no_grad():  # a head that is not at its zero start
        spin.head.dec.weight.normal_(std=0.05)
        spin.head.dec.bias.normal_(std=0.05)
    cfg = replace(SMALL, hidden=48, decoder_act="relu", fusion_bias=30.0)
    m = MaedRegressor(anny_body, cfg).eval()
    assert m.init_from_spin(spin) > 0 and m.init_decoder_from_spin(spin) > 0
    with torch.no_grad():
        m.encoder.time_embed.zero_()
        x = _inputs(5, seed=3)
        a, b = m(x, 1), spin(x)
    for name in ("global_orient", "pose", "shape", "cam"):
        assert torch.allclose(getattr(a, name), getattr(b, name), atol=1e-5), name
    # the ancestors' inputs start at zero, so a child's regressor reads only the feature at first
    assert all(float(j.weight[:, 48:].abs().sum()) == 0 for j in m.decoder.joints)
    # nothing is set where the decoder cannot hold the head: another width or activation
    assert MaedRegressor(anny_body, replace(cfg, hidden=32)).init_decoder_from_spin(spin) == 0
    assert MaedRegressor(anny_body, replace(cfg, decoder_act="gelu")).init_decoder_from_spin(spin) == 0
    with pytest.raises(ValueError, match="activation"):
        MaedRegressor(anny_body, replace(cfg, decoder_act="tanh"))


@pytest.mark.parametrize("image_batch", [0, 3])
def test_smoke_training_and_exact_resume(anny_body, tmp_path, image_batch):
    """Two steps on a tiny video set (and, with image_batch, single frames of a tiny SPIN
    training set); stopping after one and resuming gives the same weights."""
    from hmrkit.data.sequences import load_sequences
    from hmrkit.train.data import TrainSetConfig, build_trainset
    from hmrkit.train.maed import MaedTrainConfig, VideoSetConfig, build_video_set, maed_trainer

    lib = load_sequences("anny")
    keep = [0, 1]
    sub = replace(lib, body_pose_aa=lib.body_pose_aa[keep], global_orient_aa=lib.global_orient_aa[keep],
                  transl=lib.transl[keep], shape=lib.shape[keep], source=tuple(lib.source[i] for i in keep),
                  start_frame=lib.start_frame[keep], retarget_error_mm=lib.retarget_error_mm[keep])
    vs = build_video_set(anny_body, sub, VideoSetConfig(draws=1, window=8))
    assert len(vs) >= 2 and vs.X.shape[1] == 8
    images = None
    icfg = TrainSetConfig(n=5, labelled=0.6, conventions=("mediapipe33", "coco17"))
    if image_batch:
        images = build_trainset(anny_body, icfg)
    cfg = MaedTrainConfig(steps=2, batch=2, val_every=1, init_spin=False, model=SMALL,
                          data=VideoSetConfig(draws=1, window=8), image_batch=image_batch, image_data=icfg)
    import hmrkit.train.maed as tm

    small_val = tm.validation_windows(anny_body, 8, clips=1, frames=8)
    orig = tm.validation_windows
    tm.validation_windows = lambda body, window, **kw: small_val
    try:
        a = maed_trainer(anny_body, vs, cfg, tmp_path / "a", images)
        a.begin()
        rec = a.train()
        assert np.isfinite(rec["val PA-MPJPE"]) and np.isfinite(rec["val accel"])
        if image_batch:
            assert np.isfinite(rec["train image kp2d"]) and rec["train image loss"] > 0
        b = maed_trainer(anny_body, vs, cfg, tmp_path / "b", images)
        b.begin()
        b.train(stop_at=1)
        x = maed_trainer(anny_body, vs, cfg, tmp_path / "b", images)  # the stopped run's weights, with its card
        from hmrkit.models.maed import load_regressor

        stopped = load_regressor(anny_body, x.export_weights(tmp_path / "b.pt"))
        assert stopped.card["trained_steps"] == 1
        for k, v in b.model.state_dict().items():
            assert torch.equal(v, stopped.state_dict()[k]), k
        c = maed_trainer(anny_body, vs, cfg, tmp_path / "b", images)
        c.begin(resume=True)
        c.train()
        # --init: a fine-tuning starts from every weight of a's
        w = a.save_weights(tmp_path / "a.pt", rec)
        d = maed_trainer(anny_body, vs, replace(cfg, init_weights=str(w)), tmp_path / "d", images)
        d.begin()
        for k, v in a.model.state_dict().items():
            assert torch.equal(v, d.model.state_dict()[k]), k
        first = load_regressor(anny_body, w).card
        assert first["init_card"] is None
        assert load_regressor(anny_body, d.save_weights(tmp_path / "d.pt", rec)).card["init_card"] == first
        with pytest.raises(ValueError, match="not the one trained"):
            maed_trainer(anny_body, vs, replace(cfg, init_weights=str(w), model=replace(SMALL, hidden=48)),
                         tmp_path / "e", images).begin()
    finally:
        tm.validation_windows = orig
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, c.model.state_dict()[k]), k


def test_gaps_in_a_track_are_frames_not_windows(anny_body, small, tmp_path):
    """A clip whose person is missed for a few frames: every found frame is estimated
    (the chunk with the gap goes frame by frame), none of the missed ones."""
    from hmrkit.eval.runner import EvalInputs, run_estimator

    est = _estimator(anny_body, small, tmp_path)
    obs = _sequence_obs(anny_body, 24)
    found = torch.ones(24, dtype=torch.bool)
    found[10:13] = False
    inputs = EvalInputs(obs.body, "mediapipe33", obs.K, None, found, obs.image_size, ((0, 24),))
    res = run_estimator(est, anny_body, inputs, batch=8)
    assert bool(res.valid[found].all()) and not bool(res.valid[~found].any())


def test_one_frame_video_through_hmrkit_run(anny_body, small, tmp_path):
    """``hmrkit run`` on a video stopped after one frame: a window of one, no crash."""
    from pathlib import Path

    from hmrkit.cli import main
    from hmrkit.models.weights import save_weights

    video = Path(__file__).parent / "data" / "videos" / "vtest_20f.avi"
    w = tmp_path / "maed.pt"
    save_weights(small.checkpoint({}), w)
    rc = main(["run", str(video), "--method", "maed", "--weights", str(w), "--max-frames", "1", "--no-overlay",
               "--out", str(tmp_path / "out")])
    assert rc == 0
    z = np.load(tmp_path / "out" / "vtest_20f.npz")
    assert z["valid"].shape[0] == 1

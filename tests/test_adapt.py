"""DynaBOA's online adaptation (``hmrkit.adapt``): the first-order bilevel update against a
hand-made one, the frames it must not learn from, reset and the shipped weights, the
stream schedule of ``hmrkit eval``, MAED's causal windows, the exemplar bank."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
import torch

from hmrkit.adapt import AdaptConfig, Adapted
from hmrkit.adapt.exemplars import ExemplarBank, build_bank, default_bank, load_bank, spherical_kmeans
from hmrkit.errors import InputError
from hmrkit.estimate import build, kinds, method_names, observation_from_arrays, with_adapt
from hmrkit.eval.specs import SyntheticSpec

QUIET = dict(exemplars=False, teacher=False, dynamic=False)  # the parts switched off


@pytest.fixture(scope="module")
def stream(anny_body):
    """A 24-frame held-out take seen from a high camera, with temporal detector noise."""
    from hmrkit.eval.protocols import build_synthetic

    spec = SyntheticSpec.parse("synthetic:sequences,library=streams,frames=24,temporal=1,n=1,shift=high")
    return spec, build_synthetic(anny_body, spec)


def frame(data, i: int, kp=None):
    x = data.inputs
    return observation_from_arrays(x.keypoints2d[i:i + 1] if kp is None else kp, x.convention, x.K[i:i + 1],
                                   image_size=x.image_size[i:i + 1], frame_index=[i])


def weights(est):
    return {k: v.clone() for k, v in est.net.module.state_dict().items()}


def same(a, b) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_names_and_kinds(anny_body):
    assert {"spin+adapt", "pare+adapt", "maed+adapt"} <= set(method_names())
    assert with_adapt("spin", True) == "spin+adapt" and with_adapt("spin", False) == "spin"
    for bad in ("fit", "spin+fit", "pixie"):
        with pytest.raises(InputError, match="--adapt adapts a regressor"):
            with_adapt(bad, True)
    est = build("spin+adapt", anny_body)
    assert est.name == "spin+adapt" and "stream" in kinds(est) and "window" not in kinds(est)
    assert est.evidence == build("spin", anny_body).evidence


def test_update_is_first_order_bilevel(anny_body, stream):
    """One update by hand: an SGD probe step on the frame's own loss, the upper loss's
    gradient at the probed weights, applied to the real weights by Adam (0.5, 0.9)."""
    _, data = stream
    cfg = replace(AdaptConfig(), lr=1e-3, lr_probe=0.05, w_motion=0.0, **QUIET)
    est = Adapted(build("spin", anny_body), cfg)
    obs = frame(data, 0)
    theta = [p.detach().clone() for p in est.params_list]
    est.history[0] = obs  # what step() does first

    def own_loss():
        _, head, inputs = est.net.encode_ending(est.net.module, est._runs([0]))
        return est._own_loss(est._frame_terms(inputs, head))

    g_low = torch.autograd.grad(own_loss(), est.params_list, allow_unused=True)
    with torch.no_grad():
        for p, g in zip(est.params_list, g_low):
            if g is not None:
                p.sub_(0.05 * g)
    g_up = torch.autograd.grad(own_loss(), est.params_list, allow_unused=True)
    model = torch.nn.ParameterList([torch.nn.Parameter(t.clone()) for t in theta])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for p, g in zip(model, g_up):
        p.grad = None if g is None else g.clone()
    opt.step()
    with torch.no_grad():
        for p, t in zip(est.params_list, theta):
            p.copy_(t)
    est.history.clear()
    est.step(obs)
    assert est.updates == 1
    moved = 0
    for p, want, t in zip(est.params_list, model, theta):
        torch.testing.assert_close(p.detach(), want.detach(), rtol=1e-5, atol=1e-7)
        moved += int(not torch.equal(p.detach(), t))
    assert moved > 0.5 * len(theta)  # the update did move the network


@pytest.mark.parametrize("every", [True, False])
def test_probe_on_every_update_or_only_the_first(anny_body, stream, monkeypatch, every):
    """Three updates on one frame (the dynamic criterion always met): each probes when
    ``probe_every_update``, else only the first; a probe is one gradient, an update's
    upper level another."""
    _, data = stream
    cfg = replace(AdaptConfig(), exemplars=False, teacher=False, dynamic_threshold=-1.0, max_extra_steps=2,
                  probe_every_update=every)
    est = Adapted(build("spin", anny_body), cfg)
    calls = []
    grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: (calls.append(1), grad(*a, **k))[1])
    est.step(frame(data, 0))
    assert est.updates == 3
    assert len(calls) == (6 if every else 4)


def test_replay_of_older_frames_adds_their_own_loss(anny_body, stream):
    """replay_frames=2: the update at frame 7 adds the mean own loss of two learned frames
    older than its motion frame (2): frames 0 and 1, the only ones. The gradient handed to
    Adam is checked against the hand-made one (probe rate 0: taken at the same weights)."""
    _, data = stream
    cfg = replace(AdaptConfig(), lr=1e-3, lr_probe=0.0, w_motion=0.0, replay=False, replay_frames=2, **QUIET)
    est = Adapted(build("spin", anny_body), cfg)
    for i in range(7):
        est.step(frame(data, i))
    assert [f for f, _ in est.past] == list(range(7))

    def own(runs):
        _, head, inputs = est.net.encode_ending(est.net.module, runs)
        terms = est._frame_terms(inputs, head)
        return [est._own_loss(terms, i) for i in range(len(runs))]

    obs = frame(data, 7)
    now = own([[obs]])[0]
    older = torch.stack(own([run for f, run in est.past if f < 2])).mean()
    want = torch.autograd.grad(now + older, est.params_list, allow_unused=True, retain_graph=True)
    plain = torch.autograd.grad(now, est.params_list, allow_unused=True)
    seen = []
    step = est.opt.step
    est.opt.step = lambda *a, **k: (seen.append([p.grad.clone() for p in est.params_list]), step(*a, **k))[1]
    est.step(obs)
    assert len(seen) == 1
    scale = max(float(g.abs().max()) for g in want)
    for g, w in zip(seen[0], want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5 * scale)
    assert max(float((w - p).abs().max()) for w, p in zip(want, plain)) > 0.01 * scale  # the replay counts


def test_bad_frames_are_not_learned_from(anny_body, stream):
    """A frame with nobody in it (no confident keypoint) and a wrong-person detection (the
    box three sides away) leave the weights as they were; the next good frame learns."""
    _, data = stream
    est = Adapted(build("spin", anny_body), replace(AdaptConfig(), lr=1e-4, **QUIET))
    for i in range(4):
        est.step(frame(data, i))
    assert est.updates == 4 and not est.skipped
    w = weights(est)
    other = data.inputs.keypoints2d[4:5].clone()
    on = other[0, :, 2] > 0
    side = float(other[0, on, 1].max() - other[0, on, 1].min())
    W = float(data.inputs.image_size[4, 1])
    centre = float(other[0, on, 0].mean())
    other[..., 0] += (1.2 if centre < W / 2 else -1.2) * side  # another person, in the image
    p = est.step(frame(data, 4, other))
    assert bool(p.valid[0]) and same(w, weights(est)) and est.skipped["box jumped"] == 1, est.skipped
    empty = data.inputs.keypoints2d[5:6].clone()
    empty[..., 2] = 0
    p = est.step(frame(data, 5, empty))
    assert not bool(p.valid[0]) and same(w, weights(est)) and est.skipped["too few confident keypoints"] == 1
    assert 5 not in est.history and 4 not in est.history  # never a motion-loss frame later
    est.step(frame(data, 6))
    assert est.updates == 5 and not same(w, weights(est))


def test_evidence_the_shipped_network_cannot_explain_is_skipped(anny_body, stream):
    _, data = stream
    est = Adapted(build("spin", anny_body), replace(AdaptConfig(), max_px_error=1e-6, **QUIET))
    est.step(frame(data, 0))
    assert est.updates == 0 and est.skipped["2D error over max_px_error"] == 1


def test_reset_restores_the_shipped_weights_and_nothing_is_written(anny_body, stream):
    from hmrkit.models.spin import default_weights

    _, data = stream
    path = default_weights("anny")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    est = Adapted(build("spin", anny_body), replace(AdaptConfig(), lr=1e-3, **QUIET))
    shipped = weights(est)
    first = est.step(frame(data, 0)).params.pose
    for i in range(1, 6):
        est.step(frame(data, i))
    assert not same(shipped, weights(est))
    est.reset()
    assert same(shipped, weights(est)) and not est.history
    torch.testing.assert_close(est.step(frame(data, 0)).params.pose, first)  # the same as a fresh start
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    fresh = build("spin", anny_body).predict(frame(data, 0)).params.pose
    base = Adapted(build("spin", anny_body), replace(AdaptConfig(), lr=0.0, lr_probe=0.0, **QUIET))
    torch.testing.assert_close(base.step(frame(data, 0)).params.pose, fresh)  # lr 0: the shipped regressor


def test_frames_must_come_in_order(anny_body, stream):
    _, data = stream
    est = Adapted(build("spin", anny_body), replace(AdaptConfig(), **QUIET))
    est.step(frame(data, 3))
    with pytest.raises(ValueError, match="must come in order"):
        est.step(frame(data, 2))


def test_eval_streams_each_clip_from_a_reset(anny_body):
    """``hmrkit eval`` steps each clip's frames in order after a reset: two clips in one set
    give what each gives alone, and a second run the same numbers."""
    from hmrkit.eval.loop import evaluate_synthetic
    from hmrkit.eval.protocols import build_synthetic

    spec = SyntheticSpec.parse("synthetic:sequences,library=streams,frames=12,temporal=1,n=2,shift=low")
    data = build_synthetic(anny_body, spec)
    est = Adapted(build("spin", anny_body), replace(AdaptConfig(), lr=1e-4, **QUIET))
    both = evaluate_synthetic(est, anny_body, spec, data=data).metrics["PA-MPJPE"]
    again = evaluate_synthetic(est, anny_body, spec, data=data).metrics["PA-MPJPE"]
    torch.testing.assert_close(both, again)
    second = replace(data, inputs=replace(data.inputs, clips=((12, 24),)))
    alone = evaluate_synthetic(est, anny_body, spec, data=second).metrics["PA-MPJPE"]
    torch.testing.assert_close(both[12:], alone[12:])
    assert est.frames == 24 * 2 + 12


def test_maed_adapts_on_causal_windows(anny_body, stream):
    """maed+adapt reads the window that ends at the current frame: with no learning its
    estimate is MAED's on that window's last frame."""
    _, data = stream
    base = build("maed", anny_body)
    est = Adapted(build("maed", anny_body), replace(AdaptConfig(), lr=0.0, lr_probe=0.0, **QUIET))
    assert est.net.window == base.window_size
    for i in range(20):
        p = est.step(frame(data, i))
    T = base.window_size
    win = observation_from_arrays(data.inputs.keypoints2d[20 - T:20], data.inputs.convention,
                                  data.inputs.K[20 - T:20], image_size=data.inputs.image_size[20 - T:20],
                                  frame_index=list(range(20 - T, 20)))
    with torch.no_grad():
        inputs = base.crop_inputs(win)
        head = base.model(inputs, T)
        want = base.model.params(anny_body, inputs, head)
    torch.testing.assert_close(p.params.pose[0], want.pose[-1], rtol=1e-4, atol=1e-5)
    learning = Adapted(build("maed", anny_body), replace(AdaptConfig(), lr=1e-4))
    for i in range(8):
        learning.step(frame(data, i))
    assert learning.updates >= 8


def test_spherical_kmeans_finds_known_clusters():
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(3, 16, generator=g), dim=-1)
    x = torch.cat([d + 0.05 * torch.randn(50, 16, generator=g) for d in dirs]) * 7.0  # scale is irrelevant
    centres, assign = spherical_kmeans(x, 3, seed=1)
    truth = torch.arange(3).repeat_interleave(50)
    for j in range(3):  # each true cluster is one found cluster, whose centre is its direction
        found = assign[truth == j]
        assert (found == found[0]).all()
        assert float(centres[found[0]] @ dirs[j]) > 0.99
    assert len(set(assign.tolist())) == 3


def test_bank_round_trip_and_fingerprint(anny_body, tmp_path):
    from hmrkit.models.weights import state_fingerprint

    spin = build("spin", anny_body)
    bank = build_bank(spin, "spin", n=300, k=4, per_cluster=2)
    assert len(bank) == 8 and sorted(set(bank.cluster.tolist())) == [0, 1, 2, 3]
    bank.save(tmp_path / "b.npz")
    back = ExemplarBank.load(tmp_path / "b.npz")
    torch.testing.assert_close(back.pose, bank.pose)
    assert back.card == bank.card and back.image_size == bank.image_size
    fp = state_fingerprint(spin.model.state_dict())
    assert load_bank("spin", anny_body, fp, tmp_path / "b.npz").network == fp
    with pytest.raises(InputError, match="other weights"):
        load_bank("spin", anny_body, "0" * 64, tmp_path / "b.npz")
    with pytest.raises(InputError, match="of spin on anny, not of maed"):
        load_bank("maed", anny_body, fp, tmp_path / "b.npz")
    # an exemplar is near its own cluster's centre
    feats, _ = Adapted(spin, replace(AdaptConfig(), exemplars=False)).net.encode_frames(
        spin.model, Adapted(spin, replace(AdaptConfig(), exemplars=False)).net.exemplar_inputs(
            bank.kp, bank.K, bank.image_size))
    assert [bank.nearest(f) for f in feats] == bank.cluster.tolist()


@pytest.mark.parametrize("method", ["spin", "pare", "maed"])
def test_shipped_banks_match_the_shipped_weights(anny_body, method):
    """Rebuild the bank (scripts/build_exemplars.py) whenever the weights change."""
    from hmrkit.models.weights import state_fingerprint

    est = build(method, anny_body)
    bank = load_bank(method, anny_body, state_fingerprint(est.model.state_dict()))
    assert bank.card["split"] == "train" and len(bank) == 128
    assert default_bank(method, "anny").stat().st_size < 400_000


def test_run_adapt_on_a_keypoint_video(anny_body, stream, tmp_path, capfd):
    """``hmrkit run --method spin --adapt`` on a keypoint video: every frame estimated by
    the adapted regressor; ``--adapt`` on a method that cannot adapt is a one-line error."""
    import numpy as np

    from conftest import one_line_error, run_cli
    from hmrkit.detect.readers import write_evidence_npz

    _, data = stream
    x = data.inputs
    T = 12
    path = write_evidence_npz(tmp_path / "clip.npz", x.keypoints2d[:T, None].numpy(), x.convention,
                              tuple(int(v) for v in x.image_size[0]), cam_K=x.K[:T].numpy(), fps=30)
    code, out, err = run_cli(capfd, "--keypoints", path, "--out", tmp_path / "out", "--method", "spin", "--adapt",
                             "--no-overlay")
    assert code == 0, err
    with np.load(tmp_path / "out" / "clip.npz", allow_pickle=False) as z:
        assert str(z["method"]) == "spin+adapt" and z["valid"].shape == (T, 1) and z["valid"].all()
        adapted = z["body_pose"][:, 0]
    code, out, err = run_cli(capfd, "--keypoints", path, "--out", tmp_path / "plain", "--method", "spin",
                             "--no-overlay")
    assert code == 0, err
    with np.load(tmp_path / "plain" / "clip.npz", allow_pickle=False) as z:
        plain = z["body_pose"][:, 0]
    # the video went through the stream (adapting) path, not the base's predict: the first
    # frame is already learned from, and the estimates drift apart as the network adapts
    d = np.abs(adapted - plain).reshape(T, -1).max(-1)
    assert d[0] > 0 and d[-1] > 1e-3
    code, out, err = run_cli(capfd, "--keypoints", path, "--out", tmp_path / "out2", "--method", "fit", "--adapt")
    assert code == 2
    one_line_error(err, "--adapt adapts a regressor")

"""hmrkit.train: the synthetic training set, SPIN's fit store, a smoke training run (SPIN's
objective on the shared Trainer) that is deterministic and resumes exactly."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from hmrkit.models.encoders import EncoderConfig
from hmrkit.train.data import TrainSetConfig, build_trainset, root_relative
from hmrkit.train.spin import FitStore, SpinTrainConfig, spin_trainer


@pytest.fixture(scope="module")
def tiny_set(anny_body):
    return build_trainset(anny_body, TrainSetConfig(n=48, seed=3, labelled=0.5))


def _config(**kw):
    base = SpinTrainConfig(steps=4, batch=12, val_n=8, val_every=2, fit_every=2, fit_body_iters=3,
                           fit_camera_iters=2, encoder=EncoderConfig(width=32, layers=1),
                           data=TrainSetConfig(n=48, seed=3, labelled=0.5))
    return replace(base, **kw)


def test_trainset_is_consistent(anny_body, tiny_set):
    ts = tiny_set
    assert len(ts) == 48 and 0 < int(ts.labelled.sum()) < 48
    from hmrkit.geometry.camera import project

    assert torch.allclose(project(ts.Xin, ts.K), ts.uv, atol=1e-3)
    # each sample's input keypoints: mediapipe33's own, or its convention's in the input
    # layout, with the slots it lacks keeping mediapipe33's point (confidence 0)
    mp = ts.convention == ts.conventions.index("mediapipe33")
    assert mp.any() and (~mp).any() and torch.equal(ts.Xin[mp], ts.X[mp])
    assert ts.present[mp].all() and not ts.present[~mp].all()
    assert torch.equal(ts.Xin[~mp][~ts.present[~mp]], ts.X[~mp][~ts.present[~mp]])
    assert (ts.det[..., 2][~ts.present] == 0).all()
    # detections: noisy but near the truth for most confident keypoints
    conf = ts.det[..., 2] > 0.5
    err = (ts.det[..., :2] - ts.uv).norm(dim=-1)[conf]
    assert err.median() < 25 and err.median() > 0
    # world landmarks: root-relative, noisy by about world3d_sigma per axis
    d = (ts.det3d[..., :3] - root_relative(ts.X))[ts.det3d[..., 3] > 0]
    assert 0.03 < float(d.std()) < 0.07
    again = build_trainset(anny_body, TrainSetConfig(n=48, seed=3, labelled=0.5))
    assert torch.equal(again.det, ts.det) and torch.equal(again.labelled, ts.labelled)


def test_fit_store_keeps_only_better_fits():
    s = FitStore(4, 2, 3)
    idx = torch.tensor([0, 2])
    eye = torch.eye(3).expand(2, 3, 3)
    better = s.update(idx, eye, eye[:, None].expand(2, 2, 3, 3), torch.ones(2, 3), torch.tensor([0.5, 0.2]))
    assert better.all() and s.err[0] == 0.5 and math.isinf(s.err[1])
    better = s.update(idx, eye, eye[:, None].expand(2, 2, 3, 3), torch.full((2, 3), 7.0), torch.tensor([0.6, 0.1]))
    assert better.tolist() == [False, True]
    assert s.shape[0, 0] == 1.0 and s.shape[2, 0] == 7.0 and s.err[2] == pytest.approx(0.1)


def test_smoke_training_is_deterministic_and_resumes(anny_body, tiny_set, tmp_path):
    cfg = _config()
    a = spin_trainer(anny_body, tiny_set, cfg, tmp_path / "a")
    rec = a.train()
    assert a.step == 4 and "val PA-MPJPE" in rec and "valid fits" in rec
    lines = (tmp_path / "a" / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [2, 4]
    fits = a.objective.fits
    assert (fits.err < math.inf).any()  # the loop stored fits of unlabelled samples
    assert torch.isinf(fits.err[tiny_set.labelled]).all()  # and none of labelled ones

    b = spin_trainer(anny_body, tiny_set, cfg, tmp_path / "b")
    b.train()
    for (k, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), k

    # stop after 2 steps, resume in a new trainer: the same weights as straight through
    c = spin_trainer(anny_body, tiny_set, cfg, tmp_path / "c")
    c.train(stop_at=2)
    d = spin_trainer(anny_body, tiny_set, cfg, tmp_path / "c")
    d.load(tmp_path / "c" / "last.pt")
    assert d.step == 2
    d.train()
    for (k, x), y in zip(a.model.state_dict().items(), d.model.state_dict().values()):
        assert torch.equal(x, y), k
    assert torch.equal(fits.err, d.objective.fits.err) and torch.equal(fits.pose, d.objective.fits.pose)
    ck = torch.load(tmp_path / "c" / "last.pt", weights_only=True)
    assert ck["format"] == "hmrkit-train-1" and ck["method"] == "spin" and ck["step"] == 4
    assert set(ck["objective"]) == {"fits"} and {"torch", "batches", "orders"} <= set(ck["rng"])


def test_loop_off_trains_without_fits(anny_body, tiny_set, tmp_path):
    t = spin_trainer(anny_body, tiny_set, _config(loop=False, steps=2), tmp_path)
    rec = t.train()
    assert torch.isinf(t.objective.fits.err).all() and "valid fits" not in rec


def test_training_reduces_the_loss(anny_body, tiny_set, tmp_path):
    torch.manual_seed(0)
    t = spin_trainer(anny_body, tiny_set, _config(loop=False, steps=70, lr=1e-3, val_every=70), tmp_path)
    first = [t.train_step()["loss"] for _ in range(5)]
    for _ in range(60):
        t.train_step()
    last = [t.train_step()["loss"] for _ in range(5)]
    assert sum(last) < 0.7 * sum(first)


def test_real_detections_join_as_unlabelled(anny_body, tiny_set, tmp_path):
    """hmrkit run outputs -> unlabelled samples that only the 2D loss and the loop see."""
    import numpy as np

    from hmrkit import conventions as C
    from hmrkit.errors import InputError
    from hmrkit.train.data import read_real_detections, with_real_detections

    T = 3
    kp = np.zeros((T, 1, len(C.HOLISTIC), 3), np.float32)
    kp[:, 0, :33] = tiny_set.det[:T].numpy()  # plausible detections
    K = tiny_set.K[:T].numpy()
    valid = np.array([[True], [False], [True]])
    np.savez(tmp_path / "clip.npz", evidence_keypoints2d=kp, evidence_convention=np.array("holistic"), cam_K=K,
             valid=valid)
    det, Kr = read_real_detections([tmp_path / "clip.npz"])
    assert det.shape == (2, 33, 3) and torch.equal(det, tiny_set.det[[0, 2]])
    assert torch.equal(Kr, tiny_set.K[[0, 2]])
    ts = with_real_detections(tiny_set, anny_body, det, Kr)
    assert len(ts) == len(tiny_set) + 2 and ts.is_real.sum() == 2 and not ts.labelled[-2:].any()
    t = spin_trainer(anny_body, ts, _config(steps=2, batch=len(ts), fit_every=1), tmp_path / "r")
    rec = t.train()
    assert torch.isfinite(torch.tensor(rec["train loss"]))
    assert torch.isfinite(t.objective.fits.err[-2:]).all()  # the loop fitted the real detections
    assert rec["real detections"] == 2
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(InputError, match="bad.npz"):
        read_real_detections([tmp_path / "bad.npz"])


def test_resume_with_other_flags_is_one_line(anny_body, tiny_set, tmp_path):
    from hmrkit.errors import InputError

    t = spin_trainer(anny_body, tiny_set, _config(loop=False, steps=2), tmp_path)
    t.train()
    other = spin_trainer(anny_body, tiny_set, _config(loop=False, steps=2, lr=1e-3), tmp_path)
    with pytest.raises(InputError, match="another configuration"):
        other.load(tmp_path / "last.pt")


def test_spin_batch_is_typed(anny_body, tiny_set, tmp_path):
    """SPIN's TrainBatch: the evidence, 2D targets (truth for labelled samples, detections
    for the others), 3D labels and pose/shape targets with their weights."""
    t = spin_trainer(anny_body, tiny_set, _config(loop=False, steps=1), tmp_path)
    b = t.objective.batch(0)
    B = 12
    assert b.indices.shape == (B,) and b.inputs.batch_size == B and b.evidence.lead == (B,)
    assert b.kp2d.shape == (B, 33, 2) and b.kp2d_conf.shape == (B, 33) and b.kp3d.shape == (B, 33, 3)
    lab = tiny_set.labelled[b.indices]
    assert torch.equal(b.labelled, lab) and torch.equal(b.params_weight, lab.float())
    assert torch.equal(b.kp2d[lab], tiny_set.uv[b.indices][lab])
    assert torch.equal(b.kp2d[~lab], tiny_set.det[b.indices][~lab][..., :2])
    assert b.params.batch_size == B and b.part_seg is None and b.time is None


def test_train_spin_writes_shipped_format_weights(anny_body, tmp_path, monkeypatch):
    """train_spin end to end (loop off, 2 steps): weights in hmrkit-weights-1 with a card,
    loadable as the regressor; resuming a finished run trains no more and rewrites them."""
    from hmrkit.models.spin import load_regressor
    from hmrkit.models.weights import load_weights
    from hmrkit.train.spin import train_spin

    monkeypatch.setenv("HMRKIT_CACHE", str(tmp_path / "cache"))
    cfg = _config(loop=False, steps=2)
    path = train_spin(anny_body, cfg, tmp_path / "run")
    w = load_weights(path, "spin", anny_body)
    assert w["format"] == "hmrkit-weights-1" and w["method"] == "spin" and w["body"] == "anny"
    assert set(w["config"]) == {"encoder", "head"} and w["config"]["encoder"]["width"] == 32
    for key in ("method", "seed", "steps", "loop", "data", "train_time_s", "val", "check"):
        assert key in w["card"], key
    model = load_regressor(anny_body, path)
    assert model.card["steps"] == 2 and model.card["loop"] is False
    again = train_spin(anny_body, cfg, tmp_path / "run", resume=True)
    assert again == path
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 1

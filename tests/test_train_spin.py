"""hmrkit.train: the synthetic training set, SPIN's fit store, a smoke training run that is
deterministic and resumes exactly."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from hmrkit.models.encoders import EncoderConfig
from hmrkit.train.data import TrainSetConfig, build_trainset, root_relative
from hmrkit.train.spin import FitStore, SpinTrainConfig, SpinTrainer


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

    assert torch.allclose(project(ts.X, ts.K), ts.uv, atol=1e-3)
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
    a = SpinTrainer(anny_body, tiny_set, cfg, tmp_path / "a")
    rec = a.train()
    assert a.step == 4 and "val PA-MPJPE" in rec and "valid fits" in rec
    lines = (tmp_path / "a" / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [2, 4]
    assert (a.fits.err < math.inf).any()  # the loop stored fits of unlabelled samples
    assert torch.isinf(a.fits.err[tiny_set.labelled]).all()  # and none of labelled ones

    b = SpinTrainer(anny_body, tiny_set, cfg, tmp_path / "b")
    b.train()
    for (k, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), k

    # stop after 2 steps, resume in a new trainer: the same weights as straight through
    c = SpinTrainer(anny_body, tiny_set, cfg, tmp_path / "c")
    c.train(stop_at=2)
    d = SpinTrainer(anny_body, tiny_set, cfg, tmp_path / "c")
    d.load(tmp_path / "c" / "last.pt")
    assert d.step == 2
    d.train()
    for (k, x), y in zip(a.model.state_dict().items(), d.model.state_dict().values()):
        assert torch.equal(x, y), k
    assert torch.equal(a.fits.err, d.fits.err)


def test_loop_off_trains_without_fits(anny_body, tiny_set, tmp_path):
    t = SpinTrainer(anny_body, tiny_set, _config(loop=False, steps=2), tmp_path)
    rec = t.train()
    assert torch.isinf(t.fits.err).all() and "valid fits" not in rec


def test_training_reduces_the_loss(anny_body, tiny_set, tmp_path):
    torch.manual_seed(0)
    t = SpinTrainer(anny_body, tiny_set, _config(loop=False, steps=40, lr=1e-3, val_every=40), tmp_path)
    first = [t.train_step()["loss"] for _ in range(5)]
    for _ in range(30):
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
    t = SpinTrainer(anny_body, ts, _config(steps=2, batch=len(ts), fit_every=1), tmp_path / "r")
    rec = t.train()
    assert torch.isfinite(torch.tensor(rec["train loss"]))
    assert torch.isfinite(t.fits.err[-2:]).all()  # the loop fitted the real detections
    assert rec["real detections"] == 2
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(InputError, match="bad.npz"):
        read_real_detections([tmp_path / "bad.npz"])


def test_resume_with_other_flags_is_one_line(anny_body, tiny_set, tmp_path):
    from hmrkit.errors import InputError

    t = SpinTrainer(anny_body, tiny_set, _config(loop=False, steps=2), tmp_path)
    t.train()
    other = SpinTrainer(anny_body, tiny_set, _config(loop=False, steps=2, lr=1e-3), tmp_path)
    with pytest.raises(InputError, match="another configuration"):
        other.load(tmp_path / "last.pt")

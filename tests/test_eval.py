"""hmrkit.eval: metric convention pins with hand-computed values, batch vs loop, an
independent PA-MPJPE, summaries and tables; SPIN-style 3DPW / H36M readers on small files
written here (SMPL ground truth from synthetic gendered SMPL files)."""

from __future__ import annotations

import math
import os
import zipfile

import numpy as np
import pytest
import roma
import torch

from hmrkit.conventions import H36M17
from hmrkit.errors import InputError
from hmrkit.eval import datasets as ds
from hmrkit.eval import metrics as M

DTYPES = [torch.float32, torch.float64]


def tol(dtype):
    """Tolerance in millimetres."""
    return 2e-3 if dtype == torch.float32 else 1e-9


def close(a, b, dtype):
    return abs(float(a) - float(b)) <= tol(dtype) * max(1.0, abs(float(b)))


# ----------------------------------------------------------------------------------------
# MPJPE


@pytest.mark.parametrize("dtype", DTYPES)
def test_mpjpe_pin_root_joint(dtype):
    # Two 2-joint skeletons; the prediction is shifted by 5 m and its second joint is 1 cm
    # off in y: after aligning joint 0 the errors are 0 and 10 mm.
    gt = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]], dtype=dtype)
    pred = gt + torch.tensor([5.0, 5.0, 5.0], dtype=dtype)
    pred[1, 1] += 0.01
    e = M.mpjpe(pred, gt, root_indices=(0,))
    assert e.dtype == dtype and e.shape == ()
    assert close(e, 5.0, dtype)  # (0 + 10) / 2
    assert close(M.mpjpe(pred, gt, root_indices=(0,), joint_mask=[False, True]), 10.0, dtype)
    # without alignment the 5 m shift dominates
    assert M.mpjpe(pred, gt, root_indices=None) > 8000


@pytest.mark.parametrize("dtype", DTYPES)
def test_mpjpe_pin_hip_midpoint_root(dtype):
    # head, left hip, right hip; the prediction is translated and its head is 3 cm higher.
    gt = torch.tensor([[0.0, 0.5, 0.0], [0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]], dtype=dtype)
    pred = gt + torch.tensor([1.0, 2.0, 3.0], dtype=dtype)
    pred[0, 1] += 0.03
    assert close(M.mpjpe(pred, gt, root_indices=(1, 2)), 10.0, dtype)  # (30 + 0 + 0) / 3
    # the choice matters: rooted at the head, both hips are 30 mm off
    assert close(M.mpjpe(pred, gt, root_indices=(0,)), 20.0, dtype)


def test_pelvis_indices():
    assert M.pelvis_indices("smpl24") == (0,)
    assert M.pelvis_indices("h36m17") == (0,)
    assert M.pelvis_indices("coco17") == (11, 12)
    assert M.pelvis_indices("openpose25") == (8,)
    assert sorted(M.pelvis_indices("j14")) == [2, 3]
    with pytest.raises(ValueError, match="root_indices"):
        M.pelvis_indices("hand21")


def test_mpjpe_shape_errors():
    with pytest.raises(ValueError, match=r"\(\.\.\., N, 3\)"):
        M.mpjpe(torch.zeros(4, 2), torch.zeros(4, 2), root_indices=(0,))
    with pytest.raises(ValueError, match="same shape"):
        M.mpjpe(torch.zeros(4, 3), torch.zeros(5, 3), root_indices=(0,))
    with pytest.raises(ValueError, match="joint_mask"):
        M.mpjpe(torch.zeros(4, 3), torch.zeros(4, 3), root_indices=(0,), joint_mask=[True, False])
    with pytest.raises(ValueError, match="out of range"):
        M.mpjpe(torch.zeros(4, 3), torch.zeros(4, 3), root_indices=(7,))


def test_mpjpe_no_valid_joint_is_nan():
    e = M.mpjpe(torch.rand(2, 4, 3), torch.rand(2, 4, 3), root_indices=(0,),
                joint_mask=torch.tensor([[True] * 4, [False] * 4]))
    assert not torch.isnan(e[0]) and torch.isnan(e[1])


# ----------------------------------------------------------------------------------------
# PA-MPJPE / PVE


@pytest.mark.parametrize("dtype", DTYPES)
def test_pa_mpjpe_similarity_copy_is_zero(dtype):
    g = torch.Generator().manual_seed(0)
    gt = torch.randn(17, 3, generator=g, dtype=dtype) * 0.3
    R = roma.random_rotmat(dtype=dtype)
    pred = 1.7 * gt @ R.T + torch.tensor([0.2, -1.0, 3.0], dtype=dtype)
    assert float(M.pa_mpjpe(pred, gt)) < tol(dtype)
    assert float(M.mpjpe(pred, gt, root_indices=(0,))) > 50.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_pa_mpjpe_pin(dtype):
    # A cross of half-width a in the xy plane; the prediction lifts two opposite points
    # by +e and the other two by -e. The best similarity keeps R = I and t = 0 and scales
    # by s = a^2 / (a^2 + e^2); every point is then off by a e / sqrt(a^2 + e^2).
    a, e = 0.1, 0.01
    gt = torch.tensor([[a, 0, 0], [-a, 0, 0], [0, a, 0], [0, -a, 0]], dtype=dtype)
    pred = gt.clone()
    pred[:, 2] = torch.tensor([e, e, -e, -e], dtype=dtype)
    expected = 1000 * a * e / math.sqrt(a * a + e * e)  # 9.9504 mm
    assert close(M.pa_mpjpe(pred, gt), expected, dtype)


def reconstruction_error_reference(pred, gt):
    """A slow, separate similarity Procrustes (Umeyama) per sample, numpy float64."""
    out = []
    for p, g in zip(pred, gt):
        mp, mg = p.mean(0), g.mean(0)
        P, G = p - mp, g - mg
        U, S, Vt = np.linalg.svd(P.T @ G)
        D = np.eye(3)
        D[2, 2] = np.sign(np.linalg.det(Vt.T @ U.T))
        R = Vt.T @ D @ U.T
        s = np.trace(np.diag(S) @ D) / (P ** 2).sum()
        aligned = s * P @ R.T + mg
        out.append(np.linalg.norm(aligned - g, axis=1).mean() * 1000)
    return np.array(out)


def test_pa_mpjpe_matches_reference():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(6, 14, 3)) * 0.3
    pred = gt + rng.normal(size=gt.shape) * 0.05
    ours = M.pa_mpjpe(torch.as_tensor(pred), torch.as_tensor(gt)).numpy()
    assert np.allclose(ours, reconstruction_error_reference(pred, gt), atol=1e-9)


def test_pa_mpjpe_mask_ignores_outlier():
    g = torch.Generator().manual_seed(2)
    gt = torch.randn(10, 3, generator=g, dtype=torch.float64)
    R = roma.random_rotmat(dtype=torch.float64)
    pred = 0.8 * gt @ R.T + 1.0
    pred[4] += 5.0  # a wild joint
    mask = torch.ones(10, dtype=torch.bool)
    mask[4] = False
    assert float(M.pa_mpjpe(pred, gt, joint_mask=mask)) < 1e-9
    assert float(M.pa_mpjpe(pred, gt)) > 100


@pytest.mark.parametrize("dtype", DTYPES)
def test_pve_pin(dtype):
    g = torch.Generator().manual_seed(3)
    gt = torch.randn(50, 3, generator=g, dtype=dtype)
    t = torch.tensor([0.5, -0.2, 2.0], dtype=dtype)
    pred = gt + t + torch.tensor([0.0, 0.01, 0.0], dtype=dtype)
    gt_root, pred_root = gt[:3].mean(0), gt[:3].mean(0) + t
    assert close(M.pve(pred, gt, pred_root, gt_root), 10.0, dtype)
    no_align = 1000 * float((t + torch.tensor([0.0, 0.01, 0.0], dtype=dtype)).norm())
    assert close(M.pve(pred, gt), no_align, dtype)
    R = roma.random_rotmat(dtype=dtype)
    assert float(M.pa_pve(0.9 * gt @ R.T + t, gt)) < tol(dtype)
    with pytest.raises(ValueError, match="both"):
        M.pve(pred, gt, pred_root, None)


# ----------------------------------------------------------------------------------------
# Acceleration


@pytest.mark.parametrize("dtype", DTYPES)
def test_accel_constant_velocity_is_zero(dtype):
    t = torch.arange(8, dtype=dtype)[:, None, None]
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(1, 5, 3, generator=g, dtype=dtype)
    v = torch.randn(1, 5, 3, generator=g, dtype=dtype) * 0.05
    pred = x0 + v * t
    gt = x0.expand(8, 5, 3).clone()  # static: also zero acceleration
    errors, kept = M.accel_error_per_window(pred, gt, root_indices=(0,))
    assert errors.shape == (6,) and kept.all()
    assert float(errors.abs().max()) < tol(dtype)
    assert float(M.acceleration(pred, root_indices=None).abs().max()) < tol(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_accel_pin_spike_and_step(dtype):
    # One joint, no root alignment, ground truth at rest.
    gt = torch.zeros(5, 1, 3, dtype=dtype)
    spike = gt.clone()
    spike[2, 0, 0] = 0.01  # one frame 1 cm off: second differences 10, -20, 10 mm
    errors, _ = M.accel_error_per_window(spike, gt, root_indices=None)
    assert torch.allclose(errors, torch.tensor([10.0, 20.0, 10.0], dtype=dtype), atol=tol(dtype))
    assert close(M.accel_error(spike, gt, root_indices=None), 40.0 / 3.0, dtype)
    step = gt.clone()
    step[2:, 0, 0] = 0.01  # a 1 cm jump that stays: 10, 10, 0
    assert close(M.accel_error(step, gt, root_indices=None), 20.0 / 3.0, dtype)

    # Root alignment: joint 0 is the root and moves at constant velocity in both; only
    # joint 1 of the prediction spikes. Mean over both joints halves the error.
    t = torch.arange(5, dtype=dtype)
    gt2 = torch.zeros(5, 2, 3, dtype=dtype)
    gt2[:, :, 2] = 0.1 * t[:, None]
    gt2[:, 1, 1] = 0.5
    pred2 = gt2.clone()
    pred2[2, 1, 0] += 0.01
    assert close(M.accel_error(pred2, gt2, root_indices=(0,)), 20.0 / 3.0, dtype)
    assert close(M.accel_error(pred2, gt2, root_indices=(0,), joint_mask=[False, True]), 40.0 / 3.0, dtype)


def test_accel_validity_drops_windows():
    gt = torch.zeros(5, 1, 3, dtype=torch.float64)
    pred = gt.clone()
    pred[2, 0, 0] = 0.01  # window errors 10, 20, 10
    last_invalid = torch.tensor([True, True, True, True, False])
    errors, kept = M.accel_error_per_window(pred, gt, None, valid=last_invalid)
    assert kept.tolist() == [True, True, False] and torch.isnan(errors[2])
    assert float(M.accel_error(pred, gt, None, valid=last_invalid)) == pytest.approx(15.0)
    first_invalid = torch.tensor([False, True, True, True, True])
    assert float(M.accel_error(pred, gt, None, valid=first_invalid)) == pytest.approx(15.0)
    middle_invalid = torch.tensor([True, True, False, True, True])  # every window touches frame 2
    assert torch.isnan(M.accel_error(pred, gt, None, valid=middle_invalid))


def test_accel_matches_hmmr_formula():
    """HMMR's compute_error_accel, written out here in numpy, with its vis handling."""
    rng = np.random.default_rng(5)
    gt = rng.normal(size=(12, 14, 3))
    pred = gt + rng.normal(size=gt.shape) * 0.02
    vis = rng.random(12) > 0.2
    accel_gt = gt[:-2] - 2 * gt[1:-1] + gt[2:]
    accel_pred = pred[:-2] - 2 * pred[1:-1] + pred[2:]
    normed = np.linalg.norm(accel_pred - accel_gt, axis=2)
    invis = ~vis
    new_vis = ~(invis | np.roll(invis, -1) | np.roll(invis, -2))[:-2]
    expected = np.mean(np.mean(normed[new_vis], axis=1)) * 1000
    ours = M.accel_error(torch.as_tensor(pred), torch.as_tensor(gt), None, valid=torch.as_tensor(vis))
    assert float(ours) == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------------------
# PCK


@pytest.mark.parametrize("dtype", DTYPES)
def test_pck_pin(dtype):
    gt = torch.zeros(4, 2, dtype=dtype)
    pred = torch.tensor([[6.0, 8.0],     # exactly at the threshold (10 px): correct
                         [3.0, 4.0],     # inside
                         [10.0, 0.5],    # outside
                         [0.0, 10.01]],  # just outside
                        dtype=dtype)
    p = M.pck2d(pred, gt, threshold=0.5, normalize=20.0)
    assert p.dtype == dtype and float(p) == 0.5
    assert float(M.pck2d(pred, gt, threshold=10.0)) == 0.5  # normalize 1: threshold in px
    visible = torch.tensor([True, True, False, True])
    assert float(M.pck2d(pred, gt, 0.5, 20.0, visible=visible)) == pytest.approx(2 / 3)
    # a per-sample normaliser: the second sample's box is twice as big
    both = M.pck2d(torch.stack([pred, pred]), torch.stack([gt, gt]), 0.5, torch.tensor([20.0, 40.0], dtype=dtype))
    assert both.tolist() == [0.5, 1.0]


def test_pck_normalisers():
    kp = torch.tensor([[10.0, 20.0], [40.0, 30.0], [25.0, 100.0], [500.0, 500.0]])
    assert float(M.bbox_size(kp, visible=[True, True, True, False])) == 80.0  # 30 x 80
    coco = torch.zeros(17, 2)
    coco[5] = torch.tensor([0.0, 0.0])   # left shoulder
    coco[12] = torch.tensor([30.0, 40.0])  # right hip
    assert float(M.torso_size(coco, "coco17")) == 50.0


# ----------------------------------------------------------------------------------------
# Batch vs loop


def test_batch_equals_loop():
    g = torch.Generator().manual_seed(6)
    B, T, J, V = 3, 6, 14, 40
    pred, gt = torch.randn(B, J, 3, generator=g), torch.randn(B, J, 3, generator=g)
    mask = torch.rand(B, J, generator=g) > 0.3
    pv, gv = torch.randn(B, V, 3, generator=g), torch.randn(B, V, 3, generator=g)
    ps, gs = torch.randn(B, T, J, 3, generator=g), torch.randn(B, T, J, 3, generator=g)
    valid = torch.rand(B, T, generator=g) > 0.2
    p2, g2 = torch.randn(B, J, 2, generator=g) * 50, torch.randn(B, J, 2, generator=g) * 50
    norm = torch.rand(B, generator=g) * 100 + 10
    cases = [
        (lambda i: M.mpjpe(pred[i], gt[i], (2, 3), mask[i]), M.mpjpe(pred, gt, (2, 3), mask)),
        (lambda i: M.pa_mpjpe(pred[i], gt[i], mask[i]), M.pa_mpjpe(pred, gt, mask)),
        (lambda i: M.pve(pv[i], gv[i], pred[i, 0], gt[i, 0]), M.pve(pv, gv, pred[:, 0], gt[:, 0])),
        (lambda i: M.pa_pve(pv[i], gv[i]), M.pa_pve(pv, gv)),
        (lambda i: M.accel_error(ps[i], gs[i], (0,), valid[i]), M.accel_error(ps, gs, (0,), valid)),
        (lambda i: M.pck2d(p2[i], g2[i], 0.2, norm[i]), M.pck2d(p2, g2, 0.2, norm)),
    ]
    for one, batched in cases:
        loop = torch.stack([one(i) for i in range(B)])
        assert batched.shape == (B,)
        assert torch.allclose(batched, loop, atol=1e-4, equal_nan=True)
    # any number of leading dimensions
    e = M.mpjpe(pred.reshape(1, B, J, 3).expand(2, B, J, 3), gt.expand(2, B, J, 3), (0,))
    assert e.shape == (2, B) and torch.allclose(e[1], M.mpjpe(pred, gt, (0,)))


# ----------------------------------------------------------------------------------------
# Joint sets


def test_to_joint_set():
    coco = torch.randn(2, 17, 3, dtype=torch.float64)
    h36m, mask = M.to_joint_set(coco, "coco17", "h36m17")
    assert h36m.shape == (2, 17, 3) and mask.dtype == torch.bool
    pelvis = H36M17.index("pelvis")
    assert mask[pelvis] and torch.allclose(h36m[:, pelvis], (coco[:, 11] + coco[:, 12]) / 2)
    assert not mask[H36M17.index("spine")] and not mask[H36M17.index("head_top")]
    assert torch.equal(h36m[:, H36M17.index("left_wrist")], coco[:, 9])

    smpl = torch.randn(24, 3)
    j14, mask14 = M.to_joint_set(smpl, "smpl24", "j14")
    assert j14.shape == (14, 3) and len(mask14) == 14
    assert torch.equal(j14[M.J14.index("right_ankle")], smpl[8])  # SMPL's right ankle is joint 8
    assert not mask14[M.J14.index("head_top")]  # SMPL's "head" joint is not the H36M head
    assert mask14[M.J14.index("thorax")]  # derived from the shoulders
    # masked MPJPE over what both sets share: one shared joint moved by 14 cm, among the
    # n shared joints, gives 140 / n mm; a joint outside the mask moves nothing
    moved = j14.clone()
    w = M.J14.index("left_wrist")
    moved[w, 0] += 0.14
    n = int(mask14.sum())
    assert float(M.mpjpe(j14, moved, M.pelvis_indices("j14"), mask14)) == pytest.approx(140.0 / n, rel=1e-4)
    out = j14.clone()
    out[M.J14.index("head_top"), 0] += 1.0
    assert float(M.mpjpe(j14, out, M.pelvis_indices("j14"), mask14)) == pytest.approx(0.0, abs=1e-4)


# ----------------------------------------------------------------------------------------
# Summaries and tables


def test_summarize_and_format_table():
    s = M.summarize({"mpjpe": torch.tensor([1.0, 2.0, 3.0, math.nan]), "pck": torch.tensor([[0.5, 1.0]])})
    assert s["mpjpe"] == M.MetricSummary(mean=2.0, median=2.0, std=math.sqrt(2 / 3), min=1.0, max=3.0,
                                         count=3, missing=1)
    assert s["pck"].median == 0.75 and s["pck"].count == 2
    table = M.format_table(
        [{"method": "spin", "PA-MPJPE": s["mpjpe"], "frames": 3},
         {"method": "fit|x", "PA-MPJPE": 59.21, "frames": None}],
        ["method", "PA-MPJPE", "frames"])
    assert table == (
        "| method | PA-MPJPE | frames |\n"
        "| ------ | -------: | -----: |\n"
        "| spin   |      2.0 |      3 |\n"
        "| fit\\|x |     59.2 |      - |"
    )


# ----------------------------------------------------------------------------------------
# SPIN joint tables


def test_spin_tables_agree():
    assert len(ds.SPIN_J24) == len(ds.SPIN_J24_LABELS) == 24
    assert ds.SPIN_J24_LABELS[12:19] == ("Neck (LSP)", "Top of Head (LSP)", "Pelvis (MPII)", "Thorax (MPII)",
                                         "Spine (H36M)", "Jaw (H36M)", "Head (H36M)")
    assert sorted(ds.SPIN_H36M17) == sorted(H36M17)
    # SPIN's datasets/preprocess/h36m.py stores its H36M joints in these J24 slots
    global_idx = [14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6]
    assert [ds.J24_TO_H36M17[H36M17.index(n)] for n in ds.SPIN_H36M17] == global_idx
    # position k of H36M_TO_J17 (regressor rows) and J24_TO_J17 (file slots) is one joint
    assert [ds.J24_TO_H36M17[H36M17.index(ds.SPIN_H36M17[i])] for i in ds.H36M_TO_J17] == list(ds.J24_TO_J17)
    assert tuple(ds.SPIN_H36M17[i] for i in ds.H36M_TO_J14) == M.J14
    assert ds.J24_TO_J14 == (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18)
    assert ds.J24_TO_H36M17 == (14, 2, 1, 0, 3, 4, 5, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6)


# ----------------------------------------------------------------------------------------
# 3DPW


@pytest.fixture(scope="module")
def smpl_dir(tmp_path_factory):
    from hmrkit.body.synthetic import write_synthetic_model

    root = tmp_path_factory.mktemp("smpl_gendered")
    write_synthetic_model(root / "SMPL_MALE.pkl", "smpl", "pkl", seed=11)
    write_synthetic_model(root / "SMPL_FEMALE.pkl", "smpl", "pkl", seed=12)
    return root


def write_3dpw(path, n=6, seed=0, **override):
    rng = np.random.default_rng(seed)
    data = dict(
        imgname=np.array(["imageFiles/courtyard_a/image_00000.jpg", "imageFiles/courtyard_a/image_00001.jpg",
                          "imageFiles/courtyard_a/image_00002.jpg", "imageFiles/courtyard_a/image_00000.jpg",
                          "imageFiles/courtyard_a/image_00001.jpg", "imageFiles/office_b/image_00005.jpg"][:n]),
        center=rng.uniform(200, 800, (n, 2)),
        scale=rng.uniform(1, 4, n),
        pose=rng.normal(0, 0.3, (n, 72)),
        shape=rng.normal(0, 1, (n, 10)),
        gender=np.array(["m", "m", "m", "f", "f", "m"][:n]),
    )
    data.update(override)
    data = {k: v for k, v in data.items() if v is not None}
    np.savez(path, **data)
    return data


def test_read_3dpw(tmp_path, smpl_dir):
    data = write_3dpw(tmp_path / "3dpw_test.npz")
    pw = ds.read_3dpw_test(tmp_path / "3dpw_test.npz")
    assert len(pw) == 6 and pw.pose_aa.shape == (6, 72) and pw.betas.shape == (6, 10)
    assert pw.gender.tolist() == ["m", "m", "m", "f", "f", "m"]
    assert np.array_equal(pw.pose_aa, data["pose"]) and np.array_equal(pw.center, data["center"])
    assert pw.sequence.tolist()[-1] == "office_b" and pw.frame.tolist() == [0, 1, 2, 0, 1, 5]
    assert [t.tolist() for t in pw.tracks()] == [[0, 1, 2], [3, 4], [5]]
    box = pw.bbox_xyxy
    assert np.allclose(box[:, 2] - box[:, 0], 200 * data["scale"])
    assert isinstance(ds.read_spin_npz(tmp_path / "3dpw_test.npz"), ds.PW3DTest)


def test_3dpw_ground_truth_gendered(tmp_path, smpl_dir):
    import smplx

    data = write_3dpw(tmp_path / "3dpw_test.npz")
    pw = ds.read_3dpw_test(tmp_path / "3dpw_test.npz")
    rng = np.random.default_rng(7)
    regressor = rng.uniform(0, 1, (17, 6890)) * (rng.uniform(0, 1, (17, 6890)) > 0.995)
    regressor /= regressor.sum(1, keepdims=True)
    np.save(tmp_path / "J_regressor_h36m.npy", regressor)
    gt = pw.ground_truth(smpl_dir, h36m_regressor=tmp_path / "J_regressor_h36m.npy", batch_size=2)
    assert gt.vertices.shape == (6, 6890, 3) and gt.joints.shape == (6, 24, 3) and gt.h36m17.shape == (6, 17, 3)

    # Independent: the smplx package with axis-angle input, as SPIN's eval.py calls it.
    for gender in ("male", "female"):
        ref = smplx.SMPL(model_path=str(smpl_dir), gender=gender, num_betas=10)
        rows = np.nonzero(data["gender"] == gender[0])[0]
        pose = torch.as_tensor(data["pose"][rows], dtype=torch.float32)
        out = ref(global_orient=pose[:, :3], body_pose=pose[:, 3:],
                  betas=torch.as_tensor(data["shape"][rows], dtype=torch.float32))
        assert (gt.vertices[rows] - out.vertices).abs().max() < 1e-5
        assert (gt.joints[rows] - out.joints[:, :24]).abs().max() < 1e-5
    # the other gender's model gives another mesh: the choice per row matters
    male = smplx.SMPL(model_path=str(smpl_dir), gender="male", num_betas=10)
    f = np.nonzero(data["gender"] == "f")[0]
    pose = torch.as_tensor(data["pose"][f], dtype=torch.float32)
    wrong = male(global_orient=pose[:, :3], body_pose=pose[:, 3:],
                 betas=torch.as_tensor(data["shape"][f], dtype=torch.float32)).vertices
    assert (gt.vertices[f] - wrong).abs().max() > 1e-3

    # H36M joints: SPIN's regressor rows, reordered to hmrkit's h36m17 by name
    spin = torch.einsum("kv,bvc->bkc", torch.as_tensor(regressor, dtype=torch.float32), gt.vertices)
    assert torch.allclose(gt.h36m17[:, H36M17.index("right_hip")], spin[:, 4], atol=1e-6)
    assert torch.allclose(gt.h36m17[:, H36M17.index("left_hip")], spin[:, 1], atol=1e-6)
    assert torch.allclose(gt.h36m17[:, 0], spin[:, 0], atol=1e-6)

    # a subset by index equals the same rows of the whole, and metrics run on it
    sub = pw.ground_truth(smpl_dir, index=[5, 3])
    assert torch.allclose(sub.vertices, gt.vertices[[5, 3]], atol=1e-6)
    assert float(M.pve(sub.vertices, gt.vertices[[5, 3]], sub.joints[:, 0], gt.joints[[5, 3], 0]).max()) < 1e-3


def test_3dpw_errors(tmp_path, smpl_dir):
    with pytest.raises(InputError, match="file not found") as err:
        ds.read_3dpw_test(tmp_path / "nope.npz")
    assert "\n" not in str(err.value) and "nope.npz" in str(err.value)
    write_3dpw(tmp_path / "a.npz", gender=None)
    with pytest.raises(InputError, match="missing key.*gender"):
        ds.read_3dpw_test(tmp_path / "a.npz")
    write_3dpw(tmp_path / "b.npz", pose=np.zeros((6, 69)))
    with pytest.raises(InputError, match=r"'pose' has shape \(6, 69\)"):
        ds.read_3dpw_test(tmp_path / "b.npz")
    write_3dpw(tmp_path / "c.npz", gender=np.array(["m", "x", "f", "f", "m", "m"]))
    with pytest.raises(InputError, match="'m' or 'f'"):
        ds.read_3dpw_test(tmp_path / "c.npz")
    write_3dpw(tmp_path / "d.npz", scale=np.ones(5))
    with pytest.raises(InputError, match="different numbers of rows"):
        ds.read_3dpw_test(tmp_path / "d.npz")
    (tmp_path / "e.npz").write_bytes(b"not an archive")
    with pytest.raises(InputError, match="not an npz"):
        ds.read_3dpw_test(tmp_path / "e.npz")
    pw = ds.read_3dpw_test(write_3dpw(tmp_path / "ok.npz") and tmp_path / "ok.npz")
    with pytest.raises(InputError, match="SMPL model file not found"):
        pw.ground_truth(tmp_path / "no_models")


class _Harmless:
    def __reduce__(self):
        return (os.getcwd, ())


def test_object_arrays_read_without_running_pickles(tmp_path):
    # older files store imgname/gender as pickled object arrays
    write_3dpw(tmp_path / "obj.npz", imgname=np.array(["imageFiles/s/image_00001.jpg"] * 6, dtype=object),
               gender=np.array(["m", "f", "m", "f", "m", "f"], dtype=object))
    pw = ds.read_3dpw_test(tmp_path / "obj.npz")
    assert pw.gender.tolist() == ["m", "f"] * 3 and pw.frame.tolist() == [1] * 6
    # a pickle that would call a function is refused
    write_3dpw(tmp_path / "evil.npz", imgname=np.array([_Harmless()] * 6, dtype=object))
    with zipfile.ZipFile(tmp_path / "evil.npz") as zf:
        assert b"getcwd" in zf.read("imgname.npy")
    with pytest.raises(InputError, match="will not load"):
        ds.read_3dpw_test(tmp_path / "evil.npz")


# ----------------------------------------------------------------------------------------
# Human3.6M


def write_h36m(path, n=4, part=False, seed=0):
    """S built as SPIN's h36m.py does: 17 joints in SPIN's H36M order, pelvis-centred,
    put in the J24 slots of its global_idx with confidence 1."""
    rng = np.random.default_rng(seed)
    S17 = rng.normal(0, 0.4, (n, 17, 3))
    S17 -= S17[:, :1]
    global_idx = [14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6]
    S24 = np.zeros((n, 24, 4))
    S24[:, global_idx, :3] = S17
    S24[:, global_idx, 3] = 1
    data = dict(imgname=np.array([f"images/S9_Walking.60457274_{i:06d}.jpg" for i in range(n)]),
                center=rng.uniform(300, 700, (n, 2)), scale=rng.uniform(2, 4, n), S=S24)
    if part:
        data["part"] = rng.uniform(0, 1000, (n, 24, 3))
    np.savez(path, **data)
    return S17, data


def test_read_h36m(tmp_path):
    S17, data = write_h36m(tmp_path / "h36m_valid_protocol2.npz")
    h = ds.read_h36m_valid(tmp_path / "h36m_valid_protocol2.npz")
    assert len(h) == 4 and h.protocol == 2 and h.part is None and h.S.shape == (4, 24, 4)
    joints, conf = h.h36m17(dtype=torch.float64)
    assert joints.shape == (4, 17, 3) and bool((conf == 1).all())
    for k, name in enumerate(H36M17):  # each hmrkit joint is SPIN's joint of that name
        assert np.allclose(joints[:, k].numpy(), S17[:, ds.SPIN_H36M17.index(name)])
    j14, conf14 = h.j14(dtype=torch.float64)
    assert torch.equal(j14, joints[:, [H36M17.index(n) for n in M.J14]]) and bool((conf14 == 1).all())
    assert float(joints[:, M.pelvis_indices("h36m17")[0]].abs().max()) == 0.0  # SPIN stores it pelvis-centred
    assert isinstance(ds.read_spin_npz(tmp_path / "h36m_valid_protocol2.npz"), ds.H36MValid)

    write_h36m(tmp_path / "h36m_valid_protocol1.npz", part=True)
    h1 = ds.read_h36m_valid(tmp_path / "h36m_valid_protocol1.npz")
    assert h1.protocol == 1 and h1.part.shape == (4, 24, 3)


def test_h36m_errors(tmp_path):
    np.savez(tmp_path / "x.npz", imgname=np.array(["a"]), center=np.zeros((1, 2)), scale=np.ones(1))
    with pytest.raises(InputError, match="missing key.*S"):
        ds.read_h36m_valid(tmp_path / "x.npz")
    np.savez(tmp_path / "y.npz", imgname=np.array(["a"]), center=np.zeros((1, 2)), scale=np.ones(1),
             S=np.zeros((1, 17, 3)))
    with pytest.raises(InputError, match=r"expected \(N, 24, 4\)"):
        ds.read_h36m_valid(tmp_path / "y.npz")
    with pytest.raises(InputError, match="is a folder"):
        ds.read_h36m_valid(tmp_path)


# ----------------------------------------------------------------------------------------
# Protocols: data specs, the synthetic sets, the 3DPW / H36M path (hmrkit.eval.protocols)

from dataclasses import replace  # noqa: E402

from hmrkit.eval import protocols as P  # noqa: E402
from hmrkit.types import BodyParams, Camera, Prediction  # noqa: E402


class Oracle:
    """An estimator that returns given parameters in call order (optionally changed by
    ``change(params, indices)``), marks the frames ``invalid`` as not valid, and records
    each call."""

    name = "oracle"
    window_size = 8

    def __init__(self, params, change=None, invalid=()):
        self.params, self.change, self.invalid = params, change, set(invalid)
        self.i, self.calls = 0, []

    def _answer(self, obs, init, smooth):
        obs = obs.flatten()
        B = obs.batch_size
        idx = list(range(self.i, self.i + B))
        self.i += B
        p = self.params[idx[0]:idx[-1] + 1]
        if self.change is not None:
            p = self.change(p, idx)
        kp, conv, k3 = obs.holistic()
        self.calls.append(dict(n=B, convention=conv, K=obs.K.clone(), init=init, kp3d=k3, smooth=smooth))
        valid = torch.tensor([i not in self.invalid for i in idx])
        return Prediction(params=p, camera=Camera(obs.K), valid=valid,
                          px_error=torch.where(valid, 0.0, float("nan")), method="oracle")

    def predict(self, obs, init=None):
        return self._answer(obs, init, smooth=False)

    def predict_window(self, obs, init=None):
        return self._answer(obs, init, smooth=True)


def turned(p: BodyParams, angle: float) -> BodyParams:
    """p with the body turned by ``angle`` radians about the camera's y axis (in place)."""
    R = roma.rotvec_to_rotmat(torch.tensor([0.0, angle, 0.0], dtype=p.global_orient.dtype))
    return replace(p, global_orient=R @ p.global_orient)


def bent_elbow(body, p: BodyParams, rows, angle: float = 0.6) -> BodyParams:
    """p with the left elbow of ``rows`` (positions in p) bent by ``angle`` more, about the
    elbow's own rest z axis (across the forearm of the rest pose, so the wrist always moves)."""
    j = body.pose_joint_names.index("left_elbow")
    pose = p.pose.clone()
    R = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.0, angle], dtype=pose.dtype))
    for r in rows:
        pose[r, j] = pose[r, j] @ R
    return replace(p, pose=pose)


def test_data_spec_parsing_defaults_and_names():
    f = P.parse_data_spec("synthetic:frames,n=5,noise=clean,world3d=0.05")
    assert (f.kind, f.n, f.noise, f.world3d, f.seed, f.batch) == ("frames", 5, "clean", 0.05, 2024, 8)
    assert f.name == "synthetic:frames,n=5,seed=2024,split=test,noise=clean,world3d=0.05"
    r = P.parse_data_spec("synthetic:rendered")
    assert (r.n, r.size, r.batch, r.backgrounds) == (32, 512, 8, None)
    assert r.name == "synthetic:rendered,n=32,seed=2024,size=512"
    s = P.parse_data_spec("synthetic:sequences,noise=clean,seed=3")
    assert (s.n, s.frames, s.batch, s.seed) == (4, 32, 8, 3)
    assert s.name == "synthetic:sequences,n=4,frames=32,seed=3,split=test,noise=clean"
    assert P.spec_frames(s) == 128 and P.spec_frames(r) == 32


def test_dataset_spec_parsing(tmp_path):
    d = P.parse_data_spec(f"3dpw:{tmp_path}/3dpw_test.npz,root={tmp_path},n=10,step=5")
    assert isinstance(d, P.DatasetSpec) and (d.kind, d.root, d.n, d.step, d.regressor) == ("3dpw", str(tmp_path), 10, 5, None)
    assert d.name == "3dpw:3dpw_test.npz,step=5,n=10"
    h = P.parse_data_spec(f"h36m:x.npz,root={tmp_path},regressor=J.npy")
    assert (h.kind, h.path, h.regressor, h.n) == ("h36m", "x.npz", "J.npy", None)


@pytest.mark.parametrize("text, message", [
    ("frames", "unknown data spec"),
    ("mpii:x.npz", "unknown data spec"),
    ("synthetic:", "name a kind"),
    ("synthetic:videos", "unknown synthetic set 'videos'"),
    ("synthetic:frames,n=x", "n='x' is not a int"),
    ("synthetic:frames,n=0", "n must be at least 1"),
    ("synthetic:frames,noise=heavy", "noise must be clean or realistic"),
    ("synthetic:rendered,noise=clean", "unknown key 'noise'"),  # the detector makes its noise
    ("synthetic:frames,frames=8", "unknown key 'frames'"),
    ("synthetic:sequences,frames=2", "frames must be at least 3"),
    ("synthetic:rendered,backgrounds=/no/such/dir", "background folder not found"),
    ("3dpw:x.npz", "add root=DIR"),
    ("h36m:x.npz,root=/no/such/dir", "root folder not found"),
    ("3dpw:,root=/tmp", "name the npz file"),
    ("3dpw:x.npz,root=/tmp,foo=1", "unknown key 'foo'"),
])
def test_data_spec_errors_are_one_line(text, message):
    with pytest.raises(InputError) as err:
        P.parse_data_spec(text)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_synthetic_sets_are_deterministic(anny_body):
    for text in ("synthetic:frames,n=3,world3d=0.05", "synthetic:sequences,n=2,frames=5"):
        spec = P.parse_data_spec(text)
        a, b = P.build_synthetic(anny_body, spec), P.build_synthetic(anny_body, spec)
        for name in ("global_orient", "pose", "shape", "transl"):
            assert torch.equal(getattr(a.params, name), getattr(b.params, name)), (text, name)
        assert torch.equal(a.inputs.keypoints2d, b.inputs.keypoints2d) and torch.equal(a.inputs.K, b.inputs.K)
        assert torch.equal(a.inputs.keypoints3d, b.inputs.keypoints3d) if a.inputs.keypoints3d is not None else True
        other = P.build_synthetic(anny_body, replace(spec, seed=spec.seed + 1))
        assert not torch.equal(other.params.pose, a.params.pose)
    # sequences: clips of consecutive frames with one shape each and smooth motion
    seq = P.build_synthetic(anny_body, P.parse_data_spec("synthetic:sequences,n=2,frames=5"))
    assert seq.inputs.clips == ((0, 5), (5, 10)) and len(seq.inputs) == 10
    assert torch.equal(seq.params.shape[0], seq.params.shape[4]) and not torch.equal(seq.params.shape[0], seq.params.shape[5])
    assert float((seq.params.transl[1:5] - seq.params.transl[:4]).norm(dim=-1).max()) < 0.1  # m per frame at 30 fps


def test_frames_oracle_is_exact_and_invalid_frames_are_left_out(anny_body):
    spec = P.parse_data_spec("synthetic:frames,n=4,batch=3,noise=clean")
    gt = P.build_synthetic(anny_body, spec).params
    res = P.evaluate_synthetic(Oracle(gt), anny_body, spec)
    assert res.frames == 4 and res.notes["joints"] == "coco17"
    for k in ("MPJPE", "PA-MPJPE", "PVE"):
        assert res.metrics[k].shape == (4,) and float(res.metrics[k].abs().max()) < 1e-2, k
    # frame 1 bent at the elbow, frame 2 turned half round, frame 3 not valid
    def change(p, idx):
        p = bent_elbow(anny_body, p, [i - idx[0] for i in idx if i == 1])
        if 2 in idx:
            k = idx.index(2)
            p = BodyParams.cat([p[:k], turned(p[k:k + 1], math.pi), p[k + 1:]]) if k + 1 < len(idx) else \
                BodyParams.cat([p[:k], turned(p[k:k + 1], math.pi)])
        return p

    oracle = Oracle(gt, change=change, invalid={3})
    res = P.evaluate_synthetic(oracle, anny_body, spec)
    m = res.metrics
    assert [c["n"] for c in oracle.calls] == [3, 1] and oracle.calls[0]["convention"] == "mediapipe33"
    assert [(c["init"], c["smooth"], c["kp3d"]) for c in oracle.calls] == [(None, False, None)] * 2
    assert float(m["MPJPE"][0]) < 1e-2 and float(m["MPJPE"][1]) > 5 and float(m["PA-MPJPE"][1]) > 1
    assert float(m["MPJPE"][2]) > 100 and float(m["PVE"][2]) > 50 and float(m["PA-MPJPE"][2]) < 1e-2
    assert bool(torch.isnan(m["MPJPE"][3])) and m["valid"].tolist() == [1, 1, 1, 0]
    s = M.summarize(m)
    assert s["MPJPE"].count == 3 and s["MPJPE"].missing == 1 and s["valid"].mean == 0.75


def test_sequences_chunks_smoothing_and_accel(anny_body):
    spec = P.parse_data_spec("synthetic:sequences,n=2,frames=7,batch=3,noise=clean")
    data = P.build_synthetic(anny_body, spec)
    oracle = Oracle(data.params)
    res = P.evaluate_synthetic(oracle, anny_body, spec)
    # each clip in chunks of 3, 3, 1 consecutive frames, smoothed, chained within a clip
    assert [c["n"] for c in oracle.calls] == [3, 3, 1, 3, 3, 1]
    assert all(c["smooth"] for c in oracle.calls)
    assert [c["init"] is None for c in oracle.calls] == [True, False, False, True, False, False]
    assert torch.equal(oracle.calls[1]["init"].pose[0], data.params.pose[2])  # the previous chunk's last frame
    assert torch.equal(oracle.calls[0]["K"], data.inputs.K[:3])
    acc = res.metrics["accel"]
    assert acc.shape == (2 * 5,) and float(acc.abs().max()) < 1e-2
    assert float(res.metrics["MPJPE"].abs().max()) < 1e-2
    # a spike at frame 3 of the first clip: the windows touching it (starting at 1, 2, 3) err
    spiked = P.evaluate_synthetic(Oracle(data.params, change=lambda p, idx: bent_elbow(
        anny_body, p, [i - idx[0] for i in idx if i == 3])), anny_body, spec).metrics["accel"]
    assert (spiked[[1, 2, 3]] > 1).all() and float(spiked[[0, 4, 5, 6, 7, 8, 9]].abs().max()) < 1e-2
    # a frame without a valid estimate (frame 2 of the second clip) drops the windows of
    # that clip starting at its frames 0, 1, 2
    dropped = P.evaluate_synthetic(Oracle(data.params, invalid={9}), anny_body, spec).metrics["accel"]
    assert torch.isnan(dropped[[5, 6, 7]]).all() and not torch.isnan(dropped[[0, 1, 2, 3, 4, 8, 9]]).any()


def test_rendered_set_runs_the_real_detector(anny_body):
    from hmrkit.fit import FitConfig, Fitter

    spec = P.parse_data_spec("synthetic:rendered,n=2,size=384,batch=2")
    fitter = Fitter(anny_body, FitConfig(camera_iters=5, body_iters=15, detail_iters=3))
    calls = []

    class Recorder:
        name = "recorder"

        def predict(self, obs, init=None):
            kp2d, convention, kp3d = obs.holistic()
            calls.append((convention, obs.K.clone(), kp2d.clone(), kp3d))
            return fitter.fit(kp2d, convention, obs.K, init=init, kp3d=kp3d)

    res = P.evaluate_synthetic(Recorder(), anny_body, spec)
    found = sum(c[1].shape[0] for c in calls)
    assert res.notes["nobody detected"] == f"{2 - found} of 2"
    s = M.summarize(res.metrics)
    assert s["valid"].count == 2 and s["MPJPE"].count + s["MPJPE"].missing == 2
    assert s["MPJPE"].count == round(2 * s["valid"].mean)
    from hmrkit.data.render_synthetic import generate

    truth = list(generate(anny_body, 2, seed=spec.seed, rendered=False, scene=P.rendered_scene(384),
                          conventions=("coco17",)))
    # (MediaPipe finds the first of these two people, not the second: both paths run)
    assert found >= 1
    if found:  # MediaPipe's holistic keypoints on the render, its world landmarks, the scene's K
        conv, K, kp, k3 = calls[0]
        assert conv == "holistic" and kp.shape[1] == 33 + 42 + len(__import__("hmrkit").conventions.FACE)
        assert k3 is not None and k3.shape[:2] == kp.shape[:2]
        assert any(torch.allclose(K[0], t.K.to(K.dtype)) for t in truth)
        # the detected body keypoints lie near the true ones (same person, same image)
        i = next(i for i, t in enumerate(truth) if torch.allclose(K[0], t.K.to(K.dtype)))
        gt = truth[i].keypoints2d["coco17"]
        from hmrkit import conventions as C

        det = torch.as_tensor(C.convert_with_confidence(kp[0, :33].numpy(), "mediapipe33", "coco17"))
        ok = (det[:, 2] > 0.5) & (gt[:, 2] > 0)
        assert float((det[ok, :2] - gt[ok, :2]).norm(dim=-1).median()) < 0.1 * 384


class BoxDetector:
    """A stand-in detector: in each image it is given, one person whose keypoints spread
    over the middle third of the image (or nobody for the images in ``blank``, told apart by
    their mean value); records the image sizes it saw."""

    def __init__(self, blank_value=None):
        self.blank_value, self.seen = blank_value, []

    def detect(self, image):
        from hmrkit.conventions import HOLISTIC
        from hmrkit.types import Evidence

        H, W = image.shape[:2]
        self.seen.append((H, W))
        if self.blank_value is not None and abs(float(image.mean()) - self.blank_value) < 1:
            return []
        g = np.random.default_rng(0)
        kp = np.zeros((len(HOLISTIC), 3), np.float32)
        kp[:, 0] = g.uniform(W / 3, 2 * W / 3, len(kp))
        kp[:, 1] = g.uniform(H / 3, 2 * H / 3, len(kp))
        kp[:, 2] = 1.0
        box = np.array([W / 3, H / 3, 2 * W / 3, 2 * H / 3], np.float32)
        return [Evidence((H, W), kp, "holistic", box, keypoints3d=np.zeros((len(kp), 4), np.float32))]

    def close(self):
        pass


def test_match_detection_and_crop_mapping():
    from hmrkit.types import Evidence

    def ev(x0, y0, x1, y1):
        kp = np.array([[x0, y0, 1.0], [x1, y1, 1.0], [(x0 + x1) / 2, (y0 + y1) / 2, 1.0], [0, 0, 0]], np.float32)
        return Evidence((500, 500), kp, "coco17", np.array([x0, y0, x1, y1], np.float32))

    a, b = ev(100, 100, 200, 300), ev(300, 100, 400, 300)
    assert P.match_detection([a, b], [290, 90, 410, 310]) is b
    assert P.match_detection([a, b], [95, 95, 205, 305]) is a
    assert P.match_detection([a], [300, 100, 400, 300]) is None  # someone else
    # the crop: the detector sees the box grown by 20% per side, keypoints come back in
    # full-image pixels, inside the box
    det = BoxDetector()
    image = np.zeros((480, 640, 3), np.uint8)
    out = P.detect_in_box(det, image, [200, 100, 300, 400])
    assert det.seen == [(int(400 + 0.2 * 300) - int(100 - 0.2 * 300), int(300 + 0.2 * 100) - int(200 - 0.2 * 100))]
    assert out is not None and out.image_size == (480, 640)
    xy = out.keypoints2d[:, :2]
    assert (xy[:, 0] >= 200).all() and (xy[:, 0] <= 300).all() and (xy[:, 1] >= 100).all() and (xy[:, 1] <= 400).all()


@pytest.fixture(scope="module")
def smpl_models(tmp_path_factory):
    """Synthetic official-format SMPL files: male, female and neutral."""
    from hmrkit.body.synthetic import write_synthetic_model

    root = tmp_path_factory.mktemp("smpl_models")
    for gender, seed in (("MALE", 11), ("FEMALE", 12), ("NEUTRAL", 13)):
        write_synthetic_model(root / f"SMPL_{gender}.pkl", "smpl", "pkl", seed=seed)
    return root


def write_3dpw_renders(root, smpl_dir, seeds=(0, 2), blank=True, image_size=(480, 640), turn=0.0):
    """A tiny 3DPW test set in SPIN's format under ``root``: the synthetic male SMPL body
    (arms out, slightly bent elbows, ``turn`` radians from facing the camera) rendered 3 m
    in front of ``default_intrinsics`` with the backgrounds of ``seeds`` (render_sample),
    one row per render, then a blank grey image (nobody) when ``blank``. center/scale from
    the projected coco17 keypoints' box (x 1.2), as SPIN's preprocessing. Returns
    (npz path, ground-truth BodyParams of the rows, camera frame, the blank value)."""
    from PIL import Image

    import hmrkit.body
    from hmrkit.data import render_synthetic as RS
    from hmrkit.geometry import rotmat_to_aa
    from hmrkit.geometry.camera import default_intrinsics, project

    male = hmrkit.body.load("smpl", model_path=smpl_dir, gender="male")
    H, W = image_size
    K = default_intrinsics(H, W)
    folder = root / "imageFiles" / "courtyard_x"
    folder.mkdir(parents=True, exist_ok=True)
    rows = {k: [] for k in ("imgname", "center", "scale", "pose", "shape", "gender")}
    params = []
    for i, seed in enumerate(list(seeds) + (["blank"] if blank else [])):
        p = turned(male.mean_params(1), turn)
        p = replace(p, global_orient=torch.diag(torch.tensor([1.0, -1.0, -1.0]))[None] @ p.global_orient,
                    transl=torch.tensor([[0.05 * i, 0.1, 3.0]]))
        p = bent_elbow(male, p, [0], 0.3)
        p = replace(p, shape=torch.full_like(p.shape, 0.3 * (i + 1)))
        name = f"imageFiles/courtyard_x/image_{i:05d}.jpg"
        if seed == "blank":
            img = np.full((H, W, 3), 128, np.uint8)
        else:
            img = RS.render_sample(male, p, K, (H, W), seed=seed).rgb
        Image.fromarray(img).save(root / name, quality=95)
        with torch.no_grad():
            uv = project(male.keypoints(male(p), "coco17"), K[None])[0].numpy()
        lo, hi = uv.min(0), uv.max(0)
        rows["imgname"].append(name)
        rows["center"].append((lo + hi) / 2)
        rows["scale"].append(1.2 * float((hi - lo).max()) / 200)
        rows["pose"].append(rotmat_to_aa(torch.cat([p.global_orient[:, None], p.pose], 1))[0].reshape(-1).numpy())
        rows["shape"].append(p.shape[0].numpy())
        rows["gender"].append("m")
        params.append(p)
    path = root / "3dpw_test.npz"
    np.savez(path, **{k: np.array(v) for k, v in rows.items()})
    return path, BodyParams.cat(params), 128.0


def test_3dpw_oracle_is_exact_with_pve_and_regressor(tmp_path, smpl_models):
    import hmrkit.body

    path, gt, blank = write_3dpw_renders(tmp_path, smpl_models, seeds=(0, 2), blank=True)
    male = hmrkit.body.load("smpl", model_path=smpl_models, gender="male")
    det = BoxDetector(blank_value=blank)
    # the 3DPW ground truth has no translation: the oracle's (the renders') must not matter
    spec = P.parse_data_spec(f"3dpw:{path},root={tmp_path},batch=2")
    res = P.evaluate_dataset(Oracle(gt), male, spec, model_path=smpl_models, detector=det)
    m = res.metrics
    assert res.frames == 3 and m["valid"].tolist() == [1, 1, 0] and res.notes["nobody detected"] == "1"
    assert res.notes["joints"] == "j14 (coco17 keypoints, 13 of 14)" and res.notes["PVE"] == "SMPL mesh"
    for k in ("MPJPE", "PA-MPJPE", "PVE"):
        assert float(m[k][:2].abs().max()) < 1e-2 and bool(torch.isnan(m[k][2])), k
    # the detector saw crops around each row's box (grown by 20% per side), not whole images
    z = np.load(path)
    for (h, w), c, sc in zip(det.seen, z["center"], z["scale"]):
        half = 100 * sc * 1.4
        x0, x1 = max(0, math.floor(c[0] - half)), min(640, math.ceil(c[0] + half))
        y0, y1 = max(0, math.floor(c[1] - half)), min(480, math.ceil(c[1] + half))
        assert (h, w) == (y1 - y0, x1 - x0) and w < 640
    # with SPIN's H36M regressor both sides use it: all 14 joints
    g = np.random.default_rng(3)
    reg = g.uniform(0, 1, (17, 6890)) * (g.uniform(0, 1, (17, 6890)) > 0.99)
    np.save(tmp_path / "J_regressor_h36m.npy", reg / reg.sum(1, keepdims=True))
    spec_r = P.parse_data_spec(f"3dpw:{path},root={tmp_path},regressor={tmp_path}/J_regressor_h36m.npy")
    turned_oracle = Oracle(gt, change=lambda p, idx: turned(p, 0.5))
    res = P.evaluate_dataset(turned_oracle, male, spec_r, model_path=smpl_models, detector=BoxDetector(blank))
    assert res.notes["joints"] == "j14 (H36M regressor)"
    m = res.metrics
    # (a random regressor's joints lie near the body's middle: a turn moves them little)
    assert (m["MPJPE"][:2] > 5).all() and float(m["PA-MPJPE"][:2].abs().max()) < 1e-2 and (m["PVE"][:2] > 20).all()
    # the ground truth is the subject's gendered model: the female model's mesh differs
    female = hmrkit.body.load("smpl", model_path=smpl_models, gender="female")
    res = P.evaluate_dataset(Oracle(gt), female, spec, model_path=smpl_models, detector=BoxDetector(blank))
    assert (res.metrics["PVE"][:2] > 1).all()


def test_3dpw_anny_prediction_has_no_pve(tmp_path, smpl_models, anny_body):
    path, gt, blank = write_3dpw_renders(tmp_path, smpl_models, seeds=(0,), blank=False)
    mean = anny_body.mean_params(1)
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0]))[None]
    oracle = Oracle(replace(mean, global_orient=flip, transl=torch.tensor([[0.0, 0.1, 3.0]])))
    res = P.evaluate_dataset(oracle, anny_body, P.parse_data_spec(f"3dpw:{path},root={tmp_path}"),
                             model_path=smpl_models, detector=BoxDetector())
    assert "PVE" not in res.metrics and res.notes["PVE"].startswith("not comparable")
    assert res.notes["joints"] == "j14 (coco17 keypoints, 13 of 14)"
    # against a slow reference: 13 named joints of each model's coco17 keypoints, the
    # thorax the shoulders' midpoint, rooted at the hips' midpoint
    import hmrkit.body
    from hmrkit.conventions import COCO17

    male = hmrkit.body.load("smpl", model_path=smpl_models, gender="male")
    with torch.no_grad():
        pred = anny_body.keypoints(anny_body(oracle.params), "coco17")[0].double().numpy()
        g = replace(gt, transl=torch.zeros_like(gt.transl))
        ref = male.keypoints(male(g), "coco17")[0].double().numpy()

    def j13(k):
        c = {n: k[COCO17.index(n)] for n in COCO17}
        names = [f"{s}_{j}" for s in ("right", "left") for j in ("ankle", "knee", "hip", "wrist", "elbow", "shoulder")]
        x = np.stack([c[n] for n in names] + [(c["left_shoulder"] + c["right_shoulder"]) / 2])
        return x - (c["left_hip"] + c["right_hip"]) / 2

    expected = 1000 * np.linalg.norm(j13(pred) - j13(ref), axis=1).mean()
    assert float(res.metrics["MPJPE"][0]) == pytest.approx(expected, rel=1e-4)
    assert expected > 10 and 0 < float(res.metrics["PA-MPJPE"][0]) < 1000


def test_h36m_oracle_regressor_and_keypoint_paths(tmp_path, smpl_models):
    import hmrkit.body

    male = hmrkit.body.load("smpl", model_path=smpl_models, gender="male")
    path3, gt, _ = write_3dpw_renders(tmp_path, smpl_models, seeds=(0, 2), blank=False)
    g = np.random.default_rng(4)
    reg = g.uniform(0, 1, (17, 6890)) * (g.uniform(0, 1, (17, 6890)) > 0.99)
    reg /= reg.sum(1, keepdims=True)
    np.save(tmp_path / "J_regressor_h36m.npy", reg)
    # S as SPIN's h36m.py writes it: the regressor's 17 joints (SPIN order), pelvis-centred,
    # in their J24 slots with confidence 1
    with torch.no_grad():
        v = male(gt).vertices.numpy()
    S17 = np.einsum("kv,bvc->bkc", reg, v)
    S17 -= S17[:, :1]
    S24 = np.zeros((2, 24, 4))
    S24[:, [14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6], :3] = S17
    S24[:, [14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6], 3] = 1
    z = np.load(path3)
    np.savez(tmp_path / "h36m_valid_protocol2.npz", imgname=z["imgname"], center=z["center"], scale=z["scale"], S=S24)
    h = f"h36m:{tmp_path}/h36m_valid_protocol2.npz,root={tmp_path}"
    res = P.evaluate_dataset(Oracle(gt), male, P.parse_data_spec(h + f",regressor={tmp_path}/J_regressor_h36m.npy"),
                             detector=BoxDetector())
    assert res.notes["joints"] == "j14 (H36M regressor)" and "PVE" not in res.metrics
    assert float(res.metrics["MPJPE"].abs().max()) < 1e-2 and float(res.metrics["PA-MPJPE"].abs().max()) < 1e-2
    # without the regressor the prediction's coco17 keypoints stand in: 13 joints, not exact
    res = P.evaluate_dataset(Oracle(gt), male, P.parse_data_spec(h), detector=BoxDetector())
    assert res.notes["joints"] == "j14 (coco17 keypoints, 13 of 14)"
    assert (res.metrics["MPJPE"] > 1).all()


def test_dataset_errors(tmp_path, smpl_models):
    path, gt, _ = write_3dpw_renders(tmp_path, smpl_models, seeds=(0,), blank=False)
    (tmp_path / "other").mkdir()
    with pytest.raises(InputError, match="image not found; root=") as err:
        P.read_dataset(P.parse_data_spec(f"3dpw:{path},root={tmp_path / 'other'}"))
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="SMPL model file not found.*3DPW's ground truth"):
        P.evaluate_dataset(Oracle(gt), None, P.parse_data_spec(f"3dpw:{path},root={tmp_path}"),
                           model_path=tmp_path / "no_models", detector=BoxDetector())
    with pytest.raises(InputError, match="file not found"):
        P.read_dataset(P.parse_data_spec(f"3dpw:{tmp_path}/nope.npz,root={tmp_path}"))


def test_rendered_sequences_run_mediapipe_in_video_mode(anny_body):
    """synthetic:sequences,render=1: the clip's frames rendered and seen by MediaPipe
    Holistic in video mode; ground truth fixed by the seed, evidence holistic with world
    landmarks, the clip kept as one run of frames."""
    from hmrkit.eval.protocols import build_synthetic

    spec = P.parse_data_spec("synthetic:sequences,n=1,frames=4,render=1,size=256")
    assert spec.name == "synthetic:sequences,n=1,frames=4,seed=2024,split=test,render=1,size=256"
    a = build_synthetic(anny_body, spec)
    assert a.inputs.convention == "holistic" and a.inputs.clips == ((0, 4),)
    assert a.inputs.keypoints2d.shape[:2] == (4, 116) and a.image_size == (256, 256)
    assert int(a.inputs.found.sum()) >= 3  # a whole, lit, unoccluded person
    plain = build_synthetic(anny_body, P.parse_data_spec("synthetic:sequences,n=1,frames=4"))
    assert torch.equal(a.params.pose, plain.params.pose)  # the same motion as the keypoint set
    with pytest.raises(InputError, match="MediaPipe's own"):
        P.parse_data_spec("synthetic:sequences,render=1,world3d=0.05")

"""PARE: the part-attention regressor (shapes, softmax, no weight sharing, batch = loop),
its training pieces (part maps splatted against the renderer, crop resampling,
occluders and truncation, a smoke run that resumes exactly, the segmentation switch),
the occluded eval sets, the occlusion sensitivity on a known-truth detector, the CLI's
one-line errors and the shipped weights against their card."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from hmrkit.data.synthetic import in_boxes, in_frame, sample_occluders, sample_truncation
from hmrkit.models.inputs import crop_inputs
from hmrkit.models.pare import PareConfig, PareRegressor, mask_in_crop
from hmrkit.train.data import TrainSetConfig, build_trainset
from hmrkit.train.pare import PareTrainConfig, crop_labels, pare_trainer, reference_part_maps
from hmrkit.train.spin import SpinTrainConfig

SMALL = PareConfig(width=16, part_width=8, joint_hidden=8, hidden=32)


def _inputs(B=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand(B, 33, 3, generator=g) * torch.tensor([300.0, 500.0, 1.0]) + torch.tensor([100.0, 50.0, 0.0])
    K = torch.tensor([[600.0, 0, 320], [0, 600.0, 320], [0, 0, 1]]).expand(B, 3, 3)
    return crop_inputs(kp, K, "mediapipe33")


@pytest.fixture(scope="module")
def small_model(anny_body):
    torch.manual_seed(0)
    return PareRegressor(anny_body, SMALL).eval()


def test_attention_is_a_spatial_softmax_per_part(small_model):
    out = small_model(_inputs())
    V = SMALL.volume
    assert out.parts.shape == (4, 23, V, V) and out.attention.shape == (4, 22, V, V)
    assert torch.allclose(out.attention.sum((-1, -2)), torch.ones(4, 22), atol=1e-5)
    assert out.features.shape == (4, 22, SMALL.part_width)
    # the part feature is the attention-weighted volume
    f = (out.attention.flatten(2) @ out.volume.flatten(2).transpose(1, 2))
    assert torch.allclose(f, out.features, atol=1e-5)
    assert out.head.pose.shape == (4, 21, 3, 3) and out.head.global_orient.shape == (4, 3, 3)


def test_starts_at_the_mean_facing_the_camera(small_model):
    from hmrkit.models.hmr_head import CV_FROM_BODY

    out = small_model(_inputs())
    assert torch.allclose(out.head.global_orient, CV_FROM_BODY.expand(4, 3, 3), atol=0.05)
    assert torch.allclose(out.head.pose, torch.eye(3).expand(4, 21, 3, 3), atol=0.05)


def test_part_regressors_share_no_weights(anny_body):
    torch.manual_seed(1)
    m = PareRegressor(anny_body, SMALL)
    out = m(_inputs())
    out.head.pose[:, 3].sum().backward()  # pose joint 3 = part 4 (left_knee)
    g = m.joint_mlp[0].weight.grad  # (P, in, hidden)
    assert g[4].abs().sum() > 0
    assert torch.count_nonzero(torch.cat([g[:4], g[5:]])) == 0


def test_batch_equals_loop(small_model, anny_body):
    inp = _inputs(5, seed=3)
    with torch.no_grad():
        full = small_model.params(anny_body, inp)
        for i in range(5):
            one = replace(inp, kp=inp.kp[i:i + 1], kp3d=None, center=inp.center[i:i + 1], size=inp.size[i:i + 1],
                          K=inp.K[i:i + 1], bbox_info=inp.bbox_info[i:i + 1])
            p = small_model.params(anny_body, one)
            assert torch.allclose(p.pose[0], full.pose[i], atol=1e-5)
            assert torch.allclose(p.transl[0], full.transl[i], atol=1e-4)


def test_weights_round_trip(small_model, anny_body, tmp_path):
    from hmrkit.models.pare import load_regressor
    from hmrkit.models.weights import save_weights

    path = save_weights(small_model.checkpoint({"note": "test"}), tmp_path / "pare_anny.pt")
    again = load_regressor(anny_body, path)
    inp = _inputs()
    with torch.no_grad():
        assert torch.equal(again(inp).head.pose, small_model(inp).head.pose)
    from hmrkit.errors import InputError

    with pytest.raises(InputError, match="not 'spin'"):
        from hmrkit.models.spin import load_regressor as load_spin

        load_spin(anny_body, path)


def test_mask_in_crop_resamples_the_mask_box():
    from hmrkit.models.inputs import crop_mask

    H = W = 200
    yy, xx = np.mgrid[0:H, 0:W]
    mask = ((xx > 60) & (xx < 140) & (yy > 30) & (yy < 180)).astype(np.float32)
    box = (100.0, 100.0, 200.0)  # the whole image
    M = crop_mask(mask, box[:2], box[2], 200)
    crop = mask_in_crop(torch.tensor(M)[None], torch.tensor([box]), torch.tensor([[100.0, 110.0]]),
                        torch.tensor([120.0]), 32)[0]
    direct = crop_mask(mask, (100.0, 110.0), 120.0, 32)
    assert (crop.numpy().round() != direct).mean() < 0.03


def test_splatted_part_maps_match_the_renderer(anny_body):
    pytest.importorskip("pyrender")
    from hmrkit.data.render_synthetic import face_part_labels, render_part_seg, splat_part_labels
    from hmrkit.data.synthetic import SceneConfig, sample_scenes
    from hmrkit.geometry.camera import project

    sc = sample_scenes(anny_body, 3, seed=5, config=SceneConfig(split="val", image_size=(256, 256)))
    with torch.no_grad():
        out = anny_body(sc.params)
    uv = project(out.vertices, sc.K)
    lo, hi = uv.min(1).values, uv.max(1).values
    c, side = (lo + hi) / 2, (hi - lo).max(-1).values * 1.2
    R = 32
    lab = splat_part_labels(anny_body, out.vertices, sc.K, c, side, R)
    for i in range(3):
        seg = render_part_seg(out.vertices[i].numpy(), anny_body.faces.numpy(), face_part_labels(anny_body),
                              sc.K[i].numpy(), sc.image_size)  # -1 background
        # the render's label of each cell: background when no pixel of it is covered (a
        # splatted cell is covered when any vertex falls in it), else the most common part
        edges = c[i].numpy()[:, None] + (np.arange(R + 1) / R - 0.5)[None] * side[i].item()  # (2, R+1)
        ref = np.zeros((R, R), int)
        for y in range(R):
            for x in range(R):
                y0, y1 = np.clip(np.round(edges[1, y:y + 2]).astype(int), 0, 256)
                x0, x1 = np.clip(np.round(edges[0, x:x + 2]).astype(int), 0, 256)
                cell = seg[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)].ravel() + 1
                fg = cell[cell > 0]
                ref[y, x] = np.bincount(fg, minlength=23).argmax() if fg.size else 0
        a, b = lab[i].numpy() > 0, ref > 0
        iou = (a & b).sum() / (a | b).sum()
        agree = (lab[i].numpy() == ref)[a & b].mean()
        assert iou > 0.75 and agree > 0.7, (iou, agree)  # cells of ~8 px: part boundaries differ


def test_crop_labels_resample_the_reference():
    ref = torch.arange(16 * 16).reshape(1, 16, 16) % 23
    c, s = torch.tensor([[50.0, 80.0]]), torch.tensor([64.0])
    assert torch.equal(crop_labels(ref, c, s, c, s, 16)[0], ref[0])
    half = crop_labels(ref, c, s, c, s / 2, 8)[0]  # the central half at the same cell size
    assert torch.equal(half, ref[0, 4:12, 4:12])
    off = crop_labels(ref, c, s, c + 1000, s, 4)
    assert (off == 0).all()


def test_occluders_and_truncation_are_seeded_and_in_range():
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(400, 33, 2, generator=g) * torch.tensor([100.0, 300.0]) + 50
    valid = torch.ones(33, dtype=torch.bool)
    occ = sample_occluders(uv, valid, torch.Generator().manual_seed(1), 0.5)
    none = torch.isnan(occ).any(-1)
    assert 0.4 < float(none.float().mean()) < 0.6
    again = sample_occluders(uv, valid, torch.Generator().manual_seed(1), 0.5)
    assert torch.equal(torch.nan_to_num(occ), torch.nan_to_num(again))
    b = occ[~none]
    c = (b[:, :2] + b[:, 2:]) / 2
    assert ((c >= 49) & (c <= torch.tensor([151.0, 351.0]))).all()  # centred inside the person's box
    assert not in_boxes(uv[none], occ[none]).any()
    edge = sample_truncation(uv, valid, torch.Generator().manual_seed(2), 1.0)
    proj = (uv * edge[:, None, :2]).sum(-1)  # along the edge's normal
    lo, hi = proj.min(1).values, proj.max(1).values
    cut = (edge[:, 2] - lo) / (hi - lo)
    assert float(cut.min()) >= 0.2 - 1e-5 and float(cut.max()) <= 0.5 + 1e-5  # 20-50 % of the box cut off
    assert torch.equal(in_frame(uv, edge), proj >= edge[:, None, 2])
    bottom = (edge[:, 1] == -1).float().mean()
    assert 0.3 < float(bottom) < 0.5  # the bottom side twice as often as each other side
    assert in_frame(uv, torch.full((400, 3), float("nan"))).all()


@pytest.fixture(scope="module")
def tiny_set(anny_body):
    return build_trainset(anny_body, TrainSetConfig(n=40, seed=4, labelled=1.0))


def _config(**kw):
    spin = SpinTrainConfig(steps=4, batch=8, val_n=8, val_every=2, loop=False, data=TrainSetConfig(n=40, seed=4,
                                                                                                   labelled=1.0))
    return replace(PareTrainConfig(spin=spin, model=SMALL, seg_steps=2, ref_resolution=32), **kw)


@pytest.fixture(scope="module")
def tiny_parts(anny_body, tiny_set):
    return reference_part_maps(anny_body, tiny_set, 32, 1.3)


def test_pare_batch_has_aligned_part_labels_and_mask(anny_body, tiny_set, tiny_parts, tmp_path):
    from hmrkit.models.inputs import to_crop

    t = pare_trainer(anny_body, tiny_set, _config(p_occluder=1.0), tmp_path, tiny_parts)
    b = t.objective.batch(0)
    V = SMALL.volume
    assert b.part_seg.shape == (8, V, V) and b.mask.shape == (8, SMALL.map_resolution, SMALL.map_resolution)
    assert 0 <= int(b.part_seg.min()) and int(b.part_seg.max()) <= 22
    # the hips' true projection falls on a pelvis / thigh cell of the crop's part map
    uv = to_crop(tiny_set.uv[b.indices], b.inputs)  # [-1, 1]
    hip = 0.5 * (uv[:, 23] + uv[:, 24])
    cell = ((hip + 1) / 2 * V).long().clamp(0, V - 1)
    lab = b.part_seg[torch.arange(8), cell[:, 1], cell[:, 0]]
    assert (torch.isin(lab, torch.tensor([1, 2, 3, 4]))).float().mean() >= 0.75
    # every person has an occluder, and no mask cell under it
    occ = t.objective._occ
    assert torch.isfinite(occ).all()


def test_pare_smoke_training_switches_segmentation_off_and_resumes(anny_body, tiny_set, tiny_parts, tmp_path):
    cfg = _config()
    a = pare_trainer(anny_body, tiny_set, cfg, tmp_path / "a", tiny_parts)
    logs = [a.train_step() for _ in range(4)]
    assert [x["seg on"] for x in logs] == [1.0, 1.0, 0.0, 0.0]
    assert all(np.isfinite(x["loss"]) and np.isfinite(x["seg"]) for x in logs)
    c = pare_trainer(anny_body, tiny_set, cfg, tmp_path / "c", tiny_parts)
    c.train(stop_at=2)
    d = pare_trainer(anny_body, tiny_set, cfg, tmp_path / "c", tiny_parts)
    d.load(tmp_path / "c" / "last.pt")
    rec = d.train()
    for (k, x), y in zip(a.model.state_dict().items(), d.model.state_dict().values()):
        assert torch.equal(x, y), k
    assert "val occluded PA-MPJPE" in rec and "val coco17 PA-MPJPE" in rec
    w = d.weights(rec)
    assert w["method"] == "pare" and w["card"]["config"]["seg_steps"] == 2
    other = pare_trainer(anny_body, tiny_set, replace(cfg, seg_steps=3), tmp_path / "c", tiny_parts)
    from hmrkit.errors import InputError

    with pytest.raises(InputError, match="another configuration"):
        other.load(tmp_path / "c" / "last.pt")


def test_occluded_frames_set(anny_body):
    from hmrkit.eval.sets import build_synthetic
    from hmrkit.eval.specs import SyntheticSpec
    from hmrkit.errors import InputError

    spec = SyntheticSpec.parse("synthetic:frames,n=12,occlusion=1,truncation=1")
    assert spec.name.endswith("occlusion=1,truncation=1")
    base = build_synthetic(anny_body, SyntheticSpec.parse("synthetic:frames,n=12"))
    zero = build_synthetic(anny_body, SyntheticSpec.parse("synthetic:frames,n=12,occlusion=0"))
    occ = build_synthetic(anny_body, spec)
    assert torch.equal(base.inputs.keypoints2d, zero.inputs.keypoints2d)
    c0, c1 = base.inputs.keypoints2d[..., 2], occ.inputs.keypoints2d[..., 2]
    assert float((c1 > 0).float().mean()) < float((c0 > 0).float().mean()) - 0.1
    with pytest.raises(InputError, match="probability"):
        SyntheticSpec.parse("synthetic:frames,occlusion=2")


class _TruthDetector:
    """A detector that sees the synthetic person's exact keypoints, missing where the image
    is grey (the patch) -- the known truth the sensitivity must recover."""

    def __init__(self, kp, grey=128):
        self.kp, self.grey = kp, grey

    def detect(self, image):
        from hmrkit.types import Evidence

        kp = self.kp.copy()
        x = np.clip(kp[:, 0].astype(int), 0, image.shape[1] - 1)
        y = np.clip(kp[:, 1].astype(int), 0, image.shape[0] - 1)
        hidden = (image[y, x] == self.grey).all(-1)
        kp[hidden, 2] = 0
        ok = kp[:, 2] > 0
        box = np.array([*kp[ok, :2].min(0), *kp[ok, :2].max(0)], np.float32)
        return [Evidence(image.shape[:2], kp.astype(np.float32), "mediapipe33", box)]


def test_occlusion_sensitivity_on_a_known_truth_detector(anny_body):
    from hmrkit.data.synthetic import NoiseConfig, SceneConfig, keypoints2d, sample_scenes
    from hmrkit.estimate import build
    from hmrkit.eval.occlusion import OcclusionConfig, occlusion_sensitivity, sensitivity_figure

    sc = sample_scenes(anny_body, 1, seed=11, config=SceneConfig(image_size=(256, 256), yaw_deg=30, split="val"))
    kp = keypoints2d(anny_body, sc, "mediapipe33", NoiseConfig.clean())[0].numpy()
    image = np.full((256, 256, 3), 60, np.uint8)
    det = _TruthDetector(kp)
    est = build("spin", anny_body)
    res = occlusion_sensitivity(image, sc.K[0].numpy(), est, anny_body, det, OcclusionConfig(patch=40, stride=40))
    assert res.change.shape[-1] == 22 and res.ran.any() and not res.ran.all()  # only near the person
    covers = np.zeros_like(res.ran)
    for i, y in enumerate(res.ys):
        for j, x in enumerate(res.xs):
            inside = (kp[:, 0] >= x) & (kp[:, 0] < x + 40) & (kp[:, 1] >= y) & (kp[:, 1] < y + 40) & (kp[:, 2] > 0)
            covers[i, j] = inside.any()
    o = res.overall
    assert np.allclose(o[res.ran & ~covers], 0, atol=1e-3)  # nothing hidden: the estimate cannot move
    assert (o[res.ran & covers] > 1.0).mean() > 0.8  # hidden keypoints move it
    fig = sensitivity_figure(image, res)
    assert fig.ndim == 3 and fig.shape[1] > 7 * 200


def test_occlusion_cli_one_line_errors(capfd, tmp_path):
    from PIL import Image

    from hmrkit.cli import main
    from conftest import one_line_error

    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 300, 3), 200, np.uint8)).save(blank)
    capfd.readouterr()
    assert main(["occlusion", str(blank), "--method", "spin", "--patch", "250", "--out", str(tmp_path)]) == 1
    one_line_error(capfd.readouterr().err.splitlines(), "larger than the image", "300 x 200")
    assert main(["occlusion", str(blank), "--method", "spin", "--out", str(tmp_path)]) == 1
    err = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("hmrkit:")]
    one_line_error(err, "nobody detected")


def test_shipped_weights_reach_their_card(anny_body):
    from hmrkit.models.pare import default_weights, load_regressor
    from hmrkit.train.spin import check_figure

    path = default_weights("anny")
    assert path.exists(), "pare_anny.pt ships with hmrkit (scripts/train_pare.sh)"
    model = load_regressor(anny_body)
    card = model.card["check"]
    got = check_figure(model, anny_body)
    assert got["set"] == card["set"]
    assert abs(got["PA-MPJPE"] - card["PA-MPJPE"]) < 1.0 and abs(got["coco17 PA-MPJPE"] - card["coco17 PA-MPJPE"]) < 1.0


def test_pare_estimator_reads_the_mask(anny_body):
    from hmrkit.estimate import build, evidence_used
    from hmrkit.estimate.base import Refined
    from hmrkit.types import Evidence, Observation

    est = build("pare", anny_body)
    assert "mask" in evidence_used(est) and isinstance(build("pare+fit", anny_body), Refined)
    from hmrkit.data.synthetic import NoiseConfig, SceneConfig, keypoints2d, sample_scenes

    sc = sample_scenes(anny_body, 2, seed=12, config=SceneConfig(image_size=(256, 256), split="val"))
    kp = keypoints2d(anny_body, sc, "mediapipe33", NoiseConfig.clean()).numpy()
    evs = [Evidence((256, 256), kp[i].astype(np.float32), "mediapipe33", np.array([0, 0, 255, 255], np.float32))
           for i in range(2)]
    plain = est.predict(Observation.from_evidence(evs, sc.K.numpy()))
    masked = [replace(e, mask=np.ones((256, 256), np.float32)) for e in evs]
    withm = est.predict(Observation.from_evidence(masked, sc.K.numpy()))
    assert plain.valid.all() and withm.valid.all()
    assert not torch.allclose(plain.params.pose, withm.params.pose)  # the mask is read
    assert plain.features.volume.shape[-1] == 16


def test_pare_on_an_smpl_body(tmp_path):
    """The same network on an SMPL body (a synthetic file in the official format): 23
    regressed joints, the hands reading their wrists' parts, 10 unclamped betas."""
    import hmrkit.body
    from hmrkit.body.synthetic import write_synthetic_model

    body = hmrkit.body.load("smpl", model_path=write_synthetic_model(tmp_path / "SMPL_NEUTRAL.pkl", "smpl"))
    model = PareRegressor(body, SMALL).eval()
    assert len(model.joint_index) == 23
    hands = [model.joint_names.index(n) + 1 for n in ("left_hand", "right_hand")]
    from hmrkit.data.render_synthetic import PART_NAMES

    assert [PART_NAMES[int(model.joint_part[i])] for i in hands] == ["left_wrist", "right_wrist"]
    with torch.no_grad():
        p = model.params(body, _inputs(2))
    assert p.pose.shape == (2, body.num_pose_joints, 3, 3) and p.shape.shape == (2, body.num_shape)
    assert torch.isfinite(body(p).vertices).all()


def test_paste_occluder_paints_only_its_box():
    from hmrkit.eval.sets import paste_occluder
    from hmrkit.eval.specs import SyntheticSpec

    img = np.zeros((60, 80, 3), np.uint8)
    out = paste_occluder(img, (10.2, 5.0, 30.0, 50.0), np.random.default_rng(0))
    inside = np.zeros((60, 80), bool)
    inside[5:50, 10:30] = True
    assert (out[~inside] == 0).all() and (out[inside] > 0).mean() > 0.95
    assert out[inside].std() > 3  # textured, not a flat test patch
    assert np.array_equal(paste_occluder(img, (-50, -50, -10, -10), np.random.default_rng(0)), img)
    spec = SyntheticSpec.parse("synthetic:rendered,n=4,occlusion=0.5")
    assert spec.occlusion == 0.5 and spec.name.endswith("occlusion=0.5")


def test_eval_inputs_carry_the_mask_to_the_estimator(anny_body):
    """Rendered eval sets pass MediaPipe's person mask on as ``hmrkit run`` does: the
    same square crop of it as ``Observation.from_evidence``; PARE reads it."""
    from hmrkit.data.synthetic import NoiseConfig, SceneConfig, keypoints2d, sample_scenes
    from hmrkit.estimate import build
    from hmrkit.eval.detection import inputs_from_evidence
    from hmrkit.eval.runner import run_estimator
    from hmrkit.types import Evidence, Observation

    sc = sample_scenes(anny_body, 2, seed=13, config=SceneConfig(image_size=(256, 256), split="val"))
    kp = keypoints2d(anny_body, sc, "mediapipe33", NoiseConfig.clean()).numpy()
    full = np.zeros((256, 256), np.float32)
    full[40:220, 90:170] = 1.0
    evs = [Evidence((256, 256), kp[i].astype(np.float32), "mediapipe33", np.array([60, 20, 200, 240], np.float32),
                    mask=full) for i in range(2)]
    inputs = inputs_from_evidence(evs + [None], torch.cat([sc.K, sc.K[:1]]))
    ref = Observation.from_evidence(evs, sc.K.numpy())
    assert inputs.mask.shape == (3,) + tuple(ref.mask.shape[1:])
    assert torch.equal(inputs.mask[:2], ref.mask) and torch.equal(inputs.mask_box[:2], ref.mask_box)
    est = build("pare", anny_body)
    with_mask = run_estimator(est, anny_body, inputs, 8)
    without = run_estimator(est, anny_body, replace(inputs, mask=None, mask_box=None), 8)
    assert with_mask.valid[:2].all() and not with_mask.valid[2]
    assert not torch.allclose(with_mask.joints[:2], without.joints[:2])
    # without masks in the evidence there are none in the inputs
    assert inputs_from_evidence([replace(e, mask=None) for e in evs], sc.K).mask is None

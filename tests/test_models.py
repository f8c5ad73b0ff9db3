"""hmrkit.models: crop inputs, evidence maps, encoders, the IEF head, SPIN's regressor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmrkit import conventions as C
from hmrkit.errors import InputError
from hmrkit.geometry.camera import project
from hmrkit.models import (
    INPUT_CONVENTION, CropInputs, EncoderConfig, HMRHead, SpinRegressor, crop_inputs, evidence_maps,
    head_to_params,
)
from hmrkit.models.hmr_head import CV_FROM_BODY, HeadOutput
from hmrkit.models.inputs import crop_mask, keypoint_box, to_input_convention


def _kp(B=3, K=33, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = 200 + 300 * torch.rand(B, K, 2, generator=g)
    conf = torch.rand(B, K, 1, generator=g)
    return torch.cat([xy, conf], -1)


def _K(B=3, f=800.0, cx=320.0, cy=240.0):
    K = torch.zeros(B, 3, 3)
    K[:, 0, 0] = K[:, 1, 1] = f
    K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = cx, cy, 1.0
    return K


def test_keypoint_box_pin():
    kp = torch.zeros(1, 4, 3)
    kp[0, :, :2] = torch.tensor([[100.0, 50.0], [300.0, 150.0], [200.0, 100.0], [9999.0, 9999.0]])
    kp[0, :, 2] = torch.tensor([1.0, 0.9, 0.5, 0.1])  # the last is below 0.2: ignored
    center, size = keypoint_box(kp)
    assert torch.allclose(center, torch.tensor([[200.0, 100.0]]))
    assert torch.allclose(size, torch.tensor([240.0]))  # 1.2 x the larger extent (200)
    center, size = keypoint_box(torch.zeros(1, 4, 3))  # nothing confident
    assert size.item() == 256.0


def test_crop_inputs_normalise_and_cliff_info():
    kp, K = _kp(), _K()
    inp = crop_inputs(kp, K)
    conf = kp[..., 2] * (kp[..., 2] >= 0.2)
    assert torch.equal(inp.kp[..., 2], conf)
    seen = conf > 0
    assert inp.kp[..., :2][seen].abs().max() <= 1 / 1.2 + 1e-5  # inside the 1.2x box
    assert (inp.kp[..., :2][~seen] == 0).all()
    back = inp.kp[..., :2] * 0.5 * inp.size[:, None, None] + inp.center[:, None]
    assert torch.allclose(back[seen], kp[..., :2][seen], atol=1e-3)
    f = 800.0
    expect = torch.stack([(inp.center[:, 0] - 320) / f, (inp.center[:, 1] - 240) / f, inp.size / f], -1)
    assert torch.allclose(inp.bbox_info, expect)


def test_keypoints_outside_the_image_are_missing():
    kp = torch.tensor([[[10.0, 10.0, 0.9], [700.0, 10.0, 0.9], [10.0, -5.0, 0.9], [100.0, 200.0, 0.9]]])
    full = torch.zeros(1, 33, 3)
    full[:, :4] = kp
    inp = crop_inputs(full, _K(1), image_wh=torch.tensor([[640.0, 480.0]]))
    assert inp.kp[0, :4, 2].tolist() == pytest.approx([0.9, 0.0, 0.0, 0.9])
    assert crop_inputs(full, _K(1)).kp[0, :4, 2].tolist() == pytest.approx([0.9] * 4)  # no image size: kept


def test_input_convention_from_holistic_and_coco():
    hol = torch.rand(2, len(C.HOLISTIC), 3)
    kp, _ = to_input_convention(hol, "holistic")
    assert torch.equal(kp, hol[:, :33])
    coco = torch.rand(2, 17, 3) + 0.5
    kp, k3 = to_input_convention(coco, "coco17", torch.rand(2, 17, 4))
    names = C.get(INPUT_CONVENTION).names
    assert kp.shape == (2, 33, 3) and k3.shape == (2, 33, 4)
    assert torch.allclose(kp[:, names.index("left_knee")], coco[:, C.COCO17.index("left_knee")])
    assert (kp[:, names.index("left_pinky"), 2] == 0).all()  # COCO has no pinky
    assert (k3[:, names.index("left_pinky"), 3] == 0).all()


def test_evidence_maps_match_a_direct_evaluation():
    """The separable heat maps and the broadcast limb maps equal a direct, per-pixel
    evaluation of the same Gaussians (of the distance to the keypoint, and to the segment)."""
    from hmrkit import conventions as C

    g = torch.Generator().manual_seed(5)
    kp = torch.rand(3, 33, 3, generator=g) * torch.tensor([300.0, 400.0, 1.0])
    inp = crop_inputs(kp, _K(3))
    edges = list(C.get("mediapipe33").edges)
    R, sigma = 16, 1.3
    m = evidence_maps(inp, edges, resolution=R, sigma=sigma)
    s = sigma * 2.0 / R
    xy, conf = inp.kp[..., :2].double(), inp.kp[..., 2].double()
    ref = torch.zeros(3, 33 + len(edges), R, R, dtype=torch.float64)
    for y in range(R):
        for x in range(R):
            p = torch.tensor([(x + 0.5) / R * 2 - 1, (y + 0.5) / R * 2 - 1], dtype=torch.float64)
            ref[:, :33, y, x] = conf * torch.exp(-((xy - p) ** 2).sum(-1) / (2 * s * s))
            for e, (a, b) in enumerate(edges):
                pa, pb = xy[:, a], xy[:, b]
                t = (((p - pa) * (pb - pa)).sum(-1) / ((pb - pa) ** 2).sum(-1).clamp(min=1e-8)).clamp(0, 1)
                d2 = ((p - (pa + t[:, None] * (pb - pa))) ** 2).sum(-1)
                ref[:, 33 + e, y, x] = torch.minimum(conf[:, a], conf[:, b]) * torch.exp(-d2 / (2 * s * s))
    assert torch.allclose(m[:, :-2].double(), ref, atol=1e-5)
    assert (m[:, -2:] == 0).all()  # no mask given: mask and has-mask channels are zero


def test_evidence_maps_peaks_and_limbs():
    kp = torch.zeros(1, 2, 3)
    kp[0, 0] = torch.tensor([-0.5, -0.5, 0.8])
    kp[0, 1] = torch.tensor([0.5, 0.5, 0.6])
    inp = CropInputs(kp, None, torch.zeros(1, 2), torch.ones(1), _K(1), torch.zeros(1, 3))
    R = 32
    m = evidence_maps(inp, [(0, 1)], resolution=R, sigma=1.0)
    assert m.shape == (1, 2 + 1 + 2, R, R)
    # keypoint 0 at (-0.5, -0.5) -> map pixel (7.5, 7.5): its peak is the confidence, at a pixel next to it
    h0 = m[0, 0]
    iy, ix = divmod(int(h0.argmax()), R)
    assert {iy, ix} <= {7, 8} and abs(float(h0.max()) - 0.8 * np.exp(-0.25)) < 1e-5
    limb = m[0, 2]
    assert abs(float(limb[16, 16]) - 0.6 * np.exp(-(1 / 32) ** 2 * 0 / 2)) < 0.1  # on the segment: ~ min conf
    assert float(limb[2, 29]) < 1e-3  # far from the segment
    assert (m[0, 3] == 0).all() and (m[0, 4] == 0).all()  # no mask given, and the flag says so
    mask = torch.ones(1, R, R)
    m2 = evidence_maps(inp, [(0, 1)], resolution=R, mask=mask)
    assert (m2[0, 3] == 1).all() and (m2[0, 4] == 1).all()


def test_crop_mask_samples_the_box():
    mask = np.zeros((100, 200), np.float32)
    mask[:, 100:] = 1.0
    out = crop_mask(mask, (100.0, 50.0), 100.0, resolution=10)
    assert (out[:, :5] == 0).all() and (out[:, 5:] == 1).all()
    assert (crop_mask(mask, (100.0, -200.0), 50.0, 8) == 0).all()  # outside the image


def test_head_starts_at_the_mean(anny_body):
    mean_shape = anny_body.mean_params(1).shape[0]
    head = HMRHead(16, 21, mean_shape).eval()
    out = head(torch.randn(4, 16), torch.randn(4, 3))
    assert len(out.states) == 3
    assert torch.allclose(out.global_orient, CV_FROM_BODY.expand(4, 3, 3), atol=0.05)
    assert torch.allclose(out.pose, torch.eye(3).expand(4, 21, 3, 3), atol=0.05)
    assert torch.allclose(out.shape, mean_shape.expand(4, -1), atol=0.05)


def test_head_to_params_puts_the_body_at_the_box(anny_body):
    """tx = ty = 0: the body origin projects to the box centre, at depth 2 f / (s * size)."""
    B = 2
    J = 21
    out = HeadOutput(CV_FROM_BODY.expand(B, 3, 3), torch.eye(3).expand(B, J, 3, 3),
                     anny_body.mean_params(B).shape, torch.tensor([[0.0, 0.0, 0.0], [float(np.log(2.0)), 0.0, 0.0]]), ())
    center = torch.tensor([[400.0, 300.0], [100.0, 50.0]])
    size = torch.tensor([200.0, 100.0])
    K = _K(B)
    from hmrkit.body.priors import body_joint_indices

    p = head_to_params(anny_body, out, body_joint_indices(anny_body), center, size, K)
    uv = project(p.transl[:, None], K)[:, 0]
    assert torch.allclose(uv, center, atol=1e-3)
    assert torch.allclose(p.transl[:, 2], torch.tensor([2 * 800 / 200, 2 * 800 / (2 * 100)]))


@pytest.mark.parametrize("kind", ["tokens", "maps"])
def test_regressor_gradients_reach_every_parameter(anny_body, kind):
    torch.manual_seed(0)
    model = SpinRegressor(anny_body, EncoderConfig(kind=kind, width=32, layers=1))
    k3 = torch.cat([torch.randn(3, 33, 3) * 0.3, torch.ones(3, 33, 1)], -1)
    inp = crop_inputs(_kp(), _K(), kp3d=k3)
    p = model.params(anny_body, inp)
    X = anny_body.forward_joints(p)
    (X.square().mean() + p.shape.square().mean()).backward()
    for name, q in model.named_parameters():
        assert q.grad is not None and torch.isfinite(q.grad).all(), name
        assert q.grad.abs().sum() > 0, name


def test_regressor_batch_equals_loop_and_3d_matters(anny_body):
    torch.manual_seed(1)
    model = SpinRegressor(anny_body, EncoderConfig(width=32, layers=1)).eval()
    with torch.no_grad():
        for p in model.head.dec.parameters():  # a visible output, not ~0 as at init
            p.normal_(0, 0.05)
    k3 = torch.cat([torch.randn(3, 33, 3) * 0.3, torch.ones(3, 33, 1)], -1)
    inp = crop_inputs(_kp(), _K(), kp3d=k3)
    with torch.no_grad():
        batch = model(inp).pose
        loop = torch.cat([model(crop_inputs(_kp()[i:i + 1], _K(1), kp3d=k3[i:i + 1])).pose for i in range(3)])
        no3d = model(crop_inputs(_kp(), _K())).pose
    assert torch.allclose(batch, loop, atol=1e-5)
    assert not torch.allclose(batch, no3d, atol=1e-4)


def test_checkpoint_round_trip_and_refusals(anny_body, tmp_path):
    from hmrkit.models.spin import load_regressor

    torch.manual_seed(2)
    model = SpinRegressor(anny_body, EncoderConfig(width=32, layers=1)).eval()
    path = tmp_path / "w.pt"
    torch.save(model.checkpoint({"note": "test"}), path)
    back = load_regressor(anny_body, path)
    inp = crop_inputs(_kp(), _K())
    with torch.no_grad():
        assert torch.equal(model(inp).pose, back(inp).pose)
    assert back.card == {"note": "test"}
    ck = model.checkpoint()
    ck["body"] = "smpl"
    torch.save(ck, tmp_path / "smpl.pt")
    with pytest.raises(InputError, match="smpl"):
        load_regressor(anny_body, tmp_path / "smpl.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt"):
        load_regressor(anny_body, tmp_path / "junk.pt")
    with pytest.raises(InputError, match="no SPIN weights"):
        load_regressor(anny_body, tmp_path / "missing.pt")


def _tiny_weights(body, path):
    torch.manual_seed(3)
    model = SpinRegressor(body, EncoderConfig(width=32, layers=1))
    torch.save(model.checkpoint({"note": "untrained"}), path)
    return path


def test_spin_estimator_interface(anny_body, tmp_path):
    """spin: one forward pass, a Prediction with its features; spin+fit: refined by the
    fitter from the regressor's estimate, so its 2D error is far lower than an untrained
    regressor's."""
    from hmrkit.data.synthetic import NoiseConfig, keypoints2d, sample_scenes
    from hmrkit.estimate import build, observation_from_arrays

    w = _tiny_weights(anny_body, tmp_path / "w.pt")
    scenes = sample_scenes(anny_body, 2, seed=5)
    kp = keypoints2d(anny_body, scenes, "mediapipe33", NoiseConfig.clean(), seed=6)
    kp[1, :, 2] = 0  # nobody
    obs = observation_from_arrays(kp, "mediapipe33", scenes.K, image_size=scenes.image_size)
    spin = build("spin", anny_body, weights=w)
    pred = spin.predict(obs)
    assert pred.method == "spin" and pred.valid.tolist() == [True, False]
    assert pred.output is None  # no mesh: the 2D error needs only keypoints
    assert pred.px_error.shape == (2,) and bool(torch.isnan(pred.px_error[1]))
    from hmrkit.fit import FitConfig

    both = build("spin+fit", anny_body, FitConfig(body_iters=40, camera_iters=20, detail_iters=0), weights=w)
    pred2 = both.predict(obs[:1])
    assert pred2.method == "spin+fit" and "regress" in pred2.timings
    assert float(pred2.px_error[0]) < 0.5 * float(pred.px_error[0])
    # holistic evidence (what the detector gives) reads its body part
    hol = torch.zeros(1, len(C.HOLISTIC), 3)
    hol[:, :33] = kp[:1]
    same = spin.predict(observation_from_arrays(hol, "holistic", scenes.K[:1], image_size=scenes.image_size))
    assert torch.allclose(same.params.pose, pred.params.pose[:1])


def test_regressor_on_smpl_and_training_needs_its_pose_library(tmp_path):
    """The same regressor on an SMPL body (a synthetic file in the official format): 23
    body joints, 10 betas, unclamped shape. Training data for SMPL needs a pose library in
    SMPL's skeleton, retargeted with the user's file: a one-line error says how."""
    import hmrkit.body
    from hmrkit.body.synthetic import write_synthetic_model
    from hmrkit.train.data import TrainSetConfig, build_trainset

    path = write_synthetic_model(tmp_path / "SMPL_NEUTRAL.pkl", "smpl")
    body = hmrkit.body.load("smpl", model_path=path)
    model = SpinRegressor(body, EncoderConfig(width=32, layers=1)).eval()
    assert len(model.joint_index) == 23 and model.head.num_shape == body.num_shape
    with torch.no_grad():
        p = model.params(body, crop_inputs(_kp(2), _K(2)))
    assert p.pose.shape == (2, body.num_pose_joints, 3, 3) and p.shape.shape == (2, body.num_shape)
    assert torch.isfinite(body(p).vertices).all()
    with pytest.raises(InputError, match="build_pose_prior.py --body smpl --model-path"):
        build_trainset(body, TrainSetConfig(n=16, seed=1))


def test_spin_on_another_device_gives_the_same(anny_body, tmp_path):
    """The --device path (network elsewhere, body model and results on the CPU) agrees with
    the CPU path; here the 'other' device is the CPU reached through the same code (the
    inputs and outputs move; no GPU in CI)."""
    from hmrkit.data.synthetic import NoiseConfig, keypoints2d, sample_scenes
    from hmrkit.estimate import build, observation_from_arrays
    from hmrkit.models import spin as S

    w = _tiny_weights(anny_body, tmp_path / "w.pt")
    scenes = sample_scenes(anny_body, 2, seed=8)
    kp = keypoints2d(anny_body, scenes, "mediapipe33", NoiseConfig.clean(), seed=9)
    obs = observation_from_arrays(kp, "mediapipe33", scenes.K, image_size=scenes.image_size)
    est = build("spin", anny_body, weights=w)
    ref = est.predict(obs)
    moved = []
    real = S._to_device
    S_device = torch.device("meta")

    class FakeParam:
        device = S_device

    orig = est.model.parameters
    try:
        est.model.parameters = lambda: iter([FakeParam()])
        S._to_device = lambda obj, device: (moved.append(device.type), real(obj, torch.device("cpu")))[1]
        got = est.predict(obs)
    finally:
        est.model.parameters = orig
        S._to_device = real
    assert moved == ["meta", "cpu"]
    assert torch.allclose(got.params.pose, ref.params.pose) and torch.allclose(got.px_error, ref.px_error)

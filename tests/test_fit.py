"""The fitting: losses, priors, and recovery of synthetic bodies with known ground truth."""

import roma
import torch

from hmrkit.body.priors import HingePrior, load_pose_prior, body_joint_indices
from hmrkit.data.synthetic import NoiseConfig, SceneConfig, keypoints2d, load_pose_library, sample_scenes
from hmrkit.eval.metrics import pa_mpjpe
from hmrkit.fit import FitConfig, Fitter
from hmrkit.fit.losses import geman_mcclure, reprojection_loss, smoothness_loss
from hmrkit.geometry.camera import project
from hmrkit.types import BodyParams


def test_geman_mcclure_pin_and_gradcheck():
    sq = torch.tensor([0.0, 100.0 ** 2, 1e12], dtype=torch.float64)
    out = geman_mcclure(sq, 100.0)
    assert out.tolist()[:2] == [0.0, 100.0 ** 2 / 2]  # sigma^2 r^2 / (sigma^2 + r^2) at r = sigma
    assert abs(out[2].item() - 1e4) < 1  # saturates at sigma^2
    x = torch.rand(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: geman_mcclure(t, 0.7), (x,))


def test_reprojection_loss_weights_by_confidence():
    pred = torch.zeros(1, 2, 2)
    obs = torch.tensor([[[3.0, 4.0, 1.0], [3.0, 4.0, 0.0]]])
    loss = reprojection_loss(pred, obs, torch.ones(1), sigma=1e6)
    assert torch.allclose(loss, torch.tensor([25.0]), rtol=1e-6)  # only the confident point counts


def test_smoothness_loss_zero_for_static():
    x = torch.ones(4, 3, 3)
    assert smoothness_loss(x).abs().sum() == 0


def test_hinge_prior_penalises_hyperextension_only(anny_body):
    hinge = HingePrior(anny_body)
    knee = anny_body.pose_joint_names.index("left_knee")
    p = anny_body.mean_params(2)
    pose = p.pose.clone()
    pose[0, knee] = roma.rotvec_to_rotmat(torch.tensor([1.0, 0.0, 0.0]))  # natural bend (shin backwards)
    pose[1, knee] = roma.rotvec_to_rotmat(torch.tensor([-1.0, 0.0, 0.0]))  # hyperextension
    flex = hinge.flexion(pose)
    i = hinge.index.tolist().index(knee)
    assert flex[0, i] > 0.9 and flex[1, i] < -0.9
    e = hinge(pose)
    assert e[0] < 0.01 and e[1] > 0.5  # (the small natural-bend value is the off-axis term: the rest shin is not exactly vertical)


def test_pose_prior_prefers_mocap_poses(anny_body):
    gmm = load_pose_prior(anny_body)
    assert gmm is not None, "the shipped pose prior must load"
    aa, _, _ = load_pose_library("anny")
    real = torch.from_numpy(aa[:64]).reshape(64, -1)
    g = torch.Generator().manual_seed(0)
    rand = (torch.rand(64, real.shape[1], generator=g) - 0.5) * 2.0
    assert gmm.energy_aa(real).median() < gmm.energy_aa(rand).median() - 50


def _scenes(body, n=4, seed=11):
    return sample_scenes(body, n, seed=seed, config=SceneConfig(yaw_deg=60))


def test_fit_recovers_synthetic_bodies(anny_body):
    """Known ground truth: library poses, sampled phenotypes, known cameras; clean and noisy
    2D keypoints, and noisy 2D plus root-relative 3D keypoints (5 cm noise, standing in for
    MediaPipe's world landmarks, which the pipeline uses). 2D alone has depth ambiguities
    (a limb flipped towards or away from the camera fits the image as well), so the 2D-only
    bounds are on the median. Bounds: measured on this seed with margin; bench/fit_synthetic.py
    gives the full table."""
    b = anny_body
    scenes = _scenes(b, n=6)
    with torch.no_grad():
        out = b(scenes.params)
        gt = b.keypoints(out, "coco17")
        X = b.keypoints(out, "mediapipe33")
    g = torch.Generator().manual_seed(0)
    k3 = X - 0.5 * (X[:, 23:24] + X[:, 24:25]) + 0.05 * torch.randn(X.shape, generator=g)
    k3 = torch.cat([k3, torch.ones(*X.shape[:2], 1)], -1)
    fitter = Fitter(b, FitConfig())
    cases = (
        ("clean", NoiseConfig.clean(), None, "median", 60.0, 3.0),
        ("realistic", NoiseConfig.realistic(), None, "median", 75.0, 12.0),
        ("realistic+3d", NoiseConfig.realistic(), k3, "mean", 45.0, 12.0),
    )
    for name, noise, kp3d, stat, bound_pa, bound_px in cases:
        kp = keypoints2d(b, scenes, "mediapipe33", noise, seed=3)
        pred = fitter.fit(kp, "mediapipe33", scenes.K, kp3d=kp3d)
        assert pred.valid.all()
        pa = pa_mpjpe(b.keypoints(pred.output, "coco17"), gt)
        value = pa.median() if stat == "median" else pa.mean()
        assert value < bound_pa, f"{name}: PA-MPJPE {[round(x) for x in pa.tolist()]} mm"
        assert pred.px_error.mean() < bound_px, name


def test_video_chunk_shares_one_shape_and_warm_starts(anny_body):
    b = anny_body
    scenes = _scenes(b, n=3, seed=5)
    same = BodyParams(scenes.params.global_orient, scenes.params.pose,
                      scenes.params.shape[:1].expand(3, -1).clone(), scenes.params.transl, scenes.params.expression)
    scenes = type(scenes)(same, scenes.K, scenes.image_size)
    kp = keypoints2d(b, scenes, "mediapipe33", NoiseConfig.clean())
    fitter = Fitter(b, FitConfig(body_iters=40, detail_iters=0))
    pred = fitter.fit(kp, "mediapipe33", scenes.K, smooth=True)
    assert torch.allclose(pred.params.shape, pred.params.shape[:1].expand(3, -1))
    # a warm start from a good estimate stays good
    warm = fitter.fit(kp, "mediapipe33", scenes.K, init=scenes.params, smooth=True)
    assert warm.px_error.mean() < 5.0  # the priors pull a little away from the truth (2.4 px measured)


def test_too_few_keypoints_is_not_valid(anny_body):
    b = anny_body
    scenes = _scenes(b, n=1)
    kp = keypoints2d(b, scenes, "mediapipe33", NoiseConfig.clean())
    kp[:, 4:, 2] = 0.0  # only 4 confident keypoints
    pred = Fitter(b, FitConfig(body_iters=5, camera_iters=5, detail_iters=0)).fit(kp, "mediapipe33", scenes.K)
    assert not pred.valid.any()


def test_fit_runs_the_full_forward_only_for_its_result(anny_body, monkeypatch):
    """The optimisation loops evaluate keypoints only (forward_keypoints): the mesh is built
    once, for the returned output."""
    b = anny_body
    scenes = _scenes(b, n=2)
    kp = keypoints2d(b, scenes, "holistic", NoiseConfig.clean())
    fitter = Fitter(b, FitConfig(camera_iters=4, body_iters=3, detail_iters=2))
    calls = []
    forward = type(b).forward

    def counted(self, params):
        calls.append(params.batch_size)
        return forward(self, params)

    monkeypatch.setattr(type(b), "forward", counted)
    pred = fitter.fit(kp, "holistic", scenes.K)
    assert calls == [2]
    assert pred.output.vertices.shape == (2, b.num_vertices, 3)


def test_fit_energy_equals_the_full_forward_energy(anny_body):
    """The energy the loops minimise, from forward_keypoints, is the one of the full forward
    and the regressors (holistic parts, 3D keypoints and the smoothness term on joints)."""
    b = anny_body
    scenes = _scenes(b, n=3, seed=2)
    kp = keypoints2d(b, scenes, "holistic", NoiseConfig.realistic(), seed=1)
    with torch.no_grad():
        X = b.keypoints(b(scenes.params), "mediapipe33")
    k3 = torch.zeros(*kp.shape[:2], 4)
    k3[:, :33] = torch.cat([X - 0.5 * (X[:, 23:24] + X[:, 24:25]), torch.ones(3, 33, 1)], -1)
    fitter = Fitter(b, FitConfig(w_smooth=10.0))
    parts = fitter._parts("holistic", kp, k3)
    assert [pt[0] for pt in parts] == ["mediapipe33", "hand21_left", "hand21_right", "face"]
    g = torch.Generator().manual_seed(0)
    p = scenes.params
    tweak = roma.rotvec_to_rotmat(0.1 * torch.randn(*p.pose.shape[:2], 3, generator=g))
    p = BodyParams(p.global_orient, p.pose @ tweak, p.shape, p.transl,
                   torch.rand(3, b.num_expression, generator=g) * 0.3)
    scale = torch.full((3,), 0.5)
    for stage in ("body", "detail"):
        joints, preds = fitter._predict(p, parts, scenes.K)
        fast = fitter._energy(p, joints, preds, parts, scenes.K, scale, True, stage)
        out = b(p)
        full_preds = [(Y, project(Y, scenes.K)) for Y in (b.keypoints(out, c) for c, _, _, _ in parts)]
        full = fitter._energy(p, out.joints, full_preds, parts, scenes.K, scale, True, stage)
        assert torch.allclose(fast, full, rtol=1e-5), stage

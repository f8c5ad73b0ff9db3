"""Hands and faces: the mirror of rotations, the finger anatomy (axes, limits, prior), the
hand pose and expression samplers, the close-up set and its metrics, and the fitting's
finger and face stage (docs/hands.md)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import roma
import torch

from hmrkit.body.hands import FingerPrior, finger_axes
from hmrkit.data.hands import EXPRESSIONS, GESTURES, sample_expressions, sample_hand_angles, with_hands
from hmrkit.geometry.rotation import mirror_points, mirror_rotmat

M = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))


# ----------------------------------------------------------------------------------------
# The mirror of rotations


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mirror_rotmat_is_an_involution_and_a_homomorphism(dtype):
    g = torch.Generator().manual_seed(0)
    A = roma.rotvec_to_rotmat(torch.randn(5, 4, 3, generator=g, dtype=dtype))
    B = roma.rotvec_to_rotmat(torch.randn(5, 4, 3, generator=g, dtype=dtype))
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(mirror_rotmat(mirror_rotmat(A)), A, atol=tol, rtol=0)
    torch.testing.assert_close(mirror_rotmat(A @ B), mirror_rotmat(A) @ mirror_rotmat(B), atol=10 * tol, rtol=0)
    # still a rotation (det +1), and the axis-angle rule (a, b, c) -> (a, -b, -c)
    torch.testing.assert_close(torch.linalg.det(mirror_rotmat(A)), torch.ones(5, 4, dtype=dtype), atol=10 * tol, rtol=0)
    aa = roma.rotmat_to_rotvec(A)
    torch.testing.assert_close(roma.rotmat_to_rotvec(mirror_rotmat(A)), aa * torch.tensor([1.0, -1.0, -1.0], dtype=dtype),
                               atol=1e-4 if dtype == torch.float32 else 1e-9, rtol=0)
    # what a mirror does to a rotated point: mirror(R) mirror(x) = mirror(R x)
    x = torch.randn(5, 4, 3, 1, generator=g, dtype=dtype)
    lhs = mirror_rotmat(A) @ mirror_points(x[..., 0])[..., None]
    torch.testing.assert_close(lhs[..., 0], mirror_points((A @ x)[..., 0]), atol=10 * tol, rtol=0)


def test_mirror_rotmat_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        mirror_rotmat(torch.zeros(3, 4))


def test_a_mirrored_left_hand_is_the_right_hand(anny_body):
    """One hand expert serves both hands (PIXIE): the left hand's finger rotations mirrored
    onto the right hand's joints give the mirror image of the left hand (wrist-relative,
    in the body frame), to the body's own left/right asymmetry."""
    body = anny_body
    ax = finger_axes(body)
    angles, _ = sample_hand_angles(body, 3, seed=4, gestures=("fist", "point", "pinch"))
    pose = body.mean_params(3).pose.clone()
    left = ax.side_of("left")
    Rl = ax.rotations(angles)[:, left]
    right_idx = ax.index[ax.side_of("right")]
    pose[:, ax.index[left]] = Rl
    pose[:, right_idx] = mirror_rotmat(Rl)  # same finger order on both sides
    p = replace(body.mean_params(3), global_orient=torch.eye(3).expand(3, 3, 3), pose=pose,
                transl=torch.zeros(3, 3))
    with torch.no_grad():
        k = body.forward_keypoints(p, ("hand21_left", "hand21_right"))
    hl = k["hand21_left"] - k["hand21_left"][:, :1]
    hr = k["hand21_right"] - k["hand21_right"][:, :1]
    err = (mirror_points(hl) - hr).norm(dim=-1)
    assert float(err.max()) < 0.004, f"mirrored left hand differs from the right by {1000 * float(err.max()):.1f} mm"
    # and not by accident: the unmirrored rotations give a different right hand
    pose[:, right_idx] = Rl
    with torch.no_grad():
        hr2 = body.forward_keypoints(replace(p, pose=pose), ("hand21_right",))["hand21_right"]
    assert float((mirror_points(hl) - (hr2 - hr2[:, :1])).norm(dim=-1).max()) > 0.01


# ----------------------------------------------------------------------------------------
# Finger anatomy


def test_finger_axes_bend_towards_the_palm(anny_body):
    body = anny_body
    ax = finger_axes(body)
    assert len(ax) == 30 and set(ax.segment.tolist()) == {1, 2, 3}
    torch.testing.assert_close(ax.axes @ ax.axes.transpose(-1, -2), torch.eye(3).expand(30, 3, 3), atol=1e-5, rtol=0)
    mean = body.mean_params(1)
    names = list(body.joint_names)
    with torch.no_grad():
        rest = body.forward_keypoints(mean, ("hand21_left", "hand21_right"))
    for f in range(len(ax)):
        side = "left" if int(ax.side[f]) == 0 else "right"
        tip = 4 * int(ax.finger[f]) + 4
        moved = {}
        for a in range(3):
            angles = torch.zeros(1, len(ax), 3)
            angles[0, f, a] = 0.4
            pose = mean.pose.clone()
            pose[:, ax.index] = ax.rotations(angles)
            with torch.no_grad():
                k = body.forward_keypoints(replace(mean, pose=pose), (f"hand21_{side}",))
            moved[a] = (k[f"hand21_{side}"][0, tip] - rest[f"hand21_{side}"][0, tip])
            if a == 2 and int(ax.segment[f]) < 3:
                # twist turns the bone about itself: the next joint stays put
                child = names.index(f"{ax.names[f][:-1]}{int(ax.segment[f]) + 1}")
                torch.testing.assert_close(k["joints"][0, child], rest["joints"][0, child], atol=1e-5, rtol=0)
        volar = ax.axes[f, 1]  # rest frame = camera frame of the mean params (identity orientation)
        assert float(moved[0] @ volar) > 0.5 * float(moved[0].norm()), f"{ax.names[f]}: flexion does not curl"


def test_left_and_right_finger_axes_are_mirror_images(anny_body):
    """Rotation axes are pseudo-vectors: under x -> -x the flexion axis maps to -M flex,
    the volar (spread) and bone (twist) directions to M v (so the mirrored left spread and
    twist are the negated right ones; the sampler and docs/hands.md use this)."""
    ax = finger_axes(anny_body)
    L, R = ax.axes[ax.side_of("left")], ax.axes[ax.side_of("right")]
    torch.testing.assert_close(R[:, 0], -(L[:, 0] @ M), atol=0.02, rtol=0)
    torch.testing.assert_close(R[:, 1], L[:, 1] @ M, atol=0.02, rtol=0)
    torch.testing.assert_close(R[:, 2], L[:, 2] @ M, atol=0.02, rtol=0)


def test_angles_and_rotations_round_trip(anny_body):
    ax = finger_axes(anny_body)
    a, _ = sample_hand_angles(anny_body, 4, seed=1)
    pose = anny_body.mean_params(4).pose.clone()
    pose[:, ax.index] = ax.rotations(a)
    torch.testing.assert_close(ax.angles(pose), a, atol=1e-5, rtol=0)


def test_finger_prior_is_zero_inside_the_limits_and_grows_outside(anny_body64):
    body = anny_body64
    prior = FingerPrior(body, rest=0.0, twist=0.0)
    ax = prior.axes
    pose = body.mean_params(3).pose.clone()
    inside = 0.5 * (ax.low + ax.high)
    inside[:, 2] = 0.0
    pose[0, ax.index] = ax.rotations(inside[None])[0]
    far = ax.high + 0.3
    pose[1, ax.index] = ax.rotations(far[None])[0]
    back = ax.low.clone()
    back[:, 0] -= 0.5  # every finger bent backwards
    pose[2, ax.index] = ax.rotations(back[None])[0]
    e = prior(pose)
    assert float(e[0]) == pytest.approx(0.0, abs=1e-9)
    assert float(e[1]) > 0 and float(e[2]) > 0
    # gradient check on the full prior (rest and twist terms on)
    full = FingerPrior(body)
    w = roma.rotmat_to_rotvec(pose[1:2, ax.index]).clone().requires_grad_(True)

    def energy(w):
        p = pose[1:2].index_copy(1, ax.index, roma.rotvec_to_rotmat(w))
        return full(p)

    assert torch.autograd.gradcheck(energy, (w,), eps=1e-6, atol=1e-4)


# ----------------------------------------------------------------------------------------
# Samplers


def test_hand_sampler_is_seeded_inside_the_limits_and_its_gestures_differ(anny_body):
    body = anny_body
    ax = finger_axes(body)
    a1, g1 = sample_hand_angles(body, 16, seed=3)
    a2, g2 = sample_hand_angles(body, 16, seed=3)
    torch.testing.assert_close(a1, a2)
    assert (g1 == g2).all() and set(np.unique(g1)) <= set(GESTURES)
    assert bool((a1 >= ax.low - 1e-6).all() and (a1 <= ax.high + 1e-6).all())

    def tip_to_wrist(gesture):
        pose, _ = with_hands(body, body.mean_params(1).pose, seed=0, gestures=(gesture,))
        with torch.no_grad():
            h = body.forward_keypoints(replace(body.mean_params(1), pose=pose), ("hand21_right",))["hand21_right"][0]
        return (h[[8, 12, 16, 20]] - h[0]).norm(dim=-1)

    fist, open_, point = tip_to_wrist("fist"), tip_to_wrist("open"), tip_to_wrist("point")
    assert bool((fist < 0.75 * open_).all())  # the fist curls every finger
    assert float(point[0]) > 0.9 * float(open_[0]) and bool((point[1:] < 0.8 * open_[1:]).all())


def test_expression_sampler_shows_a_few_groups_at_a_time(anny_body):
    e, shown = sample_expressions(anny_body, 64, seed=5)
    e2, _ = sample_expressions(anny_body, 64, seed=5)
    torch.testing.assert_close(e, e2)
    assert e.shape == (64, anny_body.num_expression)
    assert float(e.min()) >= 0.0 and float(e.max()) <= 1.0
    assert all(len(s) <= 3 for s in shown) and any(len(s) == 0 for s in shown)
    names = list(anny_body.facial_action_names)
    for row, groups in zip(e, shown):
        active = {names[i] for i in torch.nonzero(row > 0)[:, 0].tolist()}
        assert active == {a for g in groups for a in EXPRESSIONS[g]}


# ----------------------------------------------------------------------------------------
# hand21 on Anny: the palm where MediaPipe puts it


def test_anny_hand21_palm_points_sit_where_mediapipe_puts_them(anny_body):
    from hmrkit.body.anny import ANNY_HAND21_PALM

    names = list(anny_body.joint_names)
    with torch.no_grad():
        k = anny_body.forward_keypoints(anny_body.mean_params(1), ("hand21_left",))
    J, h = k["joints"][0], k["hand21_left"][0]
    wrist, mid = J[names.index("left_wrist")], J[names.index("left_middle1")]
    torch.testing.assert_close(h[0], wrist + ANNY_HAND21_PALM["wrist"] * (mid - wrist), atol=1e-6, rtol=0)
    idx = J[names.index("left_index1")]
    torch.testing.assert_close(h[5], idx + ANNY_HAND21_PALM["mcp"] * (wrist - idx), atol=1e-6, rtol=0)
    torch.testing.assert_close(h[6], J[names.index("left_index2")], atol=1e-6, rtol=0)  # the PIP at its joint


# ----------------------------------------------------------------------------------------
# The close-up set and its metrics


def test_closeups_spec_parses_and_names_itself():
    from hmrkit.errors import InputError
    from hmrkit.eval.specs import SyntheticSpec

    s = SyntheticSpec.parse("synthetic:closeups,n=4,noise=clean")
    assert s.name == "synthetic:closeups,n=4,seed=2024,split=test,noise=clean"
    assert SyntheticSpec.parse("synthetic:closeups,render=1").name.endswith(",render=1")
    with pytest.raises(InputError, match="unknown key 'frames'"):
        SyntheticSpec.parse("synthetic:closeups,frames=3")
    with pytest.raises(InputError, match="drop noise="):
        SyntheticSpec.parse("synthetic:closeups,render=1,noise=clean")


def test_closeups_truth_scores_zero_and_rest_hands_do_not(anny_body):
    """Known ground truth: an estimator answering the truth has zero hand and face errors;
    the same bodies with the fingers at rest and a neutral face have large ones."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_eval import Oracle

    from hmrkit.eval.protocols import SyntheticSpec, build_synthetic, evaluate_synthetic
    from hmrkit.eval.metrics import summarize

    spec = SyntheticSpec.parse("synthetic:closeups,n=6,noise=clean")
    data = build_synthetic(anny_body, spec)
    assert "hand evidence" in data.notes and "face evidence" in data.notes
    res = evaluate_synthetic(Oracle(data.params), anny_body, spec, data=data)
    s = summarize(res.metrics)
    for k in ("hand L", "hand R", "hand PA", "face PA"):
        assert s[k].mean == pytest.approx(0.0, abs=1e-2), k
    ax = finger_axes(anny_body)

    def rest(p, idx):
        pose = p.pose.clone()
        pose[:, ax.index] = torch.eye(3)
        return replace(p, pose=pose, expression=torch.zeros_like(p.expression))

    s2 = summarize(evaluate_synthetic(Oracle(data.params, change=rest), anny_body, spec, data=data).metrics)
    assert s2["hand PA"].mean > 8.0 and s2["face PA"].mean > 0.5
    # the body is untouched (coco17's eyes, ears and nose are face vertices: the expression moves them a little)
    assert s2["PA-MPJPE"].mean == pytest.approx(0.0, abs=0.5)


# ----------------------------------------------------------------------------------------
# The fitting's finger and face stage


def test_align_scale_translation_removes_a_shift_and_a_scale():
    from hmrkit.fit.losses import align_scale_translation

    g = torch.Generator().manual_seed(0)
    obs = torch.cat([100 * torch.rand(2, 21, 2, generator=g), torch.ones(2, 21, 1)], -1)
    pred = 0.6 * obs[..., :2] + torch.tensor([30.0, -12.0])
    torch.testing.assert_close(align_scale_translation(pred, obs), obs[..., :2], atol=1e-4, rtol=0)
    # a rotation is not removed: the wrist's rotation must explain it
    c = obs[..., :2].mean(1, keepdim=True)
    rot = (obs[..., :2] - c) @ torch.tensor([[0.0, -1.0], [1.0, 0.0]]) + c
    assert float((align_scale_translation(rot, obs) - obs[..., :2]).norm(dim=-1).mean()) > 5.0


def test_body_stage_holds_the_fingers(anny_body):
    """The body keypoints include mediapipe33's thumb (on the thumb's joint 2): the body
    stage used to turn the thumb's base freely to match it; it now moves body joints only."""
    from hmrkit.data.synthetic import NoiseConfig, keypoints2d
    from hmrkit.eval.sets import closeup_scenes
    from hmrkit.fit import FitConfig
    from hmrkit.fit.fitter import Fitter

    scenes, _, _ = closeup_scenes(anny_body, 3, seed=5)
    kp = keypoints2d(anny_body, scenes, "mediapipe33", NoiseConfig.realistic(), seed=6)
    ax = finger_axes(anny_body)
    init = anny_body.mean_params(3)
    cfg = replace(FitConfig(), body_iters=30, camera_iters=10)
    held = Fitter(anny_body, cfg).fit(kp, "mediapipe33", scenes.K, init=init)
    torch.testing.assert_close(held.params.pose[:, ax.index], init.pose[:, ax.index], atol=1e-5, rtol=0)
    legacy = Fitter(anny_body, replace(cfg, body_holds_fingers=False)).fit(kp, "mediapipe33", scenes.K, init=init)
    thumb1 = [ax.names.index(f"{s}_thumb1") for s in ("left", "right")]
    moved = roma.rotmat_geodesic_distance(legacy.params.pose[:, ax.index[thumb1]], init.pose[:, ax.index[thumb1]])
    assert float(moved.max()) > 0.05


def test_finger_and_face_stage_helps_from_the_true_body(anny_body):
    """Known ground truth: from the true body with the fingers at rest and a neutral face,
    the finger and face stage on clean holistic keypoints brings the hands and the face
    closer to the truth (hand PA by a sixth or more; the prior is set for MediaPipe's
    noisy hands, so clean evidence gains less than it could: docs/hands.md)."""
    from hmrkit.data.synthetic import NoiseConfig, keypoints2d
    from hmrkit.eval.metrics import pa_mpjpe
    from hmrkit.eval.sets import closeup_scenes
    from hmrkit.fit import FitConfig
    from hmrkit.fit.fitter import Fitter

    scenes, _, _ = closeup_scenes(anny_body, 8, seed=21, split="val")
    kp = keypoints2d(anny_body, scenes, "holistic", NoiseConfig.clean(), seed=22)
    P = scenes.params
    ax = finger_axes(anny_body)
    pose = P.pose.clone()
    pose[:, ax.index] = torch.eye(3)
    start = replace(P, pose=pose, expression=torch.zeros_like(P.expression))
    cfg = replace(FitConfig(), camera_iters=0, body_iters=0)
    out = Fitter(anny_body, cfg).fit(kp, "holistic", scenes.K, init=start)
    with torch.no_grad():
        gt, o0 = anny_body(P), anny_body(start)

    def errs(o):
        hand = sum(float(pa_mpjpe(anny_body.keypoints(o, f"hand21_{s}"), anny_body.keypoints(gt, f"hand21_{s}")).mean())
                   for s in ("left", "right")) / 2
        return hand, float(pa_mpjpe(anny_body.keypoints(o, "face"), anny_body.keypoints(gt, "face")).mean())

    (h0, f0), (h1, f1) = errs(o0), errs(out.output)
    assert h1 < 0.85 * h0, (h0, h1)
    assert f1 < f0, (f0, f1)

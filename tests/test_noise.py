"""The detector-noise model of hmrkit.data.synthetic: its statistics match its parameters,
clean() is exact, its geometry (facing, self-occlusion, boxes, the image border) and the
holistic convention. No MediaPipe here: scripts/calibrate_noise.py fits realistic() to it."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from hmrkit import conventions as C
from hmrkit.data.synthetic import (
    GROSS,
    GROUPS,
    GroupNoise,
    KeypointNoise,
    NoiseConfig,
    SceneConfig,
    add_noise,
    facing,
    keypoint_groups,
    keypoint_states,
    keypoints2d,
    person_height,
    sample_scenes,
    self_occluded,
    true_keypoints,
)
from hmrkit.geometry.camera import project

BIG = (100_000, 100_000)  # an image no keypoint leaves


def _all_groups(k: KeypointNoise, **kw) -> NoiseConfig:
    g = GroupNoise(visible=k)
    return NoiseConfig(**{name: g for name in GROUPS}, **kw)


def _tile(X, uv, reps):
    return X.repeat(reps, 1, 1), uv.repeat(reps, 1, 1)


@pytest.fixture(scope="module")
def scenes(anny_body):
    return sample_scenes(anny_body, 12, seed=4, config=SceneConfig(image_size=(640, 640), distance=(3.0, 5.0)))


@pytest.fixture(scope="module")
def truth(anny_body, scenes):
    return true_keypoints(anny_body, scenes, "holistic")


def _facing_scene(body, yaw_deg: float):
    """One mean person, upright, 4 m in front of the camera, turned by yaw_deg (0: facing it)."""
    from hmrkit.types import BodyParams

    p = body.mean_params(1)
    a = math.radians(yaw_deg)
    R_yaw = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1.0, 0], [-math.sin(a), 0, math.cos(a)]])
    to_cv = torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
    params = BodyParams((to_cv @ R_yaw)[None], p.pose, p.shape, torch.tensor([[0.0, 0.3, 4.0]]), p.expression)
    K = torch.tensor([[[800.0, 0, 320], [0, 800.0, 320], [0, 0, 1]]])
    from hmrkit.data.synthetic import SyntheticBatch

    return SyntheticBatch(params=params, K=K, image_size=(640, 640))


def test_clean_is_exact(anny_body, scenes):
    kp = keypoints2d(anny_body, scenes, "mediapipe33", NoiseConfig.clean())
    with torch.no_grad():
        uv = project(anny_body.keypoints(anny_body(scenes.params), "mediapipe33"), scenes.K)
    assert torch.equal(kp[..., :2], uv)
    H, W = scenes.image_size
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H)
    assert torch.equal(kp[..., 2], inside.to(kp.dtype))
    assert NoiseConfig.clean() == NoiseConfig()


def test_holistic_is_body_hands_face(anny_body, scenes, truth):
    kp = keypoints2d(anny_body, scenes, "holistic")
    assert kp.shape == (12, len(C.HOLISTIC), 3) == (12, 33 + 21 + 21 + 41, 3)
    with torch.no_grad():
        out = anny_body(scenes.params)
        parts = [anny_body.keypoints(out, c) for c in ("mediapipe33", "hand21_left", "hand21_right", "face")]
    assert torch.equal(kp[..., :2], project(torch.cat(parts, 1), scenes.K))
    # the hand's wrist is the body's wrist (an alias in the conventions), within a few px
    names = C.HOLISTIC
    for side in ("left", "right"):
        d = kp[:, names.index(f"{side}_hand.wrist"), :2] - kp[:, names.index(f"{side}_wrist"), :2]
        assert d.norm(dim=-1).max() < 3.0
    noisy = keypoints2d(anny_body, scenes, "holistic", NoiseConfig.realistic(), seed=1)
    assert noisy.shape == kp.shape and torch.isfinite(noisy).all()
    assert ((noisy[..., 2] >= 0) & (noisy[..., 2] <= 1)).all()


def test_seed_determinism(anny_body, scenes):
    a = keypoints2d(anny_body, scenes, "holistic", NoiseConfig.realistic(), seed=7)
    b = keypoints2d(anny_body, scenes, "holistic", NoiseConfig.realistic(), seed=7)
    c = keypoints2d(anny_body, scenes, "holistic", NoiseConfig.realistic(), seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_outside_the_image_gets_zero_confidence(anny_body):
    # people far off the optical axis: many keypoints fall outside the 320 px image
    s = sample_scenes(anny_body, 16, seed=2, config=SceneConfig(image_size=(320, 320), distance=(2.0, 3.0), offset=0.5))
    for noise in (NoiseConfig.clean(), NoiseConfig.realistic(), NoiseConfig(jitter=0.05)):
        kp = keypoints2d(anny_body, s, "holistic", noise, seed=3)
        x, y, conf = kp.unbind(-1)
        outside = (x < 0) | (x >= 320) | (y < 0) | (y >= 320)
        assert outside.sum() > 50  # the test means something
        assert (conf[outside] == 0).all()


def test_jitter_drop_and_low_confidence_match_parameters(truth):
    X, uv, valid = truth
    X, uv = _tile(X, uv, 60)  # 720 people x 116 keypoints
    h = person_height(uv, valid)
    noise = _all_groups(KeypointNoise(jitter=0.02, low_conf=0.2, drop=0.1), low_conf_range=(0.2, 0.4))
    kp = add_noise(X, uv, valid, "holistic", BIG, noise, seed=0)
    e = (kp[..., :2] - uv) / h[:, None, None]
    assert e.std().item() == pytest.approx(0.02, rel=0.03)  # per axis
    assert e.mean().abs().item() < 1e-3
    conf = kp[..., 2]
    parts = np.isin(keypoint_groups("holistic"), [GROUPS.index("hands"), GROUPS.index("face_mesh")])
    body = torch.as_tensor(~parts)
    assert (conf[:, body] == 0).float().mean().item() == pytest.approx(0.1, abs=0.01)
    kept = conf[:, body][conf[:, body] > 0]
    assert (kept < 1).float().mean().item() == pytest.approx(0.2, abs=0.015)
    low = kept[kept < 1]
    assert low.min() >= 0.2 and low.max() <= 0.4
    # hands and the face mesh are found or missed as a whole, each with probability 0.1
    for idx in (slice(33, 54), slice(54, 75), slice(75, None)):
        found = conf[:, idx] > 0
        assert (found.all(1) | ~found.any(1)).all()
        assert (~found.any(1)).float().mean().item() == pytest.approx(0.1, abs=0.03)


def test_the_simple_model_is_the_old_one(truth):
    """NoiseConfig(jitter, drop, low_conf, swap) keeps its meaning for every group."""
    X, uv, valid = truth
    legacy = NoiseConfig(jitter=0.012, drop=0.05, low_conf=0.1, swap=0.01)
    for g in GROUPS:
        for s in ("visible", "back", "hidden", "boxed"):
            assert legacy.group(g).state(s) == KeypointNoise(jitter=0.012, low_conf=0.1, drop=0.05)
    with pytest.raises(ValueError, match="unknown keypoint group"):
        legacy.group("tail")


def test_gross_errors_and_tails(truth):
    X, uv, valid = truth
    X, uv = _tile(X, uv, 40)
    h = person_height(uv, valid)[:, None]
    noise = _all_groups(KeypointNoise(jitter=0.03, tail=0.8, gross=0.2, gross_scale=0.1))
    kp = add_noise(X, uv, valid, "holistic", BIG, noise, seed=1)
    r = (kp[..., :2] - uv).norm(dim=-1) / h
    gross = r > GROSS
    assert gross.float().mean().item() == pytest.approx(0.2, abs=0.01)
    # gross errors: GROSS + Exponential(0.1) in a random direction (no mirror snapping here)
    assert (r[gross] - GROSS).mean().item() == pytest.approx(0.1, rel=0.05)
    # fine errors never exceed GROSS; the tail makes them heavier than a Gaussian's
    fine = r[~gross]
    ratio = (fine.quantile(0.9) / fine.median()).item()
    assert ratio > 1.9  # a 2D Gaussian's radius has p90 / median = 1.82


def test_swaps(truth):
    X, uv, valid = truth
    conv = C.get("holistic")
    kp = add_noise(X, uv, valid, "holistic", BIG, NoiseConfig(swap=1.0))
    assert torch.equal(kp[..., :2], uv[:, list(conv.flip)])
    kp = add_noise(X, uv, valid, "holistic", BIG, NoiseConfig(hand_swap=1.0))
    assert torch.equal(kp[:, 33:54, :2], uv[:, 54:75]) and torch.equal(kp[:, 54:75, :2], uv[:, 33:54])
    assert torch.equal(kp[:, :33, :2], uv[:, :33])
    kp = add_noise(X, uv, valid, "holistic", BIG, NoiseConfig(swap_legs=1.0))
    knee, rknee, hip = (conv.index(n) for n in ("left_knee", "right_knee", "left_hip"))
    assert torch.equal(kp[:, knee, :2], uv[:, rknee]) and torch.equal(kp[:, hip, :2], uv[:, hip])


def test_facing_and_back_facing_face_confidence(anny_body):
    front, back = _facing_scene(anny_body, 0.0), _facing_scene(anny_body, 180.0)
    for batch, sign in ((front, 1.0), (back, -1.0)):
        X, uv, valid = true_keypoints(anny_body, batch, "holistic")
        torso, head = facing(X, "holistic")
        assert sign * torso.item() > 0.95 and sign * head.item() > 0.9
    face = torch.as_tensor(keypoint_groups("holistic") == GROUPS.index("face"))
    # realistic: the face mesh of a head turned away is never found; that of a frontal
    # face is found (drop 7%: try a few seeds)
    kb = keypoints2d(anny_body, back, "holistic", NoiseConfig.realistic(), seed=0)
    assert (kb[0, 75:, 2] == 0).all()
    found = [(keypoints2d(anny_body, front, "holistic", NoiseConfig.realistic(), seed=s)[0, 75:, 2] > 0).all()
             for s in range(5)]
    assert sum(found) >= 3
    # a model whose hidden face points get low confidence: the back of the head does
    low = GroupNoise(visible=KeypointNoise(), hidden=KeypointNoise(low_conf=1.0))
    noise = NoiseConfig(face=low, face_turn=(0.4, 0.95), low_conf_range=(0.2, 0.5))
    kb = keypoints2d(anny_body, back, "holistic", noise)
    kf = keypoints2d(anny_body, front, "holistic", noise)
    assert (kb[0, face, 2] <= 0.5).all() and (kb[0, face, 2] > 0).all()
    assert (kf[0, face, 2] == 1).all()


def test_self_occlusion_pin():
    """A torso square 3 m away (shoulders/hips at x, y = +-0.2 m), three wrists: behind it,
    in front of it, behind it but off to the side."""
    names = C.MEDIAPIPE33
    X = torch.zeros(1, len(names), 3)
    X[..., 2] = 3.0
    X[..., 0] = 5.0  # everything else far off to the side
    for n, (x, y) in {"left_shoulder": (0.2, -0.2), "right_shoulder": (-0.2, -0.2),
                      "left_hip": (0.2, 0.2), "right_hip": (-0.2, 0.2)}.items():
        X[0, names.index(n)] = torch.tensor([x, y, 3.0])
    X[0, names.index("left_wrist")] = torch.tensor([0.0, 0.0, 3.2])  # behind, inside
    X[0, names.index("right_wrist")] = torch.tensor([0.0, 0.0, 2.8])  # in front
    X[0, names.index("left_ankle")] = torch.tensor([0.6, 0.0, 3.2])  # behind, outside
    K = torch.tensor([[1000.0, 0, 500], [0, 1000.0, 500], [0, 0, 1]])
    uv = project(X, K)
    h = torch.tensor([400.0])
    hidden = self_occluded(X, uv, "mediapipe33", h)[0]
    assert hidden[names.index("left_wrist")]
    assert not hidden[names.index("right_wrist")]
    assert not hidden[names.index("left_ankle")]
    assert not hidden[[names.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]].any()
    # a wrist just outside the square, within the 6%-of-height margin (24 px = 7.2 cm), is hidden
    X[0, names.index("left_ankle")] = torch.tensor([0.26, 0.0, 3.2])
    assert self_occluded(X, project(X, K), "mediapipe33", h)[0, names.index("left_ankle")]


def test_occluding_boxes(truth):
    X, uv, valid = truth
    # a box over each person's upper half
    top, bottom = uv[..., 1].min(1).values, uv[..., 1].max(1).values
    boxes = torch.stack([uv[..., 0].min(1).values - 1, top - 1, uv[..., 0].max(1).values + 1,
                         0.5 * (top + bottom)], 1)
    boxes[::2] = float("nan")  # every other person unoccluded
    state, _ = keypoint_states(X, uv, valid, "holistic", boxes)
    inside = (uv[..., 1] <= boxes[:, None, 3]) & ~torch.isnan(boxes[:, None, 3])
    body = slice(0, 33)
    assert torch.equal(state[:, body] == 3, inside[:, body])
    noise = _all_groups(KeypointNoise(), occluder=0.0)
    noise = replace(noise, torso=GroupNoise(visible=KeypointNoise(), boxed=KeypointNoise(drop=1.0)),
                    limbs=GroupNoise(visible=KeypointNoise(), boxed=KeypointNoise(low_conf=1.0)))
    kp = add_noise(X, uv, valid, "holistic", BIG, noise, occluders=boxes)
    groups = torch.as_tensor(keypoint_groups("holistic"))
    torso, limbs = (groups == GROUPS.index("torso"))[None], (groups == GROUPS.index("limbs"))[None]
    boxed = state == 3
    assert (kp[..., 2][boxed & torso] == 0).all() and (kp[..., 2][~boxed & torso] == 1).all()
    assert (kp[..., 2][boxed & limbs] < 0.5).all() and (kp[..., 2][~boxed & limbs] == 1).all()
    # random boxes with probability `occluder`: a box drops what it covers
    X2, uv2 = _tile(X, uv, 50)
    drop_boxed = _all_groups(KeypointNoise(), occluder=0.5)
    drop_boxed = replace(drop_boxed, **{g: GroupNoise(visible=KeypointNoise(), boxed=KeypointNoise(drop=1.0))
                                       for g in GROUPS})
    kp = add_noise(X2, uv2, valid, "holistic", BIG, drop_boxed, seed=3)
    hit = (kp[..., 2] == 0).any(1).float().mean().item()
    assert 0.35 < hit <= 0.55, hit  # half the people get a box; most boxes cover keypoints
    assert (add_noise(X2, uv2, valid, "holistic", BIG, replace(drop_boxed, occluder=0.0))[..., 2] == 1).all()


def test_realistic_statistics_on_many_samples(truth):
    """realistic() on many draws: the visible torso's gross rate and fine-error quantiles
    follow its parameters (reference: a plain numpy draw of the same distribution)."""
    X, uv, valid = truth
    X, uv = _tile(X, uv, 200)
    noise = replace(NoiseConfig.realistic(), swap=0.0, swap_legs=0.0)  # whole-person exchanges aside
    state, _ = keypoint_states(X, uv, valid, "holistic", None, noise.face_turn)
    kp = add_noise(X, uv, valid, "holistic", BIG, noise, seed=5)
    r = (kp[..., :2] - uv).norm(dim=-1) / person_height(uv, valid)[:, None]
    groups = torch.as_tensor(keypoint_groups("holistic"))
    sel = (groups == GROUPS.index("torso"))[None] & (state == 0)
    assert sel.sum() > 3000
    k = noise.torso.visible
    assert (r[sel] > GROSS).float().mean().item() == pytest.approx(k.gross, abs=0.006)
    g = np.random.default_rng(0)
    ref = np.linalg.norm(k.jitter * np.exp(k.tail * g.normal(size=(200_000, 1))) * g.normal(size=(200_000, 2)), axis=1)
    ref = ref[ref <= GROSS]
    fine = r[sel & (r <= GROSS)].numpy()
    assert np.median(fine) == pytest.approx(np.median(ref), rel=0.05)
    assert np.percentile(fine, 90) == pytest.approx(np.percentile(ref, 90), rel=0.06)

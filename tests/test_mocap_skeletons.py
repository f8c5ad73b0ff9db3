"""hmrkit.data.mocap.skeletons on the BVH skeletons beyond CMU's own: the Poser / Second-Life
style skeleton of CMU subjects 60/61 (salsa) and the Reallusion Character Creator
skeleton of CMU subjects 5/6/7.

Real data: tests/data/mocap_skeletons/bvh/cmu_60_01.bvh and cmu_05_01.bvh, the first 30
frames of the shared clips, unchanged (see tests/data/README.md; a folder of their own
because tests/test_mocap.py lists tests/data/mocap exactly). The checks follow tests/test_mocap.py
for the CMU skeletons: every semantic joint is there, left is left, the body has human
proportions (the Poser figure at its own, smaller scale), knees bend backward."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hmrkit.data.mocap import SEMANTIC_NAMES, SEMANTIC_TABLES, canonicalize, load_mocap

from conftest import data_path

FRAMES = 30
# skeleton key, the figure's height (m, top of the head to the floor) for the proportions
CLIPS = {
    "poser": (("bvh", "cmu_60_01.bvh"), "cmu_bvh_poser", 1.2),   # salsa; the figure is scaled
    "cc": (("bvh", "cmu_05_01.bvh"), "cmu_bvh_cc", 1.75),        # modern dance; cm
}
K = {n: i for i, n in enumerate(SEMANTIC_NAMES)}


@pytest.fixture(scope="module", params=sorted(CLIPS))
def case(request):
    parts, skeleton, height = CLIPS[request.param]
    return request.param, load_mocap(data_path("mocap_skeletons", *parts)), skeleton, height


def semantic(clip):
    pos, mask = clip.semantic(SEMANTIC_NAMES)
    assert mask.all(), [n for n, m in zip(SEMANTIC_NAMES, mask) if not m]
    return pos.astype(np.float64)


def seg(pos, a, b):
    return np.linalg.norm(pos[:, K[a]] - pos[:, K[b]], axis=-1)


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_detected_and_every_semantic_joint_mapped(case):
    _, clip, skeleton, _ = case
    assert clip.skeleton == skeleton and clip.num_frames == FRAMES and clip.fps == 30.0
    table = SEMANTIC_TABLES[skeleton]
    assert set(table) == set(SEMANTIC_NAMES)
    pos = semantic(clip)
    assert pos.shape == (FRAMES, len(SEMANTIC_NAMES), 3) and np.isfinite(pos).all()
    # left joints come from left source joints (Poser "l...", CC "..._L_..."), right from right
    for name, srcs in table.items():
        for s in srcs:
            side = "left" if (s.startswith("l") and s[1].isupper()) or "_L_" in s or s == "leftEye" else \
                "right" if (s.startswith("r") and s[1].isupper()) or "_R_" in s or s == "rightEye" else None
            if name.startswith(("left_", "right_")) and name != "head_top":
                assert side == name.split("_")[0], (name, s)
            elif name not in ("mid_hip", "head_top"):
                assert side is None, (name, s)


def test_no_other_skeleton_claims_the_clip(case):
    _, clip, skeleton, _ = case
    have = set(clip.joint_names)
    fits = [k for k, t in SEMANTIC_TABLES.items() if all(s in have for ss in t.values() for s in ss)]
    assert fits == [skeleton]


def test_units_and_scale(case):
    # load_bvh guesses the unit from the rest-pose extent (no rescaling to a standard
    # height): the Poser file is in metres at the figure's own ~1.2 m, the CC file in cm.
    key, clip, _, _ = case
    assert clip.scale == pytest.approx({"poser": 1.0, "cc": 0.01}[key])


def test_left_is_left_after_canonicalize(case):
    _, clip, _, _ = case
    pos = semantic(clip)
    mask = np.ones(len(SEMANTIC_NAMES), bool)
    can = canonicalize(pos, mask, names=SEMANTIC_NAMES)
    np.testing.assert_allclose(can[:, K["pelvis"]], 0.0, atol=1e-6)
    for a in ("hip", "knee", "shoulder", "elbow"):
        assert (can[:, K[f"left_{a}"], 0] > can[:, K[f"right_{a}"], 0]).all(), a
    assert (can[:, K["left_hip"], 0] > 0).all() and (can[:, K["right_hip"], 0] < 0).all()
    # independent of the heading from hips and shoulders: the toes and the eyes (head_top)
    # are in front (+z); with left and right swapped the figure would face -z here.
    for s in ("left", "right"):
        ahead = can[:, K[f"{s}_foot_index"], 2] - can[:, K[f"{s}_ankle"], 2]
        assert np.median(ahead) > 0.04, s
    assert (can[:, K["head_top"], 2] - can[:, K["head"], 2] > 0.02).all()


def test_poser_rest_pose_is_a_t_pose_facing_z():
    clip = load_mocap(data_path("mocap_skeletons", *CLIPS["poser"][0]))
    rest = replace(clip, positions=clip.rest_positions[None], rotations=clip.rotations[:1])
    pos = semantic(rest)[0]
    for a in ("hip", "shoulder", "knee", "elbow", "wrist"):
        assert pos[K[f"left_{a}"], 0] > 0.03 and pos[K[f"right_{a}"], 0] < -0.03, a
    # arms out sideways (T-pose), toes forward
    assert abs(pos[K["left_wrist"], 1] - pos[K["left_shoulder"], 1]) < 0.05
    assert pos[K["left_wrist"], 0] - pos[K["left_shoulder"], 0] > 0.3
    for s in ("left", "right"):
        assert pos[K[f"{s}_foot_index"], 2] - pos[K[f"{s}_ankle"], 2] > 0.05
    # (The CC skeleton's OFFSETs are in bone-local axes: its all-zero pose is no T-pose,
    # so it has no such check; see skeletons.CMU_BVH_CC_SEMANTIC.)


def test_proportions_are_human_at_the_figures_scale(case):
    key, clip, _, height = case
    pos = semantic(clip)
    # the straightened body: legs + the spine chain up to eye level (+ ~0.05 of the
    # height for the ankle above the floor, - head above the eyes ~0.05-0.07: about equal)
    leg = seg(pos, "left_hip", "left_knee") + seg(pos, "left_knee", "left_ankle")
    chain = ("pelvis", "spine1", "spine2", "spine3", "neck", "head", "head_top")
    trunk = sum(seg(pos, a, b) for a, b in zip(chain, chain[1:]))
    h = float(np.mean(leg + trunk))
    assert 0.9 * height < h < 1.12 * height, (key, h)
    ratios = {  # fraction of the height: (lower, upper), loose anthropometric ranges
        ("left_hip", "left_knee"): (0.19, 0.30), ("right_hip", "right_knee"): (0.19, 0.30),
        ("left_knee", "left_ankle"): (0.2, 0.31), ("right_knee", "right_ankle"): (0.2, 0.31),
        ("left_shoulder", "left_elbow"): (0.13, 0.2), ("right_shoulder", "right_elbow"): (0.13, 0.2),
        ("left_elbow", "left_wrist"): (0.11, 0.17), ("right_elbow", "right_wrist"): (0.11, 0.17),
        ("left_wrist", "left_hand"): (0.03, 0.08), ("left_ankle", "left_foot"): (0.04, 0.1),
        ("left_shoulder", "right_shoulder"): (0.13, 0.24), ("left_hip", "right_hip"): (0.07, 0.13),
        ("pelvis", "neck"): (0.25, 0.36), ("neck", "head"): (0.02, 0.08),
    }
    for (a, b), (lo, hi) in ratios.items():
        r = seg(pos, a, b) / h
        if (a, b) not in (("pelvis", "neck"), ("left_shoulder", "right_shoulder")):
            assert np.ptp(r) < 1e-3, (a, b)  # one bone: constant over the frames
        assert lo < r.mean() < hi, (key, a, b, r.mean())
    # the two sides agree
    for a, b in (("hip", "knee"), ("knee", "ankle"), ("shoulder", "elbow"), ("elbow", "wrist")):
        np.testing.assert_allclose(seg(pos, f"left_{a}", f"left_{b}"), seg(pos, f"right_{a}", f"right_{b}"), rtol=0.03)
    # the spine goes up, in order
    for a, b in zip(chain, chain[1:]):
        up = (pos[:, K[b]] - pos[:, K[a]]) @ unit(pos[:, K["neck"]] - pos[:, K["pelvis"]]).T
        assert (np.diagonal(up) > 0).all(), (a, b)


def test_feet_below_the_head_y_up(case):
    _, clip, _, height = case
    pos = semantic(clip)
    head, pelvis = pos[:, K["head"], 1], pos[:, K["pelvis"], 1]
    feet = np.minimum(pos[:, K["left_ankle"], 1], pos[:, K["right_ankle"], 1])
    assert (head - pelvis > 0.2 * height).all() and (pelvis - feet > 0.3 * height).all()
    assert (pos[:, K["head_top"], 1] > pos[:, K["neck"], 1]).all()


def test_poser_feet_on_the_floor():
    pos = semantic(load_mocap(data_path("mocap_skeletons", *CLIPS["poser"][0])))
    toes = np.minimum(pos[:, K["left_foot_index"], 1], pos[:, K["right_foot_index"], 1])
    assert (-0.05 < toes).all() and (toes < 0.1).all()


def test_cc_feet_on_the_floor():
    """The CC conversion's root position channels are relative to its OFFSET (105 cm):
    read as absolute, the figure would stand 1 m below the floor."""
    pos = semantic(load_mocap(data_path("mocap_skeletons", *CLIPS["cc"][0])))
    toes = np.minimum(pos[:, K["left_foot_index"], 1], pos[:, K["right_foot_index"], 1])
    assert (-0.05 < toes).all() and (toes < 0.15).all()


def test_knees_bend_backward_and_elbows_forward(case):
    """As in tests/test_mocap.py: a swapped side or a wrong joint order bends them wrongly."""
    _, clip, _, _ = case
    pos = semantic(clip)
    g = lambda n: pos[:, K[n]]  # noqa: E731
    left = unit(g("left_hip") - g("right_hip") + g("left_shoulder") - g("right_shoulder"))
    checked = 0
    for side in ("left", "right"):
        for a, b, c, sign in (("hip", "knee", "ankle", 1), ("shoulder", "elbow", "wrist", -1)):
            upper, lower = unit(g(f"{side}_{b}") - g(f"{side}_{a}")), unit(g(f"{side}_{c}") - g(f"{side}_{b}"))
            flexion = np.degrees(np.arccos(np.clip((upper * lower).sum(-1), -1, 1)))
            posterior = np.cross(left, upper)
            bend = lower - (lower * upper).sum(-1, keepdims=True) * upper
            sel = (flexion > 15) & (np.linalg.norm(posterior, axis=-1) > 0.5)
            backward = sign * (bend * posterior).sum(-1)[sel] > 0
            checked += sel.sum()
            assert backward.all(), (side, b, backward.mean())
    assert checked > 2 * FRAMES

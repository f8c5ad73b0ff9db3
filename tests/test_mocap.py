"""hmrkit.data.mocap: BVH and ASF/AMC readers, forward kinematics, semantic joints, utilities.

Real data: tests/data/mocap, two CMU takes cut to their first frames (see
tests/data/README.md). Convention pins use small hand-made files whose expected positions
are worked out by hand in the comments."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from hmrkit.conventions import SMPL24
from hmrkit.data.mocap import (
    CMU_UNIT_M, SEMANTIC_NAMES, canonicalize, list_mocap_files, load_bvh, load_mocap, mirror,
    mirror_names, subsample,
)
from hmrkit.data import mocap as mocap_module
from hmrkit.errors import InputError

from conftest import data_path

# Cut from the CMU takes (343 and 994 frames at 120 fps) to their first frames, unchanged.
AMC = ("cmu", "02", "02_01.amc")      # 160 frames: the subject walks 1.5 m, a gait cycle and more
BVH = ("bvh", "cmu_131_01.bvh")       # 120 frames: standing, arms bent
AMC_FRAMES, BVH_FRAMES = 160, 120


def data(*parts) -> Path:
    """A file of the CMU mocap fixtures in tests/data/mocap (a failure, not a skip, when missing)."""
    return data_path("mocap", *parts)


@pytest.fixture(scope="module")
def amc_clip():
    return load_mocap(data(*AMC))


@pytest.fixture(scope="module")
def bvh_clip():
    return load_mocap(data(*BVH))


@pytest.fixture(scope="module", params=["amc", "bvh"])
def clip(request, amc_clip, bvh_clip):
    return amc_clip if request.param == "amc" else bvh_clip


def sem(clip, *names):
    pos, mask = clip.semantic(names)
    assert mask.all(), dict(zip(names, mask))
    return [pos[:, k] for k in range(len(names))]


def rest_semantic(clip, names=SEMANTIC_NAMES):
    """Semantic joints of the rest pose (all rotations identity), (K, 3)."""
    from dataclasses import replace

    rest = replace(clip, positions=clip.rest_positions[None], rotations=clip.rotations[:1])
    pos, mask = rest.semantic(names)
    assert mask.all()
    return {n: pos[0, k] for k, n in enumerate(names)}


# ----------------------------------------------------------------------------- parsing


def test_amc_parses_with_frame_count_of_the_file(amc_clip):
    path = data(*AMC)
    frame_lines = re.findall(r"(?m)^\s*\d+\s*$", path.read_text())
    assert amc_clip.num_frames == len(frame_lines) == AMC_FRAMES
    asf_bones = re.findall(r"(?m)^\s*name\s+(\S+)", data("cmu", "02", "02.asf").read_text())
    assert amc_clip.joint_names[0] == "root"
    assert sorted(amc_clip.joint_names[1:]) == sorted(asf_bones) and len(asf_bones) == 30
    assert amc_clip.positions.shape == (AMC_FRAMES, 31, 3) and amc_clip.positions.dtype == np.float32
    assert amc_clip.rotations.shape == (AMC_FRAMES, 31, 3, 3)
    assert np.isfinite(amc_clip.positions).all()
    assert amc_clip.fps == 120.0 and amc_clip.skeleton == "cmu_asf"
    assert amc_clip.scale == pytest.approx(0.0254 / 0.45)
    for j, p in enumerate(amc_clip.parents):
        assert p < j  # parents come first


def test_bvh_parses(bvh_clip):
    text = data(*BVH).read_text()
    n_frames = int(re.search(r"Frames:\s*(\d+)", text).group(1))
    joints = re.findall(r"(?m)^\s*(?:ROOT|JOINT)\s+(\S+)", text)
    n_end = len(re.findall(r"(?m)^\s*End Site", text))
    assert bvh_clip.num_frames == n_frames == BVH_FRAMES
    assert list(bvh_clip.joint_names[: 2]) == ["Hips", "LHipJoint"]
    assert [n for n in bvh_clip.joint_names if not n.endswith("_end")] == joints
    assert bvh_clip.num_joints == len(joints) + n_end
    assert bvh_clip.fps == 120.0 and bvh_clip.skeleton == "cmu_bvh"
    assert bvh_clip.scale == pytest.approx(CMU_UNIT_M)  # guessed: CMU BVH is in ASF units
    # The root position channels are the file's first three numbers, in CMU units.
    first = np.array(text.split("Frame Time:")[1].split("\n", 1)[1].split()[:3], float)
    np.testing.assert_allclose(bvh_clip.positions[0, 0], first * CMU_UNIT_M, rtol=1e-5)


def test_rotations_are_orthonormal(clip):
    R = clip.rotations[::10].astype(np.float64)
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-5)


def test_bone_lengths_constant_and_equal_to_rest(clip):
    P = clip.positions.astype(np.float64)
    for j, p in enumerate(clip.parents):
        if p < 0:
            continue
        length = np.linalg.norm(P[:, j] - P[:, p], axis=-1)
        rest = np.linalg.norm(clip.rest_positions[j] - clip.rest_positions[p])
        assert np.abs(length - rest).max() < 1e-4, clip.joint_names[j]


def test_y_is_up(clip):
    pelvis, head, lank, rank = sem(clip, "pelvis", "head", "left_ankle", "right_ankle")
    assert (head[:, 1] - pelvis[:, 1]).mean() > 0.3
    assert (pelvis[:, 1] - np.minimum(lank[:, 1], rank[:, 1])).mean() > 0.5
    # Feet on a floor near y = 0 (the capture volume's floor), not hanging in the air.
    toes = np.minimum(*sem(clip, "left_foot_index", "right_foot_index"))[:, 1]
    assert -0.1 < np.percentile(toes, 5) < 0.2


def _height_straight_legs(clip):
    """Top of the head to the ankles with the legs straightened, from the rest pose."""
    r = rest_semantic(clip)
    leg = np.mean([np.linalg.norm(r[f"{s}_knee"] - r[f"{s}_hip"]) + np.linalg.norm(r[f"{s}_ankle"] - r[f"{s}_knee"])
                   for s in ("left", "right")])
    return r["head_top"][1] - r["mid_hip"][1] + leg


def test_height_is_human(amc_clip, bvh_clip):
    # CMU ASF units (inches / 0.45): subject 02 is ~1.56 m from the top of the head to the
    # ankles (so ~1.64 m tall); while walking the head top is ~1.55 m above the toes.
    assert 1.4 < _height_straight_legs(amc_clip) < 2.0
    head_top, lt, rt = sem(amc_clip, "head_top", "left_foot_index", "right_foot_index")
    standing = np.percentile(head_top[:, 1] - np.minimum(lt[:, 1], rt[:, 1]), 95)
    assert 1.4 < standing < 2.0
    # The CMU BVH conversion of subject 131 drops the ASF thorax segment (the neck and the
    # collars start at Chest2), so its torso is ~0.1 m short: 1.39 m head top to ankles.
    assert 1.3 < _height_straight_legs(bvh_clip) < 2.0


def test_rest_pose_faces_z_with_left_on_plus_x(clip):
    r = rest_semantic(clip)
    for a, b in (("left_hip", "right_hip"), ("left_shoulder", "right_shoulder"), ("left_knee", "right_knee")):
        assert r[a][0] > 0.03 and r[b][0] < -0.03, (a, r[a], b, r[b])
    for s in ("left", "right"):  # toes point forward (+z) from the ankles
        assert r[f"{s}_foot_index"][2] - r[f"{s}_ankle"][2] > 0.1


def test_left_is_left_after_canonicalize(clip):
    pos, mask = clip.semantic(SEMANTIC_NAMES)
    can = canonicalize(pos, mask, names=SEMANTIC_NAMES)
    k = {n: i for i, n in enumerate(SEMANTIC_NAMES)}
    np.testing.assert_allclose(can[:, k["pelvis"]], 0.0, atol=1e-6)
    assert (can[:, k["left_hip"], 0] > 0).all() and (can[:, k["right_hip"], 0] < 0).all()
    # Independent of how the heading is computed (hips and shoulders): the toes point
    # forward, to +z. Were CMU's l/r the viewer's left, the subject would face -z here.
    for s in ("left", "right"):
        ahead = can[:, k[f"{s}_foot_index"], 2] - can[:, k[f"{s}_ankle"], 2]
        assert np.median(ahead) > 0.05
    # and the heading removal keeps the pose rigid
    d0 = np.linalg.norm(pos[:, :, None] - pos[:, None], axis=-1)
    d1 = np.linalg.norm(can[:, :, None] - can[:, None], axis=-1)
    np.testing.assert_allclose(d0, d1, atol=1e-4)


def test_knees_bend_backward_and_elbows_forward(clip):
    """Anatomy checks the rotation conventions on real motion: with the wrong Euler order
    or C^-1 M C instead of C M C^-1, CMU knees or elbows bend the wrong way."""
    names = ("left_hip", "right_hip", "left_shoulder", "right_shoulder", "left_knee", "right_knee",
             "left_ankle", "right_ankle", "left_elbow", "right_elbow", "left_wrist", "right_wrist")
    d = dict(zip(names, sem(clip, *names)))
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    left = unit(d["left_hip"] - d["right_hip"] + d["left_shoulder"] - d["right_shoulder"])
    for side in ("left", "right"):
        for a, b, c, sign in (("hip", "knee", "ankle", 1), ("shoulder", "elbow", "wrist", -1)):
            upper = unit(d[f"{side}_{b}"] - d[f"{side}_{a}"])
            lower = unit(d[f"{side}_{c}"] - d[f"{side}_{b}"])
            flexion = np.degrees(np.arccos(np.clip((upper * lower).sum(-1), -1, 1)))
            # posterior of the upper segment, turning about the body's left-right axis:
            # for a hanging thigh (down) it is -z (back), for a raised one it is down.
            posterior = np.cross(left, upper)
            bend = lower - (lower * upper).sum(-1, keepdims=True) * upper
            sel = (flexion > 25) & (np.linalg.norm(posterior, axis=-1) > 0.5)
            assert sel.sum() > 50
            backward = sign * (bend * posterior).sum(-1)[sel] > 0
            assert backward.mean() > 0.97, (side, b, backward.mean())


def test_semantic_mask_and_tables(clip):
    pos, mask = clip.semantic(SMPL24)
    assert pos.shape == (clip.num_frames, 24, 3) and mask.all()
    pos, mask = clip.semantic(("left_knee", "nose"))
    assert mask.tolist() == [True, False] and (pos[:, 1] == 0).all()
    table = mocap_module.SEMANTIC_TABLES[clip.skeleton]
    for name in SEMANTIC_NAMES:  # every table covers every semantic name, both sides
        assert name in table


def test_semantic_joints_sit_where_bones_start(amc_clip):
    # ASF positions are bone ends: the knee is the end of lfemur = where ltibia starts, so
    # |knee - hip| is the femur's length, |ankle - knee| the tibia's.
    c = amc_clip
    asf = mocap_module.load_asf(data("cmu", "02", "02.asf"))
    length = dict(zip(asf.names, asf.lengths * asf.scale))
    hip, knee, ankle, foot = sem(c, "left_hip", "left_knee", "left_ankle", "left_foot")
    np.testing.assert_allclose(np.linalg.norm(knee - hip, axis=-1), length["lfemur"], rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(ankle - knee, axis=-1), length["ltibia"], rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(foot - ankle, axis=-1), length["lfoot"], rtol=1e-4)
    sh, el, wr = sem(c, "left_shoulder", "left_elbow", "left_wrist")
    np.testing.assert_allclose(np.linalg.norm(el - sh, axis=-1), length["lhumerus"], rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(wr - el, axis=-1), length["lradius"], rtol=1e-4)


# ------------------------------------------------------------------- convention pins


PIN_BVH = """HIERARCHY
ROOT hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT knee
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT ankle
    {
      OFFSET 0 0 5
      CHANNELS 3 Zrotation Yrotation Xrotation
      End Site
      {
        OFFSET 1 0 0
      }
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.04
1 2 3 90 0 0 0 0 0 0 0 0
0 0 0 0 0 0 90 90 0 0 0 0
"""


def test_bvh_convention_pin(tmp_path):
    path = tmp_path / "pin.bvh"
    path.write_text(PIN_BVH)
    clip = load_bvh(path, scale=1.0)
    assert clip.joint_names == ("hips", "knee", "ankle", "ankle_end")
    assert clip.parents == (-1, 0, 1, 2) and clip.fps == 25.0
    # Frame 0: hips at (1, 2, 3) turned 90 deg about z (x -> y, y -> -x):
    #   knee = (1,2,3) + Rz90 (0,10,0) = (-9, 2, 3); ankle = knee + Rz90 (0,0,5) = (-9, 2, 8);
    #   end = ankle + Rz90 (1,0,0) = (-9, 3, 8).
    # Frame 1: knee channels "Z X Y" = 90, 90, 0, so R_knee = Rz90 @ Rx90:
    #   ankle = (0,10,0) + Rz90 Rx90 (0,0,5) = (0,10,0) + Rz90 (0,-5,0) = (5, 10, 0)
    #   end = ankle + Rz90 Rx90 (1,0,0) = (5, 10, 0) + (0, 1, 0) = (5, 11, 0)
    #   (the other order, Rx90 Rz90, would put the ankle at (0, 5, 0)).
    expected = np.array([
        [[1, 2, 3], [-9, 2, 3], [-9, 2, 8], [-9, 3, 8]],
        [[0, 0, 0], [0, 10, 0], [5, 10, 0], [5, 11, 0]],
    ], float)
    np.testing.assert_allclose(clip.positions, expected, atol=1e-5)
    np.testing.assert_allclose(clip.rest_positions, [[0, 0, 0], [0, 10, 0], [0, 10, 5], [1, 10, 5]], atol=1e-6)


PIN_ASF = """# hand-made
:version 1.10
:name pin
:units
  mass 1.0
  length {length}
  angle deg
:documentation
   a two-bone skeleton
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name a
     direction 0 0 1
     length 2
     axis 0 0 90 XYZ
    dof rx
    limits (-180.0 180.0)
  end
  begin
     id 2
     name b
     direction 0 1 0
     length 1
     axis 0 0 0 XYZ
  end
:hierarchy
  begin
    root a
    a b
  end
"""

PIN_AMC = """#!hand-made
:FULLY-SPECIFIED
:DEGREES
1
root 1 2 3 0 0 0
a 0
2
root 0 0 0 90 0 90
a 0
3
root 0 0 0 0 0 0
a 90
"""


def _write_pin_asf(folder: Path, length="1.0") -> Path:
    (folder / "pin.asf").write_text(PIN_ASF.replace("{length}", length))
    amc = folder / "pin_01.amc"
    amc.write_text(PIN_AMC)
    return amc


def test_asf_amc_convention_pin(tmp_path):
    amc = _write_pin_asf(tmp_path)
    clip = mocap_module.load_amc(amc, scale=1.0)
    assert clip.joint_names == ("root", "a", "b") and clip.parents == (-1, 0, 1)
    # Frame 1: root at (1, 2, 3), no rotation: a ends at +2 z, b at +1 y from there.
    # Frame 2: root "RX RY RZ" = 90, 0, 90 about fixed axes, X first: L = Rz90 @ Rx90.
    #   a: Rx90 (0,0,2) = (0,-2,0), Rz90 -> (2,0,0).  b: Rx90 (0,1,0) = (0,0,1), Rz90 -> same.
    #   (X after Z would give a = (0,-2,0).)
    # Frame 3: a's dof rx = 90 in its axis frame C = Rz90: C Rx90 C^-1 is 90 deg about
    #   C x = +y, so a = Ry90 (0,0,2) = (2,0,0); b follows a: Ry90 (0,1,0) = (0,1,0).
    #   (Without C: Rx90 (0,0,2) = (0,-2,0).)
    expected = np.array([
        [[1, 2, 3], [1, 2, 5], [1, 3, 5]],
        [[0, 0, 0], [2, 0, 0], [2, 0, 1]],
        [[0, 0, 0], [2, 0, 0], [2, 1, 0]],
    ], float)
    np.testing.assert_allclose(clip.positions, expected, atol=1e-5)
    # Units: lengths are inches / ':units length'; CMU's 0.45 -> 0.0254 / 0.45 m per unit.
    np.testing.assert_allclose(mocap_module.load_amc(amc).positions, expected * 0.0254, atol=1e-6)
    amc = _write_pin_asf(tmp_path, length="0.45")
    np.testing.assert_allclose(load_mocap(amc).positions, expected * 0.0254 / 0.45, atol=1e-6)


def test_asf_fk_agrees_with_bvh_fk_on_reencoded_clip(amc_clip, tmp_path):
    """Re-encode ASF FK output as a BVH (offsets = bone vectors, rotation channels = ZYX
    Euler angles of the local rotations, computed by scipy) and read it back with the
    BVH reader: two FK implementations and conventions must agree."""
    from scipy.spatial.transform import Rotation

    c = amc_clip
    frames = slice(0, AMC_FRAMES, 3)
    P, R = c.positions[frames].astype(np.float64), c.rotations[frames].astype(np.float64)
    children = {j: [k for k, p in enumerate(c.parents) if p == j] for j in range(c.num_joints)}
    bone = {j: c.rest_positions[j] - c.rest_positions[c.parents[j]] for j in range(1, c.num_joints)}
    lines, columns = ["HIERARCHY"], []

    def write(j, offset, depth):
        ind = "  " * depth
        lines.append(f"{ind}{'ROOT' if j == 0 else 'JOINT'} {c.joint_names[j]}")
        lines.append(f"{ind}{{")
        lines.append(f"{ind}  OFFSET {offset[0]:.9g} {offset[1]:.9g} {offset[2]:.9g}")
        if j == 0:
            lines.append(f"{ind}  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation")
            columns.append(P[:, 0])
        else:
            lines.append(f"{ind}  CHANNELS 3 Zrotation Yrotation Xrotation")
        columns.append(Rotation.from_matrix(R[:, j]).as_euler("ZYX", degrees=True))
        # ASF bone j starts at its parent's end: its BVH children sit at the end of bone j.
        child_offset = np.zeros(3) if j == 0 else bone[j]
        for k in children[j]:
            write(k, child_offset, depth + 1)
        if not children[j]:
            lines.extend([f"{ind}  End Site", f"{ind}  {{",
                          f"{ind}    OFFSET {child_offset[0]:.9g} {child_offset[1]:.9g} {child_offset[2]:.9g}",
                          f"{ind}  }}"])
        lines.append(f"{ind}}}")

    write(0, np.zeros(3), 0)
    motion = np.concatenate(columns, axis=1)
    lines += ["MOTION", f"Frames: {len(motion)}", "Frame Time: 0.0083333333"]
    lines += [" ".join(f"{v:.9g}" for v in row) for row in motion]
    path = tmp_path / "reencoded.bvh"
    path.write_text("\n".join(lines) + "\n")
    b = load_bvh(path, scale=1.0)
    bi = {n: i for i, n in enumerate(b.joint_names)}
    for j in range(1, c.num_joints):
        start = P[:, c.parents[j]]  # ASF: where bone j starts = its parent's end
        np.testing.assert_allclose(b.positions[:, bi[c.joint_names[j]]], start, atol=2e-4)
        if not children[j]:
            np.testing.assert_allclose(b.positions[:, bi[c.joint_names[j] + "_end"]], P[:, j], atol=2e-4)


def test_amc_fast_reader_equals_line_reader(tmp_path):
    path = data(*AMC)
    asf = mocap_module.load_asf(data("cmu", "02", "02.asf"))
    text = path.read_text()
    fast = mocap_module._parse_amc(text, asf)
    slow = mocap_module._parse_amc(text, asf, fast=False)
    assert fast[0].keys() == slow[0].keys()
    for k in fast[0]:
        np.testing.assert_array_equal(fast[0][k], slow[0][k])
    np.testing.assert_array_equal(fast[1], slow[1])
    # A frame with its bones in another order (legal AMC) falls back to the line reader.
    lines = text.splitlines()
    i = lines.index("2")
    lines[i + 1], lines[i + 2] = lines[i + 2], lines[i + 1]
    shutil.copy(data("cmu", "02", "02.asf"), tmp_path / "02.asf")
    (tmp_path / "02_01.amc").write_text("\n".join(lines) + "\n")
    np.testing.assert_array_equal(load_mocap(tmp_path / "02_01.amc").positions, load_mocap(path).positions)


def test_bvh_unit_guess(tmp_path):
    # A 1.7 m tall stick in each candidate unit is read back at 1.7 m.
    for unit, metres_per_unit in (("m", 1.0), ("cm", 0.01), ("mm", 0.001), ("inch", 0.0254), ("cmu", CMU_UNIT_M)):
        h = 1.7 / metres_per_unit
        path = tmp_path / f"stick_{unit}.bvh"
        path.write_text(
            "HIERARCHY\nROOT a\n{\n OFFSET 0 0 0\n CHANNELS 3 Zrotation Yrotation Xrotation\n"
            f" End Site\n {{\n  OFFSET 0 {h:.6g} 0\n }}\n}}\nMOTION\nFrames: 1\nFrame Time: 0.01\n0 0 0\n")
        clip = load_bvh(path)
        assert clip.scale == metres_per_unit, unit
        assert clip.positions[0, 1, 1] == pytest.approx(1.7, rel=1e-5)


def test_cgspeed_cmu_bvh_is_recognised(tmp_path):
    # The common "MotionBuilder-friendly" CMU BVH naming; a chain per limb is enough.
    chains = [
        ["LHipJoint", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase"],
        ["RHipJoint", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase"],
        ["LowerBack", "Spine", "Spine1", "Neck", "Neck1", "Head"],
        ["LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "LeftFingerBase"],
        ["RightShoulder", "RightArm", "RightForeArm", "RightHand", "RightFingerBase"],
    ]
    lines = ["HIERARCHY", "ROOT Hips", "{", "OFFSET 0 0 0",
             "CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation"]
    n = 0
    for ci, chain in enumerate(chains):
        for k, name in enumerate(chain):
            lines += [f"JOINT {name}", "{", f"OFFSET {ci} {k + 1} 0", "CHANNELS 3 Zrotation Yrotation Xrotation"]
            n += 1
        lines += ["End Site", "{", "OFFSET 0 1 0", "}"] + ["}"] * len(chain)
    lines += ["}", "MOTION", "Frames: 1", "Frame Time: 0.0333333", " ".join(["0"] * (6 + 3 * n))]
    path = tmp_path / "cgspeed.bvh"
    path.write_text("\n".join(lines))
    clip = load_bvh(path, scale=1.0)
    assert clip.skeleton == "cmu_bvh_cgspeed" and clip.fps == 30.0
    got, mask = clip.semantic(("left_knee", "head_top", "left_wrist"))
    assert mask.all()
    idx = {n: i for i, n in enumerate(clip.joint_names)}
    np.testing.assert_allclose(got[0], clip.positions[0, [idx["LeftLeg"], idx["Head_end"], idx["LeftHand"]]])


# ------------------------------------------------------------------------ utilities


def test_subsample(amc_clip):
    s = subsample(amc_clip, 30)
    n = AMC_FRAMES
    assert s.fps == 30.0 and s.num_frames == (n - 1) // 4 + 1
    np.testing.assert_array_equal(s.positions, amc_clip.positions[::4])
    np.testing.assert_array_equal(s.rotations, amc_clip.rotations[::4])
    s = subsample(amc_clip, 50)  # non-integer ratio: nearest frames, 2.4 apart
    assert s.num_frames == int((n - 1) * 50 / 120) + 1
    np.testing.assert_array_equal(s.positions[:4], amc_clip.positions[[0, 2, 5, 7]])
    assert subsample(amc_clip, 120).num_frames == n
    with pytest.raises(ValueError):
        subsample(amc_clip, 240)


def test_list_mocap_files():
    files = list_mocap_files(data())
    assert [f.relative_to(data()).as_posix() for f in files] == ["bvh/cmu_131_01.bvh", "cmu/02/02_01.amc"]
    assert {f.suffix for f in files} == {".amc", ".bvh"}
    with pytest.raises(InputError, match="nowhere"):
        list_mocap_files(data() / "nowhere")


def test_mirror(amc_clip):
    pos, mask = amc_clip.semantic(SMPL24)
    m = mirror(pos, SMPL24)
    k = {n: i for i, n in enumerate(SMPL24)}
    np.testing.assert_allclose(m[:, k["left_hip"]], pos[:, k["right_hip"]] * [-1, 1, 1])
    np.testing.assert_allclose(m[:, k["spine1"]], pos[:, k["spine1"]] * [-1, 1, 1])
    np.testing.assert_array_equal(mirror(m, SMPL24), pos)
    # equivariance: canonicalising the mirror image mirrors the canonical pose
    np.testing.assert_allclose(canonicalize(m, mask), mirror(canonicalize(pos, mask), SMPL24), atol=1e-5)
    # source names: CMU one-letter prefixes and Left/Right; central joints stay
    names = amc_clip.joint_names
    flip = mirror_names(names)
    assert names[flip[names.index("lfemur")]] == "rfemur"
    assert names[flip[names.index("lowerback")]] == "lowerback"
    bnames = ("Hips", "LHipJoint", "LeftHip", "RHipJoint", "RightHip", "lowerback", "lhand", "rhand")
    assert [bnames[i] for i in mirror_names(bnames)] == [
        "Hips", "RHipJoint", "RightHip", "LHipJoint", "LeftHip", "lowerback", "rhand", "lhand"]


def test_canonicalize_whole_sequence_keeps_the_trajectory(amc_clip):
    pos, mask = amc_clip.semantic(SMPL24)
    can = canonicalize(pos, mask, per_frame=False)
    np.testing.assert_allclose(can[0], canonicalize(pos[:1], mask)[0], atol=1e-6)
    pel = pos[:, 0]
    step = np.linalg.norm(pel[-1] - pel[0])
    assert step > 0.5  # the subject walks
    np.testing.assert_allclose(np.linalg.norm(can[-1, 0] - can[0, 0]), step, rtol=1e-5)


# --------------------------------------------------------------------------- errors


def _assert_input_error(path, match=None, names=None):
    with pytest.raises(InputError) as info:
        load_mocap(path)
    msg = str(info.value)
    assert (names or Path(path).name) in msg and "\n" not in msg, msg
    if match:
        assert re.search(match, msg), msg
    return msg


def test_bad_files_raise_input_error(tmp_path):
    _assert_input_error(tmp_path / "nope.bvh", "no such file")
    (tmp_path / "empty.bvh").write_text("")
    _assert_input_error(tmp_path / "empty.bvh", "empty")
    (tmp_path / "junk.bvh").write_bytes(bytes(range(256)) * 10)
    _assert_input_error(tmp_path / "junk.bvh", "binary")
    (tmp_path / "take.c3d").write_text("x")
    _assert_input_error(tmp_path / "take.c3d", "unsupported")

    bvh = data(*BVH).read_text()
    (tmp_path / "cut_motion.bvh").write_text(bvh[: int(len(bvh) * 0.6)])
    _assert_input_error(tmp_path / "cut_motion.bvh", "truncated")
    (tmp_path / "cut_hier.bvh").write_text(bvh[:2000])
    _assert_input_error(tmp_path / "cut_hier.bvh", "MOTION")
    bad_channel = PIN_BVH.replace("Zrotation Xrotation Yrotation", "Zrotation Xrotation Wrotation")
    (tmp_path / "channel.bvh").write_text(bad_channel)
    _assert_input_error(tmp_path / "channel.bvh", "Wrotation")
    (tmp_path / "nan.bvh").write_text(PIN_BVH.replace("1 2 3 90", "1 2 3 abc"))
    _assert_input_error(tmp_path / "nan.bvh", "non-numeric")

    # AMC: no skeleton beside it, truncated last frame, truncated line, unknown bone.
    amc = data(*AMC).read_text()
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "02_01.amc").write_text(amc)
    _assert_input_error(lonely / "02_01.amc", r"\.asf")
    shutil.copy(data("cmu", "02", "02.asf"), tmp_path / "02.asf")
    lines = amc.rstrip().splitlines()
    (tmp_path / "02_01.amc").write_text("\n".join(lines[:-5]) + "\n")
    _assert_input_error(tmp_path / "02_01.amc", "truncated")
    (tmp_path / "02_02.amc").write_text(amc.rstrip()[:-12])
    _assert_input_error(tmp_path / "02_02.amc", "truncated")
    (tmp_path / "02_03.amc").write_text(amc.replace("lfemur", "lfemurX", 1))
    _assert_input_error(tmp_path / "02_03.amc", "unknown bone 'lfemurX'")
    _assert_input_error(tmp_path / "02.asf", "skeleton")

    # A broken ASF: the error names the .asf.
    (tmp_path / "bad").mkdir()
    asf = data("cmu", "02", "02.asf").read_text()
    (tmp_path / "bad" / "02.asf").write_text(asf.replace("lhipjoint lfemur", "lhipjoint lfemurr"))
    (tmp_path / "bad" / "02_01.amc").write_text(amc)
    _assert_input_error(tmp_path / "bad" / "02_01.amc", "lfemurr", names="02.asf")

"""Skeleton name tables: which source joints make each of hmrkit's semantic joints.

A semantic joint (``conventions.SMPL24`` and a few extras, ``SEMANTIC_NAMES``) is where its
body part starts (the knee is where the shin starts). Each table maps a semantic name to
the source joints whose positions are averaged; ``detect_skeleton`` names the table a
clip's joints fit. Where a source joint *is* depends on the format (``hmrkit.data.mocap``).
"""

from __future__ import annotations

from typing import Sequence

from hmrkit.conventions import SMPL24

# --------------------------------------------------------------------------------------
# Semantic mapping tables: semantic name -> source joints whose positions are averaged.
# --------------------------------------------------------------------------------------

# CMU ASF (Vicon BodyBuilder skeleton). Positions are bone ENDS, so each semantic joint
# is the end of the bone before it: hip = end of lhipjoint (= start of lfemur), knee = end
# of lfemur, ankle = end of ltibia, foot (ball of the foot) = end of lfoot (= start of
# ltoes). Spine: lowerback/upperback/thorax ends ~0.12/0.23/0.35 m above the root, which
# match SMPL's spine1/2/3; the thorax end is also where the clavicles start. neck = end of
# lowerneck (base of the neck, just above the shoulder line), head = end of upperneck
# (skull base / head centre; SMPL's head joint), head_top = end of head. The collar is the
# middle of the clavicle (SMPL's collar joint lies between sternum and shoulder).
# Wrist = end of lradius: the CMU ``lwrist`` segment (0.1 m, a single twist dof ``ry``)
# and ``lhand``/``lfingers`` (0.04 + 0.03 m) are the hand: radius end -> fingers end is
# 0.17 m, a hand's length, while the arm span then matches the height. SMPL's hand joint
# (knuckles, ~8 cm past the wrist) is the end of ``lwrist``.
CMU_ASF_SEMANTIC: dict[str, tuple[str, ...]] = {
    "pelvis": ("root",),
    "mid_hip": ("lhipjoint", "rhipjoint"),
    "left_hip": ("lhipjoint",),
    "right_hip": ("rhipjoint",),
    "spine1": ("lowerback",),
    "left_knee": ("lfemur",),
    "right_knee": ("rfemur",),
    "spine2": ("upperback",),
    "left_ankle": ("ltibia",),
    "right_ankle": ("rtibia",),
    "spine3": ("thorax",),
    "left_foot": ("lfoot",),
    "right_foot": ("rfoot",),
    "left_foot_index": ("ltoes",),
    "right_foot_index": ("rtoes",),
    "neck": ("lowerneck",),
    "left_collar": ("thorax", "lclavicle"),
    "right_collar": ("thorax", "rclavicle"),
    "head": ("upperneck",),
    "head_top": ("head",),
    "left_shoulder": ("lclavicle",),
    "right_shoulder": ("rclavicle",),
    "left_elbow": ("lhumerus",),
    "right_elbow": ("rhumerus",),
    "left_wrist": ("lradius",),
    "right_wrist": ("rradius",),
    "left_hand": ("lwrist",),
    "right_hand": ("rwrist",),
}

# CMU BVH as in ../shared/data/mocap/bvh (subject 131; 31 joints + End Sites). Positions
# are joint (bone start) positions, so names map directly. Quirks of this conversion: the
# ASF thorax and lwrist segments have zero length (``lowerneck`` and the collars sit on
# ``Chest2``, ``lhand`` on ``LeftWrist``), so spine3 coincides with spine2, and the hand
# joint is taken one segment further (``LFingers``).
CMU_BVH_SEMANTIC: dict[str, tuple[str, ...]] = {
    "pelvis": ("Hips",),
    "mid_hip": ("LeftHip", "RightHip"),
    "left_hip": ("LeftHip",),
    "right_hip": ("RightHip",),
    "spine1": ("Chest",),
    "left_knee": ("LeftKnee",),
    "right_knee": ("RightKnee",),
    "spine2": ("Chest2",),
    "left_ankle": ("LeftAnkle",),
    "right_ankle": ("RightAnkle",),
    "spine3": ("lowerneck",),
    "left_foot": ("LeftToe",),
    "right_foot": ("RightToe",),
    "left_foot_index": ("LeftToe_end",),
    "right_foot_index": ("RightToe_end",),
    "neck": ("Neck",),
    "left_collar": ("LeftCollar", "LeftShoulder"),
    "right_collar": ("RightCollar", "RightShoulder"),
    "head": ("Head",),
    "head_top": ("Head_end",),
    "left_shoulder": ("LeftShoulder",),
    "right_shoulder": ("RightShoulder",),
    "left_elbow": ("LeftElbow",),
    "right_elbow": ("RightElbow",),
    "left_wrist": ("LeftWrist",),
    "right_wrist": ("RightWrist",),
    "left_hand": ("LFingers",),
    "right_hand": ("RFingers",),
}

# The widely distributed "MotionBuilder-friendly" CMU BVH conversion (cgspeed): Hips,
# LHipJoint, LeftUpLeg, LeftLeg, LeftFoot, LeftToeBase, LowerBack, Spine, Spine1, Neck,
# Neck1, Head, LeftShoulder (clavicle), LeftArm, LeftForeArm, LeftHand, LeftFingerBase,
# LeftHandIndex1, LThumb. Written from that published hierarchy; the shared data does not
# contain such a file (only the synthetic test exercises this table).
CMU_BVH_CGSPEED_SEMANTIC: dict[str, tuple[str, ...]] = {
    "pelvis": ("Hips",),
    "mid_hip": ("LeftUpLeg", "RightUpLeg"),
    "left_hip": ("LeftUpLeg",),
    "right_hip": ("RightUpLeg",),
    "spine1": ("Spine",),
    "left_knee": ("LeftLeg",),
    "right_knee": ("RightLeg",),
    "spine2": ("Spine1",),
    "left_ankle": ("LeftFoot",),
    "right_ankle": ("RightFoot",),
    "spine3": ("Neck",),
    "left_foot": ("LeftToeBase",),
    "right_foot": ("RightToeBase",),
    "left_foot_index": ("LeftToeBase_end",),
    "right_foot_index": ("RightToeBase_end",),
    "neck": ("Neck1",),
    "left_collar": ("LeftShoulder", "LeftArm"),
    "right_collar": ("RightShoulder", "RightArm"),
    "head": ("Head",),
    "head_top": ("Head_end",),
    "left_shoulder": ("LeftArm",),
    "right_shoulder": ("RightArm",),
    "left_elbow": ("LeftForeArm",),
    "right_elbow": ("RightForeArm",),
    "left_wrist": ("LeftHand",),
    "right_wrist": ("RightHand",),
    "left_hand": ("LeftFingerBase",),
    "right_hand": ("RightFingerBase",),
}

SEMANTIC_TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "cmu_asf": CMU_ASF_SEMANTIC,
    "cmu_bvh": CMU_BVH_SEMANTIC,
    "cmu_bvh_cgspeed": CMU_BVH_CGSPEED_SEMANTIC,
}
# Every semantic name some table provides: SMPL24 plus head_top, *_foot_index, mid_hip.
SEMANTIC_NAMES: tuple[str, ...] = SMPL24 + ("mid_hip", "head_top", "left_foot_index", "right_foot_index")


def detect_skeleton(joint_names: Sequence[str]) -> str:
    """The key of SEMANTIC_TABLES whose source joints are all in ``joint_names``, or "unknown"."""
    have = set(joint_names)
    for key, table in SEMANTIC_TABLES.items():
        if all(src in have for srcs in table.values() for src in srcs):
            return key
    return "unknown"

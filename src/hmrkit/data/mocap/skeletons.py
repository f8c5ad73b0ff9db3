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

# Poser / Second-Life style BVH (CMU subjects 60 and 61, salsa, in ../shared/data/mocap/bvh:
# hip, abdomen, chest, neck, head, l/rCollar, l/rShldr, l/rForeArm, l/rHand, fingers,
# l/rButtock, l/rThigh, l/rShin, l/rFoot + End Site, eyes). Positions are joint (bone
# start) positions; the rest pose is a T-pose facing +z with left on +x, like CMU. The
# figure is uniformly scaled (about 1.2 m tall, in metres in the file), so heights in
# the comments are of that figure. Spine: ``hip`` -> ``abdomen`` is 0.16 m, so spine1
# (SMPL/CMU: ~0.07 of the body height above the pelvis) is the middle of that bone, spine2 =
# abdomen, spine3 = chest (0.25 m above the root, scaled: SMPL's ~0.35 m of 1.7 m). The
# hip joint is ``lThigh`` (``lButtock`` is a short bone 1-2 cm from it). There is no
# toe bone: the foot's End Site (0.1 m ahead of the ankle, the ball of the foot) is both
# the foot and the foot_index. There is no crown either: head_top is the middle of the
# eyes (0.06 m above and 0.06 m in front of ``head`` in the rest pose; eye level, some
# 0.1 m of a full-size body below the crown). Hand (knuckles) = ``lMid1``; collar = middle of
# ``lCollar`` (its sternal end) and ``lShldr``.
CMU_BVH_POSER_SEMANTIC: dict[str, tuple[str, ...]] = {
    "pelvis": ("hip",),
    "mid_hip": ("lThigh", "rThigh"),
    "left_hip": ("lThigh",),
    "right_hip": ("rThigh",),
    "spine1": ("hip", "abdomen"),
    "left_knee": ("lShin",),
    "right_knee": ("rShin",),
    "spine2": ("abdomen",),
    "left_ankle": ("lFoot",),
    "right_ankle": ("rFoot",),
    "spine3": ("chest",),
    "left_foot": ("lFoot_end",),
    "right_foot": ("rFoot_end",),
    "left_foot_index": ("lFoot_end",),
    "right_foot_index": ("rFoot_end",),
    "neck": ("neck",),
    "left_collar": ("lCollar", "lShldr"),
    "right_collar": ("rCollar", "rShldr"),
    "head": ("head",),
    "head_top": ("leftEye", "rightEye"),
    "left_shoulder": ("lShldr",),
    "right_shoulder": ("rShldr",),
    "left_elbow": ("lForeArm",),
    "right_elbow": ("rForeArm",),
    "left_wrist": ("lHand",),
    "right_wrist": ("rHand",),
    "left_hand": ("lMid1",),
    "right_hand": ("rMid1",),
}

# Reallusion Character Creator ("CC_Base_*", 100 joints + End Sites = 141; CMU subjects 5,
# 6, 7 in ../shared/data/mocap/bvh, in cm; cmu_07_01 has an extra root ``RL_BoneRoot``).
# Positions are joint (bone start) positions. Unlike the other BVH skeletons, every OFFSET
# is in its parent's own bone axes (the bones run along their local +y), so the pose with
# all rotations zero (``MocapClip.rest_positions``) is NOT a T-pose: only posed frames
# mean anything. Twist and "ShareBone" joints sit on their parents and are not used.
# Heights above the root (cm, from the offsets): Hip = Pelvis 0, thighs -2, Waist 8,
# Spine01 13, Spine02 27, clavicles 48, NeckTwist01 55 (the base of the neck),
# NeckTwist02 59, Head 63 (skull base). spine1 = Spine01, spine2 = Spine02; the chest bone
# Spine02 -> NeckTwist01 has no joint in between, so spine3 is the middle of it (41 cm,
# on the bone). No crown: head_top is the middle of the eyes (eye level, ~0.1 m below the
# crown; ~12 cm from ``CC_Base_Head``, mostly forward). Ball of the foot = ToeBase (13 cm ahead of the ankle);
# the toes (BigToe1 ... PinkyToe1, 2-4 cm further, their End Sites have zero length) are
# averaged for foot_index. Hand (knuckles) = Mid1; collar = middle of Clavicle (its
# sternal end) and Upperarm.
_CC = "CC_Base_"
CMU_BVH_CC_SEMANTIC: dict[str, tuple[str, ...]] = {
    "pelvis": (_CC + "Hip",),
    "mid_hip": (_CC + "L_Thigh", _CC + "R_Thigh"),
    "left_hip": (_CC + "L_Thigh",),
    "right_hip": (_CC + "R_Thigh",),
    "spine1": (_CC + "Spine01",),
    "left_knee": (_CC + "L_Calf",),
    "right_knee": (_CC + "R_Calf",),
    "spine2": (_CC + "Spine02",),
    "left_ankle": (_CC + "L_Foot",),
    "right_ankle": (_CC + "R_Foot",),
    "spine3": (_CC + "Spine02", _CC + "NeckTwist01"),
    "left_foot": (_CC + "L_ToeBase",),
    "right_foot": (_CC + "R_ToeBase",),
    "left_foot_index": tuple(f"{_CC}L_{t}Toe1" for t in ("Big", "Index", "Mid", "Ring", "Pinky")),
    "right_foot_index": tuple(f"{_CC}R_{t}Toe1" for t in ("Big", "Index", "Mid", "Ring", "Pinky")),
    "neck": (_CC + "NeckTwist01",),
    "left_collar": (_CC + "L_Clavicle", _CC + "L_Upperarm"),
    "right_collar": (_CC + "R_Clavicle", _CC + "R_Upperarm"),
    "head": (_CC + "Head",),
    "head_top": (_CC + "L_Eye", _CC + "R_Eye"),
    "left_shoulder": (_CC + "L_Upperarm",),
    "right_shoulder": (_CC + "R_Upperarm",),
    "left_elbow": (_CC + "L_Forearm",),
    "right_elbow": (_CC + "R_Forearm",),
    "left_wrist": (_CC + "L_Hand",),
    "right_wrist": (_CC + "R_Hand",),
    "left_hand": (_CC + "L_Mid1",),
    "right_hand": (_CC + "R_Mid1",),
}

SEMANTIC_TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "cmu_asf": CMU_ASF_SEMANTIC,
    "cmu_bvh": CMU_BVH_SEMANTIC,
    "cmu_bvh_cgspeed": CMU_BVH_CGSPEED_SEMANTIC,
    "cmu_bvh_poser": CMU_BVH_POSER_SEMANTIC,
    "cmu_bvh_cc": CMU_BVH_CC_SEMANTIC,
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

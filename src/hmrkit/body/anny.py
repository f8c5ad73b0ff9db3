"""Anny (NAVER, Apache-2.0) behind hmrkit's BodyModel interface.

Frames. Anny works Z-up, the body facing -Y, its left at +X. hmrkit presents every body
model in SMPL's frame (Y up, facing +Z, left at +X): ``BODY_FROM_ANNY`` maps one to the
other, and the pelvis (Anny's root bone head) sits at the origin for every shape, so
``transl`` is the pelvis position.

Regression skeleton. Anny's rig has 104 bones (five spine bones, three neck bones, twist
bones in the upper and lower limbs, toes, metacarpals, fingers, eyes). The methods regress
a smaller skeleton comparable to SMPL-H's: the root (``global_orient``), 21 body joints
with SMPL's names and 30 finger joints (3 per finger, thumb to pinky, per hand), 51 pose
rotations in all. ``ANNY_SKELETON`` lists, for each joint, the Anny bones it drives:

- a joint over several chained bones (spine1 = spine05 + spine04, spine2 = spine03 +
  spine02, neck = neck01 + neck02, head = neck03 + head) spreads its rotation evenly, each
  bone taking R^(1/n). Anny's ``local-ref`` deltas are expressed in world-aligned axes, so
  chained deltas compose to exactly R;
- twist bones (upperleg02, lowerleg02, upperarm02, lowerarm02), ``shoulder01``, the
  metacarpals, the pelvis offset bones and the eyes stay at rest: a limb's twist is
  carried by its main bone, whose children follow;
- ``left_foot``/``right_foot`` (the ball of the foot, as SMPL's) drive the five first toe
  bones together; the other toe phalanges stay at rest.

Rotations in ``BodyParams.pose`` are local rotations in the body frame's axes at rest
(the ``local-ref`` parameterisation, conjugated into hmrkit's frame).

Shape. ``BodyParams.shape`` holds Anny's six phenotypes, each in [0, 1] (``SHAPE_RANGE``):
gender (0 male, 1 female), age (0 baby, 1/3 child, 2/3 young adult, 1 elder; Anny's
newborn anchor, -1/3, is outside the range), muscle, weight, height, proportions.
``mean_params`` uses ``MEAN_SHAPE``: the young-adult age anchor (2/3) and 0.5 for the
rest, an androgynous adult of about 1.8 m; the centre of the space (all 0.5) would be a
1.63 m teenager.

Expression. With ``expression=True`` (default), ``BodyParams.expression`` holds Anny's 52
ARKit-style facial actions, each in [0, 1].
"""

from __future__ import annotations

import logging
import os
import warnings
from functools import lru_cache

import torch
from torch import Tensor

from hmrkit.body.base import BodyModel, KeypointRegressor
from hmrkit.conventions import COCO17, HAND21, MEDIAPIPE33, SMPL24
from hmrkit.geometry.rotation import rotmat_power
from hmrkit.types import BodyOutput, BodyParams

log = logging.getLogger(__name__)

BODY_FROM_ANNY = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

SHAPE_NAMES = ("gender", "age", "muscle", "weight", "height", "proportions")
SHAPE_RANGE = (0.0, 1.0)
MEAN_SHAPE = (0.5, 2.0 / 3.0, 0.5, 0.5, 0.5, 0.5)

_FINGERS = ("thumb", "index", "middle", "ring", "pinky")


def _side(name: str, s: str) -> str:
    return name.replace("{s}", s).replace("{S}", s[0].upper())


def _build_skeleton():
    """(name, parent, location bone, [(bone, weight), ...]) for each regression joint."""
    body = [
        ("pelvis", None, "root", []),
        ("left_hip", "pelvis", "upperleg01.L", [("upperleg01.L", 1.0)]),
        ("right_hip", "pelvis", "upperleg01.R", [("upperleg01.R", 1.0)]),
        ("spine1", "pelvis", "spine04", [("spine05", 0.5), ("spine04", 0.5)]),
        ("left_knee", "left_hip", "lowerleg01.L", [("lowerleg01.L", 1.0)]),
        ("right_knee", "right_hip", "lowerleg01.R", [("lowerleg01.R", 1.0)]),
        ("spine2", "spine1", "spine02", [("spine03", 0.5), ("spine02", 0.5)]),
        ("left_ankle", "left_knee", "foot.L", [("foot.L", 1.0)]),
        ("right_ankle", "right_knee", "foot.R", [("foot.R", 1.0)]),
        ("spine3", "spine2", "spine01", [("spine01", 1.0)]),
        ("left_foot", "left_ankle", "toe3-1.L", [(f"toe{i}-1.L", 1.0) for i in range(1, 6)]),
        ("right_foot", "right_ankle", "toe3-1.R", [(f"toe{i}-1.R", 1.0) for i in range(1, 6)]),
        ("neck", "spine3", "neck01", [("neck01", 0.5), ("neck02", 0.5)]),
        ("left_collar", "spine3", "clavicle.L", [("clavicle.L", 1.0)]),
        ("right_collar", "spine3", "clavicle.R", [("clavicle.R", 1.0)]),
        ("head", "neck", "head", [("neck03", 0.5), ("head", 0.5)]),
        ("left_shoulder", "left_collar", "upperarm01.L", [("upperarm01.L", 1.0)]),
        ("right_shoulder", "right_collar", "upperarm01.R", [("upperarm01.R", 1.0)]),
        ("left_elbow", "left_shoulder", "lowerarm01.L", [("lowerarm01.L", 1.0)]),
        ("right_elbow", "right_shoulder", "lowerarm01.R", [("lowerarm01.R", 1.0)]),
        ("left_wrist", "left_elbow", "wrist.L", [("wrist.L", 1.0)]),
        ("right_wrist", "right_elbow", "wrist.R", [("wrist.R", 1.0)]),
    ]
    hands = []
    for side, S in (("left", "L"), ("right", "R")):
        for f, finger in enumerate(_FINGERS, start=1):
            parent = f"{side}_wrist"
            for k in (1, 2, 3):
                name = f"{side}_{finger}{k}"
                bone = f"finger{f}-{k}.{S}"
                hands.append((name, parent, bone, [(bone, 1.0)]))
                parent = name
    return tuple(body + hands)


ANNY_SKELETON = _build_skeleton()


def _quiet_warp() -> None:
    """Anny imports NVIDIA Warp, which prints a banner on stdout at start-up; hmrkit uses
    torch skinning and does not need Warp's messages."""
    try:
        import warp

        if warp.config.log_level < warp.LOG_WARNING:
            warp.config.log_level = warp.LOG_WARNING
        warp.config.quiet = True
    except Exception:  # warp missing or changed: its banner is harmless
        pass


@lru_cache(maxsize=4)
def _load_anny(expression: bool):
    _quiet_warp()
    import anny

    cache = anny.paths.get_anny_cache_path()
    if not (cache.exists() and any(cache.iterdir())):
        log.warning("Anny builds its model cache on first use (about a minute)...")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = anny.Anny(facial_actions="all" if expression else "none")
    return model


class AnnyBody(BodyModel):
    """Anny as a BodyModel (see the module docstring for the skeleton, frame and shape)."""

    name = "anny"
    shape_range = SHAPE_RANGE
    shape_names = SHAPE_NAMES

    def __init__(self, expression: bool = True, dtype: torch.dtype = torch.float32):
        super().__init__()
        os.environ.setdefault("WARP_LOG_LEVEL", "error")
        model = _load_anny(expression)
        # A private copy in the requested dtype; the cached original stays untouched.
        import copy

        self.anny = copy.deepcopy(model).to(dtype)
        self.anny.requires_grad_(False)
        # Dense torch skinning: differentiable, deterministic, and on a CPU faster than
        # warp's kernels for the batch sizes used here (13 ms vs 190 ms forward+backward at B=1).
        self.anny.set_skinning_method("lbs")
        labels = list(self.anny.bone_labels)
        bone = {n: i for i, n in enumerate(labels)}

        self.joint_names = tuple(j[0] for j in ANNY_SKELETON)
        jindex = {n: i for i, n in enumerate(self.joint_names)}
        self.parents = tuple(-1 if j[1] is None else jindex[j[1]] for j in ANNY_SKELETON)
        self.num_shape = len(SHAPE_NAMES)
        self.facial_action_names = tuple(self.anny.facial_action_labels)
        self.num_expression = len(self.facial_action_names)

        # joint j (1..J) drives bones with weights: flattened assignment lists
        drive_joint, drive_bone, drive_weight = [], [], []
        for j, (_, _, _, bones) in enumerate(ANNY_SKELETON):
            for b, w in bones:
                drive_joint.append(j - 1)
                drive_bone.append(bone[b])
                drive_weight.append(w)
        self.register_buffer("drive_joint", torch.tensor(drive_joint), persistent=False)
        self.register_buffer("drive_bone", torch.tensor(drive_bone), persistent=False)
        self.register_buffer("drive_weight", torch.tensor(drive_weight, dtype=dtype), persistent=False)
        self._fractional = bool((torch.tensor(drive_weight) != 1.0).any())
        self.register_buffer(
            "location_bone", torch.tensor([bone[j[2]] for j in ANNY_SKELETON]), persistent=False
        )
        self.num_bones = len(labels)
        self.register_buffer("body_from_anny", BODY_FROM_ANNY.to(dtype), persistent=False)
        self.register_buffer("faces", self.anny.get_triangular_faces().long().clone(), persistent=False)
        self.regressors = torch.nn.ModuleDict(_anny_regressors(self))

    @property
    def num_vertices(self) -> int:
        return int(self.anny.template_vertices.shape[0])

    def mean_params(self, batch_size: int = 1) -> BodyParams:
        params = self._identity_params(batch_size, 0.5)
        shape = torch.tensor(MEAN_SHAPE, dtype=params.shape.dtype).expand(batch_size, -1).clone()
        return BodyParams(params.global_orient, params.pose, shape, params.transl, params.expression)

    def anny_deltas(self, params: BodyParams) -> Tensor:
        """(B, 104, 4, 4) Anny ``local-ref`` deltas for params.pose (root at identity)."""
        B = params.batch_size
        dtype, device = params.pose.dtype, params.pose.device
        C = self.body_from_anny.to(dtype)
        R = params.pose[:, self.drive_joint]  # (B, D, 3, 3)
        if self._fractional:
            R = rotmat_power(R, self.drive_weight.to(dtype))
        R_anny = C.T @ R @ C
        deltas = torch.eye(4, dtype=dtype, device=device).repeat(B, self.num_bones, 1, 1)
        return _scatter_rot(deltas, self.drive_bone, R_anny)

    def _anny_inputs(self, params: BodyParams):
        self.check_params(params)
        dtype = self.anny.template_vertices.dtype
        if params.pose.dtype != dtype:
            raise ValueError(f"anny: params are {params.pose.dtype}, the model is {dtype}; use params.to({dtype})")
        shape = params.shape
        if shape.shape[0] > 1 and shape.stride(0) == 0:
            # one shape expanded over the batch (e.g. a video or a retargeted clip): Anny
            # builds the rest body once and broadcasts it
            shape = shape[:1]
        return self.anny_deltas(params), shape

    def _to_body_frame(self, points: Tensor, params: BodyParams) -> Tensor:
        A = params.global_orient @ self.body_from_anny  # body frame <- anny frame, then global
        return points @ A.transpose(-1, -2) + params.transl[:, None]

    def forward(self, params: BodyParams) -> BodyOutput:
        """params (B, ...) -> BodyOutput: vertices (B, 13718, 3), joints (B, 52, 3), metres,
        body frame rotated by global_orient and shifted by transl (pelvis at transl)."""
        deltas, shape = self._anny_inputs(params)
        out = self.anny(pose_parameters=deltas, phenotype_kwargs=shape, facial_actions=params.expression)
        # With 'local-ref' deltas the root bone's posed head is the origin: the pelvis is
        # at the origin for every shape before global_orient/transl.
        heads = out["bone_poses"][..., :3, 3]  # (B, 104, 3) posed bone heads, Anny frame
        vertices = self._to_body_frame(out["vertices"], params)
        joints = self._to_body_frame(heads[:, self.location_bone], params)
        return BodyOutput(vertices=vertices, joints=joints, faces=self.faces)

    def forward_joints(self, params: BodyParams) -> Tensor:
        """(B, 52, 3) the regression skeleton's joints only: forward kinematics without
        skinning the mesh, about 10x cheaper than forward() for fitting to joints."""
        deltas, shape = self._anny_inputs(params)
        a = self.anny
        phen, local, facial = a._parse_parameter_kwargs(shape, a.phenotype_labels, 0.5, "phenotype_kwargs"), \
            a._parse_parameter_kwargs(None, a.local_change_labels, 0.0, "local_changes_kwargs"), \
            a._parse_parameter_kwargs(params.expression, a.facial_action_labels, 0.0, "facial_actions")
        coeffs = a._get_phenotype_blendshape_coefficients(phen, local, facial)
        rest = a.get_rest_model(coeffs)
        _, bone_poses = a.get_bone_transforms(deltas, rest["rest_bone_poses"])
        return self._to_body_frame(bone_poses[:, self.location_bone, :3, 3], params)

    def rest_output(self, shape: Tensor | None = None) -> BodyOutput:
        """The rest (A-)pose body in the body frame for the given (B, 6) phenotypes."""
        params = self.mean_params(1 if shape is None else shape.shape[0])
        if shape is not None:
            params = BodyParams(params.global_orient, params.pose, shape.to(params.pose.dtype),
                                params.transl, params.expression)
        return self.forward(params)

    def vertex_bone_labels(self) -> Tensor:
        """(V,) int64: the Anny bone of largest skinning weight per vertex."""
        idx = self.anny.vertex_bone_indices
        w = self.anny.vertex_bone_weights
        return idx.gather(1, w.argmax(1, keepdim=True))[:, 0].long()


def _scatter_rot(deltas: Tensor, bones: Tensor, R: Tensor) -> Tensor:
    """deltas (B, N, 4, 4) with [:, bones, :3, :3] replaced by R (B, D, 3, 3), out of place.
    Each bone is driven by at most one joint, so ``bones`` has no repeats."""
    rot = deltas[..., :3, :3].index_copy(1, bones, R)
    top = torch.cat([rot, deltas[..., :3, 3:]], dim=-1)
    return torch.cat([top, deltas[..., 3:, :]], dim=-2)


# ----------------------------------------------------------------------------------------
# Keypoint regressors


def _anny_regressors(body: AnnyBody) -> dict:
    import anny

    V = body.num_vertices
    dtype = body.anny.template_vertices.dtype
    jidx = {n: V + i for i, n in enumerate(body.joint_names)}
    coco = anny.KeypointsRegressor.coco(body.anny)
    coco_entries = {}
    for k, label in enumerate(coco.labels):
        w = coco.regression_weights[k]
        nz = torch.nonzero(w.abs() > 1e-6)[:, 0]
        ww = w[nz] / w[nz].sum()
        coco_entries[label] = [(int(i), float(x)) for i, x in zip(nz, ww)]

    picks = _anny_vertex_picks(body)
    from hmrkit.body.anny_face import anny_face_entries
    from hmrkit.conventions import FACE

    face = dict(zip(FACE, anny_face_entries(V)))

    def joint(name):
        return [(jidx[name], 1.0)]

    regressors = {}
    regressors["coco17"] = KeypointRegressor.from_entries(
        COCO17, [coco_entries[n] for n in COCO17], V, dtype
    )
    mp = {n: coco_entries[n] for n in COCO17}
    # MediaPipe Pose's face points are FaceMesh points: take them from the face landmarks
    # (derived from MediaPipe FaceMesh on Anny renders, see anny_face.py)
    mp["nose"] = face["nose_tip"]
    for side in ("left", "right"):
        mp[f"{side}_eye_inner"] = face[f"{side}_eye_inner_corner"]
        mp[f"{side}_eye_outer"] = face[f"{side}_eye_outer_corner"]
        mp[f"mouth_{side}"] = face[f"mouth_{side}_corner"]
        mp[f"{side}_pinky"] = joint(f"{side}_pinky1")
        mp[f"{side}_index"] = joint(f"{side}_index1")
        mp[f"{side}_thumb"] = joint(f"{side}_thumb2")
        mp[f"{side}_heel"] = coco_entries[f"{side}_heel"]
        mp[f"{side}_foot_index"] = coco_entries[f"{side}_big_toe"]
    regressors["mediapipe33"] = KeypointRegressor.from_entries(MEDIAPIPE33, [mp[n] for n in MEDIAPIPE33], V, dtype)

    for side in ("left", "right"):
        entries = []
        for n in HAND21:
            if n == "wrist":
                entries.append(joint(f"{side}_wrist"))
                continue
            finger, part = n.split("_")
            if part == "tip":
                entries.append(picks[f"{side}_{finger}_tip"])
                continue
            k = {"cmc": 1, "mcp": 1, "pip": 2, "dip": 3} [part] if finger != "thumb" else \
                {"cmc": 1, "mcp": 2, "ip": 3}[part]
            entries.append(joint(f"{side}_{finger}{k}"))
        regressors[f"hand21_{side}"] = KeypointRegressor.from_entries(HAND21, entries, V, dtype)

    smpl = []
    for n in SMPL24:
        if n in jidx:
            smpl.append(joint(n))
        elif n.endswith("_hand"):
            smpl.append(joint(n.replace("_hand", "_middle1")))
        else:
            smpl.append(None)
    regressors["smpl24"] = KeypointRegressor.from_entries(SMPL24, smpl, V, dtype)
    regressors["face"] = KeypointRegressor.from_entries(FACE, [face[n] for n in FACE], V, dtype)
    return regressors


def _anny_vertex_picks(body: AnnyBody) -> dict:
    """Fingertips picked on the rest mesh (body frame: y up, facing +z, left +x): the
    vertex of the distal phalanx farthest along the bone from its head. Single vertices,
    so they move with the mesh under pose and shape. (Face points come from
    ``anny_face``.)"""
    rest = body.rest_output()
    v = rest.vertices[0].detach()
    picks = {}

    labels = body.vertex_bone_labels()
    bone_labels = list(body.anny.bone_labels)
    j = {n: i for i, n in enumerate(body.joint_names)}
    for side, S in (("left", "L"), ("right", "R")):
        for f, finger in enumerate(_FINGERS, start=1):
            b = bone_labels.index(f"finger{f}-3.{S}")
            verts = torch.nonzero(labels == b)[:, 0]
            head = rest.joints[0, j[f"{side}_{finger}3"]].detach()
            parent = rest.joints[0, j[f"{side}_{finger}2"]].detach()
            direction = (head - parent) / (head - parent).norm()
            along = (v[verts] - head) @ direction
            picks[f"{side}_{finger}_tip"] = [(int(verts[along.argmax()]), 1.0)]
    return picks

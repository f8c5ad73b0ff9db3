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

import roma
import torch
from torch import Tensor

from hmrkit.body.base import BodyModel, KeypointRegressor, hand21_regressors
from hmrkit.conventions import COCO17, MEDIAPIPE33, SMPL24
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


# Where MediaPipe puts the palm's points on Anny (scripts/calibrate_hand_face_noise.py --n 150
# --seed 7 --split val, the median over the found hands of both sides; docs/hands.md):
# its wrist 8.5 % of the way to the middle knuckle, its knuckles 11 % and its thumb's CMC
# 14 % of the way to the wrist. hand21 puts them there (the fingers' other points are at
# their joints, within 2-5 % of the hand's size of MediaPipe's).
ANNY_HAND21_PALM = {"wrist": 0.085, "mcp": 0.11, "thumb_cmc": 0.14}


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
    shape_prior_std = 0.3  # the [0, 1] phenotype range is about +-1.7 std
    pose_library = "anny"
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

        # Blend-shape coefficients are laid out [phenotypes, facial actions, local changes]
        # (anny's _get_phenotype_blendshape_coefficients): the facial columns, and whether
        # they move the rest bones (they do not in anny 0.6: only the mesh).
        a = self.anny
        C = int(a.blendshapes.shape[0])
        E, L = self.num_expression, len(a.local_change_labels)
        first = C - E - 2 * L
        cols = torch.arange(C)
        self.register_buffer("_face_cols", cols[first:first + E].clone(), persistent=False)
        self.register_buffer("_shape_cols", torch.cat([cols[:first], cols[first + E:]]), persistent=False)
        self._facial_moves_bones = bool(E) and (
            a.bone_orientation != "cached"
            or bool(a.bone_heads_blendshapes[self._face_cols].abs().max() > 0)
            or bool(a.bone_orientation_blendshapes[self._face_cols].abs().max() > 0)
        )
        self._skinned_regressors = {}  # convention -> _SkinnedRegressor, built on first use

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
        _, bone_poses, _ = self._posed_bones(params)
        return self._to_body_frame(bone_poses[:, self.location_bone, :3, 3], params)

    def forward_keypoints(self, params: BodyParams, conventions: tuple[str, ...]) -> dict[str, Tensor]:
        """{convention: (B, K, 3), ..., "joints": (B, 52, 3)} in the frame of ``forward``,
        without skinning the mesh: equal to ``keypoints(forward(params), convention)`` up to
        float round-off, values and gradients.

        The rest bones are built once and posed once; each keypoint's vertices are skinned
        through the regressor folded into Anny's skinning (see ``_SkinnedRegressor``):
        identity, facial-action and phenotype blend shapes included, the mesh never built.
        A shape shared by the batch (stride 0, as ``forward``) builds the rest bones once."""
        conventions = self._check_conventions(conventions)
        transforms, bone_poses, coeffs = self._posed_bones(params)
        joints_anny = bone_poses[:, self.location_bone, :3, 3]  # (B, 52, 3)
        A = params.global_orient @ self.body_from_anny
        result = {}
        for c in conventions:
            skinned = self._skinned_regressor(c)
            X = skinned(transforms, joints_anny, coeffs[:, self._shape_cols], params.expression)
            # a keypoint is an affine combination of points of weight sum s: the
            # translation enters s times (0 for a keypoint the model cannot produce)
            result[c] = X @ A.transpose(-1, -2) + skinned.weight_sum[:, None] * params.transl[:, None]
        result["joints"] = joints_anny @ A.transpose(-1, -2) + params.transl[:, None]
        return result

    def _posed_bones(self, params: BodyParams):
        """Anny's bones for params, Anny frame: (bone transforms (B, 104, 4, 4) from rest to
        posed, as its skinning uses them; posed bone poses (B, 104, 4, 4); blend-shape
        coefficients (Bs, C) with the facial columns at zero, Bs = 1 for a shared shape)."""
        deltas, shape = self._anny_inputs(params)
        a = self.anny
        phen = a._parse_parameter_kwargs(shape, a.phenotype_labels, 0.5, "phenotype_kwargs")
        local = a._parse_parameter_kwargs(None, a.local_change_labels, 0.0, "local_changes_kwargs")
        no_face = phen.new_zeros(phen.shape[0], self.num_expression)
        coeffs = a._get_phenotype_blendshape_coefficients(phen, local, no_face)
        bone_coeffs = coeffs
        if self._facial_moves_bones and params.expression is not None:
            bone_coeffs = coeffs.expand(params.batch_size, -1).index_copy(1, self._face_cols, params.expression)
        transforms, bone_poses = a.get_bone_transforms(deltas, self._rest_bone_poses(bone_coeffs))
        return transforms, bone_poses, coeffs

    def _rest_bone_poses(self, coeffs: Tensor) -> Tensor:
        """(Bs, 104, 4, 4) Anny's rest bone poses for blend-shape coefficients (Bs, C):
        ``anny.get_rest_model(coeffs)["rest_bone_poses"]`` without building the rest mesh
        (its 'cached' bone orientations reproduced; other modes call anny)."""
        a = self.anny
        if a.bone_orientation != "cached":
            return a.get_rest_model(coeffs)["rest_bone_poses"]
        heads = a.template_bone_heads[None] + torch.einsum("cpd,bc->bpd", a.bone_heads_blendshapes, coeffs)
        M = a.bone_template_orientation_matrices[None] + torch.einsum(
            "ba,akij->bkij", coeffs, a.bone_orientation_blendshapes
        )
        R = roma.special_procrustes(M)
        if a.rest_orientation_refiner is not None:
            R = a.rest_orientation_refiner(R, heads)
        if a.root_identity_orientation:
            eye = torch.eye(3, dtype=R.dtype, device=R.device).expand(R.shape[0], 1, 3, 3)
            R = torch.cat([eye, R[:, 1:]], dim=1)
        return roma.Rigid(linear=R, translation=heads).to_homogeneous()

    def _skinned_regressor(self, convention: str) -> "_SkinnedRegressor":
        reg = self.regressors[convention]
        cached = self._skinned_regressors.get(convention)
        if cached is None or not cached.built_from(reg, self.anny.template_vertices):
            cached = _SkinnedRegressor(self, reg)
            self._skinned_regressors[convention] = cached
        return cached

    def rest_output(self, shape: Tensor | None = None) -> BodyOutput:
        """The rest (A-)pose body in the body frame for the given (B, 6) phenotypes."""
        params = self.mean_params(1 if shape is None else shape.shape[0])
        if shape is not None:
            params = BodyParams(params.global_orient, params.pose, shape.to(params.pose.dtype),
                                params.transl, params.expression)
        return self.forward(params)

    def bone_joints(self) -> list[str]:
        """The regression-skeleton joint (a ``joint_names`` entry) of every Anny bone (104).

        A bone a joint drives alone (weight 1 in ANNY_SKELETON) is that joint's. A bone of a
        chain that a joint spreads its rotation over (spine, neck) belongs to the segment it
        lies in, as in SMPL: the joint whose location bone is its nearest ancestor-or-self
        (so spine05, between the pelvis and spine1's location, is the pelvis's; neck03 the
        neck's). Bones no joint drives (twist bones, metacarpals, toe phalanges, shoulder01,
        the pelvis offset bones, the eyes) take their parent bone's joint."""
        labels = list(self.anny.bone_labels)
        parents = [int(p) for p in self.anny.bone_parents]
        location = {labels.index(loc): joint for joint, _, loc, _ in ANNY_SKELETON}
        location[labels.index("root")] = "pelvis"
        driven: dict[int, tuple[str, float]] = {}
        for joint, _, _, bones in ANNY_SKELETON:
            for bone, w in bones:
                driven[labels.index(bone)] = (joint, w)

        def joint_of(b: int) -> str:
            if b in driven and driven[b][1] == 1.0:
                return driven[b][0]
            if b in driven:  # part of a chain: the segment it lies in
                a = b
                while a not in location:
                    a = parents[a]
                return location[a]
            if b in location:
                return location[b]
            if parents[b] < 0:
                raise RuntimeError(f"anny bone {labels[b]!r} has no driven ancestor")
            return joint_of(parents[b])

        return [joint_of(b) for b in range(len(labels))]

    def skeleton_weights(self) -> Tensor:
        """(V, J) skinning weights of the mesh onto the regression skeleton
        (``joint_names``): Anny's vertex-to-bone weights summed over the bones of each joint
        (``bone_joints``); rows sum to 1. What an animated mesh file skins with."""
        names = list(self.joint_names)
        col = torch.tensor([names.index(j) for j in self.bone_joints()])
        idx = self.anny.vertex_bone_indices.long()
        w = self.anny.vertex_bone_weights.to(self.dtype)
        out = torch.zeros(idx.shape[0], len(names), dtype=self.dtype)
        return out.scatter_add_(1, col[idx], w)

    def vertex_bone_labels(self) -> Tensor:
        """(V,) int64: the Anny bone of largest skinning weight per vertex."""
        idx = self.anny.vertex_bone_indices
        w = self.anny.vertex_bone_weights
        return idx.gather(1, w.argmax(1, keepdim=True))[:, 0].long()


class _SkinnedRegressor:
    """A keypoint regressor folded into Anny's linear blend skinning, so that keypoints
    need no mesh.

    Anny skins a rest vertex v_n (template plus blend shapes, linear in the coefficients c)
    as v'_n = sum_b W_nb (R_b v_n + t_b), [R_b | t_b] the bone transforms from rest to
    posed and W its vertex-bone weights; a keypoint is k = sum_n w_n v'_n + sum_j u_j J_j.
    Regrouping the sums by bone: k = sum_b (R_b p_b + h_b t_b) + sum_j u_j J_j with
    h_b = sum_n w_n W_nb and p_b = sum_n w_n W_nb v_n = rest_b + sum_c c_c dirs_cb. The pairs
    (keypoint, bone) that some vertex of the keypoint links by a nonzero weight, with their
    h_b, rest_b and dirs_cb, are computed once here (in float64); a keypoint then costs one
    transform per bone that moves its vertices. The sums are Anny's own, regrouped: the
    result equals the full path up to round-off.

    Fields (P pairs, K keypoints, C blend shapes: Cs identity/local, E facial):
      key, bone (P,) int64; h (P,); rest (P, 3) Anny frame; dirs_shape (Cs, P*3);
      dirs_face (E, P*3) or None when no facial action moves these vertices;
      joint_matrix (K, J+1) the weights on the skeleton's joints; weight_sum (K,).
    """

    def __init__(self, body: "AnnyBody", reg: KeypointRegressor):
        a = body.anny
        V, nb, f64 = body.num_vertices, a.bone_count, torch.float64
        dtype, device = a.template_vertices.dtype, a.template_vertices.device
        self._source = (reg.index, reg.weights, dtype, device)
        index, weights = reg.index.cpu(), reg.weights.cpu().to(f64)
        K = index.shape[0]
        k_of = torch.arange(K)[:, None].expand_as(index)
        on_vertex = (weights != 0) & (index < V)
        on_joint = (weights != 0) & (index >= V)
        joint_matrix = torch.zeros(K, len(body.joint_names), dtype=f64)
        joint_matrix.index_put_((k_of[on_joint], index[on_joint] - V), weights[on_joint], accumulate=True)
        # each (keypoint, vertex) entry spread over the vertex's bones
        ek, en, ew = k_of[on_vertex], index[on_vertex], weights[on_vertex]
        vb = a.vertex_bone_indices.cpu()[en].long()
        vw = a.vertex_bone_weights.cpu()[en].to(f64) * ew[:, None]
        keep = vw != 0
        pk, pb, pn, pw = ek[:, None].expand_as(vb)[keep], vb[keep], en[:, None].expand_as(vb)[keep], vw[keep]
        pairs, pair_of = torch.unique(pk * nb + pb, return_inverse=True)
        verts, col = torch.unique(pn, return_inverse=True)
        P, U = len(pairs), len(verts)
        S = torch.sparse_coo_tensor(torch.stack([pair_of, col]), pw, (P, U), check_invariants=True).coalesce()
        h = torch.zeros(P, dtype=f64).index_add_(0, pair_of, pw)
        rest = torch.sparse.mm(S, a.template_vertices.cpu()[verts].to(f64)) if P else torch.zeros(0, 3, dtype=f64)
        C = a.blendshapes.shape[0]
        bs = a.blendshapes.cpu()[:, verts].to(f64).permute(1, 0, 2).reshape(U, C * 3)
        dirs = (torch.sparse.mm(S, bs) if P else torch.zeros(0, C * 3, dtype=f64)).reshape(P, C, 3)
        dirs = dirs.permute(1, 0, 2).reshape(C, P * 3)
        dirs_face = dirs[body._face_cols.cpu()]

        def put(t):
            return t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype).contiguous()

        self.num_keypoints, self.num_pairs = K, P
        self.key, self.bone = put(pairs // nb), put(pairs % nb)
        self.h, self.rest = put(h), put(rest)
        self.dirs_shape = put(dirs[body._shape_cols.cpu()])
        self.dirs_face = put(dirs_face) if bool((dirs_face != 0).any()) else None
        self.joint_matrix = put(joint_matrix)
        self.weight_sum = put((weights * (weights != 0)).sum(1))

    def built_from(self, reg: KeypointRegressor, like: Tensor) -> bool:
        index, weights, dtype, device = self._source
        return index is reg.index and weights is reg.weights and dtype == like.dtype and device == like.device

    def __call__(self, transforms: Tensor, joints: Tensor, coeffs: Tensor, expression: Tensor | None) -> Tensor:
        """transforms (B, 104, 4, 4) Anny's rest -> posed bone transforms; joints (B, J+1, 3)
        posed, Anny frame; coeffs (Bs, Cs) identity/local blend-shape coefficients, Bs in
        {1, B}; expression (B, E) or None -> keypoints (B, K, 3), Anny frame, before
        global_orient/transl."""
        B, P = transforms.shape[0], self.num_pairs
        X = torch.matmul(self.joint_matrix, joints)  # (B, K, 3)
        if P == 0:
            return X
        rest = self.rest + (coeffs @ self.dirs_shape).reshape(-1, P, 3)
        if self.dirs_face is not None and expression is not None:
            rest = rest + (expression @ self.dirs_face).reshape(B, P, 3)
        T = transforms[:, self.bone]  # (B, P, 4, 4)
        moved = (T[..., :3, :3] @ rest[..., None])[..., 0] + T[..., :3, 3] * self.h[:, None]
        return X.index_add(1, self.key, moved)


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

    regressors.update(hand21_regressors(jidx, picks, V, dtype, palm=ANNY_HAND21_PALM))

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

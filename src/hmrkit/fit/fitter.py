"""SMPLify-style staged fitting of a body model to 2D (and optional 3D) keypoints.

Stages (METHODS.md, SPIN's SMPLify): (1) camera translation and global orientation on the
torso, with a depth anchor to the initial estimate, trying the body facing the camera and
facing away and keeping the better; (2) body pose, shape, global orientation and
translation on all body keypoints with the pose GMM, hinge (bend) and shape priors (the
body joints only: fingers held); (3) fingers, wrists, neck, head and facial expression
where hand and face keypoints exist: each hand and the face compared after moving and
scaling them onto their evidence, the fingers as a coupled model (15 angles a hand) inside
their joint limits (``FingerPrior``), a strong expression prior (docs/hands.md: why each,
measured). Adam throughout.
Full perspective camera with the given intrinsics. Everything is batched: B frames (or
people) are fitted at once; for a video, ``smooth`` couples consecutive frames. The loops
evaluate keypoints and joints only (``BodyModel.forward_keypoints``, no mesh); the mesh is
built once, for the result. ``Fitter.fit`` runs the stages as ``_stage_camera``,
``_stage_body`` and ``_stage_detail``, and ``_result`` builds the Prediction.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import roma
import torch
from torch import Tensor

from hmrkit import conventions as C
from hmrkit.body.base import BodyModel
from hmrkit.body.priors import HingePrior, ShapePrior, body_joint_indices, load_pose_prior
from hmrkit.fit.losses import align_scale_translation, keypoints3d_loss, reprojection_loss, smoothness_loss
from hmrkit.geometry.boxes import keypoint_box
from hmrkit.geometry.camera import project
from hmrkit.geometry.procrustes import similarity_procrustes
from hmrkit.geometry.rotation import rotmat_from_6d, rotmat_to_6d, rotmat_to_aa
from hmrkit.types import BodyParams, Camera, Prediction


@dataclass(frozen=True)
class FitConfig:
    """Settings of the staged fit. Weights follow SPIN's SMPLify where they exist."""

    camera_iters: int = 40
    body_iters: int = 200
    detail_iters: int = 40
    lr: float = 0.03
    sigma: float = 100.0  # Geman-McClure scale, px in 224-px crop units (SPIN)
    w_pose_prior: float = 6.0  # on the GMM's -log p; tuned on synthetic scenes (SPIN: 4.78^2 on its energy)
    w_shape_prior: float = 5.0 ** 2  # SPIN's, on (shape - mean) / std
    shape_prior: str | None = None  # None: "gaussian", unless a method's refinement says otherwise
    # (pixie+fit: "gender"); "gaussian": ShapePrior (one Gaussian around the mean body); "gender":
    # PIXIE's GenderShapePrior, 2 x its -log density (the same scale as the Gaussian's squared distance)
    w_bend: float = 15.2 ** 2 * 0.05
    w_depth_anchor: float = 100.0
    w_keypoints3d: float = 1000.0  # root-relative world landmarks, when the evidence has them
    w_smooth: float = 0.0  # temporal smoothness on joints (video)
    w_hands: float = 1.0
    w_face: float = 1.0
    # The finger and face stage (docs/hands.md: why each of these, and the table before and after):
    w_finger_prior: float = 200.0  # on FingerPrior (limits, twist, a weak pull to the open hand); 0.05 on "l2"
    finger_prior: str = "anatomical"  # "anatomical": hmrkit.body.hands.FingerPrior; "l2": |axis-angle|^2 (legacy)
    detail_head: bool = True  # the finger and face stage also frees the neck and head rotations
    body_holds_fingers: bool = True  # the body stage moves the body joints only (fingers held)
    detail_sigma: float | None = None  # None: hands and face in the body's crop units with ``sigma``;
    # else each hand and the face in its own crop units (224 / the part's keypoint box) with this GM scale
    finger_model: str = "coupled"  # "free": every finger joint a free rotation; "coupled": per finger the
    # knuckle's flexion and spread and the middle joint's flexion, the last joint flexing DIP_PIP x the middle
    # one, no twist (hmrkit.body.hands: 15 angles a hand instead of 45)
    detail_align: bool = True  # hands and face compared after moving and scaling each onto its evidence
    # (align_scale_translation): their shape drives the fingers and expression, not where the arm put them
    hand_check: float = 0.0  # > 0: a hand whose evidence wrist lies farther than this x the hand's size
    # from the body evidence's wrist of that side is dropped (a hand of the other side, or of someone else)
    w_expression_prior: float = 50.0  # on |expression|^2 (legacy: 0.5)
    detail_anchor: float = 0.0  # > 0: the finger and face stage also keeps the fingers' rotations and the
    # expression near where it started (this weight on their squared change): a refinement of a regressor
    # that reads the hands and face itself (pixie+fit) keeps what it read unless the keypoints say otherwise
    min_confidence: float = 0.2  # keypoints below this are ignored
    min_keypoints: int = 6  # fewer confident body keypoints -> not valid
    fit_hands: bool = True
    fit_face: bool = True
    yaw_hypotheses: int = 4  # stage 1 tries the body turned by 360/n degrees steps, keeps the best


# Stage 1 keypoints: the torso, and the head, whose points tell facing from facing away.
TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip",
         "nose", "left_eye", "right_eye", "left_ear", "right_ear")


def _split_holistic(convention: str):
    """[(body convention, slice into the evidence, kind)] for an evidence convention."""
    if convention == "holistic":
        n_body, n_hand = 33, 21
        n_face = len(C.FACE)
        return [
            ("mediapipe33", slice(0, n_body), "body"),
            ("hand21_left", slice(n_body, n_body + n_hand), "hand"),
            ("hand21_right", slice(n_body + n_hand, n_body + 2 * n_hand), "hand"),
            ("face", slice(n_body + 2 * n_hand, n_body + 2 * n_hand + n_face), "face"),
        ]
    return [(convention, slice(0, len(C.get(convention))), "body")]


DIP_PIP = 0.75  # the coupled finger model's last joint flexes this x the middle joint (biomechanics: ~2/3-3/4)


class _CoupledFingers:
    """The coupled finger model of the finger stage (``FitConfig.finger_model``): the
    angles (B, F, 3) (flex, spread, twist on ``FingerAxes``) a leaf tensor, of which only
    the knuckles' flexion and spread, the middle joints' flexion and the thumb's three
    flexions are used; each finger's last joint flexes ``DIP_PIP`` x its middle joint."""

    def __init__(self, axes, pose: Tensor):
        self.axes = axes
        F = len(axes)
        mask = torch.zeros(F, 3, dtype=pose.dtype)
        mask[:, 0] = 1.0
        mask[axes.segment == 1, 1] = 1.0
        thumb = axes.finger == 0
        dip = (~thumb) & (axes.segment == 3)
        mask[dip, 0] = 0.0
        key = {(int(s), int(f), int(k)): i for i, (s, f, k) in
               enumerate(zip(axes.side.tolist(), axes.finger.tolist(), axes.segment.tolist()))}
        self.dip = dip.nonzero()[:, 0]
        self.pip = torch.tensor([key[(int(axes.side[i]), int(axes.finger[i]), 2)] for i in self.dip.tolist()],
                                dtype=torch.long)
        self.mask = mask
        self.angles = (axes.angles(pose) * mask).detach().clone().requires_grad_(True)

    def pose(self, R: Tensor) -> Tensor:
        """R (B, J, 3, 3) all of the pose -> the same with the finger joints from the angles."""
        a = self.angles * self.mask
        a = a.clone()
        a[:, self.dip, 0] = DIP_PIP * a[:, self.pip, 0]
        return R.index_copy(1, self.axes.index, self.axes.rotations(a).to(R.dtype))


@dataclass(frozen=True)
class _State:
    """The fitted variables between stages (detached), camera frame: go6 (B, 6) global
    orientation and pose6 (B, J, 6) joint rotations in the 6D representation, shape (B, S)
    (stride 0 over B when a video chunk shares one), transl (B, 3) metres, expression
    (B, E) or None."""

    go6: Tensor
    pose6: Tensor
    shape: Tensor
    transl: Tensor
    expression: Tensor | None


def _names(conv: str):
    if conv.startswith("hand21"):
        return C.HAND21
    return C.get(conv).names


class Fitter:
    """Fits ``body`` to keypoints. Reusable across calls (priors are built once)."""

    def __init__(self, body: BodyModel, config: FitConfig = FitConfig()):
        self.body = body
        self.config = config
        self.pose_prior = load_pose_prior(body)
        self.hinge = HingePrior(body)
        if config.shape_prior == "gender":
            from hmrkit.body.priors import GenderShapePrior

            gmm = GenderShapePrior.for_body(body)
            self.shape_prior = lambda shape: 2.0 * gmm(shape)
        elif config.shape_prior in (None, "gaussian"):
            self.shape_prior = ShapePrior.for_body(body)
        else:
            raise ValueError(f"FitConfig.shape_prior: unknown {config.shape_prior!r}; choose gaussian or gender")
        self.body_idx = body_joint_indices(body)
        all_idx = set(range(body.num_pose_joints))
        self.finger_idx = sorted(all_idx - set(self.body_idx))
        from hmrkit.body.hands import FingerPrior

        self.finger_prior = FingerPrior(body)

    # ------------------------------------------------------------------ helpers
    def _parts(self, convention: str, kp2d: Tensor, kp3d: Tensor | None):
        """Evidence split into parts the body model has regressors for."""
        parts = []
        for conv, sl, kind in _split_holistic(convention):
            if conv not in self.body.regressors:
                if kind == "body":
                    # convert by name into a convention the body has
                    target = "mediapipe33" if "mediapipe33" in self.body.regressors else "coco17"
                    kp = torch.as_tensor(C.convert_with_confidence(kp2d[:, sl].cpu().numpy(), conv, target),
                                         dtype=kp2d.dtype)
                    parts.append((target, kp, None, kind))
                continue
            valid = self.body.keypoint_valid(conv).to(kp2d.dtype)
            kp = kp2d[:, sl].clone()
            kp[..., 2] = kp[..., 2] * valid * (kp[..., 2] >= self.config.min_confidence)
            k3 = None
            if kp3d is not None:
                k3 = kp3d[:, sl].clone()
                k3[..., 3] = k3[..., 3] * valid
            parts.append((conv, kp, k3, kind))
        return parts

    def _predict(self, params: BodyParams, parts, K: Tensor):
        """(joints (B, J+1, 3), [(keypoints (B, K, 3), their projections (B, K, 2))] per
        part), camera frame: keypoints only (``BodyModel.forward_keypoints``), no mesh."""
        convs = tuple(dict.fromkeys(conv for conv, _, _, _ in parts))
        kps = self.body.forward_keypoints(params, convs)
        return kps["joints"], [(kps[conv], project(kps[conv], K)) for conv, _, _, _ in parts]

    def _init_camera(self, parts, K: Tensor, kp3d_body: Tensor | None, mean: BodyParams):
        """Initial global orientation (B, 3, 3) and translation (B, 3) from torso geometry."""
        body_conv, kp, k3, _ = parts[0]
        names = _names(body_conv)
        B = kp.shape[0]
        dtype = kp.dtype
        rest = self.body.forward_keypoints(mean[:1], (body_conv,))[body_conv][0]  # (K, 3) body frame
        conf = kp[..., 2]
        # default: upright and facing the camera = 180 deg about x (y up -> image up)
        facing = torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]], dtype=dtype)
        R = facing.expand(B, 3, 3).clone()
        if k3 is not None:
            # rotation from the body frame to the camera frame by Procrustes on the torso
            # and head points of the world landmarks
            # torso and head only: limbs in unusual poses would tilt a whole-body fit
            trunk = torch.tensor([n in TORSO for n in names], dtype=dtype)
            w = k3[..., 3] * (k3[..., 3] > 0.5) * trunk
            for b in range(B):
                if (w[b] > 0).sum() >= 4:
                    _, Rb, _ = similarity_procrustes(rest, k3[b, :, :3], w[b])
                    R[b] = Rb
        # depth from limb lengths: model length / image length, least foreshortened quartile
        f = 0.5 * (K[:, 0, 0] + K[:, 1, 1])
        conv = C.get(body_conv) if not body_conv.startswith("hand21") else C.get("hand21")
        edges = torch.tensor(conv.edges, dtype=torch.long)
        l3 = (rest[edges[:, 0]] - rest[edges[:, 1]]).norm(dim=-1)  # (E,)
        l2 = (kp[:, edges[:, 0], :2] - kp[:, edges[:, 1], :2]).norm(dim=-1)  # (B, E)
        ok = (conf[:, edges[:, 0]] > 0) & (conf[:, edges[:, 1]] > 0) & (l2 > 2) & (l3 > 0.05)
        transl = torch.zeros(B, 3, dtype=dtype)
        for b in range(B):
            if ok[b].sum() == 0:
                depth = torch.tensor(3.0, dtype=dtype)
            else:
                ratio = (l3[ok[b]] / l2[b, ok[b]])
                depth = f[b] * torch.quantile(ratio, 0.25)
            vis = conf[b] > 0
            if vis.sum() == 0:
                transl[b] = torch.tensor([0.0, 0.0, 3.0], dtype=dtype)
                continue
            uv = (kp[b, vis, :2] * conf[b, vis, None]).sum(0) / conf[b, vis].sum()
            p3 = (rest[vis] * conf[b, vis, None]).sum(0) / conf[b, vis].sum()
            ray = torch.stack([(uv[0] - K[b, 0, 2]) / K[b, 0, 0], (uv[1] - K[b, 1, 2]) / K[b, 1, 1],
                               torch.ones((), dtype=dtype)])
            transl[b] = ray * depth - R[b] @ p3
        return R, transl

    # ------------------------------------------------------------------ main entry
    def fit(self, kp2d: Tensor, convention: str, K: Tensor, init: BodyParams | None = None,
            kp3d: Tensor | None = None, smooth: bool = False, progress=None) -> Prediction:
        """Fit the body to keypoints.

        kp2d (B, K, 3) pixels + confidence in ``convention``; K (B, 3, 3) intrinsics;
        init: a starting estimate (e.g. a regressor's, or the previous frame's) or None;
        kp3d (B, K, 4) root-relative metric keypoints (camera axes) + confidence, or None;
        smooth: the B inputs are consecutive video frames; progress(1) after each body
        iteration. -> Prediction: params in the camera frame (detached) and their mesh;
        valid (B,): at least ``min_keypoints`` confident body keypoints; px_error (B,)."""
        t0 = time.perf_counter()
        dtype = self.body.dtype
        kp2d = torch.as_tensor(kp2d, dtype=dtype)
        K = torch.as_tensor(K, dtype=dtype)
        if kp3d is not None:
            kp3d = torch.as_tensor(kp3d, dtype=dtype)
        B = kp2d.shape[0]
        if K.shape != (B, 3, 3):
            raise ValueError(f"fit: K must be ({B}, 3, 3), got {tuple(K.shape)}")
        parts = self._parts(convention, kp2d, kp3d)
        body_kp = parts[0][1]
        valid = (body_kp[..., 2] > 0).sum(-1) >= self.config.min_keypoints
        # person size -> crop units, as SPIN's sigma is expressed in 224-px crops
        _, size = keypoint_box(body_kp, min_confidence=0.0, scale=1.0, min_size=32.0, empty_size=224.0)
        scale = 224.0 / size

        fresh = init is None
        if fresh:
            mean = self.body.mean_params(B)
            R0, tr0 = self._init_camera(parts, K, None, mean)
            init = replace(mean, global_orient=R0, transl=tr0)
        else:
            init = init.to(dtype).detach()
        expression = None if init.expression is None else init.expression.clone()
        state = _State(rotmat_to_6d(init.global_orient), rotmat_to_6d(init.pose), init.shape, init.transl, expression)
        state = self._stage_camera(parts, K, scale, state, fresh, kp3d is not None)
        state = self._stage_body(parts, K, scale, state, smooth, progress)
        state = self._stage_detail(parts, K, scale, state, smooth)
        return self._result(parts, K, state, valid, time.perf_counter() - t0)

    def _stage_camera(self, parts, K: Tensor, scale: Tensor, s: _State, fresh: bool, has_3d: bool) -> _State:
        """Stage 1: global orientation and translation on the torso (and head) keypoints,
        the body's pose and shape held, with a depth anchor to the start. From the mean body
        (``fresh``) without 3D keypoints, ``yaw_hypotheses`` headings are tried and the best
        kept. scale (B,) crop units per px. -> ``s`` with new go6 and transl."""
        cfg = self.config
        body_kp = parts[0][1]
        B, dtype = body_kp.shape[0], body_kp.dtype
        go6, transl = s.go6.clone(), s.transl.clone()
        names = _names(parts[0][0])
        torso = [names.index(n) for n in TORSO if n in names]
        torso_kp = body_kp.clone()
        mask = torch.zeros(body_kp.shape[1], dtype=torch.bool)
        mask[torso] = True
        if fresh and int((body_kp[:, mask, 2] > 0).sum(-1).min()) < 3:
            mask[:] = True  # too little torso: use every body keypoint
        torso_kp[:, ~mask, 2] = 0.0
        tz0 = transl[:, 2].clone()
        sp = [(parts[0][0], torso_kp, None, "body")]
        pose6, shape, expr = s.pose6, s.shape, s.expression

        # orientation hypotheses: the body turned about the camera's vertical axis; the 3D
        # landmarks, when given, already fixed the facing direction
        H = cfg.yaw_hypotheses if (fresh and not has_3d) else 1
        if H > 1:
            yaw = torch.arange(H, dtype=dtype) * (2 * math.pi / H)
            Ry = roma.rotvec_to_rotmat(torch.stack([torch.zeros_like(yaw), yaw, torch.zeros_like(yaw)], -1))
            go6 = rotmat_to_6d((Ry[:, None] @ rotmat_from_6d(go6)[None]).reshape(H * B, 3, 3))
            rep = lambda x: None if x is None else x.repeat(H, *([1] * (x.ndim - 1)))  # noqa: E731
            transl, pose6, shape, expr = rep(transl), rep(pose6), rep(shape), rep(expr)
            K, scale, tz0 = rep(K), rep(scale), rep(tz0)
            sp = [(sp[0][0], rep(torso_kp), None, "body")]

        go6.requires_grad_(True)
        transl.requires_grad_(True)
        opt = torch.optim.Adam([go6, transl], lr=cfg.lr)
        pose_fixed = rotmat_from_6d(pose6)
        for _ in range(cfg.camera_iters if fresh else cfg.camera_iters // 2):
            opt.zero_grad()
            p = BodyParams(rotmat_from_6d(go6), pose_fixed, shape, transl, expr)
            _, preds = self._predict(p, sp, K)
            per = reprojection_loss(preds[0][1], sp[0][1], scale, cfg.sigma)
            per = per + cfg.w_depth_anchor * (transl[:, 2] - tz0) ** 2
            per.sum().backward()
            opt.step()
        with torch.no_grad():
            p = BodyParams(rotmat_from_6d(go6), pose_fixed, shape, transl, expr)
            _, preds = self._predict(p, sp, K)
            per = reprojection_loss(preds[0][1], sp[0][1], scale, cfg.sigma)
        go6, transl = go6.detach(), transl.detach()
        if H > 1:
            best = per.reshape(H, B).argmin(0)  # (B,)
            pick = best * B + torch.arange(B)
            go6, transl = go6[pick], transl[pick]
        return replace(s, go6=go6, transl=transl)

    def _stage_body(self, parts, K: Tensor, scale: Tensor, s: _State, smooth: bool, progress) -> _State:
        """Stage 2: body pose, shape, global orientation and translation on the body
        keypoints with the priors; a video chunk (``smooth``) shares one shape. -> the
        state after ``body_iters`` Adam steps, shape clamped to ``body.shape_range``."""
        cfg = self.config
        B = s.go6.shape[0]
        go6 = s.go6.clone().requires_grad_(True)
        transl = s.transl.clone().requires_grad_(True)
        # only the body joints move here: the fingers have no prior in this stage, and the
        # body keypoints that hang on a finger joint (mediapipe33's thumb, on thumb2) would
        # otherwise turn it freely (the finger and face stage poses them, with its prior)
        held = cfg.body_holds_fingers and bool(self.finger_idx)
        body_idx = torch.tensor(self.body_idx)
        pose6 = (s.pose6[:, body_idx] if held else s.pose6).clone().requires_grad_(True)

        def full_pose6():
            return s.pose6.index_copy(1, body_idx, pose6) if held else pose6
        # a video's frames show one person: one shape for the whole chunk (broadcast, so
        # Anny also builds the rest body once)
        shared = smooth and B > 1
        shape_var = (s.shape.mean(0, keepdim=True) if shared else s.shape).clone().requires_grad_(True)
        opt = torch.optim.Adam([go6, transl, pose6, shape_var], lr=cfg.lr)
        body_parts = [parts[0]]
        lo_s, hi_s = self.body.shape_range if self.body.shape_range is not None else (-math.inf, math.inf)
        for _ in range(cfg.body_iters):
            opt.zero_grad()
            shape = shape_var.clamp(lo_s, hi_s).expand(B, -1)
            p = BodyParams(rotmat_from_6d(go6), rotmat_from_6d(full_pose6()), shape, transl, s.expression)
            joints, preds = self._predict(p, body_parts, K)
            loss = self._energy(p, joints, preds, body_parts, K, scale, smooth, stage="body")
            loss.sum().backward()
            opt.step()
            if progress is not None:
                progress(1)
        # a shared shape stays shared (stride 0 over the batch)
        return _State(go6.detach(), full_pose6().detach(), shape_var.detach().clamp(lo_s, hi_s).expand(B, -1),
                      transl.detach(), s.expression)

    def _stage_detail(self, parts, K: Tensor, scale: Tensor, s: _State, smooth: bool) -> _State:
        """Stage 3: fingers and wrists (and facial expression) on the hand and face
        keypoints, the rest held; ``s`` unchanged without such keypoints. Expression is
        clamped to [0, 1]."""
        cfg = self.config
        detail = [pt for pt in parts[1:] if pt[3] in ("hand", "face") and (pt[1][..., 2] > 0).any()]
        detail = [pt for pt in detail if (pt[3] == "hand" and cfg.fit_hands) or (pt[3] == "face" and cfg.fit_face)]
        if not detail or cfg.detail_iters <= 0:
            return s
        if cfg.hand_check > 0:
            detail = [self._check_hand(parts[0], pt) if pt[3] == "hand" else pt for pt in detail]
        fit_parts = [parts[0]] + detail
        part_scales = None
        if cfg.detail_sigma is not None:
            part_scales = [scale] + [224.0 / keypoint_box(pt[1], min_confidence=0.0, scale=1.0, min_size=8.0,
                                                          empty_size=224.0)[1] for pt in detail]
        extra = self._head_idx() if cfg.detail_head and any(pt[3] == "face" for pt in detail) else set()
        coupled = cfg.finger_model == "coupled" and len(self.finger_prior.axes) > 0
        fingers = set(self.finger_idx) if not coupled else set()
        free = torch.tensor(sorted(fingers | self._wrist_idx() | extra))
        sub6 = s.pose6[:, free].clone().requires_grad_(True)
        params_d = [sub6]
        if coupled:
            hand = _CoupledFingers(self.finger_prior.axes, rotmat_from_6d(s.pose6))
            params_d.append(hand.angles)
        expr = s.expression
        if expr is not None and any(pt[3] == "face" for pt in detail):
            expr = expr.clone().requires_grad_(True)
            params_d.append(expr)
        opt = torch.optim.Adam(params_d, lr=cfg.lr)
        go = rotmat_from_6d(s.go6)
        anchor = cfg.detail_anchor
        if anchor > 0:
            fidx = torch.tensor(self.finger_idx, dtype=torch.long)
            R0 = rotmat_from_6d(s.pose6)[:, fidx].detach()
            e0 = None if expr is None else expr.detach().clone()

        def pose():
            R = rotmat_from_6d(s.pose6.index_copy(1, free, sub6))
            return hand.pose(R) if coupled else R

        for _ in range(cfg.detail_iters):
            opt.zero_grad()
            e = expr.clamp(0, 1) if expr is not None else None
            p = BodyParams(go, pose(), s.shape, s.transl, e)
            joints, preds = self._predict(p, fit_parts, K)
            loss = self._energy(p, joints, preds, fit_parts, K, scale, smooth, stage="detail", part_scales=part_scales)
            if anchor > 0:
                loss = loss + anchor * ((p.pose[:, fidx] - R0) ** 2).sum((-3, -2, -1))
                if e0 is not None and e is not None:
                    loss = loss + anchor * ((e - e0) ** 2).sum(-1)
            loss.sum().backward()
            opt.step()
        with torch.no_grad():
            pose6 = rotmat_to_6d(pose()) if coupled else s.pose6.index_copy(1, free, sub6)
        return replace(s, pose6=pose6.detach(), expression=None if expr is None else expr.detach().clamp(0, 1))

    def _result(self, parts, K: Tensor, s: _State, valid: Tensor, seconds: float) -> Prediction:
        """The Prediction of the final state: params, the mesh (the fit's only full forward),
        the mean px error of the body keypoints (NaN where not ``valid``)."""
        body = self.body
        with torch.no_grad():
            final = BodyParams(rotmat_from_6d(s.go6), rotmat_from_6d(s.pose6), s.shape.clone(), s.transl,
                               s.expression)
            out = body(final)
            uv = project(body.keypoints(out, parts[0][0]), K)
            kp = parts[0][1]
            d = (uv - kp[..., :2]).norm(dim=-1)
            w = (kp[..., 2] > 0).to(d.dtype)
            err = (d * w).sum(-1) / w.sum(-1).clamp(min=1)
        return Prediction(params=final, camera=Camera(K=K), valid=valid,
                          px_error=torch.where(valid, err, torch.full_like(err, math.nan)), method="fit",
                          output=out, timings={"fit": seconds})

    def _head_idx(self) -> set:
        names = self.body.pose_joint_names
        return {names.index(n) for n in ("neck", "head") if n in names}

    def _wrist_idx(self) -> set:
        names = self.body.pose_joint_names
        return {names.index(n) for n in ("left_wrist", "right_wrist") if n in names}

    def _check_hand(self, body_part, hand_part):
        """``hand_part`` with its keypoints dropped (confidence 0) in the frames where its
        wrist lies farther than ``hand_check`` x the hand's size from the body evidence's
        wrist of the same side (when that wrist is seen)."""
        conv, kp, k3, kind = hand_part
        names = _names(body_part[0])
        side = "left" if conv.endswith("left") else "right"
        if f"{side}_wrist" not in names:
            return hand_part
        bw = body_part[1][:, names.index(f"{side}_wrist")]
        _, size = keypoint_box(kp, min_confidence=0.0, scale=1.0, min_size=1.0, empty_size=1.0)
        far = ((kp[:, 0, :2] - bw[:, :2]).norm(dim=-1) > self.config.hand_check * size) & (bw[:, 2] > 0) & \
            (kp[:, 0, 2] > 0)
        if not bool(far.any()):
            return hand_part
        kp = kp.clone()
        kp[far, :, 2] = 0.0
        return (conv, kp, k3, kind)

    def _energy(self, p: BodyParams, joints: Tensor, preds, parts, K, scale, smooth, stage,
                part_scales=None) -> Tensor:
        """(B,) the fit's energy; joints (B, J+1, 3) and preds from ``_predict``;
        part_scales: per part (B,) px -> its crop units with ``detail_sigma`` for the hands
        and face (None: all in the body's ``scale`` with ``sigma``)."""
        cfg = self.config
        total = 0.0
        for i, ((conv, kp, k3, kind), (X, uv)) in enumerate(zip(parts, preds)):
            w = {"body": 1.0, "hand": cfg.w_hands, "face": cfg.w_face}[kind]
            if cfg.detail_align and kind != "body":
                uv = align_scale_translation(uv, kp)
            if part_scales is not None and kind != "body":
                total = total + w * reprojection_loss(uv, kp, part_scales[i], cfg.detail_sigma)
            else:
                total = total + w * reprojection_loss(uv, kp, scale, cfg.sigma)
            if k3 is not None and cfg.w_keypoints3d > 0 and kind == "body":
                names = _names(conv)
                if "left_hip" in names and "right_hip" in names:
                    li, ri = names.index("left_hip"), names.index("right_hip")
                    root_p = 0.5 * (X[:, li] + X[:, ri])
                    root_o = 0.5 * (k3[:, li, :3] + k3[:, ri, :3])
                    # the 3D term is about pose: compare in the camera axes, root-relative
                    total = total + cfg.w_keypoints3d * keypoints3d_loss(X, k3, root_p, root_o)
        body_pose = p.pose[:, self.body_idx]
        if self.pose_prior is not None:
            total = total + cfg.w_pose_prior * self.pose_prior(body_pose)
        else:
            total = total + cfg.w_pose_prior * (rotmat_to_aa(body_pose) ** 2).sum((-1, -2)) / 0.25
        total = total + cfg.w_bend * self.hinge(p.pose)
        total = total + cfg.w_shape_prior * self.shape_prior(p.shape)
        if stage == "detail" and self.finger_idx:
            if cfg.finger_prior == "anatomical":
                total = total + cfg.w_finger_prior * self.finger_prior(p.pose)
            else:
                total = total + cfg.w_finger_prior * (rotmat_to_aa(p.pose[:, self.finger_idx]) ** 2).sum((-1, -2))
            if p.expression is not None:
                total = total + cfg.w_expression_prior * (p.expression ** 2).sum(-1)
        if smooth and cfg.w_smooth > 0 and p.batch_size > 1:
            total = total + cfg.w_smooth * smoothness_loss(joints)
        return total

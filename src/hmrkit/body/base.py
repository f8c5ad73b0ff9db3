"""The BodyModel interface every method talks to, and linear keypoint regressors."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hmrkit.types import BodyOutput, BodyParams


class KeypointRegressor(nn.Module):
    """Keypoints as sparse linear combinations of a body's vertices and joints.

    Each keypoint k is sum_n weights[k, n] * points[:, index[k, n]] where
    points = cat([vertices (B, V, 3), joints (B, J+1, 3)], dim=1); an index >= V thus
    names a joint. ``valid`` (K,) marks keypoints the body model cannot produce (their
    output is zero): a fit must ignore them.
    """

    def __init__(self, names, index: Tensor, weights: Tensor, valid: Tensor | None = None):
        super().__init__()
        if index.shape != weights.shape or index.ndim != 2:
            raise ValueError(f"index {tuple(index.shape)} and weights {tuple(weights.shape)} must be (K, N)")
        self.names = tuple(names)
        self.register_buffer("index", index.long(), persistent=False)
        self.register_buffer("weights", weights, persistent=False)
        if valid is None:
            valid = torch.ones(len(self.names), dtype=torch.bool)
        self.register_buffer("valid", valid.bool(), persistent=False)

    def forward(self, vertices: Tensor, joints: Tensor) -> Tensor:
        """vertices (B, V, 3), joints (B, J+1, 3) -> (B, K, 3), same frame."""
        points = torch.cat([vertices, joints], dim=1)
        gathered = points[:, self.index]  # (B, K, N, 3)
        w = self.weights.to(points.dtype)
        return (gathered * w[None, :, :, None]).sum(2)

    @staticmethod
    def from_entries(names, entries, num_vertices: int, dtype=torch.float32) -> "KeypointRegressor":
        """entries: one per keypoint, a list of (index, weight) with index into
        cat(vertices, joints) (use ``num_vertices + j`` for joint j), or None for a keypoint
        the model cannot produce."""
        width = max((len(e) for e in entries if e), default=1)
        index = torch.zeros(len(entries), width, dtype=torch.long)
        weights = torch.zeros(len(entries), width, dtype=dtype)
        valid = torch.zeros(len(entries), dtype=torch.bool)
        for k, e in enumerate(entries):
            if not e:
                continue
            valid[k] = True
            for n, (i, w) in enumerate(e):
                index[k, n] = int(i)
                weights[k, n] = float(w)
        return KeypointRegressor(names, index, weights, valid)


# hand21 joints -> (finger joint k of the model's ``{side}_{finger}{k}`` names): the thumb's
# cmc, mcp and ip are its joints 1, 2, 3; the other fingers' mcp, pip and dip theirs.
_HAND21_JOINT = {"thumb": {"cmc": 1, "mcp": 2, "ip": 3}, "finger": {"mcp": 1, "pip": 2, "dip": 3}}


def hand21_regressors(joint_index: dict, tips: dict, num_vertices: int,
                      dtype=torch.float32, palm: dict | None = None) -> dict[str, KeypointRegressor]:
    """``hand21_left`` and ``hand21_right`` regressors for a model whose skeleton names its
    wrists ``{side}_wrist`` and its finger joints ``{side}_{finger}{k}`` (k = 1, 2, 3 from the
    palm; fingers thumb, index, middle, ring, pinky).

    joint_index: joint name -> its index into cat(vertices, joints) (``num_vertices + j``);
    tips: ``{side}_{finger}_tip`` -> [(index, weight), ...], the model's fingertip points;
    palm: None (every point at its joint) or where the palm's points sit as MediaPipe
    places them, as fractions of a line between joints: ``wrist`` towards the middle
    knuckle (``middle1``), ``mcp`` (the four knuckles) and ``thumb_cmc`` towards the wrist
    (scripts/calibrate_hand_face_noise.py measures them)."""
    from hmrkit.conventions import HAND21

    palm = palm or {}

    def lerp(a: str, b: str, t: float):
        if not t:
            return [(joint_index[a], 1.0)]
        return [(joint_index[a], 1.0 - t), (joint_index[b], t)]

    regressors = {}
    for side in ("left", "right"):
        entries = []
        for name in HAND21:
            if name == "wrist":
                entries.append(lerp(f"{side}_wrist", f"{side}_middle1", palm.get("wrist", 0.0)))
                continue
            finger, part = name.split("_")
            if part == "tip":
                entries.append(tips[f"{side}_{finger}_tip"])
                continue
            k = _HAND21_JOINT["thumb" if finger == "thumb" else "finger"][part]
            t = palm.get("thumb_cmc", 0.0) if name == "thumb_cmc" else palm.get("mcp", 0.0) \
                if part == "mcp" and finger != "thumb" else 0.0
            entries.append(lerp(f"{side}_{finger}{k}", f"{side}_wrist", t))
        regressors[f"hand21_{side}"] = KeypointRegressor.from_entries(HAND21, entries, num_vertices, dtype)
    return regressors


class BodyModel(nn.Module):
    """A parametric body model: BodyParams -> BodyOutput, plus what methods need to know.

    Attributes set by implementations:
      name               ``anny``, ``smpl``, ``smplh``, ``smplx``.
      joint_names        (J+1,) the regression skeleton, root first.
      parents            (J+1,) parent index of each joint, -1 for the root; parents precede
                         children.
      num_shape          S, the length of ``BodyParams.shape``.
      num_expression     E, 0 when the model has no expression.
      shape_range        (low, high) valid range of each shape value, or None (unbounded,
                         e.g. SMPL betas, whose prior is N(0, 1)).
      shape_prior_std    std of the Gaussian shape prior about ``mean_params``' shape, in
                         shape units (Anny phenotypes 0.3, SMPL betas 1.0).
      pose_library       the name of the shipped pose library and pose prior its body joints
                         use (``weights/pose_library_<name>.npz``, ``pose_prior_<name>.npz``):
                         ``anny``, or ``smpl`` for SMPL, SMPL-H and SMPL-X (one body skeleton).
      faces              (F, 3) int64 buffer.
      num_vertices       V.
    Keypoint regressors live in ``self.regressors`` (an nn.ModuleDict keyed by convention).
    """

    name: str = "body"
    joint_names: tuple = ()
    parents: tuple = ()
    num_shape: int = 0
    num_expression: int = 0
    shape_range = None
    shape_prior_std: float
    pose_library: str

    @property
    def pose_joint_names(self) -> tuple:
        """(J,) names of the joints of ``BodyParams.pose``: joint_names without the root."""
        return tuple(self.joint_names[1:])

    @property
    def num_pose_joints(self) -> int:
        return len(self.joint_names) - 1

    @property
    def num_vertices(self) -> int:
        raise NotImplementedError

    @property
    def dtype(self) -> torch.dtype:
        for b in self.buffers():
            if b.is_floating_point():
                return b.dtype
        return torch.get_default_dtype()

    @property
    def device(self) -> torch.device:
        return self.faces.device

    def forward(self, params: BodyParams) -> BodyOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def mean_params(self, batch_size: int = 1) -> BodyParams:  # pragma: no cover - interface
        """Rest pose (identity rotations), mean shape, zero translation, neutral expression."""
        raise NotImplementedError

    def _identity_params(self, batch_size: int, shape_value: float) -> BodyParams:
        dtype, device = self.dtype, self.device
        eye = torch.eye(3, dtype=dtype, device=device)
        expression = None
        if self.num_expression:
            expression = torch.zeros(batch_size, self.num_expression, dtype=dtype, device=device)
        return BodyParams(
            global_orient=eye.expand(batch_size, 3, 3).clone(),
            pose=eye.expand(batch_size, self.num_pose_joints, 3, 3).clone(),
            shape=torch.full((batch_size, self.num_shape), shape_value, dtype=dtype, device=device),
            transl=torch.zeros(batch_size, 3, dtype=dtype, device=device),
            expression=expression,
        )

    @property
    def keypoint_conventions(self) -> list[str]:
        return sorted(self.regressors.keys())

    def keypoints(self, output: BodyOutput, convention: str) -> Tensor:
        """(B, K, 3) keypoints of ``convention`` regressed from the mesh and joints."""
        self._check_conventions((convention,))
        return self.regressors[convention](output.vertices, output.joints)

    def forward_keypoints(self, params: BodyParams, conventions: tuple[str, ...]) -> dict[str, Tensor]:
        """Keypoints of several conventions and the joints, without the mesh when the model
        can skip it: {convention: (B, K, 3), ..., "joints": (B, J+1, 3)}, metres, the frame of
        ``forward`` (equal to ``keypoints(forward(params), convention)`` up to float
        round-off). Meant for loops that need keypoints only (fitting, training); this
        generic version runs ``forward``, models override it with a cheaper path."""
        conventions = self._check_conventions(conventions)
        out = self.forward(params)
        result = {c: self.regressors[c](out.vertices, out.joints) for c in conventions}
        result["joints"] = out.joints
        return result

    def _check_conventions(self, conventions) -> tuple[str, ...]:
        if isinstance(conventions, str):
            conventions = (conventions,)
        conventions = tuple(conventions)
        for c in conventions:
            if c not in self.regressors:
                raise ValueError(
                    f"body model {self.name!r} has no regressor for {c!r}; "
                    f"choose from {self.keypoint_conventions}"
                )
        return conventions

    def keypoint_valid(self, convention: str) -> Tensor:
        """(K,) bool: the keypoints of ``convention`` this model can produce."""
        return self.regressors[convention].valid

    def check_params(self, params: BodyParams) -> None:
        """Raise a ValueError naming the field whose shape does not fit this model."""
        J, S = self.num_pose_joints, self.num_shape
        if params.pose.shape[1] != J:
            raise ValueError(
                f"{self.name}: BodyParams.pose has {params.pose.shape[1]} joints, expected {J} "
                f"({', '.join(self.pose_joint_names[:3])}, ...)"
            )
        if params.shape.shape[1] != S:
            raise ValueError(f"{self.name}: BodyParams.shape has {params.shape.shape[1]} values, expected {S}")
        if params.expression is not None and params.expression.shape[1] != self.num_expression:
            raise ValueError(
                f"{self.name}: BodyParams.expression has {params.expression.shape[1]} values, "
                f"expected {self.num_expression}"
            )

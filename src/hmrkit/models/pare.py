"""PARE's part-attention regressor on hmrkit's evidence maps, and the ``pare`` / ``pare+fit`` estimators.

PARE (METHODS.md, seed 004) keeps a spatial feature volume instead of pooling it, and lets
each body part attend to its own region of it:

- the evidence maps of the crop (``hmrkit.models.inputs.evidence_maps``: a heat map per
  keypoint, a map per limb, the person mask and a has-mask channel, ``map_resolution``
  square) go through a small CNN to a ``volume`` x ``volume`` grid (16 x 16 by default: a
  thigh is about 2 x 5 cells, the torso 4 x 6);
- a **2D part branch** predicts P + 1 maps: one per part of the regression skeleton that
  carries pose (``PART_NAMES`` of ``hmrkit.data.render_synthetic``: the pelvis, which
  carries the global orientation, and the 21 body joints), channel 0 the background;
- a **3D branch** gives the feature volume F (``part_width`` channels);
- each part's feature is F weighted by the spatial softmax of its map over all cells,
  F'_p = sum_hw softmax(A_p)_hw F_hw (no global pooling, no attention heads);
- each regressed joint's rotation (6D, ``hmrkit.geometry``'s layout: the first two
  columns of the matrix, column-major), the global orientation first, comes from its own
  two-layer MLP (a locally connected layer: no weights shared across joints), reading
  the feature of the joint's part and the CLIFF box descriptor. With Anny the 21 body
  joints are the parts themselves; SMPL's hand joints read the wrists' parts (the part
  mapping of ``render_synthetic``);
- shape and the crop camera come from one MLP over all part features and the box;
- as SPIN's regressor in hmrkit, it also reads MediaPipe's root-relative world landmarks
  when they are given (``use3d``): flattened through a small MLP (``width3d``), appended
  to every joint's input and to the shape / camera MLP's. PARE's paper has only pixels;
  ``hmrkit run`` has these landmarks for every MediaPipe person, and a regressor that
  ignored them would lose to SPIN on the path users take.

The crop camera is converted to the full-image camera with the real K, as SPIN's
(``hmr_head.head_to_params``). The part maps are trained against the body model's part
segmentation early in training and then left free (``hmrkit.train.pare``). The regressed
joints are the body's ``body_joint_indices`` (fingers, jaw and eyes stay at the mean).

RGB crops as an extra input group are not implemented: no pretrained image backbone
ships, and the synthetic training data has no pixels (docs/pare.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmrkit.body.priors import body_joint_indices
from hmrkit.errors import InputError
from hmrkit.geometry.rotation import rotmat_from_6d, rotmat_to_6d
from hmrkit.models.hmr_head import CV_FROM_BODY, HeadOutput, head_to_params
from hmrkit.models.inputs import INPUT_CONVENTION, CropInputs, evidence_maps
from hmrkit.models.spin import SpinConfig, SpinEstimator
from hmrkit.types import BodyParams, Features

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


@dataclass(frozen=True)
class PareConfig:
    map_resolution: int = 32  # evidence maps in, per side
    map_sigma: float = 1.0  # heat-map sigma, map pixels
    volume: int = 16  # the feature volume's side (the part maps' resolution)
    width: int = 64  # CNN channels
    part_width: int = 32  # channels of the 3D branch = of each part feature
    joint_hidden: int = 64  # hidden units of each joint's own rotation MLP
    hidden: int = 256  # hidden units of the shape / camera MLP
    dropout: float = 0.1
    use3d: bool = True  # also read root-relative 3D keypoints (MediaPipe's world landmarks) when given
    width3d: int = 128  # their encoding, appended to every joint's and the global MLP's input
    hidden3d: int | None = 256  # the encoding MLP's hidden units (None: width3d)


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation, bias=False),
                         nn.GroupNorm(8, cout), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    def __init__(self, c: int, dilation: int):
        super().__init__()
        self.a = _conv(c, c, 1, dilation)
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, 1, dilation, dilation=dilation, bias=False), nn.GroupNorm(8, c))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.b(self.a(x)))


class LocallyConnected(nn.Module):
    """P independent linear layers applied to (B, P, C_in) -> (B, P, C_out)."""

    def __init__(self, parts: int, cin: int, cout: int, gain: float = 1.0):
        super().__init__()
        w = torch.empty(parts, cin, cout)
        for p in range(parts):
            nn.init.xavier_uniform_(w[p], gain=gain)
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(parts, cout))

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("bpi,pio->bpo", x, self.weight) + self.bias


@dataclass(frozen=True)
class PareOutput:
    """head: the HeadOutput (camera-frame global orientation, pose, shape, crop camera);
    parts: (B, P + 1, V, V) part-map logits (channel 0 background);
    attention: (B, P, V, V) each part's spatial softmax;
    features: (B, P, C) the part features; volume: (B, C, V, V) the 3D branch."""

    head: HeadOutput
    parts: Tensor
    attention: Tensor
    features: Tensor
    volume: Tensor


class PareRegressor(nn.Module):
    """CropInputs (+ optional person mask in the crop) -> PareOutput, and BodyParams via ``params``."""

    def __init__(self, body, config: PareConfig = PareConfig()):
        super().__init__()
        from hmrkit import conventions as C
        from hmrkit.data.render_synthetic import PART_NAMES

        self.body_name = body.name
        self.config = config
        self.joint_index = body_joint_indices(body)
        self.joint_names = tuple(body.pose_joint_names[i] for i in self.joint_index)
        from hmrkit.data.render_synthetic import _part_of_joint

        part_of = [_part_of_joint(n) for n in (body.joint_names[0],) + self.joint_names]
        if any(p is None for p in part_of):
            bad = [n for n, p in zip((body.joint_names[0],) + self.joint_names, part_of) if p is None]
            raise InputError(None, f"PARE: the {body.name!r} body model's joints {bad} belong to no body part")
        # each regressed rotation (the root's first) reads the feature of its joint's part
        self.register_buffer("joint_part", torch.tensor([PART_NAMES.index(p) for p in part_of]), persistent=False)
        self.edges = list(C.get(INPUT_CONVENTION).edges)
        P = len(PART_NAMES)
        self.num_parts = P
        cin = len(C.get(INPUT_CONVENTION).names) + len(self.edges) + 2
        w = config.width
        stride = config.map_resolution // config.volume
        if stride not in (1, 2, 4) or stride * config.volume != config.map_resolution:
            raise ValueError(f"PareConfig: map_resolution {config.map_resolution} must be 1, 2 or 4 x volume")
        stem = [_conv(cin, w)]
        while stride > 1:
            stem.append(_conv(w, w, 2))
            stride //= 2
        self.trunk = nn.Sequential(*stem, _Residual(w, 1), _Residual(w, 2), _Residual(w, 1))
        self.part_branch = nn.Sequential(_conv(w, w), nn.Conv2d(w, P + 1, 1))
        self.feat_branch = nn.Sequential(_conv(w, w), nn.Conv2d(w, config.part_width, 1))
        n_kp = len(C.get(INPUT_CONVENTION).names)
        W3 = config.width3d if config.use3d else 0
        if W3:
            H3 = config.hidden3d or W3
            self.enc3d = nn.Sequential(nn.Linear(4 * n_kp, H3), nn.ReLU(inplace=True), nn.Linear(H3, W3),
                                       nn.ReLU(inplace=True))
        D = config.part_width + 3 + W3
        J1 = len(self.joint_index) + 1  # the root and the regressed joints
        self.joint_mlp = nn.Sequential(LocallyConnected(J1, D, config.joint_hidden), nn.ReLU(inplace=True),
                                       LocallyConnected(J1, config.joint_hidden, 6, gain=0.01))
        mean6d = torch.cat([rotmat_to_6d(CV_FROM_BODY)[None], rotmat_to_6d(torch.eye(3)).expand(J1 - 1, 6)])
        self.register_buffer("mean_rot6d", mean6d)  # (J + 1, 6): facing the camera, every joint at rest
        mean_shape = body.mean_params(1).shape[0].detach().float()
        self.register_buffer("mean_shape", mean_shape)
        S = mean_shape.numel()
        self.num_shape = S
        self.global_mlp = nn.Sequential(
            nn.Linear(P * config.part_width + 3 + W3, config.hidden), nn.ReLU(inplace=True), nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.hidden), nn.ReLU(inplace=True), nn.Dropout(config.dropout))
        self.global_dec = nn.Linear(config.hidden, S + 3)
        nn.init.xavier_uniform_(self.global_dec.weight, gain=0.01)
        nn.init.zeros_(self.global_dec.bias)

    def maps(self, inputs: CropInputs, mask: Tensor | None = None) -> Tensor:
        return evidence_maps(inputs, self.edges, self.config.map_resolution, self.config.map_sigma, mask)

    def forward(self, inputs: CropInputs, mask: Tensor | None = None) -> PareOutput:
        """mask: (B, R, R) the person mask in the crop at map_resolution, or None."""
        return self.forward_maps(self.maps(inputs, mask), inputs)

    def forward_maps(self, maps: Tensor, inputs: CropInputs) -> PareOutput:
        """The network on given evidence maps (B, C, R, R) (``maps``) of ``inputs``."""
        x = self.trunk(maps)
        parts = self.part_branch(x)  # (B, P+1, V, V)
        vol = self.feat_branch(x)  # (B, C, V, V)
        B = x.shape[0]
        att = parts[:, 1:].flatten(2).softmax(-1)  # (B, P, V*V)
        feats = torch.einsum("bpn,bcn->bpc", att, vol.flatten(2))  # (B, P, C)
        ctx = inputs.bbox_info.to(feats.dtype)
        if self.config.use3d:  # world landmarks, zeros when absent (confidence 0 says so)
            k3 = inputs.kp3d if inputs.kp3d is not None else feats.new_zeros(B, self.enc3d[0].in_features // 4, 4)
            ctx = torch.cat([ctx, self.enc3d(k3.to(feats.dtype).flatten(1))], -1)
        jf = feats[:, self.joint_part]  # (B, J + 1, C)
        rot = self.mean_rot6d.to(feats.dtype) + self.joint_mlp(torch.cat([jf, ctx[:, None].expand(-1, jf.shape[1], -1)], -1))
        R = rotmat_from_6d(rot)  # (B, J + 1, 3, 3)
        g = self.global_dec(self.global_mlp(torch.cat([feats.flatten(1), ctx], -1)))
        shape = self.mean_shape.to(g.dtype) + g[:, :self.num_shape]
        cam = g[:, self.num_shape:]
        state = torch.cat([rot.flatten(1), shape, cam], -1)
        head = HeadOutput(R[:, 0], R[:, 1:], shape, cam, (state,))
        V = self.config.volume
        return PareOutput(head, parts, att.reshape(B, -1, V, V), feats, vol)

    def params(self, body, inputs: CropInputs, out=None, mask: Tensor | None = None) -> BodyParams:
        """BodyParams in the full-image camera frame of a PareOutput or its HeadOutput
        (None: run the network on ``inputs`` and ``mask``)."""
        out = self(inputs, mask) if out is None else out
        head = out.head if isinstance(out, PareOutput) else out
        return head_to_params(body, head, self.joint_index, inputs.center, inputs.size, inputs.K)

    # ---------------------------------------------------------------- weights
    def checkpoint(self, card: dict | None = None) -> dict:
        from hmrkit.models.weights import make_weights

        return make_weights("pare", self.body_name, {"pare": asdict(self.config)}, self.joint_names,
                            self.state_dict(), card)

    @staticmethod
    def from_checkpoint(body, ckpt: dict, path=None) -> "PareRegressor":
        from hmrkit.models.weights import check_weights

        ckpt = check_weights(ckpt, "pare", body, path)
        cfg = dict(ckpt["config"]["pare"])
        cfg.setdefault("hidden3d", None)  # weights from before the field: the encoding's width
        from hmrkit.models.weights import restore

        return restore(PareRegressor(body, PareConfig(**cfg)), ckpt, path)


def default_weights(body_name: str) -> Path:
    return WEIGHTS_DIR / f"pare_{body_name}.pt"


def load_regressor(body, path=None) -> PareRegressor:
    """The PARE regressor for ``body`` from ``path`` (default: the shipped weights), in eval mode."""
    from hmrkit.models.weights import load_model

    return load_model("pare", body, path, default_weights(body.name), PareRegressor.from_checkpoint)


def mask_in_crop(mask: Tensor, mask_box: Tensor, center: Tensor, size: Tensor, resolution: int) -> Tensor:
    """A person mask (B, M, M) sampled in the square ``mask_box`` (B, 3: cx, cy, side px) ->
    (B, R, R) in the square crop (centre (B, 2) px, side (B,) px); 0 outside the mask's box."""
    B = mask.shape[0]
    dtype = center.dtype
    g = (torch.arange(resolution, dtype=dtype) + 0.5) / resolution * 2 - 1
    gy, gx = torch.meshgrid(g, g, indexing="ij")
    px = center[:, None, None, 0] + gx * 0.5 * size[:, None, None]
    py = center[:, None, None, 1] + gy * 0.5 * size[:, None, None]
    mb = mask_box.to(dtype)
    u = (px - mb[:, None, None, 0]) / (0.5 * mb[:, None, None, 2])
    v = (py - mb[:, None, None, 1]) / (0.5 * mb[:, None, None, 2])
    grid = torch.stack([u, v], -1)
    out = F.grid_sample(mask.to(dtype)[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, 0]


class PareEstimator(SpinEstimator):
    """``pare``: PARE's regressor alone, one forward pass per person (an image estimator;
    ``pare+fit`` is ``Refined(PareEstimator, FitEstimator)``). It reads the body keypoints
    and, when the detector gives them, the person mask and the world landmarks."""

    name = "pare"
    evidence = frozenset({"body", "body3d", "mask"})

    def __init__(self, body, config: SpinConfig = SpinConfig()):
        self.body = body
        self.model = load_regressor(body, config.weights)
        self.config = replace(config, use3d=config.use3d and self.model.config.use3d)

    @classmethod
    def from_pretrained(cls, body, weights=None, **_) -> "PareEstimator":
        return cls(body, SpinConfig(weights=weights))

    def encode(self, inputs: CropInputs, obs=None, model=None) -> tuple:
        model = self.model if model is None else model
        mask = None
        if obs is not None and obs.mask is not None:
            dev = inputs.center.device
            mask = mask_in_crop(obs.mask.to(dev), obs.mask_box.to(dev), inputs.center, inputs.size, model.config.map_resolution)
        out = model(inputs, mask)
        feats = Features(pooled=out.features.flatten(1), tokens=out.features, volume=out.volume)
        return feats, out.head

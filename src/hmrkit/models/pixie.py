"""PIXIE: whole-body regression -- body, hand and face experts fused by moderators.

One forward pass from the person's evidence to the body with articulated fingers and a
facial expression (METHODS.md, seed 003), on hmrkit's keypoint evidence:

- **Body expert**: SPIN's regressor (token encoder + HMR head, ``hmrkit.models.spin``),
  started from the shipped SPIN weights and kept frozen while PIXIE trains, so ``pixie``'s
  body is ``spin``'s. Its keypoint tokens are the body's context for each part: the arm's
  tokens (shoulder, elbow, wrist, pinky, index, thumb) for a hand, the face's (nose, eyes,
  ears, mouth) for the face.
- **Hand expert**: a small token encoder over one hand's 21 keypoints in the hand's own
  normalised crop (the square box of its confident points, x and y in [-1, 1]). The left
  hand is mirrored (x -> -x) so that one expert reads both as right hands; its finger and
  wrist rotations are mirrored back (``hmrkit.geometry.rotation.mirror_rotmat``).
- **Face expert**: an MLP over the face landmarks (``face``, 41 FaceMesh points) in the
  face's own normalised crop.
- **Moderators**, one for the hands (both sides, in the mirrored frame) and one for the
  face: an MLP on [body context feature, part expert feature, the detector's confidence
  for the part (mean confidence, fraction of points found, log size of the part box
  against the body box)] -> two logits -> softmax at temperature ``temperature`` ->
  (w_body, w_part). The fused feature w_body * body + w_part * part drives the part's
  head: a hand's wrist (a residual on the body expert's wrist) and finger rotations; the
  head's rotation (a residual on the body expert's), the expression and a residual on
  the whole body's shape (the face informs the shape).

Works with any body whose skeleton has finger joints ``{side}_{finger}{k}`` (Anny,
SMPL-H, SMPL-X); a body without fingers gets none, one without expression none. Anny's
facial actions live in [0, 1] (a sigmoid); a PCA expression (SMPL-X) is linear.

Weights: ``hmrkit/weights/pixie_<body>.pt`` (``hmrkit-weights-1``, method ``pixie``; the
body expert is SPIN's shipped weights, named by a fingerprint, not copied), made by ``hmrkit train pixie`` (scripts/train_pixie.sh).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from hmrkit.body.priors import body_joint_indices, hand_joint_indices
from hmrkit.estimate.base import Timer, body_px_error
from hmrkit.geometry.rotation import mirror_rotmat, rotmat_from_6d, rotmat_to_6d
from hmrkit.models.encoders import EncoderConfig
from hmrkit.models.hmr_head import HeadConfig
from hmrkit.models.inputs import INPUT_CONVENTION, CropInputs, crop_inputs, to_input_convention
from hmrkit.models.spin import SpinEstimator, SpinRegressor, _to_device
from hmrkit.models.weights import state_fingerprint  # noqa: F401  (re-exported: it used to live here)
from hmrkit.types import BodyParams, Camera, Observation, Prediction

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
SIDES = ("left", "right")
# mediapipe33 keypoints that give a part its body context (index into the body tokens, +1 for the class token)
ARM_KEYPOINTS = {"left": (11, 13, 15, 17, 19, 21), "right": (12, 14, 16, 18, 20, 22)}
FACE_KEYPOINTS = tuple(range(11))
MIN_CONF = 0.2
HAND_POINTS = 21
EXPRESSION_GAIN, EXPRESSION_BIAS = 8.0, -3.0  # Anny's expression = sigmoid(gain * head output + bias)


@dataclass(frozen=True)
class PixieConfig:
    width: int = 96  # the experts' and the fused features' width
    hand_layers: int = 2  # transformer layers of the hand expert
    heads: int = 4
    face_hidden: int = 256
    moderator_hidden: int = 64
    temperature: float = 1.0  # of the moderators' softmax
    dropout: float = 0.1
    face_points: int = 41  # landmarks of the face convention


def part_box(points: Tensor, min_conf: float = MIN_CONF, margin: float = 1.2, min_size: float = 4.0):
    """points (B, N, 3) px + confidence -> (centre (B, 2), side (B,), found (B, N) bool):
    the square box around the confident points, ``margin`` times their extent."""
    found = points[..., 2] >= min_conf
    big = torch.finfo(points.dtype).max
    xy = points[..., :2]
    lo = torch.where(found[..., None], xy, torch.full_like(xy, big)).amin(1)
    hi = torch.where(found[..., None], xy, torch.full_like(xy, -big)).amax(1)
    some = found.any(1)
    lo = torch.where(some[:, None], lo, torch.zeros_like(lo))
    hi = torch.where(some[:, None], hi, torch.zeros_like(hi))
    centre = 0.5 * (lo + hi)
    side = ((hi - lo).amax(-1) * margin).clamp(min=min_size)
    return centre, side, found


def part_tokens(points: Tensor, body_size: Tensor, mirror: bool = False, min_conf: float = MIN_CONF):
    """A part's evidence (B, N, 3) px + confidence -> (tokens (B, N, 3): x, y in the part's
    normalised box (x mirrored when ``mirror``), confidence; 0 where not found;
    info (B, 3): mean confidence, fraction of points found, log(part box / body box))."""
    centre, side, found = part_box(points, min_conf)
    xy = (points[..., :2] - centre[:, None]) / (0.5 * side[:, None, None])
    if mirror:
        xy = xy * xy.new_tensor([-1.0, 1.0])
    conf = points[..., 2] * found
    xy = (xy * found[..., None]).clamp(-2.0, 2.0)
    tokens = torch.cat([xy, conf[..., None]], -1)
    frac = found.float().mean(1).to(points.dtype)
    rel = torch.where(found.any(1), torch.log(side / body_size.clamp(min=1.0)), torch.full_like(side, -4.0))
    info = torch.stack([conf.mean(1), frac, rel], -1)
    return tokens, info


class HandExpert(nn.Module):
    """21 hand tokens -> (B, 2 * width): the class token and the confidence-weighted mean."""

    def __init__(self, config: PixieConfig):
        super().__init__()
        d = config.width
        self.inp = nn.Linear(3, d)
        self.keypoint_embed = nn.Parameter(torch.randn(HAND_POINTS, d) * 0.02)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        layer = nn.TransformerEncoderLayer(d, config.heads, 2 * d, config.dropout, batch_first=True, norm_first=True,
                                           activation="gelu")
        self.transformer = nn.TransformerEncoder(layer, config.hand_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out_dim = 2 * d

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.inp(tokens) + self.keypoint_embed
        x = self.norm(self.transformer(torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1)))
        w = tokens[..., 2:3]
        pooled = (x[:, 1:] * w).sum(1) / w.sum(1).clamp(min=1e-6)
        return torch.cat([x[:, 0], pooled], -1)


class FaceExpert(nn.Module):
    """F face tokens, flattened -> (B, hidden)."""

    def __init__(self, config: PixieConfig):
        super().__init__()
        h = config.face_hidden
        self.net = nn.Sequential(nn.Linear(3 * config.face_points, h), nn.ReLU(inplace=True), nn.Dropout(config.dropout),
                                 nn.Linear(h, h), nn.ReLU(inplace=True))
        self.out_dim = h

    def forward(self, tokens: Tensor) -> Tensor:
        return self.net(tokens.flatten(1))


class Moderator(nn.Module):
    """[body feature, part feature, part confidence info] -> fusion weights (B, 2):
    (w_body, w_part), a softmax at ``temperature``."""

    def __init__(self, width: int, hidden: int, temperature: float):
        super().__init__()
        self.temperature = temperature
        self.net = nn.Sequential(nn.Linear(2 * width + 3, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, body: Tensor, part: Tensor, info: Tensor) -> Tensor:
        return torch.softmax(self.net(torch.cat([body, part, info], -1)) / self.temperature, -1)


@dataclass(frozen=True)
class PixieOutput:
    """body: the body expert's HeadOutput; params: BodyParams (full-image camera frame) with
    fingers, wrists, head, expression and shape from the fused parts; weights: per part
    (``left_hand``, ``right_hand``, ``face``) the moderator's (B, 2) (w_body, w_part)."""

    body: object
    params: BodyParams
    weights: dict


class PixieRegressor(nn.Module):
    """The body expert (a SpinRegressor), the hand and face experts, the moderators and the
    part heads. ``forward(inputs, hands, face)`` -> PixieOutput; ``hands`` (B, 2, 21, 3) px
    + confidence (left, right; zeros where none), ``face`` (B, F, 3) px or None."""

    def __init__(self, body, config: PixieConfig = PixieConfig(), encoder: EncoderConfig = EncoderConfig(),
                 head: HeadConfig = HeadConfig()):
        super().__init__()
        self.config = config
        self.body_name = body.name
        self.body_expert = SpinRegressor(body, encoder, head)
        self.joint_index = self.body_expert.joint_index
        names = list(body.pose_joint_names)
        self.hand_index = {s: hand_joint_indices(body, s) for s in SIDES}
        self.num_fingers = len(self.hand_index["right"])
        self.wrist_index = {s: names.index(f"{s}_wrist") for s in SIDES}
        self.head_index = names.index("head") if "head" in names else None
        self.num_expression = int(getattr(body, "num_expression", 0) or 0)
        self.bounded_expression = getattr(body, "facial_action_names", None) is not None
        fingers = tuple(names[i] for i in self.hand_index["left"] + self.hand_index["right"])
        self.joint_names = self.body_expert.joint_names + fingers
        d = config.width
        t = encoder.width  # the body tokens' width
        self.hand_expert = HandExpert(config)
        self.face_expert = FaceExpert(config)
        self.arm_context = nn.ModuleDict({s: nn.Linear((1 + len(ARM_KEYPOINTS[s])) * t, 2 * d) for s in SIDES})
        self.face_context = nn.Linear((1 + len(FACE_KEYPOINTS)) * t, 2 * d)
        self.hand_part = nn.Linear(self.hand_expert.out_dim, 2 * d)
        self.face_part = nn.Linear(self.face_expert.out_dim, 2 * d)
        self.hand_moderator = Moderator(2 * d, config.moderator_hidden, config.temperature)
        self.face_moderator = Moderator(2 * d, config.moderator_hidden, config.temperature)
        nf = self.num_fingers
        self.hand_head = nn.Sequential(nn.Linear(2 * d + 6, 256), nn.ReLU(inplace=True), nn.Linear(256, 6 * (nf + 1)))
        self.face_head = nn.Sequential(nn.Linear(2 * d + 6, 256), nn.ReLU(inplace=True),
                                       nn.Linear(256, 6 + self.num_expression + body.num_shape))
        for h in (self.hand_head, self.face_head):
            nn.init.xavier_uniform_(h[-1].weight, gain=0.01)
            nn.init.zeros_(h[-1].bias)

    # ---------------------------------------------------------------- forward
    def forward(self, inputs: CropInputs, hands: Tensor | None, face: Tensor | None, body) -> PixieOutput:
        feats, out = self.body_expert.encode(inputs)
        params = self.body_expert.params(body, inputs, out)
        B = inputs.batch_size
        dtype = inputs.kp.dtype
        tokens = feats.tokens  # (B, 1 + 33, t)
        body_size = inputs.size
        joints = list(params.pose.unbind(1))  # replaced per part, stacked at the end (no in-place writes)
        weights = {}
        if hands is None:
            hands = inputs.kp.new_zeros(B, 2, HAND_POINTS, 3)
        eye6 = rotmat_to_6d(torch.eye(3, dtype=dtype)).expand(B, 6)
        nf = self.num_fingers
        for k, side in enumerate(SIDES):
            mirror = side == "left"
            tok, info = part_tokens(hands[:, k].to(dtype), body_size, mirror=mirror)
            part = self.hand_part(self.hand_expert(tok))
            ctx = tokens[:, [0] + [i + 1 for i in ARM_KEYPOINTS[side]]].flatten(1)
            ctx = self.arm_context[side](ctx)
            w = self.hand_moderator(ctx, part, info)
            fused = w[:, :1] * ctx + w[:, 1:] * part
            wrist = joints[self.wrist_index[side]]
            wrist_c = mirror_rotmat(wrist) if mirror else wrist
            delta = self.hand_head(torch.cat([fused, rotmat_to_6d(wrist_c)], -1)).reshape(B, nf + 1, 6)
            rots = rotmat_from_6d(delta + eye6[:, None])  # residuals on identity: (B, nf + 1, 3, 3)
            wrist_c = wrist_c @ rots[:, 0]
            fingers = rots[:, 1:]
            if mirror:
                wrist_c, fingers = mirror_rotmat(wrist_c), mirror_rotmat(fingers)
            joints[self.wrist_index[side]] = wrist_c
            for j, i in enumerate(self.hand_index[side]):
                joints[i] = fingers[:, j]
            weights[f"{side}_hand"] = w
        shape, expression = params.shape, params.expression
        if face is not None and self.head_index is not None:
            tok, info = part_tokens(face.to(dtype), body_size)
            part = self.face_part(self.face_expert(tok))
            ctx = self.face_context(tokens[:, [0] + [i + 1 for i in FACE_KEYPOINTS]].flatten(1))
            w = self.face_moderator(ctx, part, info)
            fused = w[:, :1] * ctx + w[:, 1:] * part
            head = joints[self.head_index]
            o = self.face_head(torch.cat([fused, rotmat_to_6d(head)], -1))
            joints[self.head_index] = head @ rotmat_from_6d(o[:, :6] + eye6)
            E = self.num_expression
            if E:
                e = o[:, 6:6 + E]
                # Anny's facial actions in [0, 1]: a sigmoid starting near 0 (the neutral face), its
                # logit scaled so that the head learns them as fast as the rotations
                expression = torch.sigmoid(EXPRESSION_GAIN * e + EXPRESSION_BIAS) if self.bounded_expression else e
            shape = out.shape + o[:, 6 + E:]
            if body.shape_range is not None:
                shape = shape.clamp(*body.shape_range)
            weights["face"] = w
        params = BodyParams(params.global_orient, torch.stack(joints, 1), shape, params.transl, expression)
        return PixieOutput(out, params, weights)

    # ---------------------------------------------------------------- weights
    def checkpoint(self, card: dict | None = None) -> dict:
        """The shipped-weights dict (method ``pixie``). When the body expert is SPIN's
        shipped regressor (as ``hmrkit train pixie`` makes it), its tensors (3.8 MB) are left
        out and the config names them by a fingerprint of their values, checked when the
        weights load; any other body expert is stored in full."""
        from hmrkit.models.spin import default_weights as spin_weights
        from hmrkit.models.weights import load_weights, make_weights

        fp = state_fingerprint(self.body_expert.state_dict())
        cfg = {"pixie": asdict(self.config), "encoder": asdict(self.body_expert.encoder_config),
               "head": asdict(self.body_expert.head_config),
               "body_expert": {"weights": f"spin_{self.body_name}.pt", "fingerprint": fp}}
        shipped = spin_weights(self.body_name)
        state = self.state_dict()
        if shipped.exists() and state_fingerprint(load_weights(shipped)["state_dict"]) == fp:
            state = {k: v for k, v in state.items() if not k.startswith("body_expert.")}
        return make_weights("pixie", self.body_name, cfg, self.joint_names, state, card)

    @staticmethod
    def from_checkpoint(body, ckpt: dict, path=None) -> "PixieRegressor":
        """The regressor of a weights dict; its body expert from the dict when it holds one,
        else SPIN's shipped weights, which must be the ones it was trained with."""
        from hmrkit.errors import InputError
        from hmrkit.models.weights import check_weights, restore

        ckpt = check_weights(ckpt, "pixie", body, path)
        cfg = ckpt["config"]
        model = PixieRegressor(body, PixieConfig(**cfg["pixie"]), EncoderConfig(**cfg["encoder"]),
                               HeadConfig(**cfg["head"]))
        state = dict(ckpt["state_dict"])
        if not any(k.startswith("body_expert.") for k in state):
            from hmrkit.models.spin import load_regressor as load_spin

            spin = load_spin(body).state_dict()
            want = cfg.get("body_expert", {}).get("fingerprint")
            if want != state_fingerprint(spin):
                raise InputError(path, "these PIXIE weights were trained with other SPIN weights than the shipped "
                                       "ones; retrain them (scripts/train_pixie.sh)")
            state.update({"body_expert." + k: v for k, v in spin.items()})
        return restore(model, {**ckpt, "state_dict": state}, path)

    @staticmethod
    def from_spin(body, spin: SpinRegressor, config: PixieConfig = PixieConfig()) -> "PixieRegressor":
        """A PIXIE whose body expert is ``spin`` (its weights copied); the rest initialised."""
        model = PixieRegressor(body, config, spin.encoder_config, spin.head_config)
        model.body_expert.load_state_dict(spin.state_dict())
        return model




def default_weights(body_name: str) -> Path:
    return WEIGHTS_DIR / f"pixie_{body_name}.pt"


def load_regressor(body, path=None) -> PixieRegressor:
    from hmrkit.models.weights import load_model

    return load_model("pixie", body, path, default_weights(body.name), PixieRegressor.from_checkpoint)


def observation_parts(obs: Observation, dtype) -> tuple:
    """(hands (B, 2, 21, 3) or None, face (B, F, 3) or None) of a flattened observation."""
    hands = None if obs.hands is None else obs.hands.to(dtype)
    face = None if obs.face is None else obs.face.to(dtype)
    return hands, face


@dataclass(frozen=True)
class PixieConfigRun:
    weights: str | None = None
    use3d: bool = True
    min_confidence: float = 0.2
    min_keypoints: int = 6


class PixieEstimator:
    """``pixie``: body, hand and face experts fused by moderators, one forward pass per
    person (an image estimator; ``pixie+fit`` refines it by fitting)."""

    name = "pixie"
    evidence = frozenset({"body", "body3d", "hands", "face"})

    def __init__(self, body, config: PixieConfigRun = PixieConfigRun()):
        self.body = body
        self.config = config
        self.model = load_regressor(body, config.weights)
        self.last_weights: dict = {}  # the moderators' fusion weights of the last predict, per part

    @classmethod
    def from_pretrained(cls, body, weights=None, **_) -> "PixieEstimator":
        return cls(body, PixieConfigRun(weights=weights))

    crop_inputs = SpinEstimator.crop_inputs  # the body expert's inputs, as spin's

    @torch.no_grad()
    def predict(self, obs: Observation, init: BodyParams | None = None) -> Prediction:
        obs = obs.flatten()
        timings: dict = {}
        with Timer(timings, "regress"):
            inputs = self.crop_inputs(obs)
            hands, face = observation_parts(obs, self.body.dtype)
            device = next(self.model.parameters()).device
            if device.type != "cpu":
                inputs = _to_device(inputs, device)
                hands = None if hands is None else hands.to(device)
                face = None if face is None else face.to(device)
            out = self.model(inputs, hands, face, self.body)
            params = out.params if device.type == "cpu" else out.params.map(lambda t: t.cpu())
            self.last_weights = {k: v.cpu() for k, v in out.weights.items()}
        kp, _ = to_input_convention(obs.body.to(params.transl.dtype), obs.body_convention)
        err = body_px_error(self.body, params, replace(obs, body=kp, body_convention=INPUT_CONVENTION, body3d=None),
                            self.config.min_confidence)
        valid = (kp[..., 2] >= self.config.min_confidence).sum(-1) >= self.config.min_keypoints
        err = torch.where(valid, err, torch.full_like(err, float("nan")))
        return Prediction(params=params, camera=Camera(K=inputs.K.cpu()), valid=valid, px_error=err, method=self.name,
                          timings=timings)

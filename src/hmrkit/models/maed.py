"""MAED on hmrkit's evidence: a spatio-temporal encoder over windows of frames and a
kinematic topology decoder, and the ``maed`` / ``maed+fit`` estimators.

Per frame the tokens are SPIN's evidence tokens (``encoders.TokenEncoder``: one token per
keypoint of the crop-normalised 2D evidence, optionally with its world landmark, plus a
class token), so a window is T x N x d. Each ``STBlock`` is MAED's *parallel* layout:
attention over space (the N tokens of one frame) and over time (one token across the T
frames) side by side on the same normalised input, fused by a learned per-channel softmax
(MAED's code), then an MLP; learned spatial (keypoint) and temporal (frame) position
encodings. The spatial branch has the same layout as SPIN's transformer layers, so
``init_from_spin`` can start it from the shipped SPIN encoder.

The kinematic topology decoder (``KTDecoder``): shape and camera from the pooled feature
(the shape is averaged over the window: one person), then the global orientation, then
each regressed joint root first along the body model's own tree (``body.parents``), its
regressor taking the frame's feature and the predicted 6D rotations of its ancestors.

Inference (``MaedEstimator``, a window estimator): windows of ``window`` frames (16) slide
over a track's frames with a stride of half a window; overlapping frames are blended with
triangular weights (rotations in 6D, re-orthonormalised). A track shorter than a window is
one shorter window (the temporal encoding is cut); a photo is a window of one frame. The
schedulers (``hmrkit run``, ``hmrkit eval``) hand it each track's next frames with the
last ``context`` frames before them, so a chunk boundary is never a window boundary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from hmrkit.body.priors import body_joint_indices
from hmrkit.estimate.base import Timer, body_px_error
from hmrkit.models.encoders import embed_tokens, init_token_embedding
from hmrkit.models.hmr_head import CV_FROM_BODY, HeadOutput, head_to_params
from hmrkit.models.inputs import INPUT_CONVENTION, CropInputs, crop_inputs, to_input_convention
from hmrkit.geometry.rotation import rotmat_from_6d, rotmat_to_6d
from hmrkit.types import BodyParams, Camera, Features, Observation, Prediction

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


@dataclass(frozen=True)
class MaedConfig:
    width: int = 128  # token width (SPIN's encoder width, so its weights can start the spatial branch)
    layers: int = 3  # spatio-temporal blocks
    heads: int = 4
    dropout: float = 0.0  # none: the fresh detector noise of every step regularises, and dropout cost 15 % of a CPU step
    window: int = 16  # T: frames per window (the temporal encoding's length)
    use3d: bool = True  # tokens also carry the world landmarks when given
    hidden: int = 256  # the decoder's trunk
    decoder_act: str = "gelu"  # the trunk's activation: gelu | relu (relu: SPIN's head, so that its weights can start the decoder)
    fusion_bias: float = 2.0  # initial preference of the fusion for the spatial branch (softmax logits +-b)


class STBlock(nn.Module):
    """MAED's parallel spatio-temporal block on x (B, T, N, d): attention over space and
    over time on norm1(x), fused per channel by a learned softmax, then an MLP (pre-norm,
    residual). Parameter names of the spatial branch and the MLP are those of
    ``nn.TransformerEncoderLayer`` (``self_attn``, ``linear1``, ...), so SPIN's layers load."""

    def __init__(self, d: int, heads: int, dropout: float, fusion_bias: float = 2.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.time_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.fuse = nn.Linear(2 * d, 2 * d)  # per-channel logits of (space, time)
        nn.init.zeros_(self.fuse.weight)
        with torch.no_grad():
            self.fuse.bias[:d] = fusion_bias
            self.fuse.bias[d:] = -fusion_bias
        self.norm2 = nn.LayerNorm(d)
        self.linear1 = nn.Linear(d, 2 * d)
        self.linear2 = nn.Linear(2 * d, d)
        self.drop = nn.Dropout(dropout)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        B, T, N, d = x.shape
        h = self.norm1(x)
        hs = h.reshape(B * T, N, d)
        s = self.self_attn(hs, hs, hs, need_weights=False)[0].reshape(B, T, N, d)
        ht = h.transpose(1, 2).reshape(B * N, T, d)
        t = self.time_attn(ht, ht, ht, need_weights=False)[0].reshape(B, N, T, d).transpose(1, 2)
        a = self.fuse(torch.cat([s, t], -1)).reshape(B, T, N, 2, d).softmax(-2)
        x = x + self.drop(a[..., 0, :] * s + a[..., 1, :] * t)
        return x + self.drop(self.linear2(self.drop(self.act(self.linear1(self.norm2(x))))))


class STEncoder(nn.Module):
    """CropInputs of (B * T) frames -> per-frame features (B, T, 2d): the class token and
    the confidence-weighted mean of the keypoint tokens after the spatio-temporal blocks."""

    def __init__(self, num_keypoints: int, config: MaedConfig):
        super().__init__()
        d = config.width
        self.config = config
        init_token_embedding(self, num_keypoints, d)  # SPIN's, parameter for parameter
        self.time_embed = nn.Parameter(torch.zeros(config.window, d))
        nn.init.normal_(self.time_embed, std=0.02)
        self.blocks = nn.ModuleList(STBlock(d, config.heads, config.dropout, config.fusion_bias)
                                    for _ in range(config.layers))
        self.norm = nn.LayerNorm(d)
        self.out_dim = 2 * d

    def forward(self, inputs: CropInputs, T: int) -> Tensor:
        if T > self.config.window:
            raise ValueError(f"STEncoder: a window has at most {self.config.window} frames, got {T}")
        kp = inputs.kp
        BT, Kn = kp.shape[:2]
        x = embed_tokens(self, inputs, self.config.use3d)  # (BT, N, d)
        x = x.reshape(BT // T, T, Kn + 1, -1) + self.time_embed[:T, None]
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x).reshape(BT, Kn + 1, -1)
        w = kp[..., 2:3]
        pooled = (x[:, 1:] * w).sum(1) / w.sum(1).clamp(min=1e-6)
        return torch.cat([x[:, 0], pooled], -1).reshape(BT // T, T, -1)


def ancestors(body, joint_index: list[int]) -> list[list[int]]:
    """For each regressed pose joint (``joint_index`` into BodyParams.pose), the positions
    in ``joint_index`` of its regressed ancestors, root side first (the global orientation
    is every joint's first ancestor and is not listed)."""
    pos = {j: k for k, j in enumerate(joint_index)}
    out = []
    for j in joint_index:
        chain, p = [], body.parents[j + 1]
        while p > 0:
            if (p - 1) in pos:
                chain.append(pos[p - 1])
            p = body.parents[p]
        out.append(chain[::-1])
    return out


class KTDecoder(nn.Module):
    """Per-frame features (B, T, D) + box descriptors (B, T, 3) -> HeadOutput of B * T frames:
    shape (window mean) and camera from the feature, the global orientation, then the
    joints root first, each from the feature and its ancestors' predicted 6D rotations.
    Rotations are residuals on the mean (identity; the body facing the camera)."""

    def __init__(self, feature_dim: int, body, joint_index: list[int], mean_shape: Tensor, hidden: int,
                 act: str = "gelu"):
        super().__init__()
        if act not in ("gelu", "relu"):
            raise ValueError(f"KTDecoder: unknown activation {act!r}; choose from ['gelu', 'relu']")
        Act = nn.GELU if act == "gelu" else nn.ReLU
        self.anc = ancestors(body, joint_index)
        order = sorted(range(len(joint_index)), key=lambda k: len(self.anc[k]))
        self.order = order  # parents precede children
        self.num_shape = int(mean_shape.numel())
        self.register_buffer("mean_shape", mean_shape.reshape(-1).float())
        self.register_buffer("go0", rotmat_to_6d(CV_FROM_BODY))
        self.register_buffer("id6", rotmat_to_6d(torch.eye(3)))
        self.trunk = nn.Sequential(nn.Linear(feature_dim + 3, hidden), Act(), nn.Linear(hidden, hidden), Act())
        self.shape_cam = nn.Linear(hidden, self.num_shape + 3)
        self.go = nn.Linear(hidden, 6)
        self.joints = nn.ModuleList(nn.Linear(hidden + 6 * (1 + len(a)), 6) for a in self.anc)
        for lin in [self.shape_cam, self.go, *self.joints]:
            nn.init.xavier_uniform_(lin.weight, gain=0.01)
            nn.init.zeros_(lin.bias)

    def forward(self, feats: Tensor, bbox_info: Tensor) -> HeadOutput:
        B, T, _ = feats.shape
        h = self.trunk(torch.cat([feats, bbox_info.reshape(B, T, 3)], -1)).reshape(B * T, -1)
        sc = self.shape_cam(h)
        shape = (self.mean_shape + sc[:, :self.num_shape]).reshape(B, T, -1).mean(1, keepdim=True)
        shape = shape.expand(B, T, -1).reshape(B * T, -1)
        cam = sc[:, self.num_shape:]
        go6 = self.go0.to(h.dtype) + self.go(h)
        rot6 = [None] * len(self.joints)
        for k in self.order:
            a = torch.cat([go6] + [rot6[i] for i in self.anc[k]], -1)
            rot6[k] = self.id6.to(h.dtype) + self.joints[k](torch.cat([h, a], -1))
        r6 = torch.stack(rot6, 1)  # (BT, J, 6)
        state = torch.cat([go6, r6.flatten(1), shape, cam], -1)
        return HeadOutput(rotmat_from_6d(go6), rotmat_from_6d(r6), shape, cam, (state,))


class MaedRegressor(nn.Module):
    """Windows of CropInputs (B * T frames, window-major) -> HeadOutput per frame."""

    def __init__(self, body, config: MaedConfig = MaedConfig()):
        super().__init__()
        from hmrkit import conventions as C

        self.body_name = body.name
        self.config = config
        self.joint_index = body_joint_indices(body)
        self.joint_names = tuple(body.pose_joint_names[i] for i in self.joint_index)
        self.encoder = STEncoder(len(C.get(INPUT_CONVENTION).names), config)
        mean_shape = body.mean_params(1).shape[0].detach().float()
        self.decoder = KTDecoder(self.encoder.out_dim, body, self.joint_index, mean_shape, config.hidden,
                                 config.decoder_act)

    def forward(self, inputs: CropInputs, T: int) -> HeadOutput:
        return self.decoder(self.encoder(inputs, T), inputs.bbox_info)

    def encode(self, inputs: CropInputs, T: int) -> tuple:
        f = self.encoder(inputs, T)
        return Features(pooled=f.reshape(-1, f.shape[-1])), self.decoder(f, inputs.bbox_info)

    def params(self, body, inputs: CropInputs, out: HeadOutput) -> BodyParams:
        return head_to_params(body, out, self.joint_index, inputs.center, inputs.size, inputs.K)

    def init_from_spin(self, spin) -> int:
        """Start the input embedding and the spatial branch of every block from a
        ``SpinRegressor`` with a token encoder of the same width and depth; returns the
        number of tensors copied (0 when they do not match)."""
        enc = spin.encoder
        cfg = getattr(enc, "config", None)
        if cfg is None or cfg.kind != "tokens" or cfg.width != self.config.width or cfg.layers != self.config.layers:
            return 0
        src = enc.state_dict()
        own = self.encoder.state_dict()
        n = 0
        for k, v in src.items():
            kk = k.replace("transformer.layers.", "blocks.")
            if kk in own and own[kk].shape == v.shape:
                own[kk] = v.clone()
                n += 1
        self.encoder.load_state_dict(own)
        return n

    def init_decoder_from_spin(self, spin) -> int:
        """Start the kinematic decoder from a ``SpinRegressor``'s IEF head (``hmr_head``): the
        trunk is the head's MLP with the estimate input held at the mean (folded into the
        first bias), each output layer the head's output rows of its parameters, each joint's
        ancestor inputs zero; so the decoder reads a feature as the head's *first* iteration
        does. Needs a trunk of the head's width and activation (``hidden`` 512, ``relu``) and
        the same features and joints; returns the number of tensors set (0 when they do not
        match)."""
        head = getattr(spin, "head", None)
        dec = self.decoder
        J, S = len(self.joint_index), dec.num_shape
        if (head is None or not hasattr(head, "mlp") or self.config.decoder_act != "relu"
                or head.config.hidden != self.config.hidden or head.num_joints != J or head.num_shape != S
                or head.mlp[0].in_features != dec.trunk[0].in_features + head.dim
                or tuple(spin.joint_index) != tuple(self.joint_index)):
            return 0
        F = dec.trunk[0].in_features  # the feature and the box descriptor
        W1, b1 = head.mlp[0].weight.detach(), head.mlp[0].bias.detach()
        Wd, bd = head.dec.weight.detach(), head.dec.bias.detach()
        mean = head.mean.to(W1.dtype)
        with torch.no_grad():
            dec.trunk[0].weight.copy_(W1[:, :F])
            dec.trunk[0].bias.copy_(b1 + W1[:, F:] @ mean)
            dec.trunk[2].weight.copy_(head.mlp[3].weight)
            dec.trunk[2].bias.copy_(head.mlp[3].bias)
            dec.go.weight.copy_(Wd[:6])
            dec.go.bias.copy_(bd[:6])
            for k, lin in enumerate(dec.joints):
                rows = slice(6 + 6 * k, 12 + 6 * k)
                lin.weight.zero_()
                lin.weight[:, :Wd.shape[1]] = Wd[rows]
                lin.bias.copy_(bd[rows])
            sc = torch.cat([torch.arange(6 + 6 * J, 6 + 6 * J + S), torch.arange(Wd.shape[0] - 3, Wd.shape[0])])
            dec.shape_cam.weight.copy_(Wd[sc])
            dec.shape_cam.bias.copy_(bd[sc])
        return 2 * (2 + 1 + len(dec.joints) + 1)

    # ---------------------------------------------------------------- weights
    def checkpoint(self, card: dict | None = None) -> dict:
        from hmrkit.models.weights import make_weights

        return make_weights("maed", self.body_name, {"maed": asdict(self.config)}, self.joint_names,
                            self.state_dict(), card)

    @staticmethod
    def from_checkpoint(body, ckpt: dict, path=None) -> "MaedRegressor":
        from hmrkit.models.weights import check_weights, restore

        ckpt = check_weights(ckpt, "maed", body, path)
        return restore(MaedRegressor(body, MaedConfig(**ckpt["config"]["maed"])), ckpt, path)


def default_weights(body_name: str) -> Path:
    return WEIGHTS_DIR / f"maed_{body_name}.pt"


def load_regressor(body, path=None) -> MaedRegressor:
    from hmrkit.models.weights import load_model

    return load_model("maed", body, path, default_weights(body.name), MaedRegressor.from_checkpoint)


def window_starts(T: int, window: int, stride: int) -> list[int]:
    """Starts of the windows that cover T frames: every ``stride``, the last one ending at T."""
    if T <= window:
        return [0]
    starts = list(range(0, T - window + 1, stride))
    if starts[-1] + window < T:
        starts.append(T - window)
    return starts


def blend_weights(n: int) -> Tensor:
    """(n,) triangular weights of a window's frames (highest in the middle, never 0)."""
    i = torch.arange(n, dtype=torch.float64)
    return (torch.minimum(i + 1, n - i) / ((n + 1) / 2)).float()


@dataclass(frozen=True)
class MaedEstimatorConfig:
    weights: str | None = None
    use3d: bool = True
    min_confidence: float = 0.2
    min_keypoints: int = 6
    stride: int | None = None  # frames between windows (None: half a window)


class MaedEstimator:
    """``maed``: the window estimator; ``predict`` (photos, independent frames) runs each
    frame as a window of one."""

    name = "maed"
    evidence = frozenset({"body", "body3d"})

    def __init__(self, body, config: MaedEstimatorConfig = MaedEstimatorConfig()):
        self.body = body
        self.config = config
        self.model = load_regressor(body, config.weights)
        self.window_size = self.model.config.window
        self.stride = config.stride or max(1, self.window_size // 2)
        self.context = self.window_size - self.stride  # frames before a chunk that its first window sees

    @classmethod
    def from_pretrained(cls, body, weights=None, **_) -> "MaedEstimator":
        return cls(body, MaedEstimatorConfig(weights=weights))

    def crop_inputs(self, obs: Observation) -> CropInputs:
        dtype = self.body.dtype
        k3 = obs.body3d.to(dtype) if (obs.body3d is not None and self.config.use3d) else None
        return crop_inputs(obs.body.to(dtype), obs.K.to(dtype), obs.body_convention, k3, self.config.min_confidence,
                           image_wh=obs.image_size.flip(-1).to(dtype))

    @torch.no_grad()
    def regress(self, obs: Observation) -> tuple:
        """obs (B, T) -> (HeadOutput of B * T frames, CropInputs, Features): sliding windows,
        overlaps blended."""
        B, T = obs.lead
        flat = obs.flatten()
        inputs = self.crop_inputs(flat)
        W = self.window_size
        starts = window_starts(T, W, self.stride)
        D = None
        acc = wsum = None
        feats = None
        for s in starts:
            n = min(W, T - s)
            sel = (torch.arange(B)[:, None] * T + s + torch.arange(n)[None]).reshape(-1)
            sub = _select(inputs, sel)
            f, out = self.model.encode(sub, n)
            vec = torch.cat([rotmat_to_6d(out.global_orient), rotmat_to_6d(out.pose).flatten(1), out.shape, out.cam], -1)
            if acc is None:
                D = vec.shape[-1]
                acc = vec.new_zeros(B * T, D)
                wsum = vec.new_zeros(B * T, 1)
                feats = f.pooled.new_zeros(B * T, f.pooled.shape[-1])
            w = blend_weights(n).to(vec.dtype).repeat(B)[:, None]
            acc.index_add_(0, sel, vec * w)
            wsum.index_add_(0, sel, w)
            feats.index_add_(0, sel, f.pooled * w)
        vec = acc / wsum
        J = len(self.model.joint_index)
        S = self.model.decoder.num_shape
        go = rotmat_from_6d(vec[:, :6])
        pose = rotmat_from_6d(vec[:, 6:6 + 6 * J].reshape(-1, J, 6))
        shape = vec[:, 6 + 6 * J:6 + 6 * J + S].reshape(B, T, S).mean(1, keepdim=True).expand(B, T, S).reshape(B * T, S)
        cam = vec[:, -3:]
        return HeadOutput(go, pose, shape, cam, (vec,)), inputs, Features(pooled=feats / wsum)

    def predict(self, obs: Observation, init: BodyParams | None = None) -> Prediction:
        if obs.is_window:
            return self.predict_window(obs, init)
        return self._predict(obs.stack_time().map(lambda t: t.transpose(0, 1)), 0, "regress")

    def predict_window(self, obs: Observation, init: BodyParams | None = None, context: int = 0) -> Prediction:
        """obs (B, T) -> Prediction of the frames after the first ``context`` of each window
        (B * (T - context),), window-major; the context frames are only seen."""
        return self._predict(obs, context, "regress")

    def _predict(self, obs: Observation, context: int, key: str) -> Prediction:
        timings: dict = {}
        B, T = obs.lead
        with Timer(timings, key):
            head, inputs, feats = self.regress(obs)
            params = self.model.params(self.body, inputs, head)
        keep = (torch.arange(B)[:, None] * T + torch.arange(context, T)[None]).reshape(-1)
        params, flat = params[keep], obs[:, context:].flatten() if context else obs.flatten()
        feats = feats[keep]
        kp, _ = to_input_convention(flat.body.to(params.transl.dtype), flat.body_convention)
        err = body_px_error(self.body, params, replace(flat, body=kp, body_convention=INPUT_CONVENTION, body3d=None),
                            self.config.min_confidence)
        valid = (kp[..., 2] >= self.config.min_confidence).sum(-1) >= self.config.min_keypoints
        err = torch.where(valid, err, torch.full_like(err, float("nan")))
        return Prediction(params=params, camera=Camera(K=flat.K.to(params.transl.dtype)), valid=valid, px_error=err,
                          method=self.name, features=feats, timings=timings)


def _select(inputs: CropInputs, idx: Tensor) -> CropInputs:
    return CropInputs(kp=inputs.kp[idx], kp3d=None if inputs.kp3d is None else inputs.kp3d[idx],
                      center=inputs.center[idx], size=inputs.size[idx], K=inputs.K[idx], bbox_info=inputs.bbox_info[idx])

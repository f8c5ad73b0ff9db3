"""SPIN's regressor on hmrkit's evidence, and the ``spin`` / ``spin+fit`` estimators.

``SpinRegressor`` = an evidence encoder (``encoders``) + HMR's IEF head (``hmr_head``): one
forward pass from 2D (and optional 3D) keypoints to body parameters and a full-image
camera. ``SpinEstimator`` puts it behind the estimator contract (``hmrkit.estimate``: an
image estimator, ``predict(Observation) -> Prediction``); ``spin+fit`` wraps it in the
fitting refinement (``Refined``: SPIN's "fitting initialised by the regressor", used here
at inference as well).

Weights are in the one format of every method (``hmrkit.models.weights``,
``hmrkit-weights-1``: method, body, config = the encoder's and head's fields, joint names,
state dict, card; files of the older ``hmrkit-spin-1`` layout still load). The shipped ones are ``hmrkit/weights/spin_<body>.pt`` (card in
``hmrkit/weights/README.md``); ``hmrkit train spin`` makes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from hmrkit.body.priors import body_joint_indices
from hmrkit.estimate.base import Timer, body_px_error
from hmrkit.models.encoders import EncoderConfig, build_encoder
from hmrkit.models.hmr_head import HeadConfig, HeadOutput, HMRHead, head_to_params
from hmrkit.models.inputs import INPUT_CONVENTION, CropInputs, crop_inputs, to_input_convention
from hmrkit.types import BodyParams, Camera, Observation, Prediction

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
FORMAT = "hmrkit-weights-1"  # hmrkit.models.weights.FORMAT; "hmrkit-spin-1" files still load


class SpinRegressor(nn.Module):
    """CropInputs -> HeadOutput (and BodyParams via ``params``) for one body model."""

    def __init__(self, body, encoder: EncoderConfig = EncoderConfig(), head: HeadConfig = HeadConfig()):
        super().__init__()
        self.body_name = body.name
        self.joint_index = body_joint_indices(body)
        self.joint_names = tuple(body.pose_joint_names[i] for i in self.joint_index)
        self.encoder_config, self.head_config = encoder, head
        self.encoder = build_encoder(encoder)
        mean_shape = body.mean_params(1).shape[0].detach().float()
        self.head = HMRHead(self.encoder.out_dim, len(self.joint_index), mean_shape, head)

    def forward(self, inputs: CropInputs) -> HeadOutput:
        return self.head(self.encoder(inputs).pooled, inputs.bbox_info)

    def encode(self, inputs: CropInputs) -> tuple:
        """(Features, HeadOutput): the encoder's features and the head's output on them."""
        feats = self.encoder(inputs)
        return feats, self.head(feats.pooled, inputs.bbox_info)

    def params(self, body, inputs: CropInputs, out: HeadOutput | None = None) -> BodyParams:
        """BodyParams in the full-image camera frame (see ``head_to_params``)."""
        out = self(inputs) if out is None else out
        return head_to_params(body, out, self.joint_index, inputs.center, inputs.size, inputs.K)

    # ---------------------------------------------------------------- weights
    def checkpoint(self, card: dict | None = None) -> dict:
        """The shipped-weights dict (``hmrkit.models.weights``, method ``spin``)."""
        from hmrkit.models.weights import make_weights

        return make_weights("spin", self.body_name, {"encoder": asdict(self.encoder_config),
                                                     "head": asdict(self.head_config)},
                            self.joint_names, self.state_dict(), card)

    @staticmethod
    def from_checkpoint(body, ckpt: dict, path=None) -> "SpinRegressor":
        """The regressor of a weights dict (``hmrkit-weights-1``, or the older ``hmrkit-spin-1``)."""
        from hmrkit.models.weights import check_weights

        ckpt = check_weights(ckpt, "spin", body, path)
        cfg = ckpt["config"]
        from hmrkit.models.weights import restore

        return restore(SpinRegressor(body, EncoderConfig(**cfg["encoder"]), HeadConfig(**cfg["head"])), ckpt, path)


def default_weights(body_name: str) -> Path:
    return WEIGHTS_DIR / f"spin_{body_name}.pt"


def load_regressor(body, path=None) -> SpinRegressor:
    """The regressor for ``body`` from ``path`` (default: the shipped weights), in eval mode."""
    from hmrkit.models.weights import load_model

    return load_model("spin", body, path, default_weights(body.name), SpinRegressor.from_checkpoint)


@dataclass(frozen=True)
class SpinConfig:
    weights: str | None = None  # None: the shipped weights for the body model
    use3d: bool = True  # feed the evidence's 3D keypoints (MediaPipe world landmarks) when present
    min_confidence: float = 0.2
    min_keypoints: int = 6  # fewer confident body keypoints -> not valid


def _to_device(obj, device):
    """A frozen dataclass (CropInputs, HeadOutput) with its tensors (and tuples of them) on ``device``."""
    from dataclasses import fields

    changes = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, Tensor):
            changes[f.name] = v.to(device)
        elif isinstance(v, tuple) and v and all(isinstance(x, Tensor) for x in v):
            changes[f.name] = tuple(x.to(device) for x in v)
    return replace(obj, **changes)


class SpinEstimator:
    """``spin``: SPIN's regressor alone, one forward pass per person (an image estimator;
    ``spin+fit`` is ``hmrkit.estimate.Refined(SpinEstimator, FitEstimator)``)."""

    name = "spin"
    evidence = frozenset({"body", "body3d"})  # the body keypoints and world landmarks; no hands, face, mask

    def __init__(self, body, config: SpinConfig = SpinConfig()):
        self.body = body
        self.config = config
        self.model = load_regressor(body, config.weights)

    @classmethod
    def from_pretrained(cls, body, weights=None, **_) -> "SpinEstimator":
        """The shipped weights for ``body`` (``weights``: another checkpoint's path)."""
        return cls(body, SpinConfig(weights=weights))

    def crop_inputs(self, obs: Observation) -> CropInputs:
        """The regressor's inputs for obs (B,): keypoints outside the image (H, W of the
        observation) are missing, as in the training data."""
        dtype = self.body.dtype
        k3 = obs.body3d.to(dtype) if (obs.body3d is not None and self.config.use3d) else None
        wh = obs.image_size.flip(-1).to(dtype)
        return crop_inputs(obs.body.to(dtype), obs.K.to(dtype), obs.body_convention, k3, self.config.min_confidence,
                           image_wh=wh)

    def encode(self, inputs: CropInputs, obs: Observation | None = None, model=None) -> tuple:
        """(Features, HeadOutput) of the network on ``inputs`` (on the network's device);
        ``obs`` is the flattened observation they came from (for other evidence; None: none),
        ``model`` another copy of the network to run (DynaBOA's adapted or teacher copy)."""
        return (self.model if model is None else model).encode(inputs)

    @torch.no_grad()
    def predict(self, obs: Observation, init: BodyParams | None = None) -> Prediction:
        """obs (B,) -> Prediction (B,); ``init`` is not used (the regressor starts from the mean).
        No mesh is built (``output`` None): the 2D error needs only keypoints."""
        obs = obs.flatten()
        timings: dict = {}
        with Timer(timings, "regress"):
            inputs = self.crop_inputs(obs)
            device = next(self.model.parameters()).device  # the network may sit on a GPU (--device)
            if device.type == "cpu":
                feats, head = self.encode(inputs, obs)
            else:
                feats, head = self.encode(_to_device(inputs, device), obs)
                feats, head = feats.map(lambda t: t.cpu()), _to_device(head, torch.device("cpu"))
            params = self.model.params(self.body, inputs, head)
        kp, _ = to_input_convention(obs.body.to(params.transl.dtype), obs.body_convention)
        err = body_px_error(self.body, params, replace(obs, body=kp, body_convention=INPUT_CONVENTION, body3d=None),
                            self.config.min_confidence)
        valid = (kp[..., 2] >= self.config.min_confidence).sum(-1) >= self.config.min_keypoints
        err = torch.where(valid, err, torch.full_like(err, float("nan")))
        return Prediction(params=params, camera=Camera(K=inputs.K), valid=valid, px_error=err, method=self.name,
                          features=feats, timings=timings)

"""SPIN's regressor on hmrkit's evidence, and the ``spin`` / ``spin+fit`` estimators.

``SpinRegressor`` = an evidence encoder (``encoders``) + HMR's IEF head (``hmr_head``): one
forward pass from 2D (and optional 3D) keypoints to body parameters and a full-image
camera. ``SpinEstimator`` wraps it behind the estimator interface of ``hmrkit.estimators``
(``.fit(kp2d, convention, K, init=None, kp3d=None, smooth=False) -> Prediction``), and
optionally refines the regressor's estimate with the SMPLify-style ``Fitter`` (SPIN's
"fitting initialised by the regressor", used here at inference as well).

Weights are a ``torch.save`` dict of plain types and tensors: {"format", "body",
"encoder": EncoderConfig fields, "head": HeadConfig fields, "joint_names", "state_dict",
"card": dict}. The shipped ones are ``hmrkit/weights/spin_<body>.pt`` (card in
``hmrkit/weights/README.md``); ``hmrkit train spin`` makes them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from hmrkit.body.priors import body_joint_indices
from hmrkit.errors import InputError
from hmrkit.geometry.camera import project
from hmrkit.models.encoders import EncoderConfig, build_encoder
from hmrkit.models.hmr_head import HeadConfig, HeadOutput, HMRHead, head_to_params
from hmrkit.models.inputs import INPUT_CONVENTION, CropInputs, crop_inputs, to_input_convention
from hmrkit.types import BodyParams, Camera, Prediction

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
FORMAT = "hmrkit-spin-1"


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
        return self.head(self.encoder(inputs), inputs.bbox_info)

    def params(self, body, inputs: CropInputs, out: HeadOutput | None = None) -> BodyParams:
        """BodyParams in the full-image camera frame (see ``head_to_params``)."""
        out = self(inputs) if out is None else out
        return head_to_params(body, out, self.joint_index, inputs.center, inputs.size, inputs.K)

    # ---------------------------------------------------------------- weights
    def checkpoint(self, card: dict | None = None) -> dict:
        return {"format": FORMAT, "body": self.body_name, "encoder": asdict(self.encoder_config),
                "head": asdict(self.head_config), "joint_names": list(self.joint_names),
                "state_dict": {k: v.detach().clone() for k, v in self.state_dict().items()}, "card": card or {}}

    @staticmethod
    def from_checkpoint(body, ckpt: dict, path=None) -> "SpinRegressor":
        if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
            raise InputError(path, f"not an hmrkit SPIN checkpoint (expected format {FORMAT!r})")
        if ckpt["body"] != body.name:
            raise InputError(path, f"these weights are for the {ckpt['body']!r} body model, not {body.name!r}")
        model = SpinRegressor(body, EncoderConfig(**ckpt["encoder"]), HeadConfig(**ckpt["head"]))
        if list(model.joint_names) != list(ckpt["joint_names"]):
            raise InputError(path, "the weights' joints do not match this body model's")
        model.load_state_dict(ckpt["state_dict"])
        model.card = ckpt.get("card", {})
        return model


def default_weights(body_name: str) -> Path:
    return WEIGHTS_DIR / f"spin_{body_name}.pt"


def load_regressor(body, path=None) -> SpinRegressor:
    """The regressor for ``body`` from ``path`` (default: the shipped weights), in eval mode."""
    path = Path(path) if path is not None else default_weights(body.name)
    if not path.exists():
        hint = "train them with `hmrkit train spin`" if body.name != "anny" else "the package is incomplete"
        raise InputError(path, f"no SPIN weights for the {body.name!r} body model ({hint})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file
        raise InputError(path, f"cannot read SPIN weights: {str(e).splitlines()[0]}") from None
    model = SpinRegressor.from_checkpoint(body, ckpt, path)
    return model.to(body.dtype).eval()


@dataclass(frozen=True)
class SpinConfig:
    weights: str | None = None  # None: the shipped weights for the body model
    refine: bool = False  # spin+fit: refine the regressor's estimate with the Fitter
    use3d: bool = True  # feed the evidence's 3D keypoints (MediaPipe world landmarks) when present
    min_confidence: float = 0.2
    min_keypoints: int = 6  # fewer confident body keypoints -> not valid


class SpinEstimator:
    """``spin`` (regressor alone) or ``spin+fit`` (regressor, then the fitting refinement)."""

    def __init__(self, body, config: SpinConfig = SpinConfig(), fit_config=None):
        from hmrkit.fit import FitConfig, Fitter

        self.body = body
        self.config = config
        self.model = load_regressor(body, config.weights)
        self.fitter = Fitter(body, fit_config or FitConfig()) if config.refine else None
        self.method = "spin+fit" if config.refine else "spin"

    @torch.no_grad()
    def regress(self, kp2d: Tensor, convention: str, K: Tensor, kp3d: Tensor | None = None) -> tuple:
        """(BodyParams, CropInputs) from keypoints (B, K, 3) px in ``convention``."""
        dtype = self.body.dtype
        kp2d = torch.as_tensor(kp2d, dtype=dtype)
        K = torch.as_tensor(K, dtype=dtype)
        if kp3d is not None and self.config.use3d:
            kp3d = torch.as_tensor(kp3d, dtype=dtype)
        else:
            kp3d = None
        # the image is taken to span twice the principal point (hmrkit's intrinsics put it
        # at the centre): keypoints outside it are missing, as in the training data
        inputs = crop_inputs(kp2d, K, convention, kp3d, self.config.min_confidence, image_wh=2 * K[:, :2, 2])
        return self.model.params(self.body, inputs), inputs

    def fit(self, kp2d: Tensor, convention: str, K: Tensor, init: BodyParams | None = None,
            kp3d: Tensor | None = None, smooth: bool = False, progress=None) -> Prediction:
        """Same interface as ``Fitter.fit``; ``init`` is ignored by ``spin`` (the regressor
        is the initialisation) and ``smooth`` only matters to the refinement."""
        t0 = time.perf_counter()
        params, inputs = self.regress(kp2d, convention, K, kp3d)
        t_reg = time.perf_counter() - t0
        if self.fitter is not None:
            pred = self.fitter.fit(kp2d, convention, K, init=params, kp3d=kp3d, smooth=smooth, progress=progress)
            info = dict(pred.info, regress_s=t_reg, time_s=time.perf_counter() - t0)
            return replace(pred, method=self.method, info=info)
        with torch.no_grad():
            out = self.body(params)
            uv = project(self.body.keypoints(out, INPUT_CONVENTION), inputs.K)
        kp, _ = to_input_convention(torch.as_tensor(kp2d, dtype=uv.dtype), convention)
        w = (kp[..., 2] >= self.config.min_confidence).to(uv.dtype)
        err = ((uv - kp[..., :2]).norm(dim=-1) * w).sum(-1) / w.sum(-1).clamp(min=1)
        valid = w.sum(-1) >= self.config.min_keypoints
        info = {"time_s": time.perf_counter() - t0, "regress_s": t_reg, "mean_px_error": err}
        return Prediction(params=params, camera=Camera(K=inputs.K), method=self.method, valid=valid,
                          output=out, info=info)

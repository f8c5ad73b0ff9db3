"""Learned regressors: evidence encoders and the method heads (SPIN's HMR head so far)."""

from hmrkit.models.encoders import EncoderConfig, MapEncoder, TokenEncoder, build_encoder
from hmrkit.models.hmr_head import HeadConfig, HeadOutput, HMRHead, head_to_params
from hmrkit.models.inputs import INPUT_CONVENTION, CropInputs, crop_inputs, evidence_maps
from hmrkit.models.spin import SpinConfig, SpinEstimator, SpinRegressor, load_regressor

__all__ = [
    "CropInputs", "EncoderConfig", "HMRHead", "HeadConfig", "HeadOutput", "INPUT_CONVENTION", "MapEncoder",
    "SpinConfig", "SpinEstimator", "SpinRegressor", "TokenEncoder", "build_encoder", "crop_inputs",
    "evidence_maps", "head_to_params", "load_regressor",
]

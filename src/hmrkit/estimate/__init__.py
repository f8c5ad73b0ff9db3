"""The estimator contract (``base``) and every method by name (``registry``).

    from hmrkit.estimate import build
    est = build("spin+fit", body)
    pred = est.predict(Observation.from_evidence(evidence, K))
"""

from hmrkit.estimate.base import (
    EVIDENCE, ImageEstimator, Refined, StreamEstimator, WindowEstimator, body_px_error, evidence_used, kinds,
    observation_from_arrays,
)
from hmrkit.estimate.registry import (
    ESTIMATORS, build, default_method, method_names, scaled_fit_config, with_adapt,
)

__all__ = [
    "ESTIMATORS", "EVIDENCE", "ImageEstimator", "Refined", "StreamEstimator", "WindowEstimator", "body_px_error", "build",
    "default_method", "evidence_used", "kinds", "method_names", "observation_from_arrays", "scaled_fit_config",
    "with_adapt",
]

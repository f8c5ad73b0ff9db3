"""The fitting as an estimator (``fit``) and as the "+fit" refinement of any other.

``FitEstimator`` reads an ``Observation`` and runs the staged ``Fitter``: frames alone
(``predict``: an image estimator) or windows of consecutive frames of one track
(``predict_window``: one shape shared by the window, the temporal term on), which is how
``hmrkit run`` fits a video. ``refine`` / ``refine_window`` start from another estimator's
``Prediction`` instead of the mean body: ``hmrkit.estimate.Refined`` uses them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from hmrkit.estimate.base import Timer
from hmrkit.fit.fitter import FitConfig, Fitter
from hmrkit.types import BodyParams, Observation, Prediction

WINDOW = 8  # video frames fitted together (one shape, smoothness, warm start from the previous window)


class FitEstimator:
    """``fit``: SMPLify-style fitting from the mean body, or from ``init`` when given."""

    name = "fit"
    evidence = frozenset({"body", "body3d", "hands", "face"})  # fingers and expression from hands and face

    def __init__(self, body, config: FitConfig = FitConfig(), window_size: int = WINDOW):
        self.body = body
        self.config = config
        self.fitter = Fitter(body, config)
        self.window_size = window_size

    @classmethod
    def from_pretrained(cls, body, fit_config: Optional[FitConfig] = None, **_) -> "FitEstimator":
        """Nothing learned to load beyond the shipped pose prior (``Fitter`` reads it)."""
        return cls(body, fit_config or FitConfig())

    def _fit(self, obs: Observation, init: Optional[BodyParams], smooth: bool) -> Prediction:
        kp, conv, k3 = obs.holistic()
        timings: dict = {}
        with Timer(timings, "fit"):
            pred = self.fitter.fit(kp, conv, obs.K, init=init, kp3d=k3, smooth=smooth)
        return replace(pred, method=self.name, timings=timings)

    def predict(self, obs: Observation, init: Optional[BodyParams] = None) -> Prediction:
        """obs (B,) independent frames (or (B, T) windows: ``predict_window``) -> (B,)."""
        if obs.is_window:
            return self.predict_window(obs, init)
        return self._fit(obs, init, smooth=False)

    def predict_window(self, obs: Observation, init: Optional[BodyParams] = None) -> Prediction:
        """obs (B, T): each window fitted together, with one shape and the temporal term;
        init (B * T,) or None -> Prediction (B * T,), window-major."""
        if not obs.is_window:
            obs = obs.stack_time()
        T = obs.lead[1]
        preds = []
        for b in range(obs.batch_size):
            part = None if init is None else init[b * T:(b + 1) * T]
            preds.append(self._fit(obs[b].flatten(), part, smooth=T > 1))
        return Prediction.cat(preds) if len(preds) > 1 else preds[0]

    def refine(self, obs: Observation, start: Prediction) -> Prediction:
        """Fit frames starting from ``start``'s estimate (B,)."""
        return self._fit(obs, start.params, smooth=False)

    def refine_window(self, obs: Observation, start: Prediction) -> Prediction:
        """Fit (B, T) windows starting from ``start`` (B * T,)."""
        return self.predict_window(obs, start.params)

"""One place that turns a method name into an estimator.

An estimator has ``.fit(kp2d, convention, K, init=None, kp3d=None, smooth=False)`` ->
``hmrkit.types.Prediction`` (see ``hmrkit.fit.Fitter``). ``hmrkit run``, ``hmrkit eval``
and the benchmarks all build theirs here, so a method means the same thing everywhere:

  fit        SMPLify-style fitting from the mean body (hmrkit.fit)
  spin       SPIN's regressor alone: one forward pass (hmrkit.models.spin)
  spin+fit   the regressor's estimate refined by the fitting (the default of ``hmrkit run``)
"""

from __future__ import annotations

from hmrkit.errors import InputError

METHODS = ("fit", "spin", "spin+fit")
DEFAULT_METHOD = "spin+fit"
# Started from the regressor's estimate, the fit needs half the default schedule: on the
# synthetic sets 100 body iterations are as accurate as 200 (docs/spin.md), at half the cost.
SPIN_FIT_ITERS = 100


def default_method(body) -> str:
    """``spin+fit`` where SPIN weights ship for the body model (Anny), else ``fit`` (an
    SMPL-family body: its weights would need the user's model file to train)."""
    from hmrkit.models.spin import default_weights

    return DEFAULT_METHOD if default_weights(body.name).exists() else "fit"


def scaled_fit_config(body_iters: int | None):
    """A FitConfig whose body stage runs ``body_iters`` iterations, its camera and detail
    stages scaled in proportion (None: None, each method's default) -- the hidden
    ``--fit-iters`` budget of ``hmrkit run`` and ``hmrkit eval``."""
    from dataclasses import replace

    from hmrkit.fit import FitConfig

    if body_iters is None:
        return None
    base = FitConfig()
    n = max(1, int(body_iters))
    ratio = lambda k: max(1, round(n * k / max(1, base.body_iters)))  # noqa: E731
    return replace(base, body_iters=n, camera_iters=ratio(base.camera_iters), detail_iters=ratio(base.detail_iters))


def build_estimator(method: str, body, fit_config=None, weights=None):
    """method: one of METHODS; body: a loaded BodyModel; fit_config: a FitConfig or None
    (the method's default: FitConfig() for fit, SPIN_FIT_ITERS body iterations for
    spin+fit); weights: a regressor checkpoint path or None (the shipped weights)."""
    from hmrkit.fit import FitConfig, Fitter

    if method not in METHODS:
        raise InputError(None, f"unknown method {method!r}; choose from {list(METHODS)}")
    if method == "fit":
        return Fitter(body, fit_config or FitConfig())
    from hmrkit.models.spin import SpinConfig, SpinEstimator

    if method == "spin+fit" and fit_config is None:
        fit_config = scaled_fit_config(SPIN_FIT_ITERS)
    return SpinEstimator(body, SpinConfig(weights=weights, refine=method == "spin+fit"), fit_config)

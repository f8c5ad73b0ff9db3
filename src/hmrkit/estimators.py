"""One place that turns a method name into an estimator.

An estimator has ``.fit(kp2d, convention, K, init=None, kp3d=None, smooth=False)`` ->
``hmrkit.types.Prediction`` (see ``hmrkit.fit.Fitter``). ``hmrkit run``, ``hmrkit eval``
and the benchmarks all build theirs here, so a method means the same thing everywhere.
"""

from __future__ import annotations

from hmrkit.errors import InputError

METHODS = ("fit",)


def build_estimator(method: str, body, fit_config=None):
    """method: one of METHODS; body: a loaded BodyModel; fit_config: a FitConfig or None."""
    from hmrkit.fit import FitConfig, Fitter

    if method not in METHODS:
        raise InputError(None, f"unknown method {method!r}; choose from {list(METHODS)}")
    return Fitter(body, fit_config or FitConfig())

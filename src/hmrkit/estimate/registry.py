"""Every method by name, in one table: ``hmrkit run``, ``hmrkit eval``, the benchmarks and
the scripts build their estimators here, so a method means the same thing everywhere.

  fit        SMPLify-style fitting from the mean body (``hmrkit.fit``)
  spin       SPIN's regressor alone: one forward pass (``hmrkit.models.spin``)
  pare       PARE's part-attention regressor alone (``hmrkit.models.pare``)
  maed       MAED's spatio-temporal regressor over sliding windows of a track (``hmrkit.models.maed``)
  pixie      PIXIE's body, hand and face experts fused by moderators: fingers and expression (``hmrkit.models.pixie``)
  NAME+fit   any method above, refined by the fitting (``Refined``); ``spin+fit`` is the
             default of ``hmrkit run`` where SPIN weights ship (Anny)
  NAME+adapt spin, pare or maed adapted online to each video's tracks (DynaBOA,
             ``hmrkit.adapt``; ``--adapt`` on the command line)

A method's entry is a factory ``from_pretrained(body, **options)``; adding a method is one
line here and one file that implements an estimator kind of ``hmrkit.estimate.base``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from hmrkit.errors import InputError


def _fit(body, fit_config=None, **_):
    from hmrkit.fit.estimator import FitEstimator

    return FitEstimator.from_pretrained(body, fit_config=fit_config)


def _spin(body, weights=None, **_):
    from hmrkit.models.spin import SpinEstimator

    return SpinEstimator.from_pretrained(body, weights=weights)


def _pare(body, weights=None, **_):
    from hmrkit.models.pare import PareEstimator

    return PareEstimator.from_pretrained(body, weights=weights)


def _maed(body, weights=None, **_):
    from hmrkit.models.maed import MaedEstimator

    return MaedEstimator.from_pretrained(body, weights=weights)


def _pixie(body, weights=None, **_):
    from hmrkit.models.pixie import PixieEstimator

    return PixieEstimator.from_pretrained(body, weights=weights)


ESTIMATORS: dict[str, Callable] = {"fit": _fit, "spin": _spin, "pare": _pare, "maed": _maed, "pixie": _pixie}
REFINE = "+fit"
ADAPT = "+adapt"
ADAPTABLE = ("spin", "pare", "maed")  # hmrkit.adapt.dynaboa.ADAPTABLE
# Started from a regressor's estimate, the fit needs half the default schedule: on the
# synthetic sets 100 body iterations are as accurate as 200 (docs/spin.md), at half the cost.
REFINE_FIT_ITERS = 100
# PIXIE's refinement uses its gender-aware shape prior (hmrkit.body.priors.GenderShapePrior)
REFINE_SHAPE_PRIOR = {"pixie": "gender"}
# ... and keeps the fingers and face PIXIE read unless the keypoints insist: free fingers anchored to
# PIXIE's (weight 1e4), no pull to a neutral face. Chosen on the val close-ups (docs/pixie.md: without
# the anchor the finger and face stage undid PIXIE's hands, 13.5 -> 16.1 mm hand PA; with it 13.3).
REFINE_DETAIL = {"pixie": {"finger_model": "free", "detail_anchor": 10000.0, "w_expression_prior": 0.0}}


def method_names() -> list[str]:
    """Every name ``build`` accepts: the base methods and their "+fit" refinements."""
    return (list(ESTIMATORS) + [m + REFINE for m in ESTIMATORS if m != "fit"]
            + [m + ADAPT for m in ADAPTABLE])


def with_adapt(method: str, adapt: bool) -> str:
    """``--method M --adapt`` -> "M+adapt"; a clear error when M cannot adapt."""
    if not adapt:
        return method
    if method not in ADAPTABLE:
        raise InputError(None, f"--adapt adapts a regressor online ({', '.join(ADAPTABLE)}), not {method!r}")
    return method + ADAPT


def has_weights(method: str, body) -> bool:
    """Whether the shipped weights of a learned method exist for ``body``."""
    if method == "spin":
        from hmrkit.models.spin import default_weights

        return default_weights(body.name).exists()
    if method in ("pare", "maed", "pixie"):
        import importlib

        return importlib.import_module(f"hmrkit.models.{method}").default_weights(body.name).exists()
    return True


def default_method(body) -> str:
    """``spin+fit`` where SPIN weights ship for the body model (Anny), else ``fit`` (an
    SMPL-family body: its weights would need the user's model file to train)."""
    return "spin+fit" if has_weights("spin", body) else "fit"


def scaled_fit_config(body_iters: int | None):
    """A FitConfig whose body stage runs ``body_iters`` iterations, its camera and detail
    stages scaled in proportion (None: None, each method's default) -- the hidden
    ``--fit-iters`` budget of ``hmrkit run`` and ``hmrkit eval``."""
    from hmrkit.fit import FitConfig

    if body_iters is None:
        return None
    base = FitConfig()
    n = max(1, int(body_iters))
    ratio = lambda k: max(1, round(n * k / max(1, base.body_iters)))  # noqa: E731
    return replace(base, body_iters=n, camera_iters=ratio(base.camera_iters), detail_iters=ratio(base.detail_iters))


def build(method: str, body, fit_config=None, weights=None):
    """The estimator called ``method`` (``method_names()``) for a loaded BodyModel.

    fit_config: a FitConfig for the fitting (None: FitConfig() for ``fit``, and
    REFINE_FIT_ITERS body iterations for a refinement); weights: a checkpoint path for a
    learned method (None: the shipped weights)."""
    from hmrkit.estimate.base import Refined
    from hmrkit.fit.estimator import FitEstimator

    if method.endswith(ADAPT):
        base = method[:-len(ADAPT)]
        if base not in ADAPTABLE:
            raise InputError(None, f"unknown method {method!r}; choose from {method_names()}")
        from hmrkit.adapt import Adapted

        return Adapted(ESTIMATORS[base](body, weights=weights))

    base = method[:-len(REFINE)] if method.endswith(REFINE) and method != "fit" else method
    if base not in ESTIMATORS or (base != method and base == "fit"):
        raise InputError(None, f"unknown method {method!r}; choose from {method_names()}")
    if base == method:
        return ESTIMATORS[base](body, fit_config=fit_config, weights=weights)
    fit_config = fit_config or scaled_fit_config(REFINE_FIT_ITERS)
    if base in REFINE_SHAPE_PRIOR and fit_config.shape_prior is None:
        fit_config = replace(fit_config, shape_prior=REFINE_SHAPE_PRIOR[base])
    if base in REFINE_DETAIL and fit_config.detail_anchor == 0.0:
        fit_config = replace(fit_config, **REFINE_DETAIL[base])
    fitter = FitEstimator(body, fit_config)
    return Refined(ESTIMATORS[base](body, weights=weights), fitter)

"""Online adaptation of the regressors to the video they read: DynaBOA (``dynaboa``) and
its 3D exemplar bank (``exemplars``). ``Adapted(estimator)`` is ``NAME+adapt``."""

from hmrkit.adapt.dynaboa import ADAPTABLE, AdaptConfig, Adapted

__all__ = ["ADAPTABLE", "AdaptConfig", "Adapted"]

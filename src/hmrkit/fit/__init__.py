"""SMPLify-style fitting of body models to keypoints (2D, with optional 3D terms)."""

from hmrkit.fit.fitter import FitConfig, Fitter

__all__ = ["FitConfig", "Fitter"]

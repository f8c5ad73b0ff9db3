"""Body models behind one interface: Anny (default) and the SMPL family from the user's files."""

from __future__ import annotations

from hmrkit.body.base import BodyModel, KeypointRegressor

BODY_MODELS = ("anny", "smpl", "smplh", "smplx")


def load(name: str = "anny", model_path=None, **options) -> BodyModel:
    """The body model ``name`` (one of BODY_MODELS).

    anny:  options ``expression`` (bool, default True), ``dtype``.
    smpl, smplh, smplx: ``model_path`` is a model file (.pkl or .npz) or a folder holding
           the official files; when None, ``$HMRKIT_SMPL_DIR`` is searched. Options:
           ``gender`` (neutral|male|female), ``num_betas``, ``num_expression``, ``dtype``.
    """
    if name == "anny":
        if model_path is not None:
            raise ValueError("anny ships inside its wheel and takes no model_path")
        from hmrkit.body.anny import AnnyBody

        return AnnyBody(**options)
    if name in ("smpl", "smplh", "smplx"):
        from hmrkit.body.smpl import SMPLBody

        return SMPLBody.from_file(name, model_path, **options)
    raise ValueError(f"unknown body model {name!r}; choose from {list(BODY_MODELS)}")


__all__ = ["BodyModel", "KeypointRegressor", "load", "BODY_MODELS"]

"""Shipped weights: one file format for every learned method.

A weights file is a ``torch.save`` dict of plain types and tensors only (it loads with
``torch.load(..., weights_only=True)``)::

    {"format": "hmrkit-weights-1",
     "method": "spin",                 # which method's network (spin, pare, maed, ...)
     "body": "anny",                   # the body model it regresses (BodyModel.name)
     "config": {...},                  # what the method needs to rebuild the network
                                       # (SPIN: {"encoder": EncoderConfig fields,
                                       #         "head": HeadConfig fields})
     "joint_names": [...],             # the regressed joints, in order
     "state_dict": {name: tensor},
     "card": {...}}                    # how it was trained and what it reaches

``save_weights`` writes one atomically; ``load_weights`` reads one (and upgrades the
older per-method formats in memory, see ``LEGACY``); ``check_weights`` validates a dict
for a method and body model. Training checkpoints (``last.pt``) are another format,
``hmrkit-train-1`` (``hmrkit.train.trainer``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from hmrkit.errors import InputError

FORMAT = "hmrkit-weights-1"
KEYS = ("format", "method", "body", "config", "joint_names", "state_dict", "card")


def make_weights(method: str, body: str, config: dict, joint_names, state_dict: dict, card: dict | None = None) -> dict:
    """The weights dict (tensors detached and cloned, so later training does not change it)."""
    return {"format": FORMAT, "method": str(method), "body": str(body), "config": dict(config),
            "joint_names": [str(n) for n in joint_names],
            "state_dict": {k: v.detach().clone() for k, v in state_dict.items()}, "card": dict(card or {})}


def _from_spin1(ckpt: dict) -> dict:
    """``hmrkit-spin-1`` (SPIN's first format, the shipped spin_anny.pt): {"format", "body",
    "encoder", "head", "joint_names", "state_dict", "card"}. Same tensors, regrouped."""
    return {"format": FORMAT, "method": "spin", "body": ckpt["body"],
            "config": {"encoder": ckpt["encoder"], "head": ckpt["head"]}, "joint_names": ckpt["joint_names"],
            "state_dict": ckpt["state_dict"], "card": ckpt.get("card", {})}


LEGACY = {"hmrkit-spin-1": _from_spin1}  # older format -> a converter to FORMAT


def upgrade(ckpt, path=None) -> dict:
    """``ckpt`` in FORMAT (older formats converted, the tensors shared, not copied);
    InputError naming ``path`` for anything else."""
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if fmt in LEGACY:
        try:
            ckpt = LEGACY[fmt](ckpt)
        except KeyError as e:
            raise InputError(path, f"a damaged {fmt} weights file (no {e.args[0]!r})") from None
    elif fmt != FORMAT:
        raise InputError(path, f"not an hmrkit weights file (expected format {FORMAT!r})")
    missing = [k for k in KEYS if k not in ckpt]
    if missing:
        raise InputError(path, f"a damaged weights file (no {', '.join(missing)})")
    return ckpt


def check_weights(ckpt, method: str, body, path=None) -> dict:
    """``ckpt`` upgraded (see ``upgrade``) and checked to be ``method``'s weights for the body
    model ``body`` (a BodyModel or its name); InputError otherwise."""
    ckpt = upgrade(ckpt, path)
    name = body if isinstance(body, str) else body.name
    if ckpt["method"] != method:
        raise InputError(path, f"these are {ckpt['method']!r} weights, not {method!r} ones")
    if ckpt["body"] != name:
        raise InputError(path, f"these weights are for the {ckpt['body']!r} body model, not {name!r}")
    return ckpt


def save_weights(weights: dict, path) -> Path:
    """Write ``weights`` (a FORMAT dict, see ``make_weights``) to ``path`` atomically."""
    from hmrkit.io.atomic import atomic_write

    path = Path(path)
    if not isinstance(weights, dict) or weights.get("format") != FORMAT or any(k not in weights for k in KEYS):
        raise ValueError(f"save_weights: expected a {FORMAT!r} dict with {', '.join(KEYS)} (see make_weights)")
    with atomic_write(path) as f:
        torch.save(weights, f)
    return path


def load_weights(path, method: str | None = None, body=None) -> dict:
    """The FORMAT dict in ``path`` (older formats upgraded in memory); with ``method`` /
    ``body`` given, checked to be that method's weights for that body model. A missing,
    torn or foreign file is an InputError naming it."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "no such weights file") from None
    except Exception as e:  # a torn or foreign file
        raise InputError(path, f"cannot read weights: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    ckpt = upgrade(ckpt, path)
    if method is not None or body is not None:
        ckpt = check_weights(ckpt, method or ckpt["method"], ckpt["body"] if body is None else body, path)
    return ckpt


def restore(model, ckpt: dict, path=None):
    """``model`` (a freshly built regressor with ``joint_names``) with the state dict and
    card of the checked weights dict ``ckpt``; InputError when the joints differ."""
    if list(model.joint_names) != list(ckpt["joint_names"]):
        raise InputError(path, "the weights' joints do not match this body model's")
    model.load_state_dict(ckpt["state_dict"])
    model.card = ckpt.get("card", {})
    return model


def load_model(method: str, body, path, default: Path, from_checkpoint):
    """A learned method's network for ``body`` from ``path`` (None: the shipped ``default``),
    built by ``from_checkpoint(body, weights, path)``, in the body's dtype and eval mode;
    InputError naming the file when there is none."""
    path = Path(path) if path is not None else Path(default)
    if not path.exists():
        raise InputError(path, f"no {method.upper()} weights for the {body.name!r} body model (hmrkit ships them "
                               f"for anny; train them with `hmrkit train {method}`)")
    return from_checkpoint(body, load_weights(path), path).to(body.dtype).eval()


def state_fingerprint(state: dict) -> str:
    """sha256 of a state dict's names, shapes and float32 values (the same for the same
    tensors however the file holding them was written)."""
    import hashlib

    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().float().contiguous()
        h.update(f"{k}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()

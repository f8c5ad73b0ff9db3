"""Shared fixtures. Models are loaded once per session: Anny's first load builds a cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
os.environ.setdefault("WARP_LOG_LEVEL", "error")
torch.set_num_threads(max(1, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"  # small committed fixtures; sources and licences in its README.md


def data_path(*parts) -> Path:
    """A committed fixture under tests/data; fails (not skips) when it is missing."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.fail(f"{p} is missing: tests/data is part of the repository (see tests/data/README.md)")
    return p


@pytest.fixture(scope="session")
def anny_body():
    import hmrkit.body

    return hmrkit.body.load("anny")


@pytest.fixture(scope="session")
def anny_body64():
    import hmrkit.body

    return hmrkit.body.load("anny", dtype=torch.float64)

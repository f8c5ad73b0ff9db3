"""Shared fixtures. Models are loaded once per session: Anny's first load builds a cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
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


# native log lines that must never reach a user (the CLI filters them)
NOISE = ("XNNPACK", "absl::", "W0000", "inference_feedback_manager", "Warp CUDA", "Warp 1.")


def run_cli(capfd, *args):
    """hmrkit run ARGS in-process -> (exit code, stdout lines, stderr lines); fails when
    native log noise reaches the user."""
    from hmrkit.cli import main

    capfd.readouterr()
    code = main(["run", *map(str, args)])
    cap = capfd.readouterr()
    out = [ln for ln in cap.out.splitlines() if ln.strip()]
    err = [ln for ln in cap.err.splitlines() if ln.strip()]
    for line in out + err:
        assert not any(n in line for n in NOISE), f"native log noise reached the user: {line!r}"
    return code, out, err


def one_line_error(err, *needles, forbid_internal: bool = False):
    """The one stderr line of a failure: ``hmrkit: ...`` holding every needle (and, with
    forbid_internal, not an internal error)."""
    assert len(err) == 1, f"expected one line on stderr, got {err}"
    line = err[0]
    assert line.startswith("hmrkit: "), line
    if forbid_internal:
        assert "a bug in hmrkit" not in line and "Error:" not in line, f"an internal error: {line}"
    for n in needles:
        assert str(n) in line, f"{n!r} not in {line!r}"
    return line


@pytest.fixture(scope="session")
def lunge_keypoints():
    """MediaPipe Holistic's keypoints on tests/data/images/lunge_pexels.jpg, detected once
    per session: (116, 3) holistic, px + confidence."""
    from hmrkit.detect import MediaPipeHolistic
    from hmrkit.io import read_image

    with MediaPipeHolistic() as det:
        found = det.detect(read_image(data_path("images", "lunge_pexels.jpg")))
    assert len(found) == 1
    return found[0].keypoints2d.astype(np.float64)


@pytest.fixture(scope="session")
def anny_body():
    import hmrkit.body

    return hmrkit.body.load("anny")


@pytest.fixture(scope="session")
def anny_body64():
    import hmrkit.body

    return hmrkit.body.load("anny", dtype=torch.float64)

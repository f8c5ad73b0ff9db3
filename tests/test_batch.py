"""Batch runs (hmrkit.distributed): --ray gives the local run's results bit for bit,
--resume skips complete inputs and only them, a failing input or a dying worker is one
line while the rest go on, and a missing Ray or an unreachable cluster is a one-line error."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from conftest import data_path

IMAGES = ("astronaut.jpg", "lunge_pexels.jpg")


def _inputs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for name in IMAGES:
        shutil.copy(data_path("images", name), d / name)
    return d


def _run(capfd, *args):
    from hmrkit.cli import main

    capfd.readouterr()
    code = main(["run", *map(str, args)])
    cap = capfd.readouterr()
    return code, cap.out, cap.err


def _same_npz(a, b):
    with np.load(a) as x, np.load(b) as y:
        assert sorted(x.files) == sorted(y.files)
        for k in x.files:
            eq = np.array_equal(x[k], y[k], equal_nan=x[k].dtype.kind == "f")
            assert eq, (a.name, k)


def test_resume_skips_complete_inputs_only(tmp_path, capfd):
    src = _inputs(tmp_path)
    out = tmp_path / "out"
    code, _, err = _run(capfd, src, "--method", "spin", "--out", out, "--no-overlay")
    assert code == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}
    code, _, err = _run(capfd, src, "--method", "spin", "--out", out, "--no-overlay", "--resume")
    assert code == 0 and "2 input(s) already complete" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")} == before
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["resumed"]) == 2 and summary["people"] == 2
    # an input whose files are incomplete runs again; so does every input when a setting changes
    (out / "lunge_pexels.npz").unlink()
    code, _, err = _run(capfd, src, "--method", "spin", "--out", out, "--no-overlay", "--resume")
    assert code == 0 and "1 input(s) already complete" in err and (out / "lunge_pexels.npz").exists()
    code, _, err = _run(capfd, src, "--method", "spin", "--out", out, "--resume")  # overlays now wanted
    assert code == 0 and "already complete" not in err and (out / "astronaut_overlay.png").exists()


ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module's tests (hmrkit joins it rather than starting its own)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=False)
    yield
    ray.shutdown()


def test_ray_equals_local_and_a_bad_input_is_one_line(tmp_path, capfd, local_ray):
    src = _inputs(tmp_path)
    (src / "broken.jpg").write_bytes(b"not an image")
    code, _, err = _run(capfd, src, "--method", "spin", "--out", tmp_path / "local", "--no-overlay")
    assert code == 0
    code, _, err2 = _run(capfd, src, "--method", "spin", "--out", tmp_path / "ray", "--no-overlay", "--ray",
                         "--workers", "2")
    assert code == 0, err2
    for name in ("astronaut.npz", "lunge_pexels.npz"):
        _same_npz(tmp_path / "local" / name, tmp_path / "ray" / name)
    bad = [ln for ln in err2.splitlines() if "broken.jpg" in ln]
    assert len(bad) == 1 and bad[0].startswith("hmrkit: skipped") and "Traceback" not in err2
    s = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert len(s["inputs"]) == 2 and len(s["failed"]) == 1
    code, _, err3 = _run(capfd, src, "--method", "spin", "--out", tmp_path / "ray", "--no-overlay", "--ray", "--resume")
    assert code == 0 and "2 input(s) already complete" in err3


def test_a_dying_worker_fails_its_input_only(tmp_path, capfd, local_ray, monkeypatch):
    from hmrkit.distributed import DIE_ON_ENV

    src = _inputs(tmp_path)
    monkeypatch.setenv(DIE_ON_ENV, "astronaut")
    code, _, err = _run(capfd, src, "--method", "spin", "--out", tmp_path / "out", "--no-overlay", "--ray",
                        "--workers", "1")
    assert code == 0, err
    died = [ln for ln in err.splitlines() if "astronaut.jpg" in ln]
    assert len(died) == 1 and "worker died" in died[0]
    assert (tmp_path / "out" / "lunge_pexels.npz").exists() and not (tmp_path / "out" / "astronaut.npz").exists()


def test_no_ray_and_unreachable_cluster_are_one_line(tmp_path, capfd, monkeypatch):
    img = data_path("images", "astronaut.jpg")
    code, _, err = _run(capfd, img, "--method", "spin", "--out", tmp_path / "a", "--ray", "127.0.0.1:1")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "cannot reach the Ray cluster at 127.0.0.1:1" in err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    code, _, err = _run(capfd, img, "--method", "spin", "--out", tmp_path / "b", "--ray")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "pip install 'hmrkit[ray]'" in err
    code, _, err = _run(capfd, img, "--method", "spin", "--out", tmp_path / "c", "--workers", "2")
    assert code == 2 and "--workers is for --ray" in err

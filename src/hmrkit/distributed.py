"""Batch runs: ``hmrkit run ... --ray [ADDRESS]`` and ``--resume``.

The unit of work is the pipeline's ``process_input(path, config, models, name)``: one
input, every stage, its files written; it holds no global state, so it runs the same in
the driver or in a Ray worker. ``run_on_ray`` starts one ``_Worker`` actor per CPU (or
``workers``); each loads its ``Models`` (body model, estimator, detectors) once, since
MediaPipe's objects do not pickle, and processes the inputs handed to it one at a time.
Reports come back as they finish (the progress bar counts inputs); a failing input is a
report with an error, the rest go on; a worker that dies mid-input (killed, out of
memory) fails that input with one line, and a fresh worker takes its place.

Without an address a local Ray is started (and stopped after the run); with one, hmrkit
joins that cluster (``ray://host:10001`` or ``host:6379``). The workers read inputs and
write outputs by path, so on a cluster the paths must be shared by every node.

``--resume`` (local or Ray) skips inputs whose outputs are complete: after an input is
produced, ``OUT/.hmrkit/done/NAME.json`` records its input, the settings that shape the
outputs and every file written; an input is skipped when that record matches and every
file it lists exists. Ray is an optional extra (``pip install 'hmrkit[ray]'``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Callable, Optional

from hmrkit.errors import InputError

DONE_DIR = Path(".hmrkit") / "done"
# RunConfig fields that change what an input's outputs are (not where they go, nor how fast)
OUTPUT_SETTINGS = ("body", "model_path", "method", "export", "overlay", "focal", "fov", "keypoints", "max_frames",
                   "max_people", "fit_iters", "weights")
DIE_ON_ENV = "HMRKIT_TEST_WORKER_DIES_ON"  # tests: a worker exits abruptly on the input of this name


# ---------------------------------------------------------------------------- resume

def settings_key(config) -> dict:
    d = asdict(config)
    return {k: (list(d[k]) if isinstance(d[k], tuple) else d[k]) for k in OUTPUT_SETTINGS}


def done_path(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / DONE_DIR / f"{name}.json"


def report_to_dict(report) -> dict:
    return {f.name: getattr(report, f.name) for f in fields(report)}


def report_from_dict(d: dict):
    from hmrkit.pipeline import InputReport

    return InputReport(**{k: v for k, v in d.items() if k in {f.name for f in fields(InputReport)}})


def mark_done(out_dir: Path, path: Path, name: str, config, report) -> None:
    """Record a produced input (atomically) so that ``--resume`` can skip it."""
    from hmrkit.io import save_json_atomic

    if not report.produced:
        return
    p = done_path(out_dir, name)
    p.parent.mkdir(parents=True, exist_ok=True)
    save_json_atomic(p, {"format": "hmrkit-done-1", "input": str(Path(path).resolve()), "settings": settings_key(config),
                         "report": {**report_to_dict(report), "traceback": None}})


def completed(out_dir: Path, path: Path, name: str, config):
    """The stored InputReport of an input whose outputs are complete, else None."""
    p = done_path(out_dir, name)
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if d.get("input") != str(Path(path).resolve()) or d.get("settings") != settings_key(config):
        return None
    report = report_from_dict(d.get("report", {}))
    if not report.produced or not all(Path(f).exists() for f in report.outputs):
        return None
    return report


# ---------------------------------------------------------------------------- Ray

def _import_ray():
    try:
        import ray
    except ImportError:
        raise InputError(None, "--ray needs Ray: pip install 'hmrkit[ray]' (or leave out --ray to run here)") from None
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A one-line InputError unless something listens at ``address`` (``host:port`` or
    ``ray://host:port``); Ray itself would retry a refused connection for minutes.
    ``auto`` and other forms without a port are left to Ray."""
    import socket

    text = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise InputError(None, f"cannot reach the Ray cluster at {address} ({e.strerror or type(e).__name__}); "
                               "check --ray ADDRESS, or leave it out for a local Ray") from None


def start_ray(address: Optional[str]):
    """ray.init for a run: a local Ray (no address) or the cluster at ``address``; an
    unreachable address is a one-line InputError. Returns (ray, started_here)."""
    ray = _import_ray()
    if address:
        check_reachable(address)
    if ray.is_initialized():  # the caller's own Ray (tests, notebooks): use it as it is
        return ray, False
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=False)
    # a local Ray keeps Ray's default (token authentication on); its notice of that is not for our users
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
    except Exception as e:  # ConnectionError, TimeoutError, RuntimeError, ValueError by version
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise InputError(None, f"cannot start or reach {where} ({text}); check --ray ADDRESS, or leave it out "
                               "for a local Ray") from None
    return ray, True


def _worker_class(ray):
    @ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)
    class _Worker:
        """One worker: its own Models (loaded on the first input), reused for every input."""

        def __init__(self, config, threads: int):
            self.config = config
            self.threads = threads
            self.models = None

        def process(self, path, name):
            import torch

            from hmrkit.pipeline import Models, process_input

            torch.set_num_threads(self.threads)
            if os.environ.get(DIE_ON_ENV) == name:
                os._exit(3)
            if self.models is None:
                self.models = Models(self.config)
            return process_input(path, self.config, self.models, name)

        def method(self):
            from hmrkit.estimate import default_method

            if self.config.method:
                return self.config.method
            import hmrkit.body

            return default_method(hmrkit.body.load(self.config.body, model_path=self.config.model_path))

    return _Worker


def run_on_ray(jobs: list, config, address: Optional[str] = None, workers: Optional[int] = None,
               on_report: Optional[Callable] = None) -> list:
    """Process ``jobs`` [(path, name)] on Ray workers -> InputReports in ``jobs``' order.
    ``on_report(report)`` is called as each one finishes (the progress bar)."""
    from hmrkit.pipeline import InputReport

    ray, started = start_ray(address)
    try:
        env = {DIE_ON_ENV: os.environ[DIE_ON_ENV]} if DIE_ON_ENV in os.environ else {}
        Worker = _worker_class(ray)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = max(1, min(len(jobs), workers or cpus))
        opts = {"runtime_env": {"env_vars": env}} if env else {}
        import torch

        # the cores are shared out: a local Ray's workers split the driver's torch threads (one
        # worker: the driver's count, so the results are the local run's bit for bit); a
        # cluster's workers take one each (num_cpus=1)
        threads = max(1, torch.get_num_threads() // n) if not address else 1
        pool = [Worker.options(**opts).remote(config, threads) for _ in range(n)]
        pending = list(enumerate(jobs))
        running: dict = {}
        reports: dict = {}

        def submit(w):
            if pending:
                i, (path, name) = pending.pop(0)
                running[w.process.remote(str(path), name)] = (i, w, path, name)

        for w in pool:
            submit(w)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            ref = ready[0]
            i, w, path, name = running.pop(ref)
            try:
                report = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                report = InputReport(input=str(path), name=name, error=f"{path}: the Ray worker died while processing "
                                                                       f"it ({type(e).__name__}); the other inputs go on")
                w = Worker.options(**opts).remote(config, threads)  # a fresh worker takes its place
            except ray.exceptions.RayError as e:
                text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                report = InputReport(input=str(path), name=name, error=f"{path}: Ray failed on it: {text}")
            reports[i] = report
            if on_report is not None:
                on_report(report)
            submit(w)
        return [reports[i] for i in range(len(jobs))]
    finally:
        if started:
            ray.shutdown()

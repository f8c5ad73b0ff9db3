"""hmrkit's command line. The only module that reads flags.

  hmrkit demo                      the bundled photo -> ./hmrkit_demo/
  hmrkit run INPUT... [options]    images, videos, folders, keypoint files -> meshes
  hmrkit body [--out DIR]          the Anny body model: mean adult, child, elder
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

DEMO_IMAGE = Path(__file__).resolve().parent / "assets" / "astronaut.png"


def _quiet_third_party():
    os.environ.setdefault("WARP_LOG_LEVEL", "error")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "2")
    if "PYOPENGL_PLATFORM" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["PYOPENGL_PLATFORM"] = "osmesa"


# Lines that MediaPipe / TFLite / absl / Warp print from native code straight to fd 2 on
# every run; they say nothing to a user. Errors (absl E/F lines) and anything else pass.
_NATIVE_NOISE = re.compile(
    r"^(INFO: Created TensorFlow Lite XNNPACK delegate for CPU"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+ +\d+ [^ \]]+:\d+\] "  # absl/glog INFO and WARNING
    r"|Warp CUDA warning: Could not find or load the NVIDIA CUDA driver)"
)

# The filter runs in a child process so that it drains the pipe even if hmrkit crashes in
# native code: the crash message still reaches the terminal.
_FILTER_SCRIPT = r"""
import re, sys
noise = re.compile(sys.argv[1])
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    if not noise.match(line.decode("utf-8", "replace")):
        out.write(line)
        out.flush()
"""


@contextlib.contextmanager
def _filtered_native_stderr():
    """Route file descriptor 2 through a filter that drops ``_NATIVE_NOISE`` lines.

    Python's own ``sys.stderr`` (messages, tracebacks, progress bars) keeps writing to the
    original stream directly, so it stays a terminal when it was one. Any failure to set
    the filter up leaves stderr as it is."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        r, w = os.pipe()
    except OSError:
        os.close(saved)
        yield
        return
    try:
        child = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER_SCRIPT, _NATIVE_NOISE.pattern],
                                 stdin=r, stdout=saved, stderr=saved, close_fds=True)
    except OSError:
        for fd in (r, w, saved):
            os.close(fd)
        yield
        return
    os.close(r)
    old = sys.stderr
    direct = None
    with contextlib.suppress(AttributeError, OSError, ValueError, io.UnsupportedOperation):
        if old.fileno() == 2:
            direct = open(os.dup(saved), "w", buffering=1, encoding=getattr(old, "encoding", None) or "utf-8",
                          errors="backslashreplace")
    if direct is not None:
        sys.stderr = direct
    os.dup2(w, 2)
    os.close(w)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        if direct is not None:
            sys.stderr = old
            direct.close()
        os.dup2(saved, 2)  # drops the last write end of the pipe: the filter sees EOF
        os.close(saved)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)


class _StderrHandler(logging.Handler):
    """Log records to whatever ``sys.stderr`` is at the time (see _filtered_native_stderr)."""

    def emit(self, record):
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def _progress(paths):
    from tqdm import tqdm

    return tqdm(paths, desc="hmrkit", unit="input", disable=None)


def cmd_run(args) -> int:
    from hmrkit.errors import InputError
    from hmrkit.pipeline import RunConfig, run

    from hmrkit.estimators import METHODS

    if args.method not in METHODS:
        print(f"hmrkit: unknown method {args.method!r}; choose from {list(METHODS)}", file=sys.stderr)
        return 2
    export = tuple(x for x in (args.export or "").split(",") if x)
    bad = [x for x in export if x not in ("obj", "ply", "glb")]
    if bad:
        print(f"hmrkit: unknown export format(s) {bad}; choose from obj, ply, glb", file=sys.stderr)
        return 2
    if args.fit_iters is not None and args.fit_iters < 1:
        print(f"hmrkit: --fit-iters must be >= 1, got {args.fit_iters}", file=sys.stderr)
        return 2
    config = RunConfig(
        out_dir=Path(args.out), body=args.body, model_path=args.model_path, method=args.method,
        export=export, overlay=not args.no_overlay, focal=args.focal, fov=args.fov,
        keypoints=args.keypoints, device=args.device, max_frames=args.max_frames,
        fit_iters=args.fit_iters,
    )
    inputs = list(args.inputs)
    if args.keypoints and not inputs:
        inputs = [args.keypoints]
    try:
        summary = run(inputs, config, progress_factory=_progress)
    except InputError as e:
        failed = getattr(getattr(e, "summary", None), "failed", [])
        if len(failed) > 1:  # one line per input, then the verdict
            for f in failed:
                print(f"hmrkit: {f['error']}", file=sys.stderr)
        print(f"hmrkit: {e}", file=sys.stderr)
        return 1
    for f in summary.failed:
        print(f"hmrkit: skipped {f['error']}", file=sys.stderr)
    for w in summary.warnings:
        print(f"hmrkit: warning: {w}", file=sys.stderr)
    print(f"hmrkit: {len(summary.inputs)} input(s), {summary.frames} frame(s) "
          f"({summary.frames_without_person} without a person) -> {config.out_dir}/")
    return 0


def cmd_demo(args) -> int:
    args.inputs = [str(DEMO_IMAGE)]
    args.out = args.out or "hmrkit_demo"
    args.export = "obj,ply,glb"
    args.keypoints = None
    args.max_frames = None
    args.fit_iters = None
    code = cmd_run(args)
    if code == 0:
        out = Path(args.out)
        print(f"hmrkit demo: look at {out / 'astronaut_overlay.png'}; "
              f"meshes {out / 'astronaut_f000000_p0.obj'} (.ply, .glb); parameters {out / 'astronaut.npz'}")
    return code


def cmd_body(args) -> int:
    """Write the mean Anny body, a child and an elder as meshes."""
    import torch

    import hmrkit.body
    from hmrkit.body.anny import SHAPE_NAMES
    from hmrkit.io import save_mesh

    body = hmrkit.body.load("anny")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    people = {"mean": {}, "child": {"age": 0.15}, "elder": {"age": 1.0, "weight": 0.6}}
    for name, values in people.items():
        shape = torch.full((1, 6), 0.5)
        for k, v in values.items():
            shape[0, SHAPE_NAMES.index(k)] = v
        v = body.rest_output(shape).vertices[0].detach().numpy()
        for fmt in ("obj", "ply"):
            save_mesh(out / f"anny_{name}.{fmt}", v, body.faces.numpy())
        print(f"{name}: height {v[:, 1].max() - v[:, 1].min():.2f} m -> {out}/anny_{name}.obj|ply")
    return 0


def cmd_eval(args) -> int:
    """Evaluate a method on a fixed test set; print the table and write it as JSON."""
    import json

    from hmrkit.errors import InputError
    from hmrkit.eval.metrics import format_table, summarize
    from hmrkit.eval.protocols import SyntheticSpec, evaluate_synthetic_frames

    from hmrkit.estimators import METHODS

    if args.method not in METHODS:
        print(f"hmrkit: unknown method {args.method!r}; choose from {list(METHODS)}", file=sys.stderr)
        return 2
    rows, report = [], {}
    try:
        specs = [SyntheticSpec.parse(d) if d.startswith("synthetic:") else None for d in args.data]
        for d, spec in zip(args.data, specs):
            if spec is None:
                kind = d.split(":", 1)[0]
                if kind in ("3dpw", "h36m"):
                    raise InputError(d, "evaluating on 3DPW/Human3.6M images is not implemented yet "
                                        "(the SPIN-style npz readers are: hmrkit.eval.datasets)")
                raise InputError(None, f"unknown data spec {d!r}; expected synthetic:KIND[,key=value]")
    except InputError as e:
        print(f"hmrkit: {e}", file=sys.stderr)
        return 1
    import hmrkit.body
    from hmrkit.estimators import build_estimator

    body = hmrkit.body.load(args.body, model_path=args.model_path)
    fitter = build_estimator(args.method, body)
    from tqdm import tqdm

    for spec in specs:
        with tqdm(total=spec.n, desc=spec.name, unit="frame", disable=None) as bar:
            res = evaluate_synthetic_frames(fitter, body, spec, progress=bar.update)
        summ = summarize(res)
        row = {"data": spec.name, "method": args.method}
        row.update({k: v.mean for k, v in summ.items()})
        row["PA-MPJPE median"] = summ["PA-MPJPE"].median
        rows.append(row)
        report[spec.name] = {k: v.__dict__ for k, v in summ.items()}
    cols = ["data", "method", "MPJPE", "PA-MPJPE", "PA-MPJPE median", "PVE", "2D px", "valid", "s/frame"]
    print(format_table(rows, cols, digits=1))
    if args.json:
        from hmrkit.io import save_json_atomic

        save_json_atomic(args.json, {"method": args.method, "body": args.body, "results": report,
                                     "units": "mm, except 2D px (pixels), valid (fraction), s/frame"})
        print(f"hmrkit: wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hmrkit", description="3D human meshes from photos and videos.")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    def run_options(q, demo=False):
        q.add_argument("--out", default=None if demo else "hmrkit_out", help="output folder")
        q.add_argument("--body", default="anny", choices=["anny", "smpl", "smplh", "smplx"])
        q.add_argument("--model-path", default=None, help="SMPL-family model file or folder")
        q.add_argument("--method", default="fit", help="estimator: fit")
        q.add_argument("--focal", type=float, default=None, help="focal length in pixels")
        q.add_argument("--fov", type=float, default=None, help="field of view over the larger side, degrees")
        q.add_argument("--no-overlay", action="store_true", help="skip overlay pictures/videos")
        q.add_argument("--device", default="cpu")

    r = sub.add_parser("run", help="images, videos, folders or keypoint files -> meshes")
    r.add_argument("inputs", nargs="*")
    run_options(r)
    r.add_argument("--export", default="", help="mesh formats, comma-separated: obj,ply,glb")
    r.add_argument("--keypoints", default=None, help="a keypoint file (COCO/OpenPose JSON, hmrkit npz)")
    r.add_argument("--max-frames", type=int, default=None, help="stop videos after N frames")
    # Hidden: a smaller fitting budget (tests, quick looks); see RunConfig.fit_iters.
    r.add_argument("--fit-iters", type=int, default=None, help=argparse.SUPPRESS)
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="run on the bundled photo -> ./hmrkit_demo/")
    run_options(d, demo=True)
    d.set_defaults(func=cmd_demo)

    e = sub.add_parser("eval", help="metrics of a method on fixed test sets")
    e.add_argument("--method", default="fit")
    e.add_argument("--data", nargs="+", default=["synthetic:frames,noise=clean", "synthetic:frames,noise=realistic"],
                   help="synthetic:frames[,n=48,seed=2024,noise=clean|realistic,world3d=0.05]")
    e.add_argument("--body", default="anny", choices=["anny", "smpl", "smplh", "smplx"])
    e.add_argument("--model-path", default=None)
    e.add_argument("--json", default="hmrkit_eval.json", help="where to write the table as JSON")
    e.set_defaults(func=cmd_eval)

    b = sub.add_parser("body", help="write the Anny mean body, a child and an elder")
    b.add_argument("--out", default="hmrkit_body")
    b.set_defaults(func=cmd_body)
    return p


def main(argv=None) -> int:
    _quiet_third_party()
    args = build_parser().parse_args(argv)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    quiet = contextlib.nullcontext() if args.verbose else _filtered_native_stderr()
    try:
        with quiet:
            return args.func(args)
    except KeyboardInterrupt:
        print("hmrkit: interrupted; files already written are complete, nothing half-written was left",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

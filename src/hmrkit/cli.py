"""hmrkit's command line. The only module that reads flags.

  hmrkit demo                      the bundled photo -> ./hmrkit_demo/
  hmrkit run INPUT... [options]    images, videos, folders, keypoint files -> meshes
  hmrkit body [--out DIR]          the Anny body model: mean adult, child, elder
  hmrkit view OUT_DIR [--port N]   the results of a run in 3D, in the browser (docs/viewer.md)
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
    r"|Warp CUDA warning: Could not find or load the NVIDIA CUDA driver"
    r"|\[[\d\- :,]+ [IW] \d+ \d+\] [\w.]+:\d+: "  # Ray's native INFO and WARNING lines (--ray)
    r"|Token authentication is enabled for this Ray cluster)"
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


def _progress(paths, total=None):
    from tqdm import tqdm

    return tqdm(paths, total=total, desc="hmrkit", unit="input", disable=None)


def _apply_adapt(args, default: str) -> bool:
    """``--method M --adapt`` -> args.method = "M+adapt" (M: ``default`` when not given);
    False (after a one-line error) when M cannot adapt."""
    if not getattr(args, "adapt", False):
        return True
    from hmrkit.errors import InputError
    from hmrkit.estimate import with_adapt

    try:
        args.method = with_adapt(args.method or default, True)
    except InputError as e:
        print(f"hmrkit: {e}", file=sys.stderr)
        return False
    return True


def cmd_run(args) -> int:
    from hmrkit.errors import InputError
    from hmrkit.estimate import method_names
    from hmrkit.pipeline import RunConfig, run

    if not _apply_adapt(args, "spin"):
        return 2
    if args.method is not None and args.method not in method_names():
        print(f"hmrkit: unknown method {args.method!r}; choose from {method_names()}", file=sys.stderr)
        return 2
    if getattr(args, "max_people", None) is not None and args.max_people < 1:
        print(f"hmrkit: --max-people must be >= 1, got {args.max_people}", file=sys.stderr)
        return 2
    export = tuple(x for x in (args.export or "").split(",") if x)
    from hmrkit.io import EXPORT_FORMATS

    bad = [x for x in export if x not in EXPORT_FORMATS]
    if bad:
        print(f"hmrkit: unknown export format(s) {bad}; choose from {', '.join(EXPORT_FORMATS)}", file=sys.stderr)
        return 2
    if args.fit_iters is not None and args.fit_iters < 1:
        print(f"hmrkit: --fit-iters must be >= 1, got {args.fit_iters}", file=sys.stderr)
        return 2
    config = RunConfig(
        out_dir=Path(args.out), body=args.body, model_path=args.model_path, method=args.method,
        export=export, overlay=not args.no_overlay, focal=args.focal, fov=args.fov,
        keypoints=args.keypoints, device=args.device, max_frames=args.max_frames, weights=args.weights,
        fit_iters=args.fit_iters, max_people=getattr(args, "max_people", None), debug=getattr(args, "debug", False),
        ray=getattr(args, "ray", None) is not None, ray_address=getattr(args, "ray", None) or None,
        workers=getattr(args, "workers", None), resume=getattr(args, "resume", False),
    )
    if config.workers is not None and config.workers < 1:
        print(f"hmrkit: --workers must be >= 1, got {config.workers}", file=sys.stderr)
        return 2
    if config.workers is not None and not config.ray:
        print("hmrkit: --workers is for --ray runs", file=sys.stderr)
        return 2
    inputs = list(args.inputs)
    try:
        summary = run(inputs, config, progress_factory=_progress)
    except InputError as e:
        if config.debug:
            for r in getattr(getattr(e, "summary", None), "reports", []):
                if r.traceback:
                    print(r.traceback, file=sys.stderr)
        failed = getattr(getattr(e, "summary", None), "failed", [])
        if len(failed) > 1:  # one line per input, then the verdict
            for f in failed:
                print(f"hmrkit: {f['error']}", file=sys.stderr)
        print(f"hmrkit: {e}", file=sys.stderr)
        return 1
    if config.debug:
        for r in summary.reports:
            if r.traceback:
                print(r.traceback, file=sys.stderr)
    for f in summary.failed:
        print(f"hmrkit: skipped {f['error']}", file=sys.stderr)
    for w in summary.warnings:
        print(f"hmrkit: warning: {w}", file=sys.stderr)
    if summary.resumed:
        print(f"hmrkit: --resume: {len(summary.resumed)} input(s) already complete in {config.out_dir}/, not run again",
              file=sys.stderr)
    print(f"hmrkit: {len(summary.inputs)} input(s), {summary.frames} frame(s) "
          f"({summary.frames_without_person} without a person), {summary.people} people -> {config.out_dir}/")
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
            save_mesh(out / f"anny_{name}.{fmt}", v, body.faces.numpy(), frame="yup")
        print(f"{name}: height {v[:, 1].max() - v[:, 1].min():.2f} m -> {out}/anny_{name}.obj|ply")
    return 0


def cmd_eval(args) -> int:
    """Evaluate a method on test sets; print the table and write it as JSON."""
    from hmrkit.errors import InputError
    from hmrkit.eval.metrics import format_table, summarize
    from hmrkit.eval.protocols import DatasetSpec, evaluate, parse_data_spec, read_dataset, spec_frames
    from hmrkit.estimate import method_names

    if not _apply_adapt(args, "spin"):
        return 2
    if args.method not in method_names():
        print(f"hmrkit: unknown method {args.method!r}; choose from {method_names()}", file=sys.stderr)
        return 2
    if args.fit_iters is not None and args.fit_iters < 1:
        print(f"hmrkit: --fit-iters must be >= 1, got {args.fit_iters}", file=sys.stderr)
        return 2
    import hmrkit.body
    from hmrkit.estimate import build

    totals = []
    try:
        # every spec is checked (files, image root, SMPL files) before anything slow runs
        specs = [parse_data_spec(d) for d in args.data]
        for spec in specs:
            total = spec_frames(spec)
            if isinstance(spec, DatasetSpec):
                _, rows = read_dataset(spec)
                total = len(rows)
                if spec.kind == "3dpw":
                    from hmrkit.eval.protocols import load_ground_truth_models

                    load_ground_truth_models(args.model_path)
            totals.append(total)
        try:
            # anny ships in its wheel: --model-path then only names the SMPL files of the
            # 3DPW ground truth
            body = hmrkit.body.load(args.body, model_path=None if args.body == "anny" else args.model_path)
        except ValueError as e:
            if isinstance(e, InputError):
                raise
            raise InputError(args.model_path, str(e).splitlines()[0]) from None
    except InputError as e:
        print(f"hmrkit: {e}", file=sys.stderr)
        return 1
    from hmrkit.estimate import scaled_fit_config

    fit_config = scaled_fit_config(args.fit_iters)
    try:
        estimator = build(args.method, body, fit_config, weights=args.weights)
    except InputError as e:
        print(f"hmrkit: {e}", file=sys.stderr)
        return 1
    from tqdm import tqdm

    rows, report, sets = [], {}, {}
    for spec, total in zip(specs, totals):
        try:
            with tqdm(total=total, desc=spec.name, unit="frame", disable=None) as bar:
                res = evaluate(estimator, body, spec, model_path=args.model_path, progress=bar.update)
        except InputError as e:
            print(f"hmrkit: {e}", file=sys.stderr)
            return 1
        summ = summarize(res.metrics)
        row = {"data": res.name, "method": args.method, "joints": res.notes.get("joints", "")}
        row.update({k: v.mean for k, v in summ.items()})
        row["PA-MPJPE median"] = summ["PA-MPJPE"].median
        rows.append(row)
        report[res.name] = {k: v.__dict__ for k, v in summ.items()}
        sets[res.name] = {"frames": res.frames, **res.notes}
    cols = ["data", "method", "joints", "MPJPE", "PA-MPJPE", "PA-MPJPE median", "PVE", "accel"]
    cols += [c for c in ("hand L", "hand R", "hand PA", "face PA") if any(c in r for r in rows)]
    cols += ["2D px", "valid", "s/frame"]
    print(format_table(rows, cols, digits=1))
    if args.json:
        from hmrkit.io import save_json_atomic

        save_json_atomic(args.json, {"method": args.method, "body": args.body, "results": report, "sets": sets,
                                     "units": "mm, except accel (mm/frame^2), 2D px (pixels), valid (fraction), "
                                              "s/frame (seconds)"})
        print(f"hmrkit: wrote {args.json}")
    return 0


def _probabilities_ok(args, names) -> bool:
    """Whether every flag in ``names`` is in [0, 1]; else says which one, on stderr."""
    for name in names:
        if not 0.0 <= getattr(args, name) <= 1.0:
            print(f"hmrkit: --{name.replace('_', '-')} must be in [0, 1], got {getattr(args, name)}", file=sys.stderr)
            return False
    return True


def cmd_train(args) -> int:
    """Train a method's regressor on synthetic data -> OUT/<method>_<body>.pt (+ log.jsonl, last.pt)."""
    import torch

    import hmrkit.body
    from hmrkit.errors import InputError
    from hmrkit.models.encoders import EncoderConfig
    from hmrkit.train.data import TrainSetConfig
    from hmrkit.train.spin import SpinTrainConfig, train_spin

    if args.threads is not None:
        torch.set_num_threads(max(1, int(args.threads)))
    for name in ("steps", "batch", "fit_every", "fit_iters", "n_train", "val_every"):
        if getattr(args, name) < 1:
            print(f"hmrkit: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}", file=sys.stderr)
            return 2
    if not _probabilities_ok(args, ("labelled", "perturb", "combine", "any_orientation", "p_world3d")):
        return 2
    from hmrkit.data.synthetic import INPUT_CONVENTIONS, PoseAugment

    conventions = tuple(c for c in args.conventions.split(",") if c)
    bad = [c for c in conventions if c not in INPUT_CONVENTIONS]
    if bad or not conventions:
        print(f"hmrkit: --conventions: unknown {bad or args.conventions!r}; choose from {','.join(INPUT_CONVENTIONS)}",
              file=sys.stderr)
        return 2
    try:
        body = hmrkit.body.load(args.body, model_path=None if args.body == "anny" else args.model_path)
    except InputError as e:
        print(f"hmrkit: {e}", file=sys.stderr)
        return 1
    config = SpinTrainConfig(
        steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, loop=not args.no_loop,
        fit_every=args.fit_every, fit_body_iters=args.fit_iters, val_every=args.val_every,
        fit_select=args.fit_select, p_world3d=args.p_world3d, encoder=EncoderConfig(kind=args.encoder, width=args.width),
        data=TrainSetConfig(n=args.n_train, seed=args.seed, labelled=args.labelled, phenotypes=args.phenotypes,
                            conventions=conventions,
                            augment=PoseAugment(mirror=not args.no_mirror, perturb=args.perturb, combine=args.combine,
                                                any_orientation=args.any_orientation)),
    )

    def progress_factory(total, initial=0):
        from tqdm import tqdm

        what = "no loop" if args.method in ("pare", "maed", "pixie") else "loop" if config.loop else "no loop"
        return tqdm(total=total, initial=initial, desc=f"train {args.method} ({what})", unit="step", disable=None)

    try:
        if args.method == "pixie":
            from hmrkit.train.pixie import PixieSetConfig, PixieTrainConfig, train_pixie

            if not _probabilities_ok(args, ("p_closeup", "p_drop", "p_degrade", "p_swap")):
                return 2
            if args.real:
                print("hmrkit: --real is for spin (its fitting loop); pixie trains on synthetic data only", file=sys.stderr)
                return 2
            xcfg = PixieTrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                                    val_every=args.val_every, p_drop=args.p_drop, p_degrade=args.p_degrade,
                                    p_swap=args.p_swap,
                                    data=PixieSetConfig(n=args.n_train, seed=args.seed, p_closeup=args.p_closeup))
            weights = train_pixie(body, xcfg, args.out, resume=args.resume, progress_factory=progress_factory)
        elif args.method == "maed":
            from hmrkit.models.maed import MaedConfig
            from hmrkit.train.maed import MaedTrainConfig, VideoSetConfig, train_maed

            if args.real:
                print("hmrkit: --real is for spin (its fitting loop); maed trains on synthetic data only", file=sys.stderr)
                return 2
            if args.spin_head and args.no_init_spin:
                print("hmrkit: --spin-head starts the decoder from SPIN's head; it cannot go with --no-init-spin",
                      file=sys.stderr)
                return 2
            if args.image_batch < 0:
                print(f"hmrkit: --image-batch must be >= 0, got {args.image_batch}", file=sys.stderr)
                return 2
            mcfg = MaedTrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                                   init_spin=not args.no_init_spin, init_spin_head=args.spin_head,
                                   temporal_noise=not args.independent_noise,
                                   p_world3d=args.p_world3d, w_accel=args.w_accel, val_every=args.val_every,
                                   image_batch=args.image_batch, init_weights=args.init,
                                   image_data=config.data if args.image_batch > 0 else TrainSetConfig(),
                                   model=MaedConfig(fusion_bias=args.fusion_bias,
                                                    **(dict(hidden=512, decoder_act="relu") if args.spin_head else {})),
                                   data=VideoSetConfig(draws=args.draws, seed=args.seed, conventions=conventions))
            weights = train_maed(body, mcfg, args.out, resume=args.resume, progress_factory=progress_factory,
                                 library_path=args.library, export=args.export)
        elif args.method == "pare":
            from dataclasses import replace

            from hmrkit.train.pare import PareTrainConfig, train_pare

            if not _probabilities_ok(args, ("p_occluder", "p_truncate", "p_mask")):
                return 2
            if args.real:
                print("hmrkit: --real is for spin (its fitting loop); pare trains on synthetic data only", file=sys.stderr)
                return 2
            pcfg = PareTrainConfig(spin=replace(config, loop=False), seg_steps=args.seg_steps,
                                   p_occluder=args.p_occluder, p_truncate=args.p_truncate, p_mask=args.p_mask)
            weights = train_pare(body, pcfg, args.out, resume=args.resume, progress_factory=progress_factory)
        else:
            weights = train_spin(body, config, args.out, resume=args.resume, progress_factory=progress_factory,
                                 real=tuple(args.real))
    except InputError as e:
        print(f"hmrkit: {e}", file=sys.stderr)
        return 1
    print(f"hmrkit: wrote {weights}")
    return 0


def cmd_occlusion(args) -> int:
    """Occlusion sensitivity of a method on one image -> OUT/NAME_occlusion_METHOD.png + .npz."""
    from pathlib import Path

    import hmrkit.body
    from hmrkit.errors import InputError
    from hmrkit.estimate import build, evidence_used, method_names

    if args.method not in method_names():
        print(f"hmrkit: unknown method {args.method!r}; choose from {method_names()}", file=sys.stderr)
        return 2
    for name in ("patch", "stride"):
        if getattr(args, name) < 1:
            print(f"hmrkit: --{name} must be at least 1 px, got {getattr(args, name)}", file=sys.stderr)
            return 2
    try:
        from hmrkit.eval.occlusion import OcclusionConfig, check_patch, occlusion_sensitivity, sensitivity_figure
        from hmrkit.io import read_image
        from hmrkit.pipeline import RunConfig, intrinsics, make_detector

        path = Path(args.image)
        image = read_image(path, for_detector=True)
        H, W = image.shape[:2]
        check_patch(path, args.patch, args.stride, H, W)  # before the models load
        body = hmrkit.body.load(args.body, model_path=None if args.body == "anny" else args.model_path)
        estimator = build(args.method, body)
        K = intrinsics(RunConfig(), path, H, W)
        config = OcclusionConfig(patch=args.patch, stride=args.stride, all_positions=args.all)
        from tqdm import tqdm

        detector = make_detector(video=False, evidence=evidence_used(estimator))
        try:
            with tqdm(desc=f"occlusion ({args.method})", unit="patch", disable=None) as bar:
                def plan(n):
                    bar.total = n
                    bar.refresh()

                res = occlusion_sensitivity(image, K, estimator, body, detector, config, progress=bar.update,
                                            name=str(path), plan=plan)
        finally:
            detector.close()
    except InputError as e:
        print(f"hmrkit: {e}", file=sys.stderr)
        return 1
    from PIL import Image

    from hmrkit.io.atomic import atomic_write

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{path.stem}_occlusion_{args.method.replace('+', '_')}"
    res.save_npz(out / f"{stem}.npz")
    with atomic_write(out / f"{stem}.png", "wb") as fh:
        Image.fromarray(sensitivity_figure(image, res)).save(fh, format="PNG")
    ran, lost = int(res.ran.sum()), int((res.ran & ~res.found).sum())
    print(f"hmrkit: {ran} patch positions of {res.ran.size} run ({lost} lost the person), detector "
          f"{res.seconds['detect']:.1f} s, estimator {res.seconds['estimate']:.1f} s; wrote {out / stem}.png and .npz")
    return 0


def cmd_view(args) -> int:
    """Serve the results of ``hmrkit run`` in OUT_DIR as a 3D page until Ctrl-C (hmrkit.viewer)."""
    from hmrkit.errors import InputError
    from hmrkit.viewer import serve

    try:
        code = serve(args.out_dir, host=args.host, port=args.port, open_browser=not args.no_browser)
    except InputError as e:
        print(f"hmrkit: {e}", file=sys.stderr)
        return 1
    # served and stopped: exit now rather than wait on threads a stuck websocket may hold
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hmrkit", description="3D human meshes from photos and videos.")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    def run_options(q, demo=False):
        q.add_argument("--out", default=None if demo else "hmrkit_out", help="output folder")
        q.add_argument("--body", default="anny", choices=["anny", "smpl", "smplh", "smplx"])
        q.add_argument("--model-path", default=None, help="SMPL-family model file or folder")
        q.add_argument("--method", default=None,
                       help="estimator: spin+fit (SPIN's regressor refined by fitting; the default where its "
                            "weights ship, i.e. for Anny), spin (the regressor alone, fastest) or fit (fitting "
                            "from the mean body; the default for SMPL-family bodies)")
        q.add_argument("--weights", default=None, help="regressor weights for spin, pare, maed, pixie (and their +fit) (default: the shipped ones)")
        q.add_argument("--adapt", action="store_true",
                       help="adapt the regressor (spin, pare, maed; default spin) online to each video's tracks "
                            "(DynaBOA; docs/dynaboa.md): --method spin --adapt")
        q.add_argument("--focal", type=float, default=None, help="focal length in pixels")
        q.add_argument("--fov", type=float, default=None, help="field of view over the larger side, degrees")
        q.add_argument("--no-overlay", action="store_true", help="skip overlay pictures/videos")
        q.add_argument("--device", default="cpu", help="torch device for the estimator: cpu (default) or cuda")
        q.add_argument("--max-people", type=int, default=None, help="at most N people per frame, the largest")
        q.add_argument("--debug", action="store_true", help="print the full traceback of an unexpected error")

    r = sub.add_parser("run", help="images, videos, folders or keypoint files -> meshes")
    r.add_argument("inputs", nargs="*")
    run_options(r)
    r.add_argument("--export", default="",
                   help="comma-separated: obj,ply,glb (a mesh per person and frame), bvh, anim.glb (an animation "
                        "per track of a video: BVH skeleton, skinned animated glTF; docs/outputs.md)")
    r.add_argument("--keypoints", default=None,
                   help="a keypoint file (COCO/OpenPose JSON, hmrkit npz) or a folder: a folder of OpenPose JSON "
                        "is one video, each npz / COCO JSON in a folder one input")
    r.add_argument("--max-frames", type=int, default=None, help="stop videos after N frames")
    r.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="fan the inputs out over Ray workers: a local Ray, or the cluster at ADDRESS "
                        "(pip install 'hmrkit[ray]'; docs/batch.md)")
    r.add_argument("--workers", type=int, default=None, help="with --ray: how many workers (default: one per CPU)")
    r.add_argument("--resume", action="store_true",
                   help="skip inputs whose outputs in --out are complete (from an earlier, interrupted run)")
    # Hidden: a smaller fitting budget (tests, quick looks); see RunConfig.fit_iters.
    r.add_argument("--fit-iters", type=int, default=None, help=argparse.SUPPRESS)
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="run on the bundled photo -> ./hmrkit_demo/")
    run_options(d, demo=True)
    d.set_defaults(func=cmd_demo)

    e = sub.add_parser(
        "eval", help="metrics of a method on fixed test sets",
        description="Metrics (MPJPE, PA-MPJPE, PVE, accel error; mm) of a method on test sets; see docs/eval.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="data specs (key=value options after the kind, comma-separated):\n"
               "  synthetic:frames[,n=48,seed=2024,noise=clean|realistic,world3d=0.05,batch=8]\n"
               "      keypoints projected from known bodies, simulated detector noise\n"
               "  synthetic:rendered[,n=32,seed=2024,size=512,batch=8,backgrounds=DIR]\n"
               "      rendered bodies, keypoints from the real detector (MediaPipe)\n"
               "  synthetic:sequences[,n=4,frames=32,seed=2024,noise=clean|realistic,world3d=0,batch=8]\n"
               "      30 fps mocap clips, moving camera; also the acceleration error\n"
               "  3dpw:NPZ,root=DIR[,n=N,step=1,regressor=J_regressor_h36m.npy]\n"
               "      SPIN's 3dpw_test.npz; root = the 3DPW folder holding imageFiles/;\n"
               "      ground truth from the SMPL files of --model-path (SMPL_MALE/FEMALE)\n"
               "  h36m:NPZ,root=DIR[,n=N,step=1,regressor=J_regressor_h36m.npy]\n"
               "      SPIN's h36m_valid_protocol{1,2}.npz; root = the folder imgname is relative to",
    )
    e.add_argument("--method", default="fit", help="fit | spin | spin+fit (hmrkit.estimate)")
    e.add_argument("--weights", default=None, help="regressor weights for spin, pare, maed, pixie (and their +fit) (default: the shipped ones)")
    e.add_argument("--adapt", action="store_true",
                   help="adapt the regressor (spin, pare, maed) online to each clip (DynaBOA; docs/dynaboa.md)")
    e.add_argument("--data", nargs="+", default=["synthetic:frames,noise=clean", "synthetic:frames,noise=realistic"],
                   help="one or more data specs (below)")
    e.add_argument("--body", default="anny", choices=["anny", "smpl", "smplh", "smplx"],
                   help="the body model the method predicts")
    e.add_argument("--model-path", default=None,
                   help="SMPL-family model file or folder: the predicting body's (--body smpl...) and, for 3dpw, "
                        "the folder with the gendered SMPL files of the ground truth ($HMRKIT_SMPL_DIR if unset)")
    e.add_argument("--json", default="hmrkit_eval.json", help="where to write the table as JSON")
    # Hidden: a smaller fitting budget (tests, quick looks), as ``run --fit-iters``.
    e.add_argument("--fit-iters", type=int, default=None, help=argparse.SUPPRESS)
    e.set_defaults(func=cmd_eval)

    t = sub.add_parser("train", help="train a method's regressor on synthetic data")
    t.add_argument("method", choices=["spin", "pare", "maed", "pixie"])
    t.add_argument("--out", default="hmrkit_train", help="folder for checkpoints, log.jsonl and the weights")
    t.add_argument("--body", default="anny", choices=["anny", "smpl", "smplh", "smplx"])
    t.add_argument("--model-path", default=None)
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-loop", action="store_true", help="no fitting in the loop (the ablation)")
    t.add_argument("--fit-every", type=int, default=4, help="in-loop fit every N steps")
    t.add_argument("--fit-iters", type=int, default=30, help="body iterations of the in-loop fit")
    t.add_argument("--encoder", default="tokens", choices=["tokens", "maps"])
    t.add_argument("--n-train", type=int, default=24000, help="synthetic training samples")
    t.add_argument("--labelled", type=float, default=0.25, help="fraction of samples with 3D labels")
    t.add_argument("--width", type=int, default=128, help="the encoder's width")
    t.add_argument("--p-world3d", type=float, default=0.5,
                   help="probability that a MediaPipe sample's world landmarks are given to the regressor")
    t.add_argument("--conventions", default="mediapipe33,coco17,openpose25",
                   help="input keypoint conventions, one drawn per sample (comma list)")
    t.add_argument("--phenotypes", default="all", choices=["central", "all"],
                   help="bodies: all Anny phenotypes (children to elders) or the central ones (0.5 +- 0.35)")
    t.add_argument("--no-mirror", action="store_true", help="leave the library's mirrored poses out (ablation)")
    t.add_argument("--perturb", type=float, default=0.0, help="probability of a per-joint pose perturbation")
    t.add_argument("--combine", type=float, default=0.0,
                   help="probability of combining one pose's upper body with another's lower body")
    t.add_argument("--any-orientation", type=float, default=0.0,
                   help="probability of a body orientation uniform over the sphere (lying, upside down)")
    t.add_argument("--fit-select", default="px", choices=["px", "agree"],
                   help="which fits the loop stores: by 2D error only (px), or also with no limb or torso flipped in depth "
                        "against the regressor's estimate (agree)")
    t.add_argument("--seg-steps", type=int, default=1500,
                   help="pare: the part segmentation loss is on for the first N steps, then off")
    t.add_argument("--p-occluder", type=float, default=0.5, help="pare: probability of an occluding box or bar")
    t.add_argument("--p-truncate", type=float, default=0.2, help="pare: probability that the frame cuts the person")
    t.add_argument("--p-mask", type=float, default=0.5, help="pare: probability that the person mask is given")
    t.add_argument("--draws", type=int, default=6, help="maed: cameras and bodies per training clip")
    t.add_argument("--w-accel", type=float, default=0.0, help="maed: weight of the 3D acceleration loss")
    t.add_argument("--independent-noise", action="store_true",
                   help="maed: detector noise drawn independently per frame (the ablation of temporal noise)")
    t.add_argument("--fusion-bias", type=float, default=2.0,
                   help="maed: initial preference of the space/time fusion for the spatial branch (softmax logits +-b)")
    t.add_argument("--no-init-spin", action="store_true", help="maed: do not start the encoder from SPIN's weights")
    t.add_argument("--spin-head", action="store_true",
                   help="maed: a decoder of SPIN's head width (512, relu), started from SPIN's head (its first iteration)")
    t.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="maed: start every weight from these MAED weights (a fine-tuning; the schedule starts afresh)")
    t.add_argument("--image-batch", type=int, default=0,
                   help="maed: single-frame people of SPIN's training set per step, as windows of one frame "
                        "(--n-train, --labelled, --perturb, --combine, --phenotypes, --conventions say which)")
    t.add_argument("--export", action="store_true",
                   help="maed: train nothing; write OUT/maed_<body>.pt from a stopped run's OUT/last.pt "
                        "(give the run's own flags)")
    t.add_argument("--library", default=None,
                   help="maed: the retargeted training clips (default ~/.cache/hmrkit/sequences_train_<body>.npz, "
                        "from scripts/build_sequences.py --train-library)")
    t.add_argument("--p-closeup", type=float, default=0.6, help="pixie: fraction of upper-body close-ups")
    t.add_argument("--p-drop", type=float, default=0.15, help="pixie: probability that a hand's or the face's evidence is removed")
    t.add_argument("--p-degrade", type=float, default=0.15,
                   help="pixie: probability that a hand's or the face's evidence is badly jittered")
    t.add_argument("--p-swap", type=float, default=0.05, help="pixie: probability that the two hands' evidence is swapped")
    t.add_argument("--val-every", type=int, default=500)
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    t.add_argument("--real", nargs="*", default=(), metavar="NPZ",
                   help="`hmrkit run` outputs whose detections join the training as unlabelled samples (fitting loop)")
    t.set_defaults(func=cmd_train)

    o = sub.add_parser("occlusion", help="occlusion sensitivity: slide a grey patch over an image, "
                                         "measure how each joint's 3D estimate moves")
    o.add_argument("image", help="a photo (jpg, png, ...)")
    o.add_argument("--method", default="pare", help="the estimator (default pare)")
    o.add_argument("--patch", type=int, default=64, help="side of the grey patch, px")
    o.add_argument("--stride", type=int, default=32, help="step between patch positions, px")
    o.add_argument("--all", action="store_true",
                   help="run every position (default: those overlapping the person's box grown by 25 %%)")
    o.add_argument("--out", default="hmrkit_occlusion", help="folder for the heat-map PNG and the npz")
    o.add_argument("--body", default="anny", choices=["anny", "smpl", "smplh", "smplx"])
    o.add_argument("--model-path", default=None)
    o.set_defaults(func=cmd_occlusion)

    w = sub.add_parser("view", help="the results of `hmrkit run` in 3D, in the browser (docs/viewer.md)")
    w.add_argument("out_dir", metavar="OUT_DIR", help="the --out folder of `hmrkit run` (or one of its NAME.npz)")
    w.add_argument("--port", type=int, default=8080, help="the page's port (default 8080; 0: any free one)")
    w.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1, this machine only; 0.0.0.0: the network too)")
    w.add_argument("--no-browser", action="store_true", help="only print the page's URL, do not open a browser")
    w.set_defaults(func=cmd_view)

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

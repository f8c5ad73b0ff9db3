"""The main job: inputs (images, videos, keypoint files) -> meshes, npz, overlays, summary.

Data flow (DESIGN.md): frames (streamed) -> detect (Evidence) -> estimate (BodyParams +
Camera) -> body model -> write. One person per frame on this path (P = 1).

Memory stays flat on long videos: frames are read one at a time, fitted in small chunks,
and only the per-frame parameters (a few KB) are kept; the stacked arrays of the output
contract are computed at the end in chunks into memory-mapped temporaries and streamed
into the npz.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
import torch

from hmrkit.errors import InputError, NoPersonError
from hmrkit.types import BodyParams, Evidence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    """What ``run`` does. Only the CLI builds this from flags."""

    out_dir: Path = Path("hmrkit_out")
    body: str = "anny"
    model_path: Optional[str] = None
    method: Optional[str] = None  # hmrkit.estimators.METHODS; None: default_method(body)
    export: tuple = ()  # mesh formats: obj, ply, glb
    overlay: bool = True
    focal: Optional[float] = None  # px
    fov: Optional[float] = None  # degrees over the larger side
    keypoints: Optional[str] = None  # a keypoint file to use instead of detecting
    device: str = "cpu"
    chunk: int = 8  # video frames fitted together
    max_frames: Optional[int] = None
    # Fitting budget: the fitter's body iterations; its camera and detail stages are scaled
    # in proportion (the default schedule is 40 / 120 / 40). None keeps FitConfig's defaults.
    fit_iters: Optional[int] = None
    weights: Optional[str] = None  # regressor weights for spin / spin+fit (None: the shipped ones)


@dataclass
class FrameResult:
    index: int
    valid: bool
    params: Optional[BodyParams] = None  # batch of 1
    K: Optional[np.ndarray] = None  # (3, 3)
    evidence: Optional[Evidence] = None
    px_error: float = float("nan")


@dataclass
class Summary:
    inputs: list = field(default_factory=list)
    failed: list = field(default_factory=list)  # {"input", "error"}
    frames: int = 0
    frames_without_person: int = 0
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def time(self, stage: str, seconds: float):
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds


class _DropRecords(logging.Filter):
    def filter(self, record) -> bool:
        return False


class Runner:
    """Holds the body model, detector and estimator across inputs."""

    def __init__(self, config: RunConfig, progress: Optional[Callable] = None):
        import hmrkit.body

        self.config = config
        try:
            self.body = hmrkit.body.load(config.body, model_path=config.model_path)
        except InputError:
            raise
        except ValueError as e:  # e.g. anny given a model_path (problems with the file are InputErrors)
            raise InputError(config.model_path, str(e).splitlines()[0]) from None
        from dataclasses import replace

        from hmrkit.estimators import build_estimator, default_method, scaled_fit_config

        self.config = config = replace(config, method=config.method or default_method(self.body))
        fit_cfg = scaled_fit_config(config.fit_iters)
        self.fitter = build_estimator(config.method, self.body, fit_cfg, weights=config.weights)
        self.summary = Summary()
        self._detectors = {}
        self.progress = progress

    # ---------------------------------------------------------------- detection
    def detector(self, video: bool):
        from hmrkit.detect import MediaPipeHolistic, MediaPipeHolisticConfig

        key = "video" if video else "image"
        if key not in self._detectors:
            self._detectors[key] = MediaPipeHolistic(MediaPipeHolisticConfig(static_image_mode=not video))
        det = self._detectors[key]
        if video:
            det.reset()
        return det

    def intrinsics(self, path: Path, h: int, w: int, K_file=None) -> np.ndarray:
        from hmrkit.geometry.camera import default_intrinsics

        if K_file is not None:
            return np.asarray(K_file, dtype=np.float32)
        focal = self.config.focal
        if focal is None and self.config.fov is None and path is not None:
            try:
                from hmrkit.io import read_exif_focal

                focal = read_exif_focal(path, w, h)
            except Exception:  # EXIF is a nicety, never a failure
                focal = None
        return default_intrinsics(h, w, focal=focal, fov_deg=self.config.fov).numpy()

    # ---------------------------------------------------------------- estimation
    def estimate(self, evidence: list[Optional[Evidence]], Ks: np.ndarray, video: bool,
                 init: Optional[BodyParams] = None) -> list[FrameResult]:
        """Fit a list of frames (None = nobody found) together; returns one result each."""
        idx = [i for i, e in enumerate(evidence) if e is not None]
        results = [FrameResult(index=i, valid=False) for i in range(len(evidence))]
        if not idx:
            return results
        kp = np.stack([evidence[i].keypoints2d for i in idx]).astype(np.float32)
        conv = evidence[idx[0]].convention
        kp3 = None
        if all(evidence[i].keypoints3d is not None for i in idx):
            kp3 = torch.from_numpy(np.stack([evidence[i].keypoints3d for i in idx]).astype(np.float32))
        K = torch.from_numpy(Ks[idx].astype(np.float32))
        if init is not None:
            init = BodyParams.cat([init] * len(idx))
        contiguous = video and idx == list(range(idx[0], idx[0] + len(idx)))
        pred = self.fitter.fit(torch.from_numpy(kp), conv, K, init=init, kp3d=kp3, smooth=contiguous)
        for j, i in enumerate(idx):
            ok = bool(pred.valid[j])
            results[i] = FrameResult(index=i, valid=ok, params=pred.params[j], K=Ks[i], evidence=evidence[i],
                                     px_error=float(pred.info["mean_px_error"][j]))
        return results

    # ---------------------------------------------------------------- inputs
    def run_image(self, path: Path, name: Optional[str] = None) -> list[FrameResult]:
        from hmrkit.io import read_image

        t = time.perf_counter()
        image = read_image(path)
        self.summary.time("decode", time.perf_counter() - t)
        h, w = image.shape[:2]
        t = time.perf_counter()
        found = self.detector(video=False).detect(image)
        self.summary.time("detect", time.perf_counter() - t)
        ev = found[0] if found else None
        K = self.intrinsics(path, h, w)[None]
        t = time.perf_counter()
        res = self.estimate([ev], K, video=False)
        self.summary.time("fit", time.perf_counter() - t)
        self.summary.frames += 1
        if ev is None:
            self.summary.frames_without_person += 1
            self.summary.warnings.append(f"{path}: nobody found in the image")
        self.write(path, res, fps=0.0, frames=[image], name=name)
        return res

    def run_video(self, path: Path, name: Optional[str] = None) -> list[FrameResult]:
        from hmrkit.io import VideoReader

        results: list[FrameResult] = []
        writer = None
        overlay_path = None
        # the reader's warnings (e.g. a truncated file) are copied into the summary below
        video_log = logging.getLogger("hmrkit.io.video")
        drop = _DropRecords()
        video_log.addFilter(drop)
        try:
            reader = VideoReader(path)
        finally:
            video_log.removeFilter(drop)
        with reader:
            fps = float(reader.fps or 0.0)
            det = self.detector(video=True)
            chunk_frames, chunk_ev = [], []
            prev: Optional[BodyParams] = None
            K = None
            tmp_overlay = None
            if self.config.overlay:
                overlay_path = self.config.out_dir / f"{name or path.stem}_overlay.mp4"
            n = 0

            def flush():
                nonlocal prev, writer
                if not chunk_ev:
                    return
                Ks = np.repeat(K[None], len(chunk_ev), 0)
                t = time.perf_counter()
                res = self.estimate(chunk_ev, Ks, video=True, init=prev)
                self.summary.time("fit", time.perf_counter() - t)
                base = len(results)
                for r in res:
                    r.index += base
                    if r.valid:
                        prev = r.params
                results.extend(res)
                if self.config.overlay:
                    writer = self._write_overlay_frames(writer, overlay_path, fps, chunk_frames, res)
                chunk_frames.clear()
                chunk_ev.clear()

            nobody = 0
            video_log.addFilter(drop)
            try:
                t = time.perf_counter()
                for index, frame in reader:
                    self.summary.time("decode", time.perf_counter() - t)
                    if self.config.max_frames is not None and n >= self.config.max_frames:
                        break
                    if K is None:
                        K = self.intrinsics(None, frame.shape[0], frame.shape[1])
                    t = time.perf_counter()
                    found = det.detect(frame)
                    self.summary.time("detect", time.perf_counter() - t)
                    chunk_ev.append(found[0] if found else None)
                    chunk_frames.append(frame if self.config.overlay else None)
                    if not found:
                        nobody += 1
                    n += 1
                    if len(chunk_ev) >= self.config.chunk:
                        flush()
                    if self.progress is not None:
                        self.progress(1)
                    t = time.perf_counter()
                flush()
                if n == 0:
                    raise InputError(path, "the video has no frames")
                self.summary.warnings += [f"{path}: {w}" for w in reader.warnings]
                # the npz first, then the overlay video: a failure leaves neither new file
                self.write(path, results, fps=fps, frames=None, name=name)
                if writer is not None:
                    writer.close()
            except BaseException:
                if writer is not None:
                    writer.abort()  # no half-written overlay video; an older one stays
                raise
            finally:
                video_log.removeFilter(drop)
        self.summary.frames += n
        self.summary.frames_without_person += nobody
        if nobody:
            self.summary.warnings.append(f"{path}: nobody found in {nobody} of {n} frame(s)")
        return results

    def run_keypoints(self, path: Path, name: Optional[str] = None) -> list[FrameResult]:
        import warnings

        from hmrkit.detect import read_keypoint_file

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            seq = read_keypoint_file(path)
        # the readers' warnings (e.g. no image size in the file) go to the summary, one line each
        self.summary.warnings += [str(w.message).splitlines()[0] for w in caught]
        evs = [f[0] if f else None for f in seq.frames]
        h, w = next((e.image_size for e in evs if e is not None), (1080, 1920))
        if seq.cam_K is not None:
            Ks = np.asarray(seq.cam_K, dtype=np.float32)
        else:
            Ks = np.repeat(self.intrinsics(None, h, w)[None], len(evs), 0)
        video = len(evs) > 1
        results = []
        prev = None
        for s in range(0, len(evs), self.config.chunk if video else 1):
            part = evs[s:s + self.config.chunk] if video else evs[s:s + 1]
            res = self.estimate(part, Ks[s:s + len(part)], video=video, init=prev)
            for r in res:
                r.index += s
                if r.valid:
                    prev = r.params
            results.extend(res)
        self.summary.frames += len(evs)
        self.summary.frames_without_person += sum(e is None for e in evs)
        self.write(path, results, fps=float(seq.fps or 0.0), frames=None, K_all=Ks, name=name)
        return results

    # ---------------------------------------------------------------- writing
    def _write_overlay_frames(self, writer, path, fps, frames, results):
        from hmrkit.io import VideoWriter
        from hmrkit.render import render_overlay

        t = time.perf_counter()
        faces = self.body.faces.numpy()
        for frame, r in zip(frames, results):
            if r.valid:
                with torch.no_grad():
                    v = self.body(r.params).vertices[0].numpy()
                img = render_overlay(frame, v, faces, r.K)
            else:
                img = frame
            if writer is None:
                writer = VideoWriter(path, fps=fps or 10.0, size=img.shape[:2])
            writer.write(img)
        self.summary.time("render", time.perf_counter() - t)
        return writer

    def write(self, path: Path, results: list[FrameResult], fps: float, frames=None, K_all=None,
              name: Optional[str] = None):
        """The npz of the output contract, meshes on request, the overlay picture; the files
        are named after ``name`` (default: the input's stem)."""
        from hmrkit.io import save_mesh, save_npz_atomic

        name = name or path.stem
        t0 = time.perf_counter()
        out_dir = self.config.out_dir
        body = self.body
        T, P = len(results), 1
        V, J = body.num_vertices, len(body.joint_names)
        tmp = tempfile.TemporaryDirectory(dir=out_dir, prefix=".tmp-")
        try:
            mm = lambda name, shape, dtype=np.float32: np.lib.format.open_memmap(  # noqa: E731
                os.path.join(tmp.name, name + ".npy"), mode="w+", dtype=dtype, shape=shape)
            vertices = mm("vertices", (T, P, V, 3))
            joints = mm("joints3d", (T, P, J, 3))
            kp3 = np.zeros((T, P, 17, 3), np.float32)
            kp2 = np.zeros((T, P, 17, 2), np.float32)
            valid = np.zeros((T, P), bool)
            cam_K = np.zeros((T, 3, 3), np.float32)
            go = np.tile(np.eye(3, dtype=np.float32), (T, P, 1, 1))
            pose = np.tile(np.eye(3, dtype=np.float32), (T, P, body.num_pose_joints, 1, 1))
            shape = np.zeros((T, P, body.num_shape), np.float32)
            transl = np.zeros((T, P, 3), np.float32)
            expr = np.zeros((T, P, body.num_expression), np.float32) if body.num_expression else None
            ev_conv = next((r.evidence.convention for r in results if r.evidence is not None), "")
            ev_k = next((len(r.evidence.keypoints2d) for r in results if r.evidence is not None), 0)
            ev_kp = np.zeros((T, P, ev_k, 3), np.float32)
            px_err = np.full((T, P), np.nan, np.float32)
            default_K = next((r.K for r in results if r.K is not None), np.eye(3, dtype=np.float32))
            chunk = 32
            for s in range(0, T, chunk):
                rs = results[s:s + chunk]
                for r in rs:
                    cam_K[r.index] = r.K if r.K is not None else (K_all[r.index] if K_all is not None else default_K)
                    if r.evidence is not None:
                        ev_kp[r.index, 0] = r.evidence.keypoints2d
                ok = [r for r in rs if r.valid]
                if not ok:
                    continue
                params = BodyParams.cat([r.params for r in ok])
                with torch.no_grad():
                    out = body(params)
                    c17 = body.keypoints(out, "coco17")
                Kt = torch.from_numpy(np.stack([cam_K[r.index] for r in ok]))
                from hmrkit.geometry.camera import project

                uv = project(c17, Kt)
                for j, r in enumerate(ok):
                    i = r.index
                    valid[i, 0] = True
                    vertices[i, 0] = out.vertices[j].numpy()
                    joints[i, 0] = out.joints[j].numpy()
                    kp3[i, 0] = c17[j].numpy()
                    kp2[i, 0] = uv[j].numpy()
                    go[i, 0] = params.global_orient[j].numpy()
                    pose[i, 0] = params.pose[j].numpy()
                    shape[i, 0] = params.shape[j].numpy()
                    transl[i, 0] = params.transl[j].numpy()
                    if expr is not None and params.expression is not None:
                        expr[i, 0] = params.expression[j].numpy()
                    px_err[i, 0] = r.px_error
            from hmrkit.conventions import COCO17

            arrays = dict(
                body_model=np.array(body.name), method=np.array(self.config.method), valid=valid,
                vertices=vertices, faces=body.faces.numpy().astype(np.int64), joints3d=joints,
                joint_names=np.array(body.joint_names), keypoints3d=kp3, keypoints3d_names=np.array(COCO17),
                keypoints2d=kp2, cam_K=cam_K, global_orient=go, body_pose=pose,
                pose_joint_names=np.array(body.pose_joint_names), shape=shape, transl=transl,
                frame_index=np.arange(T), fps=np.array(fps, np.float32),
                evidence_keypoints2d=ev_kp, evidence_convention=np.array(ev_conv),
                fit_px_error=px_err,
            )
            if expr is not None:
                arrays["expression"] = expr
            if body.name == "anny":
                arrays["shape_names"] = np.array(body.shape_names)
            save_npz_atomic(out_dir / f"{name}.npz", **arrays)
            self.summary.time("write", time.perf_counter() - t0)

            if self.config.export:
                for r in results:
                    if not r.valid:
                        continue
                    for fmt in self.config.export:
                        mesh = f"{name}_f{r.index:06d}_p0.{fmt}"
                        save_mesh(out_dir / mesh, vertices[r.index, 0], body.faces.numpy())
            if frames is not None and self.config.overlay and results:
                t = time.perf_counter()
                self._overlay_picture(name, frames[0], results[0])
                self.summary.time("render", time.perf_counter() - t)
        finally:
            tmp.cleanup()  # memmaps may still be open: fine on POSIX, the data is in the npz

    def _overlay_picture(self, name: str, image: np.ndarray, r: FrameResult):
        from hmrkit.io import atomic_write
        from hmrkit.render import overlay_panel

        kp = r.evidence.keypoints2d if r.evidence is not None else None
        conv = r.evidence.convention if r.evidence is not None else None
        if r.valid:
            with torch.no_grad():
                v = self.body(r.params).vertices[0].numpy()
            panel = overlay_panel(image, v, self.body.faces.numpy(), r.K, keypoints2d=kp, convention=conv)
        else:
            panel = image
        from PIL import Image

        with atomic_write(self.config.out_dir / f"{name}_overlay.png", "wb") as f:
            Image.fromarray(panel).save(f, format="PNG")


def _output_names(paths: list) -> list[str]:
    """The NAME of each input's output files: its stem, made unique so that two inputs never
    write over each other's results (``a.jpg``, ``a.png`` -> ``a``, ``a_png``; the same
    name in two folders -> ``a``, ``a_2``)."""
    names, seen = [], set()
    for p in paths:
        p = Path(p)
        name = p.stem
        if name in seen and p.suffix:
            name = f"{p.stem}_{p.suffix.lstrip('.').lower()}"
        k = 2
        while name in seen:
            name = f"{p.stem}_{k}"
            k += 1
        seen.add(name)
        names.append(name)
    return names


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def run(inputs: Iterable, config: RunConfig, progress_factory=None) -> Summary:
    """Run on every input; bad inputs are reported in the summary and skipped.

    An input is *produced* when its ``NAME.npz`` was written, including an image or video
    in which nobody was found (``valid`` all False; the summary warns). ``summary.json`` is
    written whenever the output folder is writable. Raises InputError (one line) only when
    nothing could be produced: the input's own error when there was one input, else a
    count; the error then carries the ``summary`` (its ``failed`` list names every file)."""
    from hmrkit.io import classify, expand_inputs, save_json_atomic

    out_dir = Path(config.out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out_dir, prefix=".probe-", delete=True)
        probe.close()
    except OSError as e:
        raise InputError(out_dir, f"cannot write to the output folder ({e.strerror or e})") from None
    config = RunConfig(**{**config.__dict__, "out_dir": out_dir})
    inputs = list(inputs)
    if not inputs:
        raise InputError(None, "no input given; pass an image, a video, a keypoint file or a folder")
    paths, failed = [], []
    # expand_inputs logs each file it skips; those go to the summary (and the CLI prints them)
    io_log = logging.getLogger("hmrkit.io.images")
    drop = _DropRecords()
    io_log.addFilter(drop)
    try:
        for item in inputs:
            skipped: list = []
            try:
                paths += expand_inputs([item], skipped=skipped)
            except InputError as e:
                failed.append({"input": str(item), "error": str(e)})
            failed += [{"input": str(p), "error": f"{p}: {why}"} for p, why in skipped]
    finally:
        io_log.removeFilter(drop)
    s = Summary()
    s.failed += failed
    produced = 0
    names = _output_names(paths)
    for p, name in zip(paths, names):
        if name != Path(p).stem:
            s.warnings.append(f"{p}: another input has the same name; its results are named {name}.*")
    t_all = time.perf_counter()
    if paths:  # load the models only when there is something to do
        runner = Runner(config)
        config = runner.config  # with the method resolved
        runner.summary = s
        t_all = time.perf_counter()  # "total" is the processing time, without loading the models
        iterator = list(zip(paths, names))
        if progress_factory is not None:
            iterator = progress_factory(iterator)
        for p, name in iterator:
            try:
                kind = classify(p)
                if config.keypoints is not None:
                    kind = "keypoints"
                if kind == "image":
                    runner.run_image(Path(p), name)
                elif kind == "video":
                    runner.run_video(Path(p), name)
                elif kind == "keypoints":
                    runner.run_keypoints(Path(p) if config.keypoints is None else Path(config.keypoints), name)
                else:
                    raise InputError(p, "unsupported input type")
                s.inputs.append(str(p))
                produced += 1
            except InputError as e:
                log.info("%s", e)
                s.failed.append({"input": str(p), "error": str(e)})
            except OSError as e:  # disk full, permissions changed under us, ...
                where = f" ({e.filename})" if getattr(e, "filename", None) else ""
                msg = f"{p}: input/output error{where}: {e.strerror or _one_line(e)}"
                log.info("%s", msg, exc_info=True)
                s.failed.append({"input": str(p), "error": msg})
            except Exception as e:  # a bug: report it, carry on with the other inputs
                msg = (f"{p}: internal error ({type(e).__name__}: {_one_line(e)}); "
                       f"please report it (hmrkit -v run ... shows the traceback)")
                log.info("%s", msg, exc_info=True)
                s.failed.append({"input": str(p), "error": msg})
    s.timings["total"] = time.perf_counter() - t_all
    save_json_atomic(out_dir / "summary.json", {
        "inputs": s.inputs, "failed": s.failed, "frames": s.frames,
        "frames_without_person": s.frames_without_person,
        "timings_s": {k: round(v, 3) for k, v in s.timings.items()},
        "warnings": s.warnings, "body_model": config.body, "method": config.method,
    })
    if produced == 0:
        if not s.failed:  # e.g. an empty folder
            where = inputs[0] if len(inputs) == 1 else None
            err = InputError(where, "no image, video or keypoint file to process here")
        elif len(s.failed) == 1:
            err = InputError(None, s.failed[0]["error"])
            err.path = s.failed[0]["input"]
        else:
            err = InputError(None, f"nothing could be produced: {len(s.failed)} inputs failed "
                                   f"(listed in {out_dir / 'summary.json'})")
        err.summary = s
        raise err
    return s

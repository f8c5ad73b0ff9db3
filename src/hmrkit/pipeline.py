"""The main job: inputs (images, videos, keypoint files) -> meshes, npz, overlays, summary.

Stages, for one input (``process_input``, the unit of work):

  source    frames, streamed (an image is one frame; a keypoint file gives evidence directly)
  detect    every person of a frame (``hmrkit.detect``): list[Evidence]
  track     identities across frames (``hmrkit.track.Tracker``); in a photo, people are
            numbered by size
  schedule  per the estimator's kind (``hmrkit.estimate.base``): window estimators get the
            contiguous frames of each track (up to ``window_size``, warm-started from the
            track's previous window), image estimators every person of a chunk of frames
            in one batch, stream estimators each track's frames in order (one copy each)
  estimate  Observation -> Prediction
  write     (T, P) arrays with ``track_id`` (P,): the npz, meshes, overlay picture / video

``process_input(path, config, models) -> InputReport`` holds no global state: the loaded
models (``Models``) are passed in, the report is returned, nothing process-wide (logging
configuration, warning filters, a shared summary) is touched, so inputs can be fanned out
to workers. ``run`` loads the models once, processes every input and merges the reports
into ``summary.json``.

Memory stays flat on long videos: frames are read one at a time and estimated in chunks;
only the per-person parameters (a few KB a frame) are kept; the stacked arrays of the
output contract are computed at the end in chunks into memory-mapped temporaries and
streamed into the npz.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
import torch

from hmrkit.errors import InputError
from hmrkit.types import BodyParams, Evidence, Observation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    """What ``run`` does. Only the CLI builds this from flags."""

    out_dir: Path = Path("hmrkit_out")
    body: str = "anny"
    model_path: Optional[str] = None
    method: Optional[str] = None  # hmrkit.estimate.method_names(); None: default_method(body)
    export: tuple = ()  # hmrkit.io.EXPORT_FORMATS: meshes obj, ply, glb; animations bvh, anim.glb
    overlay: bool = True
    focal: Optional[float] = None  # px
    fov: Optional[float] = None  # degrees over the larger side
    keypoints: Optional[str] = None  # a keypoint file or folder to use instead of detecting
    device: str = "cpu"  # torch device of the estimator: cpu, cuda, cuda:1, ...
    chunk: int = 8  # video frames detected, then estimated, together
    max_frames: Optional[int] = None
    max_people: Optional[int] = None  # per frame, the largest N people (None: all)
    # Fitting budget: the fitter's body iterations; its camera and detail stages are scaled
    # in proportion (the default schedule is 40 / 120 / 40). None keeps FitConfig's defaults.
    fit_iters: Optional[int] = None
    weights: Optional[str] = None  # regressor weights for a learned method (None: the shipped ones)
    debug: bool = False  # an unexpected error's report carries its full traceback
    # Batch runs (hmrkit.distributed): inputs fanned out over Ray workers; skip completed inputs
    ray: bool = False
    ray_address: Optional[str] = None  # None: a local Ray started for the run
    workers: Optional[int] = None  # Ray workers (None: one per CPU of the cluster)
    resume: bool = False


@dataclass
class PersonResult:
    """One person in one frame, as estimated (params: a batch of 1; None when not valid)."""

    frame: int
    track: int
    valid: bool
    evidence: Evidence
    K: np.ndarray  # (3, 3)
    params: Optional[BodyParams] = None
    px_error: float = float("nan")


@dataclass
class InputReport:
    """What ``process_input`` did with one input. ``produced``: its NAME.npz was written."""

    input: str
    name: str
    kind: str = ""
    produced: bool = False
    error: Optional[str] = None
    frames: int = 0
    frames_without_person: int = 0
    people: int = 0  # tracks (distinct people) written
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    traceback: Optional[str] = None

    def time(self, stage: str, seconds: float):
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds


@dataclass
class Summary:
    """``run``'s merged reports (what summary.json holds)."""

    inputs: list = field(default_factory=list)
    failed: list = field(default_factory=list)  # {"input", "error"}
    frames: int = 0
    frames_without_person: int = 0
    people: int = 0
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    reports: list = field(default_factory=list)
    resumed: list = field(default_factory=list)  # inputs skipped by --resume (their outputs were complete)

    def add(self, report: InputReport) -> None:
        self.reports.append(report)
        if report.produced:
            self.inputs.append(report.input)
        else:
            self.failed.append({"input": report.input, "error": report.error or f"{report.input}: nothing produced"})
        self.frames += report.frames
        self.frames_without_person += report.frames_without_person
        self.people += report.people
        for k, v in report.timings.items():
            self.timings[k] = self.timings.get(k, 0.0) + v
        self.warnings += report.warnings


# ---------------------------------------------------------------------------- models


def resolve_device(name: str) -> torch.device:
    """A torch device the user asked for, or a one-line InputError when it is not here."""
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(None, f"--device {name!r} is not a device name; use cpu or cuda") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(None, f"--device {name}: torch sees no CUDA GPU here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(None, f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type != "cpu":
        raise InputError(None, f"--device {name}: only cpu and cuda are supported")
    return dev


class Models:
    """What a worker loads once and reuses for every input: the body model, the
    estimator and the detectors. Detectors keep per-video state: ``detector(video=True)``
    is reset for each video."""

    def __init__(self, config: RunConfig):
        import hmrkit.body
        from hmrkit.estimate import build, default_method, scaled_fit_config

        self.device = resolve_device(config.device)
        try:
            self.body = hmrkit.body.load(config.body, model_path=config.model_path)
        except InputError:
            raise
        except ValueError as e:  # e.g. anny given a model_path (problems with the file are InputErrors)
            raise InputError(config.model_path, str(e).splitlines()[0]) from None
        self.method = config.method or default_method(self.body)
        self.estimator = build(self.method, self.body, scaled_fit_config(config.fit_iters), weights=config.weights)
        if self.device.type != "cpu":
            _to_device(self.estimator, self.device)
        self._detectors: dict = {}

    def detector(self, video: bool):
        from hmrkit.estimate import evidence_used

        key = "video" if video else "image"
        if key not in self._detectors:
            self._detectors[key] = make_detector(video=video, evidence=evidence_used(self.estimator))
        det = self._detectors[key]
        if video:
            det.reset()
        return det

    def close(self) -> None:
        for det in self._detectors.values():
            det.close()
        self._detectors.clear()


def make_detector(video: bool, evidence: Optional[frozenset] = None):
    """The person detector of ``hmrkit run``: every person, with the hands, face and mask
    when the estimator reads them (``evidence``, see ``hmrkit.estimate.evidence_used``)."""
    from hmrkit.detect.multi import MultiPersonConfig, MultiPersonDetector
    from hmrkit.estimate import EVIDENCE

    evidence = EVIDENCE if evidence is None else evidence
    parts = "hands" in evidence or "face" in evidence
    return MultiPersonDetector(MultiPersonConfig(static_image_mode=not video, hands_face=parts,
                                                 video_hands_face=parts, enable_segmentation="mask" in evidence))


def _to_device(estimator, device) -> None:
    """Move the learned modules of an estimator (and of a wrapped one) to ``device``."""
    for obj in (estimator, getattr(estimator, "base", None)):
        model = getattr(obj, "model", None)
        if isinstance(model, torch.nn.Module):
            model.to(device)


# ---------------------------------------------------------------------------- one input


MIN_PERSON_PX = 24.0  # a person's confident body keypoints must span this many px (height or width)
MIN_BODY_KEYPOINTS = 6  # ... and count at least this many, most of them inside the image
PERSON_CONFIDENCE = 0.2


def not_a_person(ev: Evidence) -> Optional[str]:
    """Why a detection is not estimated, or None when it is a person worth fitting: at
    least MIN_BODY_KEYPOINTS body keypoints with confidence >= PERSON_CONFIDENCE, at
    least half of them inside the image, spanning at least MIN_PERSON_PX px. The
    detector itself finds nobody under about 25 px (docs/architecture.md); below that a
    fit would be made up."""
    from hmrkit import conventions as C

    kp = np.asarray(ev.keypoints2d, np.float64)
    if ev.convention == "holistic":
        kp = kp[:len(C.MEDIAPIPE33)]
    ok = np.isfinite(kp).all(1) & (kp[:, 2] >= PERSON_CONFIDENCE)
    if ok.sum() < MIN_BODY_KEYPOINTS:
        return f"fewer than {MIN_BODY_KEYPOINTS} confident body keypoints"
    H, W = ev.image_size
    xy = kp[ok, :2]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < W) & (xy[:, 1] >= 0) & (xy[:, 1] < H)
    if inside.mean() < 0.5:
        return "keypoints mostly outside the image"
    xy = xy[inside]
    if np.ptp(xy, 0).max() < MIN_PERSON_PX:
        return f"person smaller than {MIN_PERSON_PX:.0f} px"
    return None


def intrinsics(config: RunConfig, path: Optional[Path], h: int, w: int) -> np.ndarray:
    """K (3, 3) px: --focal, else --fov, else EXIF, else the default field of view."""
    from hmrkit.geometry.camera import default_intrinsics

    focal = config.focal
    if focal is None and config.fov is None and path is not None:
        try:
            from hmrkit.io import read_exif_focal

            focal = read_exif_focal(path, w, h)
        except Exception:  # EXIF is a nicety, never a failure
            focal = None
    return default_intrinsics(h, w, focal=focal, fov_deg=config.fov).numpy()


class _Job:
    """The stages for one input; ``results`` collects every PersonResult."""

    def __init__(self, path: Path, config: RunConfig, models: Models, name: str, report: InputReport,
                 progress: Optional[Callable] = None):
        self.path, self.config, self.models, self.name, self.report = path, config, models, name, report
        self.body = models.body
        self.estimator = models.estimator
        from hmrkit.estimate import kinds

        self.kinds = kinds(self.estimator)
        self.progress = progress
        self.results: dict = {}  # (frame, track) -> PersonResult
        self.prev: dict = {}  # track -> BodyParams (1) of its last valid frame: the next window's start
        self.streams: dict = {}  # track -> a stream estimator's own copy
        self.tails: dict = {}  # track -> its last frames' items, a window estimator's context (MAED)
        # frames detected, then estimated, together: at least a window of the estimator
        self.chunk = max(config.chunk, int(getattr(self.estimator, "window_size", 0) or 0))
        self.skipped: dict = {}  # what was not estimated -> (count, frames, (first frame, an example))

    # ---------------------------------------------------------------- people of a frame
    def _rejected(self, det, frame: int = 0) -> list:
        """Note the people the detector found but did not return (too small, mostly
        outside the image, over its own limit); returns [] (they are not estimated)."""
        for r in getattr(det, "last_rejected", None) or []:
            self._skip("person(s) found but not estimated", r.reason.replace("_", " "), r.detail, frame)
        return []

    def _skip(self, what: str, reason: str, example: str, frame: int) -> None:
        n, frames, first = self.skipped.get((what, reason), (0, set(), (frame, example)))
        frames.add(frame)
        self.skipped[(what, reason)] = (n + 1, frames, first)

    def report_skipped(self) -> None:
        """One warning per reason for everything the input's frames held that was not
        estimated: a long video gives a line per reason, not one per frame."""
        for (what, reason), (n, frames, (first, example)) in self.skipped.items():
            why = f"{reason}, e.g. {example}" if example else reason
            where = "" if self.report.kind == "image" else f" in {len(frames)} frame(s), the first {first}"
            self.report.warnings.append(f"{self.path}: {n} {what} ({why}){where}")
        self.skipped.clear()

    def select(self, people: list, frame: int = 0) -> list:
        """The people of a frame worth estimating, largest first: those that pass
        ``not_a_person`` (the others are reported), then the largest ``max_people``."""
        def area(e):
            b = np.asarray(e.bbox, np.float64)
            return float(max(b[2] - b[0], 0) * max(b[3] - b[1], 0))

        kept = []
        for e in people:
            why = not_a_person(e)
            if why is None:
                kept.append(e)
            else:
                self._skip("detection(s) not estimated", why, "", frame)
        kept = sorted(kept, key=area, reverse=True)
        if self.config.max_people is not None:
            kept = kept[:self.config.max_people]
        return kept

    # ---------------------------------------------------------------- estimation
    def estimate(self, frames: list, video: bool) -> list:
        """frames: [(frame index, K (3, 3), [(track, Evidence)])] of consecutive frames.
        Estimates every person, stores the PersonResults and returns them per frame."""
        t = time.perf_counter()
        items = [(fi, K, tr, ev) for fi, K, people in frames for tr, ev in people]
        out = {}
        if items:
            if video and "window" in self.kinds:
                out = self._by_windows(items)
            elif video and "stream" in self.kinds:
                out = self._by_streams(items)
            else:
                out = self._at_once(items)
        self.results.update(out)
        self.report.time("estimate", time.perf_counter() - t)
        return [[out[(fi, tr)] for tr, _ in people] for fi, _, people in frames]

    def _observation(self, items) -> Observation:
        return Observation.from_evidence([ev for _, _, _, ev in items], np.stack([K for _, K, _, _ in items]),
                                         frame_index=[fi for fi, _, _, _ in items],
                                         track_id=[tr for _, _, tr, _ in items])

    def _store(self, items, pred) -> dict:
        out = {}
        for j, (fi, K, tr, ev) in enumerate(items):
            if ev.mask is not None:  # kept per person-frame until the end: not the (H, W) mask
                ev = replace(ev, mask=None)
            ok = bool(pred.valid[j])
            p = pred.params[j].detach().to("cpu") if ok else None
            out[(fi, tr)] = PersonResult(frame=fi, track=tr, valid=ok, evidence=ev, K=K, params=p,
                                         px_error=float(pred.px_error[j]))
            if ok:
                self.prev[tr] = p
        return out

    def _at_once(self, items) -> dict:
        """Every person of the chunk in one batch (image estimators; photos)."""
        pred = self.estimator.predict(self._observation(items))
        return self._store(items, pred)

    def _by_windows(self, items) -> dict:
        """Each track's contiguous frames as one window, started from its previous one; an
        estimator with a ``context`` also sees the track's frames just before the window."""
        from hmrkit.estimate.base import window_context

        out = {}
        by_track: dict = {}
        for it in items:
            by_track.setdefault(it[2], []).append(it)
        W = max(1, int(getattr(self.estimator, "window_size", 1)))
        for tr, its in by_track.items():
            its.sort(key=lambda x: x[0])
            runs, run = [], [its[0]]
            for it in its[1:]:
                if it[0] == run[-1][0] + 1 and len(run) < W:
                    run.append(it)
                else:
                    runs.append(run)
                    run = [it]
            runs.append(run)
            C = window_context(self.estimator)
            for run in runs:
                tail = self.tails.get(tr, [])
                ctx = tail if (C and tail and tail[-1][0] + 1 == run[0][0]) else []
                obs = self._observation(ctx + run).stack_time()
                init = self.prev.get(tr)
                init = None if init is None else BodyParams.cat([init] * (len(ctx) + len(run)))
                if ctx:
                    pred = self.estimator.predict_window(obs, init, context=len(ctx))
                else:
                    pred = self.estimator.predict_window(obs, init)
                out.update(self._store(run, pred))
                if C:  # the frames the next run of this track sees before its own
                    self.tails[tr] = (ctx + run)[-C:]
        return out

    def _by_streams(self, items) -> dict:
        """Each track's frames in order through its own copy of the stream estimator."""
        out = {}
        for it in sorted(items, key=lambda x: (x[2], x[0])):
            tr = it[2]
            if tr not in self.streams:
                est = copy.deepcopy(self.estimator)
                est.reset()
                self.streams[tr] = est
            pred = self.streams[tr].step(self._observation([it]))
            out.update(self._store([it], pred))
        return out

    # ---------------------------------------------------------------- sources
    def run_image(self):
        from hmrkit.io import read_image

        t = time.perf_counter()
        image = read_image(self.path, for_detector=True)
        self.report.time("decode", time.perf_counter() - t)
        h, w = image.shape[:2]
        t = time.perf_counter()
        det = self.models.detector(video=False)
        people = self.select(det.detect(image) + self._rejected(det))
        self.report.time("detect", time.perf_counter() - t)
        K = intrinsics(self.config, self.path, h, w)
        self.report.frames = 1
        self.report_skipped()
        if not people:
            self.report.frames_without_person = 1
            self.report.warnings.append(f"{self.path}: nobody found in the image")
        res = self.estimate([(0, K, list(enumerate(people)))], video=False)[0]
        self.write(T=1, fps=0.0, K_all=K[None], image_size=[(h, w)])
        if self.config.overlay:
            t = time.perf_counter()
            self._overlay_picture(image, res)
            self.report.time("render", time.perf_counter() - t)

    def run_video(self):
        from hmrkit.io import VideoReader
        from hmrkit.track import Tracker

        reader = VideoReader(self.path, log_warnings=False)  # its warnings go to the report
        writer = None
        overlay_path = self.config.out_dir / f"{self.name}_overlay.mp4"
        tracker = Tracker()
        with reader:
            fps = float(reader.fps or 0.0)
            det = self.models.detector(video=True)
            K = None
            chunk: list = []  # (frame index, K, [(track, Evidence)], image or None)
            n = nobody = 0

            def flush():
                nonlocal writer
                if not chunk:
                    return
                res = self.estimate([(fi, Kf, people) for fi, Kf, people, _ in chunk], video=True)
                if self.config.overlay:
                    writer = self._overlay_frames(writer, overlay_path, fps, [c[3] for c in chunk], res)
                chunk.clear()

            try:
                t = time.perf_counter()
                for index, frame in reader:
                    self.report.time("decode", time.perf_counter() - t)
                    if self.config.max_frames is not None and n >= self.config.max_frames:
                        break
                    if K is None:
                        from hmrkit.io.images import check_detector_size

                        size = frame.shape[:2]
                        check_detector_size(self.path, *size)
                        K = intrinsics(self.config, None, *size)
                    t = time.perf_counter()
                    people = self.select(det.detect(frame) + self._rejected(det, n), n)
                    self.report.time("detect", time.perf_counter() - t)
                    t = time.perf_counter()
                    tracked = tracker.update(people, n)
                    self.report.time("track", time.perf_counter() - t)
                    nobody += not tracked
                    chunk.append((n, K, tracked, frame if self.config.overlay else None))
                    n += 1
                    if len(chunk) >= self.chunk:
                        flush()
                    if self.progress is not None:
                        self.progress(1)
                    t = time.perf_counter()
                flush()
                if n == 0:
                    raise InputError(self.path, "the video has no frames")
                self.report.warnings += [f"{self.path}: {w}" for w in reader.warnings]
                self.report.frames, self.report.frames_without_person = n, nobody
                # the npz first, then the overlay video: a failure leaves neither new file
                self.write(T=n, fps=fps, K_all=np.repeat(K[None], n, 0), image_size=[size] * n)
                if writer is not None:
                    writer.close()
                    self.report.outputs.append(str(overlay_path))
            except BaseException:
                if writer is not None:
                    writer.abort()  # no half-written overlay video; an older one stays
                raise
        if nobody:
            self.report.warnings.append(f"{self.path}: nobody found in {nobody} of {n} frame(s)")

    def run_keypoints(self):
        """A keypoint file or folder. OpenPose folders and evidence npz files are videos
        (tracked, windows per track); COCO files hold independent images (each its own K
        from its own size, people numbered by size in each)."""
        from hmrkit.detect import read_keypoint_file

        seq = read_keypoint_file(self.path)
        # the readers' warnings (e.g. no image size in the file) go to the report, one line each
        self.report.warnings += [w.splitlines()[0] for w in seq.warnings]
        frames_in = seq.frames[:self.config.max_frames] if self.config.max_frames else seq.frames
        T = len(frames_in)
        default = seq.image_size or (1080, 1920)
        sizes = [next((e.image_size for e in people), None) for people in frames_in]
        sizes = [tuple(int(v) for v in (sz or default)) for sz in sizes]
        if seq.cam_K is not None:
            Ks = np.asarray(seq.cam_K, dtype=np.float32)[:T]
        else:
            Ks = np.stack([intrinsics(self.config, None, *sz) for sz in sizes]).astype(np.float32)
        video = T > 1 and not seq.source.startswith("coco-json")
        if video:
            from hmrkit.track import Tracker

            tracker = Tracker()
        frames = []
        nobody = 0
        for t, people in enumerate(frames_in):
            people = self.select(list(people), t)
            tracked = tracker.update(people, t) if video else list(enumerate(people))
            nobody += not tracked
            frames.append((t, Ks[t], tracked))
            if len(frames) >= (self.chunk if video else 1):
                self.estimate(frames, video=video)
                frames = []
        if frames:
            self.estimate(frames, video=video)
        self.report.frames, self.report.frames_without_person = T, nobody
        self.write(T=T, fps=float(seq.fps or 0.0), K_all=Ks, image_size=sizes)

    # ---------------------------------------------------------------- writing
    def _vertices(self, params: list) -> np.ndarray:
        with torch.no_grad():
            return self.body(BodyParams.cat(params)).vertices.numpy()

    def _overlay_frames(self, writer, path, fps, frames, results):
        from hmrkit.io import VideoWriter
        from hmrkit.render import label_people, person_colors, render_overlay

        t = time.perf_counter()
        faces = self.body.faces.numpy()
        for frame, people in zip(frames, results):
            ok = [r for r in people if r.valid]
            img = frame
            if ok:
                colors = person_colors([r.track for r in ok])
                img = render_overlay(frame, self._vertices([r.params for r in ok]), faces, ok[0].K, colors=colors)
                img = label_people(img, [r.evidence.bbox for r in ok], [r.track for r in ok], colors)
            if writer is None:
                writer = VideoWriter(path, fps=fps or 10.0, size=img.shape[:2])
            writer.write(img)
        self.report.time("render", time.perf_counter() - t)
        return writer

    def _overlay_picture(self, image: np.ndarray, people: list):
        from PIL import Image

        from hmrkit.io import atomic_write
        from hmrkit.render import label_people, overlay_panel, person_colors

        ok = [r for r in people if r.valid]
        ev = [r.evidence for r in people]
        kp = np.stack([e.keypoints2d for e in ev]) if ev else None
        conv = ev[0].convention if ev else None
        if ok:
            colors = person_colors([r.track for r in ok])
            panel = overlay_panel(image, self._vertices([r.params for r in ok]), self.body.faces.numpy(), ok[0].K,
                                  keypoints2d=kp, convention=conv, colors=colors)
            W = image.shape[1]
            boxes = [np.asarray(r.evidence.bbox) + np.array([W, 0, W, 0]) for r in ok]
            panel = label_people(panel, boxes, [r.track for r in ok], colors)
        else:
            panel = image
        path = self.config.out_dir / f"{self.name}_overlay.png"
        with atomic_write(path, "wb") as f:
            Image.fromarray(panel).save(f, format="PNG")
        self.report.outputs.append(str(path))

    def write(self, T: int, fps: float, K_all: np.ndarray, image_size: list):
        """The npz of the output contract (docs/outputs.md) and meshes on request."""
        from hmrkit.conventions import COCO17
        from hmrkit.geometry.camera import project
        from hmrkit.io import save_mesh, save_npz_atomic

        t0 = time.perf_counter()
        out_dir = self.config.out_dir
        body = self.body
        tracks = sorted({r.track for r in self.results.values()})
        col = {tr: p for p, tr in enumerate(tracks)}
        P = len(tracks)
        V, J = body.num_vertices, len(body.joint_names)
        ev_conv = next((r.evidence.convention for r in self.results.values()), "")
        ev_k = next((len(r.evidence.keypoints2d) for r in self.results.values()), 0)
        tmp = tempfile.TemporaryDirectory(dir=out_dir, prefix=".tmp-")
        try:
            mm = lambda name, shape, dtype=np.float32: np.lib.format.open_memmap(  # noqa: E731
                os.path.join(tmp.name, name + ".npy"), mode="w+", dtype=dtype, shape=shape)
            vertices = mm("vertices", (T, P, V, 3))
            joints = mm("joints3d", (T, P, J, 3))
            kp3 = np.zeros((T, P, 17, 3), np.float32)
            kp2 = np.zeros((T, P, 17, 2), np.float32)
            valid = np.zeros((T, P), bool)
            present = np.zeros((T, P), bool)
            bbox = np.zeros((T, P, 4), np.float32)
            go = np.tile(np.eye(3, dtype=np.float32), (T, P, 1, 1))
            pose = np.tile(np.eye(3, dtype=np.float32), (T, P, body.num_pose_joints, 1, 1))
            shape = np.zeros((T, P, body.num_shape), np.float32)
            transl = np.zeros((T, P, 3), np.float32)
            model_transl = np.zeros((T, P, 3), np.float32)
            expr = np.zeros((T, P, body.num_expression), np.float32) if body.num_expression else None
            ev_kp = np.zeros((T, P, ev_k, 3), np.float32)
            px_err = np.full((T, P), np.nan, np.float32)
            cam_K = np.asarray(K_all, np.float32).reshape(T, 3, 3).copy()
            for r in self.results.values():
                i, p = r.frame, col[r.track]
                present[i, p] = True
                bbox[i, p] = r.evidence.bbox
                ev_kp[i, p] = np.nan_to_num(r.evidence.keypoints2d)
                cam_K[i] = r.K
            ok = sorted((r for r in self.results.values() if r.valid), key=lambda r: (r.frame, r.track))
            for s in range(0, len(ok), 32):
                rs = ok[s:s + 32]
                params = BodyParams.cat([r.params for r in rs])
                with torch.no_grad():
                    out = body(params)
                    c17 = body.keypoints(out, "coco17")
                uv = project(c17, torch.from_numpy(np.stack([cam_K[r.frame] for r in rs])).to(c17.dtype))
                for j, r in enumerate(rs):
                    i, p = r.frame, col[r.track]
                    valid[i, p] = True
                    vertices[i, p] = out.vertices[j].numpy()
                    joints[i, p] = out.joints[j].numpy()
                    kp3[i, p] = c17[j].numpy()
                    kp2[i, p] = uv[j].numpy()
                    go[i, p] = params.global_orient[j].numpy()
                    pose[i, p] = params.pose[j].numpy()
                    shape[i, p] = params.shape[j].numpy()
                    transl[i, p] = out.joints[j, 0].numpy()  # the root joint: the same meaning for every body
                    model_transl[i, p] = params.transl[j].numpy()
                    if expr is not None and params.expression is not None:
                        expr[i, p] = params.expression[j].numpy()
                    px_err[i, p] = r.px_error
            arrays = dict(
                body_model=np.array(body.name), method=np.array(self.models.method), valid=valid, present=present,
                track_id=np.array(tracks, np.int64), bbox=bbox,
                vertices=vertices, faces=body.faces.numpy().astype(np.int64), joints3d=joints,
                joint_names=np.array(body.joint_names), keypoints3d=kp3, keypoints3d_names=np.array(COCO17),
                keypoints2d=kp2, cam_K=cam_K, global_orient=go, body_pose=pose,
                pose_joint_names=np.array(body.pose_joint_names), shape=shape, transl=transl,
                model_transl=model_transl, frame_index=np.arange(T), fps=np.array(fps, np.float32),
                image_size=np.array(image_size, np.int64).reshape(T, 2),
                evidence_keypoints2d=ev_kp, evidence_convention=np.array(ev_conv), fit_px_error=px_err,
            )
            if expr is not None:
                arrays["expression"] = expr
            if getattr(body, "shape_names", None) is not None:
                arrays["shape_names"] = np.array(body.shape_names)
            npz = out_dir / f"{self.name}.npz"
            save_npz_atomic(npz, **arrays)
            self.report.outputs.append(str(npz))
            self.report.produced = True
            self.report.people = int(valid.any(0).sum())
            self.report.time("write", time.perf_counter() - t0)
            from hmrkit.io import ANIMATION_FORMATS, MESH_FORMATS

            meshes = [f for f in self.config.export if f in MESH_FORMATS]
            anims = [f for f in self.config.export if f in ANIMATION_FORMATS]
            if anims and T == 1:
                self.report.warnings.append(
                    f"{self.path}: a single frame has no animation: no {', '.join(anims)} written"
                    + ("" if meshes else "; wrote the static .glb meshes instead"))
                meshes = meshes or ["glb"]
                anims = []
            for r in ok:
                for fmt in meshes:
                    mesh = out_dir / f"{self.name}_f{r.frame:06d}_p{r.track}.{fmt}"
                    save_mesh(mesh, vertices[r.frame, col[r.track]], body.faces.numpy())
                    self.report.outputs.append(str(mesh))
            if anims:
                from hmrkit.io.animation import save_anim_glb, save_bvh, track_motions

                for motion in track_motions(body, arrays):
                    for fmt in anims:
                        if fmt == "bvh":
                            f = save_bvh(out_dir / f"{self.name}_p{motion.track_id}.bvh", motion)
                        else:
                            f = save_anim_glb(out_dir / f"{self.name}_p{motion.track_id}_anim.glb", motion, body)
                        self.report.outputs.append(str(f))
        finally:
            tmp.cleanup()  # memmaps may still be open: fine on POSIX, the data is in the npz


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def input_kind(path: Path, config: RunConfig) -> str:
    """``image``, ``video`` or ``keypoints`` (``--keypoints`` makes every input a keypoint
    input; a folder of OpenPose JSON is one)."""
    from hmrkit.io import classify

    if config.keypoints is not None or Path(path).is_dir():
        return "keypoints"
    return classify(path)


def process_input(path, config: RunConfig, models: Models, name: Optional[str] = None,
                  progress: Optional[Callable] = None) -> InputReport:
    """Run every stage on one input and write its files; never raises for a bad input:
    the report says what went wrong (``error``: one line naming the input)."""
    path = Path(path)
    report = InputReport(input=str(path), name=name or path.stem)
    try:
        report.kind = input_kind(path, config)
        job = _Job(path, config, models, report.name, report, progress)
        {"image": job.run_image, "video": job.run_video, "keypoints": job.run_keypoints}[report.kind]()
        job.report_skipped()
    except InputError as e:
        report.error = str(e)
    except OSError as e:  # disk full, permissions changed under us, ...
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        report.error = f"{path}: input/output error{where}: {e.strerror or _one_line(e)}"
    except Exception as e:  # a bug: name it in one line, carry on with the other inputs
        report.error = (f"{path}: {type(e).__name__}: {_one_line(e)} (a bug in hmrkit; "
                        f"`hmrkit run --debug` shows the traceback)")
        report.traceback = traceback.format_exc()
    if report.error is not None:
        report.produced = False
    return report


# ---------------------------------------------------------------------------- many inputs


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


def _is_openpose(path: Path) -> bool:
    """Whether a JSON file is an OpenPose frame ({"people": [...]}), by its first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.lstrip()[:1] == b"{" and b'"people"' in head


def expand(inputs: list, config: RunConfig, failed: list) -> list[Path]:
    """The inputs to process, one unit of work each. Folders are expanded into their files;
    with ``--keypoints``, a folder holding OpenPose JSON files is one input (a video) and
    each .npz / COCO .json file in a folder is one input of its own."""
    from hmrkit.io import expand_inputs

    paths: list = []
    for item in inputs:
        item = Path(item)
        if config.keypoints is not None and item.is_dir():
            files = sorted(p for p in item.iterdir() if p.is_file() and not p.name.startswith("."))
            jsons = [p for p in files if p.suffix.lower() == ".json"]
            openpose = [p for p in jsons if _is_openpose(p)]
            if openpose and len(openpose) == len(jsons):  # a folder of OpenPose frames: one video
                paths.append(item)
                jsons = []
            paths += [p for p in files if p.suffix.lower() == ".npz" or p in jsons]
            if not openpose and not any(p.suffix.lower() in (".npz", ".json") for p in files):
                failed.append({"input": str(item),
                               "error": f"{item}: no keypoint files here (.json COCO/OpenPose, .npz evidence)"})
            continue
        skipped: list = []
        try:
            paths += expand_inputs([item], skipped=skipped)
        except InputError as e:
            failed.append({"input": str(item), "error": str(e)})
        failed += [{"input": str(p), "error": f"{p}: {why}"} for p, why in skipped]
    return paths


def check_config(config: RunConfig) -> None:
    """One-line InputErrors for settings that cannot be right (before anything loads)."""
    import math

    if config.focal is not None and not (math.isfinite(config.focal) and config.focal > 0):
        raise InputError(None, f"--focal must be a positive number of pixels, got {config.focal:g}")
    if config.fov is not None and not (math.isfinite(config.fov) and 0 < config.fov < 180):
        raise InputError(None, f"--fov must be between 0 and 180 degrees (exclusive), got {config.fov:g}")
    if config.max_people is not None and config.max_people < 1:
        raise InputError(None, f"--max-people must be at least 1, got {config.max_people}")
    if config.max_frames is not None and config.max_frames < 1:
        raise InputError(None, f"--max-frames must be at least 1, got {config.max_frames}")
    resolve_device(config.device)


@dataclass(frozen=True)
class _NamedBody:
    """A body model's name alone: enough for ``default_method`` without loading it."""

    name: str


def run(inputs: Iterable, config: RunConfig, progress_factory=None) -> Summary:
    """Run on every input; bad inputs are reported in the summary and skipped.

    An input is *produced* when its ``NAME.npz`` was written, including an image or video
    in which nobody was found (``valid`` all False; the summary warns). ``summary.json`` is
    written whenever the output folder is writable. Raises InputError (one line) only when
    nothing could be produced: the input's own error when there was one input, else a
    count; the error then carries the ``summary`` (its ``failed`` list names every file)."""
    from hmrkit.io import save_json_atomic

    out_dir = Path(config.out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out_dir, prefix=".probe-", delete=True)
        probe.close()
    except OSError as e:
        raise InputError(out_dir, f"cannot write to the output folder ({e.strerror or e})") from None
    config = replace(config, out_dir=out_dir)
    check_config(config)
    inputs = list(inputs)
    if config.keypoints is not None:  # the keypoint file or folder is an input like the others
        inputs = [config.keypoints] + [i for i in inputs if Path(i) != Path(config.keypoints)]
    if not inputs:
        raise InputError(None, "no input given; pass an image, a video, a keypoint file or a folder")
    s = Summary()
    paths = expand(inputs, config, s.failed)
    names = _output_names(paths)
    for p, name in zip(paths, names):
        if name != Path(p).stem:
            s.warnings.append(f"{p}: another input has the same name; its results are named {name}.*")
    method = config.method
    t_all = time.perf_counter()
    jobs = list(zip(paths, names))
    if config.resume:
        from hmrkit.distributed import completed

        todo = []
        for p, name in jobs:
            done = completed(out_dir, p, name, config)
            if done is None:
                todo.append((p, name))
            else:
                s.add(done)
                s.resumed.append(str(p))
        jobs = todo
    if jobs and config.ray:
        from hmrkit.distributed import mark_done, run_on_ray
        from hmrkit.estimate import default_method

        method = config.method or default_method(_NamedBody(config.body))
        bar = progress_factory(None, total=len(jobs)) if progress_factory is not None else None
        t_all = time.perf_counter()

        def on_report(report):
            if report.traceback is not None:
                log.info("%s", report.traceback)
            if bar is not None:
                bar.update(1)

        try:
            for (p, name), report in zip(jobs, run_on_ray(jobs, config, config.ray_address, config.workers, on_report)):
                mark_done(out_dir, p, name, config, report)
                s.add(report)
        finally:
            if bar is not None:
                bar.close()
    elif jobs:  # load the models only when there is something to do
        from hmrkit.distributed import mark_done

        models = Models(config)
        method = models.method
        t_all = time.perf_counter()  # "total" is the processing time, without loading the models
        iterator = jobs
        if progress_factory is not None:
            iterator = progress_factory(iterator)
        try:
            for p, name in iterator:
                report = process_input(p, config, models, name)
                if report.traceback is not None:
                    log.info("%s", report.traceback)
                mark_done(out_dir, p, name, config, report)
                s.add(report)
        finally:
            models.close()
    s.timings["total"] = time.perf_counter() - t_all
    save_json_atomic(out_dir / "summary.json", {
        "inputs": s.inputs, "failed": s.failed, "frames": s.frames,
        "frames_without_person": s.frames_without_person, "people": s.people,
        "timings_s": {k: round(v, 3) for k, v in s.timings.items()},
        "warnings": s.warnings, "body_model": config.body, "method": method, "resumed": s.resumed,
        "per_input": [{"input": r.input, "name": r.name, "kind": r.kind, "produced": r.produced,
                       "frames": r.frames, "people": r.people, "error": r.error} for r in s.reports],
    })
    if not s.inputs:
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
    s.method = method
    return s

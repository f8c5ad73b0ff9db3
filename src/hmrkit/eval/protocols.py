"""Evaluation protocols: the fixed-seed synthetic test sets every method is evaluated on,
and SPIN's preprocessed 3DPW / Human3.6M files with the user's images. See docs/eval.md.

A data spec names one set (``parse_data_spec``):

  synthetic:frames[,n=48,seed=2024,noise=realistic,world3d=0,batch=8]
      single frames, keypoint evidence: the body model's mediapipe33 keypoints projected
      to 2D, ``noise=clean|realistic`` (``NoiseConfig.realistic()``, calibrated against
      MediaPipe); ``world3d=`` the std in metres of simulated root-relative 3D landmarks
      (0 = none), standing in for MediaPipe's world landmarks.
  synthetic:rendered[,n=32,seed=2024,size=512,batch=8,backgrounds=DIR]
      single frames rendered (``hmrkit.data.render_synthetic.generate``: skin tones,
      clothing, lights; procedural backgrounds, or crops of the images in DIR), on which
      the real detector runs (MediaPipe Holistic, static image mode): holistic keypoints,
      its world landmarks as 3D evidence, K from the scene.
  synthetic:sequences[,n=4,frames=32,seed=2024,noise=realistic,world3d=0,batch=8]
      ``n`` clips of ``frames`` consecutive frames (30 fps) from the shipped retargeted CMU
      sequences (``hmrkit.data.sequences``) seen by a slowly moving camera; evidence as
      for ``frames`` (noise drawn independently per frame); the estimator gets chunks of
      ``batch`` consecutive frames with ``smooth=True``, each chunk started from the
      previous chunk's last valid estimate (as ``hmrkit run`` on a video).
  3dpw:NPZ,root=DIR[,n=,step=1,regressor=NPY,batch=8]
  h36m:NPZ,root=DIR[,n=,step=1,regressor=NPY,batch=8]
      SPIN's preprocessed test files (``hmrkit.eval.datasets``); DIR is the folder the
      npz's ``imgname`` paths are relative to (3DPW: the one holding ``imageFiles/``).
      Rows ``0, step, 2 step, ...``, the first ``n`` of them (default all). The detector
      runs on a crop around each row's person box (``center``, ``scale``); a detection
      that does not lie on that box counts as nobody found. K: the npz's ``cam_K`` /
      ``cam_int`` when it has one, else ``default_intrinsics`` of the image. 3DPW ground
      truth comes from the user's gendered SMPL files; ``regressor=`` SPIN's
      ``J_regressor_h36m.npy`` for the literature's J14 joints (see ``Metrics`` below).

All synthetic sets are fixed by their seed: the same spec gives the same ground truth and
evidence on every machine (``rendered`` up to the detector, whose landmarks vary by a
fraction of a pixel between runs).

Metrics (millimetres), per frame; frames without a valid estimate (nobody detected, or
the estimator reported the frame as not valid) are left out of every metric and counted
in ``valid`` (the fraction of frames with one):

- synthetic sets (ground truth in the predicting body model): MPJPE on coco17 rooted at
  the hip midpoint, PA-MPJPE on coco17, PVE rooted at the same hip midpoint; sequences
  also the acceleration error (mm/frame^2, coco17, per 3-frame window, windows touching
  a frame without a valid estimate dropped).
- 3dpw / h36m: MPJPE and PA-MPJPE on J14 rooted at the H36M pelvis, as SPIN's
  evaluation. Joints come from SPIN's H36M regressor where both the prediction and the
  ground truth can use it (SMPL-topology meshes; Human3.6M's ground truth is its mocap
  joints); otherwise from each body model's own coco17 keypoints, converted by name to
  h36m17 (pelvis = hip midpoint, thorax = shoulder midpoint), which leaves 13 of the 14
  J14 joints (no head top): the ``joints`` note says which. PVE (pelvis-rooted) only
  when the prediction is a SMPL mesh, as the 3DPW ground truth.
- ``2D px``: the estimator's own reprojection error (``Prediction.info['mean_px_error']``,
  NaN when it reports none); ``s/frame``: seconds per frame in the estimator.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from hmrkit.errors import InputError

SYNTHETIC_KINDS = ("frames", "rendered", "sequences")
DATASET_KINDS = ("3dpw", "h36m")

# Per kind: the keys a spec may set, and the defaults of those that depend on the kind.
_KEYS = {
    "frames": ("n", "seed", "noise", "world3d", "batch"),
    "rendered": ("n", "seed", "size", "batch", "backgrounds"),
    "sequences": ("n", "frames", "seed", "noise", "world3d", "batch"),
}
_DEFAULTS = {
    "frames": {"n": 48, "batch": 8},
    "rendered": {"n": 32, "batch": 8},
    "sequences": {"n": 4, "frames": 32, "batch": 8},
}
_TYPES = {"n": int, "seed": int, "noise": str, "world3d": float, "batch": int, "size": int, "frames": int,
          "backgrounds": str, "root": str, "step": int, "regressor": str}

SPEC_HELP = ("synthetic:frames|rendered|sequences[,key=value...], 3dpw:NPZ,root=DIR or h36m:NPZ,root=DIR "
             "(see docs/eval.md)")


def _key_values(text: str, parts: list, allowed: tuple) -> dict:
    """['k=v', ...] -> {k: typed v}; InputError for a malformed or unknown key."""
    out = {}
    for p in parts:
        if "=" not in p:
            raise InputError(None, f"{text!r}: expected key=value, got {p!r}")
        k, v = p.split("=", 1)
        if k not in allowed:
            raise InputError(None, f"{text!r}: unknown key {k!r}; choose from {sorted(allowed)}")
        try:
            out[k] = _TYPES[k](v)
        except ValueError:
            raise InputError(None, f"{text!r}: {k}={v!r} is not a {_TYPES[k].__name__}") from None
    return out


@dataclass(frozen=True)
class SyntheticSpec:
    """A fixed-seed synthetic test set (module docstring).

    kind: frames | rendered | sequences; n: samples (frames, rendered) or clips
    (sequences); seed; noise: clean | realistic (frames, sequences); world3d: std in
    metres of simulated 3D landmarks, 0 for none (frames, sequences); batch: frames per
    estimator call (sequences: the chunk of consecutive frames); size: image side in px
    (rendered); frames: frames per clip (sequences); backgrounds: a folder of photos to
    crop backgrounds from, or None for procedural ones (rendered). None fields take the
    kind's default."""

    kind: str = "frames"
    n: Optional[int] = None
    seed: int = 2024
    noise: str = "realistic"
    world3d: float = 0.0
    batch: Optional[int] = None
    size: int = 512
    frames: Optional[int] = None
    backgrounds: Optional[str] = None

    def __post_init__(self):
        if self.kind not in SYNTHETIC_KINDS:
            raise InputError(None, f"unknown synthetic set {self.kind!r}; choose from {list(SYNTHETIC_KINDS)}")
        for k, v in _DEFAULTS[self.kind].items():
            if getattr(self, k) is None:
                object.__setattr__(self, k, v)

    @staticmethod
    def parse(text: str) -> "SyntheticSpec":
        """'synthetic:frames,n=16,noise=clean' -> SyntheticSpec; InputError (one line) for
        an unknown kind or key, a malformed value or one out of range."""
        if not text.startswith("synthetic:"):
            raise InputError(None, f"unknown data spec {text!r}; expected {SPEC_HELP}")
        parts = [p for p in text.split(":", 1)[1].split(",") if p]
        if not parts:
            raise InputError(None, f"{text!r}: name a kind, e.g. synthetic:frames")
        kind = parts[0]
        if kind not in SYNTHETIC_KINDS:
            raise InputError(None, f"{text!r}: unknown synthetic set {kind!r}; choose from {list(SYNTHETIC_KINDS)}")
        spec = SyntheticSpec(kind=kind, **_key_values(text, parts[1:], _KEYS[kind]))
        if spec.noise not in ("clean", "realistic"):
            raise InputError(None, f"{text!r}: noise must be clean or realistic")
        for k, low in (("n", 1), ("batch", 1), ("size", 64), ("frames", 3)):
            if k in _KEYS[kind] and getattr(spec, k) < low:
                raise InputError(None, f"{text!r}: {k} must be at least {low}")
        if spec.world3d < 0:
            raise InputError(None, f"{text!r}: world3d must be >= 0 (metres)")
        if spec.backgrounds is not None and not Path(spec.backgrounds).expanduser().is_dir():
            raise InputError(spec.backgrounds, "background folder not found; pass a folder of jpg/png images")
        return spec

    @property
    def name(self) -> str:
        """The spec written out with its seed and the keys that matter for its kind."""
        if self.kind == "rendered":
            s = f"synthetic:rendered,n={self.n},seed={self.seed},size={self.size}"
            return s + (f",backgrounds={self.backgrounds}" if self.backgrounds else "")
        head = f"synthetic:{self.kind},n={self.n}"
        if self.kind == "sequences":
            head += f",frames={self.frames}"
        s = f"{head},seed={self.seed},noise={self.noise}"
        return s + (f",world3d={self.world3d}" if self.world3d else "")


@dataclass(frozen=True)
class DatasetSpec:
    """SPIN's preprocessed 3DPW test or Human3.6M validation file with its images.

    kind: 3dpw | h36m; path: the npz; root: the folder its ``imgname`` paths are relative
    to; n: at most this many rows (None: all); step: every step-th row; regressor: SPIN's
    ``J_regressor_h36m.npy`` or None; batch: frames per estimator call."""

    kind: str
    path: str
    root: str
    n: Optional[int] = None
    step: int = 1
    regressor: Optional[str] = None
    batch: int = 8

    @staticmethod
    def parse(text: str) -> "DatasetSpec":
        """'3dpw:PATH,root=DIR[,n=..,step=..,regressor=..,batch=..]' -> DatasetSpec;
        InputError (one line) without root, with a root that is not a folder, or for an
        unknown key. The npz itself is read later (``read_dataset``)."""
        kind, _, rest = text.partition(":")
        if kind not in DATASET_KINDS:
            raise InputError(None, f"unknown data spec {text!r}; expected {SPEC_HELP}")
        parts = rest.split(",")
        path = parts[0]
        if not path:
            raise InputError(None, f"{text!r}: name the npz file, e.g. {kind}:{_EXAMPLE[kind]},root=DIR")
        kv = _key_values(text, [p for p in parts[1:] if p], ("root", "n", "step", "regressor", "batch"))
        if "root" not in kv:
            raise InputError(None, f"{text!r}: add root=DIR, the folder that {_ROOT_HINT[kind]}")
        root = Path(kv["root"]).expanduser()
        if not root.is_dir():
            raise InputError(root, f"root folder not found; it must be the folder that {_ROOT_HINT[kind]}")
        spec = DatasetSpec(kind=kind, path=path, **kv)
        for k in ("n", "step", "batch"):
            v = getattr(spec, k)
            if v is not None and v < 1:
                raise InputError(None, f"{text!r}: {k} must be at least 1")
        return spec

    @property
    def name(self) -> str:
        s = f"{self.kind}:{Path(self.path).name}"
        if self.step != 1:
            s += f",step={self.step}"
        if self.n is not None:
            s += f",n={self.n}"
        return s


_EXAMPLE = {"3dpw": "3dpw_test.npz", "h36m": "h36m_valid_protocol2.npz"}
_ROOT_HINT = {"3dpw": "holds 3DPW's imageFiles/ (the npz's imgname paths are relative to it)",
              "h36m": "the npz's imgname paths (images/S9_...jpg) are relative to"}


def parse_data_spec(text: str):
    """A data spec (module docstring) -> SyntheticSpec or DatasetSpec; InputError (one
    line) for an unknown kind, a missing root or a malformed key."""
    kind = text.split(":", 1)[0] if ":" in text else None
    if kind == "synthetic":
        return SyntheticSpec.parse(text)
    if kind in DATASET_KINDS:
        return DatasetSpec.parse(text)
    raise InputError(None, f"unknown data spec {text!r}; expected {SPEC_HELP}")


# ----------------------------------------------------------------------------------------
# Running an estimator on a set


@dataclass(frozen=True)
class EvalInputs:
    """What an estimator sees for N frames.

    keypoints2d: (N, K, 3) x, y px and confidence, in ``convention``.
    K:           (N, 3, 3) intrinsics, px.
    keypoints3d: (N, K, 4) root-relative metric 3D keypoints (camera axes) + confidence,
                 or None.
    found:       (N,) bool: evidence exists (a person was detected); the others are not
                 given to the estimator.
    clips:       ((start, stop), ...) runs of consecutive video frames, or () when the
                 frames are independent."""

    keypoints2d: Tensor
    convention: str
    K: Tensor
    keypoints3d: Optional[Tensor]
    found: Tensor
    clips: tuple = ()

    def __len__(self) -> int:
        return int(self.keypoints2d.shape[0])


@dataclass(frozen=True)
class Estimates:
    """An estimator's output on N frames (frames it was not run on hold zeros).

    vertices (N, V, 3), joints (N, J, 3): metres, camera frame, the estimator's body model;
    valid (N,) bool: a valid estimate exists; px (N,) its reprojection error or NaN;
    seconds: time spent in the estimator, in total."""

    vertices: Tensor
    joints: Tensor
    faces: Tensor
    valid: Tensor
    px: Tensor
    seconds: float

    def output(self):
        from hmrkit.types import BodyOutput

        return BodyOutput(self.vertices, self.joints, self.faces)


def run_estimator(estimator, body, inputs: EvalInputs, batch: int, progress: Optional[Callable] = None) -> Estimates:
    """Run ``estimator`` (``.fit(kp2d, convention, K, init=None, kp3d=None, smooth=False)
    -> Prediction``, any method of ``hmrkit.estimators``) on ``inputs``.

    Independent frames: the found ones, ``batch`` at a time. Clips: chunks of ``batch``
    consecutive frames, the found ones of a chunk given together with ``smooth`` True when
    they are consecutive, each chunk started from the last valid estimate of the previous
    one (``init``), as ``hmrkit run`` does on a video. progress(k) after each call."""
    from hmrkit.types import BodyParams

    N = len(inputs)
    found = inputs.found.bool()
    valid = torch.zeros(N, dtype=torch.bool)
    px = torch.full((N,), math.nan, dtype=torch.float64)
    store = {}
    seconds = 0.0
    video = bool(inputs.clips)
    if video:
        chunks = [(list(range(s, min(s + batch, b))), ci) for ci, (a, b) in enumerate(inputs.clips)
                  for s in range(a, b, batch)]
    else:
        idx = torch.nonzero(found)[:, 0].tolist()
        chunks = [(idx[s:s + batch], None) for s in range(0, len(idx), batch)]
    prev, prev_clip = None, None
    for frames, clip in chunks:
        if clip != prev_clip:
            prev, prev_clip = None, clip
        sel = [i for i in frames if bool(found[i])]
        if not sel:
            continue
        contiguous = video and sel == list(range(sel[0], sel[0] + len(sel)))
        init = BodyParams.cat([prev] * len(sel)) if video and prev is not None else None
        k3 = None if inputs.keypoints3d is None else inputs.keypoints3d[sel]
        t0 = time.perf_counter()
        pred = estimator.fit(inputs.keypoints2d[sel], inputs.convention, inputs.K[sel], init=init, kp3d=k3,
                             smooth=contiguous)
        seconds += time.perf_counter() - t0
        out = pred.output
        if out is None:
            with torch.no_grad():
                out = body(pred.params)
        if not store:
            store["v"] = torch.zeros((N,) + tuple(out.vertices.shape[1:]), dtype=out.vertices.dtype)
            store["j"] = torch.zeros((N,) + tuple(out.joints.shape[1:]), dtype=out.joints.dtype)
            store["f"] = out.faces
        ii = torch.as_tensor(sel)
        store["v"][ii] = out.vertices.detach().cpu().to(store["v"].dtype)
        store["j"][ii] = out.joints.detach().cpu().to(store["j"].dtype)
        ok = torch.as_tensor(pred.valid).bool().cpu().reshape(-1)
        valid[ii] = ok
        err = pred.info.get("mean_px_error") if isinstance(pred.info, dict) else None
        if err is not None:
            px[ii] = torch.as_tensor(err, dtype=torch.float64).reshape(-1).cpu()
        for j in range(len(sel) - 1, -1, -1):
            if bool(ok[j]):
                prev = pred.params[j].detach()
                break
        if progress is not None:
            progress(len(sel))
    if not store:  # nobody found anywhere: empty estimates of the body's shape
        with torch.no_grad():
            rest = body(body.mean_params(1))
        store = {"v": rest.vertices.new_zeros((N,) + tuple(rest.vertices.shape[1:])),
                 "j": rest.joints.new_zeros((N,) + tuple(rest.joints.shape[1:])), "f": rest.faces}
    return Estimates(store["v"], store["j"], store["f"], valid, px, seconds)


def _nan_where(values: Tensor, keep: Tensor) -> Tensor:
    values = values.detach().cpu().to(torch.float64)
    return torch.where(keep, values, torch.full_like(values, math.nan))


@dataclass(frozen=True)
class EvalResult:
    """The metrics of one set.

    name: the spec written out; metrics: {name: per-frame (or per-window) values, NaN for
    those not counted} (pool with ``metrics.summarize``); notes: {key: str}, e.g. the
    joint set; frames: how many frames the set has."""

    name: str
    metrics: dict
    notes: dict = field(default_factory=dict)
    frames: int = 0


# ----------------------------------------------------------------------------------------
# Synthetic sets


@dataclass(frozen=True)
class SyntheticSet:
    """A built synthetic set: ground truth and the estimator's inputs.

    params: BodyParams (N, ...) ground truth, camera frame; inputs: EvalInputs;
    image_size: (H, W); notes: {key: str} (e.g. how many images had nobody detected)."""

    spec: SyntheticSpec
    params: object
    inputs: EvalInputs
    image_size: tuple
    notes: dict = field(default_factory=dict)


def _world_landmarks(body, out, sigma: float, seed: int) -> Tensor:
    """(B, 33, 4): mediapipe33 keypoints relative to the hip midpoint with Gaussian noise of
    ``sigma`` metres per axis, confidence 1 (simulated MediaPipe world landmarks)."""
    X = body.keypoints(out, "mediapipe33")
    g = torch.Generator().manual_seed(int(seed))
    rel = X - 0.5 * (X[:, 23:24] + X[:, 24:25]) + sigma * torch.randn(X.shape, generator=g, dtype=X.dtype)
    return torch.cat([rel, torch.ones(*X.shape[:2], 1, dtype=X.dtype)], -1)


def _noise(spec: SyntheticSpec):
    from hmrkit.data.synthetic import NoiseConfig

    return NoiseConfig.clean() if spec.noise == "clean" else NoiseConfig.realistic()


# The frames set's scenes: SceneConfig's defaults (720 px, 2.5-6 m, 40-70 degree field of
# view) with headings within +-60 degrees of facing the camera.
FRAMES_YAW_DEG = 60.0


def _build_frames(body, spec: SyntheticSpec) -> SyntheticSet:
    from hmrkit.data.synthetic import SceneConfig, keypoints2d, sample_scenes

    scenes = sample_scenes(body, spec.n, seed=spec.seed, config=SceneConfig(yaw_deg=FRAMES_YAW_DEG))
    kp = keypoints2d(body, scenes, "mediapipe33", _noise(spec), seed=spec.seed + 1)
    k3 = None
    if spec.world3d > 0:
        with torch.no_grad():
            k3 = _world_landmarks(body, body(scenes.params), spec.world3d, spec.seed + 2)
    inputs = EvalInputs(kp, "mediapipe33", scenes.K, k3, torch.ones(spec.n, dtype=torch.bool))
    return SyntheticSet(spec, scenes.params, inputs, scenes.image_size)


def rendered_scene(size: int):
    """The rendered set's scenes: ``size`` px square images, cameras 2.2-5.5 m away with a
    40-60 degree field of view (as the noise calibration's renders), headings within
    +-60 degrees of facing the camera (as the frames set)."""
    from hmrkit.data.synthetic import SceneConfig

    return SceneConfig(image_size=(size, size), fov_deg=(40.0, 60.0), distance=(2.2, 5.5), yaw_deg=FRAMES_YAW_DEG)


def _build_rendered(body, spec: SyntheticSpec, detector=None) -> SyntheticSet:
    from hmrkit.data.render_synthetic import RenderConfig, generate
    from hmrkit.types import BodyParams

    own = detector is None
    if own:
        detector = default_detector()
    render = RenderConfig(background_dir=spec.backgrounds) if spec.backgrounds else RenderConfig()
    evidence, Ks, params = [], [], []
    missed = 0
    try:
        for s in generate(body, spec.n, seed=spec.seed, rendered=True, scene=rendered_scene(spec.size),
                          render=render, conventions=("coco17",)):
            gt = s.keypoints2d["coco17"].numpy()
            box = _keypoint_box(gt)
            ev = match_detection(detector.detect(s.rgb), box) if box is not None else None
            params.append(s.params)
            Ks.append(s.K)
            missed += ev is None
            evidence.append(ev)
    finally:
        if own:
            detector.close()
    inputs = _inputs_from_evidence(evidence, torch.stack(Ks))
    notes = {"nobody detected": f"{missed} of {spec.n}"}
    return SyntheticSet(spec, BodyParams.cat(params), inputs, (spec.size, spec.size), notes)


def _build_sequences(body, spec: SyntheticSpec) -> SyntheticSet:
    from hmrkit.data.render_synthetic import keypoints_from_output
    from hmrkit.data.sequences import SequenceCameraConfig, load_sequences, sample_sequence
    from hmrkit.types import BodyParams

    try:
        lib = load_sequences(body.name)
    except FileNotFoundError:
        raise InputError(None, f"synthetic:sequences: no shipped sequence library for the {body.name} body "
                               "model; evaluate on it with --body anny") from None
    if spec.frames > lib.num_frames:
        raise InputError(None, f"{spec.name}: frames must be at most {lib.num_frames} (the clips' length)")
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0x5E9]))
    order = rng.permutation(len(lib))
    config = SequenceCameraConfig()
    noise = _noise(spec)
    params, K, kp, k3, clips = [], [], [], [], []
    for c in range(spec.n):
        cseed = int(np.random.SeedSequence([spec.seed, c]).generate_state(1)[0])
        seq = sample_sequence(body, int(order[c % len(order)]), seed=cseed, config=config, conventions=(),
                              library=lib)
        start = int(rng.integers(0, lib.num_frames - spec.frames + 1))
        p = seq.params[start:start + spec.frames]
        with torch.no_grad():
            out = body(p)
        Kc = seq.K[start:start + spec.frames]
        kp.append(keypoints_from_output(body, out, Kc, seq.image_size, "mediapipe33", noise, cseed + 1))
        if spec.world3d > 0:
            k3.append(_world_landmarks(body, out, spec.world3d, cseed + 2))
        a = sum(x.batch_size for x in params)
        clips.append((a, a + spec.frames))
        params.append(p)
        K.append(Kc)
    n = spec.n * spec.frames
    inputs = EvalInputs(torch.cat(kp), "mediapipe33", torch.cat(K), torch.cat(k3) if k3 else None,
                        torch.ones(n, dtype=torch.bool), tuple(clips))
    return SyntheticSet(spec, BodyParams.cat(params), inputs, config.image_size,
                        {"clips": f"{spec.n} x {spec.frames} frames at {lib.fps:g} fps"})


def build_synthetic(body, spec: SyntheticSpec, detector=None) -> SyntheticSet:
    """The set of ``spec`` for ``body``: ground truth and the estimator's inputs.
    detector: for ``rendered`` (None: MediaPipe Holistic in static image mode)."""
    try:
        if spec.kind == "frames":
            return _build_frames(body, spec)
        if spec.kind == "rendered":
            return _build_rendered(body, spec, detector)
        return _build_sequences(body, spec)
    except FileNotFoundError as e:  # no shipped pose library for this body model
        raise InputError(None, f"{spec.name}: {str(e).splitlines()[0]}; the synthetic sets ship for "
                               "--body anny") from None


def evaluate_synthetic(estimator, body, spec: SyntheticSpec, progress=None, detector=None,
                       data: Optional[SyntheticSet] = None) -> EvalResult:
    """Build the set of ``spec`` (``build_synthetic``; or take ``data`` built before, to
    compare several estimators on one set), run ``estimator`` on it and compare with the
    ground truth in ``body`` (module docstring: Metrics)."""
    from hmrkit.eval.metrics import accel_error_per_window, mpjpe, pa_mpjpe, pelvis_indices, pve, root_of

    data = build_synthetic(body, spec, detector) if data is None else data
    est = run_estimator(estimator, body, data.inputs, spec.batch, progress)
    with torch.no_grad():
        gt = body(data.params)
    out = est.output()
    pk, gk = body.keypoints(out, "coco17"), body.keypoints(gt, "coco17").to(out.vertices.dtype)
    root = pelvis_indices("coco17")
    ok = est.valid
    metrics = {
        "MPJPE": _nan_where(mpjpe(pk, gk, root), ok),
        "PA-MPJPE": _nan_where(pa_mpjpe(pk, gk), ok),
        "PVE": _nan_where(pve(out.vertices, gt.vertices.to(out.vertices.dtype), root_of(pk, root),
                              root_of(gk, root)), ok),
    }
    if data.inputs.clips:
        windows = []
        for a, b in data.inputs.clips:
            e, _ = accel_error_per_window(pk[a:b], gk[a:b], root, valid=ok[a:b])
            windows.append(e.detach().to(torch.float64))
        metrics["accel"] = torch.cat(windows)
    metrics["2D px"] = _nan_where(est.px, ok)
    metrics["valid"] = ok.to(torch.float64)
    metrics["s/frame"] = torch.tensor([est.seconds / max(1, int(data.inputs.found.sum()))], dtype=torch.float64)
    notes = {"joints": "coco17", **data.notes}
    return EvalResult(spec.name, metrics, notes, len(data.inputs))


def evaluate_synthetic_frames(estimator, body, spec: SyntheticSpec, progress=None) -> dict:
    """{metric: per-sample values} of ``evaluate_synthetic`` (kept for older callers)."""
    return evaluate_synthetic(estimator, body, spec, progress).metrics


# ----------------------------------------------------------------------------------------
# Detection


def default_detector():
    """MediaPipe Holistic in static image mode (the pipeline's image detector)."""
    from hmrkit.detect import MediaPipeHolistic, MediaPipeHolisticConfig

    return MediaPipeHolistic(MediaPipeHolisticConfig(static_image_mode=True))


def _keypoint_box(kp: np.ndarray) -> Optional[np.ndarray]:
    """(K, 3) px + confidence -> (4,) xyxy box of the confident keypoints, or None."""
    sel = kp[:, 2] > 0
    if not sel.any():
        return None
    xy = kp[sel, :2]
    return np.concatenate([xy.min(0), xy.max(0)]).astype(np.float64)


def match_detection(evidence: list, box_xyxy, min_share: float = 0.5, grow: float = 0.1):
    """The detection (an Evidence of ``evidence``) of the person in ``box_xyxy`` (px), or
    None: the one with the largest share of its confident keypoints (confidence >= 0.5,
    or > 0 if none is) inside the box grown by ``grow`` of its size on each side, when that
    share is at least ``min_share``. Works for single- and multi-person detectors; a
    detection of someone (or something) else has its keypoints outside the box."""
    b = np.asarray(box_xyxy, np.float64)
    w, h = b[2] - b[0], b[3] - b[1]
    lo = b[:2] - grow * np.array([w, h])
    hi = b[2:] + grow * np.array([w, h])
    best, best_share = None, -1.0
    for ev in evidence:
        kp = np.asarray(ev.keypoints2d, np.float64)
        sel = kp[:, 2] >= 0.5
        if not sel.any():
            sel = kp[:, 2] > 0
        if not sel.any():
            continue
        xy = kp[sel, :2]
        share = float(((xy >= lo) & (xy <= hi)).all(1).mean())
        if share >= min_share and share > best_share:
            best, best_share = ev, share
    return best


def detect_in_box(detector, image: np.ndarray, box_xyxy, pad: float = 0.2):
    """Run ``detector`` on a crop of ``image`` around ``box_xyxy`` (grown by ``pad`` of its
    size on each side, clipped to the image) and return the detection matching the box
    (``match_detection``) with its keypoints, box and mask in full-image pixels, or None.
    Cropping keeps a single-person detector on the person the box names."""
    from hmrkit.types import Evidence

    H, W = image.shape[:2]
    b = np.asarray(box_xyxy, np.float64)
    w, h = b[2] - b[0], b[3] - b[1]
    x0, y0 = int(max(0, math.floor(b[0] - pad * w))), int(max(0, math.floor(b[1] - pad * h)))
    x1, y1 = int(min(W, math.ceil(b[2] + pad * w))), int(min(H, math.ceil(b[3] + pad * h)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    found = []
    for ev in detector.detect(np.ascontiguousarray(image[y0:y1, x0:x1])):
        kp = np.array(ev.keypoints2d, dtype=np.float32, copy=True)
        kp[:, 0] += x0
        kp[:, 1] += y0
        kp[kp[:, 2] <= 0, :2] = 0.0  # missing points stay at the origin
        mask = None
        if ev.mask is not None:
            mask = np.zeros((H, W), np.float32)
            mask[y0:y1, x0:x1] = ev.mask
        bbox = np.asarray(ev.bbox, np.float32) + np.array([x0, y0, x0, y0], np.float32)
        found.append(Evidence(image_size=(H, W), keypoints2d=kp, convention=ev.convention, bbox=bbox,
                              keypoints3d=ev.keypoints3d, mask=mask, source=ev.source))
    return match_detection(found, b)


def _inputs_from_evidence(evidence: list, K: Tensor) -> EvalInputs:
    """EvalInputs of per-frame Evidence (None: nobody found) and (N, 3, 3) K. 3D keypoints
    are passed when every found frame has them (as ``hmrkit run``)."""
    N = len(evidence)
    got = [e for e in evidence if e is not None]
    conv = got[0].convention if got else "holistic"
    from hmrkit import conventions as C

    nk = got[0].keypoints2d.shape[0] if got else len(C.get(conv))
    kp = torch.zeros(N, nk, 3, dtype=torch.float32)
    use3d = bool(got) and all(e.keypoints3d is not None for e in got)
    k3 = torch.zeros(N, nk, 4, dtype=torch.float32) if use3d else None
    for i, e in enumerate(evidence):
        if e is None:
            continue
        if e.convention != conv:
            raise ValueError(f"evidence in {e.convention!r} and {conv!r} in one set")
        kp[i] = torch.from_numpy(np.asarray(e.keypoints2d, np.float32))
        if use3d:
            k3[i] = torch.from_numpy(np.asarray(e.keypoints3d, np.float32))
    found = torch.tensor([e is not None for e in evidence], dtype=torch.bool)
    return EvalInputs(kp, conv, K.to(torch.float32), k3, found)


# ----------------------------------------------------------------------------------------
# 3DPW and Human3.6M


def read_dataset(spec: DatasetSpec):
    """(the npz read by ``datasets.read_3dpw_test`` / ``read_h36m_valid``, the selected row
    indices). InputError (one line) for a bad file or when the first selected image is
    not under ``root`` (a wrong root)."""
    from hmrkit.eval.datasets import read_3dpw_test, read_h36m_valid

    data = read_3dpw_test(spec.path) if spec.kind == "3dpw" else read_h36m_valid(spec.path)
    rows = np.arange(len(data))[::spec.step]
    if spec.n is not None:
        rows = rows[:spec.n]
    first = Path(spec.root).expanduser() / str(data.imgname[rows[0]])
    if not first.is_file():
        raise InputError(first, f"image not found; root={spec.root} must be the folder that {_ROOT_HINT[spec.kind]}")
    return data, rows


def load_ground_truth_models(model_path=None, num_betas: int = 10) -> dict:
    """{"male": SMPL, "female": SMPL} for 3DPW's ground truth from the user's files
    (``datasets.load_gendered_smpl``); InputError (one line) naming what is missing."""
    from hmrkit.eval.datasets import load_gendered_smpl

    try:
        return load_gendered_smpl(model_path, num_betas=num_betas)
    except InputError as e:
        raise InputError(e.path, f"{e.problem} (3DPW's ground truth is built with the male and female "
                                 "SMPL models)") from None


def _h36m_joints(body, out, regressor: Optional[Tensor]):
    """(h36m17 joints (B, 17, 3), mask (17,) bool, source str) of a body output: SPIN's
    H36M regressor on the mesh when given and of the mesh's topology, else the body's
    coco17 keypoints converted by name (pelvis, thorax derived as midpoints)."""
    from hmrkit.eval.datasets import SPIN_H36M_TO_H36M17
    from hmrkit.eval.metrics import to_joint_set

    v = out.vertices
    if regressor is not None and regressor.shape[1] == v.shape[1]:
        spin = torch.einsum("kv,bvc->bkc", regressor.to(v), v)
        return spin[:, list(SPIN_H36M_TO_H36M17)], torch.ones(17, dtype=torch.bool), "H36M regressor"
    coco = body.keypoints(out, "coco17")
    joints, mask = to_joint_set(coco, "coco17", "h36m17")
    return joints, torch.as_tensor(mask, dtype=torch.bool).cpu(), "coco17 keypoints"


def _j14(joints: Tensor, mask: Tensor):
    """h36m17 (B, 17, 3) rooted at the pelvis (joint 0) -> (B, 14, 3), (14,) mask."""
    from hmrkit.conventions import H36M17
    from hmrkit.eval.metrics import J14

    idx = [H36M17.index(n) for n in J14]
    rooted = joints - joints[:, :1]
    return rooted[:, idx], mask[idx]


def evaluate_dataset(estimator, body, spec: DatasetSpec, model_path=None, progress=None, detector=None,
                     chunk: int = 64) -> EvalResult:
    """Run ``estimator`` (predicting ``body``) on SPIN's 3DPW / H36M file of ``spec`` with
    its images, ``chunk`` rows at a time (module docstring: Metrics).

    model_path: the user's SMPL files for 3DPW's ground truth (a folder with the male and
    female models, or None for $HMRKIT_SMPL_DIR). detector: None for MediaPipe Holistic
    (static image mode), or any Detector. Rows whose image is missing or unreadable, or
    where nobody matching the row's box is found, count as not valid."""
    from hmrkit.eval.datasets import _h36m_regressor
    from hmrkit.eval.metrics import mpjpe, pa_mpjpe, pve
    from hmrkit.geometry.camera import default_intrinsics
    from hmrkit.io import read_image
    from hmrkit.types import BodyOutput

    data, rows = read_dataset(spec)
    regressor = _h36m_regressor(spec.regressor, torch.float32) if spec.regressor else None
    models = None
    if spec.kind == "3dpw":
        models = load_ground_truth_models(model_path, num_betas=data.betas.shape[1])
    same_mesh = spec.kind == "3dpw" and getattr(body, "name", "") == "smpl" and \
        body.num_vertices == next(iter(models.values())).num_vertices
    # both sides use the H36M regressor only when both can (3DPW: SMPL predictions;
    # H36M: its ground truth is mocap joints, so only the prediction needs it)
    use_reg = regressor if regressor is not None and (spec.kind == "h36m" or same_mesh) else None
    cam_K = _dataset_intrinsics(spec.path)
    root = Path(spec.root).expanduser()
    own = detector is None
    if own:
        detector = default_detector()
    keys = ("MPJPE", "PA-MPJPE") + (("PVE",) if same_mesh else ()) + ("2D px", "valid")
    acc = {k: [] for k in keys}
    seconds, unreadable, nobody = 0.0, 0, 0
    sources = set()
    try:
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            evidence, Ks = [], []
            for r in part:
                try:
                    image = read_image(root / str(data.imgname[r]))
                except InputError:
                    unreadable += 1
                    evidence.append(None)
                    Ks.append(torch.eye(3))
                    continue
                h, w = image.shape[:2]
                Ks.append(torch.as_tensor(cam_K[r], dtype=torch.float32) if cam_K is not None
                          else default_intrinsics(h, w))
                half = 100.0 * float(data.scale[r])
                box = np.concatenate([data.center[r] - half, data.center[r] + half])
                ev = detect_in_box(detector, image, box)
                nobody += ev is None
                evidence.append(ev)
            inputs = _inputs_from_evidence(evidence, torch.stack(Ks))
            est = run_estimator(estimator, body, inputs, spec.batch, progress)
            seconds += est.seconds
            out = est.output()
            pred_j, pred_m, src = _h36m_joints(body, out, use_reg)
            if spec.kind == "3dpw":
                gt = data.ground_truth(models, index=part, h36m_regressor=None)
                ref = next(iter(models.values()))
                gt_out = BodyOutput(gt.vertices, gt.joints, ref.faces)
                gt_j, gt_m, _ = _h36m_joints(ref, gt_out, use_reg)
            else:
                gt_j, conf = data.h36m17()
                gt_j = gt_j[part]
                gt_m = (conf[part] > 0).all(0)
            sources.add(src)
            pj, m1 = _j14(pred_j.to(torch.float64), pred_m)
            gj, m2 = _j14(gt_j.to(torch.float64), gt_m)
            mask = m1 & m2
            ok = est.valid
            acc["MPJPE"].append(_nan_where(mpjpe(pj, gj, None, joint_mask=mask), ok))
            acc["PA-MPJPE"].append(_nan_where(pa_mpjpe(pj, gj, joint_mask=mask), ok))
            if same_mesh:
                pv = out.vertices.to(torch.float64) - pred_j[:, :1].to(torch.float64)
                gv = gt.vertices.to(torch.float64) - gt_j[:, :1].to(torch.float64)
                acc["PVE"].append(_nan_where(pve(pv, gv), ok))
            acc["2D px"].append(_nan_where(est.px, ok))
            acc["valid"].append(ok.to(torch.float64))
    finally:
        if own:
            detector.close()
    metrics = {k: torch.cat(v) for k, v in acc.items()}
    metrics["s/frame"] = torch.tensor([seconds / max(1, len(rows) - unreadable - nobody)], dtype=torch.float64)
    njoints = int(mask.sum())
    notes = {"joints": f"j14 ({' / '.join(sorted(sources))}" + (f", {njoints} of 14)" if njoints < 14 else ")"),
             "root": "pelvis (h36m17 joint 0)", "rows": f"{len(rows)} of {len(data)}",
             "nobody detected": str(nobody), "unreadable images": str(unreadable),
             "PVE": "SMPL mesh" if same_mesh else "not comparable (the predicting body is not SMPL)"
             if spec.kind == "3dpw" else "no ground-truth mesh"}
    return EvalResult(spec.name, metrics, notes, len(rows))


def _dataset_intrinsics(path) -> Optional[np.ndarray]:
    """(N, 3, 3) intrinsics stored in a SPIN-style npz (``cam_K`` or ``cam_int``), or None."""
    try:
        with np.load(Path(path).expanduser(), allow_pickle=False) as z:
            for key in ("cam_K", "cam_int"):
                if key in z.files:
                    K = np.asarray(z[key], np.float64)
                    if K.ndim == 3 and K.shape[1:] == (3, 3):
                        return K
                    raise InputError(path, f"key '{key}' has shape {K.shape}, expected (N, 3, 3) intrinsics")
    except InputError:
        raise
    except Exception:
        return None
    return None


def evaluate(estimator, body, spec, model_path=None, progress=None, detector=None) -> EvalResult:
    """Evaluate on any spec of ``parse_data_spec``."""
    if isinstance(spec, SyntheticSpec):
        return evaluate_synthetic(estimator, body, spec, progress, detector)
    return evaluate_dataset(estimator, body, spec, model_path, progress, detector)


def spec_frames(spec) -> Optional[int]:
    """How many frames a spec evaluates (for a progress bar), or None if unknown yet."""
    if isinstance(spec, SyntheticSpec):
        return spec.n * (spec.frames if spec.kind == "sequences" else 1)
    return spec.n


__all__ = [
    "SYNTHETIC_KINDS", "DATASET_KINDS", "SyntheticSpec", "DatasetSpec", "parse_data_spec", "EvalInputs",
    "Estimates", "EvalResult", "SyntheticSet", "run_estimator", "build_synthetic", "evaluate_synthetic",
    "evaluate_synthetic_frames", "evaluate_dataset", "evaluate", "read_dataset", "match_detection",
    "detect_in_box", "default_detector", "rendered_scene", "spec_frames", "load_ground_truth_models",
]

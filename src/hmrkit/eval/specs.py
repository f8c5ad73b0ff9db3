"""Data specs: which set ``hmrkit eval`` evaluates on. See docs/eval.md.

A data spec names one set (``parse_data_spec``):

  synthetic:frames[,n=48,seed=2024,split=test,input=mediapipe33,noise=realistic,world3d=0,batch=8,occlusion=0,truncation=0]
      single frames, keypoint evidence: the body model's keypoints of ``input``
      (mediapipe33, coco17 or openpose25: what a user's detector gives; holistic: MediaPipe's
      body with both hands and the face) projected to 2D,
      ``noise=clean|realistic`` (``NoiseConfig.realistic()``, calibrated against
      MediaPipe); ``world3d=`` the std in metres of simulated root-relative 3D landmarks
      (0 = none; mediapipe33 only), standing in for MediaPipe's world landmarks.
      ``split=``: whose poses (``hmrkit.data.splits``, by mocap subject and motion type):
      ``test`` (default) and ``val`` are subjects and motions (salsa, modern dance) that
      training never sees, with bodies over all phenotypes; ``train`` is the
      in-distribution set (training's subjects, central phenotypes: it overstates a
      regressor trained on them); ``all`` every subject.
      ``occlusion=P``: with probability P an occluding box or bar over the person
      (``hmrkit.data.synthetic.sample_occluders``): its keypoints take the noise model's
      calibrated ``boxed`` state (MediaPipe's behaviour under boxes); ``truncation=P``:
      with probability P the frame cuts off 20-50 % of the person (``sample_truncation``):
      those keypoints are missing.
  synthetic:rendered[,n=32,seed=2024,size=512,batch=8,backgrounds=DIR,occlusion=0]
      single frames rendered (``hmrkit.data.render_synthetic.generate``: skin tones,
      clothing, lights; procedural backgrounds, or crops of the images in DIR), on which
      the real detector runs (MediaPipe Holistic, static image mode): holistic keypoints,
      its world landmarks as 3D evidence, K from the scene. ``occlusion=P``: with
      probability P an occluder (a box or a bar, ``sample_occluders``) is pasted into the
      image before the detector sees it: a flat colour with noise texture.
  synthetic:sequences[,n=4,frames=32,seed=2024,split=test,input=mediapipe33,noise=realistic,world3d=0,batch=8,temporal=0,render=0,size=512,library=clips,shift=none]
      ``n`` clips of ``frames`` consecutive frames (30 fps) from the shipped retargeted CMU
      sequences (``hmrkit.data.sequences``) of ``split``'s subjects, seen by a slowly
      moving camera (720 px); evidence as for ``frames``, the noise drawn independently
      per frame, or with ``temporal=1`` correlated over the frames as MediaPipe's is in
      video mode (``add_temporal_noise`` with the calibrated ``TemporalNoiseConfig()``;
      realistic noise only); the estimator gets chunks of ``batch`` consecutive frames
      with ``smooth=True``, each chunk started from the previous chunk's last valid
      estimate (as ``hmrkit run`` on a video).
      ``render=1`` (``size=`` px, default 512; only with render=1): each clip's frames are
      rendered instead (``size`` x ``size``, one skin tone, clothing, light and
      background per clip) and run through MediaPipe Holistic in *video* mode (tracking
      and landmark smoothing, a fresh detector per clip, frames in order): holistic
      keypoints, its world landmarks as 3D evidence and its person mask, K from the
      sequence; frames where nobody is found on the person are not found (the set's notes
      say how many). No input=, noise=, world3d= or temporal= with render=1.
      ``library=streams``: the long out-of-domain streams instead of the clips: 300-frame
      takes of the test split (salsa, modern dance; ``split=val``: four val takes, for
      tuning; ``scripts/build_sequences.py --streams``), for ``frames`` up to 300. ``shift=``: cameras or bodies unlike
      training's (``hmrkit.eval.sets.shifted_camera``): ``low`` / ``high`` (the camera
      0.2-0.5 m / 2.8-3.5 m above the floor), ``tele`` / ``wide`` (15-25 / 85-100 degrees
      of field of view), ``child`` / ``elder`` (random bodies of age 0.2-0.35 / 0.9-1),
      ``noisy`` (a detector twice as bad: ``NoiseConfig.realistic().noisier(2)``, jitter,
      gross errors and left/right swaps doubled; realistic noise only).
  synthetic:closeups[,n=48,seed=2024,split=test,noise=realistic,batch=8,render=0]
      upper-body close-ups with hand and face ground truth: library poses of ``split``
      seen from 0.9-1.5 m (heading within +-45 degrees of the camera, 720 px, the chest
      at the image centre), both hands posed by the gesture sampler and a facial
      expression of 0-3 action groups (``hmrkit.data.hands``), holistic evidence (body,
      both hands, the face subset) with the calibrated noise (hands and face included);
      keypoints outside the image are missing. ``render=1``: each scene rendered instead
      (720 px, skin, clothing, light, a procedural background) and seen by MediaPipe
      Holistic (static image mode): its body, hands and face. Its table adds the hand and
      face errors (docs/eval.md).
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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from hmrkit.errors import InputError


SYNTHETIC_KINDS = ("frames", "rendered", "sequences", "closeups")
# Domain shifts of a sequence set (``shift=``): cameras or bodies unlike the training's
# (hmrkit.eval.sets.shifted_camera): low / high camera, long / short focal length,
# children / elders; or a detector twice as noisy as the calibrated one (noisy).
SHIFTS = ("none", "low", "high", "tele", "wide", "child", "elder", "noisy")
DATASET_KINDS = ("3dpw", "h36m")

# Per kind: the keys a spec may set, and the defaults of those that depend on the kind.
_KEYS = {
    "frames": ("n", "seed", "split", "input", "noise", "world3d", "batch", "occlusion", "truncation"),
    "rendered": ("n", "seed", "size", "batch", "backgrounds", "occlusion"),
    "sequences": ("n", "frames", "seed", "split", "input", "noise", "world3d", "batch", "temporal", "render", "size",
                  "library", "shift"),
    "closeups": ("n", "seed", "split", "noise", "batch", "render"),
}
_DEFAULTS = {
    "frames": {"n": 48, "batch": 8},
    "rendered": {"n": 32, "batch": 8},
    "sequences": {"n": 4, "frames": 32, "batch": 8},
    "closeups": {"n": 48, "batch": 8},
}
_TYPES = {"n": int, "seed": int, "split": str, "input": str, "noise": str, "world3d": float, "batch": int, "size": int, "frames": int,
          "backgrounds": str, "occlusion": float, "render": int, "temporal": int, "truncation": float, "root": str,
          "step": int, "regressor": str, "library": str, "shift": str}

SPEC_HELP = ("synthetic:frames|rendered|sequences|closeups[,key=value...], 3dpw:NPZ,root=DIR or h36m:NPZ,root=DIR "
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

    kind: frames | rendered | sequences | closeups; split: whose poses (frames, sequences; the module
    docstring); input: the evidence's keypoint convention (frames, sequences); n: samples (frames, rendered) or clips
    (sequences); seed; noise: clean | realistic (frames, sequences); world3d: std in
    metres of simulated 3D landmarks, 0 for none (frames, sequences); batch: frames per
    estimator call (sequences: the chunk of consecutive frames); size: image side in px
    (rendered; sequences with render=1); frames: frames per clip (sequences); backgrounds:
    a folder of photos to crop backgrounds from, or None for procedural ones (rendered);
    temporal: 1 = the noise correlated over frames (sequences); render: 1 = the frames
    rendered and seen by MediaPipe in video mode (sequences). None fields take the kind's
    default."""

    kind: str = "frames"
    n: Optional[int] = None
    seed: int = 2024
    noise: str = "realistic"
    world3d: float = 0.0
    batch: Optional[int] = None
    size: int = 512
    frames: Optional[int] = None
    backgrounds: Optional[str] = None
    split: str = "test"
    input: str = "mediapipe33"
    occlusion: float = 0.0
    truncation: float = 0.0
    render: int = 0  # sequences: 1 = frames rendered and seen by MediaPipe in video mode
    temporal: int = 0  # sequences: 1 = noise correlated over frames (add_temporal_noise)
    library: str = "clips"  # sequences: "clips" (the shipped 64-frame clips) | "streams" (300-frame test and val takes)
    shift: str = "none"  # sequences: a domain shift of the cameras or bodies (SHIFTS)

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
        given = _key_values(text, parts[1:], _KEYS[kind])
        spec = SyntheticSpec(kind=kind, **given)
        if spec.noise not in ("clean", "realistic"):
            raise InputError(None, f"{text!r}: noise must be clean or realistic")
        from hmrkit.data.splits import SPLIT_CHOICES
        from hmrkit.data.synthetic import INPUT_CONVENTIONS

        inputs = INPUT_CONVENTIONS + ("holistic",)
        if spec.split not in SPLIT_CHOICES:
            raise InputError(None, f"{text!r}: split must be one of {', '.join(SPLIT_CHOICES)}")
        if spec.input not in inputs:
            raise InputError(None, f"{text!r}: input must be one of {', '.join(inputs)}")
        if spec.world3d and spec.input != "mediapipe33":
            raise InputError(None, f"{text!r}: world3d needs input=mediapipe33 (only MediaPipe gives world landmarks)")
        for k, low in (("n", 1), ("batch", 1), ("size", 64), ("frames", 3)):
            if k in _KEYS[kind] and getattr(spec, k) < low:
                raise InputError(None, f"{text!r}: {k} must be at least {low}")
        for k in ("render", "temporal"):
            if getattr(spec, k) not in (0, 1):
                raise InputError(None, f"{text!r}: {k} must be 0 or 1")
        if spec.render and any(k in given for k in ("world3d", "input", "noise", "temporal")):
            drop = ", ".join(k + "=" for k in ("input", "noise", "world3d", "temporal") if k in given)
            raise InputError(None, f"{text!r}: a rendered set's evidence is MediaPipe's own; drop {drop}")
        if kind == "sequences" and "size" in given and not spec.render:
            raise InputError(None, f"{text!r}: size= is the side of rendered frames; add render=1")
        if spec.temporal and spec.noise != "realistic":
            raise InputError(None, f"{text!r}: temporal=1 correlates the realistic noise over frames; drop noise=clean")
        if spec.library not in ("clips", "streams"):
            raise InputError(None, f"{text!r}: library must be clips or streams")
        if spec.shift not in SHIFTS:
            raise InputError(None, f"{text!r}: shift must be one of {', '.join(SHIFTS)}")
        if spec.shift == "noisy" and (spec.render or spec.noise != "realistic"):
            raise InputError(None, f"{text!r}: shift=noisy doubles the realistic keypoint noise; "
                                   "drop noise=clean and render=1")
        if spec.world3d < 0:
            raise InputError(None, f"{text!r}: world3d must be >= 0 (metres)")
        for k in ("occlusion", "truncation"):
            if not 0.0 <= getattr(spec, k) <= 1.0:
                raise InputError(None, f"{text!r}: {k} must be a probability in [0, 1]")
        if spec.backgrounds is not None and not Path(spec.backgrounds).expanduser().is_dir():
            raise InputError(spec.backgrounds, "background folder not found; pass a folder of jpg/png images")
        return spec

    @property
    def name(self) -> str:
        """The spec written out with its seed and the keys that matter for its kind."""
        if self.kind == "rendered":
            s = f"synthetic:rendered,n={self.n},seed={self.seed},size={self.size}"
            s += f",occlusion={self.occlusion:g}" if self.occlusion else ""
            return s + (f",backgrounds={self.backgrounds}" if self.backgrounds else "")
        head = f"synthetic:{self.kind},n={self.n}"
        if self.kind == "closeups":
            tail = ",render=1" if self.render else f",noise={self.noise}"
            return f"{head},seed={self.seed},split={self.split}{tail}"
        if self.kind == "sequences":
            head += f",frames={self.frames}"
            head += ",library=streams" if self.library != "clips" else ""
            head += f",shift={self.shift}" if self.shift != "none" else ""
            if self.render:
                return f"{head},seed={self.seed},split={self.split},render=1,size={self.size}"
        s = f"{head},seed={self.seed},split={self.split}"
        s += (f",input={self.input}" if self.input != "mediapipe33" else "") + f",noise={self.noise}"
        s += f",world3d={self.world3d}" if self.world3d else ""
        s += ",temporal=1" if self.temporal else ""
        s += f",occlusion={self.occlusion:g}" if self.occlusion else ""
        return s + (f",truncation={self.truncation:g}" if self.truncation else "")


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
            raise InputError(None, f"{text!r}: add root=DIR, the folder that {ROOT_HINT[kind]}")
        root = Path(kv["root"]).expanduser()
        if not root.is_dir():
            raise InputError(root, f"root folder not found; it must be the folder that {ROOT_HINT[kind]}")
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
ROOT_HINT = {"3dpw": "holds 3DPW's imageFiles/ (the npz's imgname paths are relative to it)",
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


def spec_frames(spec) -> Optional[int]:
    """How many frames a spec evaluates (for a progress bar), or None if unknown yet."""
    if isinstance(spec, SyntheticSpec):
        return spec.n * (spec.frames if spec.kind == "sequences" else 1)
    return spec.n

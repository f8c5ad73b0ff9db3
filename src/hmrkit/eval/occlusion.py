"""Occlusion sensitivity (PARE's analysis): how much each body joint's 3D estimate moves
when a grey patch hides part of the image.

For every position of a ``patch`` x ``patch`` px grey square slid over the image in steps
of ``stride`` px, the patched image goes through the whole pipeline: the detector of
``hmrkit run`` (so a patch that makes the detector lose the person, or misplace a
landmark, counts), the person matched to the unoccluded detection by its box
(``match_detection``), then the estimator. The per-joint change is the distance between
the root-aligned 3D joints (the 22 body joints of ``PART_NAMES``, pelvis-aligned, mm) of
the patched and the unoccluded estimate; with ``reference`` given (the ground truth of a
synthetic render), it is the error against those joints instead.

By default only the positions whose patch overlaps the person's box grown by ``margin``
of its size are run (``all_positions=False``); the others are recorded as not run (NaN,
``ran`` False), which also keeps a multi-person image from spending time on other
people's regions. The estimator sees all patched detections in batches of ``batch``; the
detector (MediaPipe) takes one image at a time.

``sensitivity_figure`` draws the overall map over the image and one map per body part
(head, torso, arms, legs), as in the paper's figure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from hmrkit.errors import InputError

# body-part groups of the 22 regression joints (hmrkit.data.render_synthetic.PART_NAMES)
PART_GROUPS = {
    "head": ("neck", "head"),
    "torso": ("pelvis", "spine1", "spine2", "spine3", "left_collar", "right_collar"),
    "left arm": ("left_shoulder", "left_elbow", "left_wrist"),
    "right arm": ("right_shoulder", "right_elbow", "right_wrist"),
    "left leg": ("left_hip", "left_knee", "left_ankle", "left_foot"),
    "right leg": ("right_hip", "right_knee", "right_ankle", "right_foot"),
}


@dataclass(frozen=True)
class OcclusionConfig:
    patch: int = 64  # px, side of the grey square
    stride: int = 32  # px between positions
    grey: int = 128  # its value (RGB)
    margin: float = 0.25  # run the positions whose patch overlaps the person's box grown by this
    all_positions: bool = False  # run every position
    batch: int = 64  # detections per estimator call


@dataclass(frozen=True)
class OcclusionResult:
    """change: (ny, nx, J) mm per joint at each patch position (NaN: not run, or the person
    was lost); ran: (ny, nx) bool; found: (ny, nx) bool (the person detected again);
    ys, xs: (ny,), (nx,) the patches' top-left corners, px; joint_names: (J,);
    box: (4,) the person's unoccluded box xyxy px; seconds: {"detect", "estimate"}."""

    change: np.ndarray
    ran: np.ndarray
    found: np.ndarray
    ys: np.ndarray
    xs: np.ndarray
    joint_names: tuple
    box: np.ndarray
    patch: int
    stride: int
    method: str
    seconds: dict

    @property
    def overall(self) -> np.ndarray:
        """(ny, nx) mean change over the joints (NaN where not run or lost)."""
        import warnings

        with warnings.catch_warnings():  # all-NaN positions (not run, lost) stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(self.change, -1)

    def part(self, name: str) -> np.ndarray:
        idx = [self.joint_names.index(j) for j in PART_GROUPS[name]]
        return self.change[..., idx].mean(-1)

    def save_npz(self, path) -> None:
        from hmrkit.io.atomic import atomic_write

        arrays = dict(change_mm=self.change.astype(np.float32), ran=self.ran, found=self.found, ys=self.ys,
                      xs=self.xs, joint_names=np.array(self.joint_names), box=self.box.astype(np.float32),
                      patch=np.int32(self.patch), stride=np.int32(self.stride), method=np.array(self.method),
                      overall_mm=self.overall.astype(np.float32),
                      **{f"part_{k.replace(' ', '_')}_mm": self.part(k).astype(np.float32) for k in PART_GROUPS})
        with atomic_write(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def positions(size: int, patch: int, stride: int) -> np.ndarray:
    """Top-left corners along one side: 0, stride, ... and the last one flush with the edge."""
    last = size - patch
    out = list(range(0, last + 1, stride))
    if out[-1] != last:
        out.append(last)
    return np.array(out)


def _largest(evidence: list):
    def area(e):
        b = np.asarray(e.bbox, np.float64)
        return (b[2] - b[0]) * (b[3] - b[1])

    return max(evidence, key=area)


def body_joint_ids(body) -> tuple[list[int], tuple]:
    from hmrkit.data.render_synthetic import PART_NAMES

    names = list(body.joint_names)
    missing = [n for n in PART_NAMES if n not in names]
    if missing:
        raise InputError(None, f"the {body.name} body model lacks the joints {missing}")
    return [names.index(n) for n in PART_NAMES], tuple(PART_NAMES)


@dataclass(frozen=True)
class PatchedDetections:
    """The detector's side of a sensitivity run, shared by every estimator measured on it:
    the unoccluded person (``reference``), the matched detection at each patch position
    that found them (``evidence``: {(i, j): Evidence}), which positions ran / found."""

    reference: object
    evidence: dict
    ran: np.ndarray
    found: np.ndarray
    ys: np.ndarray
    xs: np.ndarray
    box: np.ndarray
    patch: int
    stride: int
    seconds: float


def check_patch(name, patch: int, stride: int, height: int, width: int) -> None:
    """InputError (one line naming ``name``) unless the patch and stride fit the image."""
    if patch < 1 or stride < 1:
        raise InputError(name, f"--patch and --stride must be at least 1 px (got {patch}, {stride})")
    if patch > min(height, width):
        raise InputError(name, f"the patch ({patch} px) is larger than the image ({width} x {height} px); "
                               f"choose --patch up to {min(height, width)}")


def patched_detections(image: np.ndarray, detector, config: OcclusionConfig = OcclusionConfig(),
                       progress: Optional[Callable] = None, name: str = "image",
                       plan: Optional[Callable] = None) -> PatchedDetections:
    """Run the detector on ``image`` (H, W, 3) uint8 and on every patched copy (module
    docstring); the person measured is the largest one detected unoccluded. plan(n) is
    called once with the number of positions that will run, progress(1) after each.
    InputError (one line) when the patch does not fit in the image or nobody is detected."""
    from hmrkit.eval.detection import match_detection

    H, W = image.shape[:2]
    p, s = int(config.patch), int(config.stride)
    check_patch(name, p, s, H, W)
    t0 = time.perf_counter()
    people = detector.detect(image)
    if not people:
        raise InputError(name, "nobody detected in this image: nothing to measure")
    ref = _largest(people)
    box = np.asarray(ref.bbox, np.float64)
    ys, xs = positions(H, p, s), positions(W, p, s)
    bw, bh = box[2] - box[0], box[3] - box[1]
    grown = box + np.array([-1, -1, 1, 1]) * config.margin * np.array([bw, bh, bw, bh])
    near = ((xs[None] < grown[2]) & (xs[None] + p > grown[0]) & (ys[:, None] < grown[3]) & (ys[:, None] + p > grown[1]))
    todo = near | config.all_positions
    if plan is not None:
        plan(int(todo.sum()))
    ran = np.zeros((len(ys), len(xs)), bool)
    found = np.zeros_like(ran)
    evidence = {}
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            if not todo[i, j]:
                continue
            img = image.copy()
            img[y:y + p, x:x + p] = config.grey
            ev = match_detection(detector.detect(img), box)
            ran[i, j] = True
            if ev is not None:
                found[i, j] = True
                evidence[(i, j)] = ev
            if progress is not None:
                progress(1)
    return PatchedDetections(ref, evidence, ran, found, ys, xs, box, p, s, round(time.perf_counter() - t0, 2))


def sensitivity(dets: PatchedDetections, K, estimator, body, reference: Optional[np.ndarray] = None,
                batch: int = 64) -> OcclusionResult:
    """The per-joint change of ``estimator``'s 3D joints over the patch positions of
    ``dets``: all detections go through the estimator in batches of ``batch``.
    reference: (22, 3) metres, camera frame, the true joints to measure errors against
    (None: the unoccluded estimate)."""
    from hmrkit.types import Observation

    joint_ids, joint_names = body_joint_ids(body)
    K = np.asarray(K, np.float32)
    keys = list(dets.evidence)
    items = [dets.reference] + [dets.evidence[k] for k in keys]
    joints = []
    t0 = time.perf_counter()
    for a in range(0, len(items), batch):
        chunk = items[a:a + batch]
        obs = Observation.from_evidence(chunk, np.broadcast_to(K, (len(chunk), 3, 3)).copy())
        with torch.no_grad():
            pred = estimator.predict(obs)
            out = pred.output if pred.output is not None else body(pred.params)
        joints.append(out.joints[:, joint_ids].detach().cpu().double().numpy())
    t_est = time.perf_counter() - t0
    J = np.concatenate(joints)  # (1 + found, 22, 3)
    root = lambda x: x - x[..., :1, :]  # noqa: E731 (pelvis first in PART_NAMES)
    base = root(np.asarray(reference, np.float64)[None]) if reference is not None else root(J[:1])
    change = np.full(dets.ran.shape + (len(joint_names),), np.nan)
    d = np.linalg.norm(root(J[1:]) - base, axis=-1) * 1000.0
    for k, (i, j) in enumerate(keys):
        change[i, j] = d[k]
    method = getattr(estimator, "name", type(estimator).__name__)
    return OcclusionResult(change, dets.ran, dets.found, dets.ys, dets.xs, joint_names, dets.box, dets.patch,
                           dets.stride, method, {"detect": dets.seconds, "estimate": round(t_est, 2)})


def occlusion_sensitivity(image: np.ndarray, K, estimator, body, detector, config: OcclusionConfig = OcclusionConfig(),
                          reference: Optional[np.ndarray] = None, progress: Optional[Callable] = None,
                          name: str = "image", plan: Optional[Callable] = None) -> OcclusionResult:
    """The sensitivity maps of ``estimator`` on ``image`` (H, W, 3) uint8 RGB with
    intrinsics K (3, 3): ``patched_detections`` then ``sensitivity`` (module docstring)."""
    dets = patched_detections(image, detector, config, progress, name, plan)
    return sensitivity(dets, K, estimator, body, reference, config.batch)


# ---------------------------------------------------------------------------- figures

# a perceptually ordered colour map (dark violet -> orange -> pale yellow), anchors in sRGB
_CMAP = np.array([(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66), (245, 125, 21),
                  (250, 193, 39), (252, 255, 164)], np.float64)


def colormap(v: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (..., ) -> (..., 3) uint8 RGB (inferno-like)."""
    v = np.clip(np.nan_to_num(v), 0, 1) * (len(_CMAP) - 1)
    i = np.minimum(v.astype(int), len(_CMAP) - 2)
    t = (v - i)[..., None]
    return ((1 - t) * _CMAP[i] + t * _CMAP[i + 1]).astype(np.uint8)


def heat_image(image: np.ndarray, values: np.ndarray, result: OcclusionResult, vmax: float,
               alpha: float = 0.6) -> np.ndarray:
    """The image greyed, with ``values`` (ny, nx) mm painted over each position's central
    stride x stride cell; positions not run stay grey, lost ones are hatched black."""
    H, W = image.shape[:2]
    grey = image.astype(np.float64).mean(-1, keepdims=True).repeat(3, -1) * 0.8
    out = grey.copy()
    c = result.patch / 2.0
    half = result.stride / 2.0
    for i, y in enumerate(result.ys):
        for j, x in enumerate(result.xs):
            if not result.ran[i, j]:
                continue
            y0, y1 = int(max(0, y + c - half)), int(min(H, y + c + half))
            x0, x1 = int(max(0, x + c - half)), int(min(W, x + c + half))
            if not result.found[i, j]:
                yy, xx = np.mgrid[y0:y1, x0:x1]
                out[y0:y1, x0:x1] = np.where((((yy + xx) // 4) % 2 == 0)[..., None], 0.0, grey[y0:y1, x0:x1])
                continue
            col = colormap(np.array(values[i, j] / max(vmax, 1e-9))).astype(np.float64)
            out[y0:y1, x0:x1] = (1 - alpha) * grey[y0:y1, x0:x1] + alpha * col
    return out.clip(0, 255).astype(np.uint8)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, 8 + 6 * len(text), 14], fill=(0, 0, 0))
    d.text((4, 2), text, fill=(255, 255, 255))
    return np.asarray(im)


def colour_bar(width: int, vmax: float, height: int = 28) -> np.ndarray:
    from PIL import Image, ImageDraw

    bar = np.zeros((height, width, 3), np.uint8) + 255
    ramp = colormap(np.linspace(0, 1, width - 20))[None].repeat(10, 0)
    bar[2:12, 10:width - 10] = ramp
    im = Image.fromarray(bar)
    d = ImageDraw.Draw(im)
    for f in (0, 0.5, 1):
        x = 10 + f * (width - 21)
        d.text((min(max(0, x - 10), width - 40), 14), f"{f * vmax:.0f} mm", fill=(0, 0, 0))
    d.text((width // 2 - 90, 14), "", fill=(0, 0, 0))
    return np.asarray(im)


def sensitivity_figure(image: np.ndarray, result: OcclusionResult, vmax: Optional[float] = None,
                       parts: bool = True, tile: int = 256) -> np.ndarray:
    """(h, w, 3) uint8: the overall map, then (``parts``) one per body part of
    ``PART_GROUPS``, each ``tile`` px high, and a colour bar (0 .. vmax mm; default the
    95th percentile of the overall map). Lost detections are hatched."""
    from PIL import Image

    overall = result.overall
    if vmax is None:
        finite = overall[np.isfinite(overall)]
        vmax = float(np.percentile(finite, 95)) if finite.size else 1.0
    maps = [("all joints", overall)] + ([(k, result.part(k)) for k in PART_GROUPS] if parts else [])
    H, W = image.shape[:2]
    w = max(1, round(W * tile / H))
    tiles = []
    for name, v in maps:
        img = heat_image(image, v, result, vmax)
        img = np.asarray(Image.fromarray(img).resize((w, tile), Image.BILINEAR))
        tiles.append(_label(img, f"{result.method}: {name}"))
    row = np.concatenate(tiles, 1)
    return np.concatenate([row, colour_bar(row.shape[1], vmax)], 0)

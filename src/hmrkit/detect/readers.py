"""Readers for keypoints a user already has: COCO keypoint JSON, OpenPose JSON, hmrkit npz.

``read_keypoint_file(path)`` picks the reader from the suffix and the content and returns
a ``KeypointSequence``: T frames, each a list of ``Evidence`` (one per person). Every
problem with the input raises ``hmrkit.errors.InputError`` whose message names the file;
a file that parses but holds nobody raises ``NoPersonError`` (a subclass).
See docs/evidence_format.md.

What counts as a keypoint and a person (every reader):
- a keypoint with a NaN or infinite value (x, y or confidence; JSON null too) is missing,
  as is one whose x or y lies beyond ``MAX_COORDINATE_PX`` (not a pixel of any image; a
  warning counts them);
- a person with no keypoint left, or whose every keypoint lies outside its image, is
  dropped (a warning counts those outside); a file with nobody left is a NoPersonError
  that says why;
- without an image size in the file (COCO results, OpenPose) the keypoints' extent is
  used, with a warning; an extent beyond ``MAX_GUESSED_SIZE_PX`` is refused (the
  coordinates are then not pixels of a photo: pass the image size);
- image sizes in a file must lie in [1, MAX_COORDINATE_PX] px; an npz's cam_K must be a
  camera matrix (``hmrkit.geometry.camera.intrinsics_problem``); JSON nested too deep and
  npz archives that unpack to more than ``MAX_NPZ_BYTES`` are refused.
"""

from __future__ import annotations

import io

import json
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hmrkit import conventions
from hmrkit.conventions import FACE, HAND21, HOLISTIC, MEDIAPIPE33, OPENPOSE25
from hmrkit.detect.base import bbox_from_keypoints
from hmrkit.errors import InputError, NoPersonError
from hmrkit.geometry.camera import DEFAULT_FOV_DEG, intrinsics_problem
from hmrkit.io.atomic import atomic_write
from hmrkit.types import Evidence


@dataclass(frozen=True)
class KeypointSequence:
    """Keypoints read from a file.

    frames:     T lists, one per frame, of the people found in it (Evidence each; a
                person with no keypoint of confidence > 0 is left out).
    cam_K:      (T, 3, 3) intrinsics in pixels, or None when the file has none.
    fps:        frames per second, or None.
    source:     ``coco-json:NAME``, ``openpose-json:NAME`` or ``hmrkit-npz:NAME``.
    convention: the keypoint convention of every Evidence (``coco17``, ``holistic``, ...).
    frame_ids:  T identifiers: COCO image file_name (or id), OpenPose file name, or the
                frame index.
    warnings:   one line each about what was read with a doubt or left out (no image
                size in the file, keypoints too far out, people outside the image); the
                caller reports them (``hmrkit run`` puts them in its summary).
    """

    frames: list
    cam_K: np.ndarray | None = None
    fps: float | None = None
    source: str = ""
    convention: str = ""
    frame_ids: tuple = field(default=())
    warnings: tuple = field(default=())

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def image_size(self) -> tuple | None:
        """(H, W) of the first person found (None if nobody); COCO annotation files may
        hold images of different sizes, see each Evidence.image_size."""
        for people in self.frames:
            for ev in people:
                return ev.image_size
        return None

    def to_array(self) -> np.ndarray:
        """(T, P, K, 3) float32 keypoints (x, y px, confidence), P the most people in a
        frame; absent people are zeros (confidence 0)."""
        k = len(conventions.get(self.convention))
        p = max((len(f) for f in self.frames), default=0)
        out = np.zeros((len(self.frames), p, k, 3), dtype=np.float32)
        for t, people in enumerate(self.frames):
            for i, ev in enumerate(people):
                if ev.convention != self.convention:
                    raise ValueError(f"frame {t} person {i}: convention {ev.convention!r} != {self.convention!r}")
                out[t, i] = ev.keypoints2d
        return out


# --------------------------------------------------------------------------- helpers

MAX_COORDINATE_PX = 1e6  # |x| or |y| beyond this is no pixel of any image: the keypoint is missing
MAX_GUESSED_SIZE_PX = 20000  # an image size guessed from the keypoints beyond this is refused
MAX_NPZ_BYTES = 1 << 30  # an evidence npz whose arrays unpack to more than this is refused


def _short(value, n: int = 40) -> str:
    """repr(value), cut to n characters: user values quoted in a one-line message."""
    r = repr(value)
    return r if len(r) <= n else r[:n] + "..."


def _finite_number(value) -> float | None:
    """A JSON number as a finite float, or None (not a number, NaN, infinite, too large)."""
    if not isinstance(value, (int, float)):
        return None
    try:
        v = float(value)
    except OverflowError:
        return None
    return v if math.isfinite(v) else None


def _load_json(path: Path):
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(path, "not a text file (expected JSON keypoints)") from None
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror or e})") from None
    if not text.strip():
        raise InputError(path, "empty file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(path, f"invalid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise InputError(path, "JSON nested too deep to read (about a thousand levels or more); COCO and "
                               "OpenPose keypoint files nest a few levels") from None
    except ValueError as e:  # e.g. an integer of more digits than Python converts
        raise InputError(path, f"invalid JSON ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def _floats(path, values, n: int, what: str, allow_empty: bool = False, finite: bool = True) -> np.ndarray | None:
    """A JSON list of n numbers -> (n,) float64. With allow_empty, an absent key or an
    empty list gives None (OpenPose writes [] for parts it did not run). With finite=False,
    NaN, infinities and nulls are kept as NaN / inf (keypoints: they become missing)."""
    if allow_empty and (values is None or values == []):
        return None
    if values is None:
        raise InputError(path, f"{what}: missing")
    if not isinstance(values, list):
        raise InputError(path, f"{what}: expected a list of {n} numbers, got {type(values).__name__}")
    if len(values) != n:
        raise InputError(path, f"{what}: expected {n} numbers, got {len(values)}")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise InputError(path, f"{what}: expected {n} numbers, found a non-number") from None
    if arr.shape != (n,) or (finite and not np.isfinite(arr).all()):
        raise InputError(path, f"{what}: expected {n} finite numbers")
    return arr


def _check_image_size(image_size) -> tuple | None:
    if image_size is None:
        return None
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be (H, W) in pixels, got {image_size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"image_size must be positive (H, W), got {image_size!r}")
    return (h, w)


def _usable(kp) -> np.ndarray:
    """(K, 3) x, y, confidence -> a float32 copy (Evidence's) in which a keypoint with a
    non-finite value or a coordinate beyond MAX_COORDINATE_PX is missing; confidences
    clipped to [0, 1]; missing keypoints (confidence 0, also after rounding to float32) are
    zeros."""
    kp = np.array(kp, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(kp).all(1) | (np.abs(kp[:, :2]) > MAX_COORDINATE_PX).any(1)
    kp[bad] = 0.0
    kp[:, 2] = np.clip(kp[:, 2], 0.0, 1.0)
    kp = kp.astype(np.float32)
    kp[kp[:, 2] <= 0] = 0.0
    return kp


def _counts(raw_frames) -> tuple:
    """(keypoints with a NaN / infinite value, keypoints given with confidence > 0 at a
    coordinate beyond MAX_COORDINATE_PX) in raw frames of (kp, box)."""
    nonfinite = far = 0
    for people in raw_frames:
        for kp, _ in people:
            kp = np.asarray(kp, dtype=np.float64)
            fin = np.isfinite(kp).all(1)
            nonfinite += int((~fin).sum())
            with np.errstate(invalid="ignore"):
                far += int((fin & (kp[:, 2] > 0) & (np.abs(kp[:, :2]) > MAX_COORDINATE_PX).any(1)).sum())
    return nonfinite, far


def _nobody(raw_frames) -> str:
    """Why no keypoint is usable, for a NoPersonError."""
    nonfinite, far = _counts(raw_frames)
    if far:
        return (f"no usable keypoint: {far} lie beyond {MAX_COORDINATE_PX:,.0f} px (not pixel coordinates of "
                f"any image) and no other has confidence > 0")
    why = "no person with a keypoint of confidence > 0 in the file"
    return why + (f" ({nonfinite} keypoint(s) NaN or infinite, counted as missing)" if nonfinite else "")


def _guess_image_size(path, frames, notes: list) -> tuple:
    """(H, W) covering every usable confident keypoint (``_usable``) at x, y >= 0, with a
    warning. NoPersonError when there is none; InputError when that size exceeds
    MAX_GUESSED_SIZE_PX (such coordinates are not pixels of a photo)."""
    xs, ys = [], []
    confident = False
    for people in frames:
        for kp, _ in people:
            kp = _usable(kp)
            ok = kp[:, 2] > 0
            confident = confident or bool(ok.any())
            ok &= (kp[:, 0] >= 0) & (kp[:, 1] >= 0)
            xs.append(kp[ok, 0])
            ys.append(kp[ok, 1])
    x = np.concatenate(xs) if xs else np.zeros(0)
    y = np.concatenate(ys) if ys else np.zeros(0)
    if len(x) == 0:
        if confident:
            raise NoPersonError(path, "every keypoint has a negative x or y, outside any image (pixel "
                                      "coordinates start at 0); check the coordinates")
        raise NoPersonError(path, _nobody(frames))
    size = (math.ceil(float(y.max())) + 1, math.ceil(float(x.max())) + 1)
    if max(size) > MAX_GUESSED_SIZE_PX:
        raise InputError(path, f"the file gives no image size and its keypoints reach x = {x.max():.0f}, "
                               f"y = {y.max():.0f} px, beyond any photo ({MAX_GUESSED_SIZE_PX} px): check the "
                               f"coordinates, or pass the image size (image_size=(H, W), or an hmrkit evidence .npz)")
    notes.append(f"{path}: the file gives no image size; using (H, W) = {size} from the keypoints' extent "
                 f"(pass image_size=(H, W) for the true size)")
    return size


def _build(path, raw_frames, sizes, convention: str, source: str, frame_ids, cam_K=None, fps=None,
           notes=()) -> KeypointSequence:
    """raw_frames: T lists of (kp (K, 3) float64, extra box xyxy or None); sizes: T (H, W).
    Keypoints become ``_usable``; drops people without a confident keypoint and people
    whose every confident keypoint lies outside their image (a warning counts them);
    raises NoPersonError, saying why, if nobody is left."""
    frames = []
    found = outside = 0
    outside_size = None
    for people, size in zip(raw_frames, sizes):
        h, w = int(size[0]), int(size[1])
        out = []
        for kp, box in people:
            kp = _usable(kp)
            ok = kp[:, 2] > 0
            if not ok.any():
                continue
            x, y = kp[ok, 0], kp[ok, 1]
            if not ((x >= 0) & (x <= w) & (y >= 0) & (y <= h)).any():
                outside += 1
                outside_size = outside_size or (h, w)
                continue
            if box is not None and not (np.isfinite(box).all() and (np.abs(box) <= MAX_COORDINATE_PX).all()):
                box = None
            out.append(
                Evidence(
                    image_size=(int(size[0]), int(size[1])),
                    keypoints2d=kp,
                    convention=convention,
                    bbox=bbox_from_keypoints(kp, size, extra=box),
                    source=source,
                )
            )
        found += len(out)
        frames.append(out)
    if found == 0:
        if outside:
            raise NoPersonError(path, f"no person in the image: every keypoint of the {outside} person(s) lies "
                                      f"outside the image (H, W) = {outside_size}; check the coordinates and "
                                      f"the image size")
        raise NoPersonError(path, _nobody(raw_frames))
    notes = list(notes)
    far = _counts(raw_frames)[1]
    if far:
        notes.append(f"{path}: {far} keypoint(s) beyond {MAX_COORDINATE_PX:,.0f} px (not pixel coordinates) "
                     f"treated as missing")
    if outside:
        notes.append(f"{path}: {outside} person(s) dropped: every keypoint outside the image "
                     f"(H, W) = {outside_size}")
    return KeypointSequence(frames=frames, cam_K=cam_K, fps=fps, source=source, convention=convention,
                            frame_ids=tuple(frame_ids), warnings=tuple(notes))


# --------------------------------------------------------------------------- COCO

_COCO_K = len(conventions.COCO17)


def _coco_entry(path, entry, what: str) -> np.ndarray:
    if not isinstance(entry, dict):
        raise InputError(path, f"{what}: expected an object, got {type(entry).__name__}")
    kp = _floats(path, entry.get("keypoints"), 3 * _COCO_K, f"{what} keypoints (COCO-17 x, y, v)", finite=False)
    return kp.reshape(_COCO_K, 3)


def _coco_xywh(path, entry, what: str) -> np.ndarray | None:
    box = entry.get("bbox")
    if box is None:
        return None
    b = _floats(path, box, 4, f"{what} bbox (x, y, w, h)", finite=False)  # a non-finite box is ignored
    return np.array([b[0], b[1], b[0] + b[2], b[1] + b[3]])


def read_coco_results(path, data=None, image_size=None) -> KeypointSequence:
    """COCO keypoint results: a JSON list of {image_id, category_id, keypoints [x, y, v] * 17,
    score}. One frame per image_id (numeric ids sorted, others in order of appearance).

    Confidence per keypoint: v when every v of the entry lies in [0, 1] (a detector's
    keypoint scores), else the entry's score (default 1) where v > 0 and 0 where v == 0.
    image_size (H, W): the file has none; without it the keypoints' extent is used (warning).
    """
    path = Path(path)
    if data is None:
        data = _load_json(path)
    if not isinstance(data, list):
        raise InputError(path, "expected COCO keypoint results: a JSON list of detections")
    if not data:
        raise NoPersonError(path, "no detections (empty list)")
    groups: dict = {}
    for i, entry in enumerate(data):
        kp = _coco_entry(path, entry, f"entry {i}")
        if not isinstance(entry.get("image_id"), (int, str)):
            raise InputError(path, f"entry {i}: image_id must be an integer or a string, "
                                   f"got {_short(entry.get('image_id'))}")
        v = kp[:, 2].copy()
        finite_v = v[np.isfinite(v)]
        if ((finite_v >= 0) & (finite_v <= 1)).all():
            conf = v  # NaN: missing
        else:
            score = _finite_number(entry.get("score", 1.0))
            if score is None:
                raise InputError(path, f"entry {i}: score must be a number, got {_short(entry.get('score'))}")
            conf = np.where(v > 0, float(np.clip(score, 0.0, 1.0)), 0.0)
        kp[:, 2] = conf
        groups.setdefault(entry["image_id"], []).append((kp, _coco_xywh(path, entry, f"entry {i}")))
    ids = list(groups)
    if all(isinstance(k, int) for k in ids):
        ids.sort()
    raw = [groups[k] for k in ids]
    notes: list = []
    size = _check_image_size(image_size) or _guess_image_size(path, raw, notes)
    return _build(path, raw, [size] * len(raw), "coco17", f"coco-json:{path.name}", ids, notes=notes)


def read_coco_annotations(path, data=None) -> KeypointSequence:
    """COCO keypoint annotations: {"images": [{id, width, height, file_name}, ...],
    "annotations": [{image_id, keypoints [x, y, v] * 17, bbox, iscrowd}, ...]}. One frame
    per image, in the file's order; confidence 1 where v > 0 (labelled), else 0; crowd
    annotations are skipped. Image sizes come from the file."""
    path = Path(path)
    if data is None:
        data = _load_json(path)
    images = data.get("images") if isinstance(data, dict) else None
    anns = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(images, list) or not isinstance(anns, list):
        raise InputError(path, 'expected COCO annotations: an object with "images" and "annotations" lists')
    if not images:
        raise NoPersonError(path, 'no images in "images"')
    index, sizes, ids = {}, [], []
    for i, im in enumerate(images):
        if not isinstance(im, dict) or "id" not in im:
            raise InputError(path, f"images[{i}]: expected an object with id, width, height")
        if not isinstance(im["id"], (int, float, str)):
            raise InputError(path, f"images[{i}]: id must be a number or a string, got {_short(im['id'])}")
        w, h = _finite_number(im.get("width")), _finite_number(im.get("height"))
        if w is None or h is None or not (1 <= w <= MAX_COORDINATE_PX and 1 <= h <= MAX_COORDINATE_PX):
            raise InputError(path, f"images[{i}]: width and height must be numbers of pixels from 1 to "
                                   f"{MAX_COORDINATE_PX:,.0f}, got {_short(im.get('width'))}, {_short(im.get('height'))}")
        index[im["id"]] = i
        sizes.append((int(h), int(w)))
        ids.append(im.get("file_name", im["id"]))
    raw = [[] for _ in images]
    for i, ann in enumerate(anns):
        kp = _coco_entry(path, ann, f"annotations[{i}]")
        if ann.get("iscrowd", 0):
            continue
        if not isinstance(ann.get("image_id"), (int, float, str)) or ann["image_id"] not in index:
            raise InputError(path, f"annotations[{i}]: image_id {_short(ann.get('image_id'))} is not in \"images\"")
        kp[:, 2] = (kp[:, 2] > 0).astype(np.float64)
        raw[index[ann["image_id"]]].append((kp, _coco_xywh(path, ann, f"annotations[{i}]")))
    return _build(path, raw, sizes, "coco17", f"coco-json:{path.name}", ids)


# --------------------------------------------------------------------------- OpenPose

_HOLISTIC_INDEX = {n: i for i, n in enumerate(HOLISTIC)}


def _openpose_body_table():
    """(holistic index, openpose25 index) pairs: same names, big toe -> foot_index."""
    op = {n: i for i, n in enumerate(OPENPOSE25)}
    pairs = []
    for k, name in enumerate(MEDIAPIPE33):
        src = name.replace("foot_index", "big_toe")
        if src in op:
            pairs.append((k, op[src]))
    return np.array(pairs, dtype=np.int64)


# Face subset name -> OpenPose face-70 indices (iBUG 68 + 2 pupils), averaged when two.
# iBUG: jaw 0-16 from the subject's right ear via the chin (8) to the left ear; brows
# 17-21 (right, outer -> inner), 22-26 (left, inner -> outer); nose bridge 27-30 (top ->
# tip), lower nose 31-35 (right -> left); right eye 36-41 (36 outer corner, 37-38 upper
# lid, 39 inner corner, 40-41 lower lid); left eye 42-47 (42 inner, 43-44 upper, 45 outer,
# 46-47 lower); mouth 48-59 outer (48 right corner, 51 top, 54 left corner, 57 bottom),
# 60-67 inner (62 upper middle, 66 lower middle); pupils 68 (right), 69 (left).
OPENPOSE_FACE70_TO_FACE = {
    **{name: (i,) for i, name in enumerate(FACE[:17])},  # jaw_r0 .. chin .. jaw_l0
    "right_brow_outer": (17,), "right_brow_mid": (19,), "right_brow_inner": (21,),
    "left_brow_inner": (22,), "left_brow_mid": (24,), "left_brow_outer": (26,),
    "right_eye_outer_corner": (36,), "right_eye_upper_lid": (37, 38),
    "right_eye_inner_corner": (39,), "right_eye_lower_lid": (40, 41),
    "left_eye_inner_corner": (42,), "left_eye_upper_lid": (43, 44),
    "left_eye_outer_corner": (45,), "left_eye_lower_lid": (46, 47),
    "nose_bridge": (27,), "nose_tip": (30,), "right_nostril": (31,), "left_nostril": (35,),
    "mouth_right_corner": (48,), "upper_lip_top": (51,), "mouth_left_corner": (54,),
    "lower_lip_bottom": (57,), "upper_lip_inner": (62,), "lower_lip_inner": (66,),
}
# Body landmarks of mediapipe33 that OpenPose BODY_25 lacks but its face has.
_OPENPOSE_FACE70_TO_BODY = {
    "right_eye_outer": 36, "right_eye_inner": 39, "left_eye_inner": 42, "left_eye_outer": 45,
    "mouth_right": 48, "mouth_left": 54,
}
_OP_BODY = _openpose_body_table()


def holistic_from_openpose(body=None, left_hand=None, right_hand=None, face=None) -> np.ndarray:
    """OpenPose parts -> (K, 3) ``holistic`` keypoints (x, y px, confidence).

    body: (25, 3) BODY_25; left_hand / right_hand: (21, 3) (the subject's left/right, same
    point order as MediaPipe's hand); face: (70, 3). Any part may be None (confidence 0).
    Body: same names, big toe -> foot_index; eye corners and mouth corners of the body come
    from the face when given. Face: see ``OPENPOSE_FACE70_TO_FACE``; midpoints take the
    smaller confidence. Keypoints without a counterpart get confidence 0.
    """
    out = np.zeros((len(HOLISTIC), 3), dtype=np.float64)
    if body is not None:
        out[_OP_BODY[:, 0]] = body[_OP_BODY[:, 1]]
    for prefix, hand in (("left_hand", left_hand), ("right_hand", right_hand)):
        if hand is not None:
            start = _HOLISTIC_INDEX[f"{prefix}.{HAND21[0]}"]
            out[start:start + len(HAND21)] = hand
    if face is not None:
        for name, idx in OPENPOSE_FACE70_TO_FACE.items():
            pts = face[list(idx)]
            k = _HOLISTIC_INDEX[f"face.{name}"]
            out[k, :2] = pts[:, :2].mean(0)
            out[k, 2] = pts[:, 2].min()
        for name, i in _OPENPOSE_FACE70_TO_BODY.items():
            out[_HOLISTIC_INDEX[name]] = face[i]
    out[out[:, 2] <= 0] = 0.0
    return out


_OPENPOSE_PARTS = (
    ("pose_keypoints_2d", 25, "BODY_25"),
    ("hand_left_keypoints_2d", 21, "hand"),
    ("hand_right_keypoints_2d", 21, "hand"),
    ("face_keypoints_2d", 70, "face-70"),
)


def _openpose_frame(path: Path, data=None) -> list:
    if data is None:
        data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise InputError(path, 'expected OpenPose JSON: an object with a "people" list')
    people = []
    for i, person in enumerate(data["people"]):
        if not isinstance(person, dict):
            raise InputError(path, f"people[{i}]: expected an object")
        parts = []
        for key, n, what in _OPENPOSE_PARTS:
            arr = _floats(path, person.get(key), 3 * n, f"people[{i}].{key} ({what}: {n} x [x, y, c])",
                          allow_empty=True, finite=False)
            parts.append(None if arr is None else arr.reshape(n, 3))
        if all(p is None for p in parts):
            raise InputError(path, f"people[{i}]: no pose_keypoints_2d, hand or face keypoints")
        people.append((holistic_from_openpose(*parts), None))
    return people


def _natural_key(name: str):
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name)]


def read_openpose(path, image_size=None) -> KeypointSequence:
    """OpenPose JSON (BODY_25 + hands + face, one file per frame), or a folder of them
    (a video; *.json sorted by name, numbers compared as numbers), in the ``holistic``
    convention (see ``holistic_from_openpose``). OpenPose writes no image size: pass
    image_size (H, W), else the keypoints' extent is used (warning)."""
    path = Path(path)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() == ".json" and p.is_file()),
                       key=lambda p: _natural_key(p.name))
        if not files:
            raise InputError(path, "no .json files in this folder (expected OpenPose JSON, one per frame)")
    else:
        files = [path]
    raw = [_openpose_frame(f) for f in files]
    notes: list = []
    size = _check_image_size(image_size) or _guess_image_size(path, raw, notes)
    return _build(path, raw, [size] * len(raw), "holistic", f"openpose-json:{path.name}",
                  [f.name for f in files], notes=notes)


# --------------------------------------------------------------------------- hmrkit npz


def write_evidence_npz(path, keypoints2d, convention: str, image_size, cam_K=None, fps=None) -> Path:
    """Write an hmrkit evidence npz (compressed) atomically (``hmrkit.io.atomic_write``: a
    temporary file in the same folder, then a rename), so a failure never leaves a
    half-written file nor touches a previous one. The folder is created when missing.

    keypoints2d: (T, P, K, 3) x, y pixels and confidence in [0, 1] (0 = absent).
    convention:  a name of ``hmrkit.conventions`` with K keypoints.
    image_size:  (H, W) pixels.
    cam_K:       optional (T, 3, 3) intrinsics, pixels.
    fps:         optional frames per second.
    """
    path = Path(path)
    kp = np.asarray(keypoints2d, dtype=np.float32)
    if kp.ndim != 4 or kp.shape[-1] != 3:
        raise ValueError(f"keypoints2d: expected shape (T, P, K, 3), got {kp.shape}")
    k = len(conventions.get(convention))
    if kp.shape[2] != k:
        raise ValueError(f"keypoints2d: convention {convention!r} has {k} keypoints, got shape {kp.shape}")
    if not np.isfinite(kp).all():
        raise ValueError("keypoints2d: contains NaN or inf")
    size = _check_image_size(image_size)
    arrays = {
        "keypoints2d": kp,
        "convention": np.array(convention),
        "image_size": np.array(size, dtype=np.int64),
    }
    if cam_K is not None:
        cam_K = np.asarray(cam_K, dtype=np.float64)
        if cam_K.shape != (kp.shape[0], 3, 3):
            raise ValueError(f"cam_K: expected shape ({kp.shape[0]}, 3, 3), got {cam_K.shape}")
        arrays["cam_K"] = cam_K
    if fps is not None:
        if not (float(fps) > 0 and math.isfinite(float(fps))):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        arrays["fps"] = np.array(float(fps))
    with atomic_write(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def _unpacked_bytes(data: bytes) -> int:
    """What the members of a zip archive unpack to (their declared sizes, which bound what
    zipfile reads), or 0 when it is no zip archive (np.load then says what is wrong)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return sum(info.file_size for info in zf.infolist())
    except Exception:
        return 0


def _show(arr: np.ndarray) -> str:
    """An array's values for a one-line message, or its shape when it is large."""
    return _short(arr.tolist()) if arr.size <= 6 else f"an array of shape {arr.shape}"


def _check_cam_K(path, cam_K: np.ndarray, T: int) -> None:
    """InputError naming the file unless cam_K is (T, 3, 3) camera matrices."""
    if cam_K.shape != (T, 3, 3):
        raise InputError(path, f"cam_K: expected shape ({T}, 3, 3), got {cam_K.shape}")
    # each distinct matrix once (a file usually has one for all frames)
    uniq, inverse = np.unique(cam_K.reshape(T, 9), axis=0, return_inverse=True)
    bad_u = [i for i, K in enumerate(uniq) if intrinsics_problem(K.reshape(3, 3))]
    bad = np.flatnonzero(np.isin(inverse.reshape(-1), bad_u))
    if len(bad):
        t, n = int(bad[0]), len(bad)
        why = intrinsics_problem(cam_K[t])
        frames = f"frame {t}" + (f" and {n - 1} other frame(s)" if n > 1 else "")
        raise InputError(path, f"cam_K of {frames} is not a camera matrix ({why}); fix it, or write the file "
                               f"without cam_K (hmrkit then uses --focal, --fov or a {DEFAULT_FOV_DEG:g} degree "
                               f"field of view)")


def read_evidence_npz(path) -> KeypointSequence:
    """Read an hmrkit evidence npz (see ``write_evidence_npz``): keys keypoints2d
    (T, P, K, 3), convention, image_size (H, W), optional cam_K (T, 3, 3), optional fps.
    Keypoints with a NaN or infinite value are missing (see the module doc)."""
    path = Path(path)
    try:
        data = path.read_bytes()  # np.load on a path leaks the file when the archive is bad
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror or e})") from None
    unpacked = _unpacked_bytes(data)
    if unpacked > MAX_NPZ_BYTES:
        raise InputError(path, f"its arrays unpack to {unpacked / 2**30:.1f} GiB, more than keypoints take "
                               f"(limit {MAX_NPZ_BYTES / 2**30:.0f} GiB); not an hmrkit evidence npz")
    try:
        npz = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError, EOFError
        raise InputError(path, f"not a readable npz file ({type(e).__name__}: {e})") from None
    if not hasattr(npz, "files"):
        raise InputError(path, "expected an npz archive of named arrays, found a single .npy array")
    with npz:
        missing = [key for key in ("keypoints2d", "convention", "image_size") if key not in npz.files]
        if missing:
            raise InputError(path, f"missing arrays {missing}; an hmrkit evidence npz needs keypoints2d, "
                                   f"convention, image_size")
        try:
            arrays = {key: npz[key] for key in ("keypoints2d", "convention", "image_size", "cam_K", "fps")
                      if key in npz.files}
        except Exception as e:  # object arrays (pickles), corrupt members (zlib, CRC), bad headers
            msg = str(e).splitlines()[0] if str(e) else ""
            raise InputError(path, f"unreadable arrays ({type(e).__name__}: {_short(msg, 120)})") from None
    for key, arr in arrays.items():
        if key != "convention" and arr.dtype.kind not in "iuf":
            raise InputError(path, f"{key}: expected numbers, got an array of dtype {arr.dtype}")
    kp = np.asarray(arrays["keypoints2d"], dtype=np.float64)
    convention = str(arrays["convention"][()]) if arrays["convention"].ndim == 0 else None
    size = np.asarray(arrays["image_size"])
    cam_K = np.asarray(arrays["cam_K"], dtype=np.float64) if "cam_K" in arrays else None
    fps = np.asarray(arrays["fps"], dtype=np.float64) if "fps" in arrays else None
    if convention is None:
        raise InputError(path, "convention: expected a single string")
    if convention not in conventions.available():
        raise InputError(path, f"unknown keypoint convention {convention!r}; known: {conventions.available()}")
    k = len(conventions.get(convention))
    if kp.ndim != 4 or kp.shape[2:] != (k, 3):
        raise InputError(path, f"keypoints2d: expected shape (T, P, {k}, 3) for {convention}, got {kp.shape}")
    if kp.shape[0] == 0 or kp.shape[1] == 0:
        raise NoPersonError(path, f"keypoints2d is empty, shape {kp.shape}")
    if (size.shape != (2,) or not np.isfinite(size.astype(np.float64)).all() or (size < 1).any()
            or (size > MAX_COORDINATE_PX).any()):
        raise InputError(path, f"image_size: expected (H, W) in pixels, each from 1 to {MAX_COORDINATE_PX:,.0f}, "
                               f"got {_show(size)}")
    if cam_K is not None:
        _check_cam_K(path, cam_K, kp.shape[0])
    if fps is not None:
        if fps.shape != () or not (np.isfinite(fps) and fps > 0):
            raise InputError(path, f"fps: expected a positive number, got {_show(fps)}")
        fps = float(fps)
    hw = (int(size[0]), int(size[1]))
    raw = [[(kp[t, p], None) for p in range(kp.shape[1])] for t in range(kp.shape[0])]
    return _build(path, raw, [hw] * len(raw), convention, f"hmrkit-npz:{path.name}",
                  range(kp.shape[0]), cam_K=cam_K, fps=fps)


# --------------------------------------------------------------------------- entry point

_ACCEPTED = "a COCO keypoint JSON, an OpenPose JSON (or a folder of them) or an hmrkit evidence .npz"


def read_keypoint_file(path, image_size=None) -> KeypointSequence:
    """Read keypoints from ``path``: COCO keypoint results or annotations JSON (coco17),
    OpenPose JSON or a folder of OpenPose JSON files (holistic), or an hmrkit evidence npz.

    image_size (H, W): used when the file has none (COCO results, OpenPose); without it the
    keypoints' extent is used, with a warning. Raises InputError naming the file.
    """
    path = Path(path)
    image_size = _check_image_size(image_size)
    if not path.exists():
        raise InputError(path, f"no such file or folder (expected {_ACCEPTED})")
    if path.is_dir():
        return read_openpose(path, image_size)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_evidence_npz(path)
    if suffix != ".json":
        raise InputError(path, f"unsupported keypoint file type {suffix or '(no suffix)'!r}; expected {_ACCEPTED}")
    data = _load_json(path)
    if isinstance(data, list):
        return read_coco_results(path, data, image_size)
    if isinstance(data, dict):
        if "people" in data:
            return _read_openpose_single(path, data, image_size)
        if "annotations" in data or "images" in data:
            return read_coco_annotations(path, data)
    raise InputError(path, 'unrecognised JSON layout: expected COCO results (a list), COCO annotations '
                           '({"images", "annotations"}) or OpenPose ({"people": [...]})')


def _read_openpose_single(path: Path, data, image_size) -> KeypointSequence:
    """One OpenPose frame already parsed from ``path`` (see ``read_openpose``)."""
    raw = [_openpose_frame(path, data)]
    notes: list = []
    size = _check_image_size(image_size) or _guess_image_size(path, raw, notes)
    return _build(path, raw, [size], "holistic", f"openpose-json:{path.name}", [path.name], notes=notes)

"""Keypoint conventions: name tables, skeleton edges, left/right flips and conversions.

Every keypoint has a semantic name shared across conventions (``left_shoulder``,
``right_hip``, ...), so conversion is by name, with a validity mask for the keypoints the
source does not have. A few keypoints are derived as midpoints (``neck`` as the middle of
the shoulders, ``mid_hip``/``pelvis`` as the middle of the hips) when the source lacks
them; the mask says which. Note that names are semantic, not metric: ``left_hip`` of
``smpl24`` is the hip joint centre, that of ``coco17`` an annotator's surface point.

Conventions:
  coco17       COCO person keypoints.
  mediapipe33  MediaPipe Pose / BlazePose landmarks.
  hand21       MediaPipe Hands / OpenPose hand (wrist, 4 per finger, thumb to pinky).
  h36m17       Human3.6M 17 joints as used by the 3D-pose literature.
  openpose25   OpenPose BODY_25.
  smpl24       SMPL's 24 joints.
  face         a subset of MediaPipe FaceMesh: jaw contour, brows, eyes, nose, lips
               (``FACE_MESH_INDICES`` gives the FaceMesh index of each).
  holistic     mediapipe33 + left hand21 + right hand21 + face: what hmrkit's MediaPipe
               detector produces (hand names prefixed ``left_hand.``/``right_hand.``,
               face names prefixed ``face.``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

COCO17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)

MEDIAPIPE33 = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer",
    "right_eye_inner", "right_eye", "right_eye_outer", "left_ear", "right_ear",
    "mouth_left", "mouth_right", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_pinky", "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)

HAND21 = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)

H36M17 = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "spine", "thorax", "neck_nose", "head_top",
    "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
)

OPENPOSE25 = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist", "mid_hip",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)

SMPL24 = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)

# MediaPipe FaceMesh indices of the face subset (the subject's left/right).
FACE_MESH_INDICES = {
    # jaw contour, from the right ear down to the chin and up to the left ear
    "jaw_r0": 234, "jaw_r1": 93, "jaw_r2": 132, "jaw_r3": 58, "jaw_r4": 172, "jaw_r5": 136,
    "jaw_r6": 150, "jaw_r7": 176, "chin": 152, "jaw_l7": 400, "jaw_l6": 379,
    "jaw_l5": 365, "jaw_l4": 397, "jaw_l3": 288, "jaw_l2": 361, "jaw_l1": 323, "jaw_l0": 454,
    # brows, inner to outer
    "right_brow_inner": 107, "right_brow_mid": 105, "right_brow_outer": 70,
    "left_brow_inner": 336, "left_brow_mid": 334, "left_brow_outer": 300,
    # eyes
    "right_eye_inner_corner": 133, "right_eye_outer_corner": 33,
    "right_eye_upper_lid": 159, "right_eye_lower_lid": 145,
    "left_eye_inner_corner": 362, "left_eye_outer_corner": 263,
    "left_eye_upper_lid": 386, "left_eye_lower_lid": 374,
    # nose
    "nose_bridge": 168, "nose_tip": 1, "right_nostril": 98, "left_nostril": 327,
    # lips
    "mouth_right_corner": 61, "mouth_left_corner": 291, "upper_lip_top": 0,
    "upper_lip_inner": 13, "lower_lip_inner": 14, "lower_lip_bottom": 17,
}
FACE = tuple(FACE_MESH_INDICES)

HOLISTIC = (
    MEDIAPIPE33
    + tuple(f"left_hand.{n}" for n in HAND21)
    + tuple(f"right_hand.{n}" for n in HAND21)
    + tuple(f"face.{n}" for n in FACE)
)

_NAMES = {
    "coco17": COCO17,
    "mediapipe33": MEDIAPIPE33,
    "hand21": HAND21,
    "h36m17": H36M17,
    "openpose25": OPENPOSE25,
    "smpl24": SMPL24,
    "face": FACE,
    "holistic": HOLISTIC,
}

_HAND_EDGES = (
    ("wrist", "thumb_cmc"), ("thumb_cmc", "thumb_mcp"), ("thumb_mcp", "thumb_ip"), ("thumb_ip", "thumb_tip"),
    ("wrist", "index_mcp"), ("index_mcp", "index_pip"), ("index_pip", "index_dip"), ("index_dip", "index_tip"),
    ("wrist", "middle_mcp"), ("middle_mcp", "middle_pip"), ("middle_pip", "middle_dip"), ("middle_dip", "middle_tip"),
    ("wrist", "ring_mcp"), ("ring_mcp", "ring_pip"), ("ring_pip", "ring_dip"), ("ring_dip", "ring_tip"),
    ("wrist", "pinky_mcp"), ("pinky_mcp", "pinky_pip"), ("pinky_pip", "pinky_dip"), ("pinky_dip", "pinky_tip"),
    ("index_mcp", "middle_mcp"), ("middle_mcp", "ring_mcp"), ("ring_mcp", "pinky_mcp"),
)


def _sym(pairs):
    """Edges given for the left side, mirrored to the right."""
    out = []
    for a, b in pairs:
        out.append((a, b))
        ra, rb = a.replace("left", "right"), b.replace("left", "right")
        if (ra, rb) != (a, b):
            out.append((ra, rb))
    return tuple(out)


_LIMBS = _sym((
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("left_shoulder", "left_hip"),
))

_EDGES = {
    "coco17": _LIMBS + (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"))
    + _sym((("nose", "left_eye"), ("left_eye", "left_ear"))),
    "mediapipe33": _LIMBS + (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"),
                             ("mouth_left", "mouth_right"))
    + _sym((
        ("nose", "left_eye_inner"), ("left_eye_inner", "left_eye"), ("left_eye", "left_eye_outer"),
        ("left_eye_outer", "left_ear"),
        ("left_wrist", "left_pinky"), ("left_wrist", "left_index"), ("left_pinky", "left_index"),
        ("left_wrist", "left_thumb"),
        ("left_ankle", "left_heel"), ("left_heel", "left_foot_index"), ("left_ankle", "left_foot_index"),
    )),
    "hand21": _HAND_EDGES,
    "h36m17": _sym((
        ("pelvis", "left_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
        ("thorax", "left_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    )) + (("pelvis", "spine"), ("spine", "thorax"), ("thorax", "neck_nose"), ("neck_nose", "head_top")),
    "openpose25": _sym((
        ("neck", "left_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
        ("mid_hip", "left_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
        ("nose", "left_eye"), ("left_eye", "left_ear"),
        ("left_ankle", "left_heel"), ("left_ankle", "left_big_toe"), ("left_big_toe", "left_small_toe"),
    )) + (("nose", "neck"), ("neck", "mid_hip")),
    "smpl24": _sym((
        ("pelvis", "left_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("left_ankle", "left_foot"),
        ("spine3", "left_collar"), ("left_collar", "left_shoulder"), ("left_shoulder", "left_elbow"),
        ("left_elbow", "left_wrist"), ("left_wrist", "left_hand"),
    )) + (("pelvis", "spine1"), ("spine1", "spine2"), ("spine2", "spine3"), ("spine3", "neck"), ("neck", "head")),
    "face": tuple(zip(FACE[:16], FACE[1:17])) + (
        ("right_brow_inner", "right_brow_mid"), ("right_brow_mid", "right_brow_outer"),
        ("left_brow_inner", "left_brow_mid"), ("left_brow_mid", "left_brow_outer"),
        ("right_eye_inner_corner", "right_eye_upper_lid"), ("right_eye_upper_lid", "right_eye_outer_corner"),
        ("right_eye_outer_corner", "right_eye_lower_lid"), ("right_eye_lower_lid", "right_eye_inner_corner"),
        ("left_eye_inner_corner", "left_eye_upper_lid"), ("left_eye_upper_lid", "left_eye_outer_corner"),
        ("left_eye_outer_corner", "left_eye_lower_lid"), ("left_eye_lower_lid", "left_eye_inner_corner"),
        ("nose_bridge", "nose_tip"), ("right_nostril", "nose_tip"), ("left_nostril", "nose_tip"),
        ("mouth_right_corner", "upper_lip_top"), ("upper_lip_top", "mouth_left_corner"),
        ("mouth_left_corner", "lower_lip_bottom"), ("lower_lip_bottom", "mouth_right_corner"),
    ),
}
_EDGES["holistic"] = (
    _EDGES["mediapipe33"]
    + tuple((f"left_hand.{a}", f"left_hand.{b}") for a, b in _HAND_EDGES)
    + tuple((f"right_hand.{a}", f"right_hand.{b}") for a, b in _HAND_EDGES)
    + tuple((f"face.{a}", f"face.{b}") for a, b in _EDGES["face"])
)

# Keypoints a conversion may derive as the midpoint of two others.
DERIVED = {
    "neck": ("left_shoulder", "right_shoulder"),
    "thorax": ("left_shoulder", "right_shoulder"),
    "mid_hip": ("left_hip", "right_hip"),
    "pelvis": ("left_hip", "right_hip"),
}
# Keypoints that are the same point under another name.
ALIASES = {
    "neck_nose": "nose",
    "left_hand.wrist": "left_wrist",
    "right_hand.wrist": "right_wrist",
    # OpenPose's big toe and MediaPipe's foot index are both the tip of the foot
    "left_big_toe": "left_foot_index",
    "right_big_toe": "right_foot_index",
}


def _mirror_name(name: str) -> str:
    for a, b in (("left", "right"), ("right", "left")):
        if a in name:
            return name.replace(a, b)
    for a, b in (("_l", "_r"), ("_r", "_l")):
        if name.startswith("jaw" + a):
            return name.replace("jaw" + a, "jaw" + b)
    return name


@dataclass(frozen=True)
class Convention:
    """A keypoint convention: names, drawing edges (index pairs) and the flip permutation."""

    name: str
    names: tuple
    edges: tuple  # ((i, j), ...)
    flip: tuple   # flip[k] = index of the mirrored keypoint of k

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)


def available() -> list[str]:
    """Names of the known conventions."""
    return sorted(_NAMES)


@lru_cache(maxsize=None)
def get(name: str) -> Convention:
    """The convention called ``name`` (see ``available()``)."""
    if name not in _NAMES:
        raise ValueError(f"unknown keypoint convention {name!r}; choose from {available()}")
    names = _NAMES[name]
    index = {n: i for i, n in enumerate(names)}
    edges = tuple((index[a], index[b]) for a, b in _EDGES[name])
    flip = tuple(index.get(_mirror_name(n), i) for i, n in enumerate(names))
    return Convention(name=name, names=names, edges=edges, flip=flip)


def flip_keypoints(kp: np.ndarray, convention: str, image_width: float | None = None) -> np.ndarray:
    """Mirror keypoints (..., K, D) left/right: permute by the flip table and, when
    image_width is given, map x to image_width - 1 - x (pixel coordinates)."""
    conv = get(convention)
    out = np.asarray(kp)[..., list(conv.flip), :].copy()
    if image_width is not None:
        out[..., 0] = image_width - 1 - out[..., 0]
    return out


@lru_cache(maxsize=None)
def conversion(src: str, dst: str):
    """How to build dst keypoints from src keypoints.

    Returns (index_a, index_b, mask), each of length len(dst): dst[k] is the mean of
    src[index_a[k]] and src[index_b[k]] (equal indices for a direct copy); mask[k] says
    whether the source provides it."""
    s, d = get(src), get(dst)
    sidx = {n: i for i, n in enumerate(s.names)}
    ia = np.zeros(len(d), dtype=np.int64)
    ib = np.zeros(len(d), dtype=np.int64)
    mask = np.zeros(len(d), dtype=bool)
    for k, n in enumerate(d.names):
        candidates = [n, ALIASES.get(n)] + [a for a, b in ALIASES.items() if b == n]
        hit = next((c for c in candidates if c is not None and c in sidx), None)
        if hit is not None:
            ia[k] = ib[k] = sidx[hit]
            mask[k] = True
        elif n in DERIVED and all(m in sidx for m in DERIVED[n]):
            ia[k], ib[k] = (sidx[m] for m in DERIVED[n])
            mask[k] = True
    return ia, ib, mask


def convert(kp, src: str, dst: str):
    """Keypoints (..., K_src, D) in src -> ((..., K_dst, D), mask (K_dst,) bool).

    Works on numpy arrays and torch tensors. Missing keypoints are zeros (and, when D == 3
    with a confidence last, get confidence 0); for derived midpoints the confidence is the
    smaller of the two."""
    ia, ib, mask = conversion(src, dst)
    is_torch = not isinstance(kp, np.ndarray)
    if is_torch:
        import torch

        ta, tb = torch.as_tensor(ia, device=kp.device), torch.as_tensor(ib, device=kp.device)
        a, b = kp[..., ta, :], kp[..., tb, :]
        out = 0.5 * (a + b)
        m = torch.as_tensor(mask, device=kp.device)
        out = out * m[:, None].to(out.dtype)
        return out, mask
    a, b = kp[..., ia, :], kp[..., ib, :]
    out = 0.5 * (a + b)
    out = out * mask[:, None]
    return out, mask


def convert_with_confidence(kp: np.ndarray, src: str, dst: str) -> np.ndarray:
    """(..., K_src, 3) x, y, confidence -> (..., K_dst, 3); confidence 0 where missing,
    and the smaller of the two for derived midpoints."""
    ia, ib, mask = conversion(src, dst)
    kp = np.asarray(kp)
    out = 0.5 * (kp[..., ia, :] + kp[..., ib, :])
    out[..., 2] = np.minimum(kp[..., ia, 2], kp[..., ib, 2])
    out[..., ~mask, :] = 0.0
    return out

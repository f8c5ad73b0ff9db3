"""MediaPipe Holistic (the legacy ``mp.solutions`` API of mediapipe==0.10.14) as a Detector.

The models ship inside the mediapipe wheel; nothing is downloaded. MediaPipe Holistic is
single-person: ``detect`` returns at most one Evidence, in the ``holistic`` convention
(33 pose landmarks, 21 left-hand, 21 right-hand, then the face subset of
``hmrkit.conventions.FACE_MESH_INDICES``).

Facts checked on the shared sample photos (and pinned in tests/test_detect.py):
- "left" is the subject's left, for the pose, the hands and the face mesh: on a person
  facing the camera the left shoulder appears on the image's right (larger x), and the
  left-hand landmarks lie at the pose's left wrist.
- ``pose_world_landmarks`` are already in OpenCV camera axes: x right, y down, z away from
  the camera (the nose of a person facing the camera has a smaller z than the hips),
  metres, origin at the middle of the hips. They are copied unchanged.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hmrkit.conventions import FACE_MESH_INDICES, HAND21, HOLISTIC, MEDIAPIPE33
from hmrkit.detect.base import Detector, bbox_from_keypoints, check_image
from hmrkit.types import Evidence

_N_BODY = len(MEDIAPIPE33)
_N_HAND = len(HAND21)
_LEFT_HAND = slice(_N_BODY, _N_BODY + _N_HAND)
_RIGHT_HAND = slice(_N_BODY + _N_HAND, _N_BODY + 2 * _N_HAND)
_FACE = slice(_N_BODY + 2 * _N_HAND, len(HOLISTIC))
_FACE_INDEX = np.array(list(FACE_MESH_INDICES.values()), dtype=np.int64)

# The pose landmark model of each complexity; only "full" (1) ships in the wheel, the
# others are fetched from the internet by mediapipe on first use, which hmrkit cannot do.
_POSE_MODEL = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}


@dataclass(frozen=True)
class MediaPipeHolisticConfig:
    """Settings of ``MediaPipeHolistic``.

    static_image_mode:        True for unrelated photos (detect every time); False for the
                              frames of one video (track between frames; call ``reset()``
                              between videos).
    model_complexity:         pose landmark model: 1 (full) ships in the wheel; 0 (lite)
                              and 2 (heavy) need their .tflite file placed in mediapipe's
                              package folder by hand (mediapipe would download it).
    min_detection_confidence: person detector threshold in [0, 1].
    min_tracking_confidence:  tracking threshold in [0, 1] (video mode only).
    smooth_landmarks:         temporal filtering of landmarks (video mode only).
    enable_segmentation:      also return the person mask (Evidence.mask).
    refine_face_landmarks:    MediaPipe's attention face model (iris); slower.
    outside_margin:           body landmarks farther than this fraction of max(H, W) outside
                              the image get confidence 0 (MediaPipe extrapolates limbs
                              beyond the frame); None keeps MediaPipe's visibility.
    bbox_pad:                 the box grows by this fraction of its size on each side.
    bbox_min_confidence:      keypoints at or above this confidence define the box.
    """

    static_image_mode: bool = True
    model_complexity: int = 1
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    smooth_landmarks: bool = True
    enable_segmentation: bool = True
    refine_face_landmarks: bool = False
    outside_margin: float | None = 0.1
    bbox_pad: float = 0.1
    bbox_min_confidence: float = 0.5

    def __post_init__(self):
        if self.model_complexity not in _POSE_MODEL:
            raise ValueError(f"model_complexity must be 0, 1 or 2, got {self.model_complexity!r}")
        for name in ("min_detection_confidence", "min_tracking_confidence", "bbox_min_confidence"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        if self.outside_margin is not None and self.outside_margin < 0:
            raise ValueError(f"outside_margin must be >= 0 or None, got {self.outside_margin!r}")
        if self.bbox_pad < 0:
            raise ValueError(f"bbox_pad must be >= 0, got {self.bbox_pad!r}")


def _import_mediapipe():
    """The mediapipe module, with an install hint when it is missing."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # quieten the C++ logs (before import)
    try:
        import mediapipe
    except ImportError as e:
        raise ImportError(
            f'MediaPipeHolistic needs mediapipe ({e}); install it with: pip install "hmrkit[detect]"'
        ) from e
    return mediapipe


def _check_model_present(mp, model_complexity: int) -> None:
    name = _POSE_MODEL[model_complexity]
    path = Path(mp.__file__).parent / "modules" / "pose_landmark" / name
    if not path.exists():
        raise ValueError(
            f"model_complexity={model_complexity} needs {name}, which is not in the mediapipe wheel "
            f"and hmrkit does not download models; use model_complexity=1 or place the file at {path}"
        )


def _landmarks_array(landmark_list, n: int) -> np.ndarray:
    """A mediapipe NormalizedLandmarkList / LandmarkList -> (n, 4) x, y, z, visibility."""
    lm = landmark_list.landmark
    if len(lm) < n:
        raise RuntimeError(f"mediapipe returned {len(lm)} landmarks, expected at least {n}")
    return np.array([(p.x, p.y, p.z, p.visibility) for p in lm], dtype=np.float64)


def evidence_from_holistic(results, image_size: tuple, config: MediaPipeHolisticConfig) -> list[Evidence]:
    """Convert the results of ``mp.solutions.holistic.Holistic.process`` for an image of
    size (H, W) into [] (no pose) or [Evidence] in the ``holistic`` convention.

    keypoints2d (K, 3): pixels (x = landmark.x * W, y = landmark.y * H) and confidence:
    body = visibility clipped to [0, 1] (0 beyond ``outside_margin``); hands and face =
    1 where MediaPipe found that part, else 0 (with x = y = 0).
    keypoints3d (K, 4): body from pose_world_landmarks (metres, origin mid-hips, OpenCV
    axes) + the same confidence as 2D; zeros for hands and face.
    """
    if results.pose_landmarks is None:
        return []
    h, w = image_size
    kp2d = np.zeros((len(HOLISTIC), 3), dtype=np.float64)
    kp3d = np.zeros((len(HOLISTIC), 4), dtype=np.float64)

    body = _landmarks_array(results.pose_landmarks, _N_BODY)[:_N_BODY]
    kp2d[:_N_BODY, 0] = body[:, 0] * w
    kp2d[:_N_BODY, 1] = body[:, 1] * h
    conf = np.clip(np.nan_to_num(body[:, 3]), 0.0, 1.0)
    if config.outside_margin is not None:
        m = config.outside_margin * max(h, w)
        x, y = kp2d[:_N_BODY, 0], kp2d[:_N_BODY, 1]
        outside = (x < -m) | (x > w - 1 + m) | (y < -m) | (y > h - 1 + m)
        conf = np.where(outside, 0.0, conf)
    kp2d[:_N_BODY, 2] = conf

    if results.pose_world_landmarks is not None:
        world = _landmarks_array(results.pose_world_landmarks, _N_BODY)[:_N_BODY]
        kp3d[:_N_BODY, :3] = world[:, :3]  # already x right, y down, z forward (see module doc)
        kp3d[:_N_BODY, 3] = conf

    for part, sl in ((results.left_hand_landmarks, _LEFT_HAND), (results.right_hand_landmarks, _RIGHT_HAND)):
        if part is not None:
            hand = _landmarks_array(part, _N_HAND)[:_N_HAND]
            kp2d[sl, 0] = hand[:, 0] * w
            kp2d[sl, 1] = hand[:, 1] * h
            kp2d[sl, 2] = 1.0
    if results.face_landmarks is not None:
        face = _landmarks_array(results.face_landmarks, int(_FACE_INDEX.max()) + 1)[_FACE_INDEX]
        kp2d[_FACE, 0] = face[:, 0] * w
        kp2d[_FACE, 1] = face[:, 1] * h
        kp2d[_FACE, 2] = 1.0

    kp2d = kp2d.astype(np.float32)
    mask = None
    mask_box = None
    if results.segmentation_mask is not None:
        mask = np.clip(np.asarray(results.segmentation_mask, dtype=np.float32), 0.0, 1.0).copy()
        if mask.shape != (h, w):
            raise RuntimeError(f"mediapipe returned a mask of shape {mask.shape}, expected {(h, w)}")
        # The mask may cover other people: only its part near this person's keypoints
        # (their box grown by half its size on each side) widens the box.
        x0, y0, x1, y1 = bbox_from_keypoints(kp2d, (h, w), min_confidence=config.bbox_min_confidence, pad=0.5)
        window = mask[int(y0):int(y1) + 1, int(x0):int(x1) + 1] > 0.5
        ys, xs = np.nonzero(window)
        if len(xs):
            mask_box = np.array([xs.min() + int(x0), ys.min() + int(y0), xs.max() + int(x0), ys.max() + int(y0)],
                                dtype=np.float64)

    bbox = bbox_from_keypoints(kp2d, (h, w), min_confidence=config.bbox_min_confidence,
                               pad=config.bbox_pad, extra=mask_box)
    return [
        Evidence(
            image_size=(int(h), int(w)),
            keypoints2d=kp2d,
            convention="holistic",
            bbox=bbox,
            keypoints3d=kp3d.astype(np.float32),
            mask=mask,
            source="mediapipe",
        )
    ]


class MediaPipeHolistic(Detector):
    """MediaPipe Holistic: body (33), hands (2 x 21), face subset, world landmarks, mask.

    One person at most per image. In video mode (``static_image_mode=False``) it tracks
    the person from frame to frame; call ``reset()`` before the next video. A change of
    image size in video mode also resets the tracker.
    """

    def __init__(self, config: MediaPipeHolisticConfig | None = None):
        self.config = config if config is not None else MediaPipeHolisticConfig()
        self._mp = _import_mediapipe()
        _check_model_present(self._mp, self.config.model_complexity)
        self._graph = None
        self._size = None

    def _build(self):
        c = self.config
        return self._mp.solutions.holistic.Holistic(
            static_image_mode=c.static_image_mode,
            model_complexity=c.model_complexity,
            smooth_landmarks=c.smooth_landmarks,
            enable_segmentation=c.enable_segmentation,
            smooth_segmentation=c.smooth_landmarks,
            refine_face_landmarks=c.refine_face_landmarks,
            min_detection_confidence=c.min_detection_confidence,
            min_tracking_confidence=c.min_tracking_confidence,
        )

    def detect(self, image: np.ndarray) -> list[Evidence]:
        """image: RGB uint8 (H, W, 3) -> [] or [Evidence] (convention ``holistic``,
        keypoints in pixels of this image; see ``evidence_from_holistic``)."""
        image = check_image(image)
        size = image.shape[:2]
        if self._graph is not None and not self.config.static_image_mode and size != self._size:
            self.reset()
        if self._graph is None:
            self._graph = self._build()
        self._size = size
        with warnings.catch_warnings():
            # mediapipe 0.10.14 calls a protobuf API deprecated in protobuf 4 on every frame
            warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype", category=UserWarning)
            results = self._graph.process(image)
        return evidence_from_holistic(results, size, self.config)

    def reset(self) -> None:
        """Forget the tracked person (video mode); the model reloads on the next detect."""
        if not self.config.static_image_mode:
            self.close()

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None
            self._size = None

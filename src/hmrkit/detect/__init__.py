"""2D evidence: detectors (MediaPipe Holistic) and readers of keypoint files.

``import hmrkit.detect`` works without mediapipe; ``MediaPipeHolistic(...)`` raises an
ImportError with the install hint (``pip install "hmrkit[detect]"``) when it is missing.
"""

from __future__ import annotations

from hmrkit.detect.base import Detector, bbox_from_keypoints, bbox_from_points, check_image
from hmrkit.detect.mediapipe import MediaPipeHolistic, MediaPipeHolisticConfig
from hmrkit.detect.multi import MultiPersonConfig, MultiPersonDetector, MultiPersonResult, RejectedPerson
from hmrkit.detect.readers import (
    KeypointSequence,
    holistic_from_openpose,
    read_coco_annotations,
    read_coco_results,
    read_evidence_npz,
    read_keypoint_file,
    read_openpose,
    write_evidence_npz,
)

DETECTORS = {
    "mediapipe": (MediaPipeHolistic, MediaPipeHolisticConfig),
    "multi": (MultiPersonDetector, MultiPersonConfig),
}


def make_detector(name: str = "mediapipe", config=None) -> Detector:
    """A detector by name (``DETECTORS``), with its config (default settings if None)."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose from {sorted(DETECTORS)}")
    cls, config_cls = DETECTORS[name]
    if config is not None and not isinstance(config, config_cls):
        raise TypeError(f"detector {name!r} takes a {config_cls.__name__}, got {type(config).__name__}")
    return cls(config)


__all__ = [
    "DETECTORS",
    "Detector",
    "KeypointSequence",
    "MediaPipeHolistic",
    "MediaPipeHolisticConfig",
    "MultiPersonConfig",
    "MultiPersonDetector",
    "MultiPersonResult",
    "RejectedPerson",
    "bbox_from_keypoints",
    "bbox_from_points",
    "check_image",
    "holistic_from_openpose",
    "make_detector",
    "read_coco_annotations",
    "read_coco_results",
    "read_evidence_npz",
    "read_keypoint_file",
    "read_openpose",
    "write_evidence_npz",
]

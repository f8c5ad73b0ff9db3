"""The Detector interface and helpers shared by detectors and keypoint-file readers."""

from __future__ import annotations

import abc

import numpy as np

from hmrkit.errors import InputError
from hmrkit.io.images import detector_size_problem
from hmrkit.types import Evidence


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate a detector input: RGB uint8 (H, W, 3); returns it C-contiguous.

    ValueError for another dtype or shape (a caller's mistake); InputError (one line, no
    file name: the caller knows it, see ``hmrkit.io.check_detector_size``) for an image too
    small or too thin for the person detector: under ``MIN_DETECTOR_SIDE_PX`` a side or
    beyond ``MAX_DETECTOR_ASPECT``:1 (``hmrkit.io.images``)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"detector input: expected an RGB uint8 image of shape (H, W, 3), "
            f"got {image.dtype} {tuple(image.shape)}; convert it first (hmrkit.io reads images as RGB uint8)"
        )
    why = detector_size_problem(image.shape[0], image.shape[1])
    if why is not None:
        raise InputError(None, why)
    return np.ascontiguousarray(image)


def bbox_from_points(
    points: np.ndarray,
    image_size: tuple,
    pad: float = 0.1,
    extra: np.ndarray | None = None,
) -> np.ndarray:
    """A person box from points, padded and clipped to the image.

    points:     (N, 2) pixels (x, y); may be empty.
    image_size: (H, W) pixels.
    pad:        each side grows by ``pad`` times the box's width (left/right) or height
                (top/bottom): 0.1 gives a box 1.2 times the points' extent.
    extra:      optional (4,) xyxy box to include (e.g. a mask's extent).
    Returns (4,) float32 xyxy pixels; the whole image when there are no points.
    """
    h, w = image_size
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(1)]
    if extra is not None:
        e = np.asarray(extra, dtype=np.float64)
        pts = np.concatenate([pts, e.reshape(2, 2)], axis=0)
    if len(pts) == 0:
        return np.array([0, 0, w - 1, h - 1], dtype=np.float32)
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    dx, dy = pad * (x1 - x0), pad * (y1 - y0)
    box = np.array([x0 - dx, y0 - dy, x1 + dx, y1 + dy])
    box[[0, 2]] = np.clip(box[[0, 2]], 0, w - 1)
    box[[1, 3]] = np.clip(box[[1, 3]], 0, h - 1)
    return box.astype(np.float32)


def bbox_from_keypoints(keypoints2d: np.ndarray, image_size: tuple, min_confidence: float = 0.3,
                        pad: float = 0.1, extra: np.ndarray | None = None) -> np.ndarray:
    """(K, 3) pixels + confidence -> (4,) xyxy box of the keypoints with confidence >=
    ``min_confidence`` (all keypoints with confidence > 0 if none reaches it), padded by
    ``pad`` per side (see ``bbox_from_points``) and clipped to the image (H, W)."""
    kp = np.asarray(keypoints2d)
    sel = kp[:, 2] >= min_confidence
    if not sel.any():
        sel = kp[:, 2] > 0
    return bbox_from_points(kp[sel, :2], image_size, pad=pad, extra=extra)


class Detector(abc.ABC):
    """Finds people in images and returns their 2D (and optional 3D) evidence.

    Use as a context manager (or call ``close()``) to release the model; call ``reset()``
    between videos so tracking state does not carry over from one to the next.
    """

    @abc.abstractmethod
    def detect(self, image: np.ndarray) -> list[Evidence]:
        """image: RGB uint8 (H, W, 3) -> one Evidence per person found (empty if nobody).

        Evidence.keypoints2d are in pixels of this image."""

    def __call__(self, image: np.ndarray) -> list[Evidence]:
        return self.detect(image)

    def reset(self) -> None:
        """Forget tracking state (start of a new video). No-op for stateless detectors."""

    def close(self) -> None:
        """Release the model's resources (a later ``detect`` may load it again)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

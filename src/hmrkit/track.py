"""Identities of people across the frames of a video: ``Tracker``.

Per frame, ``Tracker.update(evidence_list, frame_index)`` gives each detection a track id.
Matching is Hungarian assignment (``scipy.optimize.linear_sum_assignment``) on a cost
that combines box overlap and keypoint distance, each track's box and keypoints first
moved by its constant-velocity prediction to the new frame. Pure numpy/scipy: no
detector inside; any ``hmrkit.types.Evidence`` works (boxes and keypoints in pixels).

Cost of pairing track t with detection d (both terms in [0, 1]):

    cost = iou_weight * (1 - IoU(box_t, box_d))
         + (1 - iou_weight) * min(1, mean_k |p_tk - p_dk| / (keypoint_scale * diag_t))

where the mean runs over the body keypoints with confidence >= ``min_confidence`` in
both, and diag_t is the diagonal of the track's predicted box. Without shared confident
keypoints the cost is ``1 - IoU``. Pairs with cost > ``max_cost`` are never matched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hmrkit.types import Evidence


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of ``Tracker``.

    iou_weight:      weight of the box term (1 - IoU) in the cost; the keypoint term
                     gets 1 - iou_weight.
    keypoint_scale:  the keypoint term saturates at 1 when the mean keypoint distance
                     reaches this fraction of the track's box diagonal.
    max_cost:        gate: a track and a detection with a higher cost are not matched.
    max_age:         a track not matched for more than this many frames is ended (it
                     survives shorter misses and keeps its id).
    min_confidence:  keypoints below this confidence are left out of the distance.
    velocity_smoothing: weight of the newest frame-to-frame motion in the track's
                     velocity (1 = only the last motion, 0 = no motion model).
    """

    iou_weight: float = 0.5
    keypoint_scale: float = 0.25
    max_cost: float = 0.75
    max_age: int = 10
    min_confidence: float = 0.3
    velocity_smoothing: float = 0.5

    def __post_init__(self):
        for name in ("iou_weight", "min_confidence", "velocity_smoothing"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"TrackerConfig.{name} must be in [0, 1], got {v!r}")
        if self.keypoint_scale <= 0:
            raise ValueError(f"TrackerConfig.keypoint_scale must be > 0, got {self.keypoint_scale!r}")
        if self.max_cost < 0:
            raise ValueError(f"TrackerConfig.max_cost must be >= 0, got {self.max_cost!r}")
        if self.max_age < 0:
            raise ValueError(f"TrackerConfig.max_age must be >= 0, got {self.max_age!r}")


@dataclass
class Track:
    """One followed person (read-only for users: ``Tracker.tracks``).

    track_id:   the identity, unique for the tracker's lifetime (ids are never reused).
    box:        (4,) float64 xyxy px at ``last_frame``.
    keypoints:  (K, 3) float64 body keypoints px + confidence at ``last_frame``.
    velocity:   (2,) float64 px per frame: smoothed motion of the box centre.
    size_rate:  (2,) float64 px per frame: smoothed change of box width, height.
    first_frame, last_frame: frame indices of the first and the latest match.
    hits:       number of frames matched.
    """

    track_id: int
    box: np.ndarray
    keypoints: np.ndarray
    velocity: np.ndarray
    size_rate: np.ndarray
    first_frame: int
    last_frame: int
    hits: int = 1

    def predict(self, frame_index: int) -> tuple:
        """(box (4,), keypoints (K, 3)) moved by the velocity to ``frame_index``."""
        dt = frame_index - self.last_frame
        shift = self.velocity * dt
        grow = 0.5 * self.size_rate * dt
        box = self.box + np.array([shift[0] - grow[0], shift[1] - grow[1], shift[0] + grow[0], shift[1] + grow[1]])
        kp = self.keypoints.copy()
        kp[:, :2] += shift
        return box, kp


def body_keypoints(evidence: Evidence) -> np.ndarray:
    """(K, 3) the keypoints the tracker compares: the 33 body points of ``holistic``
    evidence (hands and face would outweigh the body), all points otherwise."""
    kp = np.asarray(evidence.keypoints2d, dtype=np.float64)
    if evidence.convention == "holistic":
        kp = kp[:33]
    kp = kp.copy()
    bad = ~np.isfinite(kp).all(1)
    kp[bad] = 0.0
    return kp


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (N, 4), b (M, 4) xyxy px -> (N, M) IoU."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


class Tracker:
    """Track ids for the people of successive frames (see the module doc for the cost).

    ``update(evidence_list, frame_index)`` -> ``[(track_id, evidence), ...]`` in the order
    of ``evidence_list``. Frame indices must increase (gaps are fine: a missed frame is a
    miss). Tracks unmatched for more than ``max_age`` frames end; ids are never reused;
    ``reset()`` forgets every track (ids keep counting up).
    """

    def __init__(self, config: TrackerConfig | None = None):
        import scipy.optimize  # noqa: F401  (imported once here, not inside the first frame's update)

        self.config = config if config is not None else TrackerConfig()
        self._tracks: list[Track] = []
        self._next_id = 0
        self._last_frame = None

    @property
    def tracks(self) -> list:
        """The live tracks (``Track``), oldest first."""
        return list(self._tracks)

    def reset(self) -> None:
        """Forget every track (start of a new video). Ids are not reused afterwards."""
        self._tracks = []
        self._last_frame = None

    def cost_matrix(self, evidence_list: list, frame_index: int) -> np.ndarray:
        """(T, D) matching cost between the live tracks (predicted to ``frame_index``)
        and the detections, before the gate."""
        c = self.config
        T, D = len(self._tracks), len(evidence_list)
        if T == 0 or D == 0:
            return np.zeros((T, D))
        preds = [t.predict(frame_index) for t in self._tracks]
        boxes_t = np.stack([p[0] for p in preds])
        boxes_d = np.stack([np.asarray(e.bbox, np.float64) for e in evidence_list])
        box_term = 1.0 - box_iou_matrix(boxes_t, boxes_d)
        kps_d = [body_keypoints(e) for e in evidence_list]
        cost = np.empty((T, D))
        for i, (box, kp_t) in enumerate(preds):
            diag = max(float(np.hypot(box[2] - box[0], box[3] - box[1])), 1.0)
            for j, kp_d in enumerate(kps_d):
                if kp_d.shape != kp_t.shape:
                    cost[i, j] = box_term[i, j]
                    continue
                sel = (kp_t[:, 2] >= c.min_confidence) & (kp_d[:, 2] >= c.min_confidence)
                if not sel.any():
                    cost[i, j] = box_term[i, j]
                    continue
                dist = float(np.linalg.norm(kp_t[sel, :2] - kp_d[sel, :2], axis=1).mean())
                kp_term = min(1.0, dist / (c.keypoint_scale * diag))
                cost[i, j] = c.iou_weight * box_term[i, j] + (1.0 - c.iou_weight) * kp_term
        return cost

    def update(self, evidence_list: list, frame_index: int) -> list:
        """evidence_list: the people of frame ``frame_index`` (any order) ->
        [(track_id, evidence)] in the same order."""
        from scipy.optimize import linear_sum_assignment

        frame_index = int(frame_index)
        if self._last_frame is not None and frame_index <= self._last_frame:
            raise ValueError(f"Tracker.update: frame_index must increase, got {frame_index} after {self._last_frame}")
        self._last_frame = frame_index
        c = self.config
        # end the tracks that have missed more than max_age frames by now
        self._tracks = [t for t in self._tracks if frame_index - t.last_frame - 1 <= c.max_age]
        cost = self.cost_matrix(evidence_list, frame_index)
        ids = [None] * len(evidence_list)
        if cost.size:
            gated = np.where(cost <= c.max_cost, cost, 1e6)
            rows, cols = linear_sum_assignment(gated)
            for r, col in zip(rows, cols):
                if cost[r, col] <= c.max_cost:
                    self._advance(self._tracks[r], evidence_list[col], frame_index)
                    ids[col] = self._tracks[r].track_id
        for j, ev in enumerate(evidence_list):
            if ids[j] is None:
                ids[j] = self._start(ev, frame_index)
        return list(zip(ids, evidence_list))

    def run(self, frames: list, frame_indices=None) -> list:
        """Track a whole sequence from scratch: frames[t] = the evidence list of frame t
        (frame index ``frame_indices[t]``, default t) -> [[(track_id, evidence)], ...].
        The same as ``reset()`` then one ``update`` per frame."""
        self.reset()
        if frame_indices is None:
            frame_indices = range(len(frames))
        return [self.update(evs, fi) for evs, fi in zip(frames, frame_indices)]

    # ------------------------------------------------------------------ internals
    def _start(self, ev: Evidence, frame_index: int) -> int:
        tid = self._next_id
        self._next_id += 1
        self._tracks.append(Track(
            track_id=tid, box=np.asarray(ev.bbox, np.float64).copy(), keypoints=body_keypoints(ev),
            velocity=np.zeros(2), size_rate=np.zeros(2), first_frame=frame_index, last_frame=frame_index))
        return tid

    def _advance(self, t: Track, ev: Evidence, frame_index: int) -> None:
        a = self.config.velocity_smoothing
        dt = max(frame_index - t.last_frame, 1)
        box = np.asarray(ev.bbox, np.float64)
        centre_new = 0.5 * (box[:2] + box[2:])
        centre_old = 0.5 * (t.box[:2] + t.box[2:])
        size_new, size_old = box[2:] - box[:2], t.box[2:] - t.box[:2]
        if t.hits == 1:  # no motion known yet: take this one whole (none if smoothing is 0)
            on = 1.0 if a > 0 else 0.0
            t.velocity = on * (centre_new - centre_old) / dt
            t.size_rate = on * (size_new - size_old) / dt
        else:
            t.velocity = a * (centre_new - centre_old) / dt + (1 - a) * t.velocity
            t.size_rate = a * (size_new - size_old) / dt + (1 - a) * t.size_rate
        t.box = box.copy()
        t.keypoints = body_keypoints(ev)
        t.last_frame = frame_index
        t.hits += 1

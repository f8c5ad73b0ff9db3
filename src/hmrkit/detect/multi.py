"""Every person in a photo, and every person followed through a video, with the models
that ship in the mediapipe wheel (nothing is downloaded, no ``.task`` bundle is built).

How it works (mediapipe==0.10.14, legacy calculator graphs run from Python):

1. **Find** people with the BlazePose detector (``PoseDetectionCpu``) on the whole image,
   then on overlapping square tiles (coarse to fine: ``tile_levels`` fractions of
   min(H, W), ``tile_overlap`` apart). The detector sees its input at 224 px and is
   face-based, so tiles are what make small people visible to it. Each detection gives
   two alignment points (hip centre, a point above the head); detections whose points
   agree (one person seen in two windows) are merged; a tile keeps only the people that
   fit in it (larger ones belong to a coarser pass).
2. **Landmarks on the person's own region**: the pose landmark model
   (``PoseLandmarkByRoiCpu``) runs on the rotated square region MediaPipe derives from
   those two points (side 2.5x their distance), on the full image (a person cut by a tile
   border is seen whole), then ``refine_steps`` more times on the region its own
   alignment points give. A region on clutter or on a part of someone loses the person
   then and is dropped. People found twice are merged (``keypoint_distance``, also
   left/right-flipped), and a "person" lying on another's body (legs seen alone in a tile:
   ``explained_by``) is dropped.
3. **Hands and face from the person's own pose**: MediaPipe Holistic's own subgraphs
   (``HandLandmarksLeftAndRightCpu``, ``FaceLandmarksFromPoseCpu``) take *this person's*
   pose landmarks, crop the hands and face from them and run the hand and face models,
   exactly as Holistic does for its one person (so one person costs what Holistic costs;
   no separate single-person path is needed). A hand is kept only if its wrist lies near
   this person's pose wrist and no other person's wrist is nearer; the face likewise with
   the nose (else confidence 0: never a neighbour's hands). Their frame-to-frame ROI
   tracking is switched off, so one graph serves many people.
4. **Video** (``static_image_mode=False``): each person's next region comes from the
   landmark model's own alignment points, as in MediaPipe's single-person tracking; the
   detector runs again only every ``detect_every`` frames, when a person is lost, or while
   nobody is tracked (plus ``video_tiles_per_frame`` tiles a frame, in turn, if set).
   No temporal smoothing. Identities across frames are the job of ``hmrkit.track.Tracker``.

Why not the MediaPipe Tasks ``PoseLandmarker(num_poses=N)`` (a ``.task`` bundle zipped
from the same two models): it gives no control of the regions (no per-person hands and
face, no refinement, no tracking of our own), and at its default threshold it finds one
of the two players in basketball1.png; at lower thresholds it returns duplicates. The
legacy graphs used here need no bundle, no cache folder, no metadata writing.

Measured (2 shared CPU cores, mediapipe 0.10.14; counts checked by eye, ms per image):
whole image only: skaters 1/13, basketball1/2 2/2, vtest frames 0/1 of 3-7 people,
70-260 ms; default tiles (1.0, 0.5): skaters 9 (8 right, 1 a mix of two skaters), vtest
3/4/3/4 of 3/7/3/6, 170-580 ms; adding 0.25 (``min_tile_px=96``): vtest 3/7/3/6, 0.7-2.5 s.
Video, one person, 720x960, hands and face on: about 29 frames/s detection alone.

Facts (checked on the shared samples, pinned in tests/test_multi_person.py): the graph
is Holistic's, so the conventions are those of ``hmrkit.detect.mediapipe``: "left" is the
subject's left; world landmarks are in OpenCV camera axes (x right, y down, z away from
the camera), metres, origin mid-hips; they are copied unchanged.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import numpy as np

from hmrkit.conventions import HOLISTIC, MEDIAPIPE33
from hmrkit.detect.base import Detector, bbox_from_keypoints, check_image
from hmrkit.detect.mediapipe import (
    _FACE,
    _FACE_INDEX,
    _LEFT_HAND,
    _RIGHT_HAND,
    MediaPipeHolisticConfig,
    _check_model_present,
    _import_mediapipe,
    evidence_from_holistic,
)
from hmrkit.types import Evidence

_B = {n: i for i, n in enumerate(MEDIAPIPE33)}
# body points that define "the same person" (face centre, shoulders to ankles)
_MAIN = np.array([_B[n] for n in (
    "nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")])
_FLIP = np.array([_B[n.replace("left", "@").replace("right", "left").replace("@", "right")] for n in MEDIAPIPE33])
_H = {n: i for i, n in enumerate(HOLISTIC)}


@dataclass(frozen=True)
class MultiPersonConfig:
    """Settings of ``MultiPersonDetector``. Pixels are those of the input image.

    static_image_mode:        True for unrelated photos (find people from scratch every
                              time); False for the frames of one video (follow each
                              person's region; call ``reset()`` between videos).
    max_people:               at most this many people per image (the largest kept).
    min_detection_confidence: BlazePose detector score in [0, 1]. Low on purpose: the
                              detector is face-based and scores people in profile or cut
                              by the border low (0.2-0.3); the landmark model's presence
                              score and the merging rules remove what is not a person.
    min_tile_detection_confidence: the same on tiles (people a tile brings are small and
                              seen whole; low scores there are mostly clutter).
    min_presence_confidence:  pose landmark model's "a person is in this region" score.
    tile_levels:              coarse-to-fine detector passes after the whole image: tiles
                              of side ``level * min(H, W)``; () = whole image only.
    tile_overlap:             overlap of neighbouring tiles, in [0, 0.9].
    min_tile_px:              levels whose tiles would be smaller than this are skipped.
    same_person_points:       two detections are one person when both alignment points
                              (hip centre, head point) lie within this fraction of their
                              distance of each other.
    same_person_keypoints:    two landmark sets are one person when the median distance
                              of their main body points (or of the left/right-flipped
                              points) is below this fraction of the box diagonal.
    part_of_person:           a person whose main body points all lie on another's body
                              (median distance to the other's nearest point below this
                              fraction of the other's box diagonal), while the other's do
                              not lie on theirs, is a part of the other (e.g. a pair of
                              legs seen alone in a tile) and is dropped.
    hands_face:               hands and face on the person's own region (photos).
    video_hands_face:         the same in video mode (about +17 ms a person a frame).
    hand_max_offset:          a hand is kept when its wrist lies within this many
                              forearm lengths of the pose wrist (and no other person's
                              pose wrist is nearer).
    face_max_offset:          the face is kept when its nose tip lies within this many
                              face widths (ear to ear) of the pose nose (and no other
                              person's nose is nearer).
    enable_segmentation:      return each person's mask (Evidence.mask, (H, W) float32).
    refine_face_landmarks:    MediaPipe's attention face model (iris); slower.
    refine_steps:             run the landmark model of a new person again this many
                              times on the region its own alignment points give (as
                              video tracking does between frames): a detection's rough
                              region converges on the whole person, and one that loses
                              the person then (clutter, a part of someone) is dropped.
    detect_every:             video mode: run the detector every this many frames (and
                              whenever a person is lost or nobody is tracked).
    video_tiles_per_frame:    video mode: also run the detector on this many tiles a
                              frame, in turn (the whole tile schedule is covered every
                              len(tiles) / n frames): small people appear within a few
                              frames at a cost of about 10 ms a tile. 0 = whole image only.
    min_box_height:           people whose box is lower than this (px) are rejected
                              ("too_small"), not dropped: see ``detect_all``.
    min_inside_fraction:      people with fewer than this fraction of their 33 body
                              landmarks inside the image are rejected ("outside").
    outside_margin, bbox_pad, bbox_min_confidence: as in ``MediaPipeHolisticConfig``.
    mask_box_pad:             the mask widens the box only within this fraction of the
                              keypoints' box on each side (Holistic uses 0.5; a crowded
                              region's mask also covers the neighbours).
    """

    static_image_mode: bool = True
    max_people: int = 20
    min_detection_confidence: float = 0.2
    min_tile_detection_confidence: float = 0.5
    min_presence_confidence: float = 0.5
    tile_levels: tuple = (1.0, 0.5)
    tile_overlap: float = 0.5
    min_tile_px: int = 160
    same_person_points: float = 0.3
    same_person_keypoints: float = 0.06
    part_of_person: float = 0.04
    hands_face: bool = True
    video_hands_face: bool = True
    hand_max_offset: float = 0.6
    face_max_offset: float = 0.5
    enable_segmentation: bool = True
    refine_face_landmarks: bool = False
    refine_steps: int = 1
    detect_every: int = 10
    video_tiles_per_frame: int = 0
    min_box_height: float = 40.0
    min_inside_fraction: float = 0.35
    outside_margin: float | None = 0.1
    bbox_pad: float = 0.1
    bbox_min_confidence: float = 0.5
    mask_box_pad: float = 0.15

    def __post_init__(self):
        for name in ("min_detection_confidence", "min_tile_detection_confidence", "min_presence_confidence",
                     "bbox_min_confidence", "min_inside_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        if not 0.0 <= self.tile_overlap <= 0.9:
            raise ValueError(f"tile_overlap must be in [0, 0.9], got {self.tile_overlap!r}")
        if any(not 0.0 < float(v) <= 1.0 for v in self.tile_levels):
            raise ValueError(f"tile_levels must be fractions in (0, 1], got {self.tile_levels!r}")
        if self.max_people < 1 or self.detect_every < 1:
            raise ValueError("max_people and detect_every must be >= 1")
        if self.video_tiles_per_frame < 0:
            raise ValueError(f"video_tiles_per_frame must be >= 0, got {self.video_tiles_per_frame!r}")
        if self.refine_steps < 0:
            raise ValueError(f"refine_steps must be >= 0, got {self.refine_steps!r}")
        for name in ("same_person_points", "same_person_keypoints", "part_of_person", "hand_max_offset",
                     "face_max_offset", "min_box_height", "min_tile_px", "bbox_pad", "mask_box_pad"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.outside_margin is not None and self.outside_margin < 0:
            raise ValueError(f"outside_margin must be >= 0 or None, got {self.outside_margin!r}")


@dataclass(frozen=True)
class RejectedPerson:
    """A person that was found but not returned by ``detect``.

    evidence: the person's Evidence, as a kept person's would be.
    reason:   ``too_small`` (box lower than ``min_box_height``), ``outside`` (fewer than
              ``min_inside_fraction`` of the body landmarks in the image) or ``max_people``.
    detail:   one line for a report, e.g. ``box 31 px high < 40 px``.
    """

    evidence: Evidence
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class MultiPersonResult:
    """What ``MultiPersonDetector.detect_all`` finds in one image.

    people:   one Evidence per person (``holistic`` convention, pixels of the image),
              sorted by box area, largest first.
    rejected: people found but rejected (too small, mostly outside, over ``max_people``).
    timings:  seconds per stage (``detect``, ``landmarks``, ``parts``); diagnostics.
    """

    people: list
    rejected: list
    timings: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- graphs

_DETECT_GRAPH = """
input_stream: "IMAGE:image"
output_stream: "DETECTIONS:detections"
node { calculator: "PoseDetectionCpu" input_stream: "IMAGE:image" output_stream: "DETECTIONS:detections" }
"""

_BODY_GRAPH = """
input_stream: "IMAGE:image"
input_stream: "ROI:roi"
input_side_packet: "MODEL_COMPLEXITY:model_complexity"
input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
output_stream: "LANDMARKS:landmarks"
output_stream: "AUXILIARY_LANDMARKS:auxiliary"
output_stream: "WORLD_LANDMARKS:world"
%s
node {
  calculator: "PoseLandmarkByRoiCpu"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity"
  input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  output_stream: "LANDMARKS:landmarks"
  output_stream: "AUXILIARY_LANDMARKS:auxiliary"
  output_stream: "WORLD_LANDMARKS:world"
  output_stream: "SEGMENTATION_MASK:mask_image"
}
node { calculator: "FromImageCalculator" input_stream: "IMAGE:mask_image" output_stream: "IMAGE_CPU:mask" }
"""
_PRESENCE_STREAM = "poselandmarkbyroicpu__tensorstoposelandmarksandsegmentation__pose_presence_score"

_PARTS_GRAPH = """
input_stream: "IMAGE:image"
input_stream: "POSE_LANDMARKS:pose_landmarks"
input_side_packet: "REFINE_LANDMARKS:refine_face_landmarks"
output_stream: "LEFT_HAND_LANDMARKS:left_hand"
output_stream: "RIGHT_HAND_LANDMARKS:right_hand"
output_stream: "FACE_LANDMARKS:face"
node {
  calculator: "HandLandmarksLeftAndRightCpu"
  input_stream: "IMAGE:image"
  input_stream: "POSE_LANDMARKS:pose_landmarks"
  output_stream: "LEFT_HAND_LANDMARKS:left_hand"
  output_stream: "RIGHT_HAND_LANDMARKS:right_hand"
}
node {
  calculator: "SplitNormalizedLandmarkListCalculator"
  input_stream: "pose_landmarks"
  output_stream: "face_landmarks_from_pose"
  options { [mediapipe.SplitVectorCalculatorOptions.ext] { ranges { begin: 0 end: 11 } } }
}
node {
  calculator: "FaceLandmarksFromPoseCpu"
  input_stream: "IMAGE:image"
  input_stream: "FACE_LANDMARKS_FROM_POSE:face_landmarks_from_pose"
  input_side_packet: "REFINE_LANDMARKS:refine_face_landmarks"
  output_stream: "FACE_LANDMARKS:face"
}
"""


class _Graph:
    """One MediaPipe calculator graph, expanded and edited, run one timestamp at a time.

    text:    CalculatorGraphConfig text; subgraphs are expanded, then ``edit(node)`` may
             change each node's options; ``extra_outputs`` are internal streams to observe.
    """

    def __init__(self, mp, text: str, side_packets: dict, edit=None, extra_outputs=()):
        from google.protobuf import text_format
        from mediapipe.framework import calculator_pb2
        from mediapipe.python._framework_bindings import resource_util, validated_graph_config
        from pathlib import Path

        resource_util.set_resource_dir(str(Path(mp.__file__).resolve().parents[1]))
        config = text_format.Parse(text, calculator_pb2.CalculatorGraphConfig())
        validated = validated_graph_config.ValidatedGraphConfig()
        validated.initialize(graph_config=config)
        expanded = calculator_pb2.CalculatorGraphConfig()
        expanded.ParseFromString(validated.binary_config)
        if edit is not None:
            for node in expanded.node:
                edit(node)
        for name in extra_outputs:
            expanded.output_stream.append(name)
        self.outputs = [s.split(":")[-1] for s in expanded.output_stream]
        self._mp = mp
        self._graph = mp.CalculatorGraph(graph_config=expanded)
        self._got = {}
        for name in self.outputs:
            self._graph.observe_output_stream(name, self._callback, True)
        self._graph.start_run({k: mp.packet_creator.create_bool(v) if isinstance(v, bool)
                               else mp.packet_creator.create_int(v) for k, v in side_packets.items()})
        self._ts = 0

    def _callback(self, stream, packet):
        self._got[stream] = packet

    def run(self, inputs: dict) -> dict:
        """inputs: stream name -> Packet (no timestamp) -> stream name -> Packet or None."""
        self._ts += 1
        self._got.clear()
        for name, packet in inputs.items():
            self._graph.add_packet_to_input_stream(stream=name, packet=packet.at(self._ts))
        self._graph.wait_until_idle()
        return {n: (p if p is not None and not p.is_empty() else None)
                for n, p in ((n, self._got.get(n)) for n in self.outputs)}

    def close(self):
        if self._graph is not None:
            try:
                self._graph.close()
            finally:
                self._graph = None


def _options_editor(config: MultiPersonConfig):
    """Node edits: detector score threshold, pose presence threshold, and no hand/face
    ROI tracking (its previous-frame state would belong to whoever ran before)."""
    from mediapipe.calculators.tensor import tensors_to_detections_calculator_pb2 as t2d
    from mediapipe.calculators.util import thresholding_calculator_pb2 as thr
    from mediapipe.modules.holistic_landmark.calculators import roi_tracking_calculator_pb2 as roi

    def edit(node):
        if node.calculator == "TensorsToDetectionsCalculator" and node.name.startswith("posedetectioncpu__"):
            node.options.Extensions[t2d.TensorsToDetectionsCalculatorOptions.ext].min_score_thresh = \
                config.min_detection_confidence
        elif node.calculator == "ThresholdingCalculator" and node.name.startswith(
                "poselandmarkbyroicpu__tensorstoposelandmarksandsegmentation__"):
            node.options.Extensions[thr.ThresholdingCalculatorOptions.ext].threshold = \
                config.min_presence_confidence
        elif node.calculator == "RoiTrackingCalculator":
            opts = node.options.Extensions[roi.RoiTrackingCalculatorOptions.ext]
            opts.rect_requirements.rotation_degrees = 0.0
            opts.rect_requirements.translation = 0.0
            opts.rect_requirements.scale = 0.0
            opts.landmarks_requirements.recrop_rect_margin = -1.0

    return edit


# --------------------------------------------------------------------------- geometry


def roi_from_points(center, top, image_size: tuple) -> tuple:
    """MediaPipe's pose region from two alignment points (``PoseDetectionToRoi`` /
    ``PoseLandmarksToRoi``): center (2,) and top (2,) pixels (hip centre, a point above the
    head), image_size (H, W) -> (cx, cy, w, h, rotation): the rotated square of side
    2.5 |top - center| centred on ``center``, normalised by W (cx, w) and H (cy, h);
    rotation in radians, in [-pi, pi), 0 when ``top`` is straight above ``center``."""
    h, w = image_size
    (x0, y0), (x1, y1) = np.asarray(center, float), np.asarray(top, float)
    angle = math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0)
    angle = (angle + math.pi) % (2 * math.pi) - math.pi
    side = 2.5 * math.hypot(x1 - x0, y1 - y0)
    return (x0 / w, y0 / h, side / w, side / h, angle)


def tile_windows(image_size: tuple, levels=(1.0, 0.5), overlap: float = 0.5, min_side: int = 160) -> list:
    """Square tiles for the coarse-to-fine detector passes, after the whole image.

    image_size: (H, W) px. For each level, tiles of side ``round(level * min(H, W))``
    px, ``(1 - overlap) * side`` apart, the last ones flush with the right and bottom
    edges. A level is skipped when its tiles would be smaller than ``min_side`` or when a
    tile would cover the whole image (already searched).
    Returns [(x0, y0, side)] in pixels (ints), coarse first, no repeats."""
    h, w = image_size
    out = []
    for level in levels:
        side = int(round(float(level) * min(h, w)))
        if side < min_side or side >= max(h, w):
            continue
        step = max(1, int(round(side * (1.0 - overlap))))

        def starts(n):
            s = list(range(0, max(n - side, 0) + 1, step))
            if s[-1] + side < n:
                s.append(n - side)
            return s

        for y in starts(h):
            for x in starts(w):
                if (x, y, side) not in out:
                    out.append((x, y, side))
    return out


def _same_alignment(a, b, tol: float) -> bool:
    """a, b: (2, 2) alignment points (centre, top) px: one person when both points lie
    within ``tol`` times the smaller centre-to-top distance of each other."""
    la = np.linalg.norm(a[1] - a[0])
    lb = np.linalg.norm(b[1] - b[0])
    scale = max(min(la, lb), 1e-6)
    return bool(np.linalg.norm(a[0] - b[0]) <= tol * scale and np.linalg.norm(a[1] - b[1]) <= tol * scale)


def keypoint_distance(a: Evidence, b: Evidence) -> float:
    """How far apart two people's main body points are: the median distance of the 13
    main mediapipe33 points (nose, shoulders to ankles), also left/right-flipped (the
    smaller is taken), divided by the mean diagonal of the two boxes. 0 = identical."""
    ka, kb = a.keypoints2d[:33, :2].astype(np.float64), b.keypoints2d[:33, :2].astype(np.float64)
    diag = 0.5 * (np.hypot(*(a.bbox[2:] - a.bbox[:2])) + np.hypot(*(b.bbox[2:] - b.bbox[:2])))
    direct = np.median(np.linalg.norm(ka[_MAIN] - kb[_MAIN], axis=1))
    flipped = np.median(np.linalg.norm(ka[_MAIN] - kb[_FLIP][_MAIN], axis=1))
    return float(min(direct, flipped) / max(diag, 1e-6))


def explained_by(b: Evidence, a: Evidence) -> float:
    """How well person a's body explains person b's: the median, over b's 13 main body
    points, of the distance to the nearest of a's 33 body points, divided by a's box
    diagonal. Small when b lies on a's body (b is a part of a: legs taken for a person,
    or a's duplicate); large for a person beside a."""
    kb = b.keypoints2d[_MAIN, :2].astype(np.float64)
    ka = a.keypoints2d[:33, :2].astype(np.float64)
    nearest = np.linalg.norm(kb[:, None] - ka[None], axis=2).min(1)
    diag = max(float(np.hypot(*(a.bbox[2:] - a.bbox[:2]))), 1e-6)
    return float(np.median(nearest) / diag)


def box_iou(a, b) -> float:
    """IoU of two xyxy boxes (4,) px."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _area(ev: Evidence) -> float:
    b = ev.bbox
    return float(max(b[2] - b[0], 0) * max(b[3] - b[1], 0))


# --------------------------------------------------------------------------- detector


@dataclass
class _Person:
    """Internal: one person's landmark run."""

    evidence: Evidence
    align: np.ndarray          # (2, 2) px: the landmark model's hip centre and head point
    landmarks_packet: object   # the pose NormalizedLandmarkList packet (for hands/face)
    score: float               # presence x mean visibility of the main points


class MultiPersonDetector(Detector):
    """Every person in an image (``detect`` / ``detect_all``), or in the frames of a video.

    ``detect(image)``: RGB uint8 (H, W, 3) -> list[Evidence], one per person, largest box
    first, convention ``holistic`` (33 body + 21 left hand + 21 right hand + 41 face
    points), keypoints2d (K, 3) in pixels of this image + confidence, keypoints3d (K, 4)
    body world landmarks (metres, OpenCV axes, origin mid-hips) + confidence (hands and
    face zero), mask (H, W) float32 or None, bbox (4,) xyxy px, source ``mediapipe-multi``.
    Hands/face points have confidence 1 where found on this person, else 0.
    ``detect_all(image)`` also returns the rejected people with a reason
    (``MultiPersonResult``); ``last_rejected`` holds those of the last ``detect``.

    Video: ``MultiPersonDetector(MultiPersonConfig(static_image_mode=False))``, one
    ``detect`` per frame in order, ``reset()`` between videos (a change of frame size
    resets too). The order of the list is by box area, not identity: give the lists to
    ``hmrkit.track.Tracker`` for track ids.
    """

    def __init__(self, config: MultiPersonConfig | None = None):
        self.config = config if config is not None else MultiPersonConfig()
        self._mp = _import_mediapipe()
        _check_model_present(self._mp, 1)
        self._detect_graph = self._body_graph = self._parts_graph = None
        self._holistic_config = MediaPipeHolisticConfig(
            outside_margin=self.config.outside_margin, bbox_pad=self.config.bbox_pad,
            bbox_min_confidence=self.config.bbox_min_confidence)
        self.last_rejected: list = []
        self._tracks: list = []      # video: (2, 2) alignment points of each followed person
        self._since_detect = 0
        self._tile_turn = 0
        self._size = None

    # ------------------------------------------------------------------ graphs
    def _graphs(self):
        if self._body_graph is None:
            c, mp = self.config, self._mp
            edit = _options_editor(c)
            self._detect_graph = _Graph(mp, _DETECT_GRAPH, {}, edit)
            seg = 'output_stream: "MASK:mask"' if c.enable_segmentation else ""
            self._body_graph = _Graph(
                mp, _BODY_GRAPH % seg, {"model_complexity": 1, "enable_segmentation": c.enable_segmentation},
                edit, extra_outputs=(_PRESENCE_STREAM,))
            if c.hands_face or c.video_hands_face:
                self._parts_graph = _Graph(mp, _PARTS_GRAPH, {"refine_face_landmarks": c.refine_face_landmarks},
                                           edit)
        return self._detect_graph, self._body_graph, self._parts_graph

    def _image_packet(self, image: np.ndarray):
        return self._mp.packet_creator.create_image_frame(image_format=self._mp.ImageFormat.SRGB, data=image)

    # ------------------------------------------------------------------ stages
    def _tiles(self, image_size: tuple) -> list:
        """The tile windows [(x0, y0, w, h)] px of this image size (see ``tile_windows``)."""
        c = self.config
        return [(x, y, s, s) for x, y, s in tile_windows(image_size, c.tile_levels, c.tile_overlap, c.min_tile_px)]

    def _find(self, image: np.ndarray, windows: list, image_packet=None) -> list:
        """Detector on windows [(x0, y0, w, h)] px of the image (the whole image is
        (0, 0, W, H); ``image_packet`` is the image's packet when already made) ->
        [(score, (2, 2) alignment px, window)], best first, people seen in several
        windows merged."""
        detect_graph = self._graphs()[0]
        h, w = image.shape[:2]
        found = []
        for x0, y0, tw, th in windows:
            if (tw, th) == (w, h):
                packet = image_packet if image_packet is not None else self._image_packet(image)
            else:
                packet = self._image_packet(np.ascontiguousarray(image[y0:y0 + th, x0:x0 + tw]))
            out = detect_graph.run({"image": packet})["detections"]
            if out is None:
                continue
            for d in self._mp.packet_getter.get_proto_list(out):
                k = d.location_data.relative_keypoints
                if len(k) < 2:
                    continue
                pts = np.array([[x0 + k[0].x * tw, y0 + k[0].y * th], [x0 + k[1].x * tw, y0 + k[1].y * th]])
                if (tw, th) != (w, h):
                    # a tile looks for the people that fit in it: larger ones and ones
                    # centred outside belong to a coarser pass
                    side = 2.5 * np.linalg.norm(pts[1] - pts[0])
                    cx, cy = pts[0]
                    if side > tw or not (x0 <= cx < x0 + tw and y0 <= cy < y0 + th):
                        continue
                    if d.score and d.score[0] < self.config.min_tile_detection_confidence:
                        continue
                found.append((float(d.score[0]) if len(d.score) else 0.0, pts, (x0, y0, tw, th)))
        found.sort(key=lambda t: -t[0])
        kept = []
        for score, pts, window in found:
            if not any(_same_alignment(pts, q[1], self.config.same_person_points) for q in kept):
                kept.append((score, pts, window))
        return kept

    def _landmarks(self, image_packet, align: np.ndarray, image_size: tuple):
        """Pose landmark model on the region of alignment points (2, 2) px -> _Person or None."""
        from mediapipe.framework.formats import rect_pb2

        body_graph = self._graphs()[1]
        cx, cy, rw, rh, rot = roi_from_points(align[0], align[1], image_size)
        if not (rw > 0 and rh > 0 and np.isfinite([cx, cy, rw, rh, rot]).all()):
            return None
        roi = rect_pb2.NormalizedRect(x_center=cx, y_center=cy, width=rw, height=rh, rotation=rot)
        out = body_graph.run({"image": image_packet, "roi": self._mp.packet_creator.create_proto(roi)})
        if out["landmarks"] is None:
            return None
        get = self._mp.packet_getter.get_proto
        h, w = image_size
        mask = None
        if out.get("mask") is not None:
            mask = self._mp.packet_getter.get_image_frame(out["mask"]).numpy_view()
            mask = mask.reshape(mask.shape[0], mask.shape[1])
        results = SimpleNamespace(
            pose_landmarks=get(out["landmarks"]),
            pose_world_landmarks=get(out["world"]) if out["world"] is not None else None,
            left_hand_landmarks=None, right_hand_landmarks=None, face_landmarks=None,
            segmentation_mask=None)
        evs = evidence_from_holistic(results, (h, w), self._holistic_config)
        if not evs:
            return None
        if mask is not None:  # the box is made with it later (``_box``)
            if mask.shape != (h, w):
                raise RuntimeError(f"mediapipe returned a mask of shape {mask.shape}, expected {(h, w)}")
            mask = np.clip(mask, 0.0, 1.0, dtype=np.float32)
        ev = replace(evs[0], source="mediapipe-multi", mask=mask)
        aux = get(out["auxiliary"]).landmark
        new_align = np.array([[aux[0].x * w, aux[0].y * h], [aux[1].x * w, aux[1].y * h]])
        pres = out.get(_PRESENCE_STREAM)
        presence = self._mp.packet_getter.get_float(pres) if pres is not None else 1.0
        score = float(presence) * float(ev.keypoints2d[_MAIN, 2].mean())
        return _Person(ev, new_align, out["landmarks"], score)

    def _new_person(self, image_packet, align: np.ndarray, image_size: tuple):
        """Landmarks on a detection's region, then ``refine_steps`` times on the region
        they give: a person's own region keeps them; a region on a part of a person or on
        clutter loses them (presence below threshold) -> _Person or None."""
        p = self._landmarks(image_packet, align, image_size)
        for _ in range(self.config.refine_steps):
            if p is None:
                break
            p = self._landmarks(image_packet, p.align, image_size)
        return p

    def _parts(self, image_packet, person: _Person, image_size: tuple) -> Evidence:
        """Hands and face from this person's own pose landmarks -> Evidence with them."""
        parts_graph = self._graphs()[2]
        out = parts_graph.run({"image": image_packet, "pose_landmarks": person.landmarks_packet})
        get = self._mp.packet_getter.get_proto
        h, w = image_size
        kp = person.evidence.keypoints2d.copy()
        for name, sl in (("left_hand", _LEFT_HAND), ("right_hand", _RIGHT_HAND), ("face", _FACE)):
            if out[name] is None:
                continue
            lm = get(out[name]).landmark
            idx = _FACE_INDEX if name == "face" else np.arange(21)
            if len(lm) <= int(idx.max()):
                continue
            pts = np.array([(lm[i].x * w, lm[i].y * h) for i in idx], dtype=np.float32)
            kp[sl, :2] = pts
            kp[sl, 2] = 1.0
        return replace(person.evidence, keypoints2d=kp)

    def _merge(self, people: list) -> list:
        """Drop people found twice (keypoint agreement: the earlier of a pair is kept) and
        people that are a part of another (``explained_by``: a's body explains b's, b's
        does not explain a's)."""
        c = self.config
        kept = []
        for p in people:
            if not any(keypoint_distance(p.evidence, q.evidence) < c.same_person_keypoints for q in kept):
                kept.append(p)
        out = []
        for p in kept:
            part = any(explained_by(p.evidence, q.evidence) < c.part_of_person
                       and explained_by(q.evidence, p.evidence) >= c.part_of_person
                       for q in kept if q is not p)
            if not part:
                out.append(p)
        return out

    def _check_parts(self, evs: list) -> list:
        """Keep each person's hands/face only where they are this person's (see module doc)."""
        c = self.config
        out = []
        for i, ev in enumerate(evs):
            kp = ev.keypoints2d.copy()
            others = [o.keypoints2d for j, o in enumerate(evs) if j != i]
            for sl, wrist, elbow in ((_LEFT_HAND, _B["left_wrist"], _B["left_elbow"]),
                                     (_RIGHT_HAND, _B["right_wrist"], _B["right_elbow"])):
                if kp[sl.start, 2] <= 0:
                    continue
                hand_wrist = kp[sl.start, :2]
                forearm = max(np.linalg.norm(kp[elbow, :2] - kp[wrist, :2]), 0.05 * (ev.bbox[3] - ev.bbox[1]), 1.0)
                d_own = np.linalg.norm(hand_wrist - kp[wrist, :2])
                d_other = min([np.linalg.norm(hand_wrist - o[j, :2]) for o in others
                               for j in (_B["left_wrist"], _B["right_wrist"]) if o[j, 2] >= 0.5], default=np.inf)
                if d_own > c.hand_max_offset * forearm or d_other < d_own:
                    kp[sl] = 0.0
            if kp[_FACE.start, 2] > 0:
                nose_tip = kp[_H["face.nose_tip"], :2]
                width = max(np.linalg.norm(kp[_B["left_ear"], :2] - kp[_B["right_ear"], :2]),
                            np.linalg.norm(kp[_B["left_eye_outer"], :2] - kp[_B["right_eye_outer"], :2]) * 1.5,
                            0.02 * (ev.bbox[3] - ev.bbox[1]), 1.0)
                d_own = np.linalg.norm(nose_tip - kp[_B["nose"], :2])
                d_other = min([np.linalg.norm(nose_tip - o[_B["nose"], :2]) for o in others
                               if o[_B["nose"], 2] >= 0.5], default=np.inf)
                if d_own > c.face_max_offset * width or d_other < d_own:
                    kp[_FACE] = 0.0
            out.append(replace(ev, keypoints2d=kp, bbox=self._box(kp, ev.mask, ev.image_size)))
        return out

    def _box(self, kp: np.ndarray, mask, image_size: tuple) -> np.ndarray:
        """The person's box: keypoints with confidence >= ``bbox_min_confidence`` padded by
        ``bbox_pad``, widened by the mask only within ``mask_box_pad`` of the keypoints'
        box (the mask of a crowded region also covers neighbours)."""
        c = self.config
        extra = None
        if mask is not None:
            x0, y0, x1, y1 = bbox_from_keypoints(kp, image_size, min_confidence=c.bbox_min_confidence,
                                                 pad=c.mask_box_pad)
            window = mask[int(y0):int(y1) + 1, int(x0):int(x1) + 1] > 0.5
            rows, cols = np.flatnonzero(window.any(1)), np.flatnonzero(window.any(0))
            if len(rows):
                extra = np.array([cols[0] + int(x0), rows[0] + int(y0), cols[-1] + int(x0), rows[-1] + int(y0)],
                                 dtype=np.float64)
        return bbox_from_keypoints(kp, image_size, min_confidence=c.bbox_min_confidence, pad=c.bbox_pad, extra=extra)

    def _split(self, evs: list) -> tuple:
        """Sort by box area (largest first) and set aside the people to reject."""
        c = self.config
        people, rejected = [], []
        for ev in sorted(evs, key=_area, reverse=True):
            h, w = ev.image_size
            x, y = ev.keypoints2d[:33, 0], ev.keypoints2d[:33, 1]
            inside = float(((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).mean())
            height = float(ev.bbox[3] - ev.bbox[1])
            if height < c.min_box_height:
                rejected.append(RejectedPerson(ev, "too_small", f"box {height:.0f} px high < {c.min_box_height:g} px"))
            elif inside < c.min_inside_fraction:
                rejected.append(RejectedPerson(
                    ev, "outside", f"{inside:.0%} of the body landmarks in the image < {c.min_inside_fraction:.0%}"))
            elif len(people) >= c.max_people:
                rejected.append(RejectedPerson(ev, "max_people", f"more than max_people={c.max_people}"))
            else:
                people.append(ev)
        return people, rejected

    # ------------------------------------------------------------------ API
    def detect_all(self, image: np.ndarray) -> MultiPersonResult:
        """image: RGB uint8 (H, W, 3) -> MultiPersonResult (people largest first, rejected
        people with a reason, timings). In video mode, one call per frame, in order."""
        image = check_image(image)
        size = image.shape[:2]
        c = self.config
        if not c.static_image_mode and self._size is not None and size != self._size:
            self.reset()
        self._size = size
        timings = {"detect": 0.0, "landmarks": 0.0, "parts": 0.0}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype", category=UserWarning)
            packet = self._image_packet(image)
            people = []
            if c.static_image_mode:
                t = time.perf_counter()
                found = self._find(image, [(0, 0, size[1], size[0])] + self._tiles(size), packet)
                timings["detect"] += time.perf_counter() - t
                t = time.perf_counter()
                for _, align, _ in found:
                    if any(_same_alignment(align, q.align, c.same_person_points) for q in people):
                        continue        # already found (seen in another pass)
                    p = self._new_person(packet, align, size)
                    if p is not None:
                        people.append(p)
                people.sort(key=lambda p: -p.score)
                people = self._merge(people)
                timings["landmarks"] += time.perf_counter() - t
            else:
                people = self._video_step(image, packet, size, timings)
            with_parts = c.hands_face if c.static_image_mode else c.video_hands_face
            t = time.perf_counter()
            evs = [self._parts(packet, p, size) if with_parts else p.evidence for p in people]
            evs = self._check_parts(evs)
            timings["parts"] += time.perf_counter() - t
        kept, rejected = self._split(evs)
        return MultiPersonResult(people=kept, rejected=rejected, timings=timings)

    def _video_step(self, image, packet, size, timings) -> list:
        """Follow each tracked person's region; detect again when due (see module doc)."""
        c = self.config
        t = time.perf_counter()
        people, lost = [], False
        for align in self._tracks:
            p = self._landmarks(packet, align, size)
            if p is None:
                lost = True
            else:
                people.append(p)
        n_before = len(people)
        people = self._merge(people)            # two regions that drifted onto one person
        lost = lost or len(people) < n_before
        timings["landmarks"] += time.perf_counter() - t
        self._since_detect += 1
        windows = []
        if not people or lost or self._since_detect >= c.detect_every:
            self._since_detect = 0
            windows.append((0, 0, size[1], size[0]))
        if c.video_tiles_per_frame:
            tiles = self._tiles(size)
            for _ in range(min(c.video_tiles_per_frame, len(tiles))):
                self._tile_turn %= len(tiles)
                windows.append(tiles[self._tile_turn])
                self._tile_turn += 1
        if windows:
            t = time.perf_counter()
            found = self._find(image, windows, packet)
            timings["detect"] += time.perf_counter() - t
            t = time.perf_counter()
            new = []
            for _, align, _ in found:
                if any(_same_alignment(align, p.align, c.same_person_points) for p in people + new):
                    continue
                p = self._new_person(packet, align, size)
                if p is not None:
                    new.append(p)
            new.sort(key=lambda p: -p.score)
            people = self._merge(people + new)
            timings["landmarks"] += time.perf_counter() - t
        people = sorted(people, key=lambda p: -_area(p.evidence))[:c.max_people]
        self._tracks = [p.align for p in people]
        return people

    def detect(self, image: np.ndarray) -> list[Evidence]:
        """image: RGB uint8 (H, W, 3) -> one Evidence per person, largest box first (see
        the class doc); people rejected by the rules go to ``last_rejected``."""
        result = self.detect_all(image)
        self.last_rejected = result.rejected
        return result.people

    def reset(self) -> None:
        """Forget the followed people (start of a new video); the models stay loaded."""
        self._tracks = []
        self._since_detect = 0
        self._tile_turn = 0
        self._size = None

    def close(self) -> None:
        for name in ("_detect_graph", "_body_graph", "_parts_graph"):
            g = getattr(self, name, None)
            if g is not None:
                g.close()
            setattr(self, name, None)
        self.reset()

"""hmrkit.detect.multi: every person in a photo and through a video, on committed media
(tests/data: basketball1.png, two_people_540x960_12f.mp4; sources in tests/data/README.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import data_path
from hmrkit import conventions as C
from hmrkit.detect import MediaPipeHolistic, MultiPersonConfig, MultiPersonDetector
from hmrkit.detect.multi import box_iou, explained_by, keypoint_distance, roi_from_points, tile_windows
from hmrkit.track import Tracker
from hmrkit.types import Evidence

H = {n: i for i, n in enumerate(C.HOLISTIC)}
LEFT_HAND, RIGHT_HAND, FACE = slice(33, 54), slice(54, 75), slice(75, None)


@pytest.fixture(scope="module")
def basketball():
    from PIL import Image

    return np.asarray(Image.open(data_path("images", "basketball1.png")).convert("RGB"))


@pytest.fixture(scope="module")
def detector():
    with MultiPersonDetector(MultiPersonConfig(static_image_mode=True)) as det:
        yield det


@pytest.fixture(scope="module")
def found(detector, basketball):
    return detector.detect_all(basketball)


@pytest.fixture(scope="module")
def clip():
    from hmrkit.io.video import VideoReader

    with VideoReader(data_path("videos", "two_people_540x960_12f.mp4")) as reader:
        return [frame for _, frame in reader]


# --------------------------------------------------------------------------- photos


def test_basketball_two_people_with_distinct_boxes(found, basketball):
    h, w = basketball.shape[:2]
    people = found.people
    assert len(people) == 2 and found.rejected == []
    a, b = people
    assert box_iou(a.bbox, b.bbox) < 0.1
    areas = [float((e.bbox[2] - e.bbox[0]) * (e.bbox[3] - e.bbox[1])) for e in people]
    assert areas == sorted(areas, reverse=True), "largest box first"
    # one player on each side of the room
    centres = sorted(float(e.bbox[0] + e.bbox[2]) / 2 for e in people)
    assert centres[0] < w / 3 and centres[1] > 2 * w / 3
    for ev in people:
        assert ev.convention == "holistic" and ev.source == "mediapipe-multi" and ev.image_size == (h, w)
        assert ev.keypoints2d.shape == (len(C.HOLISTIC), 3) and ev.keypoints2d.dtype == np.float32
        assert ev.keypoints3d.shape == (len(C.HOLISTIC), 4)
        conf = ev.keypoints2d[:, 2]
        assert ((conf >= 0) & (conf <= 1)).all()
        for sl in (LEFT_HAND, RIGHT_HAND, FACE):
            assert len(set(conf[sl].tolist())) == 1 and conf[sl][0] in (0.0, 1.0)
        assert ev.mask.shape == (h, w) and ev.mask.dtype == np.float32
        # the body's confident keypoints are in the person's box
        sel = conf[:33] >= 0.5
        x, y = ev.keypoints2d[:33][sel, 0], ev.keypoints2d[:33][sel, 1]
        assert sel.sum() >= 10
        assert ((x >= ev.bbox[0] - 1) & (x <= ev.bbox[2] + 1) & (y >= ev.bbox[1] - 1) & (y <= ev.bbox[3] + 1)).all()


def test_hands_and_face_are_the_persons_own(found):
    """Each hand found lies at that person's wrist (nearer to it than to any wrist of the
    other person), each face at that person's nose: never a neighbour's."""
    people = found.people
    n_parts = 0
    for i, ev in enumerate(people):
        kp = ev.keypoints2d
        others = [o.keypoints2d for j, o in enumerate(people) if j != i]
        height = float(ev.bbox[3] - ev.bbox[1])
        for sl, wrist in ((LEFT_HAND, H["left_wrist"]), (RIGHT_HAND, H["right_wrist"])):
            if kp[sl.start, 2] == 0:
                continue
            n_parts += 1
            hand = kp[sl][:, :2]
            d_own = np.linalg.norm(hand[0] - kp[wrist, :2])
            assert d_own < 0.1 * height, f"person {i}: hand wrist {d_own:.0f} px from the pose wrist"
            for o in others:
                for ow in (H["left_wrist"], H["right_wrist"]):
                    assert np.linalg.norm(hand[0] - o[ow, :2]) > d_own
            # the hand's points are spread around its wrist, not all over the image
            assert np.linalg.norm(hand - hand[0], axis=1).max() < 0.25 * height
        if kp[FACE.start, 2] > 0:
            n_parts += 1
            d_own = np.linalg.norm(kp[H["face.nose_tip"], :2] - kp[H["nose"], :2])
            assert d_own < 0.05 * height
            for o in others:
                assert np.linalg.norm(kp[H["face.nose_tip"], :2] - o[H["nose"], :2]) > d_own
    assert n_parts >= 2, "hands or faces should be found on these two players"


def test_left_is_subjects_left_and_world_axes_are_opencv(found):
    """The facts pinned for MediaPipeHolistic, on the player facing the camera (left)."""
    ev = min(found.people, key=lambda e: e.bbox[0])
    kp, k3 = ev.keypoints2d, ev.keypoints3d
    assert kp[H["left_shoulder"], 0] > kp[H["right_shoulder"], 0]
    assert kp[H["left_hip"], 0] > kp[H["right_hip"], 0]
    hips = 0.5 * (k3[H["left_hip"], :3] + k3[H["right_hip"], :3])
    assert np.abs(hips).max() < 0.03, "origin at the middle of the hips"
    assert k3[H["nose"], 1] < hips[1] - 0.4, "y down: the head is above the hips"
    assert k3[H["nose"], 2] < hips[2], "z away from the camera: the nose is nearer than the hips"
    assert k3[H["left_shoulder"], 0] > k3[H["right_shoulder"], 0], "x right"
    assert (k3[33:] == 0).all()


def test_agrees_with_holistic_on_the_person_holistic_finds(found, basketball):
    with MediaPipeHolistic() as hol:
        (ref,) = hol.detect(basketball)
    ev = min(found.people, key=lambda e: keypoint_distance(e, ref))
    height = float(ref.bbox[3] - ref.bbox[1])
    d2 = np.linalg.norm(ev.keypoints2d[:33, :2] - ref.keypoints2d[:33, :2], axis=1)
    d3 = np.linalg.norm(ev.keypoints3d[:33, :3] - ref.keypoints3d[:33, :3], axis=1)
    assert np.median(d2) < 0.02 * height
    assert np.median(d3) < 0.08


def test_rejected_people_are_reported_not_dropped(basketball):
    with MultiPersonDetector(MultiPersonConfig(min_box_height=10_000, hands_face=False)) as det:
        result = det.detect_all(basketball)
        assert result.people == []
        assert [r.reason for r in result.rejected] == ["too_small", "too_small"]
        assert all("px" in r.detail and isinstance(r.evidence, Evidence) for r in result.rejected)
        assert det.detect(basketball) == [] and len(det.last_rejected) == 2
    with MultiPersonDetector(MultiPersonConfig(max_people=1, hands_face=False)) as det:
        result = det.detect_all(basketball)
        assert len(result.people) == 1 and [r.reason for r in result.rejected] == ["max_people"]


def test_nobody_in_a_blank_image(detector):
    result = detector.detect_all(np.full((240, 320, 3), 127, np.uint8))
    assert result.people == [] and result.rejected == []


# --------------------------------------------------------------------------- video


def test_clip_two_people_two_stable_tracks(clip):
    h, w = clip[0].shape[:2]
    tracker = Tracker()
    sides = {}
    with MultiPersonDetector(MultiPersonConfig(static_image_mode=False)) as det:
        for t, frame in enumerate(clip):
            people = det.detect(frame)
            assert len(people) == 2, f"frame {t}: {len(people)} people"
            for tid, ev in tracker.update(people, t):
                sides.setdefault(tid, set()).add(bool((ev.bbox[0] + ev.bbox[2]) / 2 > w / 2))
        assert sorted(sides) == [0, 1], f"track ids {sorted(sides)}"
        assert all(len(s) == 1 for s in sides.values()) and sides[0] != sides[1], "each track stays on its side"
        # a new video: nothing carries over, both people are found again at once
        det.reset()
        assert len(det.detect(clip[0])) == 2
        # a frame of another size resets by itself
        assert len(det.detect(np.ascontiguousarray(clip[0][: h // 2]))) >= 1


# --------------------------------------------------------------------------- pins


def test_roi_from_points_pins():
    # head straight above the hips: no rotation, side 2.5 x 100 px
    cx, cy, rw, rh, rot = roi_from_points((100, 200), (100, 100), (400, 200))
    assert (cx, cy, rw, rh) == pytest.approx((0.5, 0.5, 1.25, 0.625)) and rot == pytest.approx(0.0)
    # head to the right of the hips (lying, head right): MediaPipe's +90 degrees
    *_, rot = roi_from_points((100, 200), (200, 200), (400, 200))
    assert rot == pytest.approx(math.pi / 2)
    *_, rot = roi_from_points((100, 200), (0, 200), (400, 200))
    assert rot == pytest.approx(-math.pi / 2)


def test_tile_windows_pins():
    assert tile_windows((550, 1334), levels=(1.0,)) == [(0, 0, 550), (275, 0, 550), (550, 0, 550), (784, 0, 550)]
    tiles = tile_windows((480, 640), levels=(1.0, 0.5))
    # 240 px tiles 120 px apart: x 0, 120, 240, 360 and 400 (flush right); y 0, 120, 240
    assert tiles[:2] == [(0, 0, 480), (160, 0, 480)] and len(tiles) == 2 + 5 * 3
    assert (400, 240, 240) in tiles
    assert all(x + s <= 640 and y + s <= 480 for x, y, s in tiles)
    assert tile_windows((512, 512), levels=(1.0,)) == []          # the whole image, already searched
    assert tile_windows((300, 400), levels=(0.5,), min_side=160) == []


def test_keypoint_distance_and_explained_by_pins():
    rng = np.random.default_rng(0)
    kp = np.zeros((len(C.HOLISTIC), 3), np.float32)
    kp[:33, 0] = rng.uniform(100, 200, 33)
    kp[:33, 1] = rng.uniform(100, 400, 33)
    kp[:33, 2] = 1.0
    a = Evidence((480, 640), kp, "holistic", np.array([100, 100, 200, 400], np.float32))
    flip = C.get("mediapipe33").flip
    kp_f = kp.copy()
    kp_f[:33] = kp[:33][list(flip)]
    b = Evidence((480, 640), kp_f, "holistic", a.bbox)
    assert keypoint_distance(a, a) == 0.0 and keypoint_distance(a, b) == 0.0
    shifted = Evidence((480, 640), kp + np.array([300, 0, 0], np.float32), "holistic", a.bbox + [300, 0, 300, 0])
    assert keypoint_distance(a, shifted) == pytest.approx(300 / math.hypot(100, 300))
    assert explained_by(b, a) == 0.0 and explained_by(shifted, a) > 0.5


def test_config_is_checked():
    with pytest.raises(ValueError):
        MultiPersonConfig(min_detection_confidence=1.5)
    with pytest.raises(ValueError):
        MultiPersonConfig(tile_levels=(1.5,))
    with pytest.raises(ValueError):
        MultiPersonConfig(detect_every=0)

"""hmrkit.track.Tracker on synthetic moving people (boxes + a 33-point body in each box)."""

from __future__ import annotations

import numpy as np
import pytest

from hmrkit.track import Tracker, TrackerConfig, box_iou_matrix
from hmrkit.types import Evidence

# a standing body in a unit box (x, y in [0, 1]); each person type moves some points
_RNG = np.random.default_rng(0)
_TEMPLATE = np.column_stack([_RNG.uniform(0.2, 0.8, 33), np.linspace(0.05, 0.95, 33)])


def person(box, pose: int = 0, conf: float = 0.9, image_size=(480, 640)) -> Evidence:
    """Evidence of a synthetic person in box (x0, y0, x1, y1) px; ``pose`` mirrors the body
    (1) so two people in the same box still differ by their keypoints."""
    x0, y0, x1, y1 = box
    t = _TEMPLATE.copy()
    if pose == 1:
        t[:, 0] = 1.0 - t[:, 0]
    kp = np.column_stack([x0 + t[:, 0] * (x1 - x0), y0 + t[:, 1] * (y1 - y0), np.full(33, conf)])
    return Evidence(image_size=image_size, keypoints2d=kp.astype(np.float32), convention="mediapipe33",
                    bbox=np.array(box, np.float32))


def moving(x_start: float, vx: float, t: int, y: float = 100.0, w: float = 60.0, h: float = 160.0):
    x = x_start + vx * t
    return (x, y, x + w, y + h)


def ids_of(pairs) -> list:
    return [tid for tid, _ in pairs]


def test_box_iou_matrix_pins():
    a = np.array([[0, 0, 10, 10], [0, 0, 2, 2]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    iou = box_iou_matrix(a, b)
    # [0,0,10,10] vs [5,0,15,10]: intersection 50, union 150
    np.testing.assert_allclose(iou, [[1 / 3, 0, 1], [0, 0, 4 / 100]], atol=1e-12)


def test_cost_is_zero_for_the_same_person_and_one_for_a_far_one():
    tr = Tracker()
    a = person((100, 100, 160, 260))
    tr.update([a], 0)
    cost = tr.cost_matrix([a, person((400, 100, 460, 260))], 1)
    np.testing.assert_allclose(cost, [[0.0, 1.0]], atol=1e-9)


def test_one_person_keeps_its_id():
    tr = Tracker()
    got = [ids_of(tr.update([person(moving(50, 8, t))], t)) for t in range(30)]
    assert got == [[0]] * 30


def test_crossing_paths_keep_their_ids():
    """Two people walk towards each other on one line and cross (their boxes coincide at
    frame 10); the motion model keeps each id on its own path, whether or not the bodies
    differ, and whatever the order of the detections in each frame."""
    for pose_b in (0, 1):
        tr = Tracker()
        xs = {}
        for t in range(21):
            a = person(moving(100, 10, t), pose=0)          # left -> right
            b = person(moving(300, -10, t), pose=pose_b)    # right -> left
            frame = [a, b] if t % 2 else [b, a]
            for tid, ev in tr.update(frame, t):
                xs.setdefault(tid, []).append(float(ev.bbox[0]))
        assert sorted(xs) == [0, 1], f"pose_b={pose_b}: ids {sorted(xs)}"
        for tid, x in xs.items():
            steps = np.diff(x)
            assert (steps > 0).all() or (steps < 0).all(), f"pose_b={pose_b}: track {tid} changed direction: {x}"


def test_a_short_miss_keeps_the_id_a_long_one_does_not():
    cfg = TrackerConfig(max_age=3)
    for gap, expect_same in ((3, True), (4, False)):
        tr = Tracker(cfg)
        t = 0
        for t in range(10):
            assert ids_of(tr.update([person(moving(50, 6, t))], t)) == [0]
        back = 10 + gap
        for t in range(10, back):
            assert tr.update([], t) == []
        (tid,) = ids_of(tr.update([person(moving(50, 6, back))], back))
        assert (tid == 0) == expect_same, f"gap {gap}: id {tid}"


def test_a_new_person_gets_a_new_id_and_ids_never_come_back():
    tr = Tracker(TrackerConfig(max_age=2))
    seen = []
    for t in range(5):
        seen.append(ids_of(tr.update([person(moving(50, 5, t))], t)))
    # a second person enters far away: a new id, the first keeps its own
    for t in range(5, 10):
        pairs = tr.update([person(moving(50, 5, t)), person((500, 100, 560, 260))], t)
        seen.append(ids_of(pairs))
    assert seen[:5] == [[0]] * 5 and seen[5:] == [[0, 1]] * 5
    # both leave; later a third person stands where the first was last predicted to be:
    # the old ids have expired and are not given to a different person
    for t in range(10, 20):
        tr.update([], t)
    last = moving(50, 5, 10)
    (tid,) = ids_of(tr.update([person(last)], 20))
    assert tid == 2
    tr.reset()
    assert ids_of(tr.update([person(last)], 0)) == [3]


def test_gate_rejects_far_detections():
    tr = Tracker(TrackerConfig(max_cost=0.5))
    tr.update([person((100, 100, 160, 260))], 0)
    # overlapping a little, but keypoints far: cost above the gate -> a new id
    (tid,) = ids_of(tr.update([person((150, 100, 210, 260), pose=1)], 1))
    assert tid == 1


def test_batch_equals_incremental():
    rng = np.random.default_rng(3)
    frames = []
    for t in range(25):
        evs = [person(moving(60, 7, t)), person(moving(420, -6, t), pose=1)]
        if t % 7 == 3:
            evs = evs[:1]                                   # a miss
        if t >= 12:
            evs.append(person(moving(250, 0, t, y=300)))    # a third person joins
        jitter = [person(tuple(np.asarray(e.bbox) + rng.normal(0, 1.5, 4)), pose=int(i == 1))
                  for i, e in enumerate(evs)]
        frames.append([jitter[i] for i in rng.permutation(len(jitter))])
    batch = Tracker().run(frames)
    tr = Tracker()
    incremental = [tr.update(f, t) for t, f in enumerate(frames)]
    assert [ids_of(p) for p in batch] == [ids_of(p) for p in incremental]
    assert all(e1 is e2 for b, i in zip(batch, incremental) for (_, e1), (_, e2) in zip(b, i))
    assert len({tid for p in batch for tid in ids_of(p)}) == 3


def test_holistic_evidence_is_compared_on_its_body():
    """Hands and face of holistic evidence do not take part in the distance."""
    body = person((100, 100, 160, 260))
    kp = np.zeros((33 + 42 + 41, 3), np.float32)
    kp[:33] = body.keypoints2d
    kp2 = kp.copy()
    kp2[33:, :2] = 1000.0
    kp2[33:, 2] = 1.0
    a = Evidence((480, 640), kp, "holistic", body.bbox)
    b = Evidence((480, 640), kp2, "holistic", body.bbox)
    tr = Tracker()
    tr.update([a], 0)
    assert tr.cost_matrix([b], 1)[0, 0] == pytest.approx(0.0, abs=1e-9)


def test_frame_index_must_increase_and_config_is_checked():
    tr = Tracker()
    tr.update([], 3)
    with pytest.raises(ValueError, match="must increase"):
        tr.update([], 3)
    with pytest.raises(ValueError):
        TrackerConfig(iou_weight=1.5)
    with pytest.raises(ValueError):
        TrackerConfig(max_age=-1)

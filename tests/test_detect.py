"""hmrkit.detect: MediaPipe Holistic on two sample photos (tests/data/images), and the keypoint readers."""

from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np
import pytest

from conftest import data_path
from hmrkit import conventions as C
from hmrkit.detect import (
    KeypointSequence,
    MediaPipeHolistic,
    MediaPipeHolisticConfig,
    check_image,
    holistic_from_openpose,
    read_evidence_npz,
    read_keypoint_file,
    write_evidence_npz,
)
from hmrkit.errors import InputError, NoPersonError

H = {n: i for i, n in enumerate(C.HOLISTIC)}
# astronaut.jpg: 512x512, frontal, upper body; lunge_pexels.jpg: 400x599, seen from behind.
SAMPLES = ("astronaut.jpg", "lunge_pexels.jpg")


def sample_image(name: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(data_path("images", name)).convert("RGB"))


@pytest.fixture(scope="module")
def detector():
    with MediaPipeHolistic(MediaPipeHolisticConfig(static_image_mode=True)) as det:
        yield det


@pytest.fixture(scope="module")
def detections(detector):
    """name -> (image, list[Evidence]); each sample is detected once."""
    out = {}
    for name in SAMPLES:
        image = sample_image(name)
        out[name] = (image, detector.detect(image))
    return out


# --------------------------------------------------------------------------- MediaPipe


@pytest.mark.parametrize("name", SAMPLES)
def test_mediapipe_finds_person(detections, name):
    image, found = detections[name]
    h, w = image.shape[:2]
    assert len(found) == 1
    ev = found[0]
    assert ev.convention == "holistic" and ev.source == "mediapipe"
    assert ev.image_size == (h, w)
    assert ev.keypoints2d.shape == (len(C.HOLISTIC), 3) and ev.keypoints2d.dtype == np.float32
    assert ev.keypoints3d.shape == (len(C.HOLISTIC), 4)
    conf = ev.keypoints2d[:, 2]
    assert ((conf >= 0) & (conf <= 1)).all()
    # hands and face: all or nothing, 1 or 0
    for sl in (slice(33, 54), slice(54, 75), slice(75, None)):
        assert len(set(conf[sl].tolist())) == 1 and conf[sl][0] in (0.0, 1.0)
    # confident keypoints lie in the image and (independent output) on the person mask
    sel = conf > 0.5
    assert sel.sum() >= 20
    x, y = ev.keypoints2d[sel, 0], ev.keypoints2d[sel, 1]
    assert (x > -2).all() and (x < w + 2).all() and (y > -2).all() and (y < h + 2).all()
    assert ev.mask.shape == (h, w) and ev.mask.dtype == np.float32
    assert 0.0 <= ev.mask.min() and ev.mask.max() <= 1.0
    xi = np.clip(np.round(x).astype(int), 0, w - 1)
    yi = np.clip(np.round(y).astype(int), 0, h - 1)
    assert (ev.mask[yi, xi] > 0.5).mean() > 0.75
    # the box holds the confident keypoints and lies in the image
    x0, y0, x1, y1 = ev.bbox
    assert 0 <= x0 < x1 <= w - 1 and 0 <= y0 < y1 <= h - 1
    assert (x >= x0 - 1).all() and (x <= x1 + 1).all() and (y >= y0 - 1).all() and (y <= y1 + 1).all()
    # nose above the hips (image y grows downwards)
    kp = ev.keypoints2d
    assert kp[H["nose"], 1] < min(kp[H["left_hip"], 1], kp[H["right_hip"], 1])


def test_mediapipe_left_is_subjects_left(detections):
    # astronaut.jpg faces the camera: her left shoulder / eye appear on the image's right.
    # Distances are in image widths (measured: shoulders 0.37 w apart here, 0.15 w on the lunge).
    image, found = detections["astronaut.jpg"]
    kp, w = found[0].keypoints2d, image.shape[1]
    assert kp[H["left_shoulder"], 0] > kp[H["right_shoulder"], 0] + 0.1 * w
    assert kp[H["face.left_eye_outer_corner"], 2] == 1.0
    assert kp[H["face.left_eye_outer_corner"], 0] > kp[H["face.right_eye_outer_corner"], 0]
    assert kp[H["face.jaw_l0"], 0] > kp[H["face.chin"], 0] > kp[H["face.jaw_r0"], 0]
    # lunge_pexels.jpg is seen from behind: his left is on the image's left, and the
    # holistic hands are the subject's too (left-hand landmarks at the pose's left wrist).
    image, found = detections["lunge_pexels.jpg"]
    kp, w = found[0].keypoints2d, image.shape[1]
    assert kp[H["left_shoulder"], 0] < kp[H["right_shoulder"], 0] - 0.1 * w
    assert kp[H["left_hand.wrist"], 2] == 1.0 and kp[H["right_hand.wrist"], 2] == 1.0
    for side, other in (("left", "right"), ("right", "left")):  # measured: 0.01 w and 0.3 w
        hand = kp[H[f"{side}_hand.wrist"], :2]
        assert np.linalg.norm(hand - kp[H[f"{side}_wrist"], :2]) < 0.025 * w
        assert np.linalg.norm(hand - kp[H[f"{other}_wrist"], :2]) > 0.2 * w


def test_mediapipe_world_landmarks_opencv_axes(detections):
    for name, facing_camera in (("astronaut.jpg", True), ("lunge_pexels.jpg", False)):
        ev = detections[name][1][0]
        k3 = ev.keypoints3d
        hips = 0.5 * (k3[H["left_hip"], :3] + k3[H["right_hip"], :3])
        assert np.abs(hips).max() < 0.05, "origin at the middle of the hips"
        # y down: the head is above the hips
        assert k3[H["nose"], 1] < hips[1] - 0.3
        # x right: same left/right order as in the image
        dx3 = k3[H["left_shoulder"], 0] - k3[H["right_shoulder"], 0]
        dx2 = ev.keypoints2d[H["left_shoulder"], 0] - ev.keypoints2d[H["right_shoulder"], 0]
        assert np.sign(dx3) == np.sign(dx2)
        # z forward (away from the camera): the nose is nearer than the hips when facing it
        assert (k3[H["nose"], 2] < hips[2] - 0.1) if facing_camera else (k3[H["nose"], 2] > hips[2] + 0.1)
        # metric: shoulders 0.2-0.6 m apart; hands and face have no 3D
        assert 0.2 < np.linalg.norm(k3[H["left_shoulder"], :3] - k3[H["right_shoulder"], :3]) < 0.6
        assert (k3[33:] == 0).all()
        np.testing.assert_allclose(k3[:33, 3], ev.keypoints2d[:33, 2])


def test_mediapipe_nobody_in_blank_image(detector):
    assert detector.detect(np.full((240, 320, 3), 128, np.uint8)) == []


def test_mediapipe_video_mode_tracks_and_resets():
    image = sample_image("astronaut.jpg")
    with MediaPipeHolistic(MediaPipeHolisticConfig(static_image_mode=False)) as det:
        a = det.detect(image)
        b = det.detect(image)
        det.reset()
        c = det.detect(np.full((200, 100, 3), 90, np.uint8))
    assert len(a) == len(b) == 1 and c == []
    nose = H["nose"]
    assert np.linalg.norm(a[0].keypoints2d[nose, :2] - b[0].keypoints2d[nose, :2]) < 10


def test_check_image_rejects_wrong_input():
    with pytest.raises(ValueError, match=r"\(H, W, 3\).*float64 \(4, 4, 3\)"):
        check_image(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        check_image(np.zeros((4, 4), np.uint8))


def test_missing_mediapipe_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` fail
    with pytest.raises(ImportError, match=r'pip install "hmrkit\[detect\]"'):
        MediaPipeHolistic()


# --------------------------------------------------------------------------- readers


def _coco_kp(rng, v):
    kp = np.zeros((17, 3))
    kp[:, 0] = rng.uniform(0, 630, 17).round(2)
    kp[:, 1] = rng.uniform(0, 470, 17).round(2)
    kp[:, 2] = v
    return kp


def test_coco_results_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.1, 1.0, 17).round(3)
    scores[3] = 0.0
    a, b, c = _coco_kp(rng, scores), _coco_kp(rng, scores[::-1]), _coco_kp(rng, 2.0)
    c[5, 2] = 0.0  # a flag 0: not labelled
    data = [
        {"image_id": 7, "category_id": 1, "keypoints": a.ravel().tolist(), "score": 0.9},
        {"image_id": 3, "category_id": 1, "keypoints": b.ravel().tolist(), "score": 0.8},
        {"image_id": 7, "category_id": 1, "keypoints": c.ravel().tolist(), "score": 0.6},
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    seq = read_keypoint_file(path, image_size=(480, 640))
    assert isinstance(seq, KeypointSequence)
    assert seq.convention == "coco17" and seq.frame_ids == (3, 7) and seq.source == "coco-json:results.json"
    assert [len(f) for f in seq.frames] == [1, 2]
    ev_b, (ev_a, ev_c) = seq.frames[0][0], seq.frames[1]
    assert ev_a.image_size == (480, 640) and ev_a.convention == "coco17"
    # scores in [0, 1] are per-keypoint confidences; missing keypoints are zeros
    expect_a = a.copy()
    expect_a[3] = 0
    np.testing.assert_allclose(ev_a.keypoints2d, expect_a, atol=1e-4)
    np.testing.assert_allclose(ev_b.keypoints2d[:, 2], scores[::-1], atol=1e-6)
    # visibility flags (2) fall back to the detection score, 0 stays 0
    expect_c = np.where(np.arange(17) == 5, 0.0, 0.6)
    np.testing.assert_allclose(ev_c.keypoints2d[:, 2], expect_c, atol=1e-6)


def test_coco_results_image_size_from_extent_warns(tmp_path):
    kp = np.zeros((17, 3))
    kp[:, 2] = 1.0
    kp[0, :2] = (99.2, 49.5)
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{"image_id": 0, "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 1}]))
    seq = read_keypoint_file(path)
    assert len(seq.warnings) == 1 and "r.json" in seq.warnings[0] and "image size" in seq.warnings[0]
    assert seq.frames[0][0].image_size == (51, 101)


def test_coco_annotations_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    flags = rng.integers(0, 3, 17).astype(float)
    flags[0] = 2
    a, b = _coco_kp(rng, flags), _coco_kp(rng, 2.0)
    a[flags == 0, :2] = 0
    data = {
        "images": [
            {"id": 10, "file_name": "x.jpg", "width": 640, "height": 480},
            {"id": 11, "file_name": "y.jpg", "width": 320, "height": 240},
            {"id": 12, "file_name": "z.jpg", "width": 320, "height": 240},
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 1, "keypoints": a.ravel().tolist(), "iscrowd": 0,
             "bbox": [1.0, 2.0, 600.0, 400.0]},
            {"id": 2, "image_id": 12, "category_id": 1, "keypoints": b.ravel().tolist(), "iscrowd": 0},
            {"id": 3, "image_id": 12, "category_id": 1, "keypoints": b.ravel().tolist(), "iscrowd": 1},
        ],
    }
    path = tmp_path / "person_keypoints.json"
    path.write_text(json.dumps(data))
    seq = read_keypoint_file(path)
    assert seq.frame_ids == ("x.jpg", "y.jpg", "z.jpg") and [len(f) for f in seq.frames] == [1, 0, 1]
    ev = seq.frames[0][0]
    assert ev.image_size == (480, 640) and seq.frames[2][0].image_size == (240, 320)
    expect = a.copy()
    expect[:, 2] = flags > 0
    np.testing.assert_allclose(ev.keypoints2d, expect, atol=1e-4)
    # the annotation's box (xywh) is inside the padded person box
    assert ev.bbox[0] <= 1.0 and ev.bbox[1] <= 2.0 and ev.bbox[2] >= 601.0 and ev.bbox[3] >= 402.0


def _openpose_person(rng, scale=100.0):
    parts = {
        "pose_keypoints_2d": 25,
        "hand_left_keypoints_2d": 21,
        "hand_right_keypoints_2d": 21,
        "face_keypoints_2d": 70,
    }
    out = {}
    for key, n in parts.items():
        kp = np.column_stack([rng.uniform(0, scale, n), rng.uniform(0, scale, n), rng.uniform(0.2, 1.0, n)])
        out[key] = kp.round(3)
    return out


def test_holistic_from_openpose_pins():
    rng = np.random.default_rng(2)
    p = _openpose_person(rng)
    body, lh, rh, face = (p[k] for k in ("pose_keypoints_2d", "hand_left_keypoints_2d",
                                        "hand_right_keypoints_2d", "face_keypoints_2d"))
    out = holistic_from_openpose(body, lh, rh, face)
    # BODY_25 indices: 0 nose, 5 LShoulder, 7 LWrist, 12 LHip, 16 LEye, 19 LBigToe, 21 LHeel, 24 RHeel
    for name, i in (("nose", 0), ("left_shoulder", 5), ("left_wrist", 7), ("right_wrist", 4), ("left_hip", 12),
                    ("left_eye", 16), ("left_foot_index", 19), ("left_heel", 21), ("right_heel", 24),
                    ("right_foot_index", 22)):
        np.testing.assert_array_equal(out[H[name]], body[i], err_msg=name)
    # hands keep their order (wrist, thumb..pinky); OpenPose's left is the subject's left
    np.testing.assert_array_equal(out[H["left_hand.wrist"]:H["left_hand.pinky_tip"] + 1], lh)
    np.testing.assert_array_equal(out[H["right_hand.index_tip"]], rh[8])
    # face-70 (iBUG): 8 chin, 0 subject's right jaw end, 16 left, 30 nose tip, 48/54 mouth corners
    for name, i in (("face.chin", 8), ("face.jaw_r0", 0), ("face.jaw_l0", 16), ("face.nose_tip", 30),
                    ("face.mouth_right_corner", 48), ("face.mouth_left_corner", 54),
                    ("face.left_eye_outer_corner", 45), ("face.right_brow_outer", 17), ("mouth_left", 54)):
        np.testing.assert_array_equal(out[H[name]], face[i], err_msg=name)
    lid = out[H["face.right_eye_upper_lid"]]
    np.testing.assert_allclose(lid[:2], face[[37, 38], :2].mean(0))
    assert lid[2] == face[[37, 38], 2].min()
    # names without a counterpart (MediaPipe's finger points on the body) have confidence 0
    assert out[H["left_pinky"], 2] == 0 and out[H["right_thumb"], 2] == 0
    # every face-subset name has a counterpart
    assert (out[H["face.jaw_r0"]:, 2] > 0).all()


def test_openpose_file_and_folder_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    persons = [_openpose_person(rng) for _ in range(3)]
    folder = tmp_path / "op"
    folder.mkdir()
    frames = {"f_10_keypoints.json": [persons[2]], "f_2_keypoints.json": [], "f_1_keypoints.json": persons[:2]}
    for name, people in frames.items():
        doc = {"version": 1.3, "people": [{k: v.ravel().tolist() for k, v in p.items()} | {"person_id": [-1]}
                                          for p in people]}
        (folder / name).write_text(json.dumps(doc))
    (folder / "notes.txt").write_text("not a frame")
    seq = read_keypoint_file(folder, image_size=(200, 300))
    assert seq.convention == "holistic" and seq.source == "openpose-json:op"
    assert seq.frame_ids == ("f_1_keypoints.json", "f_2_keypoints.json", "f_10_keypoints.json")
    assert [len(f) for f in seq.frames] == [2, 0, 1]
    ev = seq.frames[2][0]
    assert ev.image_size == (200, 300) and ev.keypoints3d is None and ev.mask is None
    expect = holistic_from_openpose(*(persons[2][k] for k in ("pose_keypoints_2d", "hand_left_keypoints_2d",
                                                              "hand_right_keypoints_2d", "face_keypoints_2d")))
    np.testing.assert_allclose(ev.keypoints2d, expect, atol=1e-4)
    # one file, with hands and face switched off (OpenPose writes empty lists)
    single = tmp_path / "one.json"
    body = persons[0]["pose_keypoints_2d"]
    single.write_text(json.dumps({"people": [{"pose_keypoints_2d": body.ravel().tolist(),
                                              "hand_left_keypoints_2d": [], "face_keypoints_2d": []}]}))
    ev = read_keypoint_file(single, image_size=(200, 300)).frames[0][0]
    np.testing.assert_allclose(ev.keypoints2d[H["right_knee"]], body[10], atol=1e-4)
    assert (ev.keypoints2d[33:, 2] == 0).all()


def test_evidence_npz_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    kp = np.zeros((3, 2, 17, 3), np.float32)
    kp[..., :2] = rng.uniform(0, 300, (3, 2, 17, 2))
    kp[..., 2] = rng.uniform(0.05, 1.0, (3, 2, 17))
    kp[1, 1] = 0.0  # person 1 absent in frame 1
    kp[2, 0, 4] = 0.0  # one keypoint missing
    cam_K = np.tile(np.array([[500.0, 0, 160], [0, 500, 120], [0, 0, 1]]), (3, 1, 1))
    path = tmp_path / "ev.npz"
    write_evidence_npz(path, kp, "coco17", (240, 320), cam_K=cam_K, fps=25)
    assert sorted(os.listdir(tmp_path)) == ["ev.npz"], "no temporary file left behind"
    seq = read_keypoint_file(path)
    assert seq.source == "hmrkit-npz:ev.npz" and seq.convention == "coco17" and seq.fps == 25.0
    assert [len(f) for f in seq.frames] == [2, 1, 2]
    assert seq.frames[0][0].image_size == (240, 320)
    np.testing.assert_array_equal(seq.cam_K, cam_K)
    np.testing.assert_array_equal(seq.to_array(), kp)
    # and back again
    path2 = tmp_path / "ev2.npz"
    write_evidence_npz(path2, seq.to_array(), seq.convention, seq.image_size, seq.cam_K, seq.fps)
    np.testing.assert_array_equal(read_evidence_npz(path2).to_array(), kp)


def test_evidence_npz_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ev.npz"
    kp = np.full((1, 1, 17, 3), 0.5, np.float32)
    write_evidence_npz(path, kp, "coco17", (10, 10))
    before = path.read_bytes()

    def fail(f, **arrays):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", fail)
    with pytest.raises(OSError, match="disk full"):
        write_evidence_npz(path, kp * 0.5, "coco17", (10, 10))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ev.npz"]


def _write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


_KP17 = np.full((1, 1, 17, 3), 0.5, np.float32)
_COCO_OK = {"image_id": 1, "category_id": 1, "keypoints": [1.0] * 51, "score": 1.0}
BAD_FILES = {
    "missing.json": None,
    "invalid.json": '{"people": [',
    "empty.json": "",
    "short.json": json.dumps([{**_COCO_OK, "keypoints": [1.0] * 50}]),
    "text_kp.json": json.dumps([{**_COCO_OK, "keypoints": ["a"] * 51}]),
    "no_image_id.json": json.dumps([{"keypoints": [1.0] * 51}]),
    "nobody.json": "[]",
    "unknown_layout.json": json.dumps({"frames": []}),
    "op_body18.json": json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 54}]}),
    "op_nan.json": '{"people": [{"pose_keypoints_2d": [' + ", ".join(["NaN"] * 75) + "]}]}",
    "ann_bad_image.json": json.dumps({"images": [{"id": 1, "width": 0, "height": 5}], "annotations": []}),
    "ann_orphan.json": json.dumps({"images": [{"id": 1, "width": 9, "height": 5}],
                                   "annotations": [{"image_id": 2, "keypoints": [1.0] * 51}]}),
    "keypoints.txt": "1 2 3",
    "garbage.npz": b"PK\x03\x04 not really a zip",
    "unknown_conv.npz": dict(keypoints2d=_KP17, convention=np.array("coco18"), image_size=np.array([10, 10])),
    "wrong_k.npz": dict(keypoints2d=_KP17, convention=np.array("holistic"), image_size=np.array([10, 10])),
    "no_size.npz": dict(keypoints2d=_KP17, convention=np.array("coco17")),
    "bad_cam.npz": dict(keypoints2d=_KP17, convention=np.array("coco17"), image_size=np.array([10, 10]),
                        cam_K=np.eye(3)),
    "empty_t.npz": dict(keypoints2d=_KP17[:0], convention=np.array("coco17"), image_size=np.array([10, 10])),
    "zero_conf.npz": dict(keypoints2d=_KP17 * 0, convention=np.array("coco17"), image_size=np.array([10, 10])),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_raise_input_error(tmp_path, name):
    content = BAD_FILES[name]
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        _write_npz(path, **content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a bad file must fail, not warn
        with pytest.raises(InputError) as err:
            read_keypoint_file(path, image_size=(10, 10))
    msg = str(err.value)
    assert name in msg and "\n" not in msg, msg
    if name in ("nobody.json", "zero_conf.npz", "empty_t.npz"):
        assert isinstance(err.value, NoPersonError)


def test_empty_folder_raises_input_error(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    with pytest.raises(InputError, match="frames: no .json files"):
        read_keypoint_file(folder)


def test_import_works_without_mediapipe():
    import subprocess

    code = "import sys; sys.modules['mediapipe'] = None; import hmrkit.detect; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr

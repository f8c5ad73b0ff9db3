import numpy as np
import pytest
import torch

from hmrkit import conventions as C


@pytest.mark.parametrize("name", C.available())
def test_tables_consistent(name):
    conv = C.get(name)
    assert len(set(conv.names)) == len(conv.names)
    assert all(0 <= i < len(conv) and 0 <= j < len(conv) for i, j in conv.edges)
    flip = np.array(conv.flip)
    assert (flip[flip] == np.arange(len(conv))).all(), "flip must be an involution"
    for k, n in enumerate(conv.names):
        if "left" in n:
            assert conv.names[flip[k]] == n.replace("left", "right")


def test_sizes_pin():
    sizes = {n: len(C.get(n)) for n in ["coco17", "mediapipe33", "hand21", "h36m17", "openpose25", "smpl24"]}
    assert sizes == {"coco17": 17, "mediapipe33": 33, "hand21": 21, "h36m17": 17, "openpose25": 25, "smpl24": 24}
    assert len(C.get("holistic")) == 33 + 21 + 21 + len(C.FACE)


def test_known_indices_pin():
    # Published orders: COCO's 5 is left_shoulder, MediaPipe's 23 left_hip, BODY_25's 8 MidHip,
    # H36M's 0 pelvis and 10 head top, SMPL's 12 neck.
    assert C.get("coco17").index("left_shoulder") == 5
    assert C.get("mediapipe33").index("left_hip") == 23
    assert C.get("openpose25").index("mid_hip") == 8
    assert C.get("h36m17").names[0] == "pelvis" and C.get("h36m17").names[10] == "head_top"
    assert C.get("smpl24").index("neck") == 12


def test_convert_coco_to_openpose_with_derived():
    kp = np.random.rand(2, 17, 3).astype(np.float32)
    out, mask = C.convert(kp, "coco17", "openpose25")
    op = C.get("openpose25")
    coco = C.get("coco17")
    assert mask[op.index("left_knee")]
    assert np.allclose(out[:, op.index("left_knee")], kp[:, coco.index("left_knee")])
    mid = 0.5 * (kp[:, coco.index("left_hip")] + kp[:, coco.index("right_hip")])
    assert np.allclose(out[:, op.index("mid_hip")], mid)
    assert not mask[op.index("left_heel")]
    assert np.all(out[:, op.index("left_heel")] == 0)


def test_convert_torch_matches_numpy():
    kp = np.random.rand(3, 33, 2).astype(np.float32)
    a, ma = C.convert(kp, "mediapipe33", "h36m17")
    b, mb = C.convert(torch.from_numpy(kp), "mediapipe33", "h36m17")
    assert (ma == mb).all() and np.allclose(a, b.numpy())


def test_convert_with_confidence_minimum_for_midpoints():
    kp = np.zeros((17, 3), np.float32)
    coco = C.get("coco17")
    kp[coco.index("left_shoulder")] = [10, 20, 0.9]
    kp[coco.index("right_shoulder")] = [30, 20, 0.4]
    out = C.convert_with_confidence(kp, "coco17", "openpose25")
    neck = out[C.get("openpose25").index("neck")]
    assert neck.tolist() == pytest.approx([20, 20, 0.4])


def test_flip_keypoints_pixels():
    kp = np.zeros((17, 3), np.float32)
    coco = C.get("coco17")
    kp[coco.index("left_wrist")] = [10, 5, 1]
    out = C.flip_keypoints(kp, "coco17", image_width=100)
    assert out[coco.index("right_wrist")].tolist() == [89, 5, 1]


def test_unknown_convention_message():
    with pytest.raises(ValueError, match="unknown keypoint convention 'coco18'"):
        C.get("coco18")

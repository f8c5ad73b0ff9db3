"""The video evaluation sets: ``synthetic:sequences,render=1`` (each clip rendered with one
appearance and seen by MediaPipe Holistic in video mode) and ``temporal=1`` (the keypoint
set's noise correlated over frames, ``add_temporal_noise``)."""

from __future__ import annotations

import pytest
import torch

from hmrkit.errors import InputError
from hmrkit.eval import protocols as P


@pytest.fixture(scope="module")
def rendered(anny_body):
    from hmrkit.eval.protocols import build_synthetic

    spec = P.parse_data_spec("synthetic:sequences,n=1,frames=4,size=256,render=1")
    return spec, build_synthetic(anny_body, spec)


def test_rendered_sequence_set_builds(anny_body, rendered):
    spec, a = rendered
    assert spec.name == "synthetic:sequences,n=1,frames=4,seed=2024,split=test,render=1,size=256"
    assert a.image_size == (256, 256)
    assert a.inputs.convention == "holistic" and a.inputs.clips == ((0, 4),)
    assert a.inputs.keypoints2d.shape == (4, 116, 3) and a.params.batch_size == 4
    assert a.inputs.keypoints3d is not None and a.inputs.keypoints3d.shape == (4, 116, 4)  # world landmarks
    assert int(a.inputs.found.sum()) >= 3  # a whole, lit, unoccluded person
    assert a.notes["nobody detected"] == f"{4 - int(a.inputs.found.sum())} of 4 frames"
    found = a.inputs.found
    assert (a.inputs.image_size[found] == torch.tensor([256, 256])).all()
    # the detections lie on the person: body keypoints near the true projections
    from hmrkit.data.render_synthetic import keypoints_from_output

    with torch.no_grad():
        out = anny_body(a.params)
    gt = keypoints_from_output(anny_body, out, a.inputs.K, a.image_size, "mediapipe33")
    err = (a.inputs.keypoints2d[found, :33, :2] - gt[found, :, :2]).norm(dim=-1).median()
    assert err < 0.1 * 256


def test_rendered_sequence_set_is_deterministic(anny_body, rendered):
    from hmrkit.eval.protocols import build_synthetic

    spec, a = rendered
    b = build_synthetic(anny_body, spec)
    for f in ("global_orient", "pose", "shape", "transl"):
        assert torch.equal(getattr(a.params, f), getattr(b.params, f))
    assert torch.equal(a.inputs.K, b.inputs.K)
    assert torch.equal(a.inputs.found, b.inputs.found)
    assert torch.allclose(a.inputs.keypoints2d, b.inputs.keypoints2d, atol=1.0)  # MediaPipe itself
    # the same motion and camera as the keypoint set of the same seed (only the image size differs)
    plain = build_synthetic(anny_body, P.parse_data_spec("synthetic:sequences,n=1,frames=4"))
    assert torch.equal(a.params.pose, plain.params.pose)
    assert torch.allclose(a.params.transl, plain.params.transl, atol=1e-5)


def test_sequence_spec_keys():
    s = P.parse_data_spec("synthetic:sequences,temporal=1")
    assert s.temporal == 1 and s.render == 0
    assert s.name == "synthetic:sequences,n=4,frames=32,seed=2024,split=test,noise=realistic,temporal=1"
    assert P.parse_data_spec("synthetic:sequences").name == \
        "synthetic:sequences,n=4,frames=32,seed=2024,split=test,noise=realistic"  # unchanged
    assert P.parse_data_spec("synthetic:sequences,render=1").size == 512
    for bad, msg in (("synthetic:sequences,render=1,world3d=0.05", "MediaPipe's own"),
                     ("synthetic:sequences,render=1,temporal=1", "MediaPipe's own"),
                     ("synthetic:sequences,render=1,noise=clean", "MediaPipe's own"),
                     ("synthetic:sequences,size=256", "add render=1"),
                     ("synthetic:sequences,temporal=1,noise=clean", "temporal=1"),
                     ("synthetic:sequences,temporal=2", "temporal must be 0 or 1"),
                     ("synthetic:sequences,render=2", "render must be 0 or 1"),
                     ("synthetic:frames,temporal=1", "unknown key")):
        with pytest.raises(InputError, match=msg):
            P.parse_data_spec(bad)


def _lag1(kp: torch.Tensor, gt: torch.Tensor, clips) -> float:
    """Lag-1 correlation of the 2D error over the frames of each clip (confident points)."""
    num = den_a = den_b = 0.0
    for a, b in clips:
        e = kp[a:b, :, :2] - gt[a:b, :, :2]
        ok = (kp[a:b, :, 2] > 0.5) & ((e.norm(dim=-1)) < 30)
        m = (ok[1:] & ok[:-1])[..., None]
        x, y = e[:-1] * m, e[1:] * m
        num += float((x * y).sum())
        den_a += float((x * x).sum())
        den_b += float((y * y).sum())
    return num / (den_a * den_b) ** 0.5


def test_temporal_sequence_set(anny_body):
    from hmrkit.data.render_synthetic import keypoints_from_output
    from hmrkit.eval.protocols import build_synthetic

    spec = P.parse_data_spec("synthetic:sequences,n=3,frames=16,temporal=1")
    t = build_synthetic(anny_body, spec)
    plain = build_synthetic(anny_body, P.parse_data_spec("synthetic:sequences,n=3,frames=16"))
    assert torch.equal(t.params.pose, plain.params.pose) and torch.equal(t.inputs.K, plain.inputs.K)
    assert t.inputs.keypoints2d.shape == plain.inputs.keypoints2d.shape == (48, 33, 3)
    assert t.inputs.clips == plain.inputs.clips and bool(t.inputs.found.all())
    assert torch.equal(t.inputs.keypoints2d, build_synthetic(anny_body, spec).inputs.keypoints2d)
    with torch.no_grad():
        out = anny_body(t.params)
    gt = keypoints_from_output(anny_body, out, t.inputs.K, t.image_size, "mediapipe33")
    assert _lag1(t.inputs.keypoints2d, gt, t.inputs.clips) > 0.5 > abs(_lag1(plain.inputs.keypoints2d, gt,
                                                                             plain.inputs.clips))

"""Anny's ``face`` keypoints (hmrkit.body.anny_face): the file covers the convention, the
points sit where a face's parts are on the mean body, and MediaPipe FaceMesh run on a
render of the mean face finds its landmarks where the keypoints project."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from hmrkit.body.anny_face import LANDMARKS_FILE, anny_face_entries
from hmrkit.body.base import KeypointRegressor
from hmrkit.conventions import FACE, FACE_MESH_INDICES
from hmrkit.conventions import get as get_convention
from hmrkit.geometry import project
from hmrkit.types import BodyParams

CONTOUR = np.array([n.startswith("jaw_") or n == "chin" for n in FACE])


def side(name: str) -> str:
    if "left" in name or name.startswith("jaw_l"):
        return "left"
    if "right" in name or name.startswith("jaw_r"):
        return "right"
    return "midline"


@pytest.fixture(scope="module")
def face_regressor(anny_body):
    V = anny_body.num_vertices
    return KeypointRegressor.from_entries(FACE, anny_face_entries(V), V)


@pytest.fixture(scope="module")
def mean_face(anny_body, face_regressor):
    """(name -> (3,) metres) the face keypoints on the mean rest body (body frame: y up,
    facing +z, left +x), with the body output."""
    out = anny_body(anny_body.mean_params(1))
    kp = face_regressor(out.vertices, out.joints)[0]
    return dict(zip(FACE, kp)), out


def test_file_covers_the_face_convention_in_order():
    data = json.loads(LANDMARKS_FILE.read_text())
    assert data["source"].strip()
    assert list(data["landmarks"]) == list(FACE)
    entries = anny_face_entries()
    assert len(entries) == len(FACE)
    for name, e in zip(FACE, entries):
        assert 1 <= len(e) <= 6, name
        w = np.array([x for _, x in e])
        assert (w > 0).all() and abs(w.sum() - 1.0) < 1e-6, (name, e)


def test_vertex_indices_are_valid(anny_body, face_regressor):
    V = anny_body.num_vertices
    idx = [i for e in anny_face_entries() for i, _ in e]
    assert min(idx) >= 0 and max(idx) < V  # vertices only: no joint indices
    assert face_regressor.valid.all()
    with pytest.raises(ValueError, match="out of range"):
        anny_face_entries(num_vertices=1000)


def test_sides_and_symmetry_on_the_mean_body(mean_face):
    P, _ = mean_face
    midline_x = float(P["nose_tip"][0])
    flip = get_convention("face").flip
    for k, name in enumerate(FACE):
        x = float(P[name][0]) - midline_x
        s = side(name)
        if s == "left":
            assert x > 0.005, (name, x)
        elif s == "right":
            assert x < -0.005, (name, x)
        else:
            assert abs(x) < 0.002, (name, x)
        # the pairs were chosen as mirror images
        mirrored = P[FACE[flip[k]]] * torch.tensor([-1.0, 1.0, 1.0])
        mirrored[0] += 2 * midline_x
        assert (P[name] - mirrored).norm() < 0.002, name


def test_anatomical_order_on_the_mean_body(mean_face):
    P, _ = mean_face
    pts = torch.stack([P[n] for n in FACE])
    y = {n: float(P[n][1]) for n in FACE}
    # the nose tip is the most forward face point, the chin the lowest
    assert int(pts[:, 2].argmax()) == FACE.index("nose_tip")
    assert int(pts[:, 1].argmin()) == FACE.index("chin")

    def group(*words):
        return [n for n in FACE if any(w in n for w in words)]

    brows, eyes = group("brow"), group("eye_")
    nostrils = group("nostril")
    mouth = group("mouth_", "lip")
    assert len(brows) == 6 and len(eyes) == 8 and len(nostrils) == 2 and len(mouth) == 6
    assert min(y[n] for n in brows) > max(y[n] for n in eyes)
    assert min(y[n] for n in eyes) > max(y[n] for n in nostrils)
    assert min(y[n] for n in nostrils) > max(y[n] for n in mouth)
    # within the mouth and the eyes
    assert y["upper_lip_top"] > y["upper_lip_inner"] >= y["lower_lip_inner"] > y["lower_lip_bottom"]
    for s in ("left", "right"):
        assert y[f"{s}_eye_upper_lid"] > y[f"{s}_eye_lower_lid"]
        inner, outer = float(P[f"{s}_eye_inner_corner"][0]), float(P[f"{s}_eye_outer_corner"][0])
        assert abs(inner - float(P["nose_tip"][0])) < abs(outer - float(P["nose_tip"][0]))
    # the jaw contour runs down from the ears to the chin on each side
    for s in ("l", "r"):
        ys = [y[f"jaw_{s}{i}"] for i in range(8)] + [y["chin"]]
        assert all(a > b for a, b in zip(ys, ys[1:])), (s, ys)


def test_open_mouth_separates_the_inner_lips(anny_body, face_regressor):
    params = anny_body.mean_params(2)
    expression = params.expression.clone()
    expression[1, anny_body.facial_action_names.index("jawOpen")] = 0.6
    params = BodyParams(params.global_orient, params.pose, params.shape, params.transl, expression)
    out = anny_body(params)
    kp = face_regressor(out.vertices, out.joints)
    up, low = FACE.index("upper_lip_inner"), FACE.index("lower_lip_inner")
    gap = (kp[:, up, 1] - kp[:, low, 1]).tolist()
    assert gap[0] < 0.005 and gap[1] > gap[0] + 0.010, gap
    # the chin drops with the jaw; the brows stay
    chin, brow = FACE.index("chin"), FACE.index("left_brow_mid")
    assert kp[1, chin, 1] < kp[0, chin, 1] - 0.005
    assert abs(float(kp[1, brow, 1] - kp[0, brow, 1])) < 0.002


def test_mediapipe_finds_the_landmarks_where_the_keypoints_project(mean_face, anny_body):
    """Render the mean face frontally (640 px, camera 0.7 m in front of the nose, the face
    about 200 px from brows to chin), run MediaPipe FaceMesh and compare.

    Measured: inner face 0.9 px mean (2.3 max), jaw contour 1.5 px mean (3.2 max). The
    bounds leave about a factor of 2 (MediaPipe and the renderer may shift a little with
    their versions)."""
    import mediapipe as mp

    from hmrkit.render import render_mesh

    P, out = mean_face
    v = out.vertices[0]
    kp = torch.stack([P[n] for n in FACE])
    nose = P["nose_tip"]
    s = float(v[:, 1].max() - nose[1])  # nose tip to the top of the head
    centre = torch.tensor([0.0, float(nose[1]) + 0.25 * s, float(nose[2])])
    cv_from_body = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # upright, facing the camera
    shift = torch.tensor([0.0, 0.0, 0.7])
    vc = (v - centre) @ cv_from_body + shift
    kc = (kp - centre) @ cv_from_body + shift
    S = 640
    f = 0.41 * S * 0.7 / s
    K = torch.tensor([[f, 0.0, (S - 1) / 2], [0.0, f, (S - 1) / 2], [0.0, 0.0, 1.0]])
    rgb, _ = render_mesh(vc, anny_body.faces, K, (S, S), colors=(0.87, 0.72, 0.62))

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=False, max_num_faces=1) as fm:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fm.process(rgb)
    assert res.multi_face_landmarks, "MediaPipe FaceMesh found no face in the render of Anny's mean face"
    lm = res.multi_face_landmarks[0].landmark
    detected = np.array([(lm[i].x * S, lm[i].y * S) for i in FACE_MESH_INDICES.values()])
    ours = project(kc, K).numpy()
    err = np.linalg.norm(ours - detected, axis=1)
    face_height = detected[:, 1].max() - detected[:, 1].min()
    assert 150 < face_height < 260, face_height
    inner, contour = err[~CONTOUR], err[CONTOUR]
    worst = FACE[int(err.argmax())]
    assert inner.mean() < 2.0 and inner.max() < 5.0, (inner.mean(), inner.max(), worst)
    assert contour.mean() < 3.5 and contour.max() < 7.0, (contour.mean(), contour.max(), worst)
    # the subject's left lands on the image's right
    left = np.array([side(n) == "left" for n in FACE])
    assert detected[left, 0].min() > S / 2 and ours[left, 0].min() > S / 2

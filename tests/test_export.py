"""Exported meshes open upright: a real body placed in front of the camera, as the
estimators place it, is written +Y up (head above the feet), facing +z, with outward
normals, in every format, and reads back as the expected transformed vertices."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from hmrkit.io import save_mesh

SUFFIXES = (".obj", ".ply", ".glb")


@pytest.fixture(scope="module")
def placed(anny_body):
    """(body-frame vertices (V, 3), camera-frame vertices (V, 3), faces (F, 3)) of the mean
    Anny body placed 3 m in front of the camera: global orient = 180 degrees about x (the
    body's y up -> the image's up), translation (0, 0, 3)."""
    body = anny_body
    mean = body.mean_params(1)
    with torch.no_grad():
        v_body = body(mean).vertices[0].double().numpy()
        R = torch.diag(torch.tensor([1.0, -1.0, -1.0])).to(mean.global_orient)[None]
        params = replace(mean, global_orient=R, transl=torch.tensor([[0.0, 0.0, 3.0]]).to(mean.transl))
        v_cam = body(params).vertices[0].double().numpy()
    # the placement is (x, y, z) -> (x, -y, -z) + (0, 0, 3)
    np.testing.assert_allclose(v_cam, v_body * [1, -1, -1] + [0, 0, 3], atol=1e-5)
    assert v_cam[:, 2].min() > 2.5  # in front of the camera
    return v_body, v_cam, body.faces.numpy()


def _load(path):
    import trimesh

    return trimesh.load(path, process=False, force="mesh")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_exported_body_is_upright(placed, tmp_path, suffix):
    v_body, v_cam, faces = placed
    head, feet = np.argmax(v_body[:, 1]), np.argmin(v_body[:, 1])
    # In the camera frame the head is at smaller y (up in the image) than the feet ...
    assert v_cam[head, 1] < v_cam[feet, 1] - 1.5
    back = _load(save_mesh(tmp_path / f"body{suffix}", v_cam, faces))
    # ... and in the file the head is at larger +Y: upright in a +Y-up viewer.
    assert back.vertices[head, 1] > back.vertices[feet, 1] + 1.5
    # The body faces +z, towards the viewer: the toes are ahead of the heels.
    foot = np.flatnonzero(v_body[:, 1] < v_body[:, 1].min() + 0.05)
    toes, heels = foot[np.argmax(v_body[foot, 2])], foot[np.argmin(v_body[foot, 2])]
    assert back.vertices[toes, 2] > back.vertices[heels, 2] + 0.15
    # Round trip: the file holds (x, -y, -z) of the camera-frame vertices, faces as given.
    np.testing.assert_allclose(back.vertices, v_cam * [1, -1, -1], atol=1e-5)
    np.testing.assert_allclose(back.vertices, v_body - [0, 0, 3], atol=1e-5)
    np.testing.assert_array_equal(back.faces, faces)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_exported_body_normals_point_outward(placed, tmp_path, suffix):
    """A rotation keeps the winding: the closed body mesh keeps a positive signed volume
    (outward normals). A reflection (only y flipped, say) would make it negative."""
    v_body, v_cam, faces = placed
    back = _load(save_mesh(tmp_path / f"body{suffix}", v_cam, faces))
    assert back.is_watertight and back.is_winding_consistent
    assert 0.04 < back.volume < 0.15  # m^3, a human body (the mean Anny: 0.073)
    # and the face normals trimesh computes from the winding point away from the body:
    # at the top of the head, up (+Y)
    top = np.argmax(back.triangles_center[:, 1])
    assert back.face_normals[top, 1] > 0.5


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_body_frame_vertices_export_unchanged(placed, tmp_path, suffix):
    """frame="yup": vertices already +Y up (the body frame) are written as given."""
    v_body, _, faces = placed
    back = _load(save_mesh(tmp_path / f"rest{suffix}", v_body, faces, frame="yup"))
    np.testing.assert_allclose(back.vertices, v_body, atol=1e-5)
    assert back.vertices[:, 1].argmax() == v_body[:, 1].argmax() and back.volume > 0


def test_glb_declares_no_other_frame(placed, tmp_path):
    """The GLB carries the +Y-up vertices itself: no node transform that a viewer would apply."""
    import json
    import struct

    _, v_cam, faces = placed
    data = save_mesh(tmp_path / "body.glb", v_cam, faces).read_bytes()
    length = struct.unpack("<I", data[12:16])[0]
    gltf = json.loads(data[20:20 + length])
    for node in gltf.get("nodes", []):
        assert "rotation" not in node and "scale" not in node
        assert "matrix" not in node or np.allclose(node["matrix"], np.eye(4).ravel())
    (accessor,) = [a for a in gltf["accessors"] if a.get("type") == "VEC3" and "max" in a]
    np.testing.assert_allclose(accessor["max"], (v_cam * [1, -1, -1]).max(0), atol=1e-5)
    np.testing.assert_allclose(accessor["min"], (v_cam * [1, -1, -1]).min(0), atol=1e-5)

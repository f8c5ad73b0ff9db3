"""hmrkit.render: convention pins for the OpenCV camera, the Anny body upright and facing
the camera, blending, side views, keypoint drawing and panels.

Set HMRKIT_RENDER_CHECK=/tmp/render_check.png to save the Anny overlay for a look."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import data_path
from hmrkit.conventions import get as get_convention
from hmrkit.geometry import project
from hmrkit.render import (
    check_image_size,
    check_intrinsics,
    draw_keypoints,
    overlay_panel,
    render_labels,
    render_mesh,
    render_overlay,
    render_side_view,
    render_vertex_colors,
    side_view_vertices,
)
from hmrkit.render import overlay as overlay_module

# A non-square image, unequal focal lengths and an off-centre principal point, so that a
# swapped axis or a mirrored offset cannot pass.
H, W = 240, 320
K = np.array([[500.0, 0.0, 170.0], [0.0, 520.0, 110.0], [0.0, 0.0, 1.0]])


def square(center, side=0.2):
    """A fronto-parallel square (4 vertices, 2 triangles) centred at ``center`` (camera
    frame), facing the camera: counter-clockwise as seen in the image."""
    c = np.asarray(center, dtype=np.float64)
    d = side / 2
    v = c + np.array([[-d, -d, 0.0], [d, -d, 0.0], [d, d, 0.0], [-d, d, 0.0]])
    return v, np.array([[0, 2, 1], [0, 3, 2]])


def mask_centroid(mask):
    ys, xs = np.nonzero(mask > 0.5)
    return np.array([xs.mean(), ys.mean()])


def test_silhouette_lands_where_project_puts_it():
    center = (0.15, -0.10, 2.0)
    v, f = square(center)
    rgb, mask = render_mesh(v, f, K, (H, W))
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8 and mask.shape == (H, W)
    # hand-computed: u = 500 * 0.15 / 2 + 170 = 207.5, v = 520 * -0.10 / 2 + 110 = 84
    expected = np.array([207.5, 84.0])
    np.testing.assert_allclose(project(torch.tensor([center]), torch.tensor(K))[0].numpy(), expected)
    np.testing.assert_allclose(mask_centroid(mask), expected, atol=1.0)
    # extent: the side spans 500 * 0.2 / 2 = 50 px across and 52 px down
    ys, xs = np.nonzero(mask)
    assert abs((xs.max() - xs.min() + 1) - 50) <= 1 and abs((ys.max() - ys.min() + 1) - 52) <= 1
    # the corners land on the projected corners (pixel centres at integer coordinates)
    corners = project(torch.tensor(v), torch.tensor(K)).numpy()
    assert abs(xs.min() - corners[:, 0].min()) <= 1 and abs(ys.max() - corners[:, 1].max()) <= 1


def test_front_faces_are_lit_back_faces_are_dark():
    """Counter-clockwise on screen (outward winding) faces the camera and gets the lights;
    the reversed winding is drawn too, with ambient light only."""
    v, f = square((0.0, 0.0, 2.0))
    u, w = int(K[0, 2]), int(K[1, 2])
    front = render_mesh(v, f, K, (H, W), colors=[(0.8, 0.8, 0.8)])[0][w, u].astype(int)
    back, mask = render_mesh(v, f[:, ::-1], K, (H, W), colors=[(0.8, 0.8, 0.8)])
    assert mask[w, u] == 1
    assert front.mean() > 180 and back[w, u].mean() < 0.7 * front.mean()


def test_vertex_colors_and_lights():
    """render_vertex_colors: per-vertex (linear) colours interpolated over the faces, lit
    by the given lights only; its coverage matches render_mesh's."""
    v, f = square((0.0, 0.0, 2.0), 0.3)
    red, green = [1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]
    colors = np.array([red, red, green, green], np.float32)  # top row red, bottom green (y down)
    toward = [((0.0, 0.0, 1.0), 3.0)]  # light travelling away from the camera onto the square
    rgb, mask = render_vertex_colors(v, f, colors, K, (H, W), toward, ambient=0.0, bg_color=(0, 0, 1))
    np.testing.assert_array_equal(mask, render_mesh(v, f, K, (H, W))[1])
    top, bottom = rgb[int(K[1, 2]) - 30, int(K[0, 2])], rgb[int(K[1, 2]) + 30, int(K[0, 2])]
    assert top[0] > 150 and top[1] < 0.5 * top[0] and bottom[1] > 150 and bottom[0] < 0.5 * bottom[1]
    assert tuple(rgb[5, 5]) == (0, 0, 255)  # background
    # a light from behind the square and no ambient light leave its front dark
    dark, _ = render_vertex_colors(v, f, colors, K, (H, W), [((0.0, 0.0, -1.0), 3.0)], ambient=0.0)
    assert dark[int(K[1, 2]) - 30, int(K[0, 2])].max() < 40
    with pytest.raises(ValueError, match="vertex_colors"):
        render_vertex_colors(v, f, colors[:3], K, (H, W), toward)


def test_render_labels_and_input_checks():
    # two triangles of one square with labels 4 and 9: each label where its triangle is
    v, f = square((0.15, -0.10, 2.0))
    seg = render_labels(v, f, np.array([4, 9]), K, (H, W))
    assert seg.dtype == np.int16 and set(np.unique(seg)) == {-1, 4, 9}
    np.testing.assert_array_equal(seg >= 0, render_mesh(v, f, K, (H, W))[1] > 0.5)
    # triangle [0, 2, 1] holds the top-right corner (vertex 1: +x, -y), [0, 3, 2] the bottom-left
    c = project(torch.tensor(v), torch.tensor(K)).numpy()
    assert seg[int(c[1, 1]) + 3, int(c[1, 0]) - 3] == 4 and seg[int(c[3, 1]) - 3, int(c[3, 0]) + 3] == 9
    with pytest.raises(ValueError, match="face_labels"):
        render_labels(v, f, np.array([4, 300]), K, (H, W))
    assert check_image_size((2, 3)) == (2, 3) and check_intrinsics(torch.tensor(K)[None]).shape == (3, 3)
    for bad in ((0, 3), (-1, 2)):
        with pytest.raises(ValueError):
            check_image_size(bad)
    with pytest.raises(ValueError, match="focal"):
        check_intrinsics(np.diag([0.0, 1.0, 1.0]))


def test_render_synthetic_uses_only_public_render_api():
    import inspect

    from hmrkit.data import render_synthetic

    src = inspect.getsource(render_synthetic)
    assert "hmrkit.render.overlay" not in src and "import _" not in src


def test_plus_x_is_right_and_plus_y_is_down():
    cx, cy = K[0, 2], K[1, 2]
    right = mask_centroid(render_mesh(*square((0.3, 0.0, 2.0), 0.1), K, (H, W))[1])
    down = mask_centroid(render_mesh(*square((0.0, 0.15, 2.0), 0.1), K, (H, W))[1])
    assert right[0] > cx + 60 and abs(right[1] - cy) < 2
    assert down[1] > cy + 30 and abs(down[0] - cx) < 2


def test_several_people_colours_and_occlusion():
    near, f = square((0.0, 0.0, 2.0), 0.2)
    far, _ = square((0.05, 0.0, 3.0), 0.6)  # larger and behind, overlapping the near one
    rgb, mask = render_mesh(np.stack([far, near]), f, K, (H, W))
    u, v = int(round(K[0, 2])), int(round(K[1, 2]))
    c_near = rgb[v, u].astype(int)  # the centre sees the near square
    c_far = rgb[v, u + 45].astype(int)  # outside the near square, inside the far one
    assert mask[v, u] == 1 and mask[v, u + 45] == 1
    assert np.abs(c_near - c_far).sum() > 60, (c_near, c_far)
    # explicit colours are honoured: a pure red square is red
    rgb, _ = render_mesh(near, f, K, (H, W), colors=[(1.0, 0.0, 0.0)])
    r, g, b = rgb[v, u].astype(int)
    assert r - max(g, b) > 150, (r, g, b)
    # nobody: the background and an empty mask, without rendering
    rgb, mask = render_mesh(np.zeros((0, 4, 3)), f, K, (H, W))
    assert mask.sum() == 0 and (rgb == 255).all()


def test_overlay_blends_only_under_the_mesh():
    img = np.random.default_rng(0).integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    v, f = square((0.0, 0.0, 2.0))
    rgb, mask = render_mesh(v, f, K, (H, W))
    out = render_overlay(img, v, f, K, alpha=0.6)
    m = mask > 0.5
    np.testing.assert_array_equal(out[~m], img[~m])
    expect = np.round(0.4 * img[m].astype(np.float32) + 0.6 * rgb[m].astype(np.float32))
    assert np.abs(out[m].astype(int) - expect).max() <= 1


def _anny_in_front(body, depth=3.0):
    """The mean Anny body rotated 180 degrees about x (head to -y, facing the camera) at z = depth."""
    out = body(body.mean_params(1))
    R = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    v = out.vertices[0] @ R.T + torch.tensor([0.0, 0.0, depth])
    rest = out.vertices[0]  # body frame: y up, facing +z, the body's left at +x
    return v, rest, body.faces


def test_anny_upright_and_facing_the_camera(anny_body, tmp_path):
    v, rest, faces = _anny_in_front(anny_body)
    h, w = 480, 360
    Kb = torch.tensor([[600.0, 0.0, w / 2], [0.0, 600.0, h / 2], [0.0, 0.0, 1.0]])
    _, full = render_mesh(v, faces, Kb, (h, w))
    assert full.sum() > 2000
    ys, xs = np.nonzero(full)
    assert ys.min() > 0 and ys.max() < h - 1  # the whole body is in view

    # the head (the top 12% of the rest body) renders in the upper part of the image
    y = rest[:, 1]
    head = y > y.max() - 0.12 * (y.max() - y.min())
    head_faces = faces[head[faces].all(1)]
    _, head_mask = render_mesh(v, head_faces, Kb, (h, w))
    hc = mask_centroid(head_mask)
    assert hc[1] < ys.min() + 0.15 * (ys.max() - ys.min()), "the head is not at the top: upside down?"
    assert hc[1] < h / 2 - 80

    # the body's left hand (its +x side, beyond the elbow) is on the image's right
    x = rest[:, 0]
    left_hand = x > 0.75 * x.max()
    hand_faces = faces[left_hand[faces].all(1)]
    _, hand_mask = render_mesh(v, hand_faces, Kb, (h, w))
    lc = mask_centroid(hand_mask)
    assert lc[0] > w / 2 + 60, "the left hand should be on the image's right for a body facing the camera"
    # and both land where the projection of their vertices puts them (inside the box of
    # the projected vertices; area and vertex-density centroids differ, so no closer)
    for sel, c in ((head, hc), (left_hand, lc)):
        p = project(v[sel], Kb).numpy()
        assert (p.min(0) <= c).all() and (c <= p.max(0)).all(), (p.min(0), c, p.max(0))

    # facing the camera: the nose (COCO) is nearer than the back of the head
    kp = anny_body.keypoints(anny_body(anny_body.mean_params(1)), "coco17")[0]
    nose_z = (kp[0] @ torch.diag(torch.tensor([1.0, -1.0, -1.0])))[2] + 3.0
    assert nose_z < v[head, 2].mean()

    img = (np.full((h, w, 3), 90, np.uint8) + np.linspace(0, 80, w, dtype=np.uint8)[None, :, None])
    over = render_overlay(img, v, faces, Kb)
    target = os.environ.get("HMRKIT_RENDER_CHECK")
    if target:
        from PIL import Image

        kp2 = project(kp @ torch.diag(torch.tensor([1.0, -1.0, -1.0])) + torch.tensor([0, 0, 3.0]), Kb)
        kp3 = torch.cat([kp2, torch.ones(17, 1)], 1)
        panel = overlay_panel(img, v, faces, Kb, keypoints2d=kp3, convention="coco17")
        Image.fromarray(panel).save(target)
    assert (over != img).any(axis=2).sum() == pytest.approx(full.sum(), rel=0.05)


def test_side_view(anny_body):
    v, _, faces = _anny_in_front(anny_body)
    h, w = 480, 360
    Kb = np.array([[600.0, 0.0, w / 2], [0.0, 600.0, h / 2], [0.0, 0.0, 1.0]])
    _, front = render_mesh(v, faces, Kb, (h, w))
    side = render_side_view(v, faces, Kb, (h, w), angle_deg=90)
    side_mask = (side < 250).any(axis=2)

    def width(m):
        return np.ptp(np.nonzero(m.any(0))[0])

    def height(m):
        return np.ptp(np.nonzero(m.any(1))[0])

    assert width(side_mask) < 0.6 * width(front)  # an A-pose is wider than it is deep
    assert abs(height(side_mask) - height(front)) < 0.1 * height(front)
    assert (side[0] > 250).all() and (side[-1] > 250).all()  # white background, body inside

    # people spread 4 m apart end up one behind the other: pushed back until all are in view
    two = torch.stack([v - torch.tensor([2.0, 0.0, 0.0]), v + torch.tensor([2.0, 0.0, 0.0])])
    sv = side_view_vertices(two, Kb, (h, w), angle_deg=90)
    assert (sv[..., 2] > 0.1).all()
    uv = project(torch.tensor(sv), torch.tensor(Kb)).numpy()
    assert (uv[..., 0] >= 0).all() and (uv[..., 0] <= w - 1).all()
    assert (uv[..., 1] >= 0).all() and (uv[..., 1] <= h - 1).all()
    # 0 degrees with everything in view changes nothing
    np.testing.assert_allclose(side_view_vertices(v, Kb, (h, w), angle_deg=0)[0], v.numpy(), atol=1e-5)


def test_draw_keypoints_sides_and_confidence():
    conv = get_convention("coco17")
    img = np.zeros((200, 200, 3), np.uint8)
    kp = np.zeros((17, 3))
    kp[:, 2] = 0.0
    idx = conv.index
    kp[idx("left_shoulder")] = (150, 50, 0.9)
    kp[idx("left_elbow")] = (150, 150, 0.9)
    kp[idx("right_shoulder")] = (50, 50, 0.9)
    kp[idx("right_elbow")] = (50, 150, 0.2)  # below min_conf: neither point nor edge
    kp[idx("nose")] = (100, 20, 0.9)
    out = draw_keypoints(img, kp, "coco17", min_conf=0.3, radius=4, thickness=3)
    assert img.sum() == 0  # the input is untouched
    np.testing.assert_array_equal(out[100, 150], overlay_module.LEFT_COLOR)  # left upper arm
    np.testing.assert_array_equal(out[50, 100], overlay_module.CENTER_COLOR)  # shoulder line
    np.testing.assert_array_equal(out[20, 100], overlay_module.CENTER_COLOR)  # nose
    np.testing.assert_array_equal(out[50, 50], overlay_module.RIGHT_COLOR)  # right shoulder
    assert out[100, 50].sum() == 0 and out[150, 50].sum() == 0  # low-confidence elbow
    with pytest.raises(ValueError, match=r"expected shape \(17, 3\)"):
        draw_keypoints(img, kp[:5], "coco17")


def test_overlay_panel_and_renderer_cache():
    img = np.full((H, W, 3), 128, np.uint8)
    v, f = square((0.0, 0.0, 2.0))
    kp = np.zeros((17, 3))
    kp[0] = (100, 100, 1.0)
    overlay_module.clear_renderer_cache()
    panel = overlay_panel(img, v, f, K, keypoints2d=kp, convention="coco17")
    assert panel.shape == (H, 3 * W, 3) and panel.dtype == np.uint8
    np.testing.assert_array_equal(panel[:, :W], draw_keypoints(img, kp, "coco17"))
    np.testing.assert_array_equal(panel[:, W:2 * W], render_overlay(img, v, f, K))
    assert len(overlay_module._renderers) == 1  # one renderer for the size, reused
    render_mesh(v, f, K, (64, 48))
    assert set(overlay_module._renderers) == {(H, W), (64, 48)}
    with pytest.raises(ValueError, match="convention"):
        overlay_panel(img, v, f, K, keypoints2d=kp)


def test_repeated_renders_reuse_shaders_and_memory():
    """Every render must hit pyrender's shader cache (keyed on the OpenGL context) and
    free its meshes: a video renders thousands of frames."""
    v, f = square((0.0, 0.0, 2.0))

    def rss_mb():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

    for _ in range(3):
        render_mesh(v, f, K, (96, 128))
    before = rss_mb()
    for k in range(40):
        render_mesh(v + 0.001 * k, f, K, (96, 128))
    renderer = overlay_module._renderers[(96, 128)]
    assert len(renderer._renderer._program_cache._program_cache) == 1
    assert rss_mb() - before < 30


def test_missing_backend_names_the_install_line():
    code = textwrap.dedent(
        """
        import numpy as np
        from hmrkit.render import RendererUnavailable, render_mesh
        v = np.array([[0, 0, 2.0], [0.1, 0, 2.0], [0, 0.1, 2.0]])
        try:
            render_mesh(v, np.array([[0, 1, 2]]), np.diag([100.0, 100.0, 1.0]), (32, 32))
        except RendererUnavailable as e:
            assert isinstance(e, ImportError)
            print(e)
        """
    )
    env = dict(os.environ, PYOPENGL_PLATFORM="no-such-platform")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    msg = out.stdout.strip()
    assert len(msg.splitlines()) == 1, out.stdout + out.stderr
    assert 'pip install "hmrkit[render]"' in msg and "apt-get install libosmesa6" in msg


def test_sample_photo_overlay_smoke(anny_body):
    from hmrkit.io import read_image

    img = read_image(data_path("images", "astronaut.jpg"))
    v, _, faces = _anny_in_front(anny_body, depth=4.0)
    Kb = np.array([[600.0, 0.0, img.shape[1] / 2], [0.0, 600.0, img.shape[0] / 2], [0.0, 0.0, 1.0]])
    out = render_overlay(img, v, faces, Kb)
    assert out.shape == img.shape and (out != img).any()

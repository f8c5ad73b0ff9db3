"""hmrkit.data.render_synthetic and hmrkit.data.sequences: part labels, the segmentation
render (a convention pin, alignment with the RGB render and with projected vertices,
left/right), determinism, keypoints on body pixels, and sequences (continuity, the
camera's projection)."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch
from PIL import Image

from hmrkit.conventions import HAND21, HOLISTIC
from hmrkit.data import render_synthetic as RS
from hmrkit.data.sequences import load_sequences, sample_sequence
from hmrkit.data.synthetic import NoiseConfig, SceneConfig, keypoints2d, sample_scenes
from hmrkit.errors import InputError
from hmrkit.geometry import project
from hmrkit.types import BodyParams

H, W = 400, 300
K = torch.tensor([[520.0, 0.0, 155.0], [0.0, 520.0, 205.0], [0.0, 0.0, 1.0]])


def frontal_params(body, depth=3.0):
    """The mean body upright, facing the camera (180 degrees about x: y down, facing -z)."""
    p = body.mean_params(1)
    go = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=p.pose.dtype))[None]
    return BodyParams(go, p.pose, p.shape, torch.tensor([[0.0, 0.1, depth]], dtype=p.pose.dtype), p.expression)


def edge_band(mask: np.ndarray, r: int = 1) -> np.ndarray:
    """Pixels within r of the mask's boundary."""
    from scipy.ndimage import binary_dilation, binary_erosion

    return binary_dilation(mask, iterations=r) & ~binary_erosion(mask, iterations=r)


@pytest.fixture(scope="module")
def frontal(anny_body):
    params = frontal_params(anny_body)
    r = RS.render_sample(anny_body, params, K, (H, W), skin_tone=3, clothing=False, seed=1)
    with torch.no_grad():
        out = anny_body(params)
    return params, out, r


def test_part_labels_cover_every_part_and_side(anny_body):
    labels = RS.part_labels(anny_body).numpy()
    assert labels.shape == (anny_body.num_vertices,)
    counts = np.bincount(labels, minlength=len(RS.PART_NAMES))
    assert len(counts) == len(RS.PART_NAMES) == 22 and (counts > 0).all()
    rest = anny_body.rest_output().vertices[0].numpy()  # body frame: left at +x
    for k, name in enumerate(RS.PART_NAMES):
        x = rest[labels == k, 0].mean()
        if name.startswith("left_"):
            assert x > 0.02, name
        elif name.startswith("right_"):
            assert x < -0.02, name
        else:
            assert abs(x) < 0.01, name
    # fingers belong to their hand, the head sits above the neck above spine3
    y = {n: rest[labels == RS.PART_NAMES.index(n), 1].mean() for n in ("head", "neck", "spine3", "pelvis")}
    assert y["head"] > y["neck"] > y["spine3"] > y["pelvis"]
    tips = [anny_body.regressors["hand21_left"].index[HAND21.index("index_tip"), 0].item()]
    assert labels[tips[0]] == RS.PART_NAMES.index("left_wrist")


def test_part_labels_smpl_family_merges_hands(tmp_path):
    import hmrkit.body
    from hmrkit.body.synthetic import write_synthetic_model

    body = hmrkit.body.load("smplh", write_synthetic_model(tmp_path / "SMPLH_NEUTRAL.npz", "smplh", "npz"))
    joint = body.vertex_part_labels().numpy()
    labels = RS.part_labels(body).numpy()
    names = body.joint_names
    for j in np.unique(joint):
        n = names[j]
        expect = n if n in RS.PART_NAMES else ("left_wrist" if n.startswith("left_") else "right_wrist")
        assert (labels[joint == j] == RS.PART_NAMES.index(expect)).all(), n


def test_part_seg_convention_pin():
    # a fronto-parallel square of side 0.202 m centred at (0.15, -0.10, 2) projects to
    # (207.5, 84) with half-sides 500 * 0.101 / 2 = 25.25 px across and 520 * 0.101 / 2 =
    # 26.26 px down: it covers [182.25, 232.75] x [57.74, 110.26], so exactly the pixel
    # centres 183..232 x 58..110 (no centre near an edge; half a pixel off either way
    # changes the range)
    Kp = np.array([[500.0, 0.0, 170.0], [0.0, 520.0, 110.0], [0.0, 0.0, 1.0]])
    c, d = np.array([0.15, -0.10, 2.0]), 0.101
    v = c + np.array([[-d, -d, 0.0], [d, -d, 0.0], [d, d, 0.0], [-d, d, 0.0]])
    f = np.array([[0, 2, 1], [0, 3, 2]])
    seg = RS.render_part_seg(v, f, np.array([7, 7]), Kp, (240, 320))
    assert seg.dtype == np.int16 and seg.shape == (240, 320)
    expected = np.full((240, 320), -1, np.int16)
    expected[58:111, 183:233] = 7
    np.testing.assert_array_equal(seg, expected)
    # two labels meet on the diagonal: no blended or stray values, the same coverage
    seg2 = RS.render_part_seg(v, f, np.array([3, 11]), Kp, (240, 320))
    assert set(np.unique(seg2)) == {-1, 3, 11} and ((seg2 >= 0) == (seg >= 0)).all()


def test_segmentation_aligns_with_rgb(frontal):
    _, out, r = frontal
    assert r.rgb.shape == (H, W, 3) and r.rgb.dtype == np.uint8
    assert r.part_seg.shape == (H, W) and r.part_seg.dtype == np.int16
    seg, alpha = r.part_seg >= 0, r.mask > 0.5
    differ = seg ^ alpha
    assert seg.sum() > 5000
    assert (differ & ~edge_band(alpha)).sum() == 0  # only edge pixels may differ
    assert differ.sum() <= 0.01 * seg.sum()


def bbox(xs, ys):
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return w * h / (area(a) + area(b) - w * h)


def test_segmentation_matches_projected_parts(anny_body, frontal):
    # independent of the renderer: each part's pixels lie where its vertices project
    _, out, r = frontal
    labels = RS.part_labels(anny_body).numpy()
    face_labels = RS.face_part_labels(anny_body)
    faces = anny_body.faces.numpy()
    uv = project(out.vertices, K)[0].numpy()
    for k, name in enumerate(RS.PART_NAMES):
        ys, xs = np.nonzero(r.part_seg == k)
        pix, ver = bbox(xs, ys), bbox(uv[labels == k, 0], uv[labels == k, 1])
        # inside the box of its triangles' projected corners
        corners = uv[faces[face_labels == k].reshape(-1)]
        tri = bbox(corners[:, 0], corners[:, 1])
        assert (pix[:2] >= tri[:2] - 0.5).all() and (pix[2:] <= tri[2:] + 0.5).all(), name
        if name in ("head", "left_hip", "right_hip", "left_knee", "right_knee", "left_elbow", "right_elbow"):
            extent = pix + [-0.5, -0.5, 0.5, 0.5]  # pixel centres -> pixel edges
            assert iou(extent, ver) > 0.75, name  # unoccluded from the front: the same extent


def test_every_part_visible_on_a_frontal_render(frontal):
    _, _, r = frontal
    present = set(np.unique(r.part_seg).tolist()) - {-1}
    missing = [RS.PART_NAMES[k] for k in range(len(RS.PART_NAMES)) if k not in present]
    assert not missing


def test_left_arm_on_the_image_right(frontal):
    _, _, r = frontal
    xs = {}
    for side in ("left", "right"):
        ks = [RS.PART_NAMES.index(f"{side}_{j}") for j in ("shoulder", "elbow", "wrist")]
        xs[side] = np.nonzero(np.isin(r.part_seg, ks))[1].mean()
    centre = np.nonzero(r.part_seg >= 0)[1].mean()
    assert xs["left"] > centre + 40 and xs["right"] < centre - 40
    # the head is above the pelvis (upright)
    assert np.nonzero(r.part_seg == RS.PART_NAMES.index("head"))[0].mean() < \
        np.nonzero(r.part_seg == RS.PART_NAMES.index("pelvis"))[0].mean() - 80


def test_background_folder_and_skin_tones(anny_body, tmp_path):
    for name, colour in (("a.png", (250, 10, 10)), ("b.jpg", (10, 10, 250))):
        Image.fromarray(np.full((60, 90, 3), colour, np.uint8)).save(tmp_path / name, quality=100)
    params = frontal_params(anny_body, depth=4.0)
    light = RS.Light(direction=(0.0, 0.3, 1.0), intensity=3.0, fill=0.5, ambient=0.3)
    r_light = RS.render_sample(anny_body, params, K, (H, W), background=str(tmp_path), skin_tone=0,
                               light=light, clothing=False, seed=2)
    r_dark = RS.render_sample(anny_body, params, K, (H, W), background=str(tmp_path), skin_tone=9,
                              light=light, clothing=False, seed=2)
    bg = r_light.mask == 0
    px = r_light.rgb[bg].astype(int)
    assert (np.abs(px - (250, 10, 10)).max(1) <= 8).all() or (np.abs(px - (10, 10, 250)).max(1) <= 8).all()
    body = (r_light.part_seg >= 0) & (r_dark.part_seg >= 0)
    assert r_light.rgb[body].mean() > r_dark.rgb[body].mean() + 60
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        RS.render_sample(anny_body, params, K, (H, W), background=str(tmp_path / "empty"), seed=0)
    with pytest.raises(InputError, match="not found"):
        RS.render_sample(anny_body, params, K, (H, W), background=str(tmp_path / "missing"), seed=0)


def test_generate_is_deterministic(anny_body):
    cfg = SceneConfig(image_size=(160, 128))

    def run(seed):
        return list(RS.generate(anny_body, 3, seed=seed, rendered=True, scene=cfg, chunk=2))

    a, b, c = run(4), run(4), run(5)
    for x, y in zip(a, b):
        assert np.array_equal(x.rgb, y.rgb) and np.array_equal(x.part_seg, y.part_seg)
        assert np.array_equal(x.mask, y.mask)
        for conv in RS.DEFAULT_CONVENTIONS:
            assert torch.equal(x.keypoints2d[conv], y.keypoints2d[conv])
        assert torch.equal(x.params.pose, y.params.pose) and torch.equal(x.K, y.K)
    assert not np.array_equal(a[0].rgb, c[0].rgb)
    assert [s.index for s in a] == [0, 1, 2]


def test_keypoints_match_keypoints2d(anny_body):
    samples = list(RS.generate(anny_body, 4, seed=9, rendered=False))
    s = samples[2]
    batch = sample_scenes(anny_body, 4, seed=int(np.random.SeedSequence([9, 0]).generate_state(1)[0]))
    assert torch.equal(batch.params.pose[2], s.params.pose[0])
    for conv in ("coco17", "mediapipe33", "holistic"):
        ref = keypoints2d(anny_body, batch, conv)[2]
        torch.testing.assert_close(s.keypoints2d[conv], ref)
    hol = s.keypoints2d["holistic"]
    assert hol.shape == (len(HOLISTIC), 3)
    torch.testing.assert_close(hol[:33], s.keypoints2d["mediapipe33"])
    assert not s.keypoints2d_noisy  # no noise asked for


def test_noisy_keypoints_stay_near_the_truth(anny_body):
    samples = list(RS.generate(anny_body, 16, seed=3, noise=NoiseConfig.realistic(), conventions=("coco17",)))
    clean = torch.stack([s.keypoints2d["coco17"] for s in samples])
    noisy = torch.stack([s.keypoints2d_noisy["coco17"] for s in samples])
    both = (clean[..., 2] > 0) & (noisy[..., 2] > 0)
    err = (noisy[..., :2] - clean[..., :2]).norm(dim=-1)[both]
    height = (clean[..., 1].amax(1) - clean[..., 1].amin(1))
    assert both.float().mean() > 0.7 and err.max() > 0
    assert err.median() < 0.05 * height.median()


def test_rendered_keypoints_land_on_body_pixels(anny_body):
    from scipy.ndimage import binary_dilation

    cfg = SceneConfig(image_size=(256, 256), distance=(2.5, 4.0))
    on, total = 0, 0
    for s in RS.generate(anny_body, 6, seed=11, rendered=True, scene=cfg):
        body = binary_dilation(s.part_seg >= 0, iterations=2)
        for conv in ("coco17", "mediapipe33"):
            kp = s.keypoints2d[conv].numpy()
            vis = kp[:, 2] > 0
            x, y = np.round(kp[vis, 0]).astype(int), np.round(kp[vis, 1]).astype(int)
            on += int(body[y, x].sum())
            total += int(vis.sum())
    assert total > 100 and on >= 0.97 * total


# ----------------------------------------------------------------------------------------
# Sequences


@pytest.fixture(scope="module")
def sequence(anny_body):
    return sample_sequence(anny_body, 0, seed=3)


def test_sequence_library_is_shipped():
    lib = load_sequences("anny")
    assert len(lib) >= 8 and lib.num_frames >= 60 and lib.fps == 30.0
    assert len(set(lib.source)) == len(lib)  # different files
    assert "mocap.cs.cmu.edu" in lib.attribution and "NSF EIA-0196217" in lib.attribution
    assert np.isfinite(lib.body_pose_aa).all() and (lib.retarget_error_mm < 60).all()


def test_sequence_is_continuous(anny_body, sequence):
    with torch.no_grad():
        J = anny_body(sequence.params).joints[:, :22]  # body joints, camera frame
    step = (J[1:] - J[:-1]).norm(dim=-1)  # metres per frame
    assert step.median() < 0.03 and step.max() < 0.3
    far = (J[8:] - J[:-8]).norm(dim=-1)
    assert far.mean() > 3 * step.mean()  # motion accumulates: frames are in order, not noise
    R = sequence.cam_R_world
    cam_step = roma.rotmat_geodesic_distance(R[1:], R[:-1])
    assert cam_step.max() < np.radians(1.5)  # a slowly moving camera


def test_sequence_keypoints_match_projection(anny_body, sequence):
    s = sequence
    T = s.num_frames
    # rebuild the frames in the world and project with the camera, independently of the
    # camera-frame params
    R, t = s.cam_R_world, s.cam_t_world
    world = BodyParams(R.transpose(-1, -2) @ s.params.global_orient, s.params.pose, s.params.shape,
                       (R.transpose(-1, -2) @ (s.params.transl - t)[..., None])[..., 0], s.params.expression)
    with torch.no_grad():
        X = anny_body.keypoints(anny_body(world), "coco17")
    Xc = X @ R.transpose(-1, -2) + t[:, None]
    uv = project(Xc, s.K)
    kp = s.keypoints2d["coco17"]
    assert kp.shape == (T, 17, 3)
    torch.testing.assert_close(kp[..., :2], uv, atol=1e-2, rtol=0)
    assert (kp[..., 2] > 0).float().mean() > 0.97  # the body stays in view
    assert s.keypoints2d["holistic"].shape == (T, len(HOLISTIC), 3)

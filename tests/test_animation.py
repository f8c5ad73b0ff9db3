"""Animation exports (hmrkit.io.animation): tracks of a results npz as BVH, read back by
hmrkit's own BVH reader; the frame and unit conventions; ``hmrkit run --export bvh``."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from conftest import data_path, run_cli
from hmrkit.data.mocap.bvh import load_bvh
from hmrkit.io.animation import track_motions, save_bvh

CAM = np.diag([1.0, -1.0, -1.0])


def fake_results(body, T: int = 6, seed: int = 0, gap: tuple = (2, 3)):
    """A results npz's arrays for two tracks of T frames: random library poses, one shape
    per track, the second track not valid in the frames ``gap``."""
    from hmrkit.data.synthetic import sample_scenes

    sc = sample_scenes(body, 2 * T, seed=seed)
    p = sc.params
    shape = p.shape.reshape(T, 2, -1)[:1].expand(T, 2, -1).reshape(2 * T, -1)
    from dataclasses import replace

    p = replace(p, shape=shape)
    with torch.no_grad():
        out = body(p)
    valid = np.ones((T, 2), bool)
    valid[list(gap), 1] = False
    r = lambda x: x.reshape(T, 2, *x.shape[1:]).numpy()  # noqa: E731
    return dict(body_model=np.array(body.name), track_id=np.array([0, 3]), valid=valid, fps=np.array(30.0),
                joint_names=np.array(body.joint_names), pose_joint_names=np.array(body.pose_joint_names),
                global_orient=r(p.global_orient), body_pose=r(p.pose), shape=r(p.shape),
                transl=r(out.joints[:, 0]), joints3d=r(out.joints), vertices=r(out.vertices))


def test_bvh_round_trip_through_hmrkits_reader(anny_body, tmp_path):
    z = fake_results(anny_body)
    motions = track_motions(anny_body, z)
    assert [m.track_id for m in motions] == [0, 3]
    for m in motions:
        f = save_bvh(tmp_path / f"p{m.track_id}.bvh", m)
        clip = load_bvh(f)
        assert clip.num_frames == m.num_frames == 6 and clip.fps == 30.0
        assert clip.scale == pytest.approx(0.01)  # written in cm, read back as cm
        idx = [clip.joint_names.index(n) for n in m.joint_names]
        d = roma.rotmat_geodesic_distance(torch.as_tensor(clip.rotations[:, idx], dtype=torch.float64),
                                          torch.as_tensor(m.rotations))
        assert float(d.max()) < 1e-4
        np.testing.assert_allclose(clip.positions[:, idx], m.joint_positions(), atol=1e-4)
    # the gap holds the previous valid pose, and says so
    m = motions[1]
    assert m.filled.tolist() == [False, False, True, True, False, False]
    np.testing.assert_array_equal(m.rotations[2], m.rotations[1])
    np.testing.assert_array_equal(m.rotations[3], m.rotations[1])


def test_bvh_frame_is_y_up_and_the_skeleton_plays_the_mesh_joints(anny_body):
    """+Y up, the person's left at +x when facing the camera; the root at the pelvis; the
    skeleton's forward kinematics within 4.5 cm of the mesh's joints (Anny moves the spine
    and neck through bone chains: the head is the farthest; docs/outputs.md)."""
    z = fake_results(anny_body, T=4, seed=3)
    m = track_motions(anny_body, z)[0]
    names = list(m.joint_names)
    assert m.rest[names.index("head"), 1] > 0.4  # head above the pelvis at rest, y up
    assert m.rest[names.index("left_hip"), 0] > 0.05  # the left hip at +x
    J = z["joints3d"][:, 0] @ CAM.T
    np.testing.assert_allclose(m.root, J[:, 0], atol=1e-5)
    err = np.linalg.norm(m.joint_positions() - J, axis=-1)[~m.filled]
    assert float(err.max()) < 0.045, f"{1000 * float(err.max()):.1f} mm"
    assert float(np.median(err)) < 0.02


def test_track_motions_rejects_another_body(anny_body):
    z = fake_results(anny_body, T=4)
    z["body_model"] = np.array("smplx")
    with pytest.raises(ValueError, match="smplx"):
        track_motions(anny_body, z)


def read_glb_animation(path):
    """(joint names, times (T,), rotations (T, J, 3, 3), root translations (T, 3),
    inverse bind matrices (J, 4, 4), vertex count) read back from an animated glb."""
    import pygltflib

    g = pygltflib.GLTF2().load(str(path))
    blob = g.binary_blob()

    def arr(i):
        a = g.accessors[i]
        v = g.bufferViews[a.bufferView]
        n = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[a.type]
        dt = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_INT: np.uint32,
              pygltflib.UNSIGNED_SHORT: np.uint16}[a.componentType]
        return np.frombuffer(blob, dt, a.count * n, v.byteOffset + (a.byteOffset or 0)).reshape(a.count, n)

    skin = g.skins[0]
    names = [g.nodes[j].name for j in skin.joints]
    anim = g.animations[0]
    times = arr(anim.samplers[0].input)[:, 0]
    R = np.zeros((len(times), len(names), 3, 3))
    root = None
    for ch in anim.channels:
        out = arr(anim.samplers[ch.sampler].output)
        if ch.target.path == "rotation":
            R[:, skin.joints.index(ch.target.node)] = roma.unitquat_to_rotmat(torch.tensor(out, dtype=torch.float64))
        else:
            root = out.astype(np.float64)
    ibm = arr(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major in the file
    nv = g.accessors[g.meshes[0].primitives[0].attributes.POSITION].count
    return names, times, R, root, ibm, nv


def test_animated_glb_round_trip(anny_body, tmp_path):
    """The animated glTF holds the skeleton (inverse bind matrices of the rest joints), a
    rotation channel per joint and the root's translation at the motion's fps: read back
    with pygltflib, they equal the motion's (the Khronos glTF validator reports no error
    and no warning on these files: docs/outputs.md)."""
    from hmrkit.io.animation import save_anim_glb

    m = track_motions(anny_body, fake_results(anny_body))[1]
    f = save_anim_glb(tmp_path / "t.glb", m, anny_body)
    names, times, R, root, ibm, nv = read_glb_animation(f)
    assert names == list(m.joint_names) and nv == anny_body.num_vertices
    np.testing.assert_allclose(times, np.arange(m.num_frames) / m.fps, atol=1e-6)
    d = roma.rotmat_geodesic_distance(torch.as_tensor(R), torch.as_tensor(m.rotations))
    assert float(d.max()) < 1e-4
    np.testing.assert_allclose(root, m.root, atol=1e-5)
    np.testing.assert_allclose(ibm[:, :3, 3], -m.rest, atol=1e-5)
    np.testing.assert_allclose(ibm[:, :3, :3], np.tile(np.eye(3), (len(names), 1, 1)), atol=1e-6)


def test_run_export_bvh_and_glb_write_one_file_per_track(capfd, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli(capfd, data_path("videos", "two_people_small.mp4"), "--method", "spin",
                           "--max-frames", "4", "--no-overlay", "--export", "anim.glb,bvh", "--out", out)
    assert code == 0, err
    z = np.load(out / "two_people_small.npz")
    files = sorted(out.glob("*.bvh"))
    assert len(files) == int(z["valid"].any(0).sum()) >= 1
    clip = load_bvh(files[0])
    assert clip.num_frames >= 1 and "pelvis" in clip.joint_names
    glbs = sorted(out.glob("*_anim.glb"))
    assert len(glbs) == len(files)
    _, times, _, _, _, _ = read_glb_animation(glbs[0])
    assert len(times) == clip.num_frames


def test_run_export_bvh_on_a_photo_says_so_and_writes_the_meshes(capfd, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli(capfd, data_path("images", "astronaut.jpg"), "--method", "spin", "--no-overlay",
                           "--export", "bvh", "--out", out)
    assert code == 0
    assert any("no animation" in e and "bvh" in e for e in err), err
    assert not list(out.glob("*.bvh")) and list(out.glob("*.glb"))


def test_run_rejects_an_unknown_export(capfd, tmp_path):
    from conftest import one_line_error

    code, _, err = run_cli(capfd, data_path("images", "astronaut.jpg"), "--export", "fbx", "--out", tmp_path)
    assert code == 2
    one_line_error(err, "fbx", "bvh")


def test_anny_skeleton_weights_skin_the_mesh_onto_the_regression_skeleton(anny_body):
    """``AnnyBody.skeleton_weights``: rows sum to 1, every joint gets vertices, and the rest
    mesh skinned onto the 52-joint skeleton with its rotations plays Anny's own posed mesh
    within about a centimetre on average (Anny's bone chains are folded into single
    joints: the spine and neck bend at one point; scripts/animation_check.py measures it)."""
    from dataclasses import replace

    from hmrkit.data.synthetic import sample_scenes

    body = anny_body
    W = body.skeleton_weights()
    assert W.shape == (body.num_vertices, len(body.joint_names))
    torch.testing.assert_close(W.sum(1), torch.ones(body.num_vertices), atol=1e-5, rtol=0)
    assert bool((W.sum(0) > 0).all())
    sc = sample_scenes(body, 4, seed=1)
    p = replace(sc.params, global_orient=torch.eye(3).expand(4, 3, 3), transl=torch.zeros(4, 3))
    with torch.no_grad():
        out, rest = body(p), body(replace(p, pose=torch.eye(3).expand_as(p.pose).clone()))
    J = rest.joints
    G, P = [None] * J.shape[1], [None] * J.shape[1]
    for j, par in enumerate(body.parents):
        R = p.pose[:, j - 1] if j > 0 else torch.eye(3).expand(4, 3, 3)
        if par < 0:
            G[j], P[j] = R, J[:, j]
        else:
            G[j] = G[par] @ R
            P[j] = P[par] + (G[par] @ (J[:, j] - J[:, par])[..., None])[..., 0]
    G, P = torch.stack(G, 1), torch.stack(P, 1)
    local = rest.vertices[:, :, None] - J[:, None]  # (B, V, J, 3)
    v = torch.einsum("vj,bjkl,bvjl->bvk", W, G, local) + torch.einsum("vj,bjk->bvk", W, P)
    err = (v - out.vertices).norm(dim=-1)
    assert float(err.mean()) < 0.015 and float(err.max()) < 0.05


@pytest.mark.skipif(__import__("shutil").which("blender") is None,
                    reason="Blender not installed (apt-get install blender python3-numpy): the headless import check")
def test_blender_imports_the_animations(capfd, tmp_path):
    """Blender's own importers read both files (scripts/blender_check.py, headless)."""
    import subprocess

    out = tmp_path / "out"
    code, _, err = run_cli(capfd, data_path("videos", "two_people_small.mp4"), "--method", "spin",
                           "--max-frames", "4", "--no-overlay", "--export", "anim.glb,bvh", "--out", out)
    assert code == 0, err
    glbs, bvhs = sorted(out.glob("*_anim.glb")), sorted(out.glob("*.bvh"))
    frames = load_bvh(bvhs[0]).num_frames
    script = data_path("..", "..", "scripts", "blender_check.py")
    r = subprocess.run(["blender", "-b", "--python-exit-code", "1", "--python", str(script), "--",
                        "--glb", str(glbs[0]), "--bvh", str(bvhs[0]), "--frames", str(frames)],
                       capture_output=True, text=True, timeout=300)
    checks = [ln for ln in r.stdout.splitlines() if ln.startswith("CHECK")]
    assert r.returncode == 0 and len(checks) == 2 and all(" ok" in c for c in checks), r.stdout[-2000:]


def _threejs():
    """scripts/threejs_render.py: chromium, the three.js folder, a local http server."""
    import sys

    sys.path.insert(0, str(data_path("..", "..", "scripts")))
    import threejs_render

    return threejs_render


def _threejs_dir():
    return _threejs().THREE


def _chromium():
    return _threejs().chromium()


@pytest.mark.skipif(_chromium() is None or not (_threejs_dir() / "build" / "three.module.js").exists(),
                    reason="needs Debian's chromium and three.js (scripts/setup.sh installs both)")
def test_threejs_plays_the_animated_glb_as_hmrkit_does(anny_body, tmp_path):
    """three.js (GLTFLoader + AnimationMixer, in headless chromium) plays the animated glTF:
    at each frame's time its bones stand where hmrkit's own forward kinematics of the motion
    puts the joints, and the skinned mesh is upright (+Y up) and person-sized."""
    import html
    import json
    import re
    import shutil
    import subprocess

    from hmrkit.io.animation import save_anim_glb

    m = track_motions(anny_body, fake_results(anny_body))[1]
    site = tmp_path / "site"
    site.mkdir()
    save_anim_glb(site / "a.glb", m, anny_body)
    shutil.copy(data_path("threejs", "anim_check.html"), site / "index.html")
    (site / "three").symlink_to(_threejs_dir(), target_is_directory=True)
    frames = [0, m.num_frames // 2, m.num_frames - 1]
    times = ",".join(f"{k / m.fps:.6f}" for k in frames)

    with _threejs().serve_site(site) as base:
        url = f"{base}/index.html?glb=a.glb&times={times}"
        r = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
                            f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url],
                           capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="result">(.*?)</pre>', r.stdout, re.S)
    assert found, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(html.unescape(found.group(1)))
    assert res["ok"], res
    assert res["bone_names"] == list(m.joint_names) and res["vertices"] == anny_body.num_vertices
    assert abs(res["duration"] - (m.num_frames - 1) / m.fps) < 1e-5
    assert res["tracks"] == len(m.joint_names) + 1  # a rotation per joint and the root's translation
    P = m.joint_positions()
    for k, f in zip(frames, res["frames"]):
        np.testing.assert_allclose(np.array(f["bones"]), P[k], atol=2e-4, err_msg=f"frame {k}: {P[:, 0]}")
        ext = np.array(f["max"]) - np.array(f["min"])
        if k == 0:
            assert 0.9 < ext[1] < 2.3 and ext[1] > ext[0] and ext[1] > ext[2], ext  # upright, +Y up, metres


@pytest.mark.skipif(_chromium() is None or not (_threejs_dir() / "build" / "three.module.js").exists(),
                    reason="needs Debian's chromium and three.js (scripts/setup.sh installs both)")
def test_threejs_renders_the_animated_glb(anny_body, tmp_path):
    """three.js draws the skinned, animated mesh with WebGL (SwiftShader): pixels of the
    mesh's colour (render.html's first colour, 0x6fa8dc), in the shape of a standing person."""
    from PIL import Image

    from hmrkit.io.animation import save_anim_glb

    render = _threejs().render

    m = track_motions(anny_body, fake_results(anny_body))[1]
    glb = save_anim_glb(tmp_path / "a.glb", m, anny_body)
    img = np.asarray(Image.open(render([glb], tmp_path / "shot.png", 0.5)).convert("RGB")).astype(float)
    hsv = np.asarray(Image.fromarray(img.astype(np.uint8)).convert("HSV")).astype(float)
    blue = (np.abs(hsv[..., 0] - 148) < 12) & (hsv[..., 1] > 60) & (hsv[..., 2] > 60)  # 0x6fa8dc: hue ~209 deg
    ys, xs = np.nonzero(blue)
    assert blue.sum() > 3000, blue.sum()
    assert (ys.max() - ys.min()) > 1.5 * (xs.max() - xs.min())  # a standing person: taller than wide

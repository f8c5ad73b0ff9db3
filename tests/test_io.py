"""hmrkit.io: images, videos, atomic writes and mesh exporters."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

from conftest import data_path
from hmrkit.errors import InputError
from hmrkit.io import (
    VideoReader,
    VideoWriter,
    atomic_write,
    classify,
    expand_inputs,
    read_exif_focal,
    read_image,
    save_glb,
    save_json_atomic,
    save_mesh,
    save_npz_atomic,
    save_obj,
    save_ply,
    yup_from_camera,
)

from PIL import Image


def _one_line_error(err: InputError, path) -> None:
    msg = str(err)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ")


def _gradient(h, w):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1).astype(np.uint8)


# ----------------------------------------------------------------------------------------
# images


@pytest.mark.parametrize("suffix,tol", [(".png", 0), (".bmp", 0), (".tiff", 0), (".webp", 0), (".jpg", 12)])
def test_read_rgb_formats(tmp_path, suffix, tol):
    img = _gradient(37, 53)
    p = tmp_path / f"img{suffix}"
    kwargs = {"lossless": True} if suffix == ".webp" else {}
    if suffix == ".jpg":
        kwargs = {"quality": 95}
    Image.fromarray(img).save(p, **kwargs)
    out = read_image(p)
    assert out.shape == (37, 53, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img).mean() <= tol


def test_read_gray_16bit_and_alpha(tmp_path):
    g = (np.arange(20).reshape(4, 5) * 3000).astype(np.uint16)
    Image.fromarray(g).save(tmp_path / "g16.png")
    out = read_image(tmp_path / "g16.png")
    expect = np.round(g / 257.0).astype(np.uint8)
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out[..., 0], expect)
    np.testing.assert_array_equal(out[..., 1], out[..., 2])

    # 16-bit RGB (OpenCV writes BGR)
    import cv2

    rgb16 = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 1000).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[..., ::-1])
    out = read_image(tmp_path / "rgb16.png")
    assert np.abs(out.astype(int) - rgb16 / 257.0).max() <= 1.0

    # gray + alpha: alpha 0 -> white, alpha 255 -> the gray value, 128 -> halfway
    la = np.zeros((2, 3, 2), np.uint8)
    la[..., 0] = 40
    la[..., 1] = [[0, 255, 128], [0, 255, 128]]
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    out = read_image(tmp_path / "la.png")
    np.testing.assert_allclose(out[0, :, 0], [255, 40, 40 * 128 / 255 + 255 * 127 / 255], atol=1)

    # RGBA over white
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)
    rgba[0, 1] = (0, 0, 255, 0)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png")[0], [[255, 0, 0], [255, 255, 255]])

    # palette with a transparent index
    p = Image.new("P", (2, 1))
    p.putpalette([10, 20, 30, 200, 100, 50] + [0] * (3 * 254))
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "pal.png", transparency=0)
    np.testing.assert_array_equal(read_image(tmp_path / "pal.png")[0], [[255, 255, 255], [200, 100, 50]])


def test_exif_orientation_and_focal(tmp_path):
    img = np.zeros((40, 60, 3), np.uint8)
    img[:10, :10] = 255  # a white block at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif.get_ifd(0x8769)[0xA405] = 26  # FocalLengthIn35mmFilm, mm
    p = tmp_path / "phone.jpg"
    Image.fromarray(img).save(p, exif=exif, quality=95)
    out = read_image(p)
    assert out.shape == (60, 40, 3)
    # after a clockwise turn the stored top-left corner is at the top-right
    assert out[:10, -10:].mean() > 200 and out[:10, :10].mean() < 50
    assert read_exif_focal(p, 40, 60) == pytest.approx(26 / 36 * 60)

    Image.fromarray(img).save(tmp_path / "plain.jpg")
    assert read_exif_focal(tmp_path / "plain.jpg", 60, 40) is None


def test_read_sample_images():
    sizes = {"astronaut.jpg": (512, 512), "lunge_pexels.jpg": (599, 400), "cameraman.png": (256, 256)}
    for name, size in sizes.items():
        out = read_image(data_path("images", name))
        assert out.shape == (*size, 3) and out.dtype == np.uint8 and out.std() > 20
    # cameraman.png is a grayscale PNG: read as three equal channels
    assert (out == out[..., :1]).all()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_read_image_failures(tmp_path):
    cases = {}
    cases["missing.png"] = None
    (tmp_path / "empty.jpg").write_bytes(b"")
    cases["empty.jpg"] = "empty"
    (tmp_path / "text.png").write_text("hello, not an image\n")
    cases["text.png"] = "not a valid PNG"
    jpg = data_path("images", "lunge_pexels.jpg").read_bytes()
    (tmp_path / "half.jpg").write_bytes(jpg[: len(jpg) // 2])
    cases["half.jpg"] = "truncated"
    Image.fromarray(_gradient(8, 8)).save(tmp_path / "anim.gif")
    cases["anim.gif"] = "unsupported image format GIF"
    ihdr = struct.pack(">IIBBBBB", 0, 5, 8, 2, 0, 0, 0)
    zero = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")
    (tmp_path / "zero.png").write_bytes(zero)
    cases["zero.png"] = ""
    (tmp_path / "folder.png").mkdir()
    cases["folder.png"] = "folder"
    for name, words in cases.items():
        p = tmp_path / name
        with pytest.raises(InputError) as e:
            read_image(p)
        _one_line_error(e.value, p)
        if words:
            assert words in str(e.value), str(e.value)


def test_classify_and_expand(tmp_path):
    assert classify("a/B.JPG") == "image"
    assert classify("clip.MP4") == "video"
    assert classify("people.json") == "keypoints" and classify("ev.npz") == "keypoints"
    with pytest.raises(InputError, match="unsupported file type '.txt'"):
        classify("notes.txt")

    for name in ("b10.jpg", "b2.jpg", "a.png", "clip.mp4", "kp.json", "notes.txt", ".DS_Store"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.png").write_bytes(b"x")
    skipped = []
    files = expand_inputs([tmp_path], skipped=skipped)
    assert [p.name for p in files] == ["a.png", "b2.jpg", "b10.jpg", "clip.mp4", "kp.json"]
    assert sorted(p.name for p, _ in skipped) == ["notes.txt", "sub"]
    files = expand_inputs(tmp_path, recursive=True)
    assert [p.name for p in files][-1] == "c.png"
    # an explicitly named file is kept once and in the order given
    files = expand_inputs([tmp_path / "kp.json", tmp_path, tmp_path / "a.png"])
    assert files[0].name == "kp.json" and len(files) == 5
    with pytest.raises(InputError, match="unsupported file type"):
        expand_inputs([tmp_path / "notes.txt"])
    with pytest.raises(InputError, match="no such file"):
        expand_inputs([tmp_path / "nope.png"])


# ----------------------------------------------------------------------------------------
# video


def test_video_reader_sample():
    # two_people_small.mp4: the first 8 frames of two_people.mp4 (1080x1920, 12 fps), at 270x480
    path = data_path("videos", "two_people_small.mp4")
    with VideoReader(path) as r:
        assert r.fps == pytest.approx(12.0)
        assert r.size == (480, 270)
        approx = r.num_frames
        count = 0
        for i, frame in r:
            assert i == count
            count += 1
            if i == 0:
                assert frame.shape == (480, 270, 3) and frame.dtype == np.uint8
                assert frame.flags.writeable and frame.std() > 5
        assert abs(approx - count) <= 2 and r.num_frames == count == 8
    # a second pass starts over
    r = VideoReader(path)
    first = next(iter(r))
    assert first[0] == 0
    r.close()


def test_video_reader_sample_avi():
    # vtest_20f.avi: the first 20 frames of OpenCV's vtest.avi (MS-MPEG4 v3 in AVI), copied
    with VideoReader(data_path("videos", "vtest_20f.avi")) as r:
        assert r.fps == pytest.approx(10.0) and r.size == (576, 768)
        frames = [f for _, f in r]
    assert len(frames) == 20 and frames[0].shape == (576, 768, 3)
    assert all(f.std() > 5 for f in frames) and np.abs(frames[-1].astype(int) - frames[0]).mean() > 1


def _long_video(path, frames: int, size=(720, 1280), fps=25):
    """An H.264 test pattern (ffmpeg's testsrc) of ``frames`` frames, written straight by ffmpeg."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
           "-i", f"testsrc=size={size[1]}x{size[0]}:rate={fps}", "-frames:v", str(frames),
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return path


def test_video_reader_memory_stays_flat(tmp_path):
    """Decoding 400 frames of 1280x720 (~1.1 GB of RGB) must not grow the peak RSS by more
    than a small fraction of that: frames are streamed, not kept."""
    path = _long_video(tmp_path / "long.mp4", 400)
    code = textwrap.dedent(
        f"""
        import resource, sys
        from hmrkit.io import VideoReader
        r = VideoReader({str(path)!r})
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        n, nbytes = 0, 0
        for i, frame in r:
            n += 1
            nbytes += frame.nbytes
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(n, nbytes, (after - before) * 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    n, nbytes, growth = (int(x) for x in out.stdout.split())
    assert n == 400
    assert nbytes > 1.0e9
    assert growth < 200e6, f"peak RSS grew by {growth / 1e6:.0f} MB while decoding {nbytes / 1e9:.2f} GB"


def test_video_reader_failures(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video at all\n" * 10)
    data = data_path("videos", "two_people_small.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])  # moov atom lost
    for name in ("missing.mp4", "empty.mp4", "text.mp4", "cut.mp4"):
        with pytest.raises(InputError) as e:
            VideoReader(tmp_path / name)
        _one_line_error(e.value, tmp_path / name)


def test_video_reader_truncated_stream(tmp_path):
    """A video cut mid-stream yields the frames that decode, then stops without an error."""
    data = data_path("videos", "vtest_20f.avi").read_bytes()
    p = tmp_path / "cut.avi"
    p.write_bytes(data[: len(data) * 3 // 4])  # the first frames are the largest: 11 of 20 decode
    with VideoReader(p) as r:
        n = sum(1 for _ in r)
    assert 5 < n < 20


def test_video_writer_roundtrip_odd_size(tmp_path):
    p = tmp_path / "out.mp4"
    frames = [np.roll(_gradient(47, 65), 3 * k, axis=1) for k in range(8)]
    with VideoWriter(p, fps=15, size=(47, 65)) as w:
        for f in frames:
            w.write(f)
    assert p.exists() and [q.name for q in tmp_path.iterdir()] == ["out.mp4"]
    with VideoReader(p) as r:
        assert r.size == (48, 66) and r.fps == pytest.approx(15)
        got = [f for _, f in r]
    assert len(got) == 8
    for a, b in zip(frames, got):
        assert np.abs(b[:47, :65].astype(int) - a).mean() < 6

    with pytest.raises(ValueError, match=r"expected \(47, 65, 3\) uint8"):
        with VideoWriter(tmp_path / "bad.mp4", fps=15, size=(47, 65)) as w:
            w.write(np.zeros((48, 65, 3), np.uint8))
    assert not (tmp_path / "bad.mp4").exists()

    # size from the first frame
    with VideoWriter(tmp_path / "lazy.mp4", fps=5) as w:
        w.write(frames[0][:46, :64])
        assert w.size == (46, 64)
    with VideoReader(tmp_path / "lazy.mp4") as r:
        assert r.size == (46, 64) and sum(1 for _ in r) == 1


def test_video_writer_is_atomic(tmp_path):
    p = tmp_path / "keep.mp4"
    p.write_bytes(b"previous good file")
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(p, fps=10, size=(32, 32)) as w:
            w.write(np.zeros((32, 32, 3), np.uint8))
            raise RuntimeError("boom")
    assert p.read_bytes() == b"previous good file"
    assert [q.name for q in tmp_path.iterdir()] == ["keep.mp4"]


# ----------------------------------------------------------------------------------------
# atomic writes


def test_atomic_write(tmp_path):
    p = tmp_path / "out" / "a.txt"  # the folder is created
    with atomic_write(p, "w") as f:
        f.write("one")
    assert p.read_text() == "one"
    with pytest.raises(KeyError):
        with atomic_write(p, "w") as f:
            f.write("two, half written")
            raise KeyError("fail")
    assert p.read_text() == "one"
    assert [q.name for q in p.parent.iterdir()] == ["a.txt"]


def test_unwritable_folder_names_the_folder(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    for writer in (
        lambda q: save_json_atomic(q, {"a": 1}),
        lambda q: save_npz_atomic(q, x=np.zeros(3)),
        lambda q: VideoWriter(q, fps=10, size=(8, 8)),
    ):
        target = blocker / "sub" / "x.out"
        with pytest.raises(InputError) as e:
            writer(target)
        assert e.value.path in (str(blocker), str(blocker / "sub"))
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(InputError) as e:
                save_json_atomic(ro / "x.json", [])
            assert e.value.path == str(ro)
        finally:
            ro.chmod(0o700)


def test_save_npz_and_json(tmp_path):
    import torch

    arrays = {"vertices": np.random.rand(2, 5, 3).astype(np.float32), "method": "fit",
              "valid": np.array([[True], [False]]), "t": torch.arange(4)}
    save_npz_atomic(tmp_path / "r.npz", **arrays)
    with np.load(tmp_path / "r.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["vertices"], arrays["vertices"])
        assert str(z["method"]) == "fit"
        np.testing.assert_array_equal(z["t"], np.arange(4))
    obj = {"frames": np.int64(3), "fps": np.float32(12.5), "x": np.arange(3), "path": tmp_path}
    save_json_atomic(tmp_path / "s.json", obj)
    back = json.loads((tmp_path / "s.json").read_text())
    assert back == {"frames": 3, "fps": 12.5, "x": [0, 1, 2], "path": str(tmp_path)}
    with pytest.raises(TypeError):
        save_json_atomic(tmp_path / "bad.json", {"x": object()})
    assert not (tmp_path / "bad.json").exists()


def test_trainset_cache_is_written_atomically(tmp_path, monkeypatch):
    """hmrkit.train.data caches its training set through atomic_write: a save that fails
    half way leaves nothing in the cache (a half file would be loaded next time)."""
    from types import SimpleNamespace

    import torch

    from hmrkit.train import data as train_data

    cache = tmp_path / "cache"
    monkeypatch.setenv("HMRKIT_CACHE", str(cache))
    z = torch.zeros(2, 33, 3)
    ts = train_data.KeypointTrainSet(
        params=None, K=torch.eye(3).expand(2, 3, 3), image_size=(8, 8), X=z, uv=z[..., :2],
        valid=torch.ones(33, dtype=torch.bool), det=z + 1, det3d=torch.ones(2, 33, 4),
        labelled=torch.zeros(2, dtype=torch.bool))
    monkeypatch.setattr(train_data, "build_trainset", lambda body, config, progress=None: ts)
    body, config = SimpleNamespace(name="fake"), train_data.TrainSetConfig(n=2)

    def fail(obj, f, *args, **kwargs):
        f.write(b"half")
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(torch, "save", fail)
        with pytest.raises(OSError, match="disk full"):
            train_data.load_or_build(body, config)
    assert list(cache.iterdir()) == []
    train_data.load_or_build(body, config)
    assert [q.name for q in cache.iterdir()] == [f"trainset_fake_{config.key()}.pt"]
    monkeypatch.setattr(train_data, "build_trainset", lambda *a, **k: pytest.fail("rebuilt, not loaded"))
    back = train_data.load_or_build(body, config)
    torch.testing.assert_close(back.det, ts.det)
    torch.testing.assert_close(back.det3d, ts.det3d)


# ----------------------------------------------------------------------------------------
# mesh exporters


def _mesh():
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=2)
    rng = np.random.default_rng(0)
    v = m.vertices * rng.uniform(0.5, 1.5, size=(1, 3)) + rng.normal(scale=0.01, size=m.vertices.shape)
    return v.astype(np.float32), np.asarray(m.faces, dtype=np.int64)


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".glb"])
def test_mesh_roundtrip(tmp_path, suffix):
    import trimesh

    v, f = _mesh()
    # camera-frame vertices (the default) are written +Y up: (x, -y, -z)
    p = save_mesh(tmp_path / f"m{suffix}", v, f)
    back = trimesh.load(p, process=False, force="mesh")
    np.testing.assert_allclose(back.vertices, v * [1, -1, -1], atol=2e-6)
    np.testing.assert_array_equal(back.faces, f)
    assert [q.name for q in tmp_path.iterdir()] == [p.name]
    # vertices already +Y up are written as given
    p = save_mesh(tmp_path / f"y{suffix}", v, f, frame="yup")
    back = trimesh.load(p, process=False, force="mesh")
    np.testing.assert_allclose(back.vertices, v, atol=2e-6)
    np.testing.assert_array_equal(back.faces, f)
    with pytest.raises(ValueError, match="frame: expected one of 'camera', 'yup', got 'world'"):
        save_mesh(tmp_path / f"w{suffix}", v, f, frame="world")
    assert not (tmp_path / f"w{suffix}").exists()


def test_mesh_exporters_details(tmp_path):
    import trimesh
    import torch

    v, f = _mesh()
    colors = np.tile(np.array([[200, 30, 60]], np.uint8), (len(v), 1))
    save_ply(tmp_path / "c.ply", torch.from_numpy(v), torch.from_numpy(f), vertex_colors=colors)
    raw = (tmp_path / "c.ply").read_bytes()
    assert b"format binary_little_endian 1.0" in raw[:200]
    back = trimesh.load(tmp_path / "c.ply", process=False)
    np.testing.assert_array_equal(back.visual.vertex_colors[:, :3], colors)
    save_obj(tmp_path / "c.obj", v, f)
    lines = (tmp_path / "c.obj").read_text().splitlines()
    assert lines[-1].startswith("f ") and min(int(x) for x in lines[-1].split()[1:]) >= 1
    save_glb(tmp_path / "c.glb", v, f, vertex_colors=colors)
    assert (tmp_path / "c.glb").read_bytes()[:4] == b"glTF"
    with pytest.raises(ValueError, match=r"expected shape \(V, 3\)"):
        save_obj(tmp_path / "x.obj", v[:, :2], f)
    with pytest.raises(ValueError, match="indices must lie"):
        save_ply(tmp_path / "x.ply", v, f + len(v))
    with pytest.raises(InputError, match="unknown mesh format"):
        save_mesh(tmp_path / "x.stl", v, f)
    # y-up conversion is a proper rotation: (x, y, z) -> (x, -y, -z)
    np.testing.assert_array_equal(yup_from_camera(np.array([[1.0, 2.0, 3.0]])), [[1.0, -2.0, -3.0]])


def test_video_reader_warnings_logged_or_only_collected(caplog):
    """A caller that reports the reader's warnings itself (the pipeline) turns logging off,
    so the user sees each once."""
    import logging

    for log_it in (True, False):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hmrkit.io.video"):
            with VideoReader(data_path("videos", "vtest_20f.avi"), log_warnings=log_it) as r:
                r._warn("a problem")
                r._warn("a problem")
        assert r.warnings == ["a problem"]
        assert len([rec for rec in caplog.records if "a problem" in rec.getMessage()]) == (1 if log_it else 0)

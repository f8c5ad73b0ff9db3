"""hmrkit view (hmrkit.viewer): the results of a run in 3D, in a real headless browser.

The page test runs ``hmrkit run --method spin`` on the bundled photo, serves the result,
loads the page in Debian's chromium (headless, WebGL in software: SwiftShader), driven
over the DevTools protocol so that it can wait for the page and take screenshots as the
scene changes, and checks the drawing against hmrkit's own projection of the mesh through
the page's camera: the body's colour fills the predicted silhouette (upright, not
mirrored), vanishes when the person's checkbox is cleared, and the photo stands upright in
the frustum. ``HMRKIT_VIEWER_PNG=docs/viewer.png`` also writes the screenshot there.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, data_path

ASTRONAUT = REPO / "src" / "hmrkit" / "assets" / "astronaut.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_viser = pytest.mark.skipif(__import__("importlib").util.find_spec("viser") is None,
                                 reason='needs viser: pip install "hmrkit[view]"')
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/setup.sh installs it)")
PAGE = (1000, 700)  # the browser's viewport, px


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """``hmrkit run astronaut.png --method spin`` (in-process): the output folder."""
    from hmrkit.cli import main

    tmp = tmp_path_factory.mktemp("view")
    img = tmp / "astronaut.png"
    shutil.copy(ASTRONAUT, img)
    out = tmp / "out"
    assert main(["run", str(img), "--out", str(out), "--method", "spin", "--no-overlay"]) == 0
    return out


def view_cli(capfd, *args):
    """hmrkit view ARGS in-process -> (exit code, stdout lines, stderr lines)."""
    from hmrkit.cli import main

    capfd.readouterr()
    code = main(["view", *map(str, args), "--no-browser"])
    cap = capfd.readouterr()
    return code, [ln for ln in cap.out.splitlines() if ln.strip()], [ln for ln in cap.err.splitlines() if ln.strip()]


def one_line(err, *needles):
    assert len(err) == 1 and err[0].startswith("hmrkit: "), err
    assert "Traceback" not in err[0]
    for n in needles:
        assert str(n) in err[0], (n, err[0])


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("case, words", [
    ("missing", "no such folder"),
    ("empty", "no hmrkit results here (no NAME.npz)"),
    ("other npz", "none of them hmrkit results"),
    ("text file", "not an hmrkit result"),
])
def test_errors_are_one_line(case, words, tmp_path, capfd):
    where = tmp_path / "out"
    if case != "missing":
        where.mkdir()
        (where / "notes.txt").write_text("not results")
    if case == "other npz":
        np.savez(where / "evidence.npz", keypoints2d=np.zeros((1, 1, 17, 3)), convention=np.array("coco17"))
    if case == "text file":
        where = where / "notes.txt"
    code, out, err = view_cli(capfd, where)
    assert code == 1 and out == []
    one_line(err, where, words)


def test_viser_missing_names_the_extra(results, capfd, monkeypatch):
    monkeypatch.setitem(sys.modules, "viser", None)  # import viser -> ImportError
    code, out, err = view_cli(capfd, results)
    assert code == 1
    one_line(err, 'pip install "hmrkit[view]"')


@needs_viser
def test_port_in_use(results, capfd):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, out, err = view_cli(capfd, results, "--port", port)
    assert code == 1
    one_line(err, f"port {port} is in use", "--port")


@needs_viser
def test_view_prints_the_url_and_serves_until_ctrl_c(results):
    """The command itself: one line with the URL, the page served there, Ctrl-C stops it
    with exit code 0."""
    p = subprocess.Popen([sys.executable, "-m", "hmrkit.cli", "view", str(results), "--port", "0", "--no-browser"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=results)
    try:
        line = p.stdout.readline()
        assert line.startswith("hmrkit view: 1 result(s) of") and "(Ctrl-C to stop)" in line, line + p.stderr.read()
        url = line.split(" at ")[1].split()[0]
        page = urllib.request.urlopen(url, timeout=20).read().decode()
        assert "<html" in page.lower()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert err.strip().splitlines()[-1] == "hmrkit view: stopped", err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- reading, frames


def test_camera_frame_turns_upright_without_a_mirror():
    """OpenCV's camera frame in viser's +Z-up world: a rotation (no mirror), image-up
    (-y) is world-up (+z), the viewing direction horizontal; the quaternion given to viser
    is the same rotation."""
    from hmrkit.viewer import WORLD_FROM_CAMERA, WORLD_FROM_CAMERA_WXYZ, to_world

    R = WORLD_FROM_CAMERA
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(R), 1.0)
    np.testing.assert_allclose(to_world([0.0, -1.0, 0.0]), [0, 0, 1], atol=1e-12)  # up
    np.testing.assert_allclose(to_world([1.0, 0.0, 0.0]), [1, 0, 0], atol=1e-12)  # right stays right
    np.testing.assert_allclose(to_world([0.0, 0.0, 1.0]), [0, 1, 0], atol=1e-12)  # forward, level
    w, x, y, z = WORLD_FROM_CAMERA_WXYZ
    Rq = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                   [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                   [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
    np.testing.assert_allclose(Rq, R, atol=1e-12)


def test_meshes_are_memory_mapped_or_rebuilt_from_the_parameters(results, tmp_path):
    """The vertices come memory-mapped from the npz; an npz without them gets the same
    meshes through the body model from its parameters."""
    from hmrkit.viewer import Meshes, load_result, npz_array

    with np.load(results / "astronaut.npz", allow_pickle=False) as z:
        arrays = dict(z)
    mm = npz_array(results / "astronaut.npz", "vertices")
    assert isinstance(mm, np.memmap)
    np.testing.assert_array_equal(mm, arrays["vertices"])
    want = arrays.pop("vertices")
    folder = tmp_path / "params_only"
    folder.mkdir()
    np.savez(folder / "astronaut.npz", **arrays)
    res = load_result(folder / "astronaut.npz")
    assert res.vertices is None and res.source is None and res.kind == ""  # no summary.json there
    got = Meshes(res).frame(0)
    np.testing.assert_allclose(got, want[0], atol=1e-4)


def _fake_video_results(results, folder, T=6):
    """A results folder for tests/data's two_people_small.mp4 (480x270) made from the
    photo's: its mesh moved 10 cm right a frame, not valid in frame 4, with a summary.json
    naming the video."""
    clip = folder / "clip.mp4"
    shutil.copy(data_path("videos", "two_people_small.mp4"), clip)
    with np.load(results / "astronaut.npz", allow_pickle=False) as z:
        a = dict(z)
    shift = np.array([0.1, 0.0, 0.0], np.float32) * np.arange(T, dtype=np.float32)[:, None]
    rep = lambda x: np.repeat(x, T, axis=0)  # noqa: E731
    a.update(vertices=rep(a["vertices"]) + shift[:, None, None], transl=rep(a["transl"]) + shift[:, None],
             valid=rep(a["valid"]), cam_K=rep(a["cam_K"]), image_size=np.tile([[480, 270]], (T, 1)),
             fps=np.array(12.0, np.float32), frame_index=np.arange(T))
    a["valid"][4] = False
    np.savez(folder / "clip.npz", **{k: a[k] for k in ("body_model", "method", "track_id", "valid", "cam_K",
                                                      "image_size", "faces", "vertices", "transl", "fps")})
    (folder / "summary.json").write_text(json.dumps({"per_input": [
        {"input": str(clip), "name": "clip", "kind": "video", "produced": True}]}))
    return a["vertices"], a["valid"]


@needs_viser
def test_video_timeline_frames_and_playback(results, tmp_path):
    """A video's result: a frame slider over its frames, the frames decoded by hmrkit's
    video reader for the frustum, meshes moving frame by frame (hidden where the person is
    not valid), play advancing and pause stopping."""
    from hmrkit.viewer import start

    verts, valid = _fake_video_results(results, tmp_path)
    v = start(tmp_path, port=0)
    try:
        assert v.result.frames == 6 and v._slider is not None and v._slider.max == 5
        for _ in range(100):
            if len(v._images._jpegs) == 6:
                break
            time.sleep(0.1)
        frame = v._images.get(3)
        assert frame is not None and frame.shape == (480, 270, 3)  # upright, the video's size
        mesh, _ = v._people[0]
        v._slider.value = 3  # the slider moves the scene
        assert v.frame == 3 and mesh.visible
        np.testing.assert_allclose(mesh.vertices, verts[3, 0], atol=1e-6)
        v.set_frame(4)
        assert not valid[4, 0] and not mesh.visible
        v.set_frame(0)
        v.checkboxes[0].value = False  # the person's checkbox hides it ...
        assert not mesh.visible
        v.set_frame(1)  # ... in every frame
        assert not mesh.visible
        v.checkboxes[0].value = True
        assert mesh.visible
        v.play()
        deadline = time.time() + 5
        while v.frame == 1 and time.time() < deadline:
            time.sleep(0.05)
        v.pause()
        assert v.frame != 1, "play did not advance"
        stopped = v.frame
        time.sleep(0.5)
        assert v.frame == stopped
        assert v.warnings == []
    finally:
        v.stop()


# ----------------------------------------------------------------------------- the page in a browser


class Chromium:
    """Debian's chromium, headless, driven over the DevTools protocol (a websocket: the
    ``websockets`` package viser depends on)."""

    def __init__(self, url: str, profile: Path, size=PAGE):
        from websockets.sync.client import connect

        profile.mkdir(parents=True, exist_ok=True)
        (profile / "DevToolsActivePort").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
             "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
             f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}", "--remote-debugging-port=0", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ws = None
        try:
            self._attach(url, profile / "DevToolsActivePort", size, connect)
        except BaseException:
            self.close()
            raise

    def _attach(self, url, active, size, connect):
        deadline = time.time() + 30
        while not (active.exists() and len(active.read_text().splitlines()) >= 2):  # chromium's port
            assert self.proc.poll() is None and time.time() < deadline, "chromium did not start"
            time.sleep(0.1)
        port = int(active.read_text().splitlines()[0])
        while True:  # the page of the URL
            pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
            page = next((p for p in pages if p["type"] == "page" and p["url"].startswith(url)), None)
            if page is not None:
                break
            assert time.time() < deadline, pages
            time.sleep(0.1)
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None)
        self._id = 0
        self.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                  mobile=False)

    def call(self, method, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self._id:
                assert "error" not in msg, msg
                return msg["result"]

    def screenshot(self) -> np.ndarray:
        from PIL import Image

        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def settled(self, done=lambda img: True, timeout=40.0) -> np.ndarray:
        """Screenshots every 0.5 s until two in a row are equal and ``done`` holds (WebGL
        in software takes a few seconds to draw); the last one either way."""
        last, deadline = None, time.time() + timeout
        while True:
            img = self.screenshot()
            if last is not None and np.array_equal(img, last) and done(img) or time.time() > deadline:
                return img
            last = img
            time.sleep(0.5)

    def close(self):
        if self.ws is not None:
            with __import__("contextlib").suppress(Exception):
                self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def project(points_world, position, look_at, fov, W, H):
    """Pixels of world points through the page's camera (three.js: vertical ``fov``, up
    +z, looking from ``position`` at ``look_at``)."""
    f = np.asarray(look_at, float) - position
    f /= np.linalg.norm(f)
    r = np.cross(f, [0.0, 0.0, 1.0])
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    d = np.asarray(points_world, float) - position
    x, y, z = d @ r, d @ u, d @ f
    s = 0.5 * H / math.tan(0.5 * fov)
    return np.stack([0.5 * W + s * x / z, 0.5 * H - s * y / z], -1)


def silhouette(uv, faces, W, H) -> np.ndarray:
    """(H, W) bool: the projected triangles filled."""
    from PIL import Image, ImageDraw

    mask = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(mask)
    for tri in uv[faces]:
        draw.polygon([tuple(p) for p in tri], fill=1)
    return np.asarray(mask, bool)


def hue_mask(img, rgb, tol_deg=14.0, min_sat=0.12, min_val=0.3) -> np.ndarray:
    """Pixels of about the hue of ``rgb`` (0..1), saturated and bright enough: the mesh's
    colour under the page's shading."""
    import colorsys

    x = img.astype(np.float64) / 255.0
    mx, mn = x.max(-1), x.min(-1)
    c = np.maximum(mx - mn, 1e-9)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    h = np.where(mx == r, ((g - b) / c) % 6, np.where(mx == g, (b - r) / c + 2, (r - g) / c + 4)) * 60.0
    want = colorsys.rgb_to_hsv(*rgb)[0] * 360.0
    dh = np.abs((h - want + 180.0) % 360.0 - 180.0)
    return (dh < tol_deg) & (c / np.maximum(mx, 1e-9) >= min_sat) & (mx >= min_val)


def orange(img) -> np.ndarray:
    """The astronaut's suit: saturated orange."""
    x = img.astype(int)
    return (x[..., 0] > 150) & (x[..., 1] > 50) & (x[..., 1] < 175) & (x[..., 0] - x[..., 2] > 90) & \
           (x[..., 0] - x[..., 1] > 60)


def homography(src, dst) -> np.ndarray:
    A = []
    for (x, y), (u, v) in zip(src, dst):
        A += [[x, y, 1, 0, 0, 0, -u * x, -u * y, -u], [0, 0, 0, x, y, 1, -v * x, -v * y, -v]]
    return np.linalg.svd(np.array(A, float))[2][-1].reshape(3, 3)


def iou(a, b) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@needs_viser
@needs_browser
def test_page_draws_the_person_upright_in_the_frustum(results, tmp_path):
    """The page in chromium: the mesh is drawn where hmrkit's projection through the
    page's camera puts it (upright, not mirrored), goes away with its checkbox, and the
    photo stands upright, not mirrored, in the frustum."""
    from PIL import Image

    from hmrkit.render import PALETTE
    from hmrkit.viewer import initial_view, start, to_world

    v = start(results, port=0)
    browser = None
    try:
        res = v.result
        assert v.warnings == [] and v._images.is_photo
        W, H = PAGE
        pos, look = initial_view(res, v.fov)
        verts = np.asarray(res.vertices[0, 0], np.float64)
        pred = silhouette(project(to_world(verts), pos, look, v.fov, W, H), res.faces, W, H)
        mirrored = silhouette(project(to_world(verts * [-1, 1, 1]), pos, look, v.fov, W, H), res.faces, W, H)
        ys, xs = np.nonzero(pred)
        area = int(pred.sum())
        assert area > 4000, area  # the person is a good part of the page
        assert xs.max() < 0.62 * W  # left of the control panel
        roi = np.zeros_like(pred)
        m = 25
        roi[max(ys.min() - m, 0):ys.max() + m, max(xs.min() - m, 0):xs.max() + m] = True
        flipped = np.zeros_like(pred)
        yy = ys.min() + ys.max() - ys
        flipped[yy, xs] = True  # the same silhouette upside down
        colour = PALETTE[int(res.track_id[0]) % len(PALETTE)]

        browser = Chromium(v.url, tmp_path / "profile")
        enough = lambda img: (hue_mask(img, colour) & pred).sum() > 0.6 * area  # noqa: E731
        shot = browser.settled(enough)
        # the software-WebGL notice of viser (top left) closed, as a user would
        browser.call("Runtime.evaluate", expression="document.querySelectorAll("
                     "'.mantine-Notification-closeButton').forEach(b => b.click())")
        shot = browser.settled(enough)
        if os.environ.get("HMRKIT_VIEWER_PNG"):
            Image.fromarray(shot).save(os.environ["HMRKIT_VIEWER_PNG"])
        assert shot.shape[:2] == (H, W)
        body = hue_mask(shot, colour) & roi
        inside = int((body & pred).sum())
        assert inside > 0.6 * area, (inside, area)  # drawn: most of the silhouette has the body's colour
        up = iou(body, pred)
        assert up > 0.6, up  # ... and little else around it
        assert iou(body, flipped) < up - 0.2, (iou(body, flipped), up)  # not upside down
        assert iou(body, mirrored) < up - 0.2, (iou(body, mirrored), up)  # not mirrored

        v.checkboxes[0].value = False  # the person's checkbox cleared: the colour is gone
        gone = browser.settled(lambda img: (hue_mask(img, colour) & roi).sum() < 0.02 * area)
        assert (hue_mask(gone, colour) & roi).sum() < 0.02 * area

        # the photo in the frustum, upright and not mirrored: where its orange suit is
        d = float(v.picture_depth)
        K, (h, w) = res.cam_K[0], res.image_size[0]
        corners_cam = [[sx * d * 0.5 * w / K[0, 0], sy * d * 0.5 * h / K[1, 1], d] for sx, sy in
                       ((-1, -1), (1, -1), (1, 1), (-1, 1))]  # the picture's top left, top right, ...
        screen = project(to_world(corners_cam), pos, look, v.fov, W, H)
        to_pic = homography(screen, [(0, 0), (1, 0), (1, 1), (0, 1)])
        oy, ox = np.nonzero(orange(gone))
        assert len(ox) > 2000, len(ox)
        q = to_pic @ np.stack([ox, oy, np.ones_like(ox)]).astype(float)
        got = (q[:2] / q[2]).mean(1)
        photo = np.asarray(Image.open(ASTRONAUT).convert("RGB"))
        py, px = np.nonzero(orange(photo))
        want = np.array([px.mean() / photo.shape[1], py.mean() / photo.shape[0]])
        assert abs(want[0] - 0.5) > 0.15 and abs(want[1] - 0.5) > 0.15  # left and low: a flip would show
        np.testing.assert_allclose(got, want, atol=0.08)
    finally:
        if browser is not None:
            browser.close()
        v.stop()


def test_ctrl_c_stops_it_even_when_the_parent_ignored_sigint(results):
    """SIGINT ignored by the parent is ignored by the child too (inherited across exec; a
    full test run leaves it so): ``hmrkit view`` restores it, so Ctrl-C still stops it."""
    ignore = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    p = subprocess.Popen([sys.executable, "-m", "hmrkit.cli", "view", str(results), "--port", "0", "--no-browser"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=results, preexec_fn=ignore)
    try:
        assert "(Ctrl-C to stop)" in p.stdout.readline()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0 and err.strip().splitlines()[-1] == "hmrkit view: stopped", err

"""The results of ``hmrkit run`` in 3D, in the browser: ``hmrkit view OUT_DIR``.

A local web page (served by viser, ``pip install "hmrkit[view]"``; docs/viewer.md) shows
each result of an output folder:

  people    every track as a mesh, in its overlay colour (``hmrkit.render.PALETTE``)
            with its ``#id``, a checkbox each to show or hide it
  camera    the frustum of ``cam_K`` with the frame's picture on its far plane (the
            photo, or the video frame decoded with ``hmrkit.io.VideoReader``), placed
            behind the people so that from the camera the meshes cover the people of
            the picture; a slider moves the picture, a button looks through the camera
  time      for videos, play / pause and a frame slider
  results   a folder with several results gets a menu to pick one

Reading (``load_result``): ``NAME.npz`` holds the output contract (docs/outputs.md). The
vertices are memory-mapped from the uncompressed npz, so a long video's meshes are read a
frame at a time; an npz without ``vertices`` has its meshes rebuilt through the body
model (``hmrkit.body.load``) from ``global_orient``, ``body_pose``, ``shape``,
``model_transl`` and ``expression``. The input is found through ``summary.json``
(``per_input``: input path, name, kind); when it is gone, the frustum has no picture.

Frames: the npz is in the OpenCV camera frame (x right, y down, z forward). viser's world
is +Z up; one node, ``/camera``, turns the camera frame into it (``WORLD_FROM_CAMERA``,
-90 degrees about x: y down -> -z, z forward -> +y). Meshes and the frustum are its
children, in camera coordinates as the npz holds them: a rotation, so nothing is mirrored,
and a person upright in the picture stands upright on the page.

Everything here but ``start`` / ``serve`` works without viser (finding and reading
results, the views); the errors a user can cause are one-line ``InputError``s.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import socket
import struct
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from hmrkit.errors import InputError

log = logging.getLogger(__name__)

VIEW_EXTRA = 'pip install "hmrkit[view]"'

# The camera frame (OpenCV: x right, y down, z forward) in viser's +Z-up world: x -> x,
# y (down) -> -z, z (forward) -> +y. A rotation (det +1) of -90 degrees about x.
WORLD_FROM_CAMERA = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
WORLD_FROM_CAMERA_WXYZ = (math.sqrt(0.5), -math.sqrt(0.5), 0.0, 0.0)

# What makes an npz an hmrkit result (docs/outputs.md); the meshes come from `vertices`,
# or from the parameters through the body model.
RESULT_KEYS = ("body_model", "track_id", "valid", "cam_K", "image_size", "faces")
PARAM_KEYS = ("global_orient", "body_pose", "shape", "model_transl")

PHOTO_MAX_SIDE = 1280  # px of the picture sent to the browser
VIDEO_MAX_SIDE = 640  # px of each video frame, kept as JPEG (a few tens of KB a frame)
IMAGE_BEHIND_PEOPLE = 0.6  # m: the picture's plane lies this far behind the farthest person
VIEW_FOV_DEG = 50.0  # the page's vertical field of view


# ---------------------------------------------------------------------------- reading


@dataclass
class Result:
    """One ``NAME.npz`` of an output folder, as the viewer needs it.

    ``vertices`` is (T, P, V, 3) float32 (memory-mapped) or None (``params`` then holds
    the arrays to rebuild the meshes from); ``transl`` (T, P, 3) the root joints; all in
    the camera frame, metres. ``source`` is the input (photo or video) or None."""

    name: str
    path: Path
    body_model: str
    method: str
    track_id: np.ndarray  # (P,)
    valid: np.ndarray  # (T, P) bool
    cam_K: np.ndarray  # (T, 3, 3)
    image_size: np.ndarray  # (T, 2) (H, W)
    transl: np.ndarray  # (T, P, 3)
    faces: np.ndarray  # (F, 3)
    fps: float = 0.0
    vertices: Optional[np.ndarray] = None
    params: Optional[dict] = None
    source: Optional[Path] = None
    kind: str = ""  # image, video, keypoints (summary.json's per_input), "" when unknown
    warnings: list = field(default_factory=list)

    @property
    def frames(self) -> int:
        return int(self.valid.shape[0])

    @property
    def people(self) -> int:
        return int(self.valid.shape[1])


def npz_array(path, key: str) -> np.ndarray:
    """``key`` of the npz at ``path``, memory-mapped (read-only) when the npz is stored
    uncompressed (``hmrkit.io.save_npz_atomic`` writes it so), else loaded."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{key}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        with np.load(path, allow_pickle=False) as z:
            return z[key]
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        head = f.read(30)  # the zip local file header: its name and extra field follow
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if dtype.hasobject:
        raise InputError(path, f"{key} holds Python objects, not numbers")
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def is_result(path) -> bool:
    """Whether the npz at ``path`` is an hmrkit result (it has ``RESULT_KEYS`` and either
    ``vertices`` or ``PARAM_KEYS``); unreadable files are not."""
    try:
        with zipfile.ZipFile(path) as zf:
            keys = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return set(RESULT_KEYS) <= keys and ("vertices" in keys or set(PARAM_KEYS) <= keys)


def find_results(where) -> list[Path]:
    """The result npz files of an output folder (sorted by name), or the one npz given.
    InputError (one line) when the folder is missing or holds none."""
    where = Path(where)
    if not where.exists():
        raise InputError(where, "no such folder (give the --out folder of `hmrkit run`)")
    if where.is_file():
        if where.suffix.lower() == ".npz" and is_result(where):
            return [where]
        raise InputError(where, "not an hmrkit result (give the --out folder of `hmrkit run`, or one of its NAME.npz)")
    try:
        files = sorted(p for p in where.iterdir() if p.suffix.lower() == ".npz" and p.is_file()
                       and not p.name.startswith("."))
    except OSError as e:
        raise InputError(where, f"cannot read the folder ({e.strerror or e})") from None
    found = [p for p in files if is_result(p)]
    if not found:
        what = f"{len(files)} npz file(s), none of them hmrkit results" if files else "no NAME.npz"
        raise InputError(where, f"no hmrkit results here ({what}); run `hmrkit run INPUT --out {where}` first")
    return found


def read_summary(folder) -> dict:
    """``summary.json``'s ``per_input`` entries of a folder by output name ({} when absent
    or unreadable)."""
    try:
        data = json.loads((Path(folder) / "summary.json").read_text())
        return {str(e["name"]): e for e in data.get("per_input", []) if isinstance(e, dict) and "name" in e}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def find_source(entry: dict, folder) -> Optional[Path]:
    """The input file of a summary entry: its path as written by ``hmrkit run`` (relative
    to where the run was started), tried as given, then beside and above ``folder``."""
    given = entry.get("input")
    if not given:
        return None
    p = Path(given)
    tries = [p] if p.is_absolute() else [p, Path(folder) / p, Path(folder).parent / p, Path(folder) / p.name]
    return next((t for t in tries if t.is_file()), None)


def load_result(path, summary: Optional[dict] = None) -> Result:
    """The Result of one npz; ``summary`` is ``read_summary`` of its folder (read when
    None). A missing input leaves ``source`` None with a warning; an npz that cannot be
    read is an InputError."""
    path = Path(path)
    summary = read_summary(path.parent) if summary is None else summary
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            small = {k: z[k] for k in RESULT_KEYS + ("method", "fps", "transl") if k in keys}
            params = None
            if "vertices" not in keys:
                params = {k: z[k] for k in PARAM_KEYS + ("expression",) if k in keys}
        vertices = npz_array(path, "vertices") if "vertices" in keys else None
    except (OSError, ValueError, zipfile.BadZipFile, KeyError) as e:
        raise InputError(path, f"cannot read the results ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    valid = np.asarray(small["valid"], bool).reshape(-1, len(small["track_id"]))
    T, P = valid.shape
    transl = small.get("transl")
    if transl is None:  # older files: the root from the mesh's centre
        transl = np.zeros((T, P, 3), np.float32) if vertices is None else np.asarray(vertices.mean(2))
    res = Result(
        name=path.stem, path=path, body_model=str(small["body_model"]), method=str(small.get("method", "")),
        track_id=np.asarray(small["track_id"], np.int64), valid=valid,
        cam_K=np.asarray(small["cam_K"], np.float64).reshape(T, 3, 3),
        image_size=np.asarray(small["image_size"], np.int64).reshape(T, 2),
        transl=np.asarray(transl, np.float64).reshape(T, P, 3), faces=np.asarray(small["faces"], np.int64),
        fps=float(small.get("fps", 0.0) or 0.0), vertices=vertices, params=params,
    )
    entry = summary.get(res.name, {})
    res.kind = str(entry.get("kind") or "")
    if res.kind in ("image", "video"):
        res.source = find_source(entry, path.parent)
        if res.source is None:
            res.warnings.append(f"{path}: its input {entry.get('input')} is not found; the camera shows no picture")
    return res


# ---------------------------------------------------------------------------- meshes and pictures


class Meshes:
    """The meshes of a Result, a frame at a time: ``frame(t)`` -> (P, V, 3) float32, the
    camera frame (rows of people not valid in the frame are unspecified). From the npz's
    vertices, or rebuilt through the body model from the parameters."""

    def __init__(self, result: Result):
        self.result = result
        self._body = None
        if result.vertices is None:
            self._load_body()

    def _load_body(self):
        import hmrkit.body

        r = self.result
        missing = [k for k in PARAM_KEYS if r.params is None or k not in r.params]
        if missing:
            raise InputError(r.path, f"holds neither vertices nor the parameters {missing} to rebuild them")
        try:
            self._body = hmrkit.body.load(r.body_model)
        except (InputError, ValueError) as e:
            raise InputError(r.path, f"holds no vertices, and its body model {r.body_model!r} to rebuild them "
                                     f"cannot be loaded: {str(e).splitlines()[0]}") from None

    @property
    def faces(self) -> np.ndarray:
        return self.result.faces

    def frame(self, t: int) -> np.ndarray:
        r = self.result
        if r.vertices is not None:
            return np.asarray(r.vertices[t], np.float32)
        return self._rebuild(t)

    def _rebuild(self, t: int) -> np.ndarray:
        import torch

        from hmrkit.types import BodyParams

        body, p = self._body, self.result.params
        P = self.result.people
        out = np.zeros((P, body.num_vertices, 3), np.float32)
        ok = np.flatnonzero(self.result.valid[t])
        if len(ok) == 0:
            return out
        take = lambda k: torch.as_tensor(np.asarray(p[k][t][ok]), dtype=body.dtype)  # noqa: E731
        expression = None
        if body.num_expression:
            expression = take("expression") if "expression" in p else torch.zeros(len(ok), body.num_expression,
                                                                                 dtype=body.dtype)
        params = BodyParams(global_orient=take("global_orient"), pose=take("body_pose"), shape=take("shape"),
                            transl=take("model_transl"), expression=expression)
        with torch.no_grad():
            out[ok] = body(params).vertices.numpy()
        return out


def fit_image(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` scaled down (never up) so that its longer side is at most ``max_side``."""
    h, w = image.shape[:2]
    s = max_side / max(h, w)
    if s >= 1.0:
        return image
    from PIL import Image

    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


class FrameImages:
    """The picture of each frame of a Result: ``get(t)`` -> (h, w, 3) uint8 or None.

    A photo is read once (``hmrkit.io.read_image``). A video is decoded once, in a
    background thread, by ``hmrkit.io.VideoReader``; each frame is kept as a small JPEG
    (``VIDEO_MAX_SIDE``), so memory grows by a few tens of KB a frame, and a frame not
    decoded yet is None. A picture whose size is not the npz's ``image_size`` (another
    file of the same name) is not shown."""

    def __init__(self, result: Result, warn=None):
        self.result = result
        self.warnings: list = []
        self._warn = warn or self.warnings.append  # called from the decoding thread too
        self._photo = None
        self._jpegs: list = []
        self._thread = None
        self._stop = threading.Event()
        src = result.source
        if src is None:
            return
        try:
            if result.kind == "image":
                from hmrkit.io import read_image

                img = read_image(src)
                if self._size_ok(img.shape[:2], 0):
                    self._photo = fit_image(img, PHOTO_MAX_SIDE)
            elif result.kind == "video":
                self._thread = threading.Thread(target=self._decode, daemon=True, name=f"hmrkit-view-{result.name}")
                self._thread.start()
        except (InputError, OSError, ImportError) as e:
            self._warn(f"{src}: cannot be read, the camera shows no picture ({str(e).splitlines()[0]})")

    def _size_ok(self, hw, t: int) -> bool:
        want = tuple(int(v) for v in self.result.image_size[t])
        if tuple(hw) != want:
            self._warn(f"{self.result.source}: {hw[1]}x{hw[0]} px, not the {want[1]}x{want[0]} of "
                                 f"{self.result.path.name}; the camera shows no picture")
            return False
        return True

    def _decode(self):
        from PIL import Image

        from hmrkit.io import VideoReader

        try:
            with VideoReader(self.result.source, log_warnings=False) as reader:
                if not self._size_ok(reader.size, 0):
                    return
                for t, frame in reader:
                    if t >= self.result.frames or self._stop.is_set():
                        break
                    buf = io.BytesIO()
                    Image.fromarray(fit_image(frame, VIDEO_MAX_SIDE)).save(buf, format="JPEG", quality=85)
                    self._jpegs.append(buf.getvalue())
        except (InputError, OSError, ImportError, RuntimeError) as e:
            self._warn(f"{self.result.source}: {str(e).splitlines()[0]}")

    @property
    def is_photo(self) -> bool:
        return self._photo is not None

    def get(self, t: int) -> Optional[np.ndarray]:
        if self._photo is not None:
            return self._photo
        if 0 <= t < len(self._jpegs):
            from PIL import Image

            return np.asarray(Image.open(io.BytesIO(self._jpegs[t])).convert("RGB"))
        return None

    def close(self):
        self._stop.set()


# ---------------------------------------------------------------------------- views


def to_world(points_cam) -> np.ndarray:
    """Points (..., 3) of the camera frame in viser's world (``WORLD_FROM_CAMERA``)."""
    return np.asarray(points_cam, np.float64) @ WORLD_FROM_CAMERA.T


def frustum_fov(K: np.ndarray, image_size) -> tuple[float, float]:
    """(vertical field of view in radians, aspect width / height) of the camera: what
    viser's frustum takes (it assumes the principal point at the image centre)."""
    H, W = (float(v) for v in image_size)
    fx, fy = float(K[0, 0]), float(K[1, 1])
    return 2.0 * math.atan(0.5 * H / fy), (W / fx) / (H / fy)


def frustum_scale(fov: float, aspect: float, depth: float) -> float:
    """viser's ``scale`` of a frustum whose far plane (the picture) is ``depth`` metres
    from its apex: viser divides the frustum's (tan(fov/2) * aspect, tan(fov/2), 1) by the
    cube root of a third of their product before scaling."""
    y = math.tan(0.5 * fov)
    return depth * ((y * y * aspect) / 3.0) ** (1.0 / 3.0)


def image_depth(result: Result) -> float:
    """Where the picture's plane goes, metres along the camera's axis: behind the
    farthest root of any frame by ``IMAGE_BEHIND_PEOPLE`` (3 m with nobody)."""
    z = result.transl[..., 2][result.valid]
    z = z[np.isfinite(z) & (z > 0)]
    return float(z.max() + IMAGE_BEHIND_PEOPLE) if len(z) else 3.0


def first_frame(result: Result) -> int:
    """The first frame with a valid person (0 when there is none)."""
    any_valid = np.flatnonzero(result.valid.any(1))
    return int(any_valid[0]) if len(any_valid) else 0


def initial_view(result: Result, fov: float = math.radians(VIEW_FOV_DEG)) -> tuple[np.ndarray, np.ndarray]:
    """(position, look_at) of the page's camera, world coordinates: from behind the
    camera, to its left and above it, far enough back that a sphere around the frustum
    (its apex and picture) and the people of the first frame with people fits in the
    vertical field of view ``fov``; looked at a little right of the sphere's centre,
    which puts the scene left of the control panel."""
    t = first_frame(result)
    d = image_depth(result)
    K, (H, W) = result.cam_K[t], result.image_size[t]
    hx, hy = d * 0.5 * W / K[0, 0], d * 0.5 * H / K[1, 1]
    pts = [np.zeros(3)] + [np.array([sx * hx, sy * hy, d]) for sx in (-1, 1) for sy in (-1, 1)]
    for root in result.transl[t][result.valid[t]]:  # head and feet, about
        pts += [root + [0.0, -0.9, 0.0], root + [0.0, 1.0, 0.0]]
    pts = np.array(pts)
    centre = 0.5 * (pts.min(0) + pts.max(0))
    radius = float(np.linalg.norm(pts - centre, axis=1).max())
    away = np.array([-0.4, -0.35, -0.85])  # camera frame: left, up, behind
    away /= np.linalg.norm(away)
    right = np.cross(-away, [0.0, -1.0, 0.0])  # the page's right: forward x up (up is -y)
    right /= np.linalg.norm(right)
    position = centre + away * radius / math.sin(0.5 * fov)
    look_at = centre + right * 0.3 * radius
    return to_world(position), to_world(look_at)


# ---------------------------------------------------------------------------- the page


def _viser():
    try:
        import viser
    except ImportError as e:
        raise InputError(None, f"the viewer needs viser, which is not installed: {VIEW_EXTRA} ({e})") from None
    return viser


def check_port(host: str, port: int) -> None:
    """InputError (one line) when ``host:port`` cannot be listened on: a port in use, a
    host that is not this machine's. viser itself would quietly take the next free port."""
    if not 0 <= int(port) <= 65535:
        raise InputError(None, f"--port must be between 0 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise InputError(None, f"--host {host}: not a host name or address here ({e.strerror or e})") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no conflict
        try:
            s.bind(addr)
        except OSError as e:
            import errno

            if e.errno == errno.EADDRINUSE:
                raise InputError(None, f"port {port} is in use on {host} (another `hmrkit view`?); "
                                       f"choose another with --port") from None
            raise InputError(None, f"cannot listen on {host}:{port} ({e.strerror or e})") from None


def url_of(host: str, port: int) -> str:
    shown = "localhost" if host in ("0.0.0.0", "::", "") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}/"


class Viewer:
    """The page of an output folder on a running viser server.

    ``show(i)`` puts result i in the scene (the menu does it too), ``set_frame(t)`` its
    frame t, ``set_visible(p, on)`` person p (the checkboxes), ``play()`` / ``pause()``.
    ``stop()`` ends the server. Made by ``start``."""

    def __init__(self, server, paths: list, summary: dict):
        self.server = server
        self.paths = paths
        self.summary = summary
        self.url = ""
        self.warnings: list = []
        self.result: Optional[Result] = None
        self.frame = 0
        self.playing = False
        self.fov = math.radians(VIEW_FOV_DEG)
        self._lock = threading.RLock()
        self._nodes: list = []  # scene handles of the current result
        self._gui: list = []  # its GUI handles
        self._meshes: Optional[Meshes] = None
        self._images: Optional[FrameImages] = None
        self._people: dict = {}  # p -> (mesh handle, label handle)
        self._visible: dict = {}  # p -> bool, from the checkboxes
        self.checkboxes: dict = {}  # p -> the person's checkbox (GUI handle)
        self.picture_depth = 0.0  # m: the frustum's far plane, where the picture is
        self._frustum = None
        self._slider = None
        self._play_button = None
        self._fps = None
        self._image_shown = None
        self._closing = threading.Event()
        self._player = threading.Thread(target=self._play_loop, daemon=True, name="hmrkit-view-player")

    # ------------------------------------------------------------ building
    def build(self):
        """The fixed part of the page, then the first result."""
        gui = self.server.gui
        gui.configure_theme(show_share_button=False, control_width="medium")
        gui.set_panel_label("hmrkit view")
        if len(self.paths) > 1:
            menu = gui.add_dropdown("result", tuple(p.stem for p in self.paths), initial_value=self.paths[0].stem)
            menu.on_update(lambda _: self._pick([p.stem for p in self.paths].index(menu.value)))
        self.show(0)
        self._player.start()

    def show(self, index: int):
        """Result ``index`` of ``paths`` in the scene, replacing the one shown."""
        with self._lock:
            self.pause()
            self._clear()
            res = load_result(self.paths[index], self.summary)
            self.result, self._meshes = res, Meshes(res)
            self.warnings += res.warnings
            self._images = FrameImages(res, warn=self.warnings.append)
            self._add_scene(res)
            self._add_gui(res)
            self.frame = -1
            self.set_frame(first_frame(res))
            pos, look = initial_view(res, self.fov)
            ic = self.server.initial_camera
            ic.fov, ic.look_at, ic.position = self.fov, look, pos
            for client in self.server.get_clients().values():
                client.camera.fov, client.camera.look_at, client.camera.position = self.fov, look, pos

    def _pick(self, index: int):
        """The menu's choice; a result that cannot be shown is a warning, not a traceback."""
        try:
            self.show(index)
        except InputError as e:
            self.warnings.append(str(e))

    def _clear(self):
        for h in self._gui + self._nodes:
            with contextlib.suppress(Exception):
                h.remove()
        self._gui, self._nodes, self._people, self._visible, self.checkboxes = [], [], {}, {}, {}
        if self._images is not None:
            self._images.close()
        self._frustum = self._slider = self._play_button = self._fps = None
        self._image_shown = None

    def _add_scene(self, res: Result):
        from hmrkit.render import person_colors

        scene = self.server.scene
        self._nodes.append(scene.add_frame("/camera", show_axes=False, wxyz=WORLD_FROM_CAMERA_WXYZ))
        t = first_frame(res)
        fov, aspect = frustum_fov(res.cam_K[t], res.image_size[t])
        self._fov_aspect = (fov, aspect)
        d = self.picture_depth = image_depth(res)
        self._frustum = scene.add_camera_frustum("/camera/frustum", fov=fov, aspect=aspect,
                                                 scale=frustum_scale(fov, aspect, d), thickness=0.004 * d,
                                                 color=(40, 40, 40))
        self._nodes.append(self._frustum)
        colors = (person_colors(res.track_id) * 255).round().astype(int)
        faces = self._meshes.faces
        V = int(res.vertices.shape[2]) if res.vertices is not None else self._meshes._body.num_vertices
        for p, tid in enumerate(res.track_id):
            mesh = scene.add_mesh_simple(f"/camera/people/p{tid}", np.zeros((V, 3), np.float32), faces,
                                         color=tuple(int(c) for c in colors[p]), visible=False)
            label = scene.add_label(f"/camera/people/p{tid}_id", f"#{tid}", visible=False, anchor="bottom-center")
            self._people[p] = (mesh, label)
            self._visible[p] = True
            self._nodes += [mesh, label]

    def _add_gui(self, res: Result):
        gui = self.server.gui
        what = {"image": " (photo)", "video": " (video)", "keypoints": " (keypoints)"}.get(res.kind, "")
        self._gui.append(gui.add_markdown(
            f"**{res.name}**{what}: {res.frames} frame(s), {res.people} people; "
            f"`{res.method}`, body `{res.body_model}`"))
        if res.frames > 1:
            folder = gui.add_folder("time")
            self._gui.append(folder)
            with folder:
                self._play_button = gui.add_button("play", icon=self._icon("PLAYER_PLAY"))
                self._play_button.on_click(lambda _: self.pause() if self.playing else self.play())
                self._slider = gui.add_slider("frame", 0, res.frames - 1, 1, first_frame(res))
                self._slider.on_update(lambda _: self._slider_moved())
                self._fps = gui.add_number("fps", float(res.fps or 10.0), min=0.5, max=240.0, step=0.5)
                self._gui += [self._play_button, self._slider, self._fps]
        folder = gui.add_folder("people")
        self._gui.append(folder)
        with folder:
            if res.people == 0:
                self._gui.append(gui.add_markdown("nobody was found"))
            for p, tid in enumerate(res.track_id):
                frames = np.flatnonzero(res.valid[:, p])
                hint = f"frames {frames[0]}-{frames[-1]}" if len(frames) else "never estimated"
                box = gui.add_checkbox(f"#{tid}", True, hint=hint)
                box.on_update(lambda ev, p=p: self.set_visible(p, bool(ev.target.value)))
                self._gui.append(box)
                self.checkboxes[p] = box
        folder = gui.add_folder("camera")
        self._gui.append(folder)
        with folder:
            d = image_depth(res)
            depth = gui.add_slider("picture at (m)", round(0.05 * d, 2), round(2.0 * d, 2), 0.01, round(d, 2),
                                   hint="how far from the camera the frustum's picture stands")
            depth.on_update(lambda _: self._set_depth(float(depth.value)))
            through = gui.add_button("look through the camera", icon=self._icon("CAMERA"))
            through.on_click(lambda ev: self.look_through_camera(ev.client))
            self._gui += [depth, through]

    def _slider_moved(self):
        if int(self._slider.value) != self.frame:  # not set_frame's own update of the slider
            self.set_frame(int(self._slider.value))

    @staticmethod
    def _icon(name: str):
        return getattr(_viser().Icon, name, None)

    # ------------------------------------------------------------ state
    def set_frame(self, t: int):
        """Frame ``t``: each person's mesh and label, the frustum's picture."""
        with self._lock:
            res = self.result
            t = int(min(max(t, 0), res.frames - 1))
            verts = self._meshes.frame(t)
            with self.server.atomic():
                for p, (mesh, label) in self._people.items():
                    ok = bool(res.valid[t, p])
                    if ok:
                        mesh.vertices = verts[p]
                        top = verts[p][np.argmin(verts[p][:, 1])]  # the highest point (y down)
                        label.position = (float(top[0]), float(top[1]) - 0.08, float(top[2]))
                    on = ok and self._visible.get(p, True)
                    mesh.visible = label.visible = on
                self._update_image(t)
            self.frame = t
            if self._slider is not None and int(self._slider.value) != t:
                self._slider.value = t

    def _update_image(self, t: int):
        """The frustum's picture for frame ``t`` (a photo is sent once; a video frame not
        decoded yet leaves the last picture, ``refresh_image`` puts it up later)."""
        if self._images is None:
            return
        key = "photo" if self._images.is_photo else t
        if key == self._image_shown:
            return
        img = self._images.get(t)
        if img is not None:
            self._frustum.image = img
            self._image_shown = key

    def refresh_image(self):
        """Put up the current frame's picture if it was not decoded yet when shown."""
        with self._lock:
            if self.result is not None and self._frustum is not None:
                self._update_image(self.frame)

    def set_visible(self, p: int, on: bool):
        """Show or hide person ``p`` (its checkbox)."""
        with self._lock:
            self._visible[p] = on
            mesh, label = self._people[p]
            mesh.visible = label.visible = bool(on and self.result.valid[self.frame, p])

    def _set_depth(self, d: float):
        with self._lock:
            d = self.picture_depth = max(d, 1e-3)
            self._frustum.scale = frustum_scale(*self._fov_aspect, d)
            self._frustum.thickness = 0.004 * d

    def look_through_camera(self, client=None):
        """Put the page's camera (one client's, or every client's) at the photo's camera:
        the meshes then lie over the people of the picture."""
        res = self.result
        fov, _ = frustum_fov(res.cam_K[self.frame], res.image_size[self.frame])
        clients = [client] if client is not None else list(self.server.get_clients().values())
        for c in clients:
            c.camera.fov = fov
            c.camera.position = (0.0, 0.0, 0.0)
            c.camera.look_at = to_world([0.0, 0.0, image_depth(res)])

    def play(self):
        if self.result is None or self.result.frames < 2:
            return
        self.playing = True
        if self._play_button is not None:
            self._play_button.label, self._play_button.icon = "pause", self._icon("PLAYER_PAUSE")

    def pause(self):
        self.playing = False
        if self._play_button is not None:
            self._play_button.label, self._play_button.icon = "play", self._icon("PLAYER_PLAY")

    def _play_loop(self):
        """While playing, advance at the rate of the ``fps`` box (skipping frames when
        sending one takes longer than its time), looping at the end; while paused, put
        up pictures the video decoder has caught up with."""
        last = time.perf_counter()
        while not self._closing.is_set():
            if not self.playing:
                self.refresh_image()
                time.sleep(0.1)
                last = time.perf_counter()
                continue
            fps = max(float(self._fps.value), 0.5) if self._fps is not None else 10.0
            step = int((time.perf_counter() - last) * fps)
            if step >= 1:
                last += step / fps
                with self._lock:
                    if self.playing and self.result is not None:
                        self.set_frame((self.frame + step) % self.result.frames)
            time.sleep(max(0.0, last + 1.0 / fps - time.perf_counter()))

    def stop(self):
        """End the player and the server."""
        self._closing.set()
        if self._images is not None:
            self._images.close()
        with contextlib.redirect_stdout(io.StringIO()):  # viser's "Server stopped"
            self.server.stop()


def start(where, host: str = "127.0.0.1", port: int = 8080) -> Viewer:
    """Serve the results at ``where`` (an output folder or one NAME.npz) in the
    background; returns the Viewer (``url``, ``warnings``, ``stop()``). ``port`` 0 takes a
    free one. InputError (one line): no results, viser missing, the port taken."""
    paths = find_results(where)
    viser = _viser()
    check_port(host, port)
    with contextlib.redirect_stdout(io.StringIO()):  # viser's banner: hmrkit prints its own line
        server = viser.ViserServer(host=host, port=port, verbose=False)
    if port and server.get_port() != port:  # taken between check_port and now
        with contextlib.redirect_stdout(io.StringIO()):
            server.stop()
        raise InputError(None, f"port {port} is in use on {host}; choose another with --port")
    viewer = Viewer(server, paths, read_summary(paths[0].parent))
    viewer.url = url_of(host, server.get_port())
    try:
        viewer.build()
    except BaseException:
        viewer.stop()
        raise
    return viewer


def serve(where, host: str = "127.0.0.1", port: int = 8080, open_browser: bool = True) -> int:
    """``hmrkit view``: start the page, print its URL, open a browser, serve until
    Ctrl-C. Returns the exit code (0); InputErrors as ``start``."""
    import os
    import sys

    # a browser that drops a connection mid-handshake is no error of the user's
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    # Ctrl-C must stop it even when the parent process ignored or blocked SIGINT (both are
    # inherited across exec: a test runner, a job launcher)
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    viewer = start(where, host, port)
    try:
        for w in viewer.warnings:
            print(f"hmrkit: warning: {w}", file=sys.stderr)
        n = len(viewer.paths)
        print(f"hmrkit view: {n} result(s) of {Path(where)} at {viewer.url} (Ctrl-C to stop)", flush=True)
        has_display = sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        if open_browser and has_display:  # without a display a browser would only print errors
            import webbrowser

            with contextlib.suppress(Exception):
                webbrowser.open(viewer.url)
        reported = len(viewer.warnings)
        while True:
            time.sleep(0.5)
            for w in viewer.warnings[reported:]:  # later ones: the video decoder's, another result's
                print(f"hmrkit: warning: {w}", file=sys.stderr)
            reported = len(viewer.warnings)
    except KeyboardInterrupt:
        print("hmrkit view: stopped", file=sys.stderr)
        return 0
    finally:
        # viser's server can take long to close a half-open websocket: give it a few seconds,
        # not the user's terminal (the CLI then exits without waiting for its threads)
        import threading

        closer = threading.Thread(target=viewer.stop, daemon=True)
        closer.start()
        closer.join(5.0)

"""Mesh overlays, side views and keypoint drawings, rendered headless with pyrender.

Frames and units. Vertices are in the OpenCV camera frame (x right, y down, z forward),
metres; ``K`` holds OpenCV intrinsics in pixels, pixel centres at integer coordinates
(the top-left pixel's centre is (0, 0)), so a vertex lands on the pixel that
``hmrkit.geometry.project`` names. pyrender is OpenGL (y up, z backward): the camera
is posed at the origin rotated by 180 degrees about x, which is exactly the OpenCV ->
OpenGL axis change; the vertices are not touched. The skew K[0, 1] is ignored.

Back end. Without a display (the usual case here) pyrender needs an off-screen OpenGL:
``PYOPENGL_PLATFORM`` is set to ``osmesa`` (software, CPU; Debian's libosmesa6) when it
is unset; set it to ``egl`` yourself on a machine with a GPU. Two fixes to PyOpenGL are
applied before pyrender is imported:
- pyrender 0.1.45 pins PyOpenGL 3.1.0, whose OSMesa binding lacks
  ``OSMesaCreateContextAttribs`` (added in PyOpenGL 3.1.5): ``_backport_pyopengl_osmesa``
  adds it, and does nothing on newer PyOpenGL;
- with every PyOpenGL (3.1.0 to 3.1.10 tried), OSMesa/EGL context handles are fresh
  pointer objects compared by identity, so pyrender recompiled its shaders on every
  render and leaked ~3 MB each time: ``_fix_pyopengl_context_keys`` compares them by
  address.

Off-screen renderers are slow to create, so one per image size is kept (a small cache).
"""

from __future__ import annotations

import os
import sys
import threading
from collections import OrderedDict

import numpy as np

INSTALL_HINT = 'pip install "hmrkit[render]" and apt-get install libosmesa6 (or set PYOPENGL_PLATFORM=egl with a GPU)'



class RendererUnavailable(ImportError):
    """pyrender, or an off-screen OpenGL context for it, is not available here. The
    message is one line ending with what to install."""


# Pleasant, distinct body colours (RGB in [0, 1]), one per person, cycling.
PALETTE = (
    (0.62, 0.76, 0.93),  # light blue
    (0.98, 0.70, 0.55),  # peach
    (0.60, 0.86, 0.68),  # mint
    (0.78, 0.68, 0.93),  # lavender
    (0.95, 0.85, 0.52),  # sand
    (0.95, 0.62, 0.75),  # rose
    (0.52, 0.80, 0.82),  # teal
    (0.82, 0.82, 0.82),  # light grey
)

# Keypoint drawing colours (RGB uint8): the subject's left, right, and the midline.
LEFT_COLOR = (46, 204, 113)
RIGHT_COLOR = (52, 152, 219)
CENTER_COLOR = (241, 196, 15)

# OpenGL camera pose in the OpenCV world: 180 degrees about x (y down -> up, z -> -z).
_GL_FROM_CV = np.diag([1.0, -1.0, -1.0, 1.0])

_MAX_RENDERERS = 4
_renderers: "OrderedDict[tuple, object]" = OrderedDict()
_lock = threading.RLock()


# ----------------------------------------------------------------------------------------
# Back end


def _fix_pyopengl_context_keys() -> None:
    """Compare and hash PyOpenGL's opaque context pointers by address.

    With OSMesa (and EGL) the current context comes back as a fresh ctypes pointer object
    on every call; pyrender keys its shader-program cache, and PyOpenGL its per-context
    data, on that object. ctypes pointers compare by identity, so every render missed the
    cache and compiled and kept a new shader program: about 3 MB more memory and several
    ms more per frame, without bound. Opaque pointers are handles: address equality is
    their meaning."""
    import ctypes

    from OpenGL import _opaque

    cls = _opaque._opaque_pointer
    if getattr(cls, "_hmrkit_keyed", False):
        return

    def _addr(p):
        return ctypes.cast(p, ctypes.c_void_p).value

    def __eq__(self, other):  # noqa: N807
        if not isinstance(other, cls):
            return NotImplemented
        return _addr(self) == _addr(other)

    def __hash__(self):  # noqa: N807
        return hash(_addr(self))

    cls.__eq__ = __eq__
    cls.__hash__ = __hash__
    cls._hmrkit_keyed = True


def _backport_pyopengl_osmesa() -> None:
    """Give PyOpenGL < 3.1.5 what pyrender's OSMesa platform needs (no-op when present)."""
    import OpenGL.osmesa as osmesa

    if hasattr(osmesa, "OSMesaCreateContextAttribs"):
        return
    from OpenGL import arrays
    from OpenGL import platform as _p
    from OpenGL.constant import Constant
    from OpenGL.raw.osmesa._types import OSMesaContext

    # As in PyOpenGL 3.1.5's raw/osmesa/mesa.py.
    @_p.types(OSMesaContext, arrays.GLintArray, OSMesaContext)
    def OSMesaCreateContextAttribs(attribList, sharelist):  # noqa: N802 - C name
        pass

    osmesa.OSMesaCreateContextAttribs = _p.createFunction(
        OSMesaCreateContextAttribs, _p.PLATFORM.OSMesa, None, error_checker=None
    )
    for name, value in (
        ("OSMESA_DEPTH_BITS", 0x30), ("OSMESA_STENCIL_BITS", 0x31), ("OSMESA_ACCUM_BITS", 0x32),
        ("OSMESA_PROFILE", 0x33), ("OSMESA_CORE_PROFILE", 0x34), ("OSMESA_COMPAT_PROFILE", 0x35),
        ("OSMESA_CONTEXT_MAJOR_VERSION", 0x36), ("OSMESA_CONTEXT_MINOR_VERSION", 0x37),
    ):
        if not hasattr(osmesa, name):
            setattr(osmesa, name, Constant(name, value))


def _pyrender():
    """Import pyrender for off-screen use, or raise RendererUnavailable with the install line.
    The PyOpenGL fixes are applied even when someone imported pyrender first (they are
    idempotent, and pyrender reads OpenGL.osmesa only when it creates its first context)."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    try:
        _fix_pyopengl_context_keys()
        if os.environ["PYOPENGL_PLATFORM"] == "osmesa":
            _backport_pyopengl_osmesa()
        import pyrender
    except Exception as e:  # ImportError, OSError (no libOSMesa), AttributeError, ...
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RendererUnavailable(
            f"rendering is unavailable ({type(e).__name__}: {msg}); {INSTALL_HINT}"
        ) from None
    return pyrender


def _renderer(height: int, width: int):
    """A cached pyrender.OffscreenRenderer of (height, width); call under _lock."""
    key = (int(height), int(width))
    r = _renderers.get(key)
    if r is not None:
        _renderers.move_to_end(key)
        return r
    pyrender = _pyrender()
    try:
        r = pyrender.OffscreenRenderer(viewport_width=key[1], viewport_height=key[0])
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RendererUnavailable(
            f"rendering is unavailable: cannot create an off-screen OpenGL context with PYOPENGL_PLATFORM="
            f"{os.environ.get('PYOPENGL_PLATFORM')!r} ({type(e).__name__}: {msg}); {INSTALL_HINT}"
        ) from None
    _renderers[key] = r
    while len(_renderers) > _MAX_RENDERERS:
        _, old = _renderers.popitem(last=False)
        try:
            old.delete()
        except Exception:  # pragma: no cover - best effort
            pass
    return r


def clear_renderer_cache() -> None:
    """Free the cached off-screen renderers (their OpenGL contexts)."""
    with _lock:
        while _renderers:
            _, r = _renderers.popitem()
            try:
                r.delete()
            except Exception:  # pragma: no cover - best effort
                pass


# ----------------------------------------------------------------------------------------
# Inputs


def _np(x, dtype=None) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return x.astype(dtype) if dtype is not None else x


def _meshes(vertices, faces):
    """-> (N, V, 3) float64 vertices, (F, 3) int64 faces, with shape checks."""
    v = _np(vertices, np.float64)
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3 or v.shape[-1] != 3:
        raise ValueError(f"vertices: expected shape (V, 3) or (N, V, 3), got {v.shape}")
    f = _np(faces)
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces: expected integer shape (F, 3), got {f.shape} {f.dtype}")
    f = f.astype(np.int64)
    if v.shape[1] and f.size and (f.min() < 0 or f.max() >= v.shape[1]):
        raise ValueError(f"faces: indices must lie in [0, {v.shape[1]}), got [{f.min()}, {f.max()}]")
    return v, f


def check_intrinsics(K) -> np.ndarray:
    """K (3, 3) or (1, 3, 3), numpy or torch -> (3, 3) float64 OpenCV intrinsics in pixels;
    ValueError for another shape or a focal length <= 0."""
    K = _np(K, np.float64)
    if K.shape == (1, 3, 3):
        K = K[0]
    if K.shape != (3, 3):
        raise ValueError(f"K: expected shape (3, 3), got {K.shape}")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"K: focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
    return K


def _colors(colors, n: int) -> np.ndarray:
    """(n, 3) float RGB in [0, 1]: the palette by default, else the given colours."""
    if colors is None:
        return np.array([PALETTE[i % len(PALETTE)] for i in range(n)], dtype=np.float64)
    c = _np(colors, np.float64)
    if c.ndim == 1:
        c = np.broadcast_to(c, (n, c.shape[0]))
    if c.shape != (n, 3):
        raise ValueError(f"colors: expected shape ({n}, 3) or (3,), got {c.shape}")
    if c.max(initial=0) > 1.0:
        c = c / 255.0
    return np.clip(c, 0.0, 1.0)


def _image(image) -> np.ndarray:
    img = _np(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"image: expected shape (H, W, 3), got {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"image: expected uint8 RGB, got {img.dtype}")
    return np.ascontiguousarray(img[..., :3])


def check_image_size(image_size) -> tuple[int, int]:
    """(H, W) -> (int H, int W); ValueError unless both are positive."""
    h, w = (int(s) for s in image_size)
    if h <= 0 or w <= 0:
        raise ValueError(f"image_size: expected (H, W) > 0, got {tuple(image_size)}")
    return h, w


# ----------------------------------------------------------------------------------------
# Rendering


def _pose_looking_along(d) -> np.ndarray:
    """A (4, 4) pose whose -z axis points along ``d`` (pyrender's light direction)."""
    z = -np.asarray(d, dtype=np.float64)
    z /= np.linalg.norm(z)
    up = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    return T


def _camera(pyrender, K: np.ndarray, vertices: np.ndarray, s: int = 1):
    """A pyrender camera of OpenCV intrinsics K (px) for an image supersampled ``s`` times,
    its clipping planes around the vertices' depths (any shape (..., 3), metres)."""
    z = np.asarray(vertices)[..., 2]
    zpos = z[z > 0]
    znear = float(np.clip(0.5 * zpos.min(), 1e-3, 1.0)) if zpos.size else 0.05
    zfar = float(max(2.0 * zpos.max(), znear * 10) + 1.0) if zpos.size else 100.0
    # pixel centres at integers (OpenCV) -> OpenGL's pixel centres at +0.5
    return pyrender.IntrinsicsCamera(fx=K[0, 0] * s, fy=K[1, 1] * s, cx=(K[0, 2] + 0.5) * s,
                                     cy=(K[1, 2] + 0.5) * s, znear=znear, zfar=zfar)


# Directional lights from around the camera, as (direction of travel in the OpenCV camera
# frame, intensity): a key light from the upper left, a fill from the upper right, a soft
# one from below.
_LIGHTS = (((0.4, 0.5, 1.0), 1.6), ((-0.5, 0.25, 1.0), 0.8), ((0.0, -0.6, 1.0), 0.4))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit normals: the area-weighted mean of the adjacent faces' normals
    (outward for counter-clockwise faces seen from outside); zero for unused vertices."""
    tri = vertices[faces]  # (F, 3, 3)
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area
    n = np.zeros_like(vertices)
    idx = faces.reshape(-1)
    for k in range(3):
        n[:, k] = np.bincount(idx, weights=np.repeat(fn[:, k], 3), minlength=len(vertices))
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)


def render_mesh(vertices, faces, K, image_size, colors=None, bg_color=(1.0, 1.0, 1.0),
                supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Render meshes seen by a pinhole camera at the origin.

    vertices: (V, 3) or (N, V, 3) metres, OpenCV camera frame; N people sharing ``faces``.
    faces:    (F, 3) int triangle indices (both sides are drawn).
    K:        (3, 3) OpenCV intrinsics in pixels.
    image_size: (H, W) pixels.
    colors:   (N, 3) or (3,) RGB in [0, 1] (or 0..255); default: one palette colour per person.
    bg_color: RGB in [0, 1] where no mesh is.
    supersample: render at this factor and average down (smoother edges, factor^2 slower).
    Returns (rgb (H, W, 3) uint8, mask (H, W) float32 in [0, 1]: the mesh's coverage).
    numpy arrays or torch tensors in; numpy out. Triangles counter-clockwise as seen from
    outside (the usual outward winding) are lit; back faces get ambient light only.
    Raises RendererUnavailable (an ImportError) when pyrender or OpenGL is missing."""
    H, W = check_image_size(image_size)
    v, f = _meshes(vertices, faces)
    K = check_intrinsics(K)
    col = _colors(colors, len(v))
    s = max(1, int(supersample))
    bg = np.clip(np.asarray(bg_color, dtype=np.float64), 0, 1)
    empty_rgb = np.broadcast_to(np.round(bg * 255).astype(np.uint8), (H, W, 3)).copy()
    z = v[..., 2]
    if v.shape[0] == 0 or v.shape[1] == 0 or len(f) == 0 or not (z > 0).any():
        return empty_rgb, np.zeros((H, W), np.float32)

    pyrender = _pyrender()
    scene = pyrender.Scene(bg_color=(*bg, 0.0), ambient_light=(0.25, 0.25, 0.25))
    for i in range(len(v)):
        finite = np.isfinite(v[i]).all(axis=1)
        if not finite.all():
            raise ValueError(f"vertices: person {i} has NaN or infinite coordinates")
        material = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=(*col[i], 1.0), metallicFactor=0.0, roughnessFactor=0.65,
            alphaMode="OPAQUE", doubleSided=True,
        )
        primitive = pyrender.Primitive(
            positions=v[i].astype(np.float32), normals=vertex_normals(v[i], f).astype(np.float32),
            indices=f.astype(np.uint32), material=material, mode=pyrender.constants.GLTF.TRIANGLES,
        )
        scene.add(pyrender.Mesh(primitives=[primitive]))
    scene.add(_camera(pyrender, K, v, s), pose=_GL_FROM_CV)
    for direction, intensity in _LIGHTS:
        light = pyrender.DirectionalLight(color=np.ones(3), intensity=intensity)
        scene.add(light, pose=_pose_looking_along(direction))

    with _lock:
        r = _renderer(H * s, W * s)
        color, depth = r.render(scene, flags=pyrender.RenderFlags.SKIP_CULL_FACES)
    rgb = np.asarray(color[..., :3])
    mask = (np.asarray(depth) > 0).astype(np.float32)
    if s > 1:
        rgb = rgb.reshape(H, s, W, s, 3).astype(np.float32).mean((1, 3))
        rgb = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
        mask = mask.reshape(H, s, W, s).mean((1, 3))
    return np.ascontiguousarray(rgb, dtype=np.uint8), mask


def render_vertex_colors(vertices, faces, vertex_colors, K, image_size, lights, ambient: float = 0.25,
                         bg_color=(1.0, 1.0, 1.0), supersample: int = 1,
                         roughness: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Render one mesh coloured per vertex, lit by directional lights.

    vertices: (V, 3) metres, OpenCV camera frame; faces (F, 3) int (both sides drawn).
    vertex_colors: (V, 3) or (V, 4) float in [0, 1], LINEAR RGB(A) (the shader works in
      linear light and gamma-encodes its output).
    K: (3, 3) OpenCV intrinsics, px; image_size: (H, W) px.
    lights: [(direction, intensity), ...]: direction of travel (3,) in the OpenCV camera
      frame (z > 0: from behind the camera), need not be unit; pyrender intensity (a
      surface facing the light gets intensity / pi of its colour).
    ambient: uniform light level in [0, 1]; bg_color: RGB in [0, 1] (sRGB) where no mesh is;
    supersample: render at this factor and average down; roughness: the material's.
    Returns (rgb (H, W, 3) uint8, mask (H, W) float32 in [0, 1]: the mesh's coverage).
    Raises RendererUnavailable (an ImportError) when pyrender or OpenGL is missing."""
    (H, W), v, f, K = _one_mesh(vertices, faces, K, image_size)
    col = _np(vertex_colors, np.float32)
    if col.shape not in ((len(v), 3), (len(v), 4)):
        raise ValueError(f"vertex_colors: expected shape ({len(v)}, 3) or ({len(v)}, 4), got {col.shape}")
    if col.shape[1] == 3:
        col = np.concatenate([col, np.ones((len(col), 1), np.float32)], 1)
    if not np.isfinite(v).all():
        raise ValueError("vertices: NaN or infinite coordinates")
    s = max(1, int(supersample))
    bg = np.clip(np.asarray(bg_color, dtype=np.float64), 0, 1)
    if len(v) == 0 or len(f) == 0 or not (v[:, 2] > 0).any():
        return (np.broadcast_to(np.round(bg * 255).astype(np.uint8), (H, W, 3)).copy(),
                np.zeros((H, W), np.float32))
    pyrender = _pyrender()
    amb = float(np.clip(ambient, 0, 1))
    scene = pyrender.Scene(bg_color=(*bg, 0.0), ambient_light=(amb, amb, amb))
    material = pyrender.MetallicRoughnessMaterial(baseColorFactor=(1.0, 1.0, 1.0, 1.0), metallicFactor=0.0,
                                                  roughnessFactor=float(roughness), alphaMode="OPAQUE",
                                                  doubleSided=True)
    prim = pyrender.Primitive(positions=v.astype(np.float32), normals=vertex_normals(v, f).astype(np.float32),
                              color_0=col, indices=f.astype(np.uint32), material=material,
                              mode=pyrender.constants.GLTF.TRIANGLES)
    scene.add(pyrender.Mesh(primitives=[prim]))
    scene.add(_camera(pyrender, K, v, s), pose=_GL_FROM_CV)
    for direction, intensity in lights:
        if intensity > 0:
            scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=float(intensity)),
                      pose=_pose_looking_along(direction))
    with _lock:
        color, depth = _renderer(H * s, W * s).render(scene, flags=pyrender.RenderFlags.SKIP_CULL_FACES)
    rgb = np.asarray(color[..., :3])
    mask = (np.asarray(depth) > 0).astype(np.float32)
    if s > 1:
        rgb = np.clip(np.round(rgb.reshape(H, s, W, s, 3).astype(np.float32).mean((1, 3))), 0, 255).astype(np.uint8)
        mask = mask.reshape(H, s, W, s).mean((1, 3))
    return np.ascontiguousarray(rgb, dtype=np.uint8), mask


def _one_mesh(vertices, faces, K, image_size):
    """Checked inputs of a single-mesh render: ((H, W), vertices (V, 3), faces, K (3, 3))."""
    H, W = check_image_size(image_size)
    v, f = _meshes(vertices, faces)
    if v.shape[0] != 1:
        raise ValueError(f"vertices: expected one mesh (V, 3), got {v.shape}")
    return (H, W), v[0], f, check_intrinsics(K)


def render_labels(vertices, faces, face_labels, K, image_size) -> np.ndarray:
    """(H, W) int16 per-pixel labels of a mesh's triangles (-1 where no mesh is), e.g. a
    body-part segmentation.

    vertices (V, 3) metres, OpenCV camera frame; faces (F, 3) int; face_labels (F,) int in
    [0, 254]; K (3, 3) px; image_size (H, W). Unlit and without anti-aliasing (pyrender's
    segmentation pass: one flat colour per label, multisampling off), so every pixel holds
    exactly one label: that of the nearest triangle covering the pixel centre."""
    (H, W), v, f, K = _one_mesh(vertices, faces, K, image_size)
    lab = np.asarray(_np(face_labels)).astype(np.int64)
    if lab.shape != (len(f),):
        raise ValueError(f"face_labels: expected shape ({len(f)},), got {lab.shape}")
    if lab.size and (lab.min() < 0 or lab.max() > 254):
        raise ValueError(f"face_labels: expected values in [0, 254], got [{lab.min()}, {lab.max()}]")
    out = np.full((H, W), -1, np.int16)
    if len(f) == 0 or not (v[:, 2] > 0).any():
        return out
    pyrender = _pyrender()
    scene = pyrender.Scene(bg_color=(0.0, 0.0, 0.0, 0.0))
    seg_map = {}
    for k in np.unique(lab):
        ff = f[lab == k]
        used, inv = np.unique(ff, return_inverse=True)
        prim = pyrender.Primitive(positions=v[used].astype(np.float32), indices=inv.reshape(-1, 3).astype(np.uint32),
                                  mode=pyrender.constants.GLTF.TRIANGLES)
        node = scene.add(pyrender.Mesh(primitives=[prim]))
        seg_map[node] = (int(k) + 1, 0, 0)  # colour channel R = label + 1 (0 = background)
    scene.add(_camera(pyrender, K, v), pose=_GL_FROM_CV)
    flags = pyrender.RenderFlags.SEG | pyrender.RenderFlags.SKIP_CULL_FACES
    with _lock:
        color, _ = _renderer(H, W).render(scene, flags=flags, seg_node_map=seg_map)
    return np.asarray(color[..., 0]).astype(np.int16) - 1


def render_overlay(image, vertices, faces, K, alpha: float = 0.8, colors=None,
                   supersample: int = 1) -> np.ndarray:
    """The meshes blended over ``image``.

    image: (H, W, 3) uint8 RGB; vertices (V, 3) or (N, V, 3) metres, OpenCV camera frame;
    faces (F, 3); K (3, 3) pixels; alpha: the mesh's opacity in [0, 1].
    Returns (H, W, 3) uint8."""
    img = _image(image)
    rgb, mask = render_mesh(vertices, faces, K, img.shape[:2], colors=colors, supersample=supersample)
    a = (float(np.clip(alpha, 0.0, 1.0)) * mask)[..., None]
    out = img.astype(np.float32) * (1.0 - a) + rgb.astype(np.float32) * a
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def side_view_vertices(vertices, K, image_size, angle_deg: float = 90.0, margin: float = 0.05) -> np.ndarray:
    """(N, V, 3) vertices for a side view: all meshes rotated by ``angle_deg`` about the
    vertical (camera y) axis through their common centroid (positive: the right side of
    the image comes towards the camera), then pushed back along z only as far as needed
    for every vertex to be in view (``margin``: fraction of the image kept free)."""
    H, W = check_image_size(image_size)
    v, _ = _meshes(vertices, np.zeros((0, 3), np.int64))
    K = check_intrinsics(K)
    if v.size == 0:
        return v
    c = v.reshape(-1, 3).mean(0)
    a = np.radians(angle_deg)
    R = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    out = (v - c) @ R.T + c
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    mx, my = margin * W, margin * H
    # the depth each vertex needs to project inside [mx, W-1-mx] x [my, H-1-my]
    room = {
        "right": max(W - 1 - mx - cx, 1.0), "left": max(cx - mx, 1.0),
        "down": max(H - 1 - my - cy, 1.0), "up": max(cy - my, 1.0),
    }
    x, y, z = out[..., 0], out[..., 1], out[..., 2]
    need = np.maximum.reduce([
        np.where(x > 0, fx * x / room["right"], fx * -x / room["left"]),
        np.where(y > 0, fy * y / room["down"], fy * -y / room["up"]),
        np.full_like(z, 0.1),
    ])
    dz = max(0.0, float((need - z).max()))
    out[..., 2] += dz
    return out


def render_side_view(vertices, faces, K, image_size, angle_deg: float = 90.0, colors=None,
                     bg_color=(1.0, 1.0, 1.0), supersample: int = 1) -> np.ndarray:
    """The meshes seen from the side: rotated by ``angle_deg`` about the vertical axis
    through their centroid (see ``side_view_vertices``), on a white background.
    Shapes as in ``render_mesh``; returns (H, W, 3) uint8."""
    v = side_view_vertices(vertices, K, image_size, angle_deg)
    rgb, _ = render_mesh(v, faces, K, image_size, colors=colors, bg_color=bg_color, supersample=supersample)
    return rgb


# ----------------------------------------------------------------------------------------
# Keypoints and panels


def _side_of(name: str) -> str:
    base = name.split(".")[-1]
    if "left" in name or base.startswith("jaw_l"):
        return "left"
    if "right" in name or base.startswith("jaw_r"):
        return "right"
    return "center"


_SIDE_COLORS = {"left": LEFT_COLOR, "right": RIGHT_COLOR, "center": CENTER_COLOR}


def draw_keypoints(image, kp, convention: str, min_conf: float = 0.3, radius: int | None = None,
                   thickness: int | None = None) -> np.ndarray:
    """A copy of ``image`` with keypoints and the convention's skeleton drawn on it.

    image: (H, W, 3) uint8 RGB. kp: (K, 3) or (P, K, 3) x, y in pixels and a confidence
    (or (K, 2): all confident). convention: a name known to ``hmrkit.conventions``.
    Points below ``min_conf`` (and edges touching one) are not drawn. The subject's left
    side is green, the right side blue, the midline yellow. Returns (H, W, 3) uint8."""
    from PIL import Image, ImageDraw

    from hmrkit.conventions import get

    img = _image(image)
    conv = get(convention)
    k = _np(kp, np.float64)
    if k.ndim == 2:
        k = k[None]
    if k.ndim != 3 or k.shape[1] != len(conv) or k.shape[2] not in (2, 3):
        raise ValueError(
            f"keypoints: expected shape ({len(conv)}, 3) or (P, {len(conv)}, 3) for {convention}, got {_np(kp).shape}"
        )
    if k.shape[2] == 2:
        k = np.concatenate([k, np.ones_like(k[..., :1])], axis=-1)
    H, W = img.shape[:2]
    r = radius if radius is not None else max(3, int(round(0.004 * max(H, W))))
    t = thickness if thickness is not None else max(1, int(round(0.003 * max(H, W))))
    sides = [_side_of(n) for n in conv.names]
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    for person in k:
        ok = np.isfinite(person).all(axis=1) & (person[:, 2] >= min_conf)
        for a, b in conv.edges:
            if ok[a] and ok[b]:
                side = sides[a] if sides[a] == sides[b] else "center"
                draw.line([tuple(person[a, :2]), tuple(person[b, :2])], fill=_SIDE_COLORS[side], width=t)
        for i in np.nonzero(ok)[0]:
            x, y = person[i, :2]
            draw.ellipse([x - r, y - r, x + r, y + r], fill=_SIDE_COLORS[sides[i]], outline=(255, 255, 255))
    return np.asarray(pil).copy()


def overlay_panel(image, vertices, faces, K, keypoints2d=None, convention: str | None = None,
                  colors=None, alpha: float = 0.8, side_angle_deg: float = 90.0,
                  min_conf: float = 0.3) -> np.ndarray:
    """[input with keypoints | mesh overlay | side view], side by side: (H, 3 W, 3) uint8.

    image (H, W, 3) uint8; vertices (V, 3) or (N, V, 3) metres, OpenCV camera frame;
    faces (F, 3); K (3, 3) pixels; keypoints2d (K, 3) or (P, K, 3) px + confidence in
    ``convention`` (required with keypoints), or None to show the plain input."""
    img = _image(image)
    left = img
    if keypoints2d is not None:
        if convention is None:
            raise ValueError("overlay_panel: keypoints2d needs its convention (e.g. 'coco17')")
        left = draw_keypoints(img, keypoints2d, convention, min_conf=min_conf)
    middle = render_overlay(img, vertices, faces, K, alpha=alpha, colors=colors)
    right = render_side_view(vertices, faces, K, img.shape[:2], angle_deg=side_angle_deg, colors=colors)
    return np.concatenate([left, middle, right], axis=1)


# ----------------------------------------------------------------------------------------
# Several people


def person_colors(track_ids) -> np.ndarray:
    """(N, 3) RGB in [0, 1]: the palette colour of each track id, so a person keeps one
    colour in every frame and picture."""
    return np.array([PALETTE[int(t) % len(PALETTE)] for t in track_ids], dtype=np.float64).reshape(-1, 3)


def label_people(image, boxes, track_ids, colors=None) -> np.ndarray:
    """A copy of ``image`` with each person's id (``#3``) written at the top left of its
    box, on a patch of the person's colour. boxes (N, 4) xyxy px; colors (N, 3) RGB in
    [0, 1] (default: ``person_colors``). Returns (H, W, 3) uint8."""
    from PIL import Image, ImageDraw, ImageFont

    img = _image(image)
    cols = person_colors(track_ids) if colors is None else _colors(colors, len(track_ids))
    H, W = img.shape[:2]
    size = max(12, int(round(0.03 * min(H, W))))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    for box, tid, c in zip(boxes, track_ids, cols):
        x0, y0 = float(box[0]), float(box[1])
        text = f"#{int(tid)}"
        l, t, r, b = draw.textbbox((x0, y0), text, font=font)
        pad = max(2, size // 6)
        y0 = max(0.0, y0 - (b - t) - 2 * pad)
        l, t, r, b = draw.textbbox((x0 + pad, y0 + pad), text, font=font)
        draw.rectangle([x0, y0, r + pad, b + pad], fill=tuple(int(round(255 * v)) for v in c))
        draw.text((x0 + pad, y0 + pad), text, fill=(0, 0, 0), font=font)
    return np.asarray(pil).copy()

"""Mesh exporters: OBJ, PLY (binary little endian) and GLB, all written atomically.

Frames. hmrkit's meshes live in the OpenCV camera frame (x right, y down, z forward, the
camera at the origin), which is what the exporters take by default (``frame="camera"``).
Every file is written in a **+Y-up frame**: x right, y up, z towards the viewer (out of
the image), metres, the camera still at the origin. glTF requires +Y up (and metres); OBJ
and PLY fix no axes, and +Y up is their usual convention (MeshLab; Blender's OBJ importer
by default; its PLY importer needs Up: Y). The conversion is
``yup_from_camera``: (x, y, z) -> (x, -y, -z), a rotation by 180 degrees about x, so the
handedness and the triangle winding (outward normals) are kept and faces are written as
given. A person upright in the image is upright in the file; one facing the camera faces
+z there (towards the viewer: glTF's "front" of an asset).

Vertices already in a +Y-up frame (the body frame of ``body(params)`` at identity
``global_orient``: y up, facing +z) are written unchanged with ``frame="yup"``. The
results ``.npz`` is not converted: it keeps the camera frame (see docs/outputs.md).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from hmrkit.errors import InputError
from hmrkit.io.atomic import atomic_write

MESH_SUFFIXES = (".obj", ".ply", ".glb")
FRAMES = ("camera", "yup")  # what the vertices given to an exporter are in


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_mesh(vertices, faces, vertex_colors=None):
    """-> (V, 3) float, (F, 3) int64, (V, 3|4) uint8 or None, with shape errors that show
    expected vs actual."""
    v = _numpy(vertices)
    f = _numpy(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices: expected shape (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"faces: expected shape (F, 3), got {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces: expected integer indices, got {f.dtype}")
    f = f.astype(np.int64)
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"faces: indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]")
    if not np.isfinite(v).all():
        raise ValueError("vertices: contain NaN or infinity")
    c = None
    if vertex_colors is not None:
        c = _numpy(vertex_colors)
        if c.ndim != 2 or c.shape[0] != len(v) or c.shape[1] not in (3, 4):
            raise ValueError(f"vertex_colors: expected shape ({len(v)}, 3 or 4), got {c.shape}")
        if np.issubdtype(c.dtype, np.floating):
            c = np.clip(np.round(c * 255.0), 0, 255)
        c = c.astype(np.uint8)
    return v, f, c


def yup_from_camera(vertices):
    """(..., 3) OpenCV camera frame (y down, z forward) -> y up, z towards the viewer:
    (x, y, z) -> (x, -y, -z). numpy arrays or torch tensors."""
    sign = np.array([1.0, -1.0, -1.0])
    if hasattr(vertices, "detach"):
        import torch

        return vertices * torch.as_tensor(sign, dtype=vertices.dtype, device=vertices.device)
    return np.asarray(vertices) * sign


def _to_file_frame(v: np.ndarray, frame: str) -> np.ndarray:
    """(V, 3) vertices in ``frame`` -> the files' +Y-up frame."""
    if frame == "camera":
        return yup_from_camera(v)
    if frame == "yup":
        return v
    raise ValueError(f"frame: expected one of {', '.join(map(repr, FRAMES))}, got {frame!r}")


_FRAME_NOTE = "y up, x right, z towards the viewer, metres"


def save_obj(path, vertices, faces, vertex_colors=None, *, frame: str = "camera") -> Path:
    """Wavefront OBJ: ``v x y z [r g b]`` lines (colours in [0, 1]) and 1-based ``f a b c``.

    vertices (V, 3) float, metres, in ``frame``: ``"camera"`` (OpenCV, y down; converted)
    or ``"yup"`` (written as given); the file is +Y up (module docstring). faces (F, 3)
    int, 0-based; vertex_colors (V, 3) uint8 or float in [0, 1], optional. numpy or torch.
    Atomic; returns ``path``."""
    v, f, c = _check_mesh(vertices, faces, vertex_colors)
    v = _to_file_frame(v, frame)
    buf = io.StringIO()
    buf.write(f"# hmrkit mesh; {_FRAME_NOTE}\n")
    if c is None:
        np.savetxt(buf, v, fmt="v %.6f %.6f %.6f")
    else:
        np.savetxt(buf, np.hstack([v, c[:, :3] / 255.0]), fmt="v %.6f %.6f %.6f %.4f %.4f %.4f")
    np.savetxt(buf, f + 1, fmt="f %d %d %d")
    with atomic_write(path, "w") as fh:
        fh.write(buf.getvalue())
    return Path(path)


def save_ply(path, vertices, faces, vertex_colors=None, *, frame: str = "camera") -> Path:
    """PLY, binary little endian: float32 vertices, optional uchar RGB(A) colours,
    faces as a uchar count and int32 indices. Shapes and ``frame`` as in ``save_obj``;
    the file is +Y up. Atomic."""
    v, f, c = _check_mesh(vertices, faces, vertex_colors)
    v = _to_file_frame(v, frame)
    vfields = [("xyz", "<f4", (3,))]
    header = [
        "ply",
        "format binary_little_endian 1.0",
        f"comment hmrkit mesh; {_FRAME_NOTE}",
        f"element vertex {len(v)}",
        "property float x",
        "property float y",
        "property float z",
    ]
    if c is not None:
        names = ("red", "green", "blue", "alpha")[: c.shape[1]]
        header += [f"property uchar {n}" for n in names]
        vfields.append(("rgb", "u1", (c.shape[1],)))
    header += [f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    vert = np.empty(len(v), dtype=vfields)
    vert["xyz"] = v
    if c is not None:
        vert["rgb"] = c
    face = np.empty(len(f), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    face["n"] = 3
    face["idx"] = f
    with atomic_write(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vert.tobytes())
        fh.write(face.tobytes())
    return Path(path)


def save_glb(path, vertices, faces, vertex_colors=None, *, frame: str = "camera") -> Path:
    """Binary glTF (through trimesh), +Y up and metres as glTF requires. Shapes and
    ``frame`` as in ``save_obj``; vertex order and faces are kept as given (no merging).
    Atomic."""
    v, f, c = _check_mesh(vertices, faces, vertex_colors)
    v = _to_file_frame(v, frame)
    try:
        import trimesh
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(f'GLB export needs trimesh: pip install "hmrkit[io]" ({e})') from None
    mesh = trimesh.Trimesh(vertices=v, faces=f, vertex_colors=c, process=False, validate=False)
    data = mesh.export(file_type="glb")
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


_SAVERS = {".obj": save_obj, ".ply": save_ply, ".glb": save_glb}


def save_mesh(path, vertices, faces, vertex_colors=None, *, frame: str = "camera") -> Path:
    """Save by suffix: ``.obj``, ``.ply`` or ``.glb`` (see the format functions). The
    vertices are in ``frame`` (``"camera"``, the default, or ``"yup"``); every file is
    written +Y up."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SAVERS:
        raise InputError(path, f"unknown mesh format {suffix!r}; choose from {', '.join(_SAVERS)}")
    return _SAVERS[suffix](path, vertices, faces, vertex_colors, frame=frame)

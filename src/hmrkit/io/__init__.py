"""Reading images and videos, writing meshes, videos and result files (atomically).

Imports only hmrkit.errors (and numpy); PIL, imageio-ffmpeg and trimesh are imported by
the functions that need them (``pip install "hmrkit[io]"``).
"""

from hmrkit.io.atomic import atomic_write, save_json_atomic, save_npz_atomic
from hmrkit.io.export import MESH_SUFFIXES, save_glb, save_mesh, save_obj, save_ply, yup_from_camera

MESH_FORMATS = ("obj", "ply", "glb")  # --export: one file per person and frame
ANIMATION_FORMATS = ("bvh", "anim.glb")  # --export: one file per track of a video (hmrkit.io.animation)
EXPORT_FORMATS = MESH_FORMATS + ANIMATION_FORMATS
from hmrkit.io.images import (
    IMAGE_SUFFIXES,
    KEYPOINT_SUFFIXES,
    VIDEO_SUFFIXES,
    classify,
    expand_inputs,
    read_exif_focal,
    read_image,
)
from hmrkit.io.video import VideoReader, VideoWriter

__all__ = [
    "atomic_write",
    "save_json_atomic",
    "save_npz_atomic",
    "MESH_SUFFIXES",
    "MESH_FORMATS",
    "ANIMATION_FORMATS",
    "EXPORT_FORMATS",
    "save_glb",
    "save_mesh",
    "save_obj",
    "save_ply",
    "yup_from_camera",
    "IMAGE_SUFFIXES",
    "KEYPOINT_SUFFIXES",
    "VIDEO_SUFFIXES",
    "classify",
    "expand_inputs",
    "read_exif_focal",
    "read_image",
    "VideoReader",
    "VideoWriter",
]

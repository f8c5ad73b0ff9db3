"""Rotations, cameras and Procrustes alignment. Imports nothing else of hmrkit."""

from hmrkit.geometry.rotation import (
    rotmat_from_6d,
    rotmat_to_6d,
    rotmat_from_aa,
    rotmat_to_aa,
    rotmat_power,
    geodesic_angle,
)
from hmrkit.geometry.camera import (
    project,
    transform_points,
    intrinsics_from_fov,
    default_intrinsics,
    crop_to_full_translation,
)
from hmrkit.geometry.procrustes import similarity_procrustes, procrustes_align

__all__ = [
    "rotmat_from_6d",
    "rotmat_to_6d",
    "rotmat_from_aa",
    "rotmat_to_aa",
    "rotmat_power",
    "geodesic_angle",
    "project",
    "transform_points",
    "intrinsics_from_fov",
    "default_intrinsics",
    "crop_to_full_translation",
    "similarity_procrustes",
    "procrustes_align",
]

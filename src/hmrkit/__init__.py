"""hmrkit: 3D human body meshes from photos and videos, on a CPU, with a free body model."""

__version__ = "0.1.0"

"""Mesh overlays, side views and keypoint drawings (pyrender, headless OSMesa or EGL).

pyrender is imported by the functions that render (``pip install "hmrkit[render]"``,
``apt-get install libosmesa6``); importing this package is cheap.
"""

from hmrkit.render.overlay import (
    PALETTE,
    RendererUnavailable,
    check_image_size,
    check_intrinsics,
    clear_renderer_cache,
    draw_keypoints,
    label_people,
    overlay_panel,
    person_colors,
    render_labels,
    render_mesh,
    render_overlay,
    render_side_view,
    render_vertex_colors,
    side_view_vertices,
    vertex_normals,
)

__all__ = [
    "PALETTE",
    "RendererUnavailable",
    "check_image_size",
    "check_intrinsics",
    "clear_renderer_cache",
    "draw_keypoints",
    "label_people",
    "overlay_panel",
    "person_colors",
    "render_labels",
    "render_mesh",
    "render_overlay",
    "render_side_view",
    "render_vertex_colors",
    "side_view_vertices",
    "vertex_normals",
]

"""Rendered synthetic people with per-pixel body-part segmentation and keypoint ground truth.

Built on ``hmrkit.data.synthetic``: poses from the shipped mocap pose library, sampled
shapes and cameras (``sample_scenes``). Each sample can be rendered (pyrender, headless
OSMesa, through ``hmrkit.render``) with

- a skin tone from a palette running from light to dark (``SKIN_TONES``: the ten tones of
  the Monk Skin Tone scale), optionally with a shirt, trousers and shoes coloured per
  body part;
- a random key light (direction, intensity), a fill light and an ambient level;
- a background: a procedural texture by default (gradients, multi-scale noise, stripes,
  random shapes, mixed), or a random crop of an image from a folder the caller names.
  Nothing outside the package is needed at run time;
- a part segmentation (``PART_NAMES``) rendered with the same camera and geometry,
  unlit and without anti-aliasing, so label pixels align with the RGB pixels.

Part labels. ``PART_NAMES`` are the 22 body joints of the regression skeleton shared by
every body model (SMPL's first 22 joints, root included). The part of a joint is the
segment that joint rotates, as in SMPL's skinning-weight segmentation: ``left_hip`` is the
left thigh, ``left_knee`` the shin, ``left_ankle`` the foot, ``left_foot`` the toes,
``left_wrist`` the whole hand (fingers merged into their hand), ``neck`` and ``head``
separate. Anny: the bone of largest skinning weight per vertex, mapped to the regression
joint that drives it (``ANNY_SKELETON``); bones no joint drives (twist bones, metacarpals,
toe phalanges, ``shoulder01``, the pelvis offset bones, the eyes) map to the nearest
ancestor bone that a joint drives. SMPL family: the joint of largest skinning weight
(``vertex_part_labels``), with SMPL's hand joints and the fingers merged into the wrist and
SMPL-X's jaw and eyes into the head.

Frames and units: vertices and ``params`` in the OpenCV camera frame (x right, y down,
z forward), metres; ``K`` OpenCV intrinsics in pixels (pixel centres at integers, as in
``hmrkit.geometry.project``).

Everything is seeded: the same seed gives identical arrays on a given machine.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor

from hmrkit.conventions import SMPL24
from hmrkit.data.synthetic import NoiseConfig, SceneConfig, add_noise, body_keypoints, sample_scenes
from hmrkit.geometry.camera import project
from hmrkit.types import BodyParams

__all__ = [
    "PART_NAMES", "PART_COLORS", "SKIN_TONES", "Light", "RenderConfig", "Render", "SyntheticSample",
    "RENDER_SCENE", "DEFAULT_CONVENTIONS", "IMAGE_SUFFIXES", "part_labels", "face_part_labels", "splat_part_labels",
    "render_sample", "render_part_seg", "procedural_background", "folder_background", "sample_light",
    "generate", "keypoints_from_output", "colorize_parts",
]

# ----------------------------------------------------------------------------------------
# Body-part labels

PART_NAMES: tuple[str, ...] = SMPL24[:22]  # pelvis .. right_wrist; see the module docstring

# A distinct colour per part (RGB uint8) for drawings: left parts warm, right parts cool.
PART_COLORS = np.array([
    (128, 128, 128),  # pelvis
    (230, 25, 75), (0, 130, 200),  # hips (thighs)
    (170, 110, 40),  # spine1
    (245, 130, 48), (70, 240, 240),  # knees (shins)
    (210, 245, 60),  # spine2
    (255, 225, 25), (0, 0, 128),  # ankles (feet)
    (60, 180, 75),  # spine3
    (128, 0, 0), (145, 30, 180),  # feet (toes)
    (250, 190, 212),  # neck
    (255, 215, 180), (170, 255, 195),  # collars
    (240, 240, 240),  # head
    (240, 50, 230), (0, 128, 128),  # shoulders (upper arms)
    (255, 250, 200), (220, 190, 255),  # elbows (forearms)
    (128, 128, 0), (70, 70, 255),  # wrists (hands)
], dtype=np.uint8)

_PART_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _part_of_joint(name: str) -> str | None:
    """The part (a PART_NAMES entry) of a regression-skeleton joint, or None."""
    if name in PART_NAMES:
        return name
    for side in ("left", "right"):
        if name.startswith(side + "_") and (name.endswith("_hand") or
                                            any(f in name for f in ("thumb", "index", "middle", "ring", "pinky"))):
            return f"{side}_wrist"
    if name == "jaw" or name.endswith("_eye_smplx"):
        return "head"
    return None


def _anny_bone_parts(body) -> np.ndarray:
    """(104,) part index of every Anny bone: the part of its regression-skeleton joint
    (``AnnyBody.bone_joints``)."""
    part = np.full(len(body.anny.bone_labels), -1, dtype=np.int64)
    for b, joint in enumerate(body.bone_joints()):
        p = _part_of_joint(joint)
        if p is None:
            raise RuntimeError(f"anny bone {body.anny.bone_labels[b]!r} maps to no body part")
        part[b] = PART_NAMES.index(p)
    return part


def part_labels(body) -> Tensor:
    """(V,) int64 in [0, len(PART_NAMES)): the body part of every vertex (module docstring).

    body: an AnnyBody (skinning weights mapped through ANNY_SKELETON) or an SMPL-family
    body (``vertex_part_labels``, hands and face joints merged). Cached per body."""
    cached = _PART_CACHE.get(body)
    if cached is not None:
        return cached
    if hasattr(body, "vertex_bone_labels") and hasattr(body, "anny"):
        # sum each vertex's skinning weights per part, then take the largest: a vertex
        # shared by two bones of one part (spine05 + spine04) counts for that part
        bone_part = torch.from_numpy(_anny_bone_parts(body))
        idx = body.anny.vertex_bone_indices.long().cpu()
        w = body.anny.vertex_bone_weights.detach().double().cpu()
        per_part = torch.zeros(idx.shape[0], len(PART_NAMES), dtype=w.dtype).scatter_add_(1, bone_part[idx], w)
        labels = per_part.argmax(1)
    elif hasattr(body, "vertex_part_labels"):
        joint_part = []
        for n in body.joint_names:
            p = _part_of_joint(n)
            if p is None:
                raise ValueError(f"{body.name}: joint {n!r} maps to no body part of PART_NAMES")
            joint_part.append(PART_NAMES.index(p))
        labels = torch.tensor(joint_part)[body.vertex_part_labels().cpu()]
    else:
        raise ValueError(f"body model {getattr(body, 'name', body)!r} exposes no skinning labels "
                         "(vertex_bone_labels or vertex_part_labels)")
    labels = labels.long()
    _PART_CACHE[body] = labels
    return labels


def splat_part_labels(body, vertices: Tensor, K: Tensor, center: Tensor, side: Tensor, resolution: int) -> Tensor:
    """(B, R, R) int64 part maps without rendering: every vertex (B, V, 3, camera frame) is
    projected with K (B, 3, 3) into a square box (centre (B, 2) px, side (B,) px) cut into
    R x R cells, and each cell takes the part of its nearest vertex in depth (a z-buffer
    over vertices): 0 where no vertex falls, 1 + ``part_labels`` index elsewhere. With
    Anny's 13,718 vertices a cell down to 1/64 of a person's box has vertices in it; a
    render (``render_part_seg``) is exact but about 100 x slower on a CPU."""
    B, V = vertices.shape[:2]
    R = int(resolution)
    uv = project(vertices, K.to(vertices.dtype))
    rel = (uv - (center[:, None] - 0.5 * side[:, None, None])) / side[:, None, None] * R
    cell = rel.floor().long()
    inside = ((cell >= 0) & (cell < R)).all(-1) & (vertices[..., 2] > 0)
    flat = (torch.arange(B)[:, None] * R * R + cell[..., 1].clamp(0, R - 1) * R + cell[..., 0].clamp(0, R - 1))
    flat = torch.where(inside, flat, torch.full_like(flat, B * R * R))  # a dump cell past the end
    z = vertices[..., 2].reshape(-1).to(torch.float32)
    zmin = torch.full((B * R * R + 1,), float("inf")).scatter_reduce(0, flat.reshape(-1), z, "amin")
    front = (z <= zmin[flat.reshape(-1)]) & inside.reshape(-1)
    labels = (part_labels(body).to(flat.device) + 1).expand(B, V).reshape(-1)
    out = torch.zeros(B * R * R + 1, dtype=torch.long)
    out[flat.reshape(-1)[front]] = labels[front]
    return out[:-1].reshape(B, R, R)


def face_part_labels(body) -> np.ndarray:
    """(F,) int64: the part of each triangle, the majority of its three vertices' parts
    (the first vertex's when all three differ)."""
    v = part_labels(body).numpy()[body.faces.cpu().numpy()]
    return np.where(v[:, 1] == v[:, 2], v[:, 1], v[:, 0])


def colorize_parts(part_seg: np.ndarray, background=(0, 0, 0)) -> np.ndarray:
    """(H, W) int labels (-1 background) -> (H, W, 3) uint8 RGB with PART_COLORS."""
    seg = np.asarray(part_seg)
    lut = np.concatenate([np.asarray(background, np.uint8)[None], PART_COLORS], 0)
    return lut[np.clip(seg.astype(np.int64) + 1, 0, len(lut) - 1)]


# ----------------------------------------------------------------------------------------
# Appearance: skin, clothing, light, background

# The Monk Skin Tone scale (Google, CC-BY 4.0), lightest to darkest, sRGB.
SKIN_TONES = np.array([
    (246, 237, 228), (243, 231, 219), (247, 234, 208), (234, 218, 186), (215, 189, 150),
    (160, 126, 86), (130, 92, 67), (96, 65, 52), (58, 49, 42), (41, 36, 32),
], dtype=np.uint8)

# Garment colours (sRGB): denims, greys, darks and a few saturated colours.
_CLOTH = np.array([
    (38, 52, 84), (60, 80, 120), (95, 120, 160), (30, 30, 30), (70, 70, 72), (130, 130, 135),
    (200, 200, 200), (240, 240, 235), (120, 30, 35), (170, 60, 40), (200, 160, 60),
    (40, 90, 60), (90, 110, 60), (150, 110, 80), (90, 60, 120), (220, 120, 140),
], dtype=np.uint8)

_SHIRT = ("spine1", "spine2", "spine3", "left_collar", "right_collar", "left_shoulder", "right_shoulder")
_SLEEVES = ("left_elbow", "right_elbow")
_TROUSERS = ("pelvis", "left_hip", "right_hip")
_LEGS = ("left_knee", "right_knee")
_SHOES = ("left_ankle", "right_ankle", "left_foot", "right_foot")


def _linear(srgb) -> np.ndarray:
    """sRGB in [0, 1] -> linear RGB (pyrender's shader works in linear and gamma-encodes)."""
    c = np.asarray(srgb, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


@dataclass(frozen=True)
class Light:
    """Lighting of a render; directions of travel in the OpenCV camera frame (z: away from
    the camera, so a light from behind the camera has z > 0).

    direction: key light direction (3,), need not be unit; intensity: key light (pyrender
    units: a surface facing it gets intensity / pi of its colour; 2 to 3 is well lit);
    fill: a second light from the mirrored side at this intensity; ambient: uniform light
    level in [0, 1]."""

    direction: tuple = (0.3, 0.4, 1.0)
    intensity: float = 2.2
    fill: float = 0.6
    ambient: float = 0.25


@dataclass(frozen=True)
class RenderConfig:
    """What ``generate`` varies when it renders.

    background_dir: a folder of images (jpg, png, webp, bmp) to crop backgrounds from, or
    None for procedural backgrounds only; background_photo_prob: the share of samples
    that use the folder when it is given. clothing_prob: the share of samples dressed in
    a shirt, trousers and shoes (the rest are bare skin). key_intensity, fill, ambient:
    ranges sampled uniformly; key_elevation_deg / key_azimuth_deg: the key light's spread
    around the camera axis. supersample: render RGB at this factor and average down."""

    background_dir: Optional[str] = None
    background_photo_prob: float = 0.7
    clothing_prob: float = 0.7
    key_intensity: tuple = (1.0, 2.8)
    fill: tuple = (0.0, 0.8)
    ambient: tuple = (0.05, 0.3)
    key_elevation_deg: tuple = (-20.0, 70.0)
    key_azimuth_deg: float = 70.0
    supersample: int = 1


def sample_light(rng: np.random.Generator, config: RenderConfig = RenderConfig()) -> Light:
    """A random Light within ``config``'s ranges."""
    el = np.radians(rng.uniform(*config.key_elevation_deg))
    az = np.radians(rng.uniform(-config.key_azimuth_deg, config.key_azimuth_deg))
    # travel direction: from above (elevation) means travelling down (+y in OpenCV)
    d = (np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el))
    return Light(direction=tuple(float(x) for x in d), intensity=float(rng.uniform(*config.key_intensity)),
                 fill=float(rng.uniform(*config.fill)), ambient=float(rng.uniform(*config.ambient)))


def _smooth_noise(rng: np.random.Generator, H: int, W: int, cells: int) -> np.ndarray:
    """(H, W) float32 value noise in [0, 1]: a random grid of ``cells`` across, bicubic."""
    from PIL import Image

    gh, gw = max(2, int(round(cells * H / max(H, W)))), max(2, int(round(cells * W / max(H, W))))
    grid = (rng.random((gh, gw)) * 255).astype(np.float32)
    img = Image.fromarray(grid, mode="F").resize((W, H), Image.BICUBIC)
    return np.clip(np.asarray(img, np.float32) / 255.0, 0, 1)


def _random_color(rng: np.random.Generator) -> np.ndarray:
    """A random sRGB colour in [0, 1] from HSV with moderate saturation."""
    import colorsys

    h, s, v = rng.random(), rng.uniform(0.05, 0.8), rng.uniform(0.15, 0.95)
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32)


def procedural_background(image_size, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a procedural texture of ``kind`` (gradient, noise, stripes,
    shapes, mixed; random when None)."""
    from PIL import Image, ImageDraw

    H, W = (int(s) for s in image_size)
    kinds = ("gradient", "noise", "stripes", "shapes", "mixed")
    if kind is None:
        kind = kinds[int(rng.integers(len(kinds)))]
    if kind not in kinds:
        raise ValueError(f"unknown background kind {kind!r}; choose from {kinds}")
    yy, xx = np.meshgrid(np.linspace(0, 1, H, dtype=np.float32), np.linspace(0, 1, W, dtype=np.float32),
                         indexing="ij")

    def gradient():
        a = rng.uniform(0, 2 * np.pi)
        t = np.cos(a) * xx + np.sin(a) * yy
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        c0, c1 = _random_color(rng), _random_color(rng)
        return c0 * (1 - t[..., None]) + c1 * t[..., None]

    def noise():
        n = sum(_smooth_noise(rng, H, W, c) * w for c, w in ((4, 0.5), (12, 0.3), (40, 0.2)))
        c0, c1 = _random_color(rng), _random_color(rng)
        return c0 * (1 - n[..., None]) + c1 * n[..., None]

    def stripes():
        a = rng.uniform(0, np.pi)
        period = rng.uniform(0.02, 0.2)
        t = (np.cos(a) * xx * W + np.sin(a) * yy * H) / (period * max(H, W))
        soft = rng.uniform(0.0, 0.4)
        s = np.clip((np.sin(2 * np.pi * t) + soft) / (2 * soft + 1e-3) + 0.5, 0, 1) if soft > 0.05 \
            else (np.sin(2 * np.pi * t) > 0).astype(np.float32)
        c0, c1 = _random_color(rng), _random_color(rng)
        return c0 * (1 - s[..., None]) + c1 * s[..., None]

    def shapes(base=None):
        img = Image.fromarray(np.round((gradient() if base is None else base) * 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(5, 30))):
            c = tuple(int(x) for x in np.round(_random_color(rng) * 255))
            x0, y0 = rng.uniform(-0.1, 1.0) * W, rng.uniform(-0.1, 1.0) * H
            w, h = rng.uniform(0.03, 0.4) * W, rng.uniform(0.03, 0.4) * H
            k = int(rng.integers(3))
            if k == 0:
                draw.rectangle([x0, y0, x0 + w, y0 + h], fill=c)
            elif k == 1:
                draw.ellipse([x0, y0, x0 + w, y0 + h], fill=c)
            else:
                pts = [(x0 + rng.uniform(0, w), y0 + rng.uniform(0, h)) for _ in range(3)]
                draw.polygon(pts, fill=c)
        return np.asarray(img, np.float32) / 255.0

    if kind == "gradient":
        out = gradient()
    elif kind == "noise":
        out = noise()
    elif kind == "stripes":
        out = stripes()
    elif kind == "shapes":
        out = shapes()
    else:  # mixed: shapes over a noise or stripes texture, with a gradient shading
        out = shapes(noise() if rng.random() < 0.5 else stripes())
        out = out * (0.6 + 0.4 * gradient().mean(-1, keepdims=True))
    # a little pixel noise, as a camera would add
    out = out + rng.normal(0, rng.uniform(0, 0.02), out.shape[:2])[..., None]
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def _list_images(folder) -> list[Path]:
    from hmrkit.errors import InputError

    root = Path(folder)
    if not root.is_dir():
        raise InputError(root, "background folder not found; pass a folder of jpg/png images or None")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(root, f"no images ({', '.join(IMAGE_SUFFIXES)}) in the background folder")
    return files


def folder_background(folder, image_size, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8: a random crop (random scale, position and horizontal flip) of a
    random image of ``folder``, resized to ``image_size``."""
    from PIL import Image

    from hmrkit.io.images import read_image

    H, W = (int(s) for s in image_size)
    files = _list_images(folder)
    img = read_image(files[int(rng.integers(len(files)))])
    h, w = img.shape[:2]
    # the largest crop of the target aspect, scaled down by up to 2x
    scale = rng.uniform(0.5, 1.0)
    ch = min(h, w * H / W) * scale
    cw = ch * W / H
    y0, x0 = rng.uniform(0, h - ch), rng.uniform(0, w - cw)
    crop = Image.fromarray(img).resize((W, H), Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
    out = np.asarray(crop)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def _vertex_colors(body, skin_srgb: np.ndarray, rng: np.random.Generator | None, clothing: bool) -> np.ndarray:
    """(V, 4) float32 linear RGBA per vertex: skin, with garments by part when clothing."""
    labels = part_labels(body).numpy()
    col = np.broadcast_to(_linear(skin_srgb), (len(labels), 3)).copy()
    if clothing and rng is not None:
        shirt = _CLOTH[int(rng.integers(len(_CLOTH)))] / 255.0
        trousers = _CLOTH[int(rng.integers(len(_CLOTH)))] / 255.0
        shoes = _CLOTH[int(rng.integers(len(_CLOTH)))] / 255.0
        groups = [(_SHIRT + (_SLEEVES if rng.random() < 0.5 else ()), shirt),
                  (_TROUSERS + (_LEGS if rng.random() < 0.7 else ()), trousers),
                  (_SHOES, shoes)]
        for names, c in groups:
            idx = [PART_NAMES.index(n) for n in names]
            col[np.isin(labels, idx)] = _linear(c)
    return np.concatenate([col, np.ones((len(col), 1))], 1).astype(np.float32)


# ----------------------------------------------------------------------------------------
# Rendering


class Render(NamedTuple):
    """One rendered sample (numpy).

    rgb: (H, W, 3) uint8; part_seg: (H, W) int16, a PART_NAMES index or -1 (background);
    mask: (H, W) float32 in [0, 1], the body's coverage in ``rgb`` (its alpha)."""

    rgb: np.ndarray
    part_seg: np.ndarray
    mask: np.ndarray


def render_part_seg(vertices, faces, face_labels, K, image_size) -> np.ndarray:
    """(H, W) int16 part labels (-1 background) of a mesh seen by an OpenCV camera.

    vertices (V, 3) metres, camera frame; faces (F, 3); face_labels (F,) int in [0, 255);
    K (3, 3) px. Unlit and without anti-aliasing (``hmrkit.render.render_labels``: one
    flat colour per part, multisampling off), so every pixel holds exactly one label: that
    of the nearest triangle covering the pixel centre."""
    from hmrkit.render import render_labels

    return render_labels(vertices, faces, face_labels, K, image_size)


def _render_rgb(vertices: np.ndarray, faces: np.ndarray, vertex_colors: np.ndarray, K: np.ndarray,
                image_size, light: Light, bg_srgb: np.ndarray, supersample: int):
    """Lit render over a flat background: (rgb uint8, coverage float32)."""
    from hmrkit.render import render_vertex_colors

    d = np.asarray(light.direction, np.float64)
    lights = [(d, float(light.intensity))]
    if light.fill > 0:
        lights.append((np.array([-d[0], 0.3 * abs(d[1]), abs(d[2]) + 0.5]), float(light.fill)))
    return render_vertex_colors(vertices, faces, vertex_colors, K, image_size, lights, ambient=light.ambient,
                                bg_color=bg_srgb, supersample=supersample, roughness=0.7)


def _skin(skin_tone, rng: np.random.Generator) -> np.ndarray:
    if skin_tone is None:
        c = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))] / 255.0
        return np.clip(c * rng.uniform(0.93, 1.05, 3), 0, 1)  # a little per-person variation
    if isinstance(skin_tone, (int, np.integer)):
        if not 0 <= int(skin_tone) < len(SKIN_TONES):
            raise ValueError(f"skin_tone: index must be in [0, {len(SKIN_TONES)}), got {skin_tone}")
        return SKIN_TONES[int(skin_tone)] / 255.0
    c = np.asarray(skin_tone, np.float64)
    if c.shape != (3,):
        raise ValueError(f"skin_tone: expected None, a palette index or an RGB triple, got shape {c.shape}")
    return np.clip(c / 255.0 if c.max() > 1 else c, 0, 1)


def render_sample(body, params: BodyParams, K, image_size, background=None, skin_tone=None,
                  light: Light | None = None, seed: int = 0, clothing: bool | None = None,
                  config: RenderConfig = RenderConfig()) -> Render:
    """Render one person with its part segmentation.

    body: a BodyModel; params: BodyParams of batch 1, camera frame (OpenCV, metres);
    K: (3, 3) px; image_size: (H, W).
    background: None (procedural, from ``seed``), a folder of images (str or Path: a random
      crop of one of them), or an (H, W, 3) uint8 image.
    skin_tone: None (random from SKIN_TONES), an index into SKIN_TONES, or an RGB triple
      (0..1 or 0..255, sRGB).
    light: a Light, or None for a random one (``sample_light``).
    clothing: dress the body (shirt, trousers, shoes by part); None: with probability
      ``config.clothing_prob``.
    Returns Render(rgb (H, W, 3) uint8, part_seg (H, W) int16 with -1 for background,
    mask (H, W) float32 coverage). part_seg is rendered with the same camera and mesh, so
    ``part_seg >= 0`` equals ``mask > 0.5`` except on silhouette edge pixels.
    Raises RendererUnavailable (an ImportError) when pyrender or OpenGL is missing."""
    if params.batch_size != 1:
        raise ValueError(f"render_sample: params must hold one person, got a batch of {params.batch_size}")
    with torch.no_grad():
        out = body(params)
    return _render_vertices(body, out.vertices[0], K, image_size, background, skin_tone, light, seed, clothing,
                            config)


def _render_vertices(body, vertices: Tensor, K, image_size, background, skin_tone, light, seed, clothing,
                     config: RenderConfig) -> Render:
    """render_sample on posed vertices (V, 3), camera frame."""
    from hmrkit.render import check_image_size, check_intrinsics

    H, W = check_image_size(image_size)
    K = check_intrinsics(K)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED]))
    # draw every random choice in a fixed order, whatever the caller fixed
    skin = _skin(skin_tone, rng)
    rlight = sample_light(rng, config)
    dress = rng.random() < config.clothing_prob
    cloth_rng = np.random.default_rng(rng.integers(2**63))
    bg_rng = np.random.default_rng(rng.integers(2**63))
    light = rlight if light is None else light
    clothing = dress if clothing is None else bool(clothing)
    if background is None:
        bg = procedural_background((H, W), bg_rng)
    elif isinstance(background, (str, Path)):
        bg = folder_background(background, (H, W), bg_rng)
    else:
        bg = np.asarray(background)
        if bg.shape != (H, W, 3) or bg.dtype != np.uint8:
            raise ValueError(f"background: expected ({H}, {W}, 3) uint8, got {bg.shape} {bg.dtype}")

    v = vertices.detach().cpu().double().numpy()
    f = body.faces.cpu().numpy().astype(np.int64)
    if not np.isfinite(v).all():
        raise ValueError("render_sample: the body has NaN or infinite vertices; check params")
    colors = _vertex_colors(body, skin, cloth_rng, clothing)
    bg_mean = bg.reshape(-1, 3).mean(0) / 255.0
    rgb, mask = _render_rgb(v, f, colors, K, (H, W), light, bg_mean, config.supersample)
    # composite over the background; edge pixels were blended with its mean colour
    a = mask[..., None]
    flat = np.round(bg_mean * 255).astype(np.float32)
    comp = rgb.astype(np.float32) + (1.0 - a) * (bg.astype(np.float32) - flat)
    rgb = np.clip(np.round(comp), 0, 255).astype(np.uint8)
    seg = render_part_seg(v, f, face_part_labels(body), K, (H, W))
    return Render(rgb=rgb, part_seg=seg, mask=mask)


# ----------------------------------------------------------------------------------------
# Keypoints and the generator

DEFAULT_CONVENTIONS = ("coco17", "mediapipe33", "holistic")


def keypoints_from_output(body, out, K: Tensor, image_size, convention: str, noise: NoiseConfig | None = None,
                          seed: int = 0) -> Tensor:
    """(B, K, 3) 2D keypoints (x, y px, confidence) of a body output in the camera frame;
    K (B, 3, 3) px.

    noise None: the ground truth, confidence 1 where the body model has the keypoint and
    it projects inside the image, else 0 (``synthetic.keypoints2d`` with clean noise).
    Otherwise detector-like keypoints from ``synthetic.add_noise`` (seeded by ``seed``).
    ``holistic`` is assembled by ``synthetic.body_keypoints`` (mediapipe33, both hand21,
    face; parts the model lacks get confidence 0)."""
    X, valid = body_keypoints(body, out, convention)
    uv = project(X, K.to(X.dtype))
    if noise is not None:
        return add_noise(X, uv, valid, convention, image_size, noise, seed)
    H, W = image_size
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H)
    conf = valid.to(uv.dtype)[None] * inside
    return torch.cat([uv, conf[..., None]], -1)


@dataclass(frozen=True)
class SyntheticSample:
    """One synthetic person with ground truth.

    params: BodyParams (batch 1), camera frame (OpenCV, metres).
    K: (3, 3) px. image_size: (H, W).
    keypoints2d: convention -> (K, 3) x, y px and confidence (1 visible in the image,
      0 outside it or not produced by the body model); clean ground truth.
    keypoints2d_noisy: the same with the detector-noise model (``NoiseConfig``), or empty.
    rgb (H, W, 3) uint8, part_seg (H, W) int16 (-1 background), mask (H, W) float32: set
      for rendered samples, else None.
    index: position in the generated stream; seed: the generator's seed."""

    params: BodyParams
    K: Tensor
    image_size: tuple
    keypoints2d: dict
    keypoints2d_noisy: dict = field(default_factory=dict)
    rgb: Optional[np.ndarray] = None
    part_seg: Optional[np.ndarray] = None
    mask: Optional[np.ndarray] = None
    index: int = 0
    seed: int = 0


# Scenes for rendered samples: smaller images and closer cameras than SceneConfig()'s
# (720 px, 2.5-6 m), so the person fills a useful part of every rendered pixel.
RENDER_SCENE = SceneConfig(image_size=(256, 256), distance=(2.2, 4.0))


def generate(body, n: int, seed: int = 0, rendered: bool = False, scene: SceneConfig | None = None,
             render: RenderConfig = RenderConfig(), conventions=DEFAULT_CONVENTIONS,
             noise: NoiseConfig | None = None, chunk: int = 64) -> Iterator[SyntheticSample]:
    """Yield ``n`` synthetic samples with ground truth.

    Scenes come from ``synthetic.sample_scenes`` in chunks of ``chunk`` (chunk c seeded
    from (seed, c)): library poses, sampled shapes and cameras (``scene``; None:
    ``SceneConfig()`` for keypoint-only samples, ``RENDER_SCENE`` for rendered ones). For each
    sample: params, K, clean 2D keypoints in every convention of ``conventions``
    (``holistic`` included), noisy ones too when ``noise`` is given, and when ``rendered``
    an RGB render with its part segmentation (``render``: backgrounds, light, clothing;
    sample i's appearance is seeded from (seed, i)). The same (seed, chunk) gives
    identical samples."""
    if n < 0:
        raise ValueError(f"generate: n must be >= 0, got {n}")
    chunk = max(1, int(chunk))
    if scene is None:
        scene = RENDER_SCENE if rendered else SceneConfig()
    for c, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        cseed = int(np.random.SeedSequence([int(seed), c]).generate_state(1)[0])
        batch = sample_scenes(body, m, seed=cseed, config=scene)
        with torch.no_grad():
            out = body(batch.params)
        kps = {conv: keypoints_from_output(body, out, batch.K, batch.image_size, conv) for conv in conventions}
        noisy = {conv: keypoints_from_output(body, out, batch.K, batch.image_size, conv, noise, cseed + k)
                 for k, conv in enumerate(conventions)} if noise is not None else {}
        for i in range(m):
            idx = start + i
            params = batch.params[i]
            r = None
            if rendered:
                rseed = int(np.random.SeedSequence([int(seed), idx, 1]).generate_state(1)[0])
                background = None
                if render.background_dir is not None:
                    pick = np.random.default_rng(rseed).random()
                    background = render.background_dir if pick < render.background_photo_prob else None
                r = _render_vertices(body, out.vertices[i], batch.K[i], batch.image_size, background, None, None,
                                     rseed, None, render)
            yield SyntheticSample(
                params=params, K=batch.K[i], image_size=batch.image_size,
                keypoints2d={k: v[i] for k, v in kps.items()},
                keypoints2d_noisy={k: v[i] for k, v in noisy.items()},
                rgb=None if r is None else r.rgb, part_seg=None if r is None else r.part_seg,
                mask=None if r is None else r.mask, index=idx, seed=int(seed),
            )

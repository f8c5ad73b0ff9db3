"""Draw where each keypoint of the Anny body model sits, and three Anny bodies of different ages.

Writes two pictures for docs/body_model.md:
  docs/body_keypoints.png  coco17 and mediapipe33 on the mean body (front and left-side
                           views), close-ups of the left hand (hand21_left) and of the face
                           (mediapipe33's face points), each keypoint labelled;
  docs/body_ages.png       the mean adult, a child (age 0.15) and an elder (age 1.0,
                           weight 0.6) at one scale, their heights printed under them.

Usage:  .venv/bin/python scripts/make_body_figure.py [--out docs] [--supersample 2]

Frames. The body comes out of ``hmrkit.body`` in its body frame (metres, y up, facing +z,
its left at +x). Each view is a rotation ``cam_from_body`` into the OpenCV camera frame
(x right, y down, z forward) plus a translation that puts the body in front of the
camera; the front view is the 180-degree turn about x (head up in the image, the body
facing the camera, so the body's left is on the IMAGE RIGHT), the side view looks at the
body's left side (the body faces the image left). Rendering is ``hmrkit.render``
(pyrender, headless OSMesa).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from hmrkit.body import load
from hmrkit.geometry.camera import project, transform_points
from hmrkit.render import draw_keypoints, render_mesh
from hmrkit.render.overlay import CENTER_COLOR, LEFT_COLOR, RIGHT_COLOR
from hmrkit.types import BodyParams

MESH_GREY = (0.80, 0.80, 0.80)
PANEL_H = 700  # px, height of a rendered view (the full body spans ~90 % of it)
LABEL_COL_W = 128  # px, width of a column of labels beside a view
FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_BOLD_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"

# Text colours: darker shades of the keypoint colours of hmrkit.render.draw_keypoints,
# readable on white.
TEXT_COLORS = {"left": (22, 128, 64), "right": (25, 95, 170), "center": (160, 110, 0)}
# hand21 has no left/right; one colour per finger instead (thumb to pinky), wrist grey.
FINGER_COLORS = {
    "wrist": (90, 90, 90), "thumb": (214, 69, 65), "index": (230, 126, 34),
    "middle": (39, 174, 96), "ring": (41, 128, 185), "pinky": (142, 68, 173),
}


def font(size: int, bold: bool = False):
    try:
        return ImageFont.truetype(FONT_BOLD_PATH if bold else FONT_PATH, size)
    except OSError:  # no DejaVu here: PIL's own (bitmap) font, still legible
        return ImageFont.load_default()


# ----------------------------------------------------------------------------------------
# Cameras


def cam_from_body_looking(direction, up) -> np.ndarray:
    """(3, 3) rotation cam_from_body of a camera looking along ``direction`` (body frame)
    with ``up`` (body frame) pointing up in the image. OpenCV: z_cam = direction,
    y_cam = -up (made orthogonal), x_cam = y_cam x z_cam."""
    z = np.asarray(direction, np.float64)
    z = z / np.linalg.norm(z)
    u = np.asarray(up, np.float64)
    u = u - z * (u @ z)
    y = -u / np.linalg.norm(u)
    x = np.cross(y, z)
    return np.stack([x, y, z])


FRONT = cam_from_body_looking((0, 0, -1), (0, 1, 0))  # = diag(1, -1, -1): 180 deg about x
LEFT_SIDE = cam_from_body_looking((-1, 0, 0), (0, 1, 0))  # camera on the body's left (+x)
assert np.allclose(FRONT, np.diag([1.0, -1.0, -1.0]))


@dataclass(frozen=True)
class View:
    """A camera: p_cam = R p_body + t (metres, OpenCV frame); K (3, 3) px; size (H, W)."""

    R: np.ndarray
    t: np.ndarray
    K: np.ndarray
    size: tuple

    def to_cam(self, points) -> torch.Tensor:
        """points (..., N, 3) body frame -> (..., N, 3) camera frame, float64."""
        p = torch.as_tensor(np.asarray(points, np.float64))
        return transform_points(p, torch.as_tensor(self.R), torch.as_tensor(self.t))

    def to_pixels(self, points) -> np.ndarray:
        """points (..., N, 3) body frame -> (..., N, 2) pixels."""
        return project(self.to_cam(points), torch.as_tensor(self.K)).numpy()


def fit_view(R, frame_points, height: int, margin: float = 0.04, distance_factor: float = 3.0,
             max_width: int | None = None) -> View:
    """A camera with rotation R that frames ``frame_points`` (N, 3) body frame, metres:
    the camera stands ``distance_factor`` times their largest extent away, and the focal
    length and principal point are chosen so that they fill ``height`` px less the margin
    (or ``max_width``, whichever binds). The image width is the points' width plus margins."""
    q = frame_points @ R.T
    lo, hi = q.min(0), q.max(0)
    centre = 0.5 * (lo + hi)
    extent = float((hi - lo)[:2].max())
    t = -centre + np.array([0.0, 0.0, distance_factor * extent + 0.5 * (hi - lo)[2]])
    qc = q + t
    xy = qc[:, :2] / qc[:, 2:3]  # normalised image coordinates at f = 1
    span = xy.max(0) - xy.min(0)
    f = (1 - 2 * margin) * height / span[1]
    if max_width is not None:
        f = min(f, (1 - 2 * margin) * max_width / span[0])
    width = int(np.ceil(f * span[0] / (1 - 2 * margin)))
    width += width % 2
    cx = width / 2 - f * 0.5 * (xy[:, 0].max() + xy[:, 0].min())
    cy = height / 2 - f * 0.5 * (xy[:, 1].max() + xy[:, 1].min())
    K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    return View(R=R, t=t, K=K, size=(height, width))


def render_view(view: View, vertices, faces, supersample: int) -> np.ndarray:
    """(H, W, 3) uint8: light grey mesh(es) on white. vertices (V, 3) or (N, V, 3) body frame."""
    v = view.to_cam(vertices).numpy()
    rgb, _ = render_mesh(v, faces, view.K, view.size, colors=MESH_GREY, bg_color=(1.0, 1.0, 1.0),
                         supersample=supersample)
    return rgb


def faces_within(faces: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The faces whose three vertices are all kept (keep: (V,) bool)."""
    return faces[keep[faces].all(1)]


# ----------------------------------------------------------------------------------------
# Labels


def side_of(name: str) -> str:
    return "left" if "left" in name else "right" if "right" in name else "center"


def spread(desired: list[float], gap: float, lo: float, hi: float) -> list[float]:
    """1-D label placement: positions as close to ``desired`` (sorted ascending) as they
    can be while at least ``gap`` apart and inside [lo, hi]; overlapping labels are
    gathered into clusters centred on their mean."""
    clusters = []  # [first index, count, top position]
    for i, d in enumerate(desired):
        clusters.append([i, 1, d])
        while True:
            c = clusters[-1]
            n, mean = c[1], float(np.mean(desired[c[0]:c[0] + c[1]]))
            c[2] = min(max(mean - 0.5 * (n - 1) * gap, lo), hi - (n - 1) * gap)
            if len(clusters) > 1 and clusters[-2][2] + clusters[-2][1] * gap > c[2]:
                p = clusters.pop(-2)
                c[0], c[1] = p[0], p[1] + c[1]
                continue
            break
    out = []
    for first, n, top in clusters:
        out += [top + k * gap for k in range(n)]
    return out


def label_columns(canvas: Image.Image, pts: np.ndarray, names, columns, colours, x_offset: int,
                  size: int = 11, line_colour=None) -> None:
    """Write names[i] in a column beside the view with a leader line to pts[i].

    canvas: the panel (the view pasted at x_offset); pts (K, 2) px in the view;
    columns[i]: 'left' or 'right' (the column, image side); colours[i]: RGB of the text."""
    draw = ImageDraw.Draw(canvas)
    f = font(size)
    gap = size + 3
    H = canvas.height
    view_w = canvas.width - 2 * LABEL_COL_W
    for column in ("left", "right"):
        idx = [i for i in range(len(names)) if columns[i] == column]
        idx.sort(key=lambda i: pts[i, 1])
        ys = spread([float(pts[i, 1]) for i in idx], gap, gap, H - gap)
        for i, y in zip(idx, ys):
            px, py = pts[i, 0] + x_offset, pts[i, 1]
            text = names[i]
            w = draw.textlength(text, font=f)
            if column == "left":
                tx, end = LABEL_COL_W - 6 - w, LABEL_COL_W - 3
            else:
                tx, end = LABEL_COL_W + view_w + 6, LABEL_COL_W + view_w + 3
            lc = line_colour or tuple(int(0.45 * c + 0.55 * 255) for c in colours[i])
            draw.line([(end, y), (px, py)], fill=lc, width=1)
            draw.text((tx, y), text, font=f, fill=colours[i], anchor="lm")


def with_title(img: Image.Image, title: str, subtitle: str = "") -> Image.Image:
    top = 26 + (16 if subtitle else 0)
    out = Image.new("RGB", (img.width, img.height + top), "white")
    out.paste(img, (0, top))
    d = ImageDraw.Draw(out)
    d.text((img.width / 2, 4), title, font=font(15, bold=True), fill=(30, 30, 30), anchor="ma")
    if subtitle:
        d.text((img.width / 2, 24), subtitle, font=font(11), fill=(90, 90, 90), anchor="ma")
    return out


def keypoint_panel(rgb: np.ndarray, kp2d: np.ndarray, names, convention: str, title: str,
                   subtitle: str = "", far_side: str | None = None, radius: int = 3,
                   thickness: int = 2, label_size: int = 11, show=None) -> Image.Image:
    """A rendered view with the convention's skeleton drawn (hmrkit.render.draw_keypoints)
    and every keypoint labelled in side columns: the body's left in green, its right in
    blue, the midline in amber. far_side ('left'/'right'): keypoints of that side are
    behind the body in this view; they are drawn hollow and not labelled. show: the
    indices of the keypoints to draw (default all); kp2d (K, 2) px holds all K."""
    names = list(names)
    shown = np.zeros(len(names), bool)
    shown[list(range(len(names))) if show is None else list(show)] = True
    far = np.array([far_side is not None and side_of(n) == far_side for n in names])
    conf = (shown & ~far).astype(np.float64)[:, None]
    img = draw_keypoints(rgb, np.concatenate([kp2d, conf], 1), convention, radius=radius,
                         thickness=thickness)
    pil = Image.fromarray(img)
    if far_side is not None:  # the hidden side: hollow grey rings, drawn under the labels
        d = ImageDraw.Draw(pil)
        for (x, y), hidden in zip(kp2d, shown & far):
            if hidden:
                d.ellipse([x - radius, y - radius, x + radius, y + radius], outline=(150, 150, 150))
    H, W = img.shape[:2]
    canvas = Image.new("RGB", (W + 2 * LABEL_COL_W, H), "white")
    canvas.paste(pil, (LABEL_COL_W, 0))
    keep = list(np.nonzero(shown & ~far)[0])
    centre_x = np.median(kp2d[shown, 0])
    columns, colours = [], []
    for i in keep:
        s = side_of(names[i])
        if s == "center" or far_side is not None:
            columns.append("left" if kp2d[i, 0] < centre_x else "right")
        else:
            # by the body's side; in a front view the body's left is on the image right
            columns.append("right" if s == "left" else "left")
        colours.append(TEXT_COLORS[s])
    label_columns(canvas, kp2d[keep], [names[i] for i in keep], columns, colours, LABEL_COL_W,
                  size=label_size)
    return with_title(canvas, title, subtitle)


def hand_panel(rgb: np.ndarray, kp2d: np.ndarray, names, edges, title: str, subtitle: str = "") -> Image.Image:
    """A hand close-up with hand21's bones and labels, one colour per finger."""
    pil = Image.fromarray(rgb)
    d = ImageDraw.Draw(pil)
    finger = [n.split("_")[0] for n in names]
    for a, b in edges:
        c = FINGER_COLORS[finger[b]]
        d.line([tuple(kp2d[a]), tuple(kp2d[b])], fill=c, width=3)
    r = 5
    for (x, y), fn in zip(kp2d, finger):
        d.ellipse([x - r, y - r, x + r, y + r], fill=FINGER_COLORS[fn], outline=(255, 255, 255))
    H, W = rgb.shape[:2]
    canvas = Image.new("RGB", (W + 2 * LABEL_COL_W, H), "white")
    canvas.paste(pil, (LABEL_COL_W, 0))
    centre_x = 0.5 * (kp2d[:, 0].min() + kp2d[:, 0].max())
    columns = ["left" if x < centre_x else "right" for x in kp2d[:, 0]]
    colours = [tuple(int(0.8 * c) for c in FINGER_COLORS[fn]) for fn in finger]
    label_columns(canvas, kp2d, list(names), columns, colours, LABEL_COL_W, size=12)
    return with_title(canvas, title, subtitle)


def hstack(images, gap: int = 12, align: str = "top") -> Image.Image:
    H = max(im.height for im in images)
    W = sum(im.width for im in images) + gap * (len(images) - 1)
    out = Image.new("RGB", (W, H), "white")
    x = 0
    for im in images:
        out.paste(im, (x, 0 if align == "top" else (H - im.height) // 2))
        x += im.width + gap
    return out


def vstack(images, gap: int = 16) -> Image.Image:
    W = max(im.width for im in images)
    H = sum(im.height for im in images) + gap * (len(images) - 1)
    out = Image.new("RGB", (W, H), "white")
    y = 0
    for im in images:
        out.paste(im, ((W - im.width) // 2, y))
        y += im.height + gap
    return out


def save_png(img: Image.Image, path: Path, max_bytes: int = 1_500_000) -> None:
    """Save as PNG; quantised to 256 colours (adaptive palette) if the RGB file is too big."""
    img.save(path, optimize=True)
    if path.stat().st_size > max_bytes:
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"wrote {path} ({img.width}x{img.height}, {path.stat().st_size / 1e6:.2f} MB)")


# ----------------------------------------------------------------------------------------
# Figures


def keypoints_figure(body, supersample: int) -> Image.Image:
    from hmrkit.conventions import get

    out = body(body.mean_params(1))
    v = out.vertices[0].detach().numpy().astype(np.float64)
    faces = out.faces.numpy()
    kp = {c: body.keypoints(out, c)[0].detach().numpy().astype(np.float64)
          for c in ("coco17", "mediapipe33", "hand21_left")}

    front = fit_view(FRONT, v, PANEL_H)
    side = fit_view(LEFT_SIDE, v, PANEL_H)
    rgb_front = render_view(front, v, faces, supersample)
    rgb_side = render_view(side, v, faces, supersample)

    panels = []
    for conv in ("coco17", "mediapipe33"):
        names = get(conv).names
        panels.append(keypoint_panel(rgb_front, front.to_pixels(kp[conv]), names, conv,
                                     f"{conv}, front", "body's left on the image right"))
        panels.append(keypoint_panel(rgb_side, side.to_pixels(kp[conv]), names, conv,
                                     f"{conv}, left side", "right-side keypoints hidden (grey rings)",
                                     far_side="right"))
    row1 = hstack(panels)

    # Left hand close-ups: only the mesh near the hand (so the body does not hide the palm).
    hand = kp["hand21_left"]
    names = get("hand21").names
    wrist = hand[names.index("wrist")]
    up = hand[names.index("middle_mcp")] - wrist  # fingers up in the image
    up = up / np.linalg.norm(up)
    # the hand and 3 cm of forearm: cut by a plane across the forearm below the wrist
    keep_hand = ((v - wrist) @ up > -0.03) & (np.linalg.norm(v - wrist, axis=1) < 0.25)
    f_hand = faces_within(faces, keep_hand)
    row2 = []
    for direction, what, seen in (((1.0, 0.0, 0.0), "palm side", "seen from the body's midline"),
                            ((-1.0, 0.0, 0.0), "back of the hand", "seen from outside")):
        R = cam_from_body_looking(direction, up)
        hv = fit_view(R, np.concatenate([v[keep_hand], hand]), PANEL_H - 60, margin=0.05)
        rgb = render_view(hv, v, f_hand, supersample)
        row2.append(hand_panel(rgb, hv.to_pixels(hand), names, get("hand21").edges,
                               f"hand21_left, {what}", seen))

    # Face close-ups: mediapipe33's face keypoints (nose to mouth corners, ears).
    mp_names = get("mediapipe33").names
    face_idx = list(range(mp_names.index("mouth_right") + 1))  # nose ... mouth_right
    head_joint = out.joints[0, body.joint_names.index("head")].detach().numpy()
    head_pts = v[(np.linalg.norm(v - head_joint, axis=1) < 0.16) & (v[:, 1] > head_joint[1] - 0.06)]
    for R, what, far in ((FRONT, "front", None), (LEFT_SIDE, "left side", "right")):
        fv = fit_view(R, head_pts, PANEL_H - 60, margin=0.05)
        rgb = render_view(fv, v, faces, supersample)
        row2.append(keypoint_panel(rgb, fv.to_pixels(kp["mediapipe33"]), mp_names, "mediapipe33",
                                   f"mediapipe33 face, {what}",
                                   "body's left on the image right" if far is None
                                   else "right-side keypoints hidden (grey rings)",
                                   far_side=far, radius=4, label_size=12, show=face_idx))
    row2 = hstack(row2)

    legend = Image.new("RGB", (max(row1.width, row2.width), 40), "white")
    d = ImageDraw.Draw(legend)
    x = 10
    for text, c in (("body's left", LEFT_COLOR), ("body's right", RIGHT_COLOR), ("midline", CENTER_COLOR)):
        d.ellipse([x, 14, x + 12, 26], fill=c)
        d.text((x + 18, 20), text, font=font(13), fill=(40, 40, 40), anchor="lm")
        x += 40 + d.textlength(text, font=font(13))
    d.text((x + 10, 20), "Anny mean body (mean_params: young adult, age 2/3, the others 0.5), rest pose; keypoints from "
           "body.keypoints(output, convention); hand close-ups: one colour per finger",
           font=font(13), fill=(90, 90, 90), anchor="lm")
    return vstack([row1, row2, legend])


def ages_figure(body, supersample: int) -> Image.Image:
    bodies = (
        ("mean adult", "mean_params (age 2/3)", {"age": 2.0 / 3.0}),
        ("child", "age 0.15", {"age": 0.15}),
        ("elder", "age 1.0, weight 0.6", {"age": 1.0, "weight": 0.6}),
    )
    shape = torch.full((len(bodies), body.num_shape), 0.5, dtype=body.dtype)
    for b, (_, _, changes) in enumerate(bodies):
        for k, value in changes.items():
            shape[b, body.shape_names.index(k)] = value
    p = body.mean_params(len(bodies))
    out = body(BodyParams(p.global_orient, p.pose, shape, p.transl, p.expression))
    v = out.vertices.detach().numpy().astype(np.float64)
    heights = v[:, :, 1].max(1) - v[:, :, 1].min(1)
    # stand them on one floor (y = 0), side by side with 0.15 m between their extents
    placed, x = [], 0.0
    for b in range(len(bodies)):
        vb = v[b] - np.array([v[b, :, 0].min() - x, v[b, :, 1].min(), 0.0])
        placed.append(vb)
        x = vb[:, 0].max() + 0.15
    placed = np.stack(placed)
    view = fit_view(FRONT, placed.reshape(-1, 3), PANEL_H, margin=0.03)
    rgb = render_view(view, placed, out.faces.numpy(), supersample)
    text_h = 56
    canvas = Image.new("RGB", (rgb.shape[1] + 40, rgb.shape[0] + text_h), "white")
    canvas.paste(Image.fromarray(rgb), (20, 0))
    d = ImageDraw.Draw(canvas)
    for b, (name, what, _) in enumerate(bodies):
        feet = view.to_pixels(placed[b])
        cx = 20 + 0.5 * (feet[:, 0].min() + feet[:, 0].max())
        d.text((cx, rgb.shape[0] + 4), f"{name}: {heights[b]:.2f} m", font=font(15, bold=True),
               fill=(30, 30, 30), anchor="ma")
        d.text((cx, rgb.shape[0] + 26), what, font=font(12), fill=(90, 90, 90), anchor="ma")
    return with_title(canvas, "Anny at three ages, one scale",
                      "heights: top of the head to the soles, rest pose; phenotypes not named are 0.5; "
                      "age anchors: 0 baby, 1/3 child, 2/3 young adult, 1 elder")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs",
                    help="folder for body_keypoints.png and body_ages.png (default: docs/)")
    ap.add_argument("--supersample", type=int, default=2, help="render at this factor for smooth edges")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    body = load("anny")
    save_png(keypoints_figure(body, args.supersample), args.out / "body_keypoints.png")
    save_png(ages_figure(body, args.supersample), args.out / "body_ages.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

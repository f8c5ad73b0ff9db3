"""Reading images, classifying inputs and expanding folders.

Images come back as RGB uint8 (H, W, 3) arrays, upright (EXIF orientation applied),
transparent pixels composited over white. Every failure a user can cause raises
``hmrkit.errors.InputError`` with one line naming the file and the problem.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from hmrkit.errors import InputError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".gif")
KEYPOINT_SUFFIXES = (".json", ".npz")

# PIL format names we accept (MPO: the multi-picture JPEG many phones write).
_PIL_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "DIB", "TIFF"}

_EXIF_IFD = 0x8769
_FOCAL_35MM = 0xA405

# The person detector's floor on image size. MediaPipe itself runs on anything from 2 px a
# side, but it sees the whole picture scaled into a square (and only images at least 160 px
# on the short side are also searched tile by tile): below 8 px a side no person fits (the
# pipeline needs a person at least 24 px tall), and in a strip thinner than 1:32 a person
# spanning its short side is a few pixels in the detector's input. Such images get an
# InputError instead of a search that cannot succeed.
MIN_DETECTOR_SIDE_PX = 8
MAX_DETECTOR_ASPECT = 32


def detector_size_problem(height: int, width: int) -> str | None:
    """Why an image of (height, width) px is too small or too thin for the person detector
    (``MIN_DETECTOR_SIDE_PX``, ``MAX_DETECTOR_ASPECT``), as one line saying what to do, or
    None when its size is fine."""
    h, w = int(height), int(width)
    short, long = min(h, w), max(h, w)
    if short < MIN_DETECTOR_SIDE_PX:
        word = "thin" if long > MAX_DETECTOR_ASPECT * short else "small"
        return (f"image too {word} for the person detector ({w}x{h} px; each side needs at least "
                f"{MIN_DETECTOR_SIDE_PX} px); use the original, larger image")
    if long > MAX_DETECTOR_ASPECT * short:
        return (f"image too thin for the person detector ({w}x{h} px, beyond {MAX_DETECTOR_ASPECT}:1); "
                f"crop it to the part with the person")
    return None


def check_detector_size(path, height: int, width: int) -> None:
    """InputError naming ``path`` when an image of (height, width) px is too small or too
    thin for the person detector (see ``detector_size_problem``)."""
    why = detector_size_problem(height, width)
    if why is not None:
        raise InputError(path, why)


def classify(path) -> str:
    """``"image"``, ``"video"`` or ``"keypoints"`` from the file's suffix (case-insensitive).

    Raises InputError for any other suffix."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in KEYPOINT_SUFFIXES:
        return "keypoints"
    what = f"'{suffix}'" if suffix else "without a suffix"
    raise InputError(
        path,
        f"unsupported file type {what}; hmrkit reads images ({', '.join(IMAGE_SUFFIXES)}), "
        f"videos ({', '.join(VIDEO_SUFFIXES)}) and keypoint files ({', '.join(KEYPOINT_SUFFIXES)})",
    )


def _natural_key(path: Path):
    """Sort key: digits compare as numbers, so frame2 < frame10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def expand_inputs(paths, recursive: bool = False, skipped: list | None = None) -> list[Path]:
    """Files to process, in order: each given file as is, each folder's supported files
    sorted naturally (``frame2`` before ``frame10``), duplicates removed.

    paths: a path or a list of paths (files or folders).
    recursive: also descend into sub-folders.
    skipped: when a list is given, ``(path, reason)`` is appended for every file inside a
        folder that is not processed (unsupported type, sub-folder when not recursive);
        otherwise each is logged as a warning. Hidden files (``.name``) are ignored.
    A missing path, or a file given by name whose type is unsupported, raises InputError:
    the user asked for it explicitly."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path] = []
    seen: set = set()

    def add(p: Path):
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)

    def report(p: Path, reason: str):
        if skipped is not None:  # the caller reports them
            skipped.append((p, reason))
        else:
            log.warning("%s: skipped (%s)", p, reason)

    def walk(folder: Path):
        try:
            entries = sorted(folder.iterdir(), key=_natural_key)
        except PermissionError:
            raise InputError(folder, "cannot list this folder (permission denied)") from None
        for p in entries:
            if p.name.startswith("."):
                continue
            if p.is_dir():
                if recursive:
                    walk(p)
                else:
                    report(p, "a sub-folder; pass recursive=True (--recursive) to include it")
                continue
            try:
                classify(p)
            except InputError:
                report(p, f"unsupported file type '{p.suffix.lower() or p.name}'")
                continue
            add(p)

    if len(paths) == 0:
        raise InputError(None, "no input given; pass an image, a video, a keypoint file or a folder")
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            walk(p)
        elif p.exists():
            classify(p)  # raises for an unsupported file named explicitly
            add(p)
        else:
            raise InputError(p, "no such file or folder")
    return out


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a folder, not an image")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise InputError(path, f"cannot read the file ({e.strerror or e})") from None
    if size == 0:
        raise InputError(path, "empty file (0 bytes)")


def _to_rgb_uint8(img) -> np.ndarray:
    """A loaded PIL image in any mode -> (H, W, 3) uint8, alpha composited over white."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(img).astype(np.float64)
        hi = 65535.0 if (mode.startswith("I;16") or a.max(initial=0) > 255) else 255.0
        g = np.clip(np.round(a * (255.0 / hi)), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "F":
        a = np.asarray(img).astype(np.float64)
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0
        g = np.clip(np.round(a * scale), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA")).astype(np.float32)
        alpha = rgba[..., 3:4] / 255.0
        rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def _open(path: Path):
    """Open and fully decode with PIL; InputError for anything that is not a good image."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
    except UnidentifiedImageError:
        kind = f"a valid {path.suffix.lower().lstrip('.').upper()} file" if path.suffix else "an image"
        raise InputError(path, f"not {kind} (unrecognised or corrupt content)") from None
    except Image.DecompressionBombError as e:
        raise InputError(path, f"image too large to read safely ({e})") from None
    except OSError as e:
        raise InputError(path, f"cannot read the file ({e.strerror or e})") from None
    if img.format not in _PIL_FORMATS:
        img.close()
        raise InputError(path, f"unsupported image format {img.format}; convert it to PNG or JPEG")
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
        img.close()
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "truncated" in msg.lower():
            problem = "truncated image data (the file ends early); re-export or re-download it"
        else:
            problem = f"corrupt {img.format} data ({msg}); re-export or re-download it"
        raise InputError(path, problem) from None
    except Image.DecompressionBombError as e:
        raise InputError(path, f"image too large to read safely ({e})") from None
    return img


def read_image(path, for_detector: bool = False) -> np.ndarray:
    """The image at ``path`` as RGB uint8 (H, W, 3), upright.

    Formats: jpg, png (8 or 16 bit; gray, gray+alpha, palette, RGB, RGBA), webp, bmp,
    tiff. EXIF orientation is applied; alpha is composited over white; 16-bit samples are
    scaled to 8 bit. The first frame is read from multi-frame files. Any failure
    (missing, empty, not an image, truncated or corrupt, unsupported format, zero size)
    raises InputError with one line naming the file. With ``for_detector``, so does an
    image too small or too thin for the person detector (``check_detector_size``)."""
    from PIL import ImageOps

    path = Path(path)
    _check_file(path)
    img = _open(path)
    try:
        try:
            img = ImageOps.exif_transpose(img) or img
        except Exception as e:  # broken EXIF must not lose the picture
            log.warning("%s: ignoring unreadable EXIF orientation (%s)", path, e)
        if img.width == 0 or img.height == 0:
            raise InputError(path, f"image has zero size ({img.width}x{img.height})")
        if for_detector:
            check_detector_size(path, img.height, img.width)
        arr = _to_rgb_uint8(img)
    finally:
        img.close()
    return np.ascontiguousarray(arr)


def read_exif_focal(path, width: int, height: int) -> float | None:
    """Focal length in pixels from EXIF, or None when the file does not say.

    Uses FocalLengthIn35mmFilm (mm on a 36 x 24 mm frame): f_px = f35 / 36 * max(W, H),
    with (width, height) the image's size in pixels (either orientation). Files without
    EXIF (or that PIL cannot parse) give None; a missing file raises InputError."""
    from PIL import Image

    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            value = exif.get_ifd(_EXIF_IFD).get(_FOCAL_35MM)
            if value is None:
                value = exif.get(_FOCAL_35MM)  # some writers put it in IFD0
    except Exception:
        return None
    try:
        f35 = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not np.isfinite(f35) or f35 <= 0:
        return None
    return f35 / 36.0 * max(int(width), int(height))

"""Streaming video reading and atomic H.264 writing through imageio-ffmpeg.

Frames are decoded one at a time by an ffmpeg child process and piped in, so a long
video is never held in memory. Sizes are (H, W), like ``image_size`` everywhere in
hmrkit (and like ``frame.shape[:2]``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path

import numpy as np

from hmrkit.errors import InputError
from hmrkit.io.atomic import commit, temp_path_for

log = logging.getLogger(__name__)


def _ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(f'video input/output needs imageio-ffmpeg: pip install "hmrkit[io]" ({e})') from None
    return imageio_ffmpeg


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip() and not ln.startswith("===")]
    return lines[-1] if lines else "unknown error"


class VideoReader:
    """Frames of a video file, decoded one at a time.

    Attributes:
      path:        the file.
      fps:         frames per second (30.0 with a warning when the file does not say).
      size:        (H, W) pixels of the frames produced (rotation metadata applied).
      num_frames:  an estimate from duration * fps (exact for most files, approximate
                   for variable frame rates); the iteration is the truth.
      warnings:    problems met while decoding (e.g. a truncated file), one line each.

    ``for index, frame in reader`` yields (int, (H, W, 3) uint8 RGB). Iterating again
    restarts from the first frame. Use as a context manager, or call ``close()``, to stop
    the ffmpeg process early.

    An empty file, a file ffmpeg cannot read, or a video without frames raises InputError.
    """

    def __init__(self, path, log_warnings: bool = True):
        self.path = Path(path)
        self.warnings: list[str] = []
        self.log_warnings = log_warnings  # False: only collect them in ``warnings`` (the caller reports them)
        if not self.path.exists():
            raise InputError(self.path, "no such file")
        if self.path.is_dir():
            raise InputError(self.path, "is a folder, not a video")
        if self.path.stat().st_size == 0:
            raise InputError(self.path, "empty file (0 bytes)")
        self._gen = None
        self._first = None
        self._open()  # reads the header and the first frame: fail early on bad files

    def _open(self):
        ff = _ffmpeg()
        gen = ff.read_frames(str(self.path), pix_fmt="rgb24", input_params=["-nostdin"])
        try:
            meta = next(gen)
        except (OSError, RuntimeError, StopIteration) as e:
            gen.close()
            raise InputError(self.path, f"not a readable video (ffmpeg: {_last_line(e)})") from None
        except Exception as e:  # header parsing failed: no video stream, odd container, ...
            gen.close()
            raise InputError(self.path, f"not a readable video ({type(e).__name__}: {_last_line(e)})") from None
        w, h = (int(v) for v in meta["size"])
        if w <= 0 or h <= 0:
            gen.close()
            raise InputError(self.path, f"video has zero frame size ({w}x{h})")
        fps = float(meta.get("fps") or 0.0)
        if not math.isfinite(fps) or fps <= 0:
            self._warn("the file does not give a frame rate; assuming 30 fps")
            fps = 30.0
        self.fps = fps
        self.size = (h, w)
        self.codec = meta.get("codec", "")
        duration = float(meta.get("duration") or 0.0)
        self.num_frames = max(1, int(round(duration * fps))) if duration > 0 else None
        try:
            first = next(gen)
        except StopIteration:
            gen.close()
            raise InputError(self.path, "video contains no frames") from None
        except RuntimeError as e:
            gen.close()
            raise InputError(self.path, f"cannot decode the first frame ({_last_line(e)})") from None
        self._gen, self._first = gen, first

    def _warn(self, message: str):
        if message not in self.warnings:
            self.warnings.append(message)
            if self.log_warnings:
                log.warning("%s: %s", self.path, message)

    @property
    def height(self) -> int:
        return self.size[0]

    @property
    def width(self) -> int:
        return self.size[1]

    def _frame(self, data: bytes) -> np.ndarray:
        h, w = self.size
        # bytearray: a writable frame that owns its memory (one copy).
        return np.frombuffer(bytearray(data), dtype=np.uint8).reshape(h, w, 3)

    def __iter__(self):
        if self._first is None:  # a second pass (or after close): restart ffmpeg
            self.close()
            self._open()
        gen, first = self._gen, self._first
        self._first = None
        index = 0
        yield index, self._frame(first)
        while True:
            try:
                data = next(gen)
            except StopIteration:
                break
            except RuntimeError as e:
                self._warn(f"decoding stopped after frame {index} ({_last_line(e)}); the file may be truncated")
                break
            index += 1
            yield index, self._frame(data)
        if self.num_frames is None or index + 1 != self.num_frames:
            self.num_frames = index + 1
        self.close()

    def close(self) -> None:
        """Stop the ffmpeg process (safe to call twice)."""
        if self._gen is not None:
            self._gen.close()
        self._gen = None
        self._first = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self):
        return f"VideoReader({str(self.path)!r}, fps={self.fps:g}, size={self.size}, num_frames~{self.num_frames})"


class VideoWriter:
    """An H.264 (yuv420p) video written atomically.

    path: destination (``.mp4`` recommended; the container follows the suffix).
    fps:  frames per second.
    size: (H, W) of the frames to be written (note the order: ``frame.shape[:2]``, not
          imageio's (W, H)); None to take it from the first frame. H.264 in yuv420p needs
          even sides, so an odd side is padded by one row/column (copying the last one);
          the file is then (H + H % 2, W + W % 2).
    crf:  x264 quality (lower is better; 23 is x264's default, 18 is visually lossless).

    Frames go to a hidden temporary file in the same folder, renamed over ``path`` by
    ``close()``. Leaving a ``with`` block by an exception (or calling ``abort()``) removes
    the temporary file, so no half-written video is ever left under ``path``.
    """

    def __init__(self, path, fps: float, size=None, crf: int = 20):
        self.path = Path(path)
        fps = float(fps)
        if not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"VideoWriter: fps must be positive, got {fps}")
        self.fps = fps
        self.crf = int(crf)
        self.size = None
        self.out_size = None
        self.count = 0
        self._done = False
        self._gen = None
        fd, self._tmp = temp_path_for(self.path)  # fails early on an unwritable folder
        os.close(fd)  # ffmpeg writes the file itself
        if size is not None:
            self._start(size)

    def _start(self, size) -> None:
        h, w = (int(v) for v in size)
        if h <= 0 or w <= 0:
            self.abort()
            raise ValueError(f"VideoWriter: size must be (H, W) > 0, got {tuple(size)}")
        self.size = (h, w)
        self.out_size = (h + h % 2, w + w % 2)
        ff = _ffmpeg()
        H, W = self.out_size
        try:
            self._gen = ff.write_frames(
                str(self._tmp),
                size=(W, H),
                fps=self.fps,
                codec="libx264",
                pix_fmt_in="rgb24",
                pix_fmt_out="yuv420p",
                quality=None,
                macro_block_size=1,
                ffmpeg_log_level="error",
                output_params=["-crf", str(self.crf), "-preset", "veryfast", "-movflags", "+faststart"],
            )
            self._gen.send(None)  # start ffmpeg
        except Exception as e:
            self.abort()
            raise InputError(self.path, f"cannot start the video encoder ({_last_line(e)})") from None

    def write(self, frame) -> None:
        """Append one frame: (H, W, 3) uint8 RGB, of the writer's ``size``."""
        if self._done:
            raise ValueError(f"{self.path}: VideoWriter is closed")
        frame = np.asarray(frame)
        if self.size is None and frame.ndim == 3:
            self._start(frame.shape[:2])
        if self.size is None or frame.shape != (*self.size, 3) or frame.dtype != np.uint8:
            want = "(H, W, 3)" if self.size is None else f"({self.size[0]}, {self.size[1]}, 3)"
            raise ValueError(f"VideoWriter.write: expected {want} uint8, got {frame.shape} {frame.dtype}")
        h, w = self.size
        H, W = self.out_size
        if (H, W) != (h, w):
            frame = np.pad(frame, ((0, H - h), (0, W - w), (0, 0)), mode="edge")
        try:
            self._gen.send(np.ascontiguousarray(frame))
        except Exception as e:
            self.abort()
            raise InputError(self.path, f"the video encoder failed ({_last_line(e)})") from None
        self.count += 1

    def close(self) -> Path:
        """Finish encoding and move the file into place; returns ``path``. Raises
        ValueError when no frame was written (nothing is saved then)."""
        if self._done:
            return self.path
        self._done = True
        try:
            if self._gen is not None:
                self._gen.close()
        except Exception as e:
            self._remove_tmp()
            raise InputError(self.path, f"the video encoder failed ({_last_line(e)})") from None
        if self.count == 0:
            self._remove_tmp()
            raise ValueError(f"{self.path}: no frames were written; nothing saved")
        commit(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Stop encoding and remove the temporary file; ``path`` is left untouched."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(Exception):
            if self._gen is not None:
                self._gen.close()
        self._remove_tmp()

    def _remove_tmp(self):
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def __del__(self):
        # Never leave a temporary file behind; a writer that was not closed is discarded.
        with contextlib.suppress(Exception):
            if not self._done:
                self.abort()

"""Decode every frame of a video, in order, with PyAV (FFmpeg bundled in the wheel).

HMDB51 clips are small DivX/XviD AVIs (about 1 MB), so a clip is read into memory from its archive
and decoded from there: nothing is unpacked to disk.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from flowprep.errors import ConfigError, DecodeError


def target_size(
    width: int, height: int, short_side: int | None = None, size: tuple[int, int] | None = None
) -> tuple[int, int]:
    """Output ``(width, height)`` for a ``width`` x ``height`` input.

    ``size`` wins (exact ``(w, h)``); else ``short_side`` scales the shorter side to that many pixels
    keeping the aspect ratio (the other side rounded to the nearest even number, as video encoders
    want); else the input size.
    """
    if size is not None:
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0:
            raise ConfigError(f"--size must be positive, got {w}x{h}")
        return w, h
    if short_side is not None:
        if short_side <= 0:
            raise ConfigError(f"--short-side must be positive, got {short_side}")
        scale = short_side / min(width, height)
        w = max(2, int(round(width * scale / 2)) * 2) if width > height else short_side
        h = short_side if width > height else max(2, int(round(height * scale / 2)) * 2)
        return w, h
    return width, height


def resize_frame(frame: np.ndarray, wh: tuple[int, int]) -> np.ndarray:
    """Resize an ``(H, W, C)`` ``uint8`` frame to ``wh = (w, h)`` (area filter down, bilinear up)."""
    import cv2

    h, w = frame.shape[:2]
    if (w, h) == tuple(wh):
        return frame
    interp = cv2.INTER_AREA if wh[0] * wh[1] < w * h else cv2.INTER_LINEAR
    return cv2.resize(frame, tuple(wh), interpolation=interp)


def _reason(exc: BaseException) -> str:
    """FFmpeg's message for one line: no ``[Errno N]`` and no file name (PyAV says ``'<none>'`` for
    in-memory input; the caller's label names the clip), with a hint for the commonest case."""
    import av

    text = getattr(exc, "strerror", None) or str(exc)
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(text)).strip() or type(exc).__name__
    if re.match(r"[A-Z][a-z]", text):  # a sentence, not an acronym such as "EBML"
        text = text[:1].lower() + text[1:]
    if isinstance(exc, av.error.InvalidDataError):
        text += " (not a video, or truncated)"
    return text


def _open(src):
    import av

    if isinstance(src, (bytes, bytearray, memoryview)):
        src = io.BytesIO(bytes(src))
    elif isinstance(src, Path):
        src = str(src)
    return av.open(src, "r")


def iter_frames(
    src,
    short_side: int | None = None,
    size: tuple[int, int] | None = None,
    frame_step: int = 1,
    threads: int = 1,
    name: str = "",
    report: dict[str, int] | None = None,
) -> Iterator[np.ndarray]:
    """Yield the frames of the first video stream, in presentation order.

    Args:
        src: the video as bytes, a path, or a binary file object.
        short_side / size: optional resize (see :func:`target_size`).
        frame_step: keep every ``frame_step``-th frame (1 = all).
        threads: FFmpeg decoder threads (1 inside build workers, which parallelise across clips).
        name: shown in error messages.
        report: if given, filled at the end with ``expected`` (the container's frame count, 0 if it
            has none) and ``decoded`` (frames decoded, before ``frame_step``): FFmpeg drops frames it
            cannot decode in the middle of a clip without raising, so a shortfall is how to tell.

    Yields:
        ``uint8`` ``(H, W, 3)`` RGB frames.

    Raises:
        DecodeError: the container cannot be opened, has no video stream, is corrupt, or yields no frame.
    """
    import av

    if frame_step < 1:
        raise ConfigError(f"--frame-step must be >= 1, got {frame_step}")
    label = name or (str(src) if isinstance(src, (str, Path)) else "video")
    if isinstance(src, (bytes, bytearray, memoryview)) and len(src) == 0:
        raise DecodeError(f"{label}: cannot open video: empty file (0 bytes)")
    try:
        container = _open(src)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DecodeError(f"{label}: cannot open video: {_reason(exc)}") from exc
    n = 0
    try:
        if not container.streams.video:
            raise DecodeError(f"{label}: no video stream")
        stream = container.streams.video[0]
        stream.thread_count = max(1, int(threads))
        wh = None
        k = 0
        for frame in container.decode(stream):
            if k % frame_step == 0:
                rgb = frame.to_ndarray(format="rgb24")
                if wh is None:
                    wh = target_size(rgb.shape[1], rgb.shape[0], short_side, size)
                yield resize_frame(rgb, wh)
                n += 1
            k += 1
        if report is not None:
            report.update(expected=max(0, int(stream.frames or 0)), decoded=k)
    except av.FFmpegError as exc:
        raise DecodeError(f"{label}: corrupt video after {n} frames: {_reason(exc)}") from exc
    finally:
        container.close()
    if n == 0:
        raise DecodeError(f"{label}: no frame could be decoded")


def count_frames(src, frame_step: int = 1) -> int:
    """Number of frames :func:`iter_frames` yields (decodes the whole video)."""
    return sum(1 for _ in iter_frames(src, frame_step=frame_step))

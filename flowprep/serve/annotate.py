"""The annotated output video: every input frame, with the latest prediction drawn on it (PyAV encode)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from flowprep.errors import ConfigError, writing
from flowprep.fsio.writing import AtomicFile

__all__ = ["AnnotatedWriter"]


def _codec(path: Path) -> str:
    import av

    if path.suffix.lower() in (".mp4", ".mkv", ".mov") and "libx264" in av.codecs_available:
        return "libx264"
    return "mpeg4"


class AnnotatedWriter:
    """Encode frames one by one at the input's rate. Odd frame sizes are padded to even (yuv420p).

    The video is written under a temporary name beside ``path`` (same suffix) and renamed to
    ``path`` by :meth:`close`; ``close(keep=False)`` removes it instead, so a run that fails (a full
    disk) leaves no unreadable partial file, and nothing replaces ``path`` until the video is whole.

    Args:
        path: output file; the container follows the suffix (``.mp4``, ``.mkv``, ``.avi``, ...).
        fps: frames per second.
    """

    def __init__(self, path: Path, fps: float):
        import av

        self.path = Path(path)
        with writing(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # FFmpeg opens it by name and picks the container by its suffix
        self._out = AtomicFile(self.path, keep_suffix=True, by_name=True)
        self.tmp = self._out.tmp
        self.rate = Fraction(fps).limit_denominator(10000)
        try:
            self._container: Any = av.open(str(self.tmp), "w")
        except BaseException as exc:
            self._out.discard()
            if not isinstance(exc, (av.FFmpegError, OSError, ValueError)):
                raise
            raise ConfigError(f"cannot write the annotated video {self.path}: {exc}") from exc
        self._stream: Any = None  # PyAV's video stream, made with the first frame (its size)
        self._failed = False
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB frame (``uint8`` ``(H, W, 3)``)."""
        import av

        h, w = frame.shape[:2]
        if self._stream is None:
            codec = _codec(self.path)
            self._stream = self._container.add_stream(codec, rate=self.rate)
            self._stream.width, self._stream.height = w + w % 2, h + h % 2
            self._stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                self._stream.options = {"crf": "20", "preset": "veryfast"}
            else:
                self._stream.bit_rate = 4_000_000
        if w % 2 or h % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self.frames
        vf.time_base = 1 / self.rate
        try:
            with writing(self.path):  # FFmpeg's EROFS/ENOSPC name no file
                for packet in self._stream.encode(vf):
                    self._container.mux(packet)
        except BaseException:
            self._failed = True
            raise
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Flush the encoder, close the file and rename it into place (``keep``), or remove it.
        Safe to call twice."""
        if self._container is None:
            return
        container, self._container = self._container, None  # a failed flush is not retried
        keep = keep and not self._failed
        try:
            with writing(self.path):
                try:
                    # after a failed mux, flushing the encoder crashes PyAV (SIGSEGV, PyAV 18.1): skip it
                    if self._stream is not None and keep:
                        for packet in self._stream.encode(None):
                            container.mux(packet)
                finally:
                    container.close()
                if keep:
                    self._out.commit()
        finally:
            self._out.discard()  # nothing once committed

    def __enter__(self) -> AnnotatedWriter:
        return self

    def __exit__(self, kind, *exc) -> None:
        self.close(keep=kind is None or issubclass(kind, KeyboardInterrupt))

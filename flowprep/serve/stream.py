"""Frame sources for streaming inference: a video file, a folder of frames, or a camera (PyAV).

Frames are yielded one at a time; nothing holds the whole video. Input strings:

* an existing file: decoded with PyAV (FFmpeg in the wheel);
* an existing folder: its images in name order (``*.png``, ``*.jpg``, ``*.jpeg``, ``*.bmp``); a TAO
  clip folder (with an ``rgb/`` sub-folder) reads ``rgb/``;
* ``/dev/videoN`` or ``camera:N``: a V4L2 camera on Linux, ``avfoundation`` device N on macOS
  (``camera:N``), a DirectShow device on Windows (``camera:NAME``).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowprep.errors import ConfigError, DecodeError
from flowprep.fsio.reading import MAX_FRAME_BYTES, check_regular, read_bytes

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
DEFAULT_FPS = 25.0
_CAMERA = re.compile(r"^(?:/dev/video\d+|camera:.+)$")


@dataclass
class SourceInfo:
    """What is known about a source before it is read.

    Attributes:
        kind: ``"file"``, ``"folder"`` or ``"camera"``.
        name: the input string, for messages.
        fps: frames per second (the container's average rate; ``--fps`` or 25 for folders/cameras without one).
        frame_count: frames the source will yield if known in advance (files: container metadata or a
            packet count; folders: images), else None (cameras).
        width, height: frame size in pixels once the first frame is known (0 before).
    """

    kind: str
    name: str
    fps: float
    frame_count: int | None
    width: int = 0
    height: int = 0


class FrameSource:
    """Iterate over ``uint8`` ``(H, W, 3)`` RGB frames of one input, in order. Use as a context manager."""

    def __init__(self, info: SourceInfo):
        self.info = info

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device/file. Safe to call twice."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _AvSource(FrameSource):
    def __init__(self, info: SourceInfo, container):
        super().__init__(info)
        self._container = container

    def __iter__(self) -> Iterator[np.ndarray]:
        import av

        stream = self._container.streams.video[0]
        n = 0
        try:
            for frame in self._container.decode(stream):
                rgb = frame.to_ndarray(format="rgb24")
                self.info.height, self.info.width = rgb.shape[:2]
                n += 1
                yield rgb
        except av.FFmpegError as exc:
            raise DecodeError(f"{self.info.name}: decoding failed after {n} frames: {exc}") from exc
        if n == 0:
            raise DecodeError(f"{self.info.name}: no frame could be decoded")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class _FolderSource(FrameSource):
    def __init__(self, info: SourceInfo, files: list[Path]):
        super().__init__(info)
        self._files = files

    def __iter__(self) -> Iterator[np.ndarray]:
        import cv2

        for f in self._files:
            # regular files only, bounded: cv2.imread on a FIFO among the frames blocked forever
            data = read_bytes(f, what="image", max_bytes=MAX_FRAME_BYTES, error=DecodeError)
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
            if img is None:
                raise DecodeError(f"{f}: not a readable image")
            rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            self.info.height, self.info.width = rgb.shape[:2]
            yield rgb


def is_camera(spec: str) -> bool:
    """True for ``/dev/videoN`` and ``camera:...`` inputs."""
    return bool(_CAMERA.match(spec))


def _rate(stream) -> float | None:
    for r in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if r:
            return float(r)
    return None


def _count_packets(path: str) -> int:
    """Frames of the first video stream by counting its packets (no decoding: one packet per frame)."""
    import av

    with av.open(path) as c:
        return sum(1 for p in c.demux(c.streams.video[0]) if p.size)


def _open_camera(spec: str, fps: float | None) -> FrameSource:
    import av

    if spec.startswith("/dev/video"):
        fmt, dev = "v4l2", spec
    elif sys.platform == "darwin":
        fmt, dev = "avfoundation", spec.split(":", 1)[1]
    elif sys.platform.startswith("win"):
        fmt, dev = "dshow", f"video={spec.split(':', 1)[1]}"
    else:
        fmt, dev = "v4l2", f"/dev/video{spec.split(':', 1)[1]}"
    if fmt == "v4l2" and not Path(dev).exists():
        raise DecodeError(f"camera {dev} not found (no such device); list cameras with `ls /dev/video*`")
    options = {"framerate": str(int(fps))} if fps else {}
    try:
        container = av.open(dev, format=fmt, options=options)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DecodeError(f"camera {spec}: cannot open it ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise DecodeError(f"camera {spec}: no video stream")
    rate = fps or _rate(container.streams.video[0]) or DEFAULT_FPS
    return _AvSource(SourceInfo("camera", spec, rate, None), container)


def open_source(spec: str | Path, fps: float | None = None) -> FrameSource:
    """Open an input for streaming (see the module docstring).

    Args:
        spec: file, folder or camera.
        fps: frame rate to assume for folders (default 25) and to request from cameras; overrides a
            file's own rate when given.

    Raises:
        DecodeError: the input does not exist, is not a video/image folder, or a camera is absent.
        ConfigError: a non-positive ``fps``.
    """
    import av

    if fps is not None and not fps > 0:
        raise ConfigError(f"--fps must be > 0, got {fps}")
    spec = str(spec)
    if is_camera(spec):
        return _open_camera(spec, fps)
    path = Path(spec)
    if not path.exists():
        raise DecodeError(f"input {spec} does not exist")
    if not path.is_dir():  # a FIFO would block PyAV's open forever; /dev/zero is no video
        check_regular(path, what="input", max_bytes=None, error=DecodeError)
    if path.is_dir():
        folder = path / "rgb" if (path / "rgb").is_dir() else path
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DecodeError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return _FolderSource(SourceInfo("folder", spec, fps or DEFAULT_FPS, len(files)), files)
    try:
        container = av.open(spec)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DecodeError(f"{spec}: cannot open it as a video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise DecodeError(f"{spec}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    count = int(stream.frames or 0) or _count_packets(spec)
    rate = fps or _rate(stream) or DEFAULT_FPS
    return _AvSource(
        SourceInfo("file", spec, rate, count or None, stream.codec_context.width, stream.codec_context.height),
        container,
    )

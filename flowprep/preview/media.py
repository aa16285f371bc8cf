"""Preview media: read one built clip back, decode its flow with the recorded encoding, and encode
the side-by-side panels (RGB | flow colour wheel | u | v) as an H.264 MP4 a browser plays from disk.

H.264 in MP4 (``yuv420p``, ``+faststart``) because it is what browsers play from ``file://`` without
plug-ins (Chromium, Firefox, Safari) and what PyAV's FFmpeg writes here (libx264); animated WebP/GIF
would be 5-20x larger for the same frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from flowprep.errors import DatasetError, OutputError
from flowprep.flow.encoding import FlowEncoding
from flowprep.flow.visualize import flow_to_color
from flowprep.fsio.reading import MAX_FRAME_BYTES, try_read_bytes
from flowprep.fsio.writing import atomic_path
from flowprep.layout.dataset_record import ClipEntry, DatasetRecord
from flowprep.layout.packed import ClipFiles, open_index
from flowprep.layout.registry import get_layout
from flowprep.video.overlay import draw_label

#: panel names in the order they are drawn
PANELS = ("RGB", "flow", "u", "v")


@dataclass
class ClipMedia:
    """What the page says about one clip next to its video.

    Attributes:
        frames: RGB frames of the clip in the record; ``flow_frames`` likewise.
        available: frames a video of the clip can have (``flow_frames`` with flow, else ``frames``).
        shown: frames in the preview video (the first ``max_frames`` at most).
        panels: panel names drawn left to right (a subset of :data:`PANELS`).
        mean_mag, max_mag: mean / max flow magnitude over the shown flow frames; pixels for the
            ``fixed`` encoding, fractions of each frame's max radius for ``maxrad``; None without flow.
        size: ``(width, height)`` of the video in pixels.
    """

    frames: int
    flow_frames: int
    available: int
    shown: int
    panels: tuple[str, ...]
    mean_mag: float | None
    max_mag: float | None
    size: tuple[int, int]


class _FolderFiles:
    """A clip folder's images by relative name: only regular files, never followed through a
    symlink, at most MAX_FRAME_BYTES (a frame linked to /dev/zero or a FIFO would otherwise exhaust
    memory or block; verify reads frames the same way)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.where = str(folder)

    def read(self, rel: str) -> bytes:
        data, why = try_read_bytes(self.folder / rel, MAX_FRAME_BYTES, owned=True)
        if not data:
            raise DatasetError(
                f"cannot read {self.folder / rel}: {why or 'not an image'} (run `flowprep verify` on the dataset)"
            )
        return data


def _imread(files: ClipFiles, rel: str, flags: int) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(files.read(rel), np.uint8), flags)
    if img is None:
        raise DatasetError(f"cannot read {files.where}/{rel}: not an image (run `flowprep verify` on the dataset)")
    return img


def read_rgb(files: ClipFiles, layout: str, k: int, image_format: str) -> np.ndarray:
    """RGB frame ``k`` of a clip: ``uint8`` ``(H, W, 3)``."""
    return cv2.cvtColor(
        _imread(files, get_layout(layout).rgb_name(k, image_format), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )


def read_uv(files: ClipFiles, layout: str, k: int, image_format: str) -> tuple[np.ndarray, np.ndarray]:
    """Flow images ``(u, v)`` ``k`` of a clip: ``uint8`` ``(H, W)`` each, as written."""
    u_name, v_name = get_layout(layout).flow_names(k, image_format)
    return (_imread(files, u_name, cv2.IMREAD_GRAYSCALE), _imread(files, v_name, cv2.IMREAD_GRAYSCALE))


def _panel(img: np.ndarray, height: int) -> np.ndarray:
    """Scale to ``height`` rows (even width, for yuv420p); gray becomes 3-channel."""
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    h, w = img.shape[:2]
    width = max(2, round(w * height / h / 2) * 2)
    interp = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interp)


class ClipReader:
    """One clip of a dataset, frame by frame, as side-by-side panels.

    Args:
        root: dataset root.
        record: its record (:func:`flowprep.layout.record.read_record`).
        clip: the clip's entry in ``record.clips`` (status ``ok``).
    """

    def __init__(self, root: Path, record: DatasetRecord, clip: ClipEntry):
        self.layout = record.layout
        self.folder = get_layout(self.layout).clip_dir(root, clip.side, clip.cls, clip.name)
        index = open_index(Path(root), record)
        self.files: ClipFiles
        if index is not None:  # a packed dataset: the clip's sample, read once
            self.files, self.outside = index.read_clip(clip.id), False
        else:
            self.files = _FolderFiles(self.folder)
            # a symlinked class or clip folder leading out of the dataset is not read (as in verify)
            self.outside = not self.folder.resolve().is_relative_to(Path(root).resolve())
        self.rgb_format = record.rgb.image_format if record.rgb else "png"
        self.rgb = record.has_rgb
        self.flow = record.has_flow
        self.encoding: FlowEncoding | None = record.encoding if self.flow else None
        self.frames = clip.frames
        self.flow_frames = clip.flow_frames if self.flow else 0
        # with flow, frame k is shown next to flow k (k -> k+1), so there are N-1 of them
        self.count = self.flow_frames if self.flow else self.frames

    @property
    def panels(self) -> tuple[str, ...]:
        return (("RGB",) if self.rgb else ()) + (("flow", "u", "v") if self.flow else ())

    def flow_px(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(u, v, flow)``: the images of flow ``k`` and the flow decoded from them (``float32``
        ``(H, W, 2)``; pixels for ``fixed``, max-radius units for ``maxrad``)."""
        enc = self.encoding
        if enc is None:
            raise DatasetError(f"{self.folder} has no flow images (the dataset's modality is rgb)")
        u, v = read_uv(self.files, self.layout, k, enc.image_format)
        return u, v, enc.decode(u, v)

    def color_scale(self, n: int) -> float:
        """Speed drawn fully saturated: the largest flow magnitude over the first ``n`` flow frames
        (one scale per clip, so colours do not flicker; a fixed bound would wash out small motion).
        For ``maxrad`` that is about 1, each frame's own max radius. Reads the frames one at a time
        (a first pass), so memory does not grow with ``n``."""
        largest = 0.0
        for k in range(n):
            f = self.flow_px(k)[2]
            if f.size:
                largest = max(largest, float(np.hypot(f[..., 0], f[..., 1]).max()))
        return max(1e-3, largest)

    def frames_iter(self, max_frames: int, height: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Yield ``(panels, magnitude)`` per shown frame: ``uint8`` ``(height, W, 3)`` RGB panels
        side by side, and the flow magnitude ``float32`` ``(H, W)`` (None without flow)."""
        n = min(self.count, max_frames)
        scale = self.color_scale(n) if self.flow else 1.0
        for k in range(n):
            parts = [read_rgb(self.files, self.layout, k, self.rgb_format)] if self.rgb else []
            mag = None
            if self.flow:
                u, v, f = self.flow_px(k)
                mag = np.hypot(f[..., 0], f[..., 1])
                parts += [flow_to_color(f, max_flow=scale), u, v]
            yield np.concatenate([_panel(p, height) for p in parts], axis=1), mag


def render_clip(
    reader: ClipReader, path: Path, max_frames: int, height: int, fps: float, labels: bool = False
) -> ClipMedia:
    """Write ``reader``'s clip as a side-by-side MP4 at ``path`` and measure its flow.

    Args:
        reader: the clip.
        path: output ``.mp4``.
        max_frames: at most this many frames (from the first).
        height: panel height in pixels (even).
        fps: frame rate of the video.
        labels: draw the panel names on the frames (for a video seen outside the page).
    """
    if reader.outside:
        raise DatasetError(f"{reader.folder} leads outside the dataset (a symlink?); not read")
    sums = [0.0, 0, 0.0]  # magnitude sum, pixel count, max

    def frames() -> Iterator[np.ndarray]:
        for img, mag in reader.frames_iter(max_frames, height):
            if mag is not None:
                sums[0] += float(mag.sum(dtype=np.float64))
                sums[1] += mag.size
                sums[2] = max(sums[2], float(mag.max()))
            yield _label_panels(img, reader.panels) if labels else img

    shown, size = write_mp4(path, frames(), fps)
    mean = sums[0] / sums[1] if sums[1] else None
    return ClipMedia(
        frames=reader.frames,
        flow_frames=reader.flow_frames,
        available=reader.count,
        shown=shown,
        panels=reader.panels,
        mean_mag=mean,
        max_mag=sums[2] if sums[1] else None,
        size=size,
    )


def _label_panels(img: np.ndarray, panels: tuple[str, ...]) -> np.ndarray:
    """Write each panel's name at its top left (panels are equal width)."""
    width = img.shape[1] // len(panels)
    for i, name in enumerate(panels):
        part = np.ascontiguousarray(img[:, i * width : (i + 1) * width])  # OpenCV draws on contiguous arrays
        img[:, i * width : (i + 1) * width] = draw_label(part, [name])
    return img


def write_mp4(path: Path, frames: Iterator[np.ndarray], fps: float) -> tuple[int, tuple[int, int]]:
    """Encode RGB frames (``uint8`` ``(H, W, 3)``, even H and W) as H.264 MP4.

    Returns:
        ``(frames written, (width, height))``.

    Raises:
        OutputError: the file cannot be written, or PyAV's FFmpeg lacks libx264.
    """
    import av  # lazy: PyAV loads FFmpeg's libraries

    if "libx264" not in av.codecs_available:
        raise OutputError(
            "PyAV's FFmpeg has no libx264 encoder (needed for the preview's H.264 video); "
            "install the PyAV wheel from PyPI: pip install --force-reinstall av"
        )
    n, size = 0, (0, 0)
    rate = Fraction(fps).limit_denominator(1000)
    # written under a temporary name (same suffix: PyAV picks the container by it) and renamed once
    # whole: a full disk or an unreadable frame leaves no half-written video, and no link is followed
    try:
        with atomic_path(path) as tmp, av.open(str(tmp), "w", options={"movflags": "+faststart"}) as container:
            stream = None
            for frame in frames:
                if stream is None:
                    size = (frame.shape[1], frame.shape[0])
                    stream = container.add_stream("libx264", rate=rate)
                    stream.width, stream.height = size
                    stream.pix_fmt = "yuv420p"
                    # crf 23 / veryfast: a 4-panel 128-row clip of 16 frames is ~20-60 KB
                    stream.options = {"crf": "23", "preset": "veryfast"}
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                vf.pts = n
                vf.time_base = 1 / rate
                for packet in stream.encode(vf):
                    container.mux(packet)
                n += 1
            if stream is not None:
                for packet in stream.encode(None):
                    container.mux(packet)
    except av.FFmpegError as exc:
        raise OutputError(f"cannot write the preview video {path}: {exc}") from exc
    return n, size

"""The preview stage's config (validated on creation) and summary; no OpenCV."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flowprep.errors import ConfigError
from flowprep.fsio.paths import check_path
from flowprep.layout.base import SIDES
from flowprep.limits import check_count, check_finite

SIDE_CHOICES = (*SIDES, "both")
MIN_FPS = 0.1
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov")


@dataclass(frozen=True)
class PreviewConfig:
    """What to preview.

    Attributes:
        dataset: dataset root (or its ``train``/``val`` folder).
        out: output folder; default ``<root>-preview`` next to the dataset root.
        per_class: clips shown per class (chosen deterministically, spread over the sorted ids), >= 0.
        clips: clip ids (``train/walk/<clip>``) or names to show instead of a per-class choice.
        side: ``train``, ``val`` or ``both``: where the per-class choice comes from.
        video: write this one clip's side-by-side video here instead of a page (needs exactly one clip).
        height: panel height in pixels (even, 16..1080).
        fps: frame rate of the videos, 0.1..120 (the MP4 time base is a fraction with a denominator
            of at most 1000: a slower rate would round to zero).
        max_frames: frames per video at most (from the clip's start).
        progress: show a progress bar.
        overwrite: ``video`` may replace an existing file (never the dataset's own files).
    """

    dataset: Path
    out: Path | None = None
    per_class: int = 3
    clips: tuple[str, ...] = ()
    side: str = "both"
    video: Path | None = None
    height: int = 128
    fps: float = 10.0
    max_frames: int = 48
    progress: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        check_path(self.dataset, "DATASET")
        for option, path in (("--out", self.out), ("--video", self.video)):
            if path is not None:
                check_path(path, option)
        # the CLI's limits, also for library callers (a float or nan count failed deep inside)
        check_count("--per-class", self.per_class, 0, 1000)
        check_count("--max-frames", self.max_frames, 1, 100_000)
        check_count("--height", self.height, 16, 1080)
        check_finite("--fps", self.fps, MIN_FPS, 120)
        if self.side not in SIDE_CHOICES:
            raise ConfigError(f"--side must be one of {SIDE_CHOICES}, got {self.side!r}")
        if not (16 <= self.height <= 1080 and self.height % 2 == 0):
            raise ConfigError(f"--height must be an even number of pixels in 16..1080, got {self.height}")
        if self.video is not None:
            if len(self.clips) != 1:
                raise ConfigError(f"--video needs exactly one --clip, got {len(self.clips)}")
            if Path(self.video).suffix.lower() not in VIDEO_SUFFIXES:
                raise ConfigError(f"--video must end in one of {VIDEO_SUFFIXES}, got {self.video}")


@dataclass
class PreviewSummary:
    """What :func:`~flowprep.preview.api.preview` wrote.

    Attributes:
        out: the page's folder, or the video file.
        index: ``index.html`` (None for a single video).
        clips: clips rendered; ``frames``: video frames written in all.
        media_bytes: size of the videos written.
        seconds: wall time.
        notes: things the user should know (clips with nothing to show or unreadable frames); also on the page.
    """

    out: Path
    index: Path | None
    clips: int
    frames: int
    media_bytes: int
    seconds: float
    notes: list[str] = field(default_factory=list)

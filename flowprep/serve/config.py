"""The infer stage's config (validated on creation) and summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowprep.errors import ConfigError
from flowprep.fsio.paths import check_path
from flowprep.fsio.writing import check_new_file
from flowprep.limits import check_finite
from flowprep.loader.sampling import CONV_SEGMENTS


@dataclass
class InferConfig:
    """Options of ``flowprep infer`` (see :mod:`flowprep.serve.infer` for windows and times).

    Attributes:
        input: see :func:`flowprep.serve.stream.open_source`.
        model: ``model.onnx`` from ``flowprep export`` or a ``.pt`` checkpoint.
        output: optional annotated video (same frames as the input, label and score drawn).
        stride: items between window starts (default half a window span, at least 1).
        skip_frames: items skipped between the frames of a window (default: the model's sample rate - 1).
        top: labels per result. fps: rate for folders/cameras (and override for files).
        flow: compute flow with this backend instead of the recorded one.
        segments: conv-protocol segments for the clip verdict.
        max_frames: stop after this many source frames (cameras, previews).
        providers: ONNX Runtime providers to use (default: the best present).
        overwrite: ``output`` may replace an existing file (never the input or the model).

    Raises:
        ConfigError: a count below its minimum; an unusable path; an ``output`` that is the input
            or the model, or that exists without ``overwrite``.
    """

    input: str | Path
    model: str | Path
    output: Path | None = None
    stride: int | None = None
    skip_frames: int | None = None
    top: int = 3
    fps: float | None = None
    flow: str | None = None
    segments: int = CONV_SEGMENTS
    max_frames: int | None = None
    providers: list[str] | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        check_path(self.input, "INPUT")
        check_path(self.model, "--model")
        if self.output is not None:
            self.output = check_new_file(self.output, option="--output", overwrite=self.overwrite, inputs=self.inputs())
        for name, v in (
            ("--stride", self.stride),
            ("--top-k", self.top),
            ("--segments", self.segments),
            ("--max-frames", self.max_frames),
        ):
            if v is not None and v < 1:
                raise ConfigError(f"{name} must be >= 1, got {v}")
        if self.skip_frames is not None and self.skip_frames < 0:
            raise ConfigError(f"--skip-frames must be >= 0, got {self.skip_frames}")
        if self.fps is not None:
            check_finite("--fps", self.fps, 0, 1000, lo_open=True)

    def inputs(self) -> list[Path]:
        """The files this run reads (no output may be one of them): the input, the model and the
        model's record."""
        return [Path(self.input), Path(self.model), Path(self.model).parent / "flowprep_model.json"]


@dataclass
class InferSummary:
    """What a run did. ``latency_ms``: mean model time per window (batch 1)."""

    input: str
    model: str
    runner: str
    fps: float
    source_frames: int = 0
    windows: int = 0
    latency_ms: float = 0.0
    verdict: dict[str, Any] | None = None
    output: str | None = None
    output_frames: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

"""Click command of the serve stage: ``infer`` (parse, call :func:`flowprep.serve.api.infer`, print)."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from flowprep.cliparams import SafePath, count, positive
from flowprep.errors import writing
from flowprep.layout.record import json_safe
from flowprep.serve.api import InferConfig, infer


@click.command("infer")
@click.argument("input", metavar="INPUT")
@click.option(
    "--model",
    "-m",
    required=True,
    type=SafePath(path_type=Path),
    help="model.onnx from `flowprep export` (flowprep_model.json beside it) or a .pt checkpoint.",
)
@click.option(
    "--output",
    "-o",
    type=SafePath(path_type=Path),
    default=None,
    help="Annotated video to write (every input frame, latest label and score drawn).",
)
@click.option(
    "--stride", type=count(1, 100_000), default=None, help="Frames between window starts [default: half a window]."
)
@click.option(
    "--skip-frames",
    type=count(0, 1000),
    default=None,
    help="Frames skipped between two frames of a window, as actionNet [default: the model's sample rate - 1].",
)
@click.option("--top-k", "top", type=count(1, 1000), default=3, show_default=True, help="Labels per result.")
@click.option(
    "--json-out",
    default="-",
    show_default=True,
    help="JSON lines (one per window, then the clip verdict) to this file, or - for stdout.",
)
@click.option(
    "--fps", type=positive(1000), default=None, help="Frame rate of a folder of frames / to ask a camera for."
)
@click.option("--flow", default=None, help="Compute flow with this backend instead of the model's recorded one.")
@click.option("--max-frames", type=count(1), default=None, help="Stop after this many input frames.")
@click.option("--cpu", is_flag=True, help="ONNX Runtime on the CPU even if CUDA/TensorRT providers are present.")
def infer_cmd(
    input: str,
    model: Path,
    output: Path | None,
    stride: int | None,
    skip_frames: int | None,
    top: int,
    json_out: str,
    fps: float | None,
    flow: str | None,
    max_frames: int | None,
    cpu: bool,
) -> None:
    """Classify INPUT (video file, folder of frames, /dev/videoN or camera:N) with a sliding window."""
    cfg = InferConfig(
        input,
        model,
        output=output,
        stride=stride,
        skip_frames=skip_frames,
        top=top,
        fps=fps,
        flow=flow,
        max_frames=max_frames,
        providers=["CPUExecutionProvider"] if cpu else None,
    )
    with writing(Path(json_out)):
        out = sys.stdout if json_out == "-" else open(json_out, "w", encoding="utf-8")
    try:

        def emit(d: dict[str, Any]) -> None:
            with writing(Path(json_out)):  # a full disk: ENOSPC from write() names no file
                out.write(json.dumps(json_safe(d), allow_nan=False) + "\n")
                out.flush()

        s = infer(cfg, on_result=emit)
    finally:
        if out is not sys.stdout:
            with contextlib.suppress(OSError):  # already reported by emit, or nothing left to flush
                out.close()
    click.echo(
        f"{s.source_frames} frames, {s.windows} windows, {s.latency_ms:.1f} ms/window ({s.runner}), {s.seconds:.1f} s",
        err=True,
    )
    if s.verdict:
        best = s.verdict["top_k"][0]
        click.echo(
            f"clip: {best['label']} ({best['score']:.3f}, conv protocol, {s.verdict['segments']} windows)", err=True
        )
    if s.output:
        click.echo(f"annotated video: {s.output} ({s.output_frames} frames)", err=True)
    for note in s.notes:
        click.echo(f"note: {note}", err=True)


COMMANDS = [infer_cmd]

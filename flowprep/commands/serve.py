"""Click command of the serve stage: ``infer`` (parse, call :func:`flowprep.serve.api.infer`, print)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

import click

from flowprep.commands.params import SafePath, count, positive
from flowprep.errors import ConfigError, writing
from flowprep.fsio.writing import check_new_file
from flowprep.limits import json_safe
from flowprep.serve.api import infer
from flowprep.serve.config import InferConfig


@click.command("infer")
@click.argument("input", metavar="INPUT", type=SafePath(path_type=str))
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
    type=SafePath(path_type=str, allow_dash=True),
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
@click.option("--overwrite", is_flag=True, help="Let --output and --json-out replace existing files (never INPUT).")
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
    overwrite: bool,
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
        overwrite=overwrite,
    )
    out = sys.stdout if json_out == "-" else _open_json_out(Path(json_out), cfg)
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


def _open_json_out(path: Path, cfg: InferConfig) -> IO[str]:
    """``--json-out``, opened for writing after :func:`~flowprep.fsio.writing.check_new_file`. Lines are
    streamed (a camera run can be followed as it goes), so the file is not renamed into place; it is
    created new (an existing one is removed first with ``--overwrite``: no link is followed)."""
    check_new_file(path, option="--json-out", overwrite=cfg.overwrite, inputs=cfg.inputs())
    if cfg.output is not None and Path(cfg.output).resolve() == path.resolve():
        raise ConfigError(f"--json-out and --output name the same file {path}; give two files")
    with writing(path):
        if cfg.overwrite and os.path.lexists(path):
            path.unlink()
        return open(path, "x", encoding="utf-8")


COMMANDS = [infer_cmd]

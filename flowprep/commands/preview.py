"""Click command of the preview stage: ``preview``."""

from __future__ import annotations

from pathlib import Path

import click

from flowprep.commands.params import SafePath, count, finite
from flowprep.preview.config import MIN_FPS, SIDE_CHOICES


@click.command("preview")
@click.argument("dataset", type=SafePath(path_type=Path))
@click.option(
    "--out",
    "-o",
    type=SafePath(path_type=Path),
    default=None,
    help="Folder for index.html and media/ [default: <dataset>-preview next to the dataset].",
)
@click.option("--per-class", type=count(0, 1000), default=3, show_default=True, help="Clips shown per class.")
@click.option(
    "--clip",
    "clips",
    multiple=True,
    metavar="ID",
    help="Show this clip (id as in train_list.txt, e.g. train/walk/<clip>, or its name); repeatable.",
)
@click.option(
    "--side",
    type=click.Choice(SIDE_CHOICES),
    default="both",
    show_default=True,
    help="Where the per-class clips come from.",
)
@click.option(
    "--video",
    type=SafePath(path_type=Path),
    default=None,
    help="Write the one --clip's side-by-side video (RGB | flow | u | v) to this .mp4 instead of a page.",
)
@click.option("--height", type=count(16, 1080), default=128, show_default=True, help="Panel height in pixels (even).")
@click.option("--fps", type=finite(MIN_FPS, 120), default=10.0, show_default=True, help="Frame rate of the videos.")
@click.option(
    "--max-frames", type=count(1, 100_000), default=48, show_default=True, help="Frames per video, from the start."
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--overwrite", is_flag=True, help="Let --video replace an existing file.")
def preview_cmd(
    dataset: Path,
    out: Path | None,
    per_class: int,
    clips: tuple[str, ...],
    side: str,
    video: Path | None,
    height: int,
    fps: float,
    max_frames: int,
    no_progress: bool,
    overwrite: bool,
) -> None:
    """Write a browsable page of DATASET (open its index.html from disk): the record's summary, and per
    class a few clips as looping videos of RGB | flow colour wheel | u | v."""
    from flowprep.errors import ConfigError
    from flowprep.preview.api import preview
    from flowprep.preview.config import PreviewConfig

    try:
        cfg = PreviewConfig(
            dataset=dataset,
            out=out,
            per_class=per_class,
            clips=clips,
            side=side,
            video=video,
            height=height,
            fps=fps,
            max_frames=max_frames,
            progress=not no_progress,
            overwrite=overwrite,
        )
    except ConfigError as exc:  # contradictory or out-of-range options: a usage error
        raise click.UsageError(str(exc)) from exc
    s = preview(cfg)
    for note in s.notes:
        click.echo(f"note: {note}", err=True)
    what = f"{s.clips} clip(s), {s.frames} frames, {s.media_bytes / 1024:.0f} KiB of video, {s.seconds:.1f} s"
    if s.index is None:
        click.echo(f"video: {s.out} ({what})")
    else:
        click.echo(f"preview: {s.index} ({what}); open it in a browser")


COMMANDS = [preview_cmd]

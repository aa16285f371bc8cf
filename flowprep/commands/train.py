"""CLI: ``flowprep train`` and ``flowprep evaluate``: parse, call :mod:`flowprep.train.api`, print.

Torch is imported only when a command runs (``flowprep.train.config`` and ``.spec`` are torch-free).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from flowprep.commands.params import CommaList, SafePath, count, finite, positive, seed
from flowprep.errors import ConfigError
from flowprep.layout.base import SIDES
from flowprep.loader.spec import (
    ARCHS,
    CROPS,
    DEVICES,
    EVAL_MODES,
    FRAMES_RANGE,
    INPUT_SIZE_RANGE,
    OPTIMIZERS,
    SAMPLE_RATE_RANGE,
    STREAMS,
)
from flowprep.train.config import EvalConfig, TrainConfig, out_inside_dataset, resolve_side


@click.command("train")
@click.argument("dataset", type=SafePath(path_type=Path, file_okay=False))
@click.option(
    "--out",
    type=SafePath(path_type=Path, file_okay=False),
    required=True,
    help="Run folder: last.pt, best.pt, log.jsonl.",
)
@click.option("--arch", type=click.Choice(ARCHS), default="2d", show_default=True)
@click.option(
    "--modality",
    type=click.Choice(STREAMS),
    default="rgb",
    show_default=True,
    help="rgb, of (optical flow u/v) or joint (both streams, logits averaged).",
)
@click.option("--frames", type=count(*FRAMES_RANGE), default=32, show_default=True, help="T, frames per clip.")
@click.option(
    "--sample-rate", type=count(*SAMPLE_RATE_RANGE), default=1, show_default=True, help="Take every n-th frame."
)
@click.option(
    "--input-size",
    type=count(*INPUT_SIZE_RANGE),
    default=224,
    show_default=True,
    help="S: inputs are S x S (32 to 1024).",
)
@click.option("--epochs", type=count(1, 100000), default=30, show_default=True)
@click.option("--batch-size", type=count(1, 4096), default=8, show_default=True, help="Per process.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="sgd", show_default=True)
@click.option("--lr", type=positive(10), default=0.01, show_default=True)
@click.option("--momentum", type=finite(0, 1, hi_open=True), default=0.9, show_default=True, help="SGD only.")
@click.option("--weight-decay", type=finite(0, 1), default=5e-4, show_default=True)
@click.option(
    "--lr-steps",
    type=CommaList(count(1, 100000)),
    default="15,25",
    show_default=True,
    help="Epochs after which the lr is multiplied by --lr-decay (comma list, may be empty).",
)
@click.option("--lr-decay", type=finite(0, 1, lo_open=True), default=0.1, show_default=True)
@click.option(
    "--clip-grad", type=finite(0), default=0.0, show_default=True, help="Max gradient L2 norm (0: no clipping)."
)
@click.option("--dropout", type=finite(0, 1, hi_open=True), default=0.5, show_default=True)
@click.option(
    "--crop", type=click.Choice(CROPS), default="random", show_default=True, help="Training crop (validation: center)."
)
@click.option(
    "--hflip",
    type=finite(0, 1),
    default=0.5,
    show_default=True,
    help="Horizontal flip probability (flow: u negated). 0 for direction-sensitive classes.",
)
@click.option("--amp/--no-amp", default=True, show_default=True, help="Mixed precision (CUDA only).")
@click.option("--workers", type=count(0, 256), default=2, show_default=True, help="Data-loader processes.")
@click.option("--seed", type=seed(), default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out from last.pt.")
@click.option(
    "--imagenet",
    type=SafePath(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Initialise from a torchvision ResNet-18 ImageNet state_dict file (not downloaded).",
)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--shuffle-labels", is_flag=True, help="Sanity check: train on permuted labels.")
@click.option(
    "--stream",
    is_flag=True,
    help="Packed dataset: read the shards sequentially (shard order and a buffer shuffled) instead of "
    "clips at random through the index.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def train_cmd(dataset: Path, out: Path, lr_steps: list[int], no_progress: bool, **opts: Any) -> None:
    """Train a ResNet-18 2D/3D action-recognition model on a dataset built by `flowprep build`.

    Several GPUs (or CPU processes): torchrun --nproc_per_node N -m flowprep train ...
    """
    inside = out_inside_dataset(dataset, out)
    if inside:
        raise click.BadParameter(inside, param_hint="'--out'")
    cfg = TrainConfig(dataset=dataset, out=out, lr_steps=lr_steps, progress=not no_progress, **opts)
    from flowprep.train.api import train  # lazy: torch, once the options are known to be good

    res = train(cfg)
    if res.rank == 0:
        click.echo(
            f"best val top-1 {res.best_acc:.4f}; {res.clips_per_s:.1f} clips/s; "
            f"checkpoints {res.last}, {res.best}; log {res.log}"
        )


@click.command("evaluate")
@click.argument("checkpoint", type=SafePath(path_type=Path, dir_okay=False))
@click.argument("dataset", type=SafePath(path_type=Path, file_okay=False))
@click.option(
    "--mode",
    type=click.Choice(EVAL_MODES),
    default="center",
    show_default=True,
    help="center: T middle frames; conv: 10 segments, scores averaged; all: both.",
)
@click.option(
    "--out",
    type=SafePath(path_type=Path, file_okay=False),
    default=None,
    help="Report folder (default: <checkpoint dir>/eval-<side>).",
)
@click.option(
    "--side",
    type=click.Choice(SIDES),
    default=None,
    help="Side of the dataset when DATASET is its root (default val); for a side folder "
    "it is that folder's and may not contradict it.",
)
@click.option("--batch-size", type=count(1, 4096), default=8, show_default=True)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--arch", type=click.Choice(ARCHS), default=None, help="Fail unless the checkpoint is this.")
@click.option("--modality", type=click.Choice(STREAMS), default=None, help="Fail unless the checkpoint is this.")
@click.option(
    "--allow-recipe-mismatch",
    is_flag=True,
    help="Evaluate (with a warning) even if DATASET was built with another flow backend, "
    "encoding or decode settings than the checkpoint's training data.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def evaluate_cmd(checkpoint: Path, dataset: Path, side: str | None, no_progress: bool, **opts: Any) -> None:
    """Evaluate CHECKPOINT on DATASET (a built dataset root or its val/train folder)."""
    try:
        side = resolve_side(dataset, side)
    except ConfigError as exc:  # a contradiction between the arguments: a usage error
        raise click.BadParameter(str(exc), param_hint="'--side'") from exc
    cfg = EvalConfig(checkpoint, dataset, side=side, progress=not no_progress, **opts)
    from flowprep.train.api import evaluate  # lazy: torch

    rep = evaluate(cfg)
    for m, res in rep.modes.items():
        click.echo(
            f"{m}: top-1 {res['top1']:.4f}  mean class accuracy {res['mean_class_accuracy']:.4f}  "
            f"({res['clips']} clips)"
        )
    click.echo(f"report: {rep.report_path}")


COMMANDS = [train_cmd, evaluate_cmd]

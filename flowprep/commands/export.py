"""Click command of the export stage: ``export`` (parse, call :func:`flowprep.export.api.export`, print)."""

from __future__ import annotations

from pathlib import Path

import click

from flowprep.commands.params import SafePath, count
from flowprep.export.config import ExportConfig


@click.command("export")
@click.argument("checkpoint", type=SafePath(path_type=Path))
@click.option("--out", "-o", type=SafePath(path_type=Path), required=True, help="Deploy folder to write.")
@click.option("--fp16", is_flag=True, help="Also write and check model_fp16.onnx; fp16 engine and DeepStream mode.")
@click.option(
    "--engine",
    is_flag=True,
    help="Build a TensorRT engine (needs the tensorrt package and a GPU; else prints the trtexec command).",
)
@click.option(
    "--min-batch", type=count(1, 4096), default=1, show_default=True, help="TensorRT profile: smallest batch."
)
@click.option(
    "--opt-batch", type=count(1, 4096), default=4, show_default=True, help="TensorRT profile: batch tuned for."
)
@click.option(
    "--max-batch",
    type=count(1, 4096),
    default=8,
    show_default=True,
    help="TensorRT profile's largest batch; Triton max_batch_size.",
)
@click.option(
    "--deepstream-batch",
    "ds_batch",
    type=count(1, 4096),
    default=4,
    show_default=True,
    help="Sequences per DeepStream inference (RGB models).",
)
@click.option("--triton-name", default=None, help="Triton model name (default: the --out folder's name).")
def export_cmd(
    checkpoint: Path,
    out: Path,
    fp16: bool,
    engine: bool,
    min_batch: int,
    opt_batch: int,
    max_batch: int,
    ds_batch: int,
    triton_name: str | None,
) -> None:
    """Export a trained CHECKPOINT: ONNX (checked against PyTorch), labels, model record, Triton
    config, DeepStream configs (RGB models) and, on a GPU machine, a TensorRT engine."""
    cfg = ExportConfig(
        checkpoint,
        out,
        fp16=fp16,
        engine=engine,
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        ds_batch=ds_batch,
        triton_name=triton_name,
    )
    from flowprep.export.api import export  # lazy: torch and onnx, once the options are known to be good

    s = export(cfg)
    click.echo(f"exported {s.arch} {s.modality} model to {s.out}")
    for kind, p in s.parity.items():
        click.echo(
            f"  parity {kind}: ONNX Runtime vs PyTorch max abs diff {p['max_abs_diff']:.3g} on logits up to "
            f"{p['max_abs_logit']:.3g}: relative {p['max_rel_diff']:.3g} (tolerance {p['tolerance']:.3g}) ok"
        )
    click.echo("  files: " + ", ".join(s.files))
    if s.deepstream_note:
        click.echo(f"  DeepStream: no files: {s.deepstream_note}")
    if s.engine:
        click.echo(f"  TensorRT engine: {s.engine}")
    elif engine:
        click.echo(f"  TensorRT: {s.engine_note}")
    else:
        click.echo("  TensorRT: run build_engine.sh on a GPU machine, or add --engine there")


COMMANDS = [export_cmd]

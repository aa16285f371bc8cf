"""CLI: ``flowprep doctor``."""

from __future__ import annotations

from pathlib import Path

import click

from flowprep.commands.params import SafePath


def _probe_writable(path: Path, overwrite: bool) -> None:
    """Fail now, not after minutes of GPU checks, when the report cannot be written where asked (or
    would replace a file without ``--overwrite``)."""
    from flowprep.errors import writing
    from flowprep.fsio.writing import AtomicFile, check_new_file

    check_new_file(path, option="--json-out", overwrite=overwrite)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    with AtomicFile(path) as probe:  # OutputError naming the file on a read-only or full disk
        probe.file.write(b"{}\n")
        probe.file.flush()
        probe.discard()  # a probe: the report is written at the end


@click.command("doctor")
@click.option(
    "--json-out",
    type=SafePath(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the full report (every number) as JSON here.",
)
@click.option("--quick", is_flag=True, help="Small inputs and fewer combinations (seconds, not minutes).")
@click.option(
    "--workdir",
    type=SafePath(file_okay=False, path_type=Path),
    default=None,
    help="Keep the scratch files (release, dataset, runs, deploy) in a new run-NNN folder here instead of a "
    "temporary folder.",
)
@click.option("--overwrite", is_flag=True, help="Let --json-out replace an existing file.")
def doctor(json_out: Path | None, quick: bool, workdir: Path | None, overwrite: bool) -> None:
    """Check every GPU claim on this machine: driver, GPUs, NVOF (accuracy, speed, multi-GPU build),
    CUDA training (AMP, DDP), TensorRT, ONNX Runtime CUDA, inference, VPI. What cannot run here is
    listed as skipped with the reason. Exit status 1 when a check that could run failed."""
    from flowprep.doctor.checks import CHECKS
    from flowprep.doctor.framework import format_row, format_table, run_checks, write_report

    if json_out is not None:
        _probe_writable(json_out, overwrite)
    summary = run_checks(CHECKS, quick=quick, workdir=workdir, progress=lambda r: click.echo(format_row(r), err=True))
    click.echo(format_table(summary))
    if json_out is not None:
        click.echo(f"report: {write_report(summary, json_out)}")
    if summary.exit_code:
        raise SystemExit(summary.exit_code)


COMMANDS = [doctor]

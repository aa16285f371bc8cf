"""Commands on a dataset: ``verify`` and ``finalize`` (a built or sharded output folder), ``pack`` and
``unpack`` (folder <-> shards), ``stats`` (what the clip names of a release or dataset say)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from flowprep.builder.folder import BuildFolder
from flowprep.commands.params import ByteSize, CommaList, SafePath, count
from flowprep.layout.packed import DEFAULT_SHARD_SIZE


@click.command("verify")
@click.argument("dataset", type=SafePath(path_type=Path))
@click.option("--quick", is_flag=True, help="Read only the first and last image of each folder.")
@click.option("-j", "--jobs", type=count(1, 1024), default=None, help="Processes for reading images [all cores].")
def verify_cmd(dataset: Path, quick: bool, jobs: int | None) -> None:
    """Check a built dataset against its record; exit 1 on any problem."""
    from flowprep.layout.record import RECORD_NAME
    from flowprep.layout.verify import format_table, verify

    if not (dataset / RECORD_NAME).exists() and BuildFolder(dataset).build_state.is_file():
        # A build whose record is not written yet (shards still running, or one missing).
        from flowprep.builder.finalize import finalize_from_state

        _report_missing(finalize_from_state(dataset, write=False), dataset)
        click.echo(f"all clips are built but the record is not written: run `flowprep finalize {dataset}`", err=True)
        raise click.exceptions.Exit(1)
    report = verify(dataset, quick=quick, jobs=jobs or os.cpu_count() or 1)
    click.echo(format_table(report))
    if report.problems:
        click.echo(f"{len(report.problems)} problem(s):", err=True)
        for p in report.problems[:200]:
            click.echo(f"  {p}", err=True)
        if len(report.problems) > 200:
            click.echo(f"  ... and {len(report.problems) - 200} more", err=True)
        raise click.exceptions.Exit(1)
    click.echo("ok")


@click.command("stats")
@click.argument("source", type=SafePath(path_type=Path))
@click.option("--classes", type=CommaList(), default=None, help="Comma-separated classes [all].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats_cmd(source: Path, classes: list[str] | None, as_json: bool) -> None:
    """What the clip names say per class, of a release (folder/archive) or a built dataset: HMDB51's
    tags (body part, camera motion, people, viewpoint, quality) or UCF101's groups (clips per group)."""
    import json

    from flowprep.datasets.stats import format_name_stats, name_stats

    st = name_stats(source, classes or None)
    click.echo(json.dumps(st, indent=2, sort_keys=True, allow_nan=False) if as_json else format_name_stats(st))


def _report_missing(result, out: Path) -> None:
    """Print the clips a (sharded) build has not finished and exit 1; return if there are none."""
    if not result.missing:
        return
    click.echo(f"{len(result.missing)} of {result.total} clip(s) not finished in {out}:", err=True)
    for cid, why in result.missing[:100]:
        owner = f" [shard {result.owner[cid]}]" if cid in result.owner else ""
        click.echo(f"  {cid}{owner}: {why}", err=True)
    if len(result.missing) > 100:
        click.echo(f"  ... and {len(result.missing) - 100} more", err=True)
    shards = sorted(set(result.owner.values()), key=lambda s: int(s.split("/")[0]))
    if shards:
        click.echo(
            f"re-run shard(s) {', '.join(shards)} (the same `flowprep build ... --shard K/N`; finished clips are kept)",
            err=True,
        )
    click.echo("or write the record without them: `flowprep finalize --allow-missing`", err=True)
    raise click.exceptions.Exit(1)


@click.command("finalize")
@click.argument("out", type=SafePath(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--allow-missing", is_flag=True, help="Write the record even if clips are missing (they are recorded as failed)."
)
@click.option(
    "--source",
    type=SafePath(path_type=Path),
    default=None,
    help="The release's path on this node, if not where the build read it.",
)
@click.option(
    "--splits",
    type=SafePath(path_type=Path),
    default=None,
    help="The split files' path on this node, if not where the build read them.",
)
@click.option(
    "--train-list",
    type=SafePath(path_type=Path),
    default=None,
    help="The --train-list's path on this node (with --val-list), if not where the build read it.",
)
@click.option("--val-list", type=SafePath(path_type=Path), default=None, help="The --val-list's path on this node.")
def finalize_cmd(
    out: Path,
    allow_missing: bool,
    source: Path | None,
    splits: Path | None,
    train_list: Path | None,
    val_list: Path | None,
) -> None:
    """Write the record, label map and split lists of a sharded build in OUT once all parts are in;
    exit 1 naming the missing clips otherwise."""
    from flowprep.builder.finalize import finalize_from_state

    if (train_list is None) != (val_list is None):
        raise click.UsageError("give both --train-list and --val-list")
    lists = (train_list, val_list) if train_list is not None and val_list is not None else None
    result = finalize_from_state(out, allow_missing=allow_missing, source=source, splits=splits, lists=lists)
    if not result.record_written:
        _report_missing(result, out)
    done = result.total - len(result.missing)
    click.echo(f"record written: {done} of {result.total} clip(s) finished ({out})")
    if result.missing:
        click.echo(f"{len(result.missing)} clip(s) recorded as failed; `flowprep verify {out}` lists them", err=True)
        raise click.exceptions.Exit(1)


@click.command("pack")
@click.argument("dataset", type=SafePath(path_type=Path))
@click.option("--out", "-o", type=SafePath(path_type=Path), required=True, help="Folder for the packed dataset.")
@click.option("--shard-size", type=ByteSize(), default=DEFAULT_SHARD_SIZE, show_default="1G", help="Target shard size.")
def pack_cmd(dataset: Path, out: Path, shard_size: int) -> None:
    """Pack a built folder dataset into tar shards (the output of `flowprep build --pack webdataset`)."""
    from flowprep.builder.convert import pack_dataset

    s = pack_dataset(dataset, out, shard_size)
    click.echo(f"{s.clips} clip(s) in {len(s.shards)} shard(s), {s.bytes / 1e9:.2f} GB: {out}")


@click.command("unpack")
@click.argument("dataset", type=SafePath(path_type=Path))
@click.option("--out", "-o", type=SafePath(path_type=Path), required=True, help="Folder for the clip folders.")
def unpack_cmd(dataset: Path, out: Path) -> None:
    """Write a packed dataset back as clip folders (byte for byte those of a folder build)."""
    from flowprep.builder.convert import unpack_dataset

    s = unpack_dataset(dataset, out)
    click.echo(f"{s.clips} clip(s) unpacked: {out}")


COMMANDS = [verify_cmd, stats_cmd, finalize_cmd, pack_cmd, unpack_cmd]

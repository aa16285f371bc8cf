"""Click commands of the build stage: build, build-hmdb5, build-ucf101, verify, stats, finalize."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import click

from flowprep.builder.config import DEFAULT_MAX_CLIP_BYTES, DEFAULT_SCHEDULER_TIMEOUT, scheduler_problem
from flowprep.builder.folder import BuildFolder
from flowprep.commands.params import (
    ByteSize,
    CommaList,
    GpuList,
    SafePath,
    Shard,
    Size,
    byte_count,
    count,
    finite,
    positive,
    seed,
)
from flowprep.layout.packed import DEFAULT_SHARD_SIZE
from flowprep.layout.record import RECORD_NAME
from flowprep.layout.registry import DEFAULT_LAYOUT, LAYOUT_NAMES, get_layout
from flowprep.limits import MAX_SIDE, MIN_SIDE

#: failed clips listed on the console (all are in the record)
MAX_FAILED_SHOWN = 20


def _params(values: tuple[str, ...]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}")
        for cast in (int, float):
            try:
                out[key] = cast(raw)
                break
            except ValueError:
                continue
        else:
            out[key] = raw
        if out[key] != out[key] or out[key] in (float("inf"), float("-inf")):  # nan, inf: not JSON
            raise click.BadParameter(f"{key}={raw}: not a finite number", param_hint="'--flow-param'")
    return out


def _checked_params(flow: str, values: tuple[str, ...]) -> dict[str, object]:
    """``--flow-param`` values parsed and checked against the backend's declarations (a usage error,
    exit 2, naming the backend, parameter, value and allowed range). ``auto`` and unknown names are
    checked once the backend is known (exit 1)."""
    from flowprep.errors import BackendNotInstalledError, ConfigError
    from flowprep.flow.registry import BACKENDS, check_params

    params = _params(values)
    if params and flow in BACKENDS:
        try:
            check_params(flow, params)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="'--flow-param'") from None
        except BackendNotInstalledError:
            pass  # the build says what to install, with the parameters checked where it runs
    return params


# Long on purpose: one flat list of click options, read top to bottom like --help; splitting it would scatter them.
def build_options(f):
    """Options shared by ``build``, ``build-hmdb5`` and ``build-ucf101``."""
    opts = [
        click.option("--out", "-o", type=SafePath(path_type=Path), required=True, help="Output dataset folder."),
        click.option("--layout", type=click.Choice(LAYOUT_NAMES), default=DEFAULT_LAYOUT, show_default=True),
        click.option("--modality", type=click.Choice(["rgb", "flow", "both"]), default="both", show_default=True),
        click.option(
            "--flow",
            default="tvl1",
            show_default=True,
            help="Flow backend: tvl1, tvl1-fast, dis, farneback, nvof, vpi or auto (see `flowprep backends`).",
        ),
        click.option(
            "--flow-param",
            multiple=True,
            metavar="NAME=VALUE",
            help="Backend parameter, repeatable (e.g. --flow-param preset=fast).",
        ),
        click.option(
            "--encoding",
            type=click.Choice(["fixed", "maxrad"]),
            default="fixed",
            show_default=True,
            help="Flow to 8 bit: fixed bound (I3D/TSN/mmaction2) or TAO's per-frame max radius.",
        ),
        click.option("--bound", type=positive(), default=20.0, show_default=True, help="Clip bound in pixels (fixed)."),
        click.option("--flow-format", type=click.Choice(["jpg", "png"]), default="jpg", show_default=True),
        click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True),
        click.option(
            "--rgb-format",
            type=click.Choice(["png", "jpg"]),
            default=None,
            help="RGB frame format [tao: png, mmaction2: jpg].",
        ),
        click.option(
            "--val-ratio",
            type=finite(0, 1, lo_open=True, hi_open=True),
            default=0.1,
            show_default=True,
            help="Share of each class's clips for validation.",
        ),
        click.option("--seed", type=seed(), default=0, show_default=True),
        click.option(
            "--split-by",
            type=click.Choice(["group", "clip"]),
            default="group",
            show_default=True,
            help="group: clips of one source video stay on one side; clip: plain random split.",
        ),
        click.option(
            "--short-side",
            type=count(MIN_SIDE, MAX_SIDE),
            default=None,
            help="Resize so the shorter side has this many pixels.",
        ),
        click.option(
            "--size",
            type=Size(),
            default=None,
            help=f"Resize every frame to exactly WxH ({MIN_SIDE} to {MAX_SIDE} px a side).",
        ),
        click.option("--frame-step", type=count(), default=1, show_default=True, help="Keep every N-th frame."),
        click.option("-j", "--jobs", type=count(1, 1024), default=None, help="Worker processes [all cores]."),
        click.option("--force", is_flag=True, help="Replace a build of another configuration in --out."),
        click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True),
        click.option("--scheduler", default=None, help="Dask scheduler address (tcp://host:8786) for --engine dask."),
        click.option(
            "--scheduler-timeout",
            type=positive(86400),
            default=DEFAULT_SCHEDULER_TIMEOUT,
            show_default=True,
            help="Seconds to wait for the Dask scheduler to answer.",
        ),
        click.option(
            "--max-clip-bytes",
            type=byte_count(),
            default=DEFAULT_MAX_CLIP_BYTES,
            show_default=True,
            help="A clip larger than this is not read (it fails with the reason).",
        ),
        click.option(
            "--shard",
            type=Shard(),
            default=None,
            help="Build only part K of N (job arrays); the last part to finish writes the record, "
            "or run `flowprep finalize`.",
        ),
        click.option(
            "--gpus",
            type=GpuList(),
            default=None,
            help="GPU ids for GPU flow backends: 0,1,2,3 or all; each worker process binds one "
            "[the devices CUDA_VISIBLE_DEVICES/Slurm give]. CPU backends ignore it.",
        ),
        click.option(
            "--allow-missing-clips",
            is_flag=True,
            help="Build even if split lists name clips the release lacks (warned; the record lists them) "
            "[an error: the split would not be the given one].",
        ),
        click.option(
            "--pack",
            type=click.Choice(["webdataset"]),
            default=None,
            help="Write the dataset as tar shards (WebDataset's convention) instead of clip folders.",
        ),
        click.option(
            "--shard-size",
            type=ByteSize(),
            default=DEFAULT_SHARD_SIZE,
            show_default="1G",
            help="Target size of one shard with --pack (K, M, G suffixes).",
        ),
        click.option("--no-progress", is_flag=True, help="No progress bar."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _config_kwargs(kw: dict) -> dict:
    from flowprep.flow.encoding import FlowEncoding

    if kw["size"] is not None and kw["short_side"] is not None:
        raise click.UsageError("give --size or --short-side, not both")
    if kw["scheduler"] is not None and kw["engine"] != "dask":
        raise click.UsageError("--scheduler goes with --engine dask")
    if kw["scheduler"] is not None and scheduler_problem(kw["scheduler"]):
        raise click.UsageError(str(scheduler_problem(kw["scheduler"])))
    if kw.get("official_split") is not None and kw.get("splits") is None:
        raise click.UsageError("--official-split needs --splits (the folder or archive with the split files)")
    lists = (kw.get("train_list"), kw.get("val_list"))
    if (lists[0] is None) != (lists[1] is None):
        raise click.UsageError("give both --train-list and --val-list (the lists keep the split exactly)")
    if lists[0] is not None and (kw.get("official_split") is not None or kw.get("splits") is not None):
        raise click.UsageError("give --train-list/--val-list or --splits/--official-split, not both")
    layout = kw["layout"]
    return dict(
        out=kw["out"],
        layout=layout,
        modality=kw["modality"],
        flow=kw["flow"],
        flow_params=_checked_params(kw["flow"], kw["flow_param"]),
        encoding=FlowEncoding(
            mode=kw["encoding"], bound=kw["bound"], image_format=kw["flow_format"], jpeg_quality=kw["jpeg_quality"]
        ),
        rgb_format=kw["rgb_format"] or get_layout(layout).default_rgb_format,
        val_ratio=kw["val_ratio"],
        seed=kw["seed"],
        split_by=kw["split_by"],
        short_side=kw["short_side"],
        size=kw["size"],
        frame_step=kw["frame_step"],
        jobs=kw["jobs"],
        force=kw["force"],
        engine=kw["engine"],
        scheduler=kw["scheduler"],
        shard=kw["shard"],
        gpus=kw["gpus"],
        progress=not kw["no_progress"],
        max_clip_bytes=kw["max_clip_bytes"],
        scheduler_timeout=kw["scheduler_timeout"],
        allow_missing_clips=kw["allow_missing_clips"],
        pack=kw["pack"],
        shard_size=kw["shard_size"],
    )


def _print_plan(plan) -> None:
    counts = plan.counts()
    width = max([5] + [len(c) for c in counts])
    click.echo(f"{'class':<{width}}  {'train':>5}  {'val':>5}")
    for cls in plan.classes:
        click.echo(f"{cls:<{width}}  {counts[cls]['train']:>5}  {counts[cls]['val']:>5}")
    click.echo(
        f"{'total':<{width}}  {sum(c['train'] for c in counts.values()):>5}  "
        f"{sum(c['val'] for c in counts.values()):>5}"
    )
    method = plan.split.get("method")
    if method in ("lists", "folders") or plan.split.get("convention"):
        where = plan.split.get("lists") or plan.split.get("folders") or {}
        click.echo(f"split: as given, train = {where.get('train')}, val = {where.get('val')}")
    if plan.split.get("classes_from"):
        click.echo(f"label order: {plan.split['classes_from']}")
    if not plan.excluded:
        return
    skipped = sum("(skipped: " in e for e in plan.excluded)
    named = f"{skipped} skipped: unreadable or with a name that cannot be a folder"
    reasons = Counter(e.rpartition(" (")[2].rstrip(")") for e in plan.excluded if "(skipped: " not in e)
    if not set(reasons) <= {"code 0 in the split file", "not in the split file"}:
        parts = [f"{n} {r}" for r, n in sorted(reasons.items())]
        parts += [named] if skipped else []
        click.echo(f"({len(plan.excluded)} clip(s) left out: {', '.join(parts)})")
        return
    unused = reasons["code 0 in the split file"]
    click.echo(
        f"({len(plan.excluded)} clip(s) left out: {unused} marked unused (0) by the split files, "
        f"{len(plan.excluded) - unused - skipped} not listed in them, {named})"
    )


def _report(summary) -> None:
    click.echo(
        f"{summary.built} clip(s) built, {summary.existing} already done, {len(summary.failed)} failed; "
        f"{summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} frames/s)"
    )
    if summary.flow:
        click.echo(f"flow: {summary.flow['name']} on {summary.flow['device']}")
    if summary.shards_written:
        click.echo(f"packed into {len(summary.shards_written)} new shard(s) in {summary.pack_seconds:.1f} s")
    if not summary.record_written:
        k, n = summary.shard
        click.echo(
            f"shard {k}/{n} done; {summary.pending} clip(s) of the dataset are not finished yet. "
            f"The record is written when all parts are in (by the last shard to finish, or "
            f"`flowprep finalize {summary.out}`)"
        )
    else:
        click.echo(f"dataset: {summary.out}")
    if summary.empty_sides:
        click.echo(f"warning: no clip built for {', '.join(summary.empty_sides)}", err=True)
    if summary.decode_errors:
        shown = ", ".join(f"{cid} ({n} lost)" for cid, n in summary.decode_errors[:5])
        more = f" and {len(summary.decode_errors) - 5} more" if len(summary.decode_errors) > 5 else ""
        click.echo(
            f"warning: {len(summary.decode_errors)} clip(s) kept only the frames that could be decoded "
            f"(recorded as decode_errors): {shown}{more}",
            err=True,
        )
    if summary.failed:
        click.echo(f"{len(summary.failed)} clip(s) failed:", err=True)
        for cid, why in summary.failed[:MAX_FAILED_SHOWN]:
            click.echo(f"  {cid}: {why}", err=True)
        if len(summary.failed) > MAX_FAILED_SHOWN:
            # 10,000 broken members would bury the summary; the record keeps every reason
            click.echo(
                f"  ... and {len(summary.failed) - MAX_FAILED_SHOWN} more (the record, "
                f"{summary.out}/{RECORD_NAME}, lists each with its reason)",
                err=True,
            )
        raise click.exceptions.Exit(1)


@click.command("build")
@click.argument("source", type=SafePath(path_type=Path))
@click.option(
    "--classes",
    type=CommaList(nonempty=True),
    default=None,
    help="Comma-separated classes, in label order [all, sorted; a classInd.txt or labelled lists fix the order].",
)
@click.option(
    "--splits",
    type=SafePath(path_type=Path),
    default=None,
    help="Folder or archive with HMDB51's split files or UCF101's lists (for --official-split; "
    "UCF101's classInd.txt also sets the class order).",
)
@click.option(
    "--official-split",
    type=click.IntRange(1, 3),
    default=None,
    help="Use the official split 1, 2 or 3 of the --splits files (HMDB51 or UCF101).",
)
@click.option(
    "--train-list",
    type=SafePath(path_type=Path),
    default=None,
    help="File of the training clips ('path [label]' lines, whitespace or CSV): the split is kept exactly.",
)
@click.option("--val-list", type=SafePath(path_type=Path), default=None, help="File of the validation clips.")
@build_options
def build_cmd(
    source: Path,
    classes: list[str] | None,
    splits: Path | None,
    official_split: int | None,
    train_list: Path | None,
    val_list: Path | None,
    **kw,
) -> None:
    """Build a dataset from SOURCE: a folder of class folders of videos, or a zip/tar/RAR of them
    (also one archive per class). A SOURCE already split into train/<class>/ and val/<class>/
    folders keeps its split; --train-list/--val-list keep the lists' split."""
    from flowprep.builder.api import build
    from flowprep.builder.config import BuildConfig

    options = _config_kwargs(
        dict(kw, splits=splits, official_split=official_split, train_list=train_list, val_list=val_list)
    )
    cfg = BuildConfig(
        source=source,
        classes=classes,
        splits_source=splits,
        official_split=official_split,
        train_list=train_list,
        val_list=val_list,
        **options,
    )
    _report(build(cfg, on_plan=_print_plan))


@click.command("build-hmdb5")
@click.option(
    "--archive",
    type=SafePath(path_type=Path),
    required=True,
    help="hmdb51_org.rar (or the folder it was unpacked to).",
)
@click.option(
    "--splits",
    type=SafePath(path_type=Path),
    default=None,
    help="test_train_splits.rar (or its folder); needed for --official-split.",
)
@click.option("--official-split", type=click.IntRange(1, 3), default=None, help="Use HMDB51's split 1, 2 or 3.")
@click.option(
    "--classes", type=CommaList(nonempty=True), default=None, help="Override the HMDB5 classes (comma-separated)."
)
@build_options
def build_hmdb5_cmd(
    archive: Path, splits: Path | None, official_split: int | None, classes: list[str] | None, **kw
) -> None:
    """Build HMDB5 (walk, run, ride_bike, fall_floor, push) from the HMDB51 release, in the TAO layout."""
    from flowprep.builder.api import build_hmdb5

    options = {
        k: v for k, v in _config_kwargs(dict(kw, splits=splits, official_split=official_split)).items() if k != "out"
    }
    if classes is not None:
        options["classes"] = classes
    _report(
        build_hmdb5(archive, kw["out"], splits=splits, official_split=official_split, on_plan=_print_plan, **options)
    )


@click.command("build-ucf101")
@click.option(
    "--archive",
    type=SafePath(path_type=Path),
    required=True,
    help="UCF101.rar (or the folder it was unpacked to).",
)
@click.option(
    "--splits",
    type=SafePath(path_type=Path),
    required=True,
    help="UCF101TrainTestSplits-RecognitionTask.zip (or its folder): classInd.txt gives the classes "
    "and label order, trainlist0N/testlist0N the official splits.",
)
@click.option(
    "--official-split",
    type=click.IntRange(1, 3),
    default=None,
    help="Use UCF101's split 1, 2 or 3 (trainlist0N -> train, testlist0N -> val) [the group-aware --val-ratio split].",
)
@click.option(
    "--classes",
    type=CommaList(nonempty=True),
    default=None,
    help="A subset of the classes (comma-separated; kept in classInd.txt's order) [all 101].",
)
@build_options
def build_ucf101_cmd(archive: Path, splits: Path, official_split: int | None, classes: list[str] | None, **kw) -> None:
    """Build UCF101 from its release, with its classes in classInd.txt's order and, with
    --official-split, its official train/test split exactly."""
    from flowprep.builder.api import build_ucf101

    options = {
        k: v for k, v in _config_kwargs(dict(kw, splits=splits, official_split=official_split)).items() if k != "out"
    }
    _report(
        build_ucf101(
            archive,
            kw["out"],
            splits=splits,
            official_split=official_split,
            classes=classes,
            on_plan=_print_plan,
            **options,
        )
    )


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


COMMANDS = [build_cmd, build_hmdb5_cmd, build_ucf101_cmd, verify_cmd, stats_cmd, finalize_cmd, pack_cmd, unpack_cmd]

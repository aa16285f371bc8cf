"""The build commands: ``build``, ``build-hmdb5``, ``build-ucf101``, and the build options they share."""

from __future__ import annotations

from pathlib import Path

import click

from flowprep.builder.config import DEFAULT_MAX_CLIP_BYTES, DEFAULT_SCHEDULER_TIMEOUT, scheduler_problem
from flowprep.commands.build_report import print_plan, print_summary
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
from flowprep.layout.registry import DEFAULT_LAYOUT, LAYOUT_NAMES, get_layout
from flowprep.limits import MAX_SIDE, MIN_SIDE


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
    print_summary(build(cfg, on_plan=print_plan))


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
    print_summary(
        build_hmdb5(archive, kw["out"], splits=splits, official_split=official_split, on_plan=print_plan, **options)
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
    print_summary(
        build_ucf101(
            archive,
            kw["out"],
            splits=splits,
            official_split=official_split,
            classes=classes,
            on_plan=print_plan,
            **options,
        )
    )


COMMANDS = [build_cmd, build_hmdb5_cmd, build_ucf101_cmd]

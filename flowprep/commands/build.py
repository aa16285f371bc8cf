"""The build commands: ``build``, ``build-hmdb5``, ``build-ucf101``, and the build options they share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import click

from flowprep.builder.config import BuildConfig
from flowprep.builder.options import OPTIONS, from_cli
from flowprep.builder.optionspec import FIELD_DEFAULT, Flag
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
from flowprep.errors import ConfigError, OptionError

F = TypeVar("F", bound=Callable[..., Any])


#: the click parameter types a :class:`~flowprep.builder.optionspec.Param` names
_TYPES: dict[str, Callable[..., click.ParamType]] = {
    "path": lambda: SafePath(path_type=Path),
    "choice": click.Choice,
    "int_range": click.IntRange,
    "count": count,
    "finite": finite,
    "positive": positive,
    "seed": seed,
    "size": Size,
    "shard": Shard,
    "gpus": GpuList,
    "byte_count": byte_count,
    "byte_size": ByteSize,
}


def click_option(flag: Flag, field_default: Any) -> Callable[[F], F]:
    """The click option a declared :class:`~flowprep.builder.optionspec.Flag` stands for."""
    kwargs: dict[str, Any] = {"help": flag.help}
    if flag.type is not None:
        kwargs["type"] = _TYPES[flag.type.kind](*flag.type.args, **dict(flag.type.options))
    if flag.is_flag or flag.multiple:
        kwargs.update(is_flag=flag.is_flag, multiple=flag.multiple)
    elif not flag.required:  # click (8.3) takes an explicit default=None as a value given
        kwargs["default"] = field_default if flag.default is FIELD_DEFAULT else flag.default
    if flag.show_default:
        kwargs["show_default"] = flag.show_default
    if flag.metavar is not None:
        kwargs["metavar"] = flag.metavar
    if flag.required:
        kwargs["required"] = True
    return click.option(*flag.decls, **kwargs)


def options_of(config: type[BuildConfig]) -> Callable[[F], F]:
    """A decorator adding the flags :data:`~flowprep.builder.options.OPTIONS` declares, in its order,
    with the defaults of ``config``'s fields."""
    defaults = {fl.name: fl.default for fl in fields(config)}

    def decorate(f: F) -> F:
        for name, opt in reversed(OPTIONS.items()):
            for flag in reversed(opt.cli):
                f = click_option(flag, defaults[name])(f)
        return f

    return decorate


#: the options shared by ``build``, ``build-hmdb5`` and ``build-ucf101``
build_options = options_of(BuildConfig)


def make_config(values: Mapping[str, Any], make: Callable[..., BuildConfig] = BuildConfig) -> BuildConfig:
    """The configuration of a build command's parsed ``values`` (click parameter -> value, ``source``
    and ``splits`` included). The one place where a broken rule of :class:`BuildConfig` becomes a
    usage error (exit 2): a bad value of one option as click reports one, the others as
    ``Error: <message>``."""
    try:
        return make(**from_cli(values))
    except OptionError as exc:
        raise click.BadParameter(str(exc), param_hint=f"'{exc.option}'" if exc.option else None) from None
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


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

    values = dict(kw, source=source, classes=classes, splits=splits, official_split=official_split)
    cfg = make_config(dict(values, train_list=train_list, val_list=val_list))
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
    from flowprep.builder.api import build, hmdb5_config

    values = dict(kw, source=archive, splits=splits, official_split=official_split)
    if classes is not None:  # else the preset's
        values["classes"] = classes
    print_summary(build(make_config(values, hmdb5_config), on_plan=print_plan))


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
    from flowprep.builder.api import build, check_ucf101_splits, ucf101_config

    cfg = make_config(
        dict(kw, source=archive, splits=splits, official_split=official_split, classes=classes), ucf101_config
    )
    check_ucf101_splits(splits)
    print_summary(build(cfg, on_plan=print_plan))


COMMANDS = [build_cmd, build_hmdb5_cmd, build_ucf101_cmd]

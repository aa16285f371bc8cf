"""Build options, declared once: every field of :class:`~flowprep.builder.config.BuildConfig` has one
row in :data:`OPTIONS` saying what becomes of it.

The conversions iterate over the rows instead of listing fields by hand:

- command line -> config: the shared options of ``build``, ``build-hmdb5`` and ``build-ucf101``
  (:attr:`BuildOption.cli`, plain data; the command layer turns each :class:`Flag` into a click
  option) and how the parsed values become the field (:attr:`BuildOption.from_cli`);
- config -> fingerprint: :func:`output_settings` (``role="output"``; a group's fields only when the
  build has the group: flow settings only with flow, pack settings only when packed);
- config -> build state (``.flowprep/build.json``, what ``flowprep finalize`` re-makes the plan
  from): :func:`state_values` / :func:`from_state` (:attr:`BuildOption.state`);
- config -> worker settings: :func:`worker_values` (:attr:`BuildOption.to_worker`, the
  :class:`~flowprep.builder.job.JobSettings` field of the same name);
- config -> dataset record: :func:`record_values` (:attr:`BuildOption.record`).

The vocabulary of a row is :mod:`flowprep.builder.optionspec`. The rules an option's value must
follow live in ``BuildConfig.__post_init__`` (one place, for library callers and the command line
alike: the command layer turns a :class:`~flowprep.errors.ConfigError` from the constructor into a
usage error). This module imports no click.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flowprep.builder.optionspec import BuildOption, ConfigView, Flag, flag, param, same
from flowprep.errors import OptionError
from flowprep.flow.encoding import FlowEncoding
from flowprep.layout.dataset_record import PACK_FORMATS, PackedInfo
from flowprep.layout.packed import INDEX_NAME, SHARDS_DIR
from flowprep.layout.registry import LAYOUT_NAMES, get_layout
from flowprep.layout.sections import DATASET_MODALITIES
from flowprep.limits import MAX_SIDE, MIN_SIDE


def parse_params(values: tuple[str, ...]) -> dict[str, object]:
    """``--flow-param NAME=VALUE`` values to ``{name: int, float or str}``.

    Raises:
        OptionError: an item without ``=``, or a value that is not a finite number (nan, inf: not JSON).
    """
    out: dict[str, object] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep:
            raise OptionError(f"expected NAME=VALUE, got {item!r}")
        for cast in (int, float):
            try:
                out[key] = cast(raw)
                break
            except ValueError:
                continue
        else:
            out[key] = raw
        if out[key] != out[key] or out[key] in (float("inf"), float("-inf")):
            raise OptionError(f"{key}={raw}: not a finite number", option="--flow-param")
    return out


def _encoding(v: Mapping[str, Any]) -> FlowEncoding:
    return FlowEncoding(
        mode=v["encoding"], bound=v["bound"], image_format=v["flow_format"], jpeg_quality=v["jpeg_quality"]
    )


def _path(v: Any) -> Path | None:
    return Path(v) if v is not None else None


def _pair(v: Any) -> tuple[int, int] | None:
    return (v[0], v[1]) if v else None


_RGB = "RGB frame format [tao: png, mmaction2: jpg]."
#: the --encoding, --bound, --flow-format and --jpeg-quality defaults are FlowEncoding's
_ENC = FlowEncoding()

# Long on purpose: one row per field, the flags in --help order; splitting it would scatter them.
OPTIONS: dict[str, BuildOption] = {
    "source": BuildOption(role="path", param="source", from_state=Path),
    "out": BuildOption(
        role="path",
        state="never",  # the state lives in the output folder
        to_worker=str,
        cli=flag("--out", "-o", type=param("path"), required=True, help="Output dataset folder."),
    ),
    "classes": BuildOption(param="classes"),
    "splits_source": BuildOption(role="path", param="splits", from_state=_path),
    "layout": BuildOption(
        to_worker=same,
        record="layout",
        cli=flag("--layout", type=param("choice", LAYOUT_NAMES), show_default=True),
    ),
    "modality": BuildOption(
        record="modality",
        cli=flag("--modality", type=param("choice", DATASET_MODALITIES), show_default=True),
    ),
    "flow": BuildOption(
        group="flow",
        cli=flag(
            "--flow",
            show_default=True,
            help="Flow backend: tvl1, tvl1-fast, dis, farneback, nvof, vpi or auto (see `flowprep backends`).",
        ),
    ),
    "flow_params": BuildOption(
        group="flow",
        cli=flag(
            "--flow-param",
            multiple=True,
            metavar="NAME=VALUE",
            help="Backend parameter, repeatable (e.g. --flow-param preset=fast).",
        ),
        from_cli=lambda v: parse_params(v["flow_param"]),
    ),
    "encoding": BuildOption(
        group="flow",
        to_worker=FlowEncoding.to_dict,
        record="encoding",
        cli=(
            Flag(
                ("--encoding",),
                type=param("choice", ("fixed", "maxrad")),
                default=_ENC.mode,
                show_default=True,
                help="Flow to 8 bit: fixed bound (I3D/TSN/mmaction2) or TAO's per-frame max radius.",
            ),
            Flag(
                ("--bound",),
                type=param("positive"),
                default=_ENC.bound,
                show_default=True,
                help="Clip bound in pixels (fixed).",
            ),
            Flag(
                ("--flow-format",), type=param("choice", ("jpg", "png")), default=_ENC.image_format, show_default=True
            ),
            Flag(("--jpeg-quality",), type=param("int_range", 1, 100), default=_ENC.jpeg_quality, show_default=True),
        ),
        from_cli=_encoding,
        from_state=FlowEncoding.from_dict,
    ),
    "rgb_format": BuildOption(
        to_worker=same,
        record="rgb.image_format",
        cli=flag("--rgb-format", type=param("choice", ("png", "jpg")), default=None, help=_RGB),
        from_cli=lambda v: v["rgb_format"] or get_layout(v["layout"]).default_rgb_format,
    ),
    "rgb_quality": BuildOption(
        to_worker=same,
        record="rgb.jpeg_quality",
        to_record=lambda cfg: cfg.rgb_quality if cfg.rgb_format == "jpg" else None,
    ),
    "val_ratio": BuildOption(
        cli=flag(
            "--val-ratio",
            type=param("finite", 0, 1, lo_open=True, hi_open=True),
            show_default=True,
            help="Share of each class's clips for validation.",
        ),
    ),
    "seed": BuildOption(cli=flag("--seed", type=param("seed"), show_default=True)),
    "split_by": BuildOption(
        cli=flag(
            "--split-by",
            type=param("choice", ("group", "clip")),
            show_default=True,
            help="group: clips of one source video stay on one side; clip: plain random split.",
        ),
    ),
    "official_split": BuildOption(param="official_split"),
    "short_side": BuildOption(
        to_worker=same,
        record="decode.short_side",
        cli=flag(
            "--short-side",
            type=param("count", MIN_SIDE, MAX_SIDE),
            help="Resize so the shorter side has this many pixels.",
        ),
    ),
    "size": BuildOption(
        to_worker=_pair,
        record="decode.size",
        to_record=lambda cfg: _pair(cfg.size),
        cli=flag(
            "--size",
            type=param("size"),
            help=f"Resize every frame to exactly WxH ({MIN_SIDE} to {MAX_SIDE} px a side).",
        ),
        from_state=_pair,
    ),
    "frame_step": BuildOption(
        to_worker=same,
        record="decode.frame_step",
        cli=flag("--frame-step", type=param("count"), show_default=True, help="Keep every N-th frame."),
    ),
    "jobs": BuildOption(
        role="run", cli=flag("-j", "--jobs", type=param("count", 1, 1024), help="Worker processes [all cores].")
    ),
    "force": BuildOption(
        role="run", cli=flag("--force", is_flag=True, help="Replace a build of another configuration in --out.")
    ),
    "engine": BuildOption(role="run", cli=flag("--engine", type=param("choice", ("local", "dask")), show_default=True)),
    "scheduler": BuildOption(
        role="run", cli=flag("--scheduler", help="Dask scheduler address (tcp://host:8786) for --engine dask.")
    ),
    "scheduler_timeout": BuildOption(
        role="run",
        cli=flag(
            "--scheduler-timeout",
            type=param("positive", 86400),
            show_default=True,
            help="Seconds to wait for the Dask scheduler to answer.",
        ),
    ),
    "max_clip_bytes": BuildOption(
        role="run",
        to_worker=same,
        cli=flag(
            "--max-clip-bytes",
            type=param("byte_count"),
            show_default=True,
            help="A clip larger than this is not read (it fails with the reason).",
        ),
    ),
    "shard": BuildOption(
        role="run",
        cli=flag(
            "--shard",
            type=param("shard"),
            help="Build only part K of N (job arrays); the last part to finish writes the record, "
            "or run `flowprep finalize`.",
        ),
    ),
    "gpus": BuildOption(
        role="run",
        to_worker=lambda v: tuple(v) if v else None,
        cli=flag(
            "--gpus",
            type=param("gpus"),
            help="GPU ids for GPU flow backends: 0,1,2,3 or all; each worker process binds one "
            "[the devices CUDA_VISIBLE_DEVICES/Slurm give]. CPU backends ignore it.",
        ),
    ),
    # an entry missing from the release stops the build without it; with it, what is built is the same
    "allow_missing_clips": BuildOption(
        role="run",
        state="if_set",
        cli=flag(
            "--allow-missing-clips",
            is_flag=True,
            help="Build even if split lists name clips the release lacks (warned; the record lists them) "
            "[an error: the split would not be the given one].",
        ),
    ),
    "pack": BuildOption(
        group="pack",
        state="active",
        to_worker=lambda v: v is not None,
        record="packed",
        to_record=lambda cfg: PackedInfo(str(cfg.pack), f"{SHARDS_DIR}/{INDEX_NAME}"),
        cli=flag(
            "--pack",
            type=param("choice", PACK_FORMATS),
            help="Write the dataset as tar shards (WebDataset's convention) instead of clip folders.",
        ),
    ),
    "shard_size": BuildOption(
        group="pack",
        state="active",
        cli=flag(
            "--shard-size",
            type=param("byte_size"),
            show_default="1G",
            help="Target size of one shard with --pack (K, M, G suffixes).",
        ),
    ),
    "progress": BuildOption(
        role="run",
        cli=flag("--no-progress", is_flag=True, help="No progress bar."),
        from_cli=lambda v: not v["no_progress"],
    ),
    # set by the presets (build-hmdb5: "hmdb51"), recorded through the plan's source section
    "source_kind": BuildOption(),
    "train_list": BuildOption(role="path", state="if_set", param="train_list", from_state=_path),
    "val_list": BuildOption(role="path", state="if_set", param="val_list", from_state=_path),
}


def _active(cfg: ConfigView, opt: BuildOption) -> bool:
    if opt.group == "flow":
        return cfg.needs_flow
    if opt.group == "pack":
        return cfg.pack is not None
    return True


def _at_default(cfg: Any, name: str, opt: BuildOption) -> bool:
    """Whether an ``omit_default`` option has its field's default (then it is left out)."""
    if not opt.omit_default:
        return False
    f = next(f for f in dataclasses.fields(cfg) if f.name == name)
    if f.default is not dataclasses.MISSING:
        return bool(getattr(cfg, name) == f.default)
    factory: Callable[[], Any] = f.default_factory  # type: ignore[assignment]
    return bool(getattr(cfg, name) == factory())


def _json(value: Any, path_as: Callable[[Path], str]) -> Any:
    if isinstance(value, FlowEncoding):
        return value.to_dict()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Path):
        return path_as(value)
    return value


def output_settings(cfg: ConfigView) -> dict[str, Any]:
    """The output-determining settings as plain JSON data (what the fingerprint hashes)."""
    return {
        name: _json(getattr(cfg, name), str)
        for name, opt in OPTIONS.items()
        if opt.role == "output" and _active(cfg, opt) and not _at_default(cfg, name, opt)
    }


def state_values(cfg: ConfigView) -> dict[str, Any]:
    """The options ``.flowprep/build.json`` keeps, as JSON data (paths absolute: any node reads them)."""
    out: dict[str, Any] = {}
    for name, opt in OPTIONS.items():
        value = getattr(cfg, name)
        keep = {
            "always": True,
            "if_set": value is not None and value is not False,
            "active": _active(cfg, opt),
            "never": False,
        }[opt.stored]
        if keep and not _at_default(cfg, name, opt):
            out[name] = _json(value, lambda p: str(p.resolve()))
    return out


def from_state(stored: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`~flowprep.builder.config.BuildConfig` keyword arguments from :func:`state_values`' JSON
    (keys it lacks keep the field's default)."""
    out = {}
    for name, value in stored.items():
        opt = OPTIONS.get(name)
        convert = opt.from_state if opt is not None and opt.from_state is not None else same
        out[name] = convert(value)
    return out


def worker_values(cfg: ConfigView) -> dict[str, Any]:
    """The :class:`~flowprep.builder.job.JobSettings` fields that are options, as the jobs get them."""
    return {name: opt.to_worker(getattr(cfg, name)) for name, opt in OPTIONS.items() if opt.to_worker is not None}


def record_values(cfg: ConfigView) -> dict[str, Any]:
    """What the dataset record keeps of the options: ``{field: value}`` with sections nested
    (``{"decode": {"short_side": ..., ...}, "layout": ...}``); whether a section is written at all
    (RGB frames, flow, packing) is the record's business (:func:`flowprep.builder.finalize.make_record`)."""
    out: dict[str, Any] = {}
    for name, opt in OPTIONS.items():
        if opt.record is None:
            continue
        value = opt.to_record(cfg) if opt.to_record is not None else getattr(cfg, name)
        section, _, key = opt.record.rpartition(".")
        (out.setdefault(section, {}) if section else out)[key] = value
    return out


def from_cli(values: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`~flowprep.builder.config.BuildConfig` keyword arguments from the parsed values of a
    build command (click parameter name -> value); options the command does not have keep their default.

    Raises:
        OptionError: a value the click type let through but that cannot be the field's
            (``--flow-param x``).
    """
    out = {}
    for name, opt in OPTIONS.items():
        if opt.from_cli is not None:
            out[name] = opt.from_cli(values)
        elif opt.cli or opt.param:
            key = opt.param or opt.cli[0].name
            if key in values:
                out[name] = values[key]
    return out

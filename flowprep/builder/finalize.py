"""Finish a build: the dataset record, label map, split lists and the TAO / mmaction2 config snippets.

Everything here is derived from the plan and from what is on disk, never from timings, so a resumed
build writes the same bytes as an uninterrupted one. A build writes ``.flowprep/build.json`` (the
output-determining configuration, the source path and the resolved flow backend) before any clip,
so that ``flowprep finalize OUT`` can re-make the plan and write the record of a sharded build from
any node, once every part is in (:func:`finalize_from_state`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowprep import __version__
from flowprep.builder.config import BuildConfig
from flowprep.builder.folder import BuildFolder, output_errors
from flowprep.builder.job import ClipResult, clip_entry, count_on_disk
from flowprep.builder.options import from_state, record_values, state_values
from flowprep.builder.pack import PackState, write_index
from flowprep.builder.packbuild import pack_leftovers, staged
from flowprep.builder.plan import Plan, make_plan
from flowprep.builder.shard import shard_of
from flowprep.errors import ConfigError, DatasetError
from flowprep.fsio.writing import write_json_atomic, write_text_atomic
from flowprep.layout.dataset_record import ClipEntry, DatasetRecord, Normalization
from flowprep.layout.fields import FieldError, Fields
from flowprep.layout.provenance import SideCounts, source_from_dict, split_from_dict
from flowprep.layout.record import write_record
from flowprep.layout.registry import get_layout
from flowprep.layout.sections import DecodeInfo, RgbInfo, flow_from


def clip_entries(
    cfg: BuildConfig,
    plan: Plan,
    results: dict[str, ClipResult],
    folder: BuildFolder,
    packed: dict[str, dict[str, Any]] | None = None,
) -> list[ClipEntry]:
    """Per-clip entries of the record, sorted by id: from disk for finished clips (their folder, or
    for a packed build their shard's note in ``packed``: clip id -> frame counts)."""
    entries = []
    lost = folder.read_decode_errors()
    packed = packed or {}
    for job in plan.jobs:
        final = get_layout(cfg.layout).clip_dir(cfg.out, job.side, job.cls, job.clip)
        if job.id in packed:
            p = packed[job.id]
            entries.append(clip_entry(job, p["frames"], p["flow_frames"], lost.get(job.id, 0)))
        elif final.is_dir():
            frames, flows = count_on_disk(final, cfg.layout, cfg.needs_rgb)
            entries.append(clip_entry(job, frames, flows if cfg.needs_flow else 0, lost.get(job.id, 0)))
        else:
            r = results.get(job.id)
            error = r.error if r is not None and r.error else "not built"
            entries.append(ClipEntry(job.side, job.cls, job.label, job.clip, job.name, "failed", 0, 0, error=error))
    return entries


def built_counts(classes: list[str], clips: list[ClipEntry]) -> dict[str, SideCounts]:
    """class -> clips built on each side (``split.counts`` is the plan)."""
    out = {c: {"train": 0, "val": 0} for c in classes}
    for c in clips:
        if c.ok:
            out[c.cls][c.side] += 1
    return {c: SideCounts(n["train"], n["val"]) for c, n in out.items()}


def make_record(
    cfg: BuildConfig, plan: Plan, flow_info: dict[str, Any] | None, clips: list[ClipEntry]
) -> DatasetRecord:
    """The dataset record (schema in :mod:`flowprep.layout.record`).

    Raises:
        DatasetError: the plan's source/split sections or the flow information do not follow the
            schema (a build state edited by hand; one line naming the field).
    """
    classes = tuple(plan.classes)
    try:
        source, split = source_from_dict(plan.source), split_from_dict(plan.split, classes)
        flow = flow_from(Fields(flow_info, "flow")) if cfg.needs_flow and flow_info is not None else None
    except FieldError as exc:
        raise DatasetError(f"cannot make the dataset record of {cfg.out}: {exc}") from None
    options = record_values(cfg)
    return DatasetRecord(
        modality=options["modality"],
        classes=classes,
        clips=tuple(clips),
        split=split,
        decode=DecodeInfo(**options["decode"]),
        rgb=RgbInfo(**options["rgb"]) if cfg.needs_rgb else None,
        flow=flow,
        encoding=options["encoding"] if cfg.needs_flow else None,
        layout=options["layout"],
        source=source,
        normalization=Normalization(),
        excluded=tuple(sorted(plan.excluded)),
        counts=built_counts(plan.classes, clips),
        flowprep_version=__version__,
        packed=options["packed"] if cfg.pack else None,
    )


def write_side_files(out: Path, record: DatasetRecord) -> None:
    """Labels, label map, and the layout's split lists and spec snippet of a folder dataset's
    ``record`` (a packed dataset gets the labels only: the lists and snippets name clip folders)."""
    classes = list(record.classes)
    write_text_atomic(out / "labels.txt", "".join(f"{c}\n" for c in classes))
    write_json_atomic(out / "label_map.json", {c: i for i, c in enumerate(classes)})
    if record.packed is not None:
        return
    for rel, text in get_layout(record.layout).side_files(out.resolve(), record).items():
        (out / rel).parent.mkdir(exist_ok=True)
        write_text_atomic(out / rel, text)


def finalize(
    cfg: BuildConfig,
    plan: Plan,
    flow_info: dict[str, Any] | None,
    results: dict[str, ClipResult],
    folder: BuildFolder,
) -> DatasetRecord:
    """Write the record and side files; returns the record. Removes stale temporary folders.

    A packed build (``cfg.pack``) first packs every finished clip folder not in a shard yet (those
    of an interrupted shard job under that job's part), then writes the shard index.
    """
    out = cfg.out
    packed = pack_leftovers(cfg, plan, folder) if cfg.pack else None
    clips = clip_entries(cfg, plan, results, folder, packed)
    record = make_record(cfg, plan, flow_info, clips)
    if cfg.pack:
        write_index(out, PackState(out).published(), cfg.shard_size)
    write_record(out, record)
    write_side_files(out, record)
    if all(c.ok for c in clips):
        folder.clear_tmp()
        PackState(out).clear_tmp()
    return record


# --- build state and finalize from it ----------------------------------------------------------


def config_to_state(cfg: BuildConfig, flow_info: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON state ``flowprep finalize`` needs: the options :data:`~flowprep.builder.options.OPTIONS`
    keeps in the state (absolute paths, output settings) and the resolved flow."""
    return {"config": state_values(cfg), "flow": flow_info}


def save_build_state(cfg: BuildConfig, flow_info: dict[str, Any] | None, folder: BuildFolder) -> None:
    """Write ``<out>/.flowprep/build.json`` (what :func:`finalize_from_state` re-makes the plan from)."""
    folder.save_state(config_to_state(cfg, flow_info))


def load_build_state(
    folder: BuildFolder,
    source: Path | None = None,
    splits: Path | None = None,
    lists: tuple[Path, Path] | None = None,
) -> tuple[BuildConfig, dict[str, Any] | None]:
    """The configuration and flow record of the build in ``folder`` (``source``/``splits``/``lists``
    (train, val) override the stored paths, for a node that mounts the release elsewhere).

    Raises:
        DatasetError: the folder has no build state.
    """
    state = folder.load_state()
    try:
        stored = dict(state["config"])
        flow_info = state["flow"]
        for key in ("source", "splits_source", "encoding"):  # in every state flowprep has written
            stored[key]
        d = from_state(stored)
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"cannot read build state {folder.build_state}: {exc}") from exc
    if source is not None:
        d["source"] = Path(source)
    if splits is not None:
        d["splits_source"] = Path(splits)
    if lists is not None:
        d["train_list"], d["val_list"] = lists
    cfg = BuildConfig(out=folder.out, progress=False, **d)
    return cfg, flow_info


@dataclass
class FinalizeResult:
    """Outcome of :func:`finalize_from_state`.

    Attributes:
        total: clips in the plan; missing: ids of clips not finished (with their failure reason when
        one was noted, else ``"not built"``); owner: clip id -> shard ``"K/N"`` when the shard count is
        known; record_written: whether ``flowprep.json`` and the lists were written now.
    """

    out: Path
    total: int
    missing: list[tuple[str, str]] = field(default_factory=list)
    owner: dict[str, str] = field(default_factory=dict)
    record_written: bool = False


def finalize_from_state(
    out: Path,
    allow_missing: bool = False,
    write: bool = True,
    source: Path | None = None,
    splits: Path | None = None,
    lists: tuple[Path, Path] | None = None,
) -> FinalizeResult:
    """Re-make the plan from ``<out>/.flowprep/build.json`` and write the record once all clips are in.

    Args:
        out: the output folder of a (sharded) build.
        allow_missing: write the record even if clips are missing (they are recorded as failed, and
            ``flowprep verify`` reports them).
        write: False only checks (what ``flowprep verify`` does on a folder without a record).
        source, splits, lists: override the stored release paths (lists: train and val list).

    Idempotent: the record depends only on the plan and on what is on disk, so any number of calls,
    in any process, write the same bytes.

    Raises:
        DatasetError: no build state; ConfigError: the source is not the one the build used.
    """
    out = Path(out)
    folder = BuildFolder(out)
    cfg, flow_info = load_build_state(folder, source, splits, lists)
    if not cfg.source.exists():
        raise ConfigError(
            f"the release {cfg.source} of this build is not reachable here; "
            "pass --source (and --splits) with its path on this node"
        )
    _check_source(folder, cfg)
    plan = make_plan(cfg, folder)
    notes = folder.read_failures()
    result = FinalizeResult(out=out, total=len(plan.jobs))
    packed = PackState(out).packed_clips() if cfg.pack else {}
    for job in plan.jobs:
        done = (
            staged(cfg, job).is_file()
            if cfg.pack
            else get_layout(cfg.layout).clip_dir(out, job.side, job.cls, job.clip).is_dir()
        )
        if job.id not in packed and not done:
            result.missing.append((job.id, notes.get(job.id, "not built")))
    ns = folder.shard_counts()
    if result.missing and len(ns) == 1:
        n = ns.pop()
        owner = shard_of([j.id for j in plan.jobs], n)
        result.owner = {cid: f"{owner[cid]}/{n}" for cid, _ in result.missing}
    if write and (allow_missing or not result.missing):
        results = {cid: ClipResult(cid, "failed", error=why) for cid, why in result.missing}
        with output_errors(out):
            finalize(cfg, plan, flow_info, results, folder)
        result.record_written = True
    return result


def _check_source(folder: BuildFolder, cfg: BuildConfig) -> None:
    """Refuse a release that is not the one the build used (names and archive sizes differ)."""
    stored = folder.stored_source_identity()
    if stored is not None and stored != cfg.source_identity():
        raise ConfigError(f"{cfg.source} is not the release {folder.out} was built from (built from {stored})")

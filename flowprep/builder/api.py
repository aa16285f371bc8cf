"""``build``, ``build_hmdb5`` and ``build_ucf101``: the build stage as plain functions."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowprep.archive.formats import detect_kind
from flowprep.archive.reader import list_classes, read_text_file, read_text_files
from flowprep.builder.config import BuildConfig, BuildSummary
from flowprep.builder.dask_engine import run_on_worker
from flowprep.builder.engine import ProgressBar, run_jobs
from flowprep.builder.finalize import finalize, save_build_state
from flowprep.builder.folder import BuildFolder, output_errors
from flowprep.builder.job import ClipResult, JobSettings
from flowprep.builder.options import OPTIONS, worker_values
from flowprep.builder.pack import PackState
from flowprep.builder.packbuild import pack_own, staged, unpack_in_place
from flowprep.builder.plan import Plan, class_folder_name, make_plan
from flowprep.builder.shard import select_shard
from flowprep.datasets import HMDB5_CLASSES
from flowprep.datasets.ucf101 import CLASS_IND
from flowprep.errors import ArchiveError, ConfigError, FlowprepError
from flowprep.flow.registry import BACKENDS, create_backend, resolve_auto
from flowprep.fsio.writing import write_json_atomic
from flowprep.layout.base import SIDES
from flowprep.layout.paths import STATE_DIR
from flowprep.layout.registry import frame_tops, get_layout

log = logging.getLogger(__name__)

#: ActionRecognitionNet's label order (the labels compiled into NVIDIA's DeepStream 3D
#: action-recognition sample for the deployable HMDB5 models), so label ids line up with NVIDIA's models.
HMDB5_LABEL_ORDER = ["push", "fall_floor", "walk", "run", "ride_bike"]


def describe_flow(name: str, params: dict[str, Any], gpus: list[int] | None) -> dict[str, Any]:
    """Create the flow backend once and return its record entry ``{"name", "params", "device"}``.

    ``"auto"`` is resolved here, so on a Dask cluster it is resolved on a worker. Only backends whose
    spec has ``gpu=True`` are given a device; the recorded parameters never include it, so builds on
    different GPUs (shards, workers) have one fingerprint.

    Raises:
        ConfigError, BackendNotInstalledError, BackendUnavailableError: the backend cannot run.
    """
    if name == "auto":
        name = resolve_auto()
    spec = BACKENDS.get(name)
    on_gpu = spec is not None and spec.gpu
    params = dict(params)
    if on_gpu and gpus:
        params.setdefault("gpu", gpus[0])
    backend = create_backend(name, **params)
    try:
        info = backend.describe()
    finally:
        backend.close()
    if on_gpu:
        info["params"].pop("gpu", None)
        if gpus and len(gpus) > 1:
            info["device"] = f"{info['device']} (+ GPUs {','.join(map(str, gpus))})"
    return info


def _resolve_flow(cfg: BuildConfig) -> dict[str, Any] | None:
    """Fail fast if the flow backend cannot run (where the clips will run); returns its record entry."""
    if not cfg.needs_flow:
        return None
    if cfg.engine == "dask":
        return run_on_worker(
            cfg.scheduler, describe_flow, cfg.flow, dict(cfg.flow_params), cfg.gpus, timeout=cfg.scheduler_timeout
        )
    return describe_flow(cfg.flow, cfg.flow_params, cfg.gpus)


def job_settings(cfg: BuildConfig, flow_info: dict[str, Any] | None) -> JobSettings:
    """What every clip job of the build gets: the options declared for the workers
    (:func:`~flowprep.builder.options.worker_values`), the resolved flow backend and this run's
    process and GPU-slot bookkeeping."""
    return JobSettings(
        **worker_values(cfg),
        rgb=cfg.needs_rgb,
        flow=cfg.needs_flow,
        flow_name=flow_info["name"] if flow_info else None,
        flow_params=dict(flow_info["params"]) if flow_info else {},
        opencv_threads=1,
        main_pid=os.getpid() if cfg.engine == "local" else None,
        slot_scope=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
    )


def _check_source(cfg: BuildConfig) -> BuildConfig:
    """Fail before anything is written: a missing source, an unknown class (a typo, not a reason to
    touch ``--out``). Returns the config with absolute paths for Dask (workers run elsewhere)."""
    if not cfg.source.exists():
        raise ArchiveError(f"source {cfg.source} does not exist")
    _check_apart(cfg.source, cfg.out)
    if cfg.splits_source is not None:
        detect_kind(cfg.splits_source)  # a missing, FIFO or device --splits: refused before --out is touched
    for lst in (cfg.train_list, cfg.val_list):
        if lst is not None:
            read_text_file(lst)  # the same for a list: missing, not a regular file, too big
    if cfg.engine == "dask":
        paths = {n: getattr(cfg, n) for n, opt in OPTIONS.items() if opt.role == "path"}
        cfg = dataclasses.replace(cfg, **{n: p.resolve() for n, p in paths.items() if p is not None})
    if cfg.classes is not None:
        available = list_classes(cfg.source, quiet=True)  # make_plan lists it again, and warns
        unknown = [c for c in cfg.classes if c not in available]
        if unknown:
            raise ConfigError(f"unknown class(es) {', '.join(unknown)}; {cfg.source} has: {', '.join(available)}")
    return cfg


def _check_apart(source: Path, out: Path) -> None:
    """Refuse an ``--out`` that is the source folder itself (``--force`` would write the dataset among
    the user's videos), or a source inside the entries a build of ``out`` owns (``--force`` would
    delete the input it is reading)."""
    src, dst = Path(os.path.realpath(source)), Path(os.path.realpath(out))  # no RuntimeError on a link loop
    if src == dst:
        raise ConfigError(f"--out {out} is the source folder; choose another folder for the dataset")
    for top in (*frame_tops(), STATE_DIR):
        if src.is_relative_to(dst / top):
            raise ConfigError(
                f"source {source} lies inside {out}/{top}, which a build into {out} writes; "
                "choose another --out, or copy the source elsewhere"
            )


def _check_class_names(cfg: BuildConfig) -> None:
    """A class named ``..`` (from ``...zip``) or not valid UTF-8 is refused before ``--out`` is touched."""
    for c in cfg.classes if cfg.classes is not None else list_classes(cfg.source, quiet=True):
        class_folder_name(c)


def _prepare(cfg: BuildConfig, flow_info: dict[str, Any] | None, folder: BuildFolder) -> None:
    """Claim the output folder for this configuration and store what `flowprep finalize` needs."""
    settings = cfg.output_settings()
    if flow_info is not None:
        settings["flow"], settings["flow_params"] = flow_info["name"], flow_info["params"]
    settings["source_identity"] = cfg.source_identity()
    folder.prepare(settings, cfg.layout, cfg.force)
    save_build_state(cfg, flow_info, folder)  # what `flowprep finalize` needs to re-make the plan


def _run(cfg: BuildConfig, plan: Plan, flow_info: dict[str, Any] | None) -> list[ClipResult]:
    jobs = select_shard(plan.jobs, *cfg.shard) if cfg.shard else plan.jobs
    done: list[ClipResult] = []
    if cfg.pack:  # clips already in a shard are finished: not built again
        packed = PackState(cfg.out).packed_clips()
        done = [
            ClipResult(j.id, "exists", packed[j.id]["frames"], packed[j.id]["flow_frames"])
            for j in jobs
            if j.id in packed
        ]
        jobs = [j for j in jobs if j.id not in packed]
    bar = ProgressBar(len(jobs), enabled=cfg.progress)
    try:
        return done + run_jobs(
            jobs,
            job_settings(cfg, flow_info),
            n_jobs=cfg.effective_jobs(),
            engine=cfg.engine,
            scheduler=cfg.scheduler,
            on_result=bar,
            scheduler_timeout=cfg.scheduler_timeout,
        )
    finally:
        bar.close()


def _summarize(
    cfg: BuildConfig, plan: Plan, flow_info: dict[str, Any] | None, results: list[ClipResult]
) -> BuildSummary:
    summary = BuildSummary(
        out=cfg.out,
        classes=plan.classes,
        counts=plan.counts(),
        flow=flow_info,
        excluded=len(plan.excluded),
        shard=cfg.shard,
    )
    for r in results:
        if r.status == "done":
            summary.built += 1
            summary.frames += r.frames
        elif r.status == "exists":
            summary.existing += 1
        else:
            summary.failed.append((r.id, r.error))
    summary.failed.sort()
    packed = PackState(cfg.out).packed_clips() if cfg.pack else {}
    summary.pending = sum(
        j.id not in packed
        and not (
            staged(cfg, j).is_file()
            if cfg.pack
            else get_layout(cfg.layout).clip_dir(cfg.out, j.side, j.cls, j.clip).is_dir()
        )
        for j in plan.jobs
    )
    return summary


def _finish(
    cfg: BuildConfig,
    plan: Plan,
    flow_info: dict[str, Any] | None,
    results: list[ClipResult],
    summary: BuildSummary,
    folder: BuildFolder,
) -> None:
    """Write the record (when every part is in) and the run's report."""
    folder.note_failures(summary.failed)
    if cfg.pack:
        t = time.perf_counter()
        summary.shards_written = pack_own(cfg, plan, folder)
        summary.pack_seconds = time.perf_counter() - t
    # A shard writes the record only when every part is in: whichever shard finishes last does it
    # (two finishing together both write it; finalize is idempotent, byte for byte).
    if cfg.shard is None or summary.pending == 0:
        record = finalize(cfg, plan, flow_info, {r.id: r for r in results}, folder)
        summary.empty_sides = sorted(
            f"{c}/{side}" for c, n in record.counts.items() for side in SIDES if getattr(n, side) == 0
        )
        summary.decode_errors = [(c.id, c.decode_errors) for c in record.clips if c.decode_errors]
    else:
        summary.record_written = False
    report = {
        "seconds": round(summary.seconds, 3),
        "built": summary.built,
        "existing": summary.existing,
        "failed": [{"id": i, "error": e} for i, e in summary.failed],
        "frames_built": summary.frames,
        "frames_per_second": round(summary.fps, 2),
        "jobs": cfg.effective_jobs(),
        "engine": cfg.engine,
        "shard": list(cfg.shard) if cfg.shard else None,
        "timings": {
            k: round(sum(r.timings.get(k, 0.0) for r in results), 3)
            for k in ("read", "decode", "write_rgb", "flow", "write_flow")
        },
    }
    if cfg.pack:
        report["pack_seconds"] = round(summary.pack_seconds, 3)
        report["shards_written"] = summary.shards_written
    if cfg.shard:
        folder.write_shard_report(cfg.shard, report)
    else:
        write_json_atomic(folder.report, report)


def build(cfg: BuildConfig, on_plan: Callable[[Plan], None] | None = None) -> BuildSummary:
    """Build (or resume) a dataset: check the source, prepare the folder, plan, run the clips, finalize.

    Args:
        cfg: the configuration (see :class:`BuildConfig`).
        on_plan: called with the plan before clips are built (the CLI prints the split counts).

    Returns:
        A summary; failed clips are listed in it, not raised.

    Raises:
        FlowprepError: bad source, options, output folder (or another build holding it), flow backend.
    """
    t0 = time.perf_counter()
    cfg = _check_source(cfg)
    flow_info = _resolve_flow(cfg)  # fails fast: a backend that cannot run, no scheduler
    _check_class_names(cfg)
    folder = BuildFolder(cfg.out)
    with output_errors(cfg.out):
        folder.acquire(shard=cfg.shard is not None)
    fresh = cfg.shard is None and not folder.config.exists()  # shards may share a fresh state: kept
    try:
        with output_errors(cfg.out):
            _prepare(cfg, flow_info, folder)
        try:
            plan = make_plan(cfg, folder)
        except FlowprepError:
            if fresh:  # nothing built yet: a fixed source or --splits must not meet "other settings"
                folder.forget()
            raise
        with output_errors(cfg.out):
            if cfg.force and PackState(cfg.out).shards.is_dir() and folder.plan_changed([j.id for j in plan.jobs]):
                # sample keys depend on the plan: the shards go back to folders and are packed anew
                log.warning("--force: unpacking %d clip(s) of the previous shards", unpack_in_place(cfg.out))
            folder.check_plan([j.id for j in plan.jobs], cfg.layout, cfg.force, cfg.source)
        if on_plan is not None:
            on_plan(plan)
        results = _run(cfg, plan, flow_info)
        summary = _summarize(cfg, plan, flow_info, results)
        summary.seconds = time.perf_counter() - t0
        with output_errors(cfg.out):
            _finish(cfg, plan, flow_info, results, summary, folder)
    finally:
        folder.release()
    return summary


def hmdb5_config(**options: Any) -> BuildConfig:
    """The HMDB5 preset's :class:`BuildConfig`: HMDB51's walk, run, ride_bike, fall_floor and push in
    ActionRecognitionNet's label order unless ``classes`` is given (ConfigError: a broken rule)."""
    options.setdefault("classes", list(HMDB5_LABEL_ORDER))
    options.setdefault("source_kind", "hmdb51")
    return BuildConfig(**options)


def build_hmdb5(
    archive: Path, out: Path, splits: Path | None = None, on_plan: Callable[[Plan], None] | None = None, **options: Any
) -> BuildSummary:
    """The HMDB5 preset (:func:`hmdb5_config`): other options as :class:`BuildConfig` (``classes``
    may override the selection)."""
    return build(hmdb5_config(source=Path(archive), out=Path(out), splits_source=splits, **options), on_plan)


def ucf101_config(**options: Any) -> BuildConfig:
    """The UCF101 preset's :class:`BuildConfig` (ConfigError: a broken rule): ``splits_source``'s
    ``classInd.txt`` gives the classes and label order (``classes`` selects a subset, in that order);
    ``official_split`` (1-3: trainlist0N -> train, testlist0N -> val) or else the seeded split."""
    options.setdefault("source_kind", "ucf101")
    return BuildConfig(**options)


def check_ucf101_splits(splits: Path) -> None:
    """Refuse a ``splits`` that is not UCF101's split archive or folder.

    Raises:
        ArchiveError: ``splits`` does not exist; ConfigError: it holds no ``classInd.txt``.
    """
    if not Path(splits).exists():
        raise ArchiveError(f"{splits}: no such file or folder (UCF101's split archive, or its folder)")
    if CLASS_IND not in read_text_files(Path(splits), only=(CLASS_IND,)):
        raise ConfigError(
            f"{splits} holds no classInd.txt: give UCF101's UCF101TrainTestSplits-RecognitionTask.zip (or its folder)"
        )


def build_ucf101(
    archive: Path, out: Path, splits: Path, on_plan: Callable[[Plan], None] | None = None, **options: Any
) -> BuildSummary:
    """The UCF101 preset (:func:`ucf101_config`) from the release ``archive`` and the split archive
    or folder ``splits``; other options as :class:`BuildConfig`.

    Raises:
        ConfigError: ``splits`` holds no ``classInd.txt`` (plus everything :func:`build` raises).
    """
    check_ucf101_splits(splits)
    return build(ucf101_config(source=Path(archive), out=Path(out), splits_source=Path(splits), **options), on_plan)


if sorted(HMDB5_LABEL_ORDER) != sorted(HMDB5_CLASSES):  # pragma: no cover - a guard on the constants
    raise ImportError("HMDB5_LABEL_ORDER and HMDB5_CLASSES disagree")

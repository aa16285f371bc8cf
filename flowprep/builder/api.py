"""``build`` and ``build_hmdb5``: the build stage as plain functions."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from flowprep.builder.cluster import (create_exclusive, dump_json, note_failures, save_build_state,
                                    write_shard_report, write_text_atomic)
from flowprep.builder.config import BuildConfig, fingerprint
from flowprep.builder.engine import ProgressBar, run_jobs
from flowprep.builder.finalize import finalize
from flowprep.builder.job import ClipResult, JobSettings
from flowprep.builder.plan import Plan, make_plan
from flowprep.builder.shard import select_shard
from flowprep.datasets import HMDB5_CLASSES
from flowprep.errors import ConfigError
from flowprep.layout.paths import STATE_DIR, TMP_DIR, clip_dir
from flowprep.layout.record import RECORD_NAME, write_json_atomic

log = logging.getLogger(__name__)

#: ActionRecognitionNet's label order (the labels compiled into NVIDIA's DeepStream 3D
#: action-recognition sample for the deployable HMDB5 models), so label ids line up with NVIDIA's models.
HMDB5_LABEL_ORDER = ["push", "fall_floor", "walk", "run", "ride_bike"]

_OWNED = ("train", "val", "rawframes", "mmaction2", TMP_DIR, RECORD_NAME, "labels.txt", "label_map.json",
          "train_list.txt", "val_list.txt", "tao_dataset_spec.yaml", "build_report.json")


@dataclass
class BuildSummary:
    """What a build did. ``failed``: (clip id, reason) of every clip that is not finished."""

    out: Path
    classes: list[str]
    counts: dict[str, dict[str, int]]
    built: int = 0
    existing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    excluded: int = 0
    frames: int = 0
    seconds: float = 0.0
    flow: dict[str, Any] | None = None
    record_written: bool = True
    shard: tuple[int, int] | None = None
    pending: int = 0
    #: "<class>/<side>" with no built clip (a class too small to split, or whose clips failed)
    empty_sides: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _source_identity(cfg: BuildConfig) -> list[Any]:
    ident = []
    for p in [cfg.source] + ([cfg.splits_source] if cfg.splits_source else []):
        ident.append([p.name, None if p.is_dir() else p.stat().st_size])
    return ident


def describe_flow(name: str, params: dict[str, Any], gpus: list[int] | None) -> dict[str, Any]:
    """Create the flow backend once and return its record entry ``{"name", "params", "device"}``.

    ``"auto"`` is resolved here, so on a Dask cluster it is resolved on a worker. Only backends whose
    spec has ``gpu=True`` are given a device; the recorded parameters never include it, so builds on
    different GPUs (shards, workers) have one fingerprint.

    Raises:
        ConfigError, BackendNotInstalledError, BackendUnavailableError: the backend cannot run.
    """
    from flowprep.flow.registry import BACKENDS, create_backend, resolve_auto

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
        from flowprep.builder.dask_engine import run_on_worker

        return run_on_worker(cfg.scheduler, describe_flow, cfg.flow, dict(cfg.flow_params), cfg.gpus)
    return describe_flow(cfg.flow, cfg.flow_params, cfg.gpus)


def _remove_owned(out: Path) -> None:
    for name in _OWNED + (f"{STATE_DIR}/failed", f"{STATE_DIR}/reports", f"{STATE_DIR}/build.json",
                          f"{STATE_DIR}/plan.json"):
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def prepare_output(cfg: BuildConfig, settings: dict[str, Any]) -> None:
    """Create ``cfg.out`` or check that it holds a build of the same configuration.

    Safe when N shards run it at once on one folder: the first to create ``.flowprep/config.json``
    (an exclusive create) sets the fingerprint, the others compare against it. ``--force`` is not
    meant for concurrent shards (each would clear the folder): replace a build with one job first.

    Raises:
        ConfigError: the folder holds another configuration's build, or files flowprep did not
            write, and ``force`` is not set. With ``force`` only flowprep's own files are removed.
    """
    out = cfg.out
    state = out / STATE_DIR / "config.json"
    fp = fingerprint(settings)
    text = dump_json({"fingerprint": fp, "settings": settings})
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {out} exists and is not a folder")
    for _ in range(3):
        if state.is_file():
            old = json.loads(state.read_text())
            if old.get("fingerprint") == fp:
                return
            if not cfg.force:
                diff = sorted(k for k in set(old.get("settings", {})) | set(settings)
                              if old.get("settings", {}).get(k) != settings.get(k))
                raise ConfigError(f"{out} holds a build made with other settings (differs in: "
                                  f"{', '.join(diff) or 'source'}); use another --out, or --force to replace it")
            log.warning("--force: removing the previous build in %s", out)
            _remove_owned(out)
            write_text_atomic(state, text)
            return
        if out.is_dir() and any(p.name != STATE_DIR for p in out.iterdir()) and not cfg.force:
            if state.is_file():
                continue  # another shard of this build set the folder up meanwhile: compare with it
            raise ConfigError(f"{out} is not empty and was not made by flowprep; choose an empty or new --out "
                              "(or --force to build into it anyway)")
        (out / STATE_DIR).mkdir(parents=True, exist_ok=True)
        if create_exclusive(state, text):
            return
    raise ConfigError(f"{out}/{STATE_DIR}/config.json keeps changing: is another build with --force running?")


def check_plan(cfg: BuildConfig, plan: Plan) -> None:
    """Refuse to resume into a folder whose clips were planned differently (the source changed).

    Without this, a clip that moved between train and val (its split changed because clips were
    added or removed) would stay on its old side as well, and a deleted source clip would stay in
    the dataset: validation data leaking into training, silently. With ``force`` the clips that are
    no longer planned (gone, or now on the other side) are removed; clips that did not change are
    kept and not rebuilt.
    """
    state = cfg.out / STATE_DIR / "plan.json"
    ids = sorted(j.id for j in plan.jobs)
    old = json.loads(state.read_text(encoding="utf-8")).get("clips") if state.is_file() else None
    if old == ids:
        return
    if old is not None:
        gone = sorted(set(old) - set(ids))
        new = sorted(set(ids) - set(old))
        if not cfg.force:
            example = (gone or new)[0]
            raise ConfigError(
                f"the clips of {cfg.source} changed since {cfg.out} was built ({len(new)} new or moved, "
                f"{len(gone)} gone or moved, e.g. {example}); re-run with --force to bring the dataset up to "
                "date (unchanged clips are kept)")
        for clip_id in gone:
            side, cls, clip = clip_id.split("/", 2)  # ids are "<side>/<class>/<clip>", no "/" inside
            stale = clip_dir(cfg.out, cfg.layout, side, cls, clip)
            if stale.is_dir():
                log.warning("--force: removing %s (no longer planned on this side)", stale)
                shutil.rmtree(stale)
    write_text_atomic(state, dump_json({"clips": ids}))


def job_settings(cfg: BuildConfig, flow_info: dict[str, Any] | None) -> JobSettings:
    return JobSettings(
        out=str(cfg.out), layout=cfg.layout, rgb=cfg.needs_rgb, flow=cfg.needs_flow,
        flow_name=flow_info["name"] if flow_info else None,
        flow_params=dict(flow_info["params"]) if flow_info else {},
        encoding=cfg.encoding.to_dict(), rgb_format=cfg.rgb_format, rgb_quality=cfg.rgb_quality,
        short_side=cfg.short_side, size=(cfg.size[0], cfg.size[1]) if cfg.size else None, frame_step=cfg.frame_step,
        opencv_threads=1, gpus=tuple(cfg.gpus) if cfg.gpus else None,
        slot_scope=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def build(cfg: BuildConfig, on_plan: Callable[[Plan], None] | None = None) -> BuildSummary:
    """Build (or resume) a dataset. See :class:`BuildConfig` for the options.

    Args:
        cfg: the configuration.
        on_plan: called with the plan before clips are built (the CLI prints the split counts).

    Returns:
        A summary; failed clips are listed in it, not raised.

    Raises:
        FlowprepError: bad source, options, output folder or flow backend.
    """
    t0 = time.perf_counter()
    if not cfg.source.exists():
        from flowprep.errors import ArchiveError

        raise ArchiveError(f"source {cfg.source} does not exist")
    if cfg.engine == "dask":
        # Workers run elsewhere, in another working directory: they get absolute paths.
        cfg = dataclasses.replace(cfg, source=cfg.source.resolve(), out=cfg.out.resolve(),
                                  splits_source=cfg.splits_source.resolve() if cfg.splits_source else None)
    if cfg.classes is not None:
        # Before anything is written: an unknown class is a typo, not a reason to touch --out.
        from flowprep.archive import list_classes

        available = list_classes(cfg.source)
        unknown = [c for c in cfg.classes if c not in available]
        if unknown:
            raise ConfigError(f"unknown class(es) {', '.join(unknown)}; {cfg.source} has: {', '.join(available)}")
    flow_info = _resolve_flow(cfg)
    settings = cfg.output_settings()
    if flow_info is not None:
        settings["flow"], settings["flow_params"] = flow_info["name"], flow_info["params"]
    settings["source_identity"] = _source_identity(cfg)
    prepare_output(cfg, settings)
    save_build_state(cfg, flow_info)  # what `flowprep finalize` needs to re-make the plan
    plan = make_plan(cfg)
    check_plan(cfg, plan)
    if on_plan is not None:
        on_plan(plan)
    jobs = select_shard(plan.jobs, *cfg.shard) if cfg.shard else plan.jobs
    js = job_settings(cfg, flow_info)
    bar = ProgressBar(len(jobs), enabled=cfg.progress)
    try:
        results = run_jobs(jobs, js, n_jobs=cfg.effective_jobs(), engine=cfg.engine, scheduler=cfg.scheduler,
                           on_result=bar)
    finally:
        bar.close()
    by_id: dict[str, ClipResult] = {r.id: r for r in results}
    summary = BuildSummary(out=cfg.out, classes=plan.classes, counts=plan.counts(), flow=flow_info,
                           excluded=len(plan.excluded), shard=cfg.shard)
    for r in results:
        if r.status == "done":
            summary.built += 1
            summary.frames += r.frames
        elif r.status == "exists":
            summary.existing += 1
        else:
            summary.failed.append((r.id, r.error))
    summary.failed.sort()
    note_failures(cfg.out, summary.failed)
    summary.pending = sum(not clip_dir(cfg.out, cfg.layout, j.side, j.cls, j.clip).is_dir() for j in plan.jobs)
    # A shard writes the record only when every part is in: whichever shard finishes last does it
    # (two finishing together both write it; finalize is idempotent, byte for byte).
    if cfg.shard is None or summary.pending == 0:
        record = finalize(cfg, plan, flow_info, by_id)
        summary.empty_sides = sorted(f"{c}/{side}" for c, n in record["counts"].items()
                                     for side in ("train", "val") if n[side] == 0)
    else:
        summary.record_written = False
    summary.seconds = time.perf_counter() - t0
    report = {
        "seconds": round(summary.seconds, 3), "built": summary.built, "existing": summary.existing,
        "failed": [{"id": i, "error": e} for i, e in summary.failed], "frames_built": summary.frames,
        "frames_per_second": round(summary.fps, 2), "jobs": cfg.effective_jobs(), "engine": cfg.engine,
        "shard": list(cfg.shard) if cfg.shard else None,
        "timings": {k: round(sum(r.timings.get(k, 0.0) for r in results), 3)
                    for k in ("read", "decode", "write_rgb", "flow", "write_flow")},
    }
    if cfg.shard:
        write_shard_report(cfg.out, cfg.shard, report)
    else:
        write_json_atomic(cfg.out / "build_report.json", report)
    return summary


def build_hmdb5(archive: Path, out: Path, splits: Path | None = None,
                on_plan: Callable[[Plan], None] | None = None, **options: Any) -> BuildSummary:
    """The HMDB5 preset: HMDB51's walk, run, ride_bike, fall_floor and push, in ActionRecognitionNet's
    label order; other options as :class:`BuildConfig` (``classes`` may override the selection)."""
    options.setdefault("classes", list(HMDB5_LABEL_ORDER))
    options.setdefault("source_kind", "hmdb51")
    return build(BuildConfig(source=Path(archive), out=Path(out), splits_source=splits, **options), on_plan)


if sorted(HMDB5_LABEL_ORDER) != sorted(HMDB5_CLASSES):  # pragma: no cover - a guard on the constants
    raise ImportError("HMDB5_LABEL_ORDER and HMDB5_CLASSES disagree")

"""``build`` and ``build_hmdb5``: the build stage as plain functions."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from flowprep.build.config import BuildConfig, fingerprint
from flowprep.build.engine import ProgressBar, run_jobs
from flowprep.build.finalize import finalize
from flowprep.build.job import ClipResult, JobSettings
from flowprep.build.plan import Plan, make_plan
from flowprep.build.shard import select_shard
from flowprep.datasets import HMDB5_CLASSES
from flowprep.errors import ConfigError
from flowprep.layout.paths import STATE_DIR, TMP_DIR
from flowprep.layout.record import RECORD_NAME, write_json_atomic

log = logging.getLogger(__name__)

#: ActionRecognitionNet's label order (labels.txt of NVIDIA's deployable HMDB5 models), so that
#: label ids line up with NVIDIA's pretrained checkpoints.
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


def _resolve_flow(cfg: BuildConfig) -> dict[str, Any] | None:
    """Fail fast (in this process) if the flow backend cannot run; returns its record entry."""
    if not cfg.needs_flow:
        return None
    from flowprep.flow.registry import create_backend, resolve_auto

    name = resolve_auto() if cfg.flow == "auto" else cfg.flow
    params = dict(cfg.flow_params)
    if cfg.gpus:
        params.setdefault("gpu", cfg.gpus[0])
    backend = create_backend(name, **params)
    try:
        info = backend.describe()
    finally:
        backend.close()
    if cfg.gpus:
        info["params"].pop("gpu", None)
        info["device"] = f"{info['device']} (+ GPUs {','.join(map(str, cfg.gpus))})" if len(cfg.gpus) > 1 else info["device"]
    return info


def prepare_output(cfg: BuildConfig, settings: dict[str, Any]) -> None:
    """Create ``cfg.out`` or check that it holds a build of the same configuration.

    Raises:
        ConfigError: the folder holds another configuration's build, or files flowprep did not
            write, and ``force`` is not set. With ``force`` only flowprep's own files are removed.
    """
    out = cfg.out
    state = out / STATE_DIR / "config.json"
    fp = fingerprint(settings)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {out} exists and is not a folder")
    if state.is_file():
        old = json.loads(state.read_text())
        if old.get("fingerprint") != fp:
            if not cfg.force:
                diff = sorted(k for k in set(old.get("settings", {})) | set(settings)
                              if old.get("settings", {}).get(k) != settings.get(k))
                raise ConfigError(f"{out} holds a build made with other settings (differs in: "
                                  f"{', '.join(diff) or 'source'}); use another --out, or --force to replace it")
            log.warning("--force: removing the previous build in %s", out)
            for name in _OWNED:
                p = out / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
    elif out.is_dir() and any(p.name not in (STATE_DIR,) for p in out.iterdir()) and not cfg.force:
        raise ConfigError(f"{out} is not empty and was not made by flowprep; choose an empty or new --out "
                          "(or --force to build into it anyway)")
    (out / STATE_DIR).mkdir(parents=True, exist_ok=True)
    write_json_atomic(state, {"fingerprint": fp, "settings": settings})


def job_settings(cfg: BuildConfig, flow_info: dict[str, Any] | None) -> JobSettings:
    return JobSettings(
        out=str(cfg.out), layout=cfg.layout, rgb=cfg.needs_rgb, flow=cfg.needs_flow,
        flow_name=flow_info["name"] if flow_info else None,
        flow_params=dict(flow_info["params"]) if flow_info else {},
        encoding=cfg.encoding.to_dict(), rgb_format=cfg.rgb_format, rgb_quality=cfg.rgb_quality,
        short_side=cfg.short_side, size=tuple(cfg.size) if cfg.size else None, frame_step=cfg.frame_step,
        opencv_threads=1, gpus=tuple(cfg.gpus) if cfg.gpus else None)


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
    plan = make_plan(cfg)
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
    from flowprep.layout.paths import clip_dir

    all_done = all(clip_dir(cfg.out, cfg.layout, j.side, j.cls, j.clip).is_dir() for j in plan.jobs)
    # A shard writes the record only when every part is in: whichever shard finishes last does it.
    if cfg.shard is None or all_done:
        finalize(cfg, plan, flow_info, by_id)
    else:
        summary.record_written = False
    summary.seconds = time.perf_counter() - t0
    write_json_atomic(cfg.out / (STATE_DIR + "/last_report.json" if cfg.shard else "build_report.json"), {
        "seconds": round(summary.seconds, 3), "built": summary.built, "existing": summary.existing,
        "failed": [{"id": i, "error": e} for i, e in summary.failed], "frames_built": summary.frames,
        "frames_per_second": round(summary.fps, 2), "jobs": cfg.effective_jobs(), "engine": cfg.engine,
        "shard": list(cfg.shard) if cfg.shard else None,
        "timings": {k: round(sum(r.timings.get(k, 0.0) for r in results), 3)
                    for k in ("read", "decode", "write_rgb", "flow", "write_flow")},
    })
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

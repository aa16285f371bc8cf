"""What many processes sharing one output folder need: build state, failure notes, finalize, GPU slots.

A build writes ``<out>/.flowprep/build.json`` (the output-determining configuration, the source path
and the resolved flow backend) before any clip, so that ``flowprep finalize OUT`` can re-make the plan
and write the record of a sharded build from any node, once every part is in.

Everything written here is written aside under a name unique to host, process and call, then renamed:
shards on different nodes often have equal process ids (containers), so a pid alone is not unique.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowprep.builder.config import BuildConfig
from flowprep.errors import ConfigError, DatasetError
from flowprep.layout.paths import STATE_DIR, clip_dir
from flowprep.layout.record import dump_json, unique_tmp, write_text_atomic

log = logging.getLogger(__name__)

STATE_NAME = "build.json"
FAILED_DIR = "failed"
REPORTS_DIR = "reports"
_CONFIG_FIELDS = ("classes", "layout", "modality", "flow", "flow_params", "rgb_format", "rgb_quality",
                  "val_ratio", "seed", "split_by", "official_split", "short_side", "size", "frame_step",
                  "source_kind")


def create_exclusive(path: Path, text: str) -> bool:
    """Create ``path`` with ``text`` unless it exists; True if this call created it.

    The content is written aside and hard-linked into place: ``link`` fails if the name exists, so of
    N processes racing exactly one wins, and nobody ever reads a partial file.
    """
    path = Path(path)
    tmp = unique_tmp(path)
    tmp.write_text(text, encoding="utf-8")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


# --- build state -------------------------------------------------------------------------------


def config_to_state(cfg: BuildConfig, flow_info: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON state ``flowprep finalize`` needs: paths, output fields and the resolved flow."""
    d: dict[str, Any] = {k: getattr(cfg, k) for k in _CONFIG_FIELDS}
    d["size"] = list(cfg.size) if cfg.size else None
    d["encoding"] = cfg.encoding.to_dict()
    d["source"] = str(cfg.source.resolve())
    d["splits_source"] = str(cfg.splits_source.resolve()) if cfg.splits_source else None
    return {"config": d, "flow": flow_info}


def save_build_state(cfg: BuildConfig, flow_info: dict[str, Any] | None) -> None:
    """Write ``<out>/.flowprep/build.json`` unless it already holds the same state (shards start together)."""
    path = cfg.out / STATE_DIR / STATE_NAME
    text = dump_json(config_to_state(cfg, flow_info))
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    write_text_atomic(path, text)


def load_build_state(out: Path, source: Path | None = None,
                     splits: Path | None = None) -> tuple[BuildConfig, dict[str, Any] | None]:
    """The configuration and flow record of the build in ``out`` (``source``/``splits`` override the
    stored paths, for a node that mounts the release elsewhere).

    Raises:
        DatasetError: ``out`` has no build state.
    """
    from flowprep.flow.encoding import FlowEncoding

    path = Path(out) / STATE_DIR / STATE_NAME
    if not path.is_file():
        raise DatasetError(f"{out} has no build state ({STATE_DIR}/{STATE_NAME}); it was not made by "
                           "`flowprep build` (or by a version before 0.2)")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        d = dict(state["config"])
        flow_info = state["flow"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"cannot read build state {path}: {exc}") from exc
    d["encoding"] = FlowEncoding.from_dict(d["encoding"])
    d["size"] = tuple(d["size"]) if d.get("size") else None
    d["source"] = Path(source) if source is not None else Path(d["source"])
    stored_splits = d.pop("splits_source")
    splits = splits if splits is not None else stored_splits
    cfg = BuildConfig(out=Path(out), splits_source=Path(splits) if splits else None, progress=False, **d)
    return cfg, flow_info


# --- failure notes ------------------------------------------------------------------------------


def _note_path(out: Path, clip_id: str) -> Path:
    return Path(out) / STATE_DIR / FAILED_DIR / f"{hashlib.sha1(clip_id.encode()).hexdigest()[:20]}.json"


def note_failures(out: Path, failed: list[tuple[str, str]]) -> None:
    """Remember why clips failed, for a record written later by another process."""
    for clip_id, error in failed:
        p = _note_path(out, clip_id)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(p, dump_json({"id": clip_id, "error": error}))


def read_failures(out: Path) -> dict[str, str]:
    """clip id -> last recorded failure reason."""
    folder = Path(out) / STATE_DIR / FAILED_DIR
    notes: dict[str, str] = {}
    if folder.is_dir():
        for p in sorted(folder.glob("*.json")):
            try:
                d = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # a note is a courtesy; a torn one only loses the reason
            notes[d["id"]] = d["error"]
    return notes


def write_shard_report(out: Path, shard: tuple[int, int], report: dict[str, Any]) -> Path:
    """``<out>/.flowprep/reports/shard-K-of-N.json``: one file per shard, never shared."""
    k, n = shard
    p = Path(out) / STATE_DIR / REPORTS_DIR / f"shard-{k}-of-{n}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(p, dump_json(report))
    return p


def _shard_counts(out: Path) -> set[int]:
    folder = Path(out) / STATE_DIR / REPORTS_DIR
    ns = set()
    for p in folder.glob("shard-*-of-*.json") if folder.is_dir() else []:
        try:
            ns.add(int(p.stem.rsplit("-", 1)[1]))
        except ValueError:
            continue
    return ns


# --- finalize from state ------------------------------------------------------------------------


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


def finalize_from_state(out: Path, allow_missing: bool = False, write: bool = True,
                        source: Path | None = None, splits: Path | None = None) -> FinalizeResult:
    """Re-make the plan from ``<out>/.flowprep/build.json`` and write the record once all clips are in.

    Args:
        out: the output folder of a (sharded) build.
        allow_missing: write the record even if clips are missing (they are recorded as failed, and
            ``flowprep verify`` reports them).
        write: False only checks (what ``flowprep verify`` does on a folder without a record).
        source, splits: override the stored release paths.

    Idempotent: the record depends only on the plan and on what is on disk, so any number of calls,
    in any process, write the same bytes.

    Raises:
        DatasetError: no build state; ConfigError: the source is not the one the build used.
    """
    from flowprep.builder.finalize import finalize
    from flowprep.builder.job import ClipResult
    from flowprep.builder.plan import make_plan
    from flowprep.builder.shard import shard_of

    out = Path(out)
    cfg, flow_info = load_build_state(out, source, splits)
    if not cfg.source.exists():
        raise ConfigError(f"the release {cfg.source} of this build is not reachable here; "
                          "pass --source (and --splits) with its path on this node")
    _check_source(out, cfg)
    plan = make_plan(cfg)
    notes = read_failures(out)
    result = FinalizeResult(out=out, total=len(plan.jobs))
    for job in plan.jobs:
        if not clip_dir(out, cfg.layout, job.side, job.cls, job.clip).is_dir():
            result.missing.append((job.id, notes.get(job.id, "not built")))
    ns = _shard_counts(out)
    if result.missing and len(ns) == 1:
        n = ns.pop()
        owner = shard_of([j.id for j in plan.jobs], n)
        result.owner = {cid: f"{owner[cid]}/{n}" for cid, _ in result.missing}
    if write and (allow_missing or not result.missing):
        results = {cid: ClipResult(cid, "failed", error=why) for cid, why in result.missing}
        finalize(cfg, plan, flow_info, results)
        result.record_written = True
    return result


def _check_source(out: Path, cfg: BuildConfig) -> None:
    """Refuse a release that is not the one the build used (names and archive sizes differ)."""
    path = out / STATE_DIR / "config.json"
    if not path.is_file():
        return
    stored = json.loads(path.read_text(encoding="utf-8")).get("settings", {}).get("source_identity")
    here = [[p.name, None if p.is_dir() else p.stat().st_size]
            for p in [cfg.source] + ([cfg.splits_source] if cfg.splits_source else [])]
    if stored is not None and stored != here:
        raise ConfigError(f"{cfg.source} is not the release {out} was built from (built from {stored})")


# --- per-process worker slots and GPUs ----------------------------------------------------------

_SLOTS: dict[tuple[int, str], tuple[int, int]] = {}


def worker_slot(scope: str, root: Path | None = None) -> int:
    """This process's worker index on this host within ``scope`` (one build run): 0, 1, 2, ...

    Each process holds an exclusive ``flock`` on ``<tmp>/flowprep-slots/<scope>/<k>.lock`` for its
    lifetime and takes the lowest free ``k``. The kernel drops the lock when the process dies, so a
    restarted worker takes the freed index; the files live on the local disk, so the numbering is
    per host (as GPU ordinals are).
    """
    import fcntl

    key = (os.getpid(), scope)
    if key in _SLOTS:
        return _SLOTS[key][0]
    safe = hashlib.sha1(scope.encode()).hexdigest()[:16]
    folder = Path(root or tempfile.gettempdir()) / "flowprep-slots" / safe
    folder.mkdir(parents=True, exist_ok=True)
    k = 0
    while True:
        fd = os.open(folder / f"{k}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            k += 1
            continue
        _SLOTS[key] = (k, fd)  # the fd stays open: closing it would free the slot
        return k


def worker_gpu(gpus: tuple[int, ...] | None, scope: str) -> int | None:
    """The CUDA ordinal this worker process binds, or None (no GPU visible: the backend's default).

    * ``--gpus`` given: ``gpus[slot % len(gpus)]`` with this process's :func:`worker_slot`.
    * otherwise the devices this process sees (``CUDA_VISIBLE_DEVICES``, Slurm, ``nvidia-smi``; see
      :func:`flowprep.flow.gpus.discover_gpus`), taken by slot in the order of their physical ids.
      Ordering by id, not by position, matters under dask-cuda, which gives each worker the same
      devices in a rotated order: slot k still means one physical device on every worker.
    """
    from flowprep.flow.gpus import discover_gpus, gpu_for_worker

    if gpus:
        return gpus[0] if len(gpus) == 1 else gpu_for_worker(worker_slot(scope), list(gpus))
    visible = discover_gpus()
    if not visible:
        return None
    ordered = sorted(visible, key=lambda g: (not g.ident.isdigit(), int(g.ident) if g.ident.isdigit() else 0,
                                             g.ident))
    if len(ordered) == 1:
        return ordered[0].index
    return ordered[worker_slot(scope) % len(ordered)].index

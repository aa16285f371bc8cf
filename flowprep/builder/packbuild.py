"""A packed build (``flowprep build --pack webdataset``): which clips go into which group's shards.

The clip job commits a finished clip as one staged tar, ``<side>/<class>/<clip>.tar`` (its images
encoded in memory: no file per frame; same commit rule as a folder: written aside, renamed into
place); packing then moves finished clips into shards (:mod:`flowprep.builder.pack`). A build
without ``--shard`` packs at its end; a ``--shard K/N`` job packs its own clips into its own shards
(``train-kKofN-000000.tar``) when its clips are done, and whoever writes the record (the last job,
or ``flowprep finalize``) packs what an interrupted job left and stitches the index.

A clip's sample key is its position among its side's clips of the plan, so every job of a sharded
build, ``finalize`` and ``flowprep pack`` of the same dataset give a clip the same key.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

from flowprep.builder.config import BuildConfig
from flowprep.builder.folder import BuildFolder
from flowprep.builder.job import clip_entry
from flowprep.builder.pack import PackJob, PackState, clip_keys, count_staged, pack_group, staged_path, write_staged
from flowprep.builder.plan import ClipJob, Plan
from flowprep.builder.shard import shard_of
from flowprep.errors import ConfigError, DatasetError
from flowprep.fsio.owned import remove_inside
from flowprep.fsio.paths import name_problem
from flowprep.fsio.writing import atomic_path
from flowprep.layout.base import SIDES
from flowprep.layout.packed import SHARDS_DIR, PackedClip, iter_samples
from flowprep.layout.paths import STATE_DIR, TMP_DIR
from flowprep.layout.registry import get_layout

log = logging.getLogger(__name__)


def staged(cfg: BuildConfig, job: ClipJob) -> Path:
    """Where the clip job of a packed build commits ``job``'s clip (a tar of its images)."""
    return staged_path(get_layout(cfg.layout).clip_dir(cfg.out, job.side, job.cls, job.clip))


def _entry(cfg: BuildConfig, job: ClipJob, lost: dict[str, int]) -> dict[str, Any]:
    frames, flows = count_staged(staged(cfg, job), cfg.needs_rgb)
    return clip_entry(job, frames, flows if cfg.needs_flow else 0, lost.get(job.id, 0)).to_dict()


def pack_clips(
    cfg: BuildConfig, plan: Plan, part: tuple[int, int] | None, parts: int | None, folder: BuildFolder
) -> list[str]:
    """Pack the finished, unpacked clip folders of group ``part`` (None: the whole build) into shards.

    Args:
        part: ``(k, n)`` to pack only part k's clips (a shard job), or None for every clip: each
            under its owner part when ``parts`` (the build's N) is given, else as one group.
        parts: N of a sharded build, or None.

    Returns:
        The names of the shards written now.
    """
    if not get_layout(cfg.layout).packable:
        raise ConfigError("--pack needs the TAO layout")
    keys = clip_keys({"id": j.id, "side": j.side} for j in plan.jobs)
    owner = shard_of([j.id for j in plan.jobs], parts) if parts else {}
    lost = folder.read_decode_errors()
    groups: dict[tuple[str, tuple[int, int] | None], list[PackJob]] = {}
    for job in plan.jobs:
        group = (part[0], part[1]) if part else ((owner[job.id], parts) if parts else None)
        if part is not None and owner.get(job.id, part[0]) != part[0]:
            continue
        path = staged(cfg, job)
        jobs = groups.setdefault((job.side, group), [])
        if path.is_file():
            jobs.append(PackJob(_entry(cfg, job, lost), keys[job.id], path))
    state = PackState(cfg.out)
    written = []
    for (side, group), jobs in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1] or (0, 0))):
        written += pack_group(state, jobs, side, group, cfg.shard_size, remove=True)
    _remove_empty_folders(cfg.out)
    return written


def pack_own(cfg: BuildConfig, plan: Plan, folder: BuildFolder) -> list[str]:
    """Pack this run's clips: part K's for ``--shard K/N``, else all of them."""
    if cfg.shard is None:
        return pack_clips(cfg, plan, None, None, folder)
    k, n = cfg.shard
    # only part k's clips; shard_of is computed over the whole plan as the job selection is
    return pack_clips(cfg, plan, (k, n), n, folder)


def pack_leftovers(cfg: BuildConfig, plan: Plan, folder: BuildFolder) -> dict[str, dict[str, Any]]:
    """Pack every finished clip folder not in a shard yet (under its owner part when the build was
    sharded); returns clip id -> its entry in the shard notes."""
    ns = folder.shard_counts() | ({cfg.shard[1]} if cfg.shard else set())
    pack_clips(cfg, plan, None, ns.pop() if len(ns) == 1 else None, folder)
    return PackState(cfg.out).packed_clips()


def _remove_empty_folders(out: Path) -> None:
    """Drop the class and side folders that packing emptied (rmdir: a non-empty one stays)."""
    for side in SIDES:
        d = Path(out) / side
        if d.is_symlink() or not d.is_dir():
            continue
        for cls in os.listdir(d):
            try:
                os.rmdir(d / cls)
            except OSError:
                continue
        try:
            os.rmdir(d)
        except OSError:
            continue


def write_clip_folder(out: Path, clip_id: str, clip: PackedClip) -> bool:
    """Write one sample's images as the clip folder ``<out>/<clip_id>`` (atomically: a temporary
    folder renamed into place); False when the folder exists already.

    Raises:
        DatasetError: ``clip_id`` is not ``<side>/<class>/<clip>`` of plain names (a damaged shard).
    """
    parts = clip_id.split("/")
    if len(parts) != 3 or parts[0] not in SIDES or any(name_problem(p) for p in parts):
        raise DatasetError(f"{clip.where}: {clip_id!r} is not a clip id (side/class/clip); the shard is damaged")
    final = Path(out).joinpath(*parts)
    if final.is_dir():
        return False
    tmp = Path(out) / TMP_DIR / f"unpack.{uuid.uuid4().hex[:12]}"
    for rel, data in sorted(clip.members.items()):
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(data)
    tmp.mkdir(parents=True, exist_ok=True)  # a sample without images still becomes a folder
    final.parent.mkdir(parents=True, exist_ok=True)
    os.rename(tmp, final)
    return True


def unpack_in_place(out: Path) -> int:
    """Turn every published shard of ``out`` back into staged clips and remove the shards, their
    notes and the index (``--force`` on a changed plan: the sample keys depend on the plan, so the
    clips are packed again). Returns the clips restored."""
    state = PackState(out)
    restored = 0
    for name in sorted(state.published()):
        for _, _, clip in iter_samples(state.shards / name):
            cid = str((clip.entry or {}).get("id"))
            parts = cid.split("/")
            if len(parts) != 3 or parts[0] not in SIDES or any(name_problem(p) for p in parts):
                raise DatasetError(f"{clip.where}: {cid!r} is not a clip id (side/class/clip); the shard is damaged")
            path = staged_path(Path(out).joinpath(*parts))
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path, keep_suffix=False) as tmp:  # a failed write leaves no partial file
                    write_staged(tmp, sorted((rel, bytes(data)) for rel, data in clip.members.items()))
                restored += 1
        remove_inside(out, f"{SHARDS_DIR}/{name}", (SHARDS_DIR,))
    if state.shards.is_dir():
        remove_inside(out, SHARDS_DIR, (SHARDS_DIR,))
    if state.notes.is_dir():
        remove_inside(out, f"{STATE_DIR}/{state.notes.name}", (STATE_DIR,))
    return restored

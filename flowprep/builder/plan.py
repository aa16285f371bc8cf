"""Plan a build: list the source's videos, select classes, split train/val, make one job per clip."""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowprep.archive.bounded import MemberRef
from flowprep.archive.reader import list_videos
from flowprep.archive.scan import VideoEntry
from flowprep.builder.config import BuildConfig
from flowprep.builder.folder import BuildFolder
from flowprep.datasets.base import EXCLUDED_REASONS, SplitRequest, stem
from flowprep.datasets.sources import split_source
from flowprep.datasets.split import side_counts
from flowprep.errors import ConfigError
from flowprep.fsio.paths import name_problem, printable
from flowprep.layout.names import check_class_name, warn_collisions

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[\s/\\\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ClipJob:
    """One clip to build. Picklable; everything a worker needs besides the job settings.

    Attributes:
        id: ``"<side>/<class>/<clip>"``, unique in the dataset, stable across runs.
        side: ``"train"`` or ``"val"``.
        cls: class name; label: its id (index in the label order).
        clip: output folder name (the file name without extension, whitespace and slashes -> ``_``).
        name: the source file name.
        ref: where to read the video.
    """

    id: str
    side: str
    cls: str
    label: int
    clip: str
    name: str
    ref: MemberRef


@dataclass
class Plan:
    """The output of :func:`make_plan`: classes in label order, jobs sorted by id, split facts."""

    classes: list[str]
    jobs: list[ClipJob]
    split: dict[str, Any]
    source: dict[str, Any]
    excluded: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {c: {"train": 0, "val": 0} for c in self.classes}
        for job in self.jobs:
            out[job.cls][job.side] += 1
        return out


def clip_folder_name(name: str) -> str:
    """Folder name for a clip file: its stem, with whitespace, slashes and control characters as ``_``.

    HMDB51 names keep their ``#``, ``(``, ``&``, ``!``, ``'`` and dots: they are legal file names and
    TAO uses the folder name only as an id.
    """
    return _UNSAFE.sub("_", stem(name)) or "_"


def class_folder_name(cls: str) -> str:
    """Folder name for a class: whitespace, slashes and control characters as ``_``.

    Raises:
        ConfigError: the name cannot be a folder or a class name even so (e.g. ``..``, not valid
            UTF-8, or a ``;`` that would shift DeepStream's labels: see
            :func:`~flowprep.layout.names.class_name_problem`).
    """
    return check_class_name(_UNSAFE.sub("_", cls) or "_", "class")


def _source_info(cfg: BuildConfig, n_videos: int) -> dict[str, Any]:
    def describe(path: Path) -> dict[str, Any]:
        if path.is_dir():
            return {"name": path.name, "kind": "folder"}
        return {"name": path.name, "size": path.stat().st_size}

    files = [describe(cfg.source)]
    for extra in (cfg.splits_source, cfg.train_list, cfg.val_list):
        if extra is not None:
            files.append(describe(extra))
    return {"kind": cfg.source_kind, "files": files, "videos_selected": n_videos}


def _usable(videos: list[VideoEntry]) -> tuple[dict[str, list[VideoEntry]], list[str]]:
    """Videos by class whose clip folder name is valid, and ``"<class>/<file> (skipped: why)"`` of the rest.

    Done before the split, so a skipped clip takes no one's place on a side.
    """
    by_class: dict[str, list[VideoEntry]] = defaultdict(list)
    skipped: list[str] = []
    for v in videos:
        why = name_problem(clip_folder_name(v.name))
        if why is None:
            by_class[v.cls].append(v)
        else:
            log.warning("skipping clip %r of class %r: %s", printable(v.name), printable(v.cls), why)
            skipped.append(f"{printable(v.cls)}/{printable(v.name)} (skipped: {why})")
    return by_class, skipped


def _class_folders(classes: list[str]) -> dict[str, str]:
    """class -> folder name: no whitespace or slashes (folder names and tokens of whitespace-separated
    list files); ConfigError for a name that cannot be a folder, or two classes sharing one."""
    folder = {c: class_folder_name(c) for c in classes}
    clash = sorted({f for f in folder.values() if list(folder.values()).count(f) > 1})
    if clash:
        raise ConfigError(f"classes {', '.join(c for c in classes if folder[c] in clash)} map to one folder name")
    for c in classes:
        if folder[c] != c:
            log.warning("class %r is written as %r (no whitespace or slashes in folder names)", c, folder[c])
    warn_collisions(folder.values(), "build")
    return folder


def make_plan(cfg: BuildConfig, folder: BuildFolder) -> Plan:
    """List, select and split the source's clips.

    The split source (:func:`flowprep.datasets.sources.split_source`) decides the sides, and the
    classes and their label order when it carries them (UCF101's classInd.txt, labelled lists).

    Raises:
        ConfigError: unknown class, nothing selected, split files missing a class or not matching
            the release, name clashes.
        ArchiveError: unreadable source.
    """
    unreadable: list[tuple[str, str, str]] = []
    videos = list_videos(cfg.source, folder.cache, cfg.classes, skipped=unreadable)
    by_class, skipped = _usable(videos)
    # clips the listing could not read (a FIFO, /dev/zero, a dangling link): listed and counted too
    skipped += [f"{printable(c)}/{printable(n)} (skipped: {why})" for c, n, why in unreadable]
    selected = list(cfg.classes) if cfg.classes is not None else sorted({v.cls for v in videos})
    folder_of = _class_folders(selected)  # before anything uses a class name
    _check_selection(cfg, bool(videos), selected, by_class)
    clips = {c: by_class[c] for c in selected}
    assignment = split_source(split_request(cfg), clips).assign(clips, selected)
    classes, sides, split = assignment.classes, assignment.sides, assignment.split
    split["counts"] = {folder_of[c]: n for c, n in side_counts(sides).items()}
    for c, n in split["counts"].items():
        if n["val"] == 0 or n["train"] == 0:
            log.warning("class %s has %d train and %d val clip(s)", c, n["train"], n["val"])
    excluded: list[str] = list(skipped)
    jobs = _clip_jobs(classes, folder_of, by_class, sides, excluded)
    return Plan(
        classes=[folder_of[c] for c in classes],
        jobs=jobs,
        split=split,
        source=_source_info(cfg, len(jobs)),
        excluded=excluded,
    )


def split_request(cfg: BuildConfig) -> SplitRequest:
    """What ``cfg`` asks of the split, for :func:`flowprep.datasets.sources.split_source`."""
    return SplitRequest(
        release=cfg.source,
        splits=cfg.splits_source,
        official_split=cfg.official_split,
        train_list=cfg.train_list,
        val_list=cfg.val_list,
        val_ratio=cfg.val_ratio,
        seed=cfg.seed,
        split_by=cfg.split_by,
        allow_missing=cfg.allow_missing_clips,
        classes_given=cfg.classes is not None,
    )


def _check_selection(
    cfg: BuildConfig, any_video: bool, classes: list[str], by_class: dict[str, list[VideoEntry]]
) -> None:
    """Raise :class:`ConfigError` when no selected class, or only some, has a usable video."""
    empty = [c for c in classes if not by_class.get(c)]
    if not any_video or len(empty) == len(classes):
        raise ConfigError(
            f"empty selection: no video found for class(es) {', '.join(classes) or '(none)'} in {cfg.source}"
        )
    if empty:
        raise ConfigError(f"no video found for class(es) {', '.join(empty)} in {cfg.source}")


def _clip_jobs(
    classes: list[str],
    folder: dict[str, str],
    by_class: dict[str, list[VideoEntry]],
    sides: dict[str, dict[str, str]],
    excluded: list[str],
) -> list[ClipJob]:
    """One job per clip on a side, sorted by id; clips the split leaves out are appended to ``excluded``
    (``"<class>/<file> (<reason>)"``, reasons from :data:`~flowprep.datasets.base.EXCLUDED_REASONS`).

    Raises:
        ConfigError: two clips of a class map to one folder name.
    """
    jobs: list[ClipJob] = []
    for label, cls in enumerate(classes):
        seen: dict[str, str] = {}
        fcls = folder[cls]
        for v in by_class[cls]:
            side = sides[cls][v.name]
            if side in EXCLUDED_REASONS:
                excluded.append(f"{fcls}/{v.name} ({EXCLUDED_REASONS[side]})")
                continue
            clip = clip_folder_name(v.name)
            if clip in seen:
                raise ConfigError(f"class {cls}: clips {seen[clip]!r} and {v.name!r} map to one folder {clip!r}")
            seen[clip] = v.name
            jobs.append(
                ClipJob(id=f"{side}/{fcls}/{clip}", side=side, cls=fcls, label=label, clip=clip, name=v.name, ref=v.ref)
            )
    jobs.sort(key=lambda j: j.id)
    return jobs

"""The output folder of a build and its state: the one owner of every path under ``<out>/.flowprep/``.

``<out>/.flowprep/`` holds::

    config.json   fingerprint and settings of the build (created exclusively: concurrent shards agree)
    owned.json    the top-level entries of <out> flowprep wrote: the only ones --force may remove
    build.json    what `flowprep finalize` needs to re-make the plan (config, source paths, flow)
    plan.json     the clip ids of the last plan (a changed source is refused unless --force)
    lock          pid and host of the build running now (not taken by shards, which run together)
    failed/       one note per failed clip; reports/  one report per shard
    decode/       one note per built clip that lost frames to decode errors
    pack/         one note per published shard of a packed build (its clips, offsets, sha256)
    cache/        the selected classes' inner archives, unpacked from an outer archive

Everything is written aside under a name unique to host, process and call, then renamed: shards on
different nodes often have equal process ids (containers), so a pid alone is not unique. Every
deletion goes through :func:`flowprep.fsio.owned.remove_inside`, confined to entries listed in
``owned.json`` (an ownership :class:`~flowprep.fsio.owned.Manifest`) and to the clip folders under
``train/``, ``val/`` and ``rawframes/``; the lock is a :class:`~flowprep.fsio.lock.FolderLock`.

The build state, notes and shard reports are written and read by
:class:`~flowprep.builder.folder_notes.BuildNotes`, a part of :class:`BuildFolder`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowprep.builder.config import fingerprint
from flowprep.builder.folder_notes import BuildNotes, read_state_fields
from flowprep.builder.pack import staged_path
from flowprep.errors import ConfigError, DatasetError, OutputError
from flowprep.fsio.lock import FolderLock
from flowprep.fsio.owned import Manifest, removable, remove_inside
from flowprep.fsio.writing import create_exclusive, dump_json, is_tmp_of, write_text_atomic
from flowprep.layout.paths import STATE_DIR, TMP_DIR
from flowprep.layout.record import RECORD_NAME
from flowprep.layout.registry import DEFAULT_LAYOUT, LAYOUTS, frame_tops, get_layout

log = logging.getLogger(__name__)

REPORT_NAME = "build_report.json"
#: top-level entries of <out> every build writes (a layout adds its own: Layout.tops)
COMMON_TOPS = (RECORD_NAME, "labels.txt", "label_map.json", REPORT_NAME, TMP_DIR)
ALL_TOPS = frozenset(COMMON_TOPS + tuple(t for layout in LAYOUTS.values() for t in layout.tops))


@contextlib.contextmanager
def output_errors(out: Path) -> Iterator[None]:
    """Turn an OSError raised while writing the output folder (read-only, full) into one line."""
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise OutputError(f"cannot write into {out}: {exc.strerror or exc}{where}") from None


class BuildFolder(BuildNotes):
    """One output folder: its paths, fingerprint, ownership manifest, plan, lock and notes (the
    notes' methods are :class:`~flowprep.builder.folder_notes.BuildNotes`')."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.state = self.out / STATE_DIR
        self.config = self.state / "config.json"
        self.owned_file = self.state / "owned.json"
        self.build_state = self.state / "build.json"
        self.plan_file = self.state / "plan.json"
        self.lock_file = self.state / "lock"
        self.failed_dir = self.state / "failed"
        self.decode_dir = self.state / "decode"
        self.pack_dir = self.state / "pack"
        self.reports_dir = self.state / "reports"
        self.cache = self.state / "cache"
        self.tmp = self.out / TMP_DIR
        self.record = self.out / RECORD_NAME
        self.report = self.out / REPORT_NAME
        self.lock = FolderLock(self.out, f"{STATE_DIR}/lock", "build")
        self.owned_manifest = Manifest(
            self.out,
            f"{STATE_DIR}/owned.json",
            ALL_TOPS,
            DatasetError,
            f"remove the output folder {self.out} and build again",
        )
        self._made_out = False

    # --- ownership --------------------------------------------------------------------------

    @staticmethod
    def tops(layout: str) -> tuple[str, ...]:
        """Top-level entries a build of ``layout`` writes."""
        return COMMON_TOPS + get_layout(layout).tops

    def owned(self) -> set[str]:
        """Entries flowprep wrote here (a folder built before the manifest existed: its layout's)."""
        if os.path.lexists(self.owned_file):
            return self.owned_manifest.read()  # a tampered manifest cannot widen the set
        if self.config.is_file():
            layout = read_state_fields(self.config, settings=dict).get("settings", {}).get("layout", DEFAULT_LAYOUT)
            return set(self.tops(layout if layout in LAYOUTS else DEFAULT_LAYOUT))
        return set()

    def _check_conflicts(self, layout: str, owned: set[str]) -> None:
        for name in self.tops(layout):
            if name not in owned and os.path.lexists(self.out / name):
                raise ConfigError(
                    f"{self.out / name} was not written by flowprep and a build would replace "
                    "it; move it away or choose another --out"
                )

    def _claim(self, layout: str, owned: set[str]) -> None:
        """Record (before writing them) the entries this build will write."""
        entries = sorted(owned | set(self.tops(layout)))
        if not self.owned_file.is_file() or sorted(self.owned()) != entries:
            self.owned_manifest.write(entries)

    def remove(self, rel: str, tops: tuple[str, ...] | set[str]) -> bool:
        """Delete ``<out>/rel`` if it lies inside one of ``tops`` (see :func:`remove_inside`)."""
        return remove_inside(self.out, rel, tops)

    def _prune(self, owned: set[str]) -> None:
        """``--force``: remove the previous build (only what the manifest lists) and its state."""
        state = [
            str(p.relative_to(self.out))
            for p in (
                self.failed_dir,
                self.decode_dir,
                self.pack_dir,
                self.reports_dir,
                self.build_state,
                self.plan_file,
                self.owned_file,
            )
        ]
        # Temporary siblings of owned files that a process killed mid-write left behind.
        stale = {entry for entry in os.listdir(self.out) if any(is_tmp_of(entry, name) for name in owned)}
        owned = owned | stale
        # Check every entry before removing any: a refusal (a symlinked train/) must leave the
        # previous build whole, not without its record.
        for name in sorted(owned):
            removable(self.out, name, owned)
        for rel in state:
            removable(self.out, rel, (STATE_DIR,))
        log.warning("--force: removing the previous build in %s", self.out)
        for name in sorted(owned):
            self.remove(name, owned)
        for rel in state:
            self.remove(rel, (STATE_DIR,))

    def forget(self) -> None:
        """Remove the state :meth:`prepare` wrote (only for a build that failed before any clip)."""
        for p in (self.build_state, self.plan_file, self.owned_file, self.config):
            self.remove(str(p.relative_to(self.out)), (STATE_DIR,))

    # --- fingerprint ------------------------------------------------------------------------

    def prepare(self, settings: dict[str, Any], layout: str, force: bool) -> None:
        """Create the folder or check it holds a build of the same settings; claim what it will write.

        Safe when N shards run it at once: the first to create ``config.json`` (exclusively) sets the
        fingerprint, the others compare against it. ``--force`` is not meant for concurrent shards.

        Raises:
            ConfigError: another configuration's build, or a non-empty folder flowprep did not make,
                without ``force``; or an entry the build would replace that flowprep did not write.
        """
        fp = fingerprint(settings)
        text = dump_json({"fingerprint": fp, "settings": settings})
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"output {self.out} exists and is not a folder")
        for _ in range(3):
            if self.config.is_file():
                self._reuse(fp, settings, text, layout, force)
                return
            if self.out.is_dir() and any(p.name != STATE_DIR for p in self.out.iterdir()) and not force:
                if self.config.is_file():
                    continue  # another shard of this build set the folder up meanwhile: compare with it
                raise ConfigError(
                    f"{self.out} is not empty and was not made by flowprep; choose an empty or "
                    "new --out (or --force to build into it anyway)"
                )
            self._check_conflicts(layout, self.owned())
            self.state.mkdir(parents=True, exist_ok=True)
            if create_exclusive(self.config, text):
                self._claim(layout, self.owned())
                return
        raise ConfigError(f"{self.config} keeps changing: is another build with --force running?")

    def _reuse(self, fp: str, settings: dict[str, Any], text: str, layout: str, force: bool) -> None:
        old = read_state_fields(self.config, settings=dict)
        owned = self.owned()
        self._check_conflicts(layout, owned)
        if old.get("fingerprint") == fp:
            self._claim(layout, owned)
            return
        if not force:
            before = old.get("settings", {})
            diff = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
            raise ConfigError(
                f"{self.out} holds a build made with other settings (differs in: "
                f"{', '.join(diff) or 'source'}); use another --out, or --force to replace it"
            )
        self._prune(owned)
        write_text_atomic(self.config, text)
        self._claim(layout, set())

    def stored_source_identity(self) -> list[Any] | None:
        """The source identity recorded by the build (None for a folder without one)."""
        if not self.config.is_file():
            return None
        return read_state_fields(self.config, settings=dict).get("settings", {}).get("source_identity")

    # --- plan -------------------------------------------------------------------------------

    def plan_changed(self, ids: list[str]) -> bool:
        """Whether a previous plan exists and lists other clips than ``ids``."""
        old = read_state_fields(self.plan_file, clips=list).get("clips") if self.plan_file.is_file() else None
        return old is not None and old != sorted(ids)

    def check_plan(self, ids: list[str], layout: str, force: bool, source: Path) -> None:
        """Refuse to resume into a folder whose clips were planned differently (the source changed).

        Without this, a clip that moved between train and val would stay on its old side as well,
        and a deleted source clip would stay in the dataset: validation data leaking into training.
        With ``force`` the clips no longer planned are removed (confined to ``train/``, ``val/``,
        ``rawframes/``); unchanged clips are kept and not rebuilt.
        """
        ids = sorted(ids)
        old = read_state_fields(self.plan_file, clips=list).get("clips") if self.plan_file.is_file() else None
        if old is not None and not all(isinstance(c, str) for c in old):
            raise DatasetError(
                f"cannot read {self.plan_file}: a clip id that is not text (damaged or edited by hand); "
                f"remove the output folder {self.out} and build again"
            )
        if old == ids:
            return
        if old is not None:
            gone = sorted(set(old) - set(ids))
            new = sorted(set(ids) - set(old))
            if not force:
                raise ConfigError(
                    f"the clips of {source} changed since {self.out} was built ({len(new)} new or moved, "
                    f"{len(gone)} gone or moved, e.g. {(gone or new)[0]}); re-run with --force to bring the "
                    "dataset up to date (unchanged clips are kept)"
                )
            for clip_id in gone:
                self.remove_clip(clip_id, layout)
        write_text_atomic(self.plan_file, dump_json({"clips": ids}))

    def remove_clip(self, clip_id: str, layout: str) -> None:
        """Remove the folder of clip ``"<side>/<class>/<clip>"`` (an id read back from plan.json)."""
        parts = clip_id.split("/") if isinstance(clip_id, str) else []
        if len(parts) != 3:
            raise ConfigError(
                f"{self.plan_file}: {clip_id!r} is not a clip id; remove {self.state} and rebuild with --force"
            )
        rel = get_layout(layout).clip_dir(Path(), *parts)
        if (self.out / rel).is_dir() or (self.out / rel).is_symlink():
            log.warning("--force: removing %s (no longer planned on this side)", self.out / rel)
        self.remove(str(rel), frame_tops())
        staged = staged_path(self.out / rel)  # a packed build's finished clip
        if get_layout(layout).packable and os.path.lexists(staged):
            self.remove(str(staged.relative_to(self.out)), frame_tops())

    def discard_tmp(self, name: str) -> None:
        """Remove ``<out>/.flowprep-tmp/<name>`` (a clip's unfinished folder)."""
        try:
            self.remove(f"{TMP_DIR}/{name}", (TMP_DIR,))
        except OSError as exc:
            # Cleanup after another error: a leftover is harmless (ignored, removed by the next
            # finalize), and raising here would hide the error that matters.
            log.warning("could not remove %s/%s: %s", self.tmp, name, exc)

    def clear_tmp(self) -> None:
        """Remove ``<out>/.flowprep-tmp/`` (every clip is finished)."""
        self.remove(TMP_DIR, (TMP_DIR,))

    # --- lock -------------------------------------------------------------------------------

    def acquire(self, shard: bool) -> None:
        """Hold ``.flowprep/lock`` for this run (shards only check nobody else holds it).

        Raises:
            ConfigError: another build holds the folder (pid and host named); a lock left by a dead
                process on this host is taken over.
        """
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"output {self.out} exists and is not a folder")
        if self.out.is_symlink() and not self.out.exists():
            raise ConfigError(f"output {self.out} is a symlink to nothing (dangling, or a loop)")
        for own in (self.state, self.tmp):  # flowprep's own folders: a link would send writes elsewhere
            if own.is_symlink():
                raise ConfigError(f"{own} is a symlink; flowprep writes its state only inside {self.out}: remove it")
        if not shard:
            self._made_out = self._made_out or not self.out.exists()
            self.out.mkdir(parents=True, exist_ok=True)
        self.lock.check(take=not shard)

    def release(self) -> None:
        """Drop the lock taken by :meth:`acquire` (only if it is still ours)."""
        if not self.lock.held:
            return
        self.lock.release()
        if not self.config.exists():
            # A refused build leaves nothing behind; rmdir fails (harmlessly) on a folder in use.
            for folder in [self.state] + ([self.out] if self._made_out else []):
                try:
                    folder.rmdir()
                except OSError:
                    break  # not empty: it holds a cache, another shard's state or the user's files

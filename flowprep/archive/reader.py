"""Listing and reading video releases: class folders, archives of class folders, and HMDB51's RAR of RARs.

A *source* is one of:

1. a folder of class folders, ``root/<class>/<clip>.avi``;
2. an archive (RAR, zip, tar, compressed tar) holding ``<class>/<clip>.avi``, possibly under a top folder;
3. an archive holding one archive per class (HMDB51's ``hmdb51_org.rar`` holds ``walk.rar``, ...,
   each holding ``walk/<clip>.avi``);
4. a folder holding one archive per class (case 3 unpacked once).

A folder whose only visible content is one sub-folder (``unar hmdb51_org.rar`` makes
``folder/hmdb51_org/<class>.rar``) is read as that sub-folder, unless the sub-folder holds clips
itself (then it is the one class).

A clip's class is the name of the folder it sits in, or, inside a per-class archive, that archive's
stem. Per-class archives nested in an outer archive are extracted (only for the selected classes)
into a cache folder (:mod:`flowprep.archive.cache`); clips are never unpacked:
:func:`~flowprep.archive.bounded.read_member` reads them into memory from their archive. Members
with unsafe names (absolute, ``..``) or that are links or devices are skipped with a warning and
never written anywhere.

What a source holds is found by :mod:`flowprep.archive.scan` (listings only); this module selects
classes, extracts the selected per-class archives and reads split and list files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterable
from pathlib import Path

from flowprep.archive.cache import extract_cached
from flowprep.archive.formats import detect_kind, open_archive
from flowprep.archive.scan import (
    QUIET,
    Skipped,
    VideoEntry,
    base_name,
    check_encrypted,
    safe_members,
    scan_archive,
    scan_source,
)
from flowprep.errors import ArchiveError, ConfigError
from flowprep.fsio.reading import read_bytes

log = logging.getLogger(__name__)

VIDEO_EXTS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg")
#: split and list text files are a few KB
MAX_TEXT_BYTES = 64 << 20


def _nothing_found(source: Path, looked: str) -> ArchiveError:
    return ArchiveError(f"{source}: no videos found: {looked}")


def list_classes(source: Path, exts: Iterable[str] = VIDEO_EXTS, quiet: bool = False) -> list[str]:
    """Sorted class names of ``source`` (any of the four shapes); reads listings only, extracts nothing.

    ``quiet``: what the listing skips is logged at debug level, not as warnings (a build lists the
    source again right after, and warns then).

    Raises ArchiveError when there is no class at all (the message says what was looked for where).
    """
    QUIET.on = quiet
    try:
        videos, inner, looked = scan_source(Path(source), tuple(e.lower() for e in exts))
    finally:
        QUIET.on = False
    classes = sorted(set(videos) | set(inner))
    if not classes:
        raise _nothing_found(Path(source), looked)
    return classes


def _select(requested: Collection[str] | None, available: list[str], source: Path, looked: str) -> list[str]:
    if not available:
        raise _nothing_found(source, looked)
    if requested is None:
        return available
    if isinstance(requested, str):
        requested = [requested]
    if not requested:
        raise ConfigError("no classes selected (give class names, or none to take all)")
    unknown = sorted(set(requested) - set(available))
    if unknown:
        raise ConfigError(f"unknown classes: {', '.join(unknown)}; {source} has: {', '.join(available)}")
    return sorted(set(requested))


def list_videos(
    source: Path,
    cache_dir: Path,
    classes: Collection[str] | None = None,
    exts: Iterable[str] = VIDEO_EXTS,
    skipped: Skipped | None = None,
) -> list[VideoEntry]:
    """Every clip of the selected classes (``None``: all), sorted by ``(cls, name)``.

    ``skipped``: if given, receives ``(class, file name, why)`` of each clip file of the selected
    classes that cannot be read (a FIFO, a device, a dangling link, a link member of an archive),
    sorted; each is also logged as a warning.

    Per-class archives held in an outer archive are extracted into ``cache_dir`` first (only the
    selected ones); clips stay inside their archive. Raises ConfigError for unknown classes (the
    message lists the available ones) and ArchiveError for missing, unsafe, corrupt or encrypted
    input, or for two clips with the same class and name.
    """
    source = Path(source)
    ext_t = tuple(e.lower() for e in exts)
    unreadable: Skipped = []
    videos, inner, looked = scan_source(source, ext_t, unreadable)
    selected = _select(classes, sorted(set(videos) | set(inner)), source, looked)
    entries = [e for c in selected for e in videos.get(c, [])]
    outer = None
    try:
        for c in selected:
            if c in videos:
                continue
            item = inner[c]
            if item.outer is None:
                path = Path(item.member)
            else:
                outer = outer or open_archive(item.outer)
                path = extract_cached(outer, item, cache_dir).resolve()
            with open_archive(path) as arc:
                found, _ = scan_archive(arc, ext_t, cls=c, skipped=unreadable)
            if not found:
                log.warning("%s: no videos in the archive of class %r", path, c)
            entries += found.get(c, [])
    finally:
        if outer is not None:
            outer.close()
    entries.sort(key=lambda e: (e.cls, e.name))
    if skipped is not None:
        skipped += sorted(u for u in unreadable if u[0] in selected)
    dups = sorted({f"{a.cls}/{a.name}" for a, b in zip(entries, entries[1:]) if (a.cls, a.name) == (b.cls, b.name)})
    if dups:
        raise ArchiveError(
            f"{source}: clip names occur twice in one class: {', '.join(dups[:5])}"
            + (f" (+{len(dups) - 5} more)" if len(dups) > 5 else "")
        )
    return entries


def _decode_text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_text_file(path: Path) -> str:
    """The text of one regular file of at most 64 MiB (a list file): UTF-8, or Latin-1 when it is not
    valid UTF-8. ArchiveError if it is missing, not a regular file or too big."""
    return _decode_text(read_bytes(Path(path), what="list file", max_bytes=MAX_TEXT_BYTES, error=ArchiveError))


def read_text_files(source: Path, suffix: str = ".txt", only: Collection[str] | None = None) -> dict[str, str]:
    """Base name -> text of every ``*suffix`` file in a folder (recursive) or archive (any depth).

    Used for HMDB51's split files (``test_train_splits.rar``) and UCF101's lists. Text is UTF-8, or
    Latin-1 when it is not valid UTF-8. Two files with one base name and different text raise
    ArchiveError. ``only``: read just the files of these base names (the others are not decompressed).
    """
    source = Path(source)
    suffix = suffix.lower()
    found: dict[str, tuple[str, str]] = {}

    def wanted(name: str) -> bool:
        return name.lower().endswith(suffix) and (only is None or base_name(name) in only)

    def add(name: str, where: str, data: bytes) -> None:
        text = _decode_text(data)
        if name in found and found[name][1] != text:
            raise ArchiveError(f"{source}: two different files named {name}: {found[name][0]} and {where}")
        found.setdefault(name, (where, text))

    if detect_kind(source) == "folder":
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames.sort()
            for fn in sorted(filenames):
                if wanted(fn):
                    path = Path(dirpath) / fn
                    add(
                        fn, str(path), read_bytes(path, what="split file", max_bytes=MAX_TEXT_BYTES, error=ArchiveError)
                    )
    else:
        with open_archive(source) as arc:
            for m in safe_members(arc):
                if wanted(m.name):
                    check_encrypted(arc, m)
                    add(base_name(m.name), m.name, arc.read(m.name, MAX_TEXT_BYTES))
    return {name: text for name, (_, text) in sorted(found.items())}

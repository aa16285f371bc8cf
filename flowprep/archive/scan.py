"""Scanning a source: which clips and per-class archives a folder or an archive of a release holds.

:func:`scan_source` looks at any of the four source shapes of :mod:`flowprep.archive.reader` (which
lists and selects from what it finds) and returns the clips by class (:class:`VideoEntry`) and the
per-class archives by class (:class:`~flowprep.archive.cache.InnerArchive`), reading listings only;
:func:`scan_archive` scans one (per-class) archive. What cannot be read is skipped with a warning:
members with unsafe names or that are links or devices (:func:`safe_members`), FIFOs, devices and
dangling links in folders, folders flowprep wrote (:data:`OWNED_MARKERS`), symlink loops, and
macOS zip litter. Clip files skipped that way are collected as :data:`Skipped` for the build report.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from flowprep.archive.bounded import MemberRef
from flowprep.archive.cache import InnerArchive
from flowprep.archive.formats import (
    ARCHIVE_SUFFIXES,
    Archive,
    Member,
    archive_stem,
    detect_kind,
    has_archive_suffix,
    open_archive,
    unsafe_reason,
)
from flowprep.errors import ArchiveError

# the reader's name: the messages of a source's listing have always been logged under it
log = logging.getLogger("flowprep.archive.reader")


@dataclass(frozen=True)
class VideoEntry:
    """One clip: its class, its file base name and where to read it."""

    cls: str
    name: str
    ref: MemberRef


#: ``QUIET.on`` is set while a listing's warnings were (or will be) given by another listing
QUIET = threading.local()


def _skip_warning(msg: str, *args: object) -> None:
    """Warn about something a listing skips, unless this listing is a quiet repeat (then debug)."""
    log.log(logging.DEBUG if getattr(QUIET, "on", False) else logging.WARNING, msg, *args)


def base_name(name: str) -> str:
    """The file name of a member or path name (``/`` or ``\\`` separated): ``walk/a.avi`` -> ``a.avi``."""
    return PurePosixPath(name.replace("\\", "/")).name


def _parent(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).parent.name


def _is_video(name: str, exts: tuple[str, ...]) -> bool:
    return name.lower().endswith(exts)


def _is_junk(name: str) -> bool:
    """macOS zip litter: ``__MACOSX/...`` and ``._name`` resource-fork files, never real clips."""
    posix = name.replace("\\", "/")
    return posix.startswith("__MACOSX/") or "/__MACOSX/" in posix or base_name(posix).startswith("._")


#: clips a listing skipped because they cannot be read: ``(class, file name, why)``
Skipped = list[tuple[str, str, str]]


def safe_members(arc: Archive, skipped: Skipped | None = None, exts: tuple[str, ...] = ()) -> Iterator[Member]:
    """Regular-file members whose names are safe; logs a warning for each one skipped, and adds
    those named like clips (``exts``) to ``skipped``."""
    for m in arc.members():
        if _is_junk(m.name):
            continue
        why = unsafe_reason(m.name)
        if why is None and m.kind in ("link", "special"):
            why = "symlink/hardlink" if m.kind == "link" else "device or other special file"
        if why:
            _skip_warning("%s: skipping member %r (%s)", arc.path, m.name, why)
            if skipped is not None and exts and _is_video(m.name, exts) and _parent(m.name):
                skipped.append((_parent(m.name), base_name(m.name), why))
        elif m.kind == "file":
            yield m


def check_encrypted(arc: Archive, m: Member) -> None:
    """ArchiveError when member ``m`` of ``arc`` is encrypted (flowprep reads no encrypted member)."""
    if m.encrypted:
        raise ArchiveError(f"{arc.path} [{m.name}]: member is encrypted; decrypt the archive first")


def scan_archive(
    arc: Archive, exts: tuple[str, ...], cls: str | None = None, skipped: Skipped | None = None
) -> tuple[dict[str, list[VideoEntry]], dict[str, InnerArchive]]:
    """Clips by class (class = ``cls`` or the clip's folder name) and per-class archives by stem."""
    videos: dict[str, list[VideoEntry]] = {}
    inner: dict[str, InnerArchive] = {}
    where = str(arc.path.resolve())
    found: Skipped = []
    for m in safe_members(arc, found, exts):
        if _is_video(m.name, exts):
            c = cls or _parent(m.name)
            if not c:
                _skip_warning("%s: skipping %r: not inside a class folder", arc.path, m.name)
                continue
            check_encrypted(arc, m)
            videos.setdefault(c, []).append(VideoEntry(c, base_name(m.name), MemberRef(where, m.name, m.size)))
        elif cls is None and has_archive_suffix(m.name) and archive_stem(m.name):
            check_encrypted(arc, m)
            stem = archive_stem(m.name)
            if stem in inner:
                raise ArchiveError(
                    f"{arc.path}: two per-class archives for class {stem!r}: {inner[stem].member!r} and {m.name!r}"
                )
            inner[stem] = InnerArchive(arc.path, m.name, m.size, m.packed)
    if skipped is not None:
        skipped += [(cls or c, name, why) for c, name, why in found]
    return videos, inner


#: files that mark a folder flowprep wrote (a preview page, a deploy folder, a dataset): never a class
OWNED_MARKERS = (".flowprep-preview.json", ".flowprep-export.json", "flowprep.json", ".flowprep")


def _scan_folder(
    root: Path, exts: tuple[str, ...], skipped: Skipped | None = None
) -> tuple[dict[str, list[VideoEntry]], dict[str, InnerArchive]]:
    videos: dict[str, list[VideoEntry]] = {}
    inner: dict[str, InnerArchive] = {}
    root = root.resolve()
    seen: set[tuple[int, int]] = set()

    def unreadable(exc: OSError) -> None:
        _skip_warning("%s: skipping %s: %s", root, exc.filename, exc.strerror or exc)

    # Symlinked class folders (at the top) are followed, deeper symlinked folders are not (a link to
    # "/" would walk the whole disk); each real folder is read once, so a link loop ends.
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        here = Path(dirpath)
        st = here.stat()
        if (st.st_dev, st.st_ino) in seen:
            _skip_warning("%s: skipping %s: a symlink loop, or a folder already read", root, here)
            dirnames.clear()
            continue
        seen.add((st.st_dev, st.st_ino))
        if here != root and any(m in filenames or m in dirnames for m in OWNED_MARKERS):
            # e.g. a preview written into the release: its media/ would become a class
            _skip_warning("%s: skipping %s: a folder flowprep wrote (preview, export or dataset)", root, here)
            dirnames.clear()
            continue
        if here != root:
            for d in [d for d in dirnames if (here / d).is_symlink()]:
                _skip_warning("%s: skipping %s: a symlinked folder inside a class folder", root, here / d)
                dirnames.remove(d)
        dirnames.sort()
        for fn in sorted(filenames):
            path = here / fn
            is_video = _is_video(fn, exts)
            per_class_archive = here == root and has_archive_suffix(fn) and bool(archive_stem(fn))
            if _is_junk(fn) or not (is_video or per_class_archive):
                continue
            try:
                st = path.stat()
            except OSError as exc:  # e.g. a dangling symlink
                _skip_warning("%s: skipping %s: %s", root, path, exc.strerror or exc)
                if skipped is not None and is_video and here != root:
                    skipped.append((here.name, fn, str(exc.strerror or exc)))
                continue
            if not stat.S_ISREG(st.st_mode):  # a FIFO would hang the read, /dev/zero never end
                _skip_warning("%s: skipping %s: not a regular file", root, path)
                if skipped is not None and is_video and here != root:
                    skipped.append((here.name, fn, "not a regular file"))
                continue
            size = st.st_size
            if not is_video:
                if archive_stem(fn) in inner:
                    raise ArchiveError(
                        f"{root}: two per-class archives for class {archive_stem(fn)!r}: "
                        f"{Path(inner[archive_stem(fn)].member).name!r} and {fn!r}"
                    )
                inner[archive_stem(fn)] = InnerArchive(None, str(path), size)
            elif here == root:
                _skip_warning("%s: skipping %s: not inside a class folder", root, fn)
            else:
                ref = MemberRef(None, str(path), size)
                videos.setdefault(here.name, []).append(VideoEntry(here.name, fn, ref))
    return videos, inner


def _listing(folder: Path) -> list[os.DirEntry]:
    """Visible entries: not hidden (``.DS_Store``, ``._x``) and not macOS zip litter (``__MACOSX``)."""
    try:
        with os.scandir(folder) as it:
            return [e for e in it if not e.name.startswith(".") and e.name != "__MACOSX"]
    except OSError as exc:
        raise ArchiveError(f"{folder}: cannot list folder: {exc.strerror or exc}") from None


def _unwrap(root: Path, exts: tuple[str, ...]) -> Path:
    """``root``, or the folder reached by descending while a folder's only visible content is one sub-folder.

    ``unar hmdb51_org.rar`` in a fresh folder gives ``folder/hmdb51_org/<class>.rar``, and per-class
    archives are looked for only at the top. A lone sub-folder holding clips itself is a class (a
    one-class release) and stops the descent; a symlinked folder is not descended into here.
    """
    for _ in range(32):  # a bound against pathological trees; real wrappers are one or two deep
        entries = _listing(root)
        if len(entries) != 1 or not entries[0].is_dir(follow_symlinks=False):
            break
        sub = Path(entries[0].path)
        if any(e.is_file() and _is_video(e.name, exts) for e in _listing(sub)):
            break
        log.info("%s: only holds %s; looking inside it", root, sub.name)
        root = sub
    return root


def scan_source(
    source: Path, exts: tuple[str, ...], skipped: Skipped | None = None
) -> tuple[dict[str, list[VideoEntry]], dict[str, InnerArchive], str]:
    """Clips by class, per-class archives by class, and what was looked for where (for messages);
    clips that cannot be read are added to ``skipped``."""
    source = Path(source)
    wanted = (
        f"for clips ({'/'.join(exts)}) inside class folders and for per-class archives "
        f"(<class>{'/'.join(ARCHIVE_SUFFIXES)})"
    )
    if detect_kind(source) == "folder":
        root = _unwrap(source, exts)
        videos, inner = _scan_folder(root, exts, skipped)
        where = f"folder {source}" if root == source else f"folder {root} ({source} holds only this folder)"
        looked = f"looked in {where} {wanted} at its top"
    else:
        with open_archive(source) as arc:
            videos, inner = scan_archive(arc, exts, skipped=skipped)
        looked = f"looked in archive {source} {wanted}"
    both = sorted(set(videos) & set(inner))
    if both:
        # Usually the archives were unpacked beside themselves (same clips); if not, the archive's
        # clips are left out, so say so once instead of only at info level.
        _skip_warning(
            "%s: %d class(es) have both a folder and an archive (%s); using the folders, not the archives",
            source,
            len(both),
            ", ".join(both[:5]) + (", ..." if len(both) > 5 else ""),
        )
        for cls in both:
            del inner[cls]
    return videos, inner, looked

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
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from flowprep.archive.bounded import MemberRef
from flowprep.archive.cache import InnerArchive, extract_cached
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
from flowprep.errors import ArchiveError, ConfigError
from flowprep.fsio import read_bytes

log = logging.getLogger(__name__)

VIDEO_EXTS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg")
#: split and list text files are a few KB
MAX_TEXT_BYTES = 64 << 20


@dataclass(frozen=True)
class VideoEntry:
    """One clip: its class, its file base name and where to read it."""

    cls: str
    name: str
    ref: MemberRef


_QUIET = threading.local()  # set while a listing's warnings were (or will be) given by another listing


def _skip_warning(msg: str, *args: object) -> None:
    """Warn about something a listing skips, unless this listing is a quiet repeat (then debug)."""
    log.log(logging.DEBUG if getattr(_QUIET, "on", False) else logging.WARNING, msg, *args)


def _base(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).name


def _parent(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).parent.name


def _is_video(name: str, exts: tuple[str, ...]) -> bool:
    return name.lower().endswith(exts)


def _is_junk(name: str) -> bool:
    """macOS zip litter: ``__MACOSX/...`` and ``._name`` resource-fork files, never real clips."""
    posix = name.replace("\\", "/")
    return posix.startswith("__MACOSX/") or "/__MACOSX/" in posix or _base(posix).startswith("._")


#: clips a listing skipped because they cannot be read: ``(class, file name, why)``
Skipped = list[tuple[str, str, str]]


def _safe_members(arc: Archive, skipped: Skipped | None = None, exts: tuple[str, ...] = ()) -> Iterator[Member]:
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
                skipped.append((_parent(m.name), _base(m.name), why))
        elif m.kind == "file":
            yield m


def _check_encrypted(arc: Archive, m: Member) -> None:
    if m.encrypted:
        raise ArchiveError(f"{arc.path} [{m.name}]: member is encrypted; decrypt the archive first")


def _scan_archive(
    arc: Archive, exts: tuple[str, ...], cls: str | None = None, skipped: Skipped | None = None
) -> tuple[dict[str, list[VideoEntry]], dict[str, InnerArchive]]:
    """Clips by class (class = ``cls`` or the clip's folder name) and per-class archives by stem."""
    videos: dict[str, list[VideoEntry]] = {}
    inner: dict[str, InnerArchive] = {}
    where = str(arc.path.resolve())
    found: Skipped = []
    for m in _safe_members(arc, found, exts):
        if _is_video(m.name, exts):
            c = cls or _parent(m.name)
            if not c:
                _skip_warning("%s: skipping %r: not inside a class folder", arc.path, m.name)
                continue
            _check_encrypted(arc, m)
            videos.setdefault(c, []).append(VideoEntry(c, _base(m.name), MemberRef(where, m.name, m.size)))
        elif cls is None and has_archive_suffix(m.name) and archive_stem(m.name):
            _check_encrypted(arc, m)
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


def _scan(
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
            videos, inner = _scan_archive(arc, exts, skipped=skipped)
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


def _nothing_found(source: Path, looked: str) -> ArchiveError:
    return ArchiveError(f"{source}: no videos found: {looked}")


def list_classes(source: Path, exts: Iterable[str] = VIDEO_EXTS, quiet: bool = False) -> list[str]:
    """Sorted class names of ``source`` (any of the four shapes); reads listings only, extracts nothing.

    ``quiet``: what the listing skips is logged at debug level, not as warnings (a build lists the
    source again right after, and warns then).

    Raises ArchiveError when there is no class at all (the message says what was looked for where).
    """
    _QUIET.on = quiet
    try:
        videos, inner, looked = _scan(Path(source), tuple(e.lower() for e in exts))
    finally:
        _QUIET.on = False
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
    videos, inner, looked = _scan(source, ext_t, unreadable)
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
                found, _ = _scan_archive(arc, ext_t, cls=c, skipped=unreadable)
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
        return name.lower().endswith(suffix) and (only is None or _base(name) in only)

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
            for m in _safe_members(arc):
                if wanted(m.name):
                    _check_encrypted(arc, m)
                    add(_base(m.name), m.name, arc.read(m.name, MAX_TEXT_BYTES))
    return {name: text for name, (_, text) in sorted(found.items())}

"""Reading one file of a release in bounded memory and time: a plain file or an archive member.

Only regular files are read (a FIFO would block, ``/dev/zero`` never ends: :mod:`flowprep.fsio`);
sizes are checked on the listing and again while reading (headers can lie); archive members are
also bounded by their compression ratio (see :data:`flowprep.fsio.reading.MAX_RATIO`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from flowprep.archive.formats import Archive, open_archive
from flowprep.errors import ArchiveError
from flowprep.fsio.reading import read_bytes

#: default per-clip size limit (HMDB51's clips are about 1 MB; the longest real clips stay far below)
MAX_CLIP_BYTES = 2 << 30


@dataclass(frozen=True)
class MemberRef:
    """Where one file lives. ``archive=None``: ``member`` is a plain file path. Otherwise ``member`` is
    the member name inside the zip/tar/rar at path ``archive``. ``size`` is the uncompressed size in
    bytes. Picklable, JSON-able via ``dataclasses.asdict``; usable in any process."""

    archive: str | None
    member: str
    size: int


def copy_bounded(src: IO[bytes], dst: IO[bytes], limit: int) -> None:
    """Copy at most ``limit`` bytes of ``src`` into ``dst``, 1 MiB at a time."""
    left = limit
    while left > 0:
        chunk = src.read(min(1 << 20, left))
        if not chunk:
            return
        dst.write(chunk)
        left -= len(chunk)


_LOCAL = threading.local()  # per thread: no handle is shared, so none is closed under another's read
_OPEN_MAX = 4


def _cached_archive(path: Path) -> Archive:
    """An open archive for this thread of this process, re-used across calls (a tar.gz is costly to open)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot open archive: {exc.strerror or exc}") from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if getattr(_LOCAL, "pid", None) != os.getpid():
        # New thread, or forked: a parent's handles share file offsets with it, so never use them.
        _LOCAL.pid, _LOCAL.open = os.getpid(), OrderedDict()
    cache: OrderedDict[tuple, Archive] = _LOCAL.open
    arc = cache.get(key)
    if arc is not None:
        cache.move_to_end(key)
        return arc
    arc = open_archive(path)
    cache[key] = arc
    while len(cache) > _OPEN_MAX:
        cache.popitem(last=False)[1].close()
    return arc


def read_member(ref: MemberRef, limit: int = MAX_CLIP_BYTES) -> bytes:
    """The whole file ``ref`` points at, as bytes (clips are ~1 MB). Works in any process.

    Raises:
        ArchiveError: unreadable, not a regular file, over ``limit`` bytes (``--max-clip-bytes``,
            checked before and while reading), compressed beyond the ratio bound, or changed since listing.
    """
    if ref.size > limit:
        raise ArchiveError(
            f"{ref.archive or ''} [{ref.member}]: {ref.size} bytes, over the per-clip limit "
            f"of {limit} (--max-clip-bytes)"
        )
    if ref.archive is None:
        data = read_bytes(ref.member, what="clip", max_bytes=limit, error=ArchiveError)
    else:
        data = _cached_archive(Path(ref.archive)).read(ref.member, limit)
    if len(data) != ref.size:
        raise ArchiveError(
            f"{ref.archive or ''} [{ref.member}]: read {len(data)} bytes, "
            f"expected {ref.size}; did the source change since it was listed?"
        )
    return data

"""The cache of per-class archives extracted from an outer archive (HMDB51's RAR of RARs).

Clips are never unpacked, but a RAR inside a RAR cannot be read in place: :func:`extract_cached`
copies the per-class archives of the selected classes into a cache folder (the build folder's, see
:class:`flowprep.builder.folder.BuildFolder`), once; :mod:`flowprep.archive.reader` reads them from there.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from flowprep.archive.bounded import copy_bounded
from flowprep.archive.failures import archive_errors
from flowprep.archive.formats import MAX_INNER_BYTES, Archive, Member, archive_stem, bound_reason
from flowprep.errors import ArchiveError
from flowprep.fsio.writing import AtomicFile

# the listing's logger: extraction is a step of listing a source (users filter on the reader's name)
log = logging.getLogger("flowprep.archive.reader")


@dataclass(frozen=True)
class InnerArchive:
    """A per-class archive: a plain file (``outer=None``, ``member`` is its path) or a member of ``outer``."""

    outer: Path | None
    member: str
    size: int
    packed: int = -1


def _cache_name(name: str) -> str:
    """A file name safe to create: ``[A-Za-z0-9._+-]`` only, no leading dot; a hash keeps it unique."""
    base = PurePosixPath(name.replace("\\", "/")).name
    clean = re.sub(r"[^A-Za-z0-9._+-]", "_", base).lstrip(".")[:150]
    if clean != base:
        clean = f"{hashlib.sha1(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}-{clean or 'member'}"
    return clean


def extract_cached(outer: Archive, inner: InnerArchive, cache_dir: Path) -> Path:
    """Copy one per-class archive out of ``outer`` into ``cache_dir`` (or re-use a complete copy).

    Copies are written aside and renamed, so a file at the final name is complete; a copy of another
    size (another release) is replaced.
    """
    why = bound_reason(Member(inner.member, inner.size, "file", packed=inner.packed), MAX_INNER_BYTES)
    if why:
        raise ArchiveError(f"{outer.path} [{inner.member}]: per-class archive of {why}")
    folder = Path(cache_dir) / _cache_name(archive_stem(outer.path.name))
    target = folder / _cache_name(inner.member)
    if target.is_file() and target.stat().st_size == inner.size:
        log.debug("re-using cached %s", target)
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with AtomicFile(target) as out:
        with archive_errors(outer.path, inner.member, outer.via_tool(inner.member)):
            with outer.open(inner.member) as src:
                copy_bounded(src, out.file, inner.size + 1)  # one byte more than listed shows a lying header
        written = out.file.tell()
        if written != inner.size:
            raise ArchiveError(
                f"{outer.path} [{inner.member}]: extracted {written} bytes, expected "
                f"{inner.size}; the archive is corrupt"
            )
    log.info("extracted %s from %s into %s", inner.member, outer.path, target)
    return target

"""One small interface over RAR, zip and tar archives, with every failure turned into ArchiveError.

:func:`open_archive` gives an :class:`Archive` whose :meth:`~Archive.members` lists entries as
:class:`Member` (name as stored, uncompressed size, kind) and whose :meth:`~Archive.open` streams one
member. Nothing here writes to disk. Which members are *safe* to use is decided by the caller with
:func:`unsafe_reason` and :attr:`Member.kind`.

RAR goes through ``rarfile``: stored members (method 0x30) are read in Python; compressed ones need an
external tool, which rarfile looks for in the order unrar, unar, 7z, 7zz, bsdtar (module globals
``rarfile.UNRAR_TOOL`` etc. name the binaries).

Every failure becomes a one-line :class:`ArchiveError` in :func:`~flowprep.archive.failures.archive_errors`
(with :data:`~flowprep.archive.failures.RAR_TOOL_HINT`, the tools to install).
"""

from __future__ import annotations

import stat
import tarfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import rarfile

from flowprep.archive.failures import archive_errors
from flowprep.errors import ArchiveError
from flowprep.fsio.reading import MAX_RATIO, RATIO_FLOOR, read_head

ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".rar", ".zip", ".tar")

#: Bounds on what is read or unpacked from an archive, generous for real releases (HMDB51: 2 GB in
#: all, per-class RARs of 10-100 MB, clips of about 1 MB; video barely compresses, ratio about 1).
#: A member over RATIO_FLOOR bytes that is more than MAX_RATIO times its compressed size is refused
#: (a "zip bomb", :data:`flowprep.fsio.reading.MAX_RATIO`), as is a per-class archive over MAX_INNER_BYTES.
MAX_INNER_BYTES = 8 << 30

_RAR_MAGIC = (b"Rar!\x1a\x07\x00", b"Rar!\x1a\x07\x01\x00")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_COMPRESSED_TAR_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


@dataclass(frozen=True)
class Member:
    """One archive entry. ``kind``: "file", "dir", "link" (symlink/hardlink/redirect) or "special".
    ``size``: uncompressed bytes; ``packed``: compressed bytes (for a member of a compressed tar, the
    whole archive's size, an upper bound), -1 if unknown."""

    name: str
    size: int
    kind: str
    encrypted: bool = False
    packed: int = -1


def bound_reason(m: Member, limit: int) -> str | None:
    """Why member ``m`` must not be read (over ``limit`` bytes, or compressed over :data:`MAX_RATIO`)."""
    if m.size > limit:
        return f"{m.size} bytes, over the limit of {limit}"
    if m.packed > 0 and m.size > RATIO_FLOOR and m.size > MAX_RATIO * m.packed:
        return (
            f"{m.size} bytes compressed into {m.packed} (ratio {m.size // m.packed}:1, the limit is "
            f"{MAX_RATIO}:1): not a video release, refused"
        )
    return None


def detect_kind(path: Path) -> str:
    """``"folder"``, ``"rar"``, ``"zip"`` or ``"tar"`` (also compressed tar), by magic bytes, not suffix."""
    path = Path(path)
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise ArchiveError(f"{path}: no such file or folder")
    if not stat.S_ISREG(path.stat().st_mode):  # opening a FIFO blocks; /dev/zero never ends
        raise ArchiveError(f"{path}: not a folder or a regular file (a FIFO, device or socket)")
    head = read_head(path, 512, what="archive", error=ArchiveError)  # swapped for a FIFO since: refused
    if head.startswith(_RAR_MAGIC):
        return "rar"
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head.startswith(_COMPRESSED_TAR_MAGIC) or head[257:262] == b"ustar":
        return "tar"
    try:
        if len(head) >= 512 and tarfile.is_tarfile(path):  # pre-POSIX (v7) tar: no magic
            return "tar"
    except (OSError, tarfile.TarError):
        pass
    if zipfile.is_zipfile(path):  # zip with a prefix (self-extractor)
        return "zip"
    raise ArchiveError(f"{path}: not a folder, RAR, zip or tar archive (it starts with {head[:8]!r})")


def unsafe_reason(name: str) -> str | None:
    """Why a member name must not be used (absolute, drive letter, ``..``, NUL), or None if it is fine."""
    posix = name.replace("\\", "/")
    if "\0" in name:
        return "NUL in name"
    if posix.startswith("/"):
        return "absolute path"
    if len(posix) >= 2 and posix[1] == ":":
        return "drive letter"
    if ".." in posix.split("/"):
        return "'..' component"
    return None


def archive_stem(name: str) -> str:
    """Base name without its archive suffix: ``"a/ride_bike.tar.gz"`` -> ``"ride_bike"``."""
    base = PurePosixPath(name.replace("\\", "/")).name
    low = base.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if low.endswith(suffix):
            return base[: -len(suffix)]
    return PurePosixPath(base).stem


def has_archive_suffix(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


class Archive:
    """An open archive. Use as a context manager or call :meth:`close`. Reads are serialised by a lock,
    so one object may be shared by threads of one process (not across processes)."""

    kind = ""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = threading.Lock()
        self._by_name: dict[str, Member] | None = None

    def members(self) -> list[Member]:
        raise NotImplementedError

    def _open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def via_tool(self, name: str) -> bool:
        """Whether reading ``name`` runs an external program (compressed RAR members)."""
        return False

    def open(self, name: str) -> IO[bytes]:
        """A binary stream of member ``name`` (CRC checked when read to the end, where the format has one).

        Wrap reading it in ``archive_errors(path, name, archive.via_tool(name))``.
        """
        with archive_errors(self.path, name):
            return self._open(name)

    def member(self, name: str) -> Member | None:
        """The listing entry of ``name`` (None if there is none)."""
        if self._by_name is None:
            self._by_name = {m.name: m for m in self.members()}
        return self._by_name.get(name)

    def read(self, name: str, limit: int | None = None) -> bytes:
        """The whole member ``name`` as bytes; ArchiveError if it is over ``limit`` bytes or over the
        compression ratio bound (checked on the listing, and while reading: headers can lie)."""
        if limit is not None:
            m = self.member(name)
            why = bound_reason(m, limit) if m is not None else None
            if why:
                raise ArchiveError(f"{self.path} [{name}]: {why}")
        with self.lock, archive_errors(self.path, name, self.via_tool(name)):
            with self._open(name) as fh:
                data = fh.read() if limit is None else fh.read(limit + 1)
        if limit is not None and len(data) > limit:
            raise ArchiveError(f"{self.path} [{name}]: more than {limit} bytes (the limit); refused")
        return data

    def close(self) -> None:
        pass

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Rar(Archive):
    kind = "rar"

    def __init__(self, path: Path):
        super().__init__(path)
        # "strict": a truncated or corrupt header raises instead of silently ending the listing.
        self._rf = rarfile.RarFile(str(path), errors="strict")
        if self._rf.needs_password() and not self._rf.infolist():
            raise ArchiveError(f"{path}: archive is encrypted (file names too); decrypt it first")

    def members(self) -> list[Member]:
        out = []
        single_volume = len(self._rf.volumelist()) == 1
        size = self.path.stat().st_size
        for info in self._rf.infolist():
            if info.is_dir():
                kind = "dir"
            elif info.is_symlink() or getattr(info, "file_redir", None):
                kind = "link"
            else:
                kind = "file"
            end = getattr(info, "data_offset", None)
            # rarfile does not notice an archive that ends inside a member's data; we check it here
            # rather than on read so that a listing already reports a truncated download.
            if single_volume and end is not None and end + info.compress_size > size:
                raise ArchiveError(
                    f"{self.path}: archive is truncated (member {info.filename} ends at "
                    f"byte {end + info.compress_size}, file has {size})"
                )
            out.append(
                Member(
                    info.filename.rstrip("/"),
                    int(info.file_size or 0),
                    kind,
                    bool(info.needs_password()),
                    int(info.compress_size or 0),
                )
            )
        return out

    def via_tool(self, name: str) -> bool:
        try:
            return self._rf.getinfo(name).compress_type != rarfile.RAR_M0
        except rarfile.NoRarEntry:
            return False

    def _open(self, name: str) -> IO[bytes]:
        info = self._rf.getinfo(name)
        if info.compress_type != rarfile.RAR_M0:
            # Find the tool first: rarfile would otherwise leave a temporary file behind when none exists.
            rarfile.tool_setup()
        return self._rf.open(info)


class _Zip(Archive):
    kind = "zip"

    def __init__(self, path: Path):
        super().__init__(path)
        self._zf = zipfile.ZipFile(path)

    def members(self) -> list[Member]:
        out = []
        for info in self._zf.infolist():
            mode = info.external_attr >> 16
            fmt = stat.S_IFMT(mode) if info.create_system == 3 else 0
            if info.is_dir():
                kind = "dir"
            elif fmt == stat.S_IFLNK:
                kind = "link"
            elif fmt not in (0, stat.S_IFREG):
                kind = "special"
            else:
                kind = "file"
            out.append(
                Member(info.filename.rstrip("/"), info.file_size, kind, bool(info.flag_bits & 0x1), info.compress_size)
            )
        return out

    def _open(self, name: str) -> IO[bytes]:
        info = self._zf.NameToInfo.get(name)
        if info is None:
            raise ArchiveError(f"{self.path} [{name}]: no such member (did the archive change since it was listed?)")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{self.path} [{name}]: member is encrypted; decrypt the archive first")
        return self._zf.open(info)

    def close(self) -> None:
        self._zf.close()


class _Tar(Archive):
    kind = "tar"

    def __init__(self, path: Path):
        super().__init__(path)
        self._tf = tarfile.open(path, "r:*")
        compressed = read_head(path, 6, what="archive", error=ArchiveError).startswith(_COMPRESSED_TAR_MAGIC)
        # One stream: no member's compressed size is known, the archive's bounds it.
        self._packed = self.path.stat().st_size if compressed else None
        self._infos = {t.name.rstrip("/"): t for t in self._tf.getmembers()}  # last one wins, as in tar

    def members(self) -> list[Member]:
        out = []
        for t in self._tf.getmembers():
            kind = "file" if t.isreg() else "dir" if t.isdir() else "link" if (t.issym() or t.islnk()) else "special"
            size = t.size if t.isreg() else 0
            out.append(Member(t.name.rstrip("/"), size, kind, packed=self._packed if self._packed else size))
        return out

    def _open(self, name: str) -> IO[bytes]:
        info = self._infos.get(name)
        if info is None or not info.isreg():
            raise ArchiveError(f"{self.path}: no regular file named {name!r} in the archive")
        fh = self._tf.extractfile(info)
        if fh is None:
            raise ArchiveError(f"{self.path}: cannot read member {name!r}")
        return fh

    def close(self) -> None:
        self._tf.close()


def open_archive(path: Path) -> Archive:
    """Open a RAR, zip or tar archive (kind from magic bytes). Raises ArchiveError for anything else."""
    path = Path(path)
    kind = detect_kind(path)
    if kind == "folder":
        raise ArchiveError(f"{path}: is a folder, not an archive")
    cls = {"rar": _Rar, "zip": _Zip, "tar": _Tar}[kind]
    with archive_errors(path):
        return cls(path)

"""The names and tar headers of a packed dataset's shards (the format of :mod:`flowprep.layout.packed`).

Names: a clip's sample key (:func:`sample_key`, ``train-000042``), a member's name from its
folder-relative image name and back (:func:`member_name`, :func:`rel_name`), and a shard's file name
(:func:`shard_name`, :func:`parse_shard_name`). Headers: the deterministic ustar header of a regular
file (:func:`tar_header`), the padding after its data and the end of an archive, as
:mod:`flowprep.builder.pack` writes them, and a parser for exactly those headers
(:func:`parse_header`, :func:`parse_members`) that the readers in :mod:`flowprep.layout.packed` use.
"""

from __future__ import annotations

import re
import tarfile

from flowprep.errors import DatasetError

#: a tar block, in bytes: headers and data are padded to whole blocks
BLOCK = 512
#: tar's blocking factor: archives are padded to a multiple of 20 blocks, as GNU and BSD tar do
RECORD = 20 * BLOCK
#: a folder-relative image name inside a clip: rgb/000000.png, u/000000.jpg, v/...
REL_NAME = re.compile(r"(rgb|u|v)/(\d{6})\.(png|jpg)")
_SHARD_NAME = re.compile(r"(train|val)-(?:k(\d+)of(\d+)-)?(\d{6})\.tar")


# --- names ---------------------------------------------------------------------------------------


def sample_key(side: str, position: int) -> str:
    """The WebDataset key of the clip at ``position`` among its side's clips: ``train-000042``."""
    return f"{side}-{position:06d}"


def member_name(key: str, rel: str) -> str:
    """``train-000042`` + ``rgb/000000.png`` -> ``train-000042.rgb.000000.png``."""
    return f"{key}.{rel.replace('/', '.')}"


def rel_name(rest: str) -> str | None:
    """The folder-relative name of a member's part after the key (``rgb.000000.png``), or None."""
    kind, _, tail = rest.partition(".")
    rel = f"{kind}/{tail}"
    return rel if REL_NAME.fullmatch(rel) else None


def shard_name(side: str, seq: int, part: tuple[int, int] | None = None) -> str:
    """``train-000000.tar``, or for part K of N of a sharded build ``train-k003of010-000000.tar``."""
    if part is None:
        return f"{side}-{seq:06d}.tar"
    k, n = part
    w = max(3, len(str(n)))
    return f"{side}-k{k:0{w}d}of{n:0{w}d}-{seq:06d}.tar"


def parse_shard_name(name: str) -> tuple[str, tuple[int, int] | None, int] | None:
    """``(side, part or None, seq)`` of a shard file name, None for any other name."""
    m = _SHARD_NAME.fullmatch(name)
    if m is None:
        return None
    part = (int(m.group(2)), int(m.group(3))) if m.group(2) else None
    return m.group(1), part, int(m.group(4))


# --- tar headers -----------------------------------------------------------------------------------


def tar_header(name: str, size: int) -> bytes:
    """The 512-byte ustar header of a regular file: fixed mode, owner and time (deterministic)."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = size, 0, 0o644, 0, 0, "", ""
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")


def padding(size: int) -> int:
    """Zero bytes after ``size`` bytes of data, to the next block."""
    return -size % BLOCK


def end_of_archive(offset: int) -> bytes:
    """Two zero blocks, then zeros to the next record boundary (``offset``: bytes written so far)."""
    end = offset + 2 * BLOCK
    return bytes(2 * BLOCK + (-end % RECORD))


def parse_header(block: bytes, where: str, pos: int) -> tuple[str, int]:
    """``(name, size)`` of a ustar header of a regular file (what flowprep writes; faster than
    ``tarfile``'s general parser, which costs as much as decoding the images).

    Raises:
        DatasetError: a bad checksum, not ustar, not a regular file, or a size that is not octal.
    """
    stored = block[148:156].split(b"\0", 1)[0].strip()
    try:
        chksum = int(stored or b"-1", 8)
        size = int(block[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        raise DatasetError(f"{where}: damaged tar header at byte {pos}") from None
    if chksum != sum(block) - sum(block[148:156]) + 8 * 32 or block[257:262] != b"ustar":
        raise DatasetError(f"{where}: damaged tar header at byte {pos} (checksum or magic)")
    name = block[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
    prefix = block[345:500].split(b"\0", 1)[0]
    if prefix:
        name = prefix.decode("utf-8", "replace") + "/" + name
    if block[156:157] not in (b"0", b"\0"):
        raise DatasetError(f"{where}: member {name!r} is not a regular file")
    return name, size


def parse_members(data: bytes | memoryview, where: str) -> list[tuple[str, int, int]]:
    """``(name, data offset, size)`` of every member in ``data`` (whole headers and data, no end
    blocks needed). Regular files only; anything else is a damaged shard.

    Raises:
        DatasetError: a header that is not a ustar header of a regular file, or data cut short.
    """
    view = memoryview(data)
    out, pos = [], 0
    while pos + BLOCK <= len(view):
        block = bytes(view[pos : pos + BLOCK])
        if block == bytes(BLOCK):
            break
        name, size = parse_header(block, where, pos)
        start = pos + BLOCK
        if start + size > len(view):
            raise DatasetError(f"{where}: member {name!r} is cut short")
        out.append((name, start, size))
        pos = start + size + padding(size)
    return out

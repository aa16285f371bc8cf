"""The packed dataset format: tar shards in WebDataset's convention, and the one way to read a clip.

A packed dataset holds the same images as the TAO folder layout, packed into plain POSIX (ustar) tar
shards per side, plus the usual record and label map::

    <root>/flowprep.json            the record, with "packed": {"format": "webdataset", ...}
    <root>/labels.txt, label_map.json
    <root>/shards/train-000000.tar  one sample per clip, ~shard_size bytes per shard
    <root>/shards/val-000000.tar
    <root>/shards/index.json        clip -> shard, sample offset and length, frame counts; shard sizes

A clip is one sample: members named ``<key>.<rest>`` grouped by key (WebDataset's rule: the key is
the member name up to its first dot; keys hold no dot). ``<key>`` is ``<side>-<position>``, the
clip's position among its side's clips in the record (failed ones included), e.g. ``train-000042``.
Members, in this (sorted) order::

    <key>.json                      the clip's record entry (id, class, label, frames, ...)
    <key>.rgb.000000.png ...        rgb/000000.png of the clip folder, byte for byte
    <key>.u.000000.jpg ...          u/000000.jpg
    <key>.v.000000.jpg ...          v/000000.jpg

A folder-relative name becomes a member name by joining key and name with a dot, its ``/`` replaced
by a dot (:func:`member_name`). Headers are fixed for byte-identical output: ustar, mode 0644, uid
and gid 0, no user or group names, mtime 0; the archive ends with two zero blocks padded to 10 KiB
(what ``tar`` writes). A shard job (``--shard K/N``) writes ``train-kKKKofNNN-000000.tar``.

:class:`ClipFiles` is how verify, preview and the loader read a clip's images, whether from a
folder (:class:`FolderClip`) or from a shard (:class:`PackedIndex.read_clip`: one ``pread`` of the
sample, members located from their headers).
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from flowprep.errors import DatasetError
from flowprep.fsio import MAX_FRAME_BYTES, open_regular, parse_json, read_bytes, read_json
from flowprep.layout.dataset_record import DatasetRecord

SHARDS_DIR = "shards"
INDEX_NAME = "index.json"
INDEX_FORMAT = "flowprep-shards"
INDEX_VERSION = 1
#: default target size of one shard (a shard closes at the first clip that reaches it)
DEFAULT_SHARD_SIZE = 1 << 30
BLOCK = 512
#: the largest shard index read (about 150 bytes per clip: 7 million clips)
MAX_INDEX_BYTES = 1 << 30
#: tar's blocking factor: archives are padded to a multiple of 20 blocks, as GNU and BSD tar do
RECORD = 20 * BLOCK
#: a folder-relative image name inside a clip: rgb/000000.png, u/000000.jpg, v/...
REL_NAME = re.compile(r"(rgb|u|v)/(\d{6})\.(png|jpg)")
_SHARD_NAME = re.compile(r"(train|val)-(?:k(\d+)of(\d+)-)?(\d{6})\.tar")


class ClipFiles(Protocol):
    """A clip's images by folder-relative name (``rgb/000000.png``)."""

    #: where the clip is, for messages (a folder, or ``shard.tar:key``)
    where: str

    def read(self, rel: str) -> bytes:
        """The bytes of image ``rel``; DatasetError when it is missing or unreadable."""
        ...


class FolderClip:
    """The images of a clip folder: regular files only, at most :data:`MAX_FRAME_BYTES` each."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.where = str(path)

    def read(self, rel: str) -> bytes:
        try:
            # regular files only, bounded, not through a symlink (a dataset holds none): a FIFO among
            # the frames hung training, /dev/zero filled memory
            return read_bytes(self.path / rel, what="frame", max_bytes=MAX_FRAME_BYTES, owned=True, error=DatasetError)
        except DatasetError as exc:
            raise DatasetError(f"{exc}; run `flowprep verify` on the dataset") from None


class PackedClip:
    """The members of one clip's sample, by folder-relative name."""

    def __init__(self, where: str, members: dict[str, memoryview], entry: dict[str, Any] | None) -> None:
        self.where, self.members, self.entry = where, members, entry

    def read(self, rel: str) -> bytes:
        data = self.members.get(rel)
        if data is None:
            raise DatasetError(f"cannot read frame {self.where}.{rel}: not in the shard; run `flowprep verify`")
        return bytes(data)


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


# --- the index ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleRef:
    """Where one clip's sample is: shard file name, key, byte offset of its first header, length."""

    shard: str
    key: str
    offset: int
    length: int
    frames: int
    flow_frames: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "key": self.key,
            "offset": self.offset,
            "length": self.length,
            "frames": self.frames,
            "flow_frames": self.flow_frames,
        }


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _sample_ref(d: Any, where: str) -> SampleRef:
    keys = ("offset", "length", "frames", "flow_frames")
    if (
        not isinstance(d, dict)
        or not all(_int(d.get(k)) for k in keys)
        or parse_shard_name(str(d.get("shard"))) is None
        or not isinstance(d.get("key"), str)
    ):
        raise DatasetError(f"{where}: damaged entry {str(d)[:80]}; rebuild the index with `flowprep pack`")
    return SampleRef(d["shard"], d["key"], d["offset"], d["length"], d["frames"], d["flow_frames"])


class PackedIndex:
    """``shards/index.json`` of a packed dataset, and reading clips from the shards.

    Samples are read with ``os.pread`` on a descriptor opened once per process and shard (a
    DataLoader worker forked from another process opens its own).
    """

    def __init__(self, root: Path, index: dict[str, Any]) -> None:
        self.root = Path(root)
        self.dir = self.root / SHARDS_DIR
        where = str(self.dir / INDEX_NAME)
        if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
            raise DatasetError(f"{where} is not a flowprep shard index")
        if not isinstance(index.get("clips"), dict) or not isinstance(index.get("shards"), list):
            raise DatasetError(f"{where}: clips must be an object and shards a list")
        self.index = index
        self.clips = {cid: _sample_ref(d, where) for cid, d in index["clips"].items()}
        self.shards: list[dict[str, Any]] = index["shards"]
        for s in self.shards:
            if not isinstance(s, dict) or parse_shard_name(str(s.get("name"))) is None or not _int(s.get("bytes")):
                raise DatasetError(f"{where}: damaged shard entry {str(s)[:80]}")
        self._fds: dict[str, int] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fds"] = {}  # descriptors do not travel to another process
        return state

    def shard_path(self, clip_id: str) -> Path:
        ref = self.clips.get(clip_id)
        if ref is None:
            raise DatasetError(f"{self.root}: clip {clip_id} listed in the record is not in {SHARDS_DIR}/{INDEX_NAME}")
        return self.dir / ref.shard

    def side_shards(self, side: str) -> list[str]:
        """File names of one side's shards, in index order."""
        return [s["name"] for s in self.shards if s.get("side") == side]

    def _fd(self, shard: str) -> int:
        if self._pid != os.getpid():  # forked: the parent's descriptors share its file offsets
            self._fds, self._pid = {}, os.getpid()
        fd = self._fds.get(shard)
        if fd is None:
            # a regular file, not through a symlink: a FIFO in its place would block every read
            fd = open_regular(self.dir / shard, what="shard", owned=True, error=DatasetError)
            self._fds[shard] = fd
        return fd

    def read_sample(self, clip_id: str) -> tuple[SampleRef, bytes]:
        """The bytes of one clip's sample (headers and data), with one read."""
        self.shard_path(clip_id)
        ref = self.clips[clip_id]
        try:
            data = os.pread(self._fd(ref.shard), ref.length, ref.offset)
        except OSError as exc:
            raise DatasetError(f"cannot read shard {self.dir / ref.shard}: {exc.strerror or exc}") from None
        if len(data) != ref.length:
            raise DatasetError(f"shard {self.dir / ref.shard} is shorter than its index says; run `flowprep verify`")
        return ref, data

    def read_clip(self, clip_id: str) -> PackedClip:
        """The images of one clip (see :func:`split_sample`)."""
        ref, data = self.read_sample(clip_id)
        return split_sample(data, f"{self.dir / ref.shard}:{ref.key}", ref.key)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}


def split_sample(data: bytes, where: str, key: str | None = None) -> PackedClip:
    """The members of one sample by folder-relative name, and its parsed ``.json`` entry.

    Raises:
        DatasetError: a damaged sample, a member of another key, or a name that is no clip image.
    """
    members = parse_members(data, where)
    return _sample(data, members, where, key if key is not None else members[0][0].partition(".")[0] if members else "")


def _sample(data: bytes, members: list[tuple[str, int, int]], where: str, key: str) -> PackedClip:
    view = memoryview(data)
    images: dict[str, memoryview] = {}
    entry = None
    for name, start, size in members:
        k, dot, rest = name.partition(".")
        if k != key or not dot:
            raise DatasetError(f"{where}: member {name!r} does not belong to sample {key!r}")
        if rest == "json":
            try:
                text = bytes(view[start : start + size]).decode("utf-8")
            except UnicodeDecodeError:
                raise DatasetError(f"{where}: {name} is not UTF-8 text") from None
            entry = parse_json(text, where=f"{where}: {name}", error=DatasetError)
            continue
        rel = rel_name(rest)
        if rel is None:
            raise DatasetError(f"{where}: member {name!r} is not a clip image")
        images[rel] = view[start : start + size]
    return PackedClip(where, images, entry)


def read_index(root: Path) -> dict[str, Any]:
    """The JSON of ``<root>/shards/index.json`` (a symlink is refused: flowprep writes none)."""
    index = read_json(
        Path(root) / SHARDS_DIR / INDEX_NAME,
        what="shard index",
        max_bytes=MAX_INDEX_BYTES,
        owned=True,
        error=DatasetError,
    )
    if not isinstance(index, dict):
        raise DatasetError(f"{Path(root) / SHARDS_DIR / INDEX_NAME} is not a flowprep shard index")
    return index


def open_index(root: Path, record: DatasetRecord) -> PackedIndex | None:
    """The shard index of a packed dataset (its record has ``packed``, its format checked by the
    record's reader), None for a folder dataset."""
    if record.packed is None:
        return None
    return PackedIndex(root, read_index(root))


def iter_samples(path: Path, chunk: int = 1 << 20) -> Iterator[tuple[int, int, PackedClip]]:
    """Stream the samples of one shard in order: ``(offset, length, clip)``, one sample in memory at
    a time (members grouped by key, as WebDataset groups them).

    Raises:
        DatasetError: an unreadable or damaged shard.
    """
    path = Path(path)
    # a regular file, not through a symlink (a FIFO in its place would block): see flowprep.fsio
    fd = open_regular(path, what="shard", owned=True, error=DatasetError)
    fh = os.fdopen(fd, "rb", buffering=chunk)  # noqa: SIM115 - closed in finally (a generator)
    try:
        pos, start, key = 0, 0, None
        parts: list[bytes] = []
        members: list[tuple[str, int, int]] = []
        while True:
            block = fh.read(BLOCK)
            if len(block) < BLOCK or block == bytes(BLOCK):
                if len(block) not in (0, BLOCK):
                    raise DatasetError(f"{path}: cut short at byte {pos}")
                break
            name, size = parse_header(block, str(path), pos)
            k = name.partition(".")[0]
            if key is not None and k != key:
                yield start, pos - start, _sample(b"".join(parts), members, f"{path}:{key}", key)
                parts, members, start = [], [], pos
            key = k
            body = fh.read(size + padding(size))
            if len(body) < size + padding(size):
                raise DatasetError(f"{path}: member {name!r} is cut short")
            members.append((name, pos - start + BLOCK, size))
            parts += [block, body]
            pos += BLOCK + len(body)
        if key is not None:
            yield start, pos - start, _sample(b"".join(parts), members, f"{path}:{key}", key)
    except OSError as exc:
        raise DatasetError(f"cannot read shard {path}: {exc.strerror or exc}") from None
    finally:
        fh.close()

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
by a dot (:func:`~flowprep.layout.shard_format.member_name`). Headers are fixed for byte-identical
output: ustar, mode 0644, uid and gid 0, no user or group names, mtime 0; the archive ends with two
zero blocks padded to 10 KiB (what ``tar`` writes). A shard job (``--shard K/N``) writes ``train-kKKKofNNN-000000.tar``.
The names and headers are made and parsed in :mod:`flowprep.layout.shard_format`.

:class:`ClipFiles` is how verify, preview and the loader read a clip's images, whether from a
folder (:class:`FolderClip`) or from a shard (:class:`PackedIndex.read_clip`: one ``pread`` of the
sample, members located from their headers).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from flowprep.errors import DatasetError
from flowprep.fsio.reading import MAX_FRAME_BYTES, open_file, open_regular, parse_json, read_bytes, read_json
from flowprep.layout.dataset_record import DatasetRecord
from flowprep.layout.shard_format import BLOCK, padding, parse_header, parse_members, parse_shard_name, rel_name

SHARDS_DIR = "shards"
INDEX_NAME = "index.json"
INDEX_FORMAT = "flowprep-shards"
INDEX_VERSION = 1
#: default target size of one shard (a shard closes at the first clip that reaches it)
DEFAULT_SHARD_SIZE = 1 << 30
#: the largest shard index read (about 150 bytes per clip: 7 million clips)
MAX_INDEX_BYTES = 1 << 30


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
    fh = open_file(path, what="shard", owned=True, buffering=chunk, error=DatasetError)  # closed in finally
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

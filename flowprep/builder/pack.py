"""Packing finished clip folders into tar shards (the format of :mod:`flowprep.layout.packed`).

A *group* is the clips of one side that one process packs: all of a build's, or those of part K of
N of a sharded build (``--shard K/N``: each job packs its own clips into its own shards). A group's
clips are packed in the record's order (sorted by id); a shard closes at the first clip that brings
it to ``shard_size`` bytes.

Commit rule, as for clip folders: a shard is written under a temporary name and renamed into place,
so a shard that exists is whole. Its note (``.flowprep/pack/<shard>.json``: its clips with their
keys, offsets, lengths and frame counts; its size and sha256) is written after the rename; a shard
whose note is missing (killed in between) is scanned instead. Resume: clips in published shards are
done (their folders, if still there, are removed); the others are packed into shards numbered after
the group's last one. Since grouping restarts at every shard, a pack killed midway and rerun writes
the same shards, byte for byte, as one that was never interrupted.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from flowprep.errors import DatasetError, OutputError
from flowprep.fsio.owned import remove_inside
from flowprep.fsio.reading import MAX_FRAME_BYTES, open_file, read_bytes, read_json
from flowprep.fsio.writing import dump_json, unique_tmp, write_json_atomic
from flowprep.layout.packed import INDEX_FORMAT, INDEX_NAME, INDEX_VERSION, SHARDS_DIR, iter_samples
from flowprep.layout.paths import STATE_DIR
from flowprep.layout.registry import frame_tops
from flowprep.layout.shard_format import (
    BLOCK,
    REL_NAME,
    end_of_archive,
    member_name,
    padding,
    parse_members,
    parse_shard_name,
    sample_key,
    shard_name,
    tar_header,
)

log = logging.getLogger(__name__)

NOTES_DIR = "pack"
#: the staged tar's name inside a clip job's temporary folder
STAGED_NAME = "clip.tar"
#: the largest staged clip read back (a 10-minute clip of 1080p PNG frames is about 30 GB: refused)
MAX_STAGED_BYTES = 16 << 30


@dataclass(frozen=True)
class PackJob:
    """One finished clip to pack: its record entry, its sample key, and its clip folder (``flowprep
    pack``) or staged tar (a packed build)."""

    entry: dict[str, Any]
    key: str
    folder: Path


def staged_path(clip_folder: Path) -> Path:
    """Where a packed build commits a finished clip: ``<side>/<class>/<clip>.tar``, next to where its
    folder would be (the clip job renames it into place, as it renames a folder). A clip name too
    long for the suffix (over 251 bytes) is replaced by a hash of it."""
    name = clip_folder.name
    if len(name.encode("utf-8", "surrogateescape")) > 251:
        name = "long-" + hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()
    return clip_folder.parent / f"{name}.tar"


def write_staged(path: Path, members: Sequence[tuple[str, bytes]]) -> None:
    """A clip's images as one plain tar of folder-relative names (``rgb/000000.png``, ...)."""
    try:
        with open(path, "xb") as fh:
            pos = 0
            for rel, data in members:
                fh.write(tar_header(rel, len(data)) + data + bytes(padding(len(data))))
                pos += BLOCK + len(data) + padding(len(data))
            fh.write(end_of_archive(pos))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_staged(path: Path) -> list[tuple[str, bytes]]:
    """The images of a staged clip, sorted by name.

    Raises:
        DatasetError: unreadable, damaged, or a member that is not a clip image.
    """
    data = read_bytes(path, what="staged clip", max_bytes=MAX_STAGED_BYTES, owned=True, error=DatasetError)
    out = []
    for name, start, size in parse_members(data, str(path)):
        if not REL_NAME.fullmatch(name):
            raise DatasetError(f"{path}: member {name!r} is not a clip image")
        out.append((name, data[start : start + size]))
    return sorted(out)


def count_staged(path: Path, rgb: bool) -> tuple[int, int]:
    """``(video frames, flow frames)`` of a staged clip, from its member names (as :func:`count_on_disk`)."""
    names = [
        name
        for name, _, _ in parse_members(
            read_bytes(path, what="staged clip", max_bytes=MAX_STAGED_BYTES, owned=True, error=DatasetError), str(path)
        )
    ]
    frames = sum(n.startswith("rgb/") for n in names)
    flows = sum(n.startswith("u/") for n in names)
    return (frames if rgb else flows + 1), flows


def clip_keys(entries: Iterable[dict[str, Any]]) -> dict[str, str]:
    """clip id -> sample key: its position among its side's entries, in record order (failed ones count)."""
    pos = {"train": 0, "val": 0}
    keys = {}
    for e in entries:
        keys[e["id"]] = sample_key(e["side"], pos[e["side"]])
        pos[e["side"]] += 1
    return keys


def folder_members(folder: Path) -> list[str]:
    """The folder-relative names of a clip folder's images, sorted (``rgb/...``, ``u/...``, ``v/...``).

    Raises:
        DatasetError: anything else in the folder (it would not come back from the shard).
    """
    rels = []
    try:
        for sub in sorted(os.listdir(folder)):
            d = folder / sub
            if sub not in ("rgb", "u", "v") or d.is_symlink() or not d.is_dir():
                raise DatasetError(f"{d} is not a frame folder of the layout; move it out of the dataset to pack it")
            for f in os.listdir(d):
                if not REL_NAME.fullmatch(f"{sub}/{f}"):
                    raise DatasetError(f"{d / f} is not a frame of the layout; move it out of the dataset to pack it")
                rels.append(f"{sub}/{f}")
    except OSError as exc:
        raise DatasetError(f"cannot list clip folder {folder}: {exc.strerror or exc}") from None
    return sorted(rels)


class ShardWriter:
    """One shard being written: samples appended in order, then published whole (rename)."""

    def __init__(self, directory: Path, name: str) -> None:
        self.final = directory / name
        self.name = name
        self.tmp = unique_tmp(self.final)
        self.sha = hashlib.sha256()
        self.pos = 0
        self.clips: list[dict[str, Any]] = []
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.fh: BinaryIO = open(self.tmp, "xb")  # noqa: SIM115 - closed by publish/abort
        except OSError as exc:
            raise OutputError(f"cannot write shard {self.tmp}: {exc.strerror or exc}") from None

    def _write(self, data: bytes) -> None:
        try:
            self.fh.write(data)
        except OSError as exc:
            raise OutputError(f"cannot write shard {self.tmp}: {exc.strerror or exc}") from None
        self.sha.update(data)
        self.pos += len(data)

    def _member(self, name: str, data: bytes) -> None:
        self._write(tar_header(name, len(data)) + data + bytes(padding(len(data))))

    def add(self, job: PackJob) -> None:
        """Append one clip's sample: its ``.json`` entry, then its images in name order."""
        start = self.pos
        self._member(f"{job.key}.json", dump_json(job.entry).encode("utf-8"))
        if job.folder.is_file():  # a staged clip of a packed build
            for rel, data in read_staged(job.folder):
                self._member(member_name(job.key, rel), data)
        else:
            for rel in folder_members(job.folder):
                path = job.folder / rel
                data = read_bytes(path, what="frame", max_bytes=MAX_FRAME_BYTES, owned=True, error=DatasetError)
                self._member(member_name(job.key, rel), data)
        e = job.entry
        self.clips.append(
            {
                "id": e["id"],
                "key": job.key,
                "offset": start,
                "length": self.pos - start,
                "frames": int(e.get("frames") or 0),
                "flow_frames": int(e.get("flow_frames") or 0),
            }
        )

    def publish(self) -> dict[str, Any]:
        """Close the archive and rename it into place; returns its note."""
        self._write(end_of_archive(self.pos))
        try:
            self.fh.close()
            os.replace(self.tmp, self.final)
        except OSError as exc:
            raise OutputError(f"cannot publish shard {self.final}: {exc.strerror or exc}") from None
        side, part, seq = parse_shard_name(self.name) or ("", None, 0)
        return {
            "name": self.name,
            "side": side,
            "part": list(part) if part else None,
            "seq": seq,
            "bytes": self.pos,
            "sha256": self.sha.hexdigest(),
            "clips": self.clips,
        }

    def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


def scan_shard(path: Path) -> dict[str, Any]:
    """A published shard's note, rebuilt from its members (its ``.json`` entries and headers).

    Raises:
        DatasetError: a damaged shard, or a sample without its ``.json`` entry.
    """
    parsed = parse_shard_name(path.name)
    if parsed is None:
        raise DatasetError(f"{path} is not a shard name")
    clips = []
    for offset, length, clip in iter_samples(path):
        e = clip.entry
        if not isinstance(e, dict) or not isinstance(e.get("id"), str):
            raise DatasetError(f"{clip.where}: the sample has no .json entry naming its clip")
        key = clip.where.rsplit(":", 1)[1]
        frames, flows = int(e.get("frames") or 0), int(e.get("flow_frames") or 0)
        clips.append(
            {"id": e["id"], "key": key, "offset": offset, "length": length, "frames": frames, "flow_frames": flows}
        )
    sha = hashlib.sha256()
    with open_file(path, what="shard", owned=True, error=DatasetError) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    side, part, seq = parsed
    return {
        "name": path.name,
        "side": side,
        "part": list(part) if part else None,
        "seq": seq,
        "bytes": path.stat().st_size,
        "sha256": sha.hexdigest(),
        "clips": clips,
    }


class PackState:
    """The published shards of an output folder and their notes (``<out>/.flowprep/pack/``)."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.shards = self.out / SHARDS_DIR
        self.notes = self.out / STATE_DIR / NOTES_DIR

    def published(self) -> dict[str, dict[str, Any]]:
        """Shard file name -> note, for every whole shard in ``shards/`` (scanned where the note is missing)."""
        found: dict[str, dict[str, Any]] = {}
        names = sorted(os.listdir(self.shards)) if self.shards.is_dir() else []
        for name in names:
            if parse_shard_name(name) is None:
                continue  # a temporary file of a killed writer, or the index
            note_path = self.notes / f"{name}.json"
            note = None
            if note_path.is_file():
                note = read_json(note_path, what="shard note", max_bytes=1 << 30, owned=True, error=DatasetError)
            if not isinstance(note, dict) or note.get("bytes") != (self.shards / name).stat().st_size:
                log.info("shard %s has no note (interrupted after publishing): scanning it", name)
                note = scan_shard(self.shards / name)
                self.save(note)
            found[name] = note
        return found

    def packed_clips(self) -> dict[str, dict[str, Any]]:
        """clip id -> its entry in a published shard's note (with ``shard``)."""
        return {c["id"]: dict(c, shard=n["name"]) for n in self.published().values() for c in n["clips"]}

    def save(self, note: dict[str, Any]) -> None:
        self.notes.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.notes / f"{note['name']}.json", note)

    def clear_tmp(self) -> None:
        """Remove temporary shards that a killed writer left in ``shards/``."""
        for name in os.listdir(self.shards) if self.shards.is_dir() else []:
            if name.startswith(".") and name.endswith(".tmp"):
                remove_inside(self.out, f"{SHARDS_DIR}/{name}", (SHARDS_DIR,))


def pack_group(
    state: PackState,
    jobs: Sequence[PackJob],
    side: str,
    part: tuple[int, int] | None,
    shard_size: int,
    remove: bool,
) -> list[str]:
    """Pack the clips of one group that are not in a published shard yet; returns the new shards' names.

    Args:
        state: the output folder's shards and notes.
        jobs: the group's finished clips of ``side``, in record order.
        part: ``(k, n)`` for a job of a sharded build, None for the whole build.
        remove: delete each clip folder once its shard is published (a build; not ``flowprep pack``).

    Raises:
        DatasetError: a clip folder holds something that is not a frame; OutputError: cannot write.
    """
    published = state.published()
    done = {c["id"] for n in published.values() for c in n["clips"]}
    mine = [parse_shard_name(n) for n in published]
    seqs = [p[2] for p in mine if p is not None and p[0] == side and p[1] == part]
    seq = max(seqs) + 1 if seqs else 0
    if remove:
        for job in jobs:
            if job.entry["id"] in done and job.folder.exists():
                remove_inside(state.out, job.folder.relative_to(state.out), frame_tops())
    todo = [j for j in jobs if j.entry["id"] not in done]
    written: list[str] = []
    writer: ShardWriter | None = None
    batch: list[PackJob] = []
    try:
        for job in todo:
            if writer is None:
                writer = ShardWriter(state.shards, shard_name(side, seq, part))
            writer.add(job)
            batch.append(job)
            if writer.pos >= shard_size or job is todo[-1]:
                state.save(writer.publish())
                written.append(writer.name)
                writer, seq = None, seq + 1
                if remove:
                    for j in batch:
                        remove_inside(state.out, j.folder.relative_to(state.out), frame_tops())
                batch = []
    finally:
        if writer is not None:
            writer.abort()
    return written


def write_index(out: Path, notes: dict[str, dict[str, Any]], shard_size: int) -> dict[str, Any]:
    """``<out>/shards/index.json`` from the notes of every shard: clip -> shard, key, offset, length,
    frame counts; per shard its side, size, sha256 and clip count. Deterministic (sorted)."""
    clips: dict[str, Any] = {}
    shards = []
    for name in sorted(notes):
        n = notes[name]
        shards.append(
            {"name": name, "side": n["side"], "bytes": n["bytes"], "sha256": n["sha256"], "clips": len(n["clips"])}
        )
        for c in n["clips"]:
            clips[c["id"]] = {k: c[k] for k in ("key", "offset", "length", "frames", "flow_frames")} | {"shard": name}
    index = {
        "format": INDEX_FORMAT,
        "format_version": INDEX_VERSION,
        "pack": "webdataset",
        "shard_size": shard_size,
        "shards": shards,
        "clips": clips,
    }
    write_json_atomic(Path(out) / SHARDS_DIR / INDEX_NAME, index)
    return index

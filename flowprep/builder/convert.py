"""``flowprep pack`` and ``flowprep unpack``: convert a built dataset between clip folders and shards.

``pack`` writes the shards, index, record and labels a packed build would have written (the same
bytes: same keys, grouping and headers); ``unpack`` writes back the clip folders, the record without
its ``packed`` entry and the lists, byte for byte those of the folder build (``tao_dataset_spec.yaml``
holds the absolute dataset path, so it equals the original only in the original's place).
Both resume: ``pack`` keeps its published shards, ``unpack`` its finished clip folders.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from flowprep.builder.finalize import write_side_files
from flowprep.builder.folder import output_errors
from flowprep.builder.pack import PackJob, PackState, clip_keys, pack_group, write_index
from flowprep.builder.packbuild import write_clip_folder
from flowprep.errors import ConfigError, DatasetError
from flowprep.fsio.owned import remove_inside
from flowprep.layout.base import SIDES
from flowprep.layout.dataset_record import PackedInfo
from flowprep.layout.packed import DEFAULT_SHARD_SIZE, INDEX_NAME, SHARDS_DIR, iter_samples, open_index
from flowprep.layout.paths import STATE_DIR, TMP_DIR
from flowprep.layout.record import find_root, read_record, write_record
from flowprep.layout.registry import get_layout


@dataclass
class ConvertSummary:
    """What ``pack`` or ``unpack`` did: clips converted, shards written (pack), bytes of the shards."""

    out: Path
    clips: int = 0
    shards: list[str] = field(default_factory=list)
    bytes: int = 0


def _check_out(src: Path, out: Path, allowed: set[str]) -> None:
    """``out`` must be new, empty, or hold only what an interrupted conversion left (``allowed``)."""
    src_real, out_real = Path(os.path.realpath(src)), Path(os.path.realpath(out))
    if out_real == src_real or out_real.is_relative_to(src_real) or src_real.is_relative_to(out_real):
        raise ConfigError(f"--out {out} overlaps the dataset {src}; choose a folder outside it")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {out} exists and is not a folder")
    extra = sorted(set(os.listdir(out)) - allowed) if out.is_dir() else []
    if extra:
        raise ConfigError(f"{out} is not empty ({extra[0]}, ...); choose a new or empty --out")


def pack_dataset(dataset: Path, out: Path, shard_size: int = DEFAULT_SHARD_SIZE) -> ConvertSummary:
    """Pack the folder dataset ``dataset`` (TAO layout) into shards in ``out``.

    Raises:
        DatasetError: not a flowprep folder dataset in the TAO layout, or a clip folder that holds
            something else than frames; ConfigError: ``out`` is in use; OutputError: cannot write.
    """
    root = find_root(Path(dataset))
    record = read_record(root)
    if record.packed is not None:
        raise DatasetError(f"{root} is packed already")
    if not get_layout(record.layout).packable:
        raise DatasetError(f"{root} has the {record.layout} layout; flowprep pack packs the TAO layout")
    out = Path(out)
    _check_out(root, out, {SHARDS_DIR, STATE_DIR})
    keys = clip_keys({"id": c.id, "side": c.side} for c in record.clips)
    state = PackState(out)
    summary = ConvertSummary(out)
    with output_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        for side in SIDES:
            jobs = []
            for e in record.ok_clips(side):
                folder = root / e.id
                if not folder.is_dir():
                    raise DatasetError(f"{root}: clip folder {e.id} listed in the record is missing")
                jobs.append(PackJob(e.to_dict(), keys[e.id], folder))
            summary.shards += pack_group(state, jobs, side, None, shard_size, remove=False)
        notes = state.published()
        write_index(out, notes, shard_size)
        packed = dataclasses.replace(record, packed=PackedInfo("webdataset", f"{SHARDS_DIR}/{INDEX_NAME}"))
        write_record(out, packed)
        write_side_files(out, packed)
        remove_inside(out, STATE_DIR, (STATE_DIR,))  # the notes: the index holds what they said
    summary.clips = sum(len(n["clips"]) for n in notes.values())
    summary.bytes = sum(n["bytes"] for n in notes.values())
    summary.shards = sorted(notes)
    return summary


def unpack_dataset(dataset: Path, out: Path) -> ConvertSummary:
    """Write the packed dataset ``dataset`` as clip folders (TAO layout) in ``out``.

    Every shard is read once, in order, one clip at a time; a clip the record lists as built but no
    shard holds is an error (the dataset is incomplete).

    Raises:
        DatasetError: not a packed flowprep dataset, a damaged shard, or clips missing from the shards.
    """
    root = find_root(Path(dataset))
    record = read_record(root)
    index = open_index(root, record)
    if index is None:
        raise DatasetError(f"{root} is not packed (it has clip folders already)")
    out = Path(out)
    _check_out(root, out, set(SIDES) | {TMP_DIR})
    wanted = {c.id for c in record.ok_clips()}
    seen: set[str] = set()
    summary = ConvertSummary(out)
    with output_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        for shard in index.shards:
            for _, _, clip in iter_samples(index.dir / shard["name"]):
                cid = str((clip.entry or {}).get("id"))
                if cid not in wanted:
                    raise DatasetError(f"{clip.where}: clip {cid!r} is not a built clip of the record")
                write_clip_folder(out, cid, clip)
                seen.add(cid)
            summary.bytes += int(shard["bytes"])
        missing = sorted(wanted - seen)
        if missing:
            raise DatasetError(
                f"{len(missing)} built clip(s) are in no shard, e.g. {missing[0]}; the dataset is incomplete"
            )
        folder_record = dataclasses.replace(record, packed=None)
        write_record(out, folder_record)
        write_side_files(out, folder_record)
        if (out / TMP_DIR).is_dir():
            remove_inside(out, TMP_DIR, (TMP_DIR,))
    summary.clips = len(seen)
    return summary

"""``flowprep verify`` of a packed dataset: the shards against their index and the record.

Every shard is read once, sequentially (shards in parallel with ``jobs``): its size and sha256 against
the index; every sample's key, offset and length against the index, its ``.json`` entry against the
record, and its images as a clip folder's are checked (:func:`~flowprep.layout.images.image_problems`:
names from the recorded frame counts, each member decoded — the first and last of each stream with
``quick``, which also skips the checksum). Then the sets: every built clip of the record in exactly
one shard, no clip in the index that the record does not list as built, no stray file in ``shards/``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Protocol

from flowprep.errors import DatasetError
from flowprep.fsio.reading import open_file
from flowprep.layout.dataset_record import DatasetRecord
from flowprep.layout.images import ClipSpec, decode_bytes, image_problems
from flowprep.layout.packed import INDEX_NAME, SHARDS_DIR, PackedClip, PackedIndex, iter_samples, read_index


class Report(Protocol):
    problems: list[str]
    clips_checked: int
    images_read: int


def _sample_problems(
    clip: PackedClip, offset: int, length: int, index: dict[str, Any], shard: str, spec: ClipSpec, record: dict
) -> tuple[str | None, list[str], int]:
    """``(clip id or None, problems, images decoded)`` of one sample of ``shard``."""
    e = clip.entry
    cid = e.get("id") if isinstance(e, dict) else None
    if not isinstance(cid, str):
        return None, [f"{clip.where}: no .json entry naming the clip"], 0
    rec = record.get(cid)
    if rec is None:
        return cid, [f"{clip.where}: clip {cid} is not a built clip of the record"], 0
    problems = []
    if e != rec:
        problems.append(f"{clip.where}: its .json entry differs from the record's entry for {cid}")
    ref = index.get(cid)
    key = clip.where.rsplit(":", 1)[1]
    if ref is None or (ref.get("shard"), ref.get("key"), ref.get("offset"), ref.get("length")) != (
        shard,
        key,
        offset,
        length,
    ):
        problems.append(f"{clip.where}: {cid} is not where the index says (shard, key, offset or length)")
    spec = ClipSpec(
        spec.layout,
        rec["frames"],
        rec.get("flow_frames", 0),
        spec.rgb,
        spec.flow,
        spec.rgb_ext,
        spec.flow_ext,
        spec.quick,
    )

    def read(rel: str):
        return decode_bytes(clip.read(rel), rel.rsplit(".", 1)[-1])

    more, n = image_problems(clip.where, spec, set(clip.members), read)
    return cid, problems + more, n


def _sha256(path: Path) -> str:
    """The SHA-256 of the shard ``path``, read through the gate (a regular file, not a link)."""
    sha = hashlib.sha256()
    with open_file(path, what="shard", owned=True, error=DatasetError) as fh:
        try:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                sha.update(chunk)
        except OSError as exc:
            raise DatasetError(f"cannot read shard {path}: {exc.strerror or exc}") from None
    return sha.hexdigest()


def check_shard(
    path: str, entry: dict[str, Any], index: dict[str, Any], spec: ClipSpec, record: dict[str, Any]
) -> tuple[list[str], list[str], int]:
    """``(clip ids found, problems, images decoded)`` of one shard."""
    import cv2

    cv2.setNumThreads(1)
    p = Path(path)
    if not p.is_file() or p.is_symlink():
        return [], [f"{p}: shard missing (the index lists it)"], 0
    problems: list[str] = []
    if p.stat().st_size != entry["bytes"]:
        problems.append(f"{p}: {p.stat().st_size} bytes, the index says {entry['bytes']}")
    elif not spec.quick:
        try:
            digest = _sha256(p)
        except DatasetError as exc:  # swapped for a FIFO or a link since the check above
            return [], [str(exc)], 0
        if digest != entry.get("sha256"):
            problems.append(f"{p}: sha256 differs from the index's (the shard changed since it was written)")
    found, images = [], 0
    try:
        for offset, length, clip in iter_samples(p):
            cid, more, n = _sample_problems(clip, offset, length, index, p.name, spec, record)
            if cid is not None:
                found.append(cid)
            problems += more
            images += n
    except DatasetError as exc:
        problems.append(str(exc))
    return found, problems, images


def verify_packed(root: Path, record: DatasetRecord, report: Report, spec: ClipSpec, jobs: int) -> None:
    """Check the shards of the packed dataset at ``root``; problems go to ``report``."""
    from joblib import Parallel, delayed

    try:
        raw = read_index(root)
        index = PackedIndex(root, raw)
    except DatasetError as exc:
        report.problems.append(str(exc))
        return
    # entries as JSON: each is compared with its sample's .json member, in worker processes too
    built = {c.id: c.to_dict() for c in record.ok_clips()}
    clips = raw["clips"]
    tasks = [(str(index.dir / s["name"]), s, clips, spec, built) for s in index.shards]
    if jobs > 1 and len(tasks) > 1:
        results = Parallel(n_jobs=min(jobs, len(tasks)))(delayed(check_shard)(*t) for t in tasks)
    else:
        results = [check_shard(*t) for t in tasks]
    seen: dict[str, int] = {}
    for (found, problems, n), s in zip(results, index.shards):
        report.problems.extend(problems)
        report.images_read += n
        report.clips_checked += len(found)
        if len(found) != s.get("clips"):
            report.problems.append(f"{index.dir / s['name']}: {len(found)} clip(s), the index says {s.get('clips')}")
        for cid in found:
            seen[cid] = seen.get(cid, 0) + 1
    for cid, n in sorted(seen.items()):
        if n > 1:
            report.problems.append(f"{cid}: in {n} samples of the shards (packed twice)")
    missing = sorted(set(built) - set(seen))
    if missing:
        report.problems.append(f"{len(missing)} built clip(s) of the record are in no shard, e.g. {missing[0]}")
    unlisted = sorted(set(clips) - set(built))
    if unlisted:
        report.problems.append(f"the index lists {len(unlisted)} clip(s) the record has not built, e.g. {unlisted[0]}")
    listed = {s["name"] for s in index.shards} | {INDEX_NAME}
    for name in sorted(os.listdir(index.dir)):
        if name not in listed:
            report.problems.append(f"{root / SHARDS_DIR / name}: not a shard of the index (left over?)")

"""The dataset record: ``<root>/flowprep.json``, one JSON file that says how a dataset was made.

Schema (``format_version`` 1; machine-readable: ``docs/record.schema.json``; typed:
:class:`~flowprep.layout.dataset_record.DatasetRecord`)::

    {
      "format": "flowprep-dataset", "format_version": 1, "flowprep_version": "0.1.0",
      "layout": "tao" | "mmaction2",
      "modality": "rgb" | "flow" | "both",
      "source": {"kind": "hmdb51" | "folder" | ..., "files": [{"name": str, "size": int} |
                 {"name": str, "kind": "folder"}], "videos_selected": int},
      "classes": [str, ...],                # label id = index; also labels.txt / label_map.json
      "split": {"method": "group" | "clip" | "official", "val_ratio": 0.1 | null, "seed": 0 | null,
                "split_by": "group" | "clip" | null, "official_split": int | null,
                "counts": {cls: {"train": n, "val": n}}},          # planned
      "decode": {"short_side": int | null, "size": [w, h] | null, "frame_step": int},
      "rgb": {"image_format": "png" | "jpg", "jpeg_quality": int | null} | null,
      "flow": {"name": str, "params": {...}, "device": str} | null,
      "encoding": {"mode": "fixed" | "maxrad", "bound": 20.0, "image_format": "jpg", "jpeg_quality": 95} | null,
      "normalization": {"formula": str, "scale": 1/127.5, "offset": 127.5},  # x_net = (x - offset) * scale
      "excluded": [str, ...],               # source clips left out, with the reason
      "counts": {cls: {"train": n, "val": n}},                     # built
      "clips": [{"id": "train/walk/clip", "side": "train" | "val", "class": str, "label": int,
                 "name": str, "source": str, "frames": int, "flow_frames": int,
                 "status": "ok" | "failed", "decode_errors": int (when > 0),
                 "error": str (failed only)}, ...]   # sorted by id
    }

Nothing time- or machine-dependent goes in here (timings go to ``build_report.json``), so an
interrupted-and-resumed build writes the same bytes as an uninterrupted one. Both writers (the
builder and :mod:`flowprep.train.synthdata`) make a :class:`DatasetRecord` and write it with
:func:`write_record`; every reader gets one from :func:`read_record`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import uuid
from pathlib import Path
from typing import Any

from flowprep.errors import DatasetError, OutputError
from flowprep.fsio import read_json
from flowprep.layout.dataset_record import (
    FORMAT,
    FORMAT_VERSION,
    MAX_FRAMES,
    SIDES,
    ClipEntry,
    DatasetRecord,
    record_from_dict,
)
from flowprep.layout.fields import FieldError
from flowprep.layout.sections import DATASET_MODALITIES, IMAGE_FORMATS
from flowprep.limits import json_safe as json_safe  # re-exported: its former home

__all__ = [
    "DATASET_MODALITIES",
    "FORMAT",
    "FORMAT_VERSION",
    "IMAGE_FORMATS",
    "MAX_FRAMES",
    "MAX_RECORD_BYTES",
    "MODALITIES",
    "RECORD_NAME",
    "SIDES",
    "ClipEntry",
    "DatasetRecord",
    "dump_json",
    "find_root",
    "has_flow",
    "has_rgb",
    "is_tmp_of",
    "json_safe",
    "load_record",
    "read_record",
    "unique_tmp",
    "write_json_atomic",
    "write_record",
    "write_text_atomic",
]

RECORD_NAME = "flowprep.json"
MODALITIES = DATASET_MODALITIES  # the name the record schema checks use
#: the largest record read (about 250 bytes a clip: a million clips)
MAX_RECORD_BYTES = 256 << 20


def unique_tmp(path: Path) -> Path:
    """A sibling of ``path`` no other process on any host will pick (shards on several nodes often
    share process ids, so the pid alone is not enough)."""
    return path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def is_tmp_of(candidate: str, name: str) -> bool:
    """Whether ``candidate`` is a name :func:`unique_tmp` gives a temporary sibling of ``name``
    (``.<name>.<host>-<pid>-<8 hex>.tmp``: one that a process killed mid-write leaves behind)."""
    return re.fullmatch(re.escape(f".{name}.") + r".+-\d+-[0-9a-f]{8}\.tmp", candidate) is not None


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a uniquely named sibling and a rename (readers never see half).

    Raises:
        OutputError: the file cannot be written (read-only or full disk, permissions, no folder).
    """
    path = Path(path)
    tmp = unique_tmp(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # on a read-only disk even this may fail
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            # a full disk reports ENOSPC on write(), which names no file: say which one
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


def dump_json(obj: Any) -> str:
    """JSON as flowprep writes it: sorted keys, 2-space indent, UTF-8, trailing newline.

    ``nan``/``inf`` raise ValueError instead of becoming ``NaN``/``Infinity``, which are not JSON
    (the config dataclasses refuse non-finite numbers, so a record never holds one).
    """
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON (see :func:`dump_json`) atomically."""
    write_text_atomic(path, dump_json(obj))


def write_record(root: Path, record: DatasetRecord) -> Path:
    """Write ``record`` as ``root/flowprep.json`` atomically; returns the path.

    What is written is first read back with :func:`~flowprep.layout.dataset_record.record_from_dict`,
    so flowprep never writes a record it would refuse to read.

    Raises:
        DatasetError: the record does not pass its own reader (one line naming the field).
        OutputError: the file cannot be written.
    """
    out = Path(root) / RECORD_NAME
    data = record.to_dict()
    try:
        record_from_dict(data)
    except FieldError as exc:
        raise DatasetError(f"refusing to write {out}: {exc} (a record flowprep could not read back)") from None
    write_json_atomic(out, data)
    return out


def find_root(path: Path) -> Path:
    """The dataset root for ``path``: itself, or its parent when ``path`` is ``<root>/train`` or ``<root>/val``."""
    path = Path(path)
    if (path / RECORD_NAME).is_file():
        return path
    if path.name in SIDES and (path.parent / RECORD_NAME).is_file():
        return path.parent
    raise DatasetError(
        f"{path} is not a flowprep dataset (no {RECORD_NAME} in it or its parent); "
        "build one with `flowprep build` or `flowprep build-hmdb5`"
    )


def read_record(path: Path) -> DatasetRecord:
    """Load and check the record of the dataset at ``path`` (root, or its train/val folder).

    Every field is checked (:func:`~flowprep.layout.dataset_record.record_from_dict`), so callers
    use the typed record without guards and may join its class and clip names to paths: none of
    them can lead outside the dataset.

    Raises:
        DatasetError: no record, an unreadable or oversized file, not JSON (or nested too deep), a
            format this version does not know, or a field that does not follow the schema (one line
            naming the file and the field).
    """
    root = find_root(path)
    file = root / RECORD_NAME
    data = read_json(file, what="dataset record", max_bytes=MAX_RECORD_BYTES, error=DatasetError)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DatasetError(f"{file} is not a flowprep dataset record")
    try:
        return record_from_dict(data)
    except FieldError as exc:
        raise DatasetError(
            f"{file}: {exc} (the record was edited or damaged; rebuild the dataset or restore the file)"
        ) from None


#: the name the task's callers use for the checked loader
load_record = read_record


def has_rgb(record: DatasetRecord) -> bool:
    return record.has_rgb


def has_flow(record: DatasetRecord) -> bool:
    return record.has_flow

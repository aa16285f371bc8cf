"""The dataset record: ``<root>/flowprep.json``, one JSON file that says how a dataset was made.

Schema (``format_version`` 1; machine-readable: ``docs/record.schema.json``; typed:
:class:`~flowprep.layout.dataset_record.DatasetRecord`)::

    {
      "format": "flowprep-dataset", "format_version": 1, "flowprep_version": "0.1.0",
      "layout": "tao" | "mmaction2",
      "modality": "rgb" | "flow" | "both",
      "source": {"kind": "hmdb51" | "ucf101" | "folder" | ..., "files": [{"name": str, "size": int} |
                 {"name": str, "kind": "folder"}], "videos_selected": int},
      "classes": [str, ...],                # label id = index; also labels.txt / label_map.json
      "split": {"method": "group" | "clip" | "official" | "lists" | "folders",
                "val_ratio": 0.1 | null, "seed": 0 | null, "split_by": "group" | "clip" | null,
                "official_split": int | null, "counts": {cls: {"train": n, "val": n}},   # planned
                # only where they apply (HMDB51's official split and the seeded split have none):
                "convention": "ucf101", "lists": {"train": name, "val": name},
                "folders": {"train": "train", "val": "val"}, "classes_from": "classInd.txt",
                "missing": {"train": [path, ...], "val": [...]}},   # list entries the release lacked
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

from pathlib import Path

from flowprep.errors import DatasetError
from flowprep.fsio.paths import check_path
from flowprep.fsio.reading import read_json
from flowprep.fsio.writing import write_json_atomic
from flowprep.layout.base import SIDES
from flowprep.layout.dataset_record import FORMAT, DatasetRecord, record_from_dict
from flowprep.layout.fields import FieldError

__all__ = [
    "MAX_RECORD_BYTES",
    "RECORD_NAME",
    "find_root",
    "has_flow",
    "has_rgb",
    "read_record",
    "write_record",
]

RECORD_NAME = "flowprep.json"
#: the largest record read (about 250 bytes a clip: a million clips)
MAX_RECORD_BYTES = 256 << 20


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
    path = check_path(path, "dataset")  # verify, stats, train, preview: paths enter here
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


def has_rgb(record: DatasetRecord) -> bool:
    return record.has_rgb


def has_flow(record: DatasetRecord) -> bool:
    return record.has_flow

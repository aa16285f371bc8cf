"""The dataset record: ``<root>/flowprep.json``, one JSON file that says how a dataset was made.

Schema (``format_version`` 1)::

    {
      "format": "flowprep-dataset", "format_version": 1, "flowprep_version": "0.1.0",
      "layout": "tao" | "mmaction2",
      "modality": "rgb" | "flow" | "both",
      "source": {"kind": "hmdb51" | "folder" | "archive", "files": [{"name": str, "size": int}], ...},
      "classes": [str, ...],                # label id = index; also labels.txt / label_map.json
      "split": {"method": "group" | "clip" | "official", "val_ratio": 0.1, "seed": 0,
                "official_split": int | null, "counts": {cls: {"train": n, "val": n}}},
      "decode": {"short_side": int | null, "size": [w, h] | null, "frame_step": int},
      "rgb": {"image_format": "png"},
      "flow": {"name": str, "params": {...}, "device": str} | null,
      "encoding": {"mode": "fixed" | "maxrad", "bound": 20.0, "image_format": "jpg", "jpeg_quality": 95},
      "normalization": {"scale": 1/127.5, "offset": 127.5}   # x_net = (x - offset) * scale
      "clips": [{"id": "train/walk/clip", "side": "train" | "val", "class": str, "label": int,
                 "name": str, "source": str, "frames": int, "flow_frames": int,
                 "status": "ok" | "failed", "error": str (failed only)}, ...]   # sorted by id
    }

Nothing time- or machine-dependent goes in here (timings go to ``build_report.json``), so an
interrupted-and-resumed build writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path
from typing import Any

from flowprep.errors import DatasetError

RECORD_NAME = "flowprep.json"
FORMAT = "flowprep-dataset"
FORMAT_VERSION = 1
SIDES = ("train", "val")
#: what a dataset holds (``flowprep build --modality``); a model's input streams are
#: :data:`flowprep.train.spec.STREAMS`
DATASET_MODALITIES = ("rgb", "flow", "both")


def unique_tmp(path: Path) -> Path:
    """A sibling of ``path`` no other process on any host will pick (shards on several nodes often
    share process ids, so the pid alone is not enough)."""
    return path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a uniquely named sibling and a rename (readers never see half)."""
    path = Path(path)
    tmp = unique_tmp(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def dump_json(obj: Any) -> str:
    """JSON as flowprep writes it: sorted keys, 2-space indent, UTF-8, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON (see :func:`dump_json`) atomically."""
    write_text_atomic(path, dump_json(obj))


def write_record(root: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as ``root/flowprep.json`` atomically; returns the path."""
    out = Path(root) / RECORD_NAME
    write_json_atomic(out, record)
    return out


def find_root(path: Path) -> Path:
    """The dataset root for ``path``: itself, or its parent when ``path`` is ``<root>/train`` or ``<root>/val``."""
    path = Path(path)
    if (path / RECORD_NAME).is_file():
        return path
    if path.name in SIDES and (path.parent / RECORD_NAME).is_file():
        return path.parent
    raise DatasetError(f"{path} is not a flowprep dataset (no {RECORD_NAME} in it or its parent); "
                       "build one with `flowprep build` or `flowprep build-hmdb5`")


def read_record(path: Path) -> dict[str, Any]:
    """Load and check the record of the dataset at ``path`` (root, or its train/val folder).

    Raises:
        DatasetError: no record, unreadable JSON, or a format this version does not know.
    """
    root = find_root(path)
    file = root / RECORD_NAME
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read dataset record {file}: {exc}") from exc
    if record.get("format") != FORMAT:
        raise DatasetError(f"{file} is not a flowprep dataset record")
    if int(record.get("format_version", 0)) > FORMAT_VERSION:
        raise DatasetError(f"{file} has format version {record.get('format_version')}; "
                           f"this flowprep reads up to {FORMAT_VERSION}: upgrade flowprep")
    return record


def has_rgb(record: dict[str, Any]) -> bool:
    return record.get("modality") in ("rgb", "both")


def has_flow(record: dict[str, Any]) -> bool:
    return record.get("modality") in ("flow", "both")

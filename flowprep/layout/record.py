"""The dataset record: ``<root>/flowprep.json``, one JSON file that says how a dataset was made.

Schema (``format_version`` 1)::

    {
      "format": "flowprep-dataset", "format_version": 1, "flowprep_version": "0.1.0",
      "layout": "tao" | "mmaction2",
      "modality": "rgb" | "flow" | "both",
      "source": {"kind": "hmdb51" | "ucf101" | "folder" | "archive", "files": [{"name": str, "size": int}], ...},
      "classes": [str, ...],                # label id = index; also labels.txt / label_map.json
      "split": {"method": "group" | "clip" | "official" | "lists" | "folders", "val_ratio": 0.1, "seed": 0,
                "official_split": int | null, "counts": {cls: {"train": n, "val": n}},
                # only where they apply (HMDB51's official split and the seeded split have none):
                "convention": "ucf101", "lists": {"train": name, "val": name},
                "folders": {"train": "train", "val": "val"}, "classes_from": "classInd.txt",
                "missing": {"train": [path, ...], "val": [...]}},   # list entries the release lacked
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

from pathlib import Path
from typing import Any

from flowprep.errors import ConfigError, DatasetError
from flowprep.flow.encoding import FlowEncoding
from flowprep.fsio import check_path, name_problem, read_json, write_json_atomic
from flowprep.layout.paths import LAYOUTS

RECORD_NAME = "flowprep.json"
FORMAT = "flowprep-dataset"
FORMAT_VERSION = 1
SIDES = ("train", "val")
#: what a dataset holds (``flowprep build --modality``); a model's input streams are
#: :data:`flowprep.loader.spec.STREAMS`
DATASET_MODALITIES = ("rgb", "flow", "both")
IMAGE_FORMATS = ("png", "jpg")
#: more frames than any clip has (10 hours at 30 fps); a bigger count is a damaged record
MAX_FRAMES = 1_080_000
#: the largest record read (about 250 bytes a clip: a million clips)
MAX_RECORD_BYTES = 256 << 20


def write_record(root: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as ``root/flowprep.json`` atomically; returns the path."""
    out = Path(root) / RECORD_NAME
    write_json_atomic(out, record)
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


def read_record(path: Path) -> dict[str, Any]:
    """Load and check the record of the dataset at ``path`` (root, or its train/val folder).

    The record's schema is checked (:func:`check_record`), so callers may index it without guards
    and join its class and clip names to paths: none of them can lead outside the dataset.

    Raises:
        DatasetError: no record, unreadable JSON, a format this version does not know, or a record
            that does not follow the schema (one line naming the field).
    """
    root = find_root(path)
    file = root / RECORD_NAME
    record = read_json(file, what="dataset record", max_bytes=MAX_RECORD_BYTES, error=DatasetError)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise DatasetError(f"{file} is not a flowprep dataset record")
    version = record.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise DatasetError(f"{file}: format_version must be a whole number, got {version!r}")
    if version > FORMAT_VERSION:
        raise DatasetError(
            f"{file} has format version {record.get('format_version')}; "
            f"this flowprep reads up to {FORMAT_VERSION}: upgrade flowprep"
        )
    try:
        check_record(record)
    except _Bad as exc:
        raise DatasetError(
            f"{file}: {exc} (the record was edited or damaged; rebuild the dataset or restore the file)"
        ) from None
    return record


class _Bad(ValueError):
    """One schema violation; :func:`read_record` turns it into a DatasetError naming the file."""


def _need(ok: bool, where: str, what: str, value: Any) -> None:
    if not ok:
        shown = repr(value)
        raise _Bad(f"{where} must be {what}, got {shown[:80]}{'...' if len(shown) > 80 else ''}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_name(name: Any, where: str) -> None:
    why = name_problem(name) if isinstance(name, str) else f"not a string but {type(name).__name__}"
    _need(why is None, where, f"a plain folder name ({why})", name)


def check_record(record: dict[str, Any]) -> None:
    """Raise ``_Bad`` (a ValueError naming the field) unless ``record`` follows the schema above.

    Checked: types of every field the readers use; layout, modality, sides, statuses from their
    sets; class and clip names plain folder names (:func:`~flowprep.layout.names.name_problem`:
    no ``..``, separators or absolute paths); each clip's ``id`` equal to ``side/class/name``, its
    class one of ``classes`` and its label that class's index; counts whole numbers >= 0.
    """
    _need(record.get("layout", "tao") in LAYOUTS, "layout", f"one of {LAYOUTS}", record.get("layout"))
    _need(
        record.get("modality") in DATASET_MODALITIES, "modality", f"one of {DATASET_MODALITIES}", record.get("modality")
    )
    classes: list[str] = record.get("classes")  # type: ignore[assignment]  # checked next
    _need(isinstance(classes, list) and len(classes) > 0, "classes", "a non-empty list", classes)
    for i, c in enumerate(classes):
        _check_name(c, f"classes[{i}]")
    _need(len(set(classes)) == len(classes), "classes", "a list without repeats", classes)
    for key in _OBJECT_FIELDS:
        _need(record.get(key) is None or isinstance(record.get(key), dict), key, "an object or null", record.get(key))
    _check_details(record)
    rgb_fmt = (record.get("rgb") or {}).get("image_format", "png")
    _need(rgb_fmt in IMAGE_FORMATS, "rgb.image_format", f"one of {IMAGE_FORMATS}", rgb_fmt)
    if record.get("encoding"):
        _check_encoding(record["encoding"])
    clips: list[Any] = record.get("clips")  # type: ignore[assignment]  # checked next
    _need(isinstance(clips, list), "clips", "a list", clips)
    ids: set[str] = set()
    for i, clip in enumerate(clips):
        _check_clip(clip, f"clips[{i}]", classes)
        # a repeated clip would be counted, verified and trained on twice
        _need(clip["id"] not in ids, f"clips[{i}].id", "unique (it is listed twice)", clip["id"])
        ids.add(clip["id"])


#: top-level fields that are objects (or null): readers (preview, stats, train) call ``.get`` on them
_OBJECT_FIELDS = ("source", "split", "decode", "rgb", "flow", "encoding", "normalization", "counts")


def _check_details(record: dict[str, Any]) -> None:
    """The nested fields the summary readers (preview's page, stats) format: counts per class and
    side whole numbers, source files objects with a whole-number size, flow params an object."""
    split = record.get("split") or {}
    for where, counts in (("counts", record.get("counts")), ("split.counts", split.get("counts"))):
        _need(counts is None or isinstance(counts, dict), where, "an object or null", counts)
        for cls, sides in (counts or {}).items():
            _need(isinstance(sides, dict), f"{where}.{cls}", "an object {train: n, val: n}", sides)
            for side, n in sides.items():
                _need(_is_int(n) and n >= 0, f"{where}.{cls}.{side}", "a whole number >= 0", n)
    files = (record.get("source") or {}).get("files", [])
    _need(isinstance(files, list), "source.files", "a list", files)
    for i, f in enumerate(files):
        _need(
            isinstance(f, dict) and (f.get("size") is None or _is_int(f.get("size"))),
            f"source.files[{i}]",
            "an object with a whole-number size",
            f,
        )
    params = (record.get("flow") or {}).get("params")
    _need(params is None or isinstance(params, dict), "flow.params", "an object or null", params)
    step = (record.get("decode") or {}).get("frame_step", 1)
    _need(_is_int(step) and step >= 1, "decode.frame_step", "a whole number >= 1", step)


def _check_encoding(enc: dict[str, Any]) -> None:
    try:
        FlowEncoding.from_dict(enc)
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise _Bad(f"encoding is not a valid flow encoding ({type(exc).__name__}: {exc})") from None


def _check_clip(clip: Any, where: str, classes: list[str]) -> None:
    _need(isinstance(clip, dict), where, "an object", clip)
    _need(clip.get("side") in SIDES, f"{where}.side", f"one of {SIDES}", clip.get("side"))
    _need(clip.get("class") in classes, f"{where}.class", "one of the record's classes", clip.get("class"))
    _check_name(clip.get("name"), f"{where}.name")
    expected = f"{clip['side']}/{clip['class']}/{clip['name']}"
    _need(clip.get("id") == expected, f"{where}.id", f"{expected!r} (side/class/name)", clip.get("id"))
    _need(
        clip.get("label") == classes.index(clip["class"]) and _is_int(clip.get("label")),
        f"{where}.label",
        f"{classes.index(clip['class'])} (the index of its class)",
        clip.get("label"),
    )
    _need(clip.get("status") in ("ok", "failed"), f"{where}.status", "'ok' or 'failed'", clip.get("status"))
    for key in ("frames", "flow_frames"):
        v = clip.get(key, 0)
        _need(_is_int(v) and 0 <= v <= MAX_FRAMES, f"{where}.{key}", f"a whole number in [0, {MAX_FRAMES}]", v)
    # the builder always writes the source file name; stats parses HMDB51's tags from it
    _need(isinstance(clip.get("source"), str), f"{where}.source", "a string", clip.get("source"))
    _need(
        clip.get("error") is None or isinstance(clip.get("error"), str), f"{where}.error", "a string", clip.get("error")
    )


def has_rgb(record: dict[str, Any]) -> bool:
    return record.get("modality") in ("rgb", "both")


def has_flow(record: dict[str, Any]) -> bool:
    return record.get("modality") in ("flow", "both")

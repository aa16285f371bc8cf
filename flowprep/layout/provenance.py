"""The dataset record's provenance, typed: what a dataset was built from and how its clips were split.

- ``source``: :class:`SourceInfo` (the release's kind and files, :class:`SourceFile`, and how many
  videos were selected);
- ``split``: :class:`SplitInfo` (the split method, its settings and the planned clips per class,
  :class:`SideCounts`).

:class:`~flowprep.layout.dataset_record.DatasetRecord` holds both (and its built ``counts`` as
:class:`SideCounts`); the builder's plan holds them as dicts, read with :func:`source_from_dict` and
:func:`split_from_dict`. Every ``*_from`` function reads one section with
:class:`~flowprep.layout.fields.Fields` and raises :class:`~flowprep.layout.fields.FieldError`
naming the field; ``to_dict`` gives the JSON the builder has always written, key for key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowprep.layout.base import SIDES
from flowprep.layout.fields import MAX_TEXT, FieldError, Fields, want_str

#: how clips were split (:attr:`SplitInfo.method`)
SPLIT_METHODS = ("group", "clip", "official", "lists", "folders")
_INT64 = 2**63 - 1


@dataclass(frozen=True)
class SideCounts:
    """Clips of one class on each side."""

    train: int = 0
    val: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"train": self.train, "val": self.val}


@dataclass(frozen=True)
class SourceFile:
    """One file or folder of the source: its name, and its size in bytes (files) or kind (folders)."""

    name: str
    size: int | None = None
    kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        if self.size is not None:
            d["size"] = self.size
        if self.kind is not None:
            d["kind"] = self.kind
        return d


@dataclass(frozen=True)
class SourceInfo:
    """What the dataset was built from: ``kind`` (``hmdb51``, ``folder``, ...), the source (and split)
    files, and how many videos were selected."""

    kind: str = "folder"
    files: tuple[SourceFile, ...] = ()
    videos_selected: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "files": [f.to_dict() for f in self.files]}
        if self.videos_selected is not None:
            d["videos_selected"] = self.videos_selected
        return d


@dataclass(frozen=True)
class SplitInfo:
    """How clips were split: ``method`` (``group``/``clip``: seeded random, ``official``: split files,
    ``lists``: train/val list files, ``folders``: train/val folders), its settings (None where the
    method has none) and the planned ``counts`` per class.

    Where they apply (None, and absent from the JSON, elsewhere): ``convention`` (``"ucf101"``),
    ``lists`` / ``folders`` (side -> the list file or folder name), ``classes_from`` (the file that
    fixed the label order, ``classInd.txt``), ``missing`` (side -> list entries the release lacked).
    """

    method: str
    official_split: int | None = None
    val_ratio: float | None = None
    seed: int | None = None
    split_by: str | None = None
    counts: Mapping[str, SideCounts] = field(default_factory=dict)
    convention: str | None = None
    lists: Mapping[str, str] | None = None
    folders: Mapping[str, str] | None = None
    classes_from: str | None = None
    missing: Mapping[str, tuple[str, ...]] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "method": self.method,
            "official_split": self.official_split,
            "val_ratio": self.val_ratio,
            "seed": self.seed,
            "split_by": self.split_by,
            "counts": {c: n.to_dict() for c, n in self.counts.items()},
        }
        for key in ("convention", "lists", "folders", "classes_from"):
            value = getattr(self, key)
            if value is not None:
                d[key] = dict(value) if isinstance(value, Mapping) else value
        if self.missing is not None:
            d["missing"] = {s: list(v) for s, v in self.missing.items()}
        return d


def counts_from(f: Fields, key: str, classes: tuple[str, ...]) -> dict[str, SideCounts]:
    """Class -> :class:`SideCounts` of the object at ``key`` (absent or null: none); every class
    must be one of ``classes``."""
    sub = f.obj(key, default=None, nullable=True)
    if sub is None:
        return {}
    out = {}
    for cls in sub.data:
        if cls not in classes:
            raise FieldError(sub.path(str(cls)), "a class of the record", cls)
        n = sub.obj(cls)
        out[cls] = SideCounts(n.whole("train", 0, _INT64, default=0), n.whole("val", 0, _INT64, default=0))
    return out


def source_from(f: Fields) -> SourceInfo:
    """The ``source`` section as :class:`SourceInfo`."""
    files = []
    for i, item in enumerate(f.array("files", default=[])):
        sf = Fields(item, f.path(f"files[{i}]"))
        files.append(
            SourceFile(
                sf.text("name", max_len=MAX_TEXT),
                sf.whole("size", 0, _INT64, default=None, nullable=True),
                sf.text("kind", default=None, nullable=True, max_len=64),
            )
        )
    return SourceInfo(f.text("kind", max_len=64), tuple(files), f.whole("videos_selected", 0, _INT64, None, True))


def _per_side(f: Fields, key: str) -> dict[str, str] | None:
    sub = f.obj(key, default=None, nullable=True)
    return None if sub is None else {s: sub.text(s) for s in SIDES}


def split_from(f: Fields, classes: tuple[str, ...]) -> SplitInfo:
    """The ``split`` section as :class:`SplitInfo` (its ``counts`` of ``classes`` only)."""
    missing = f.obj("missing", default=None, nullable=True)
    return SplitInfo(
        f.text("method", SPLIT_METHODS),
        f.whole("official_split", 1, 100, default=None, nullable=True),
        f.number("val_ratio", 0, 1, default=None, nullable=True, lo_open=True),
        f.whole("seed", -_INT64 - 1, _INT64, default=None, nullable=True),
        f.text("split_by", ("group", "clip"), default=None, nullable=True),
        counts_from(f, "counts", classes),
        f.text("convention", default=None, nullable=True, max_len=64),
        _per_side(f, "lists"),
        _per_side(f, "folders"),
        f.text("classes_from", default=None, nullable=True),
        None
        if missing is None
        else {
            s: tuple(want_str(x, missing.path(f"{s}[{i}]")) for i, x in enumerate(missing.array(s, default=[])))
            for s in SIDES
        },
    )


def source_from_dict(data: Any) -> SourceInfo:
    """A plan's ``source`` section (the builder's dict) as :class:`SourceInfo` (checked)."""
    return source_from(Fields(data, "source"))


def split_from_dict(data: Any, classes: tuple[str, ...]) -> SplitInfo:
    """A plan's ``split`` section as :class:`SplitInfo` (checked)."""
    return split_from(Fields(data, "split"), classes)

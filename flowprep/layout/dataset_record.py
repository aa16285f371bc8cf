"""The dataset record as a typed, validated value: :class:`DatasetRecord` and its parts.

One reader, :func:`record_from_dict`, turns the JSON of ``flowprep.json`` into a
:class:`DatasetRecord`, checking every field's type and range, every name (class names as
:func:`~flowprep.layout.names.class_name_problem` says, clip names as folder names) and the links
between fields (each clip's id is ``side/class/name``, its label its class's index, ids unique, the
modality's sections present). One writer, :meth:`DatasetRecord.to_dict`, gives the JSON back key
for key as the builder has always written it. :func:`flowprep.layout.record.write_record` reads
what it is about to write with the reader first, so a record flowprep writes is always one it reads.

The ``source`` and ``split`` sections (:class:`SourceInfo`, :class:`SplitInfo`, ...) are typed and read
in :mod:`flowprep.layout.provenance` (import them from there).

The published schema is ``docs/record.schema.json`` (tests check that both writers' output follows it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowprep.flow.encoding import FlowEncoding
from flowprep.fsio.paths import name_problem
from flowprep.layout.base import SIDES
from flowprep.layout.fields import MAX_TEXT, REQUIRED, FieldError, Fields, want_name, want_str
from flowprep.layout.names import class_name_problem
from flowprep.layout.provenance import SideCounts, SourceInfo, SplitInfo, counts_from, source_from, split_from
from flowprep.layout.registry import DEFAULT_LAYOUT, LAYOUT_NAMES
from flowprep.layout.sections import (
    DATASET_MODALITIES,
    DecodeInfo,
    FlowInfo,
    Recipe,
    RgbInfo,
    decode_from,
    encoding_from,
    flow_from,
    rgb_from,
)
from flowprep.limits import MAX_COUNT

FORMAT = "flowprep-dataset"
FORMAT_VERSION = 1
STATUSES = ("ok", "failed")
#: how a packed dataset's shards are written (``--pack``)
PACK_FORMATS = ("webdataset",)
#: more frames than any clip has (10 hours at 30 fps); a bigger count is a damaged record
MAX_FRAMES = 1_080_000
#: the builder's own normalisation text (the numbers are :data:`flowprep.loader.spec.NORM_SCALE` / ``NORM_OFFSET``)
NORM_FORMULA = "(x / 255 - 0.5) / 0.5"
_INT64 = 2**63 - 1


@dataclass(frozen=True)
class ClipEntry:
    """One planned clip: where it is (``side``/``cls``/``name``), its label, the source file it
    came from, and whether it was built (``status`` ``ok``, with ``frames`` RGB frames and
    ``flow_frames`` flow images, ``decode_errors`` frames its video lost) or not (``failed``,
    ``error`` saying why)."""

    side: str
    cls: str
    label: int
    name: str
    source: str
    status: str
    frames: int = 0
    flow_frames: int = 0
    decode_errors: int = 0
    error: str | None = None

    @property
    def id(self) -> str:
        """``side/class/name``: the clip folder relative to a TAO dataset's root."""
        return f"{self.side}/{self.cls}/{self.name}"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "side": self.side,
            "class": self.cls,
            "label": self.label,
            "name": self.name,
            "source": self.source,
            "status": self.status,
            "frames": self.frames,
            "flow_frames": self.flow_frames,
        }
        if self.decode_errors:
            d["decode_errors"] = self.decode_errors
        if self.error is not None:
            d["error"] = self.error
        return d


@dataclass(frozen=True)
class PackedInfo:
    """A packed dataset's shards (:mod:`flowprep.layout.packed`): ``format`` (``webdataset``) and
    ``index``, the shard index relative to the root."""

    format: str
    index: str

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "index": self.index}


@dataclass(frozen=True)
class Normalization:
    """``x_net = (x - offset) * scale`` for 8-bit images (TAO's ``(x / 255 - 0.5) / 0.5``)."""

    scale: float = 1.0 / 127.5
    offset: float = 127.5
    formula: str = NORM_FORMULA

    def to_dict(self) -> dict[str, Any]:
        return {"formula": self.formula, "scale": self.scale, "offset": self.offset}


@dataclass(frozen=True)
class DatasetRecord:
    """``flowprep.json``: how a dataset was made (see :mod:`flowprep.layout.record` for the JSON).

    ``classes`` are in label order (label = index); ``clips`` are sorted by id; ``counts`` are the
    built clips per class and side (``split.counts`` the planned ones). ``rgb`` is None without RGB
    frames, ``flow`` and ``encoding`` without flow. ``packed`` says where a packed dataset's shards
    are (None: clip folders). ``clip_count`` is set only on a record read without its clips (a
    checkpoint's copy: :meth:`summary_dict`).
    """

    modality: str
    classes: tuple[str, ...]
    clips: tuple[ClipEntry, ...]
    split: SplitInfo
    decode: DecodeInfo = field(default_factory=DecodeInfo)
    rgb: RgbInfo | None = None
    flow: FlowInfo | None = None
    encoding: FlowEncoding | None = None
    layout: str = "tao"
    source: SourceInfo = field(default_factory=SourceInfo)
    normalization: Normalization = field(default_factory=Normalization)
    excluded: tuple[str, ...] = ()
    counts: Mapping[str, SideCounts] = field(default_factory=dict)
    flowprep_version: str = ""
    format_version: int = FORMAT_VERSION
    packed: PackedInfo | None = None
    clip_count: int | None = None

    @property
    def has_rgb(self) -> bool:
        return self.modality in ("rgb", "both")

    @property
    def has_flow(self) -> bool:
        return self.modality in ("flow", "both")

    @property
    def recipe(self) -> Recipe:
        """The sections a model's inputs depend on (see :class:`~flowprep.layout.sections.Recipe`)."""
        return Recipe(self.modality, self.decode, self.rgb, self.flow, self.encoding)

    def ok_clips(self, side: str | None = None) -> list[ClipEntry]:
        """The built clips (of ``side`` when given), in id order."""
        return [c for c in self.clips if c.ok and (side is None or c.side == side)]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``flowprep.json`` (what the builder writes, key for key)."""
        return {**self.summary_dict(with_count=False), "clips": [c.to_dict() for c in self.clips]}

    def summary_dict(self, with_count: bool = True) -> dict[str, Any]:
        """:meth:`to_dict` without the per-clip list; with ``clip_count`` (how many there were)
        unless ``with_count`` is False. What a checkpoint keeps of its training dataset."""
        d: dict[str, Any] = {
            "format": FORMAT,
            "format_version": self.format_version,
            "flowprep_version": self.flowprep_version,
            "layout": self.layout,
            "modality": self.modality,
            "source": self.source.to_dict(),
            "classes": list(self.classes),
            "split": self.split.to_dict(),
            **self.recipe.sections(),
            "normalization": self.normalization.to_dict(),
            "excluded": list(self.excluded),
            "counts": {c: n.to_dict() for c, n in self.counts.items()},
        }
        if self.packed is not None:
            d["packed"] = self.packed.to_dict()
        if with_count:
            d["clip_count"] = len(self.clips) if self.clip_count is None else self.clip_count
        return d


def _clip(item: Any, where: str, classes: tuple[str, ...], index: dict[str, int]) -> ClipEntry:
    f = Fields(item, where)
    side = f.text("side", SIDES)
    cls = f.data.get("class", REQUIRED)
    if not (isinstance(cls, str) and cls in index):  # a dict: O(1) for records of many classes
        raise FieldError(f.path("class"), "one of the record's classes", cls)
    name = f.name("name", name_problem)
    expected = f"{side}/{cls}/{name}"
    if f.data.get("id") != expected:
        raise FieldError(f.path("id"), f"{expected!r} (side/class/name)", f.data.get("id", REQUIRED))
    label = f.whole("label", 0, len(classes) - 1)
    if label != index[cls]:
        raise FieldError(f.path("label"), f"{index[cls]} (the index of its class)", label)
    status = f.text("status", STATUSES)
    return ClipEntry(
        side,
        cls,
        label,
        name,
        f.text("source", max_len=MAX_TEXT),  # the builder always writes it; stats parses HMDB51's tags
        status,
        f.whole("frames", 0, MAX_FRAMES, default=0),
        f.whole("flow_frames", 0, MAX_FRAMES, default=0),
        f.whole("decode_errors", 0, _INT64, default=0),
        f.text("error", default=None, nullable=True),
    )


def _classes(f: Fields) -> tuple[str, ...]:
    raw = f.array("classes", max_len=MAX_COUNT)
    if not raw:
        raise FieldError("classes", "a non-empty list", raw)
    names = tuple(want_name(c, f"classes[{i}]", class_name_problem) for i, c in enumerate(raw))
    if len(set(names)) != len(names):
        raise FieldError("classes", "a list without repeats", list(names))
    return names


def record_from_dict(data: Any, with_clips: bool = True) -> DatasetRecord:
    """The :class:`DatasetRecord` of a parsed ``flowprep.json`` (``with_clips=False``: a checkpoint's
    copy, whose ``clips`` list is replaced by ``clip_count``).

    Raises:
        FieldError: the first field that does not follow the schema (the message names it); the
            readers add the file's name.
    """
    f = Fields(data)
    if f.data.get("format") != FORMAT:
        raise FieldError("format", repr(FORMAT), f.data.get("format", REQUIRED))
    version = f.whole("format_version", 0, _INT64)
    if version > FORMAT_VERSION:
        raise FieldError("format_version", f"at most {FORMAT_VERSION} (this flowprep's; upgrade flowprep)", version)
    modality = f.text("modality", DATASET_MODALITIES)
    classes = _classes(f)
    index = {c: i for i, c in enumerate(classes)}
    clips: list[ClipEntry] = []
    clip_count = None
    if with_clips:
        seen: set[str] = set()
        for i, item in enumerate(f.array("clips")):
            clip = _clip(item, f"clips[{i}]", classes, index)
            if clip.id in seen:  # a repeated clip would be counted, verified and trained on twice
                raise FieldError(f"clips[{i}].id", "unique (it is listed twice)", clip.id)
            seen.add(clip.id)
            clips.append(clip)
    else:
        clip_count = f.whole("clip_count", 0, _INT64, default=None, nullable=True)
    rgb, flow, enc = f.obj("rgb", None, True), f.obj("flow", None, True), f.obj("encoding", None, True)
    record = DatasetRecord(
        modality=modality,
        classes=classes,
        clips=tuple(clips),
        split=split_from(f.obj("split"), classes),
        decode=decode_from(f.obj("decode")),
        rgb=rgb_from(rgb) if rgb is not None else None,
        flow=flow_from(flow) if flow is not None else None,
        encoding=encoding_from(enc) if enc is not None else None,
        layout=f.text("layout", LAYOUT_NAMES, default=DEFAULT_LAYOUT),
        source=source_from(f.obj("source")),
        normalization=_normalization(f.obj("normalization")),
        excluded=tuple(want_str(x, f"excluded[{i}]") for i, x in enumerate(f.array("excluded", default=[]))),
        counts=counts_from(f, "counts", classes),
        flowprep_version=f.text("flowprep_version", max_len=64),
        format_version=version,
        packed=_packed(f.obj("packed", default=None, nullable=True)),
        clip_count=clip_count,
    )
    if record.has_rgb and record.rgb is None:
        raise FieldError("rgb", f"an object (the modality {modality!r} has RGB frames)", None)
    if record.has_flow and record.encoding is None:
        raise FieldError("encoding", f"an object (the modality {modality!r} has flow images)", None)
    return record


def _packed(f: Fields | None) -> PackedInfo | None:
    if f is None:
        return None
    index = f.text("index", max_len=MAX_TEXT)
    if any(name_problem(part) for part in index.split("/")):
        raise FieldError(f.path("index"), "a relative path inside the dataset", index)
    return PackedInfo(f.text("format", PACK_FORMATS), index)


def _normalization(f: Fields) -> Normalization:
    return Normalization(
        f.number("scale", -1e6, 1e6), f.number("offset", -1e6, 1e6), f.text("formula", default=NORM_FORMULA)
    )

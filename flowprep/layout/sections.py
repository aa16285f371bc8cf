"""The sections of a dataset record that say how its frames were made, typed: the *recipe*.

The dataset record (:mod:`flowprep.layout.record`), a checkpoint (which keeps its training
dataset's record) and the exported model record (which copies the recipe so that ``flowprep infer``
makes frames the same way) all hold these sections, read by the functions here:

- ``decode``: :class:`DecodeInfo` (resizing and frame step);
- ``rgb``: :class:`RgbInfo` (image format and JPEG quality of RGB frames);
- ``flow``: :class:`FlowInfo` (backend name, parameters and device);
- ``encoding``: :class:`~flowprep.flow.encoding.FlowEncoding` (flow to 8 bit).

Every ``*_from`` function reads one section with :class:`~flowprep.layout.fields.Fields` and
raises :class:`~flowprep.layout.fields.FieldError` naming the field; ``to_dict`` gives the JSON
the builder has always written, key for key.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowprep.errors import ConfigError
from flowprep.flow.encoding import FORMATS, MODES, FlowEncoding
from flowprep.layout.fields import FieldError, Fields, want_int
from flowprep.limits import MAX_COUNT, MAX_SIDE, MIN_SIDE

#: what a dataset holds (``flowprep build --modality``); a model's input streams are
#: :data:`flowprep.loader.spec.STREAMS`
DATASET_MODALITIES = ("rgb", "flow", "both")
IMAGE_FORMATS = ("png", "jpg")


@dataclass(frozen=True)
class DecodeInfo:
    """How frames were decoded: ``short_side`` or ``size`` (``(w, h)``) in pixels, each side in
    ``[MIN_SIDE, MAX_SIDE]`` (at most one given; neither: the video's own size), and ``frame_step``
    (every N-th frame kept, ``[1, MAX_COUNT]``)."""

    short_side: int | None = None
    size: tuple[int, int] | None = None
    frame_step: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "short_side": self.short_side,
            "size": list(self.size) if self.size else None,
            "frame_step": self.frame_step,
        }


@dataclass(frozen=True)
class RgbInfo:
    """How RGB frames were stored: ``image_format`` (``png``/``jpg``) and ``jpeg_quality``
    (1..100, or None: PNG, or a record that does not say)."""

    image_format: str = "png"
    jpeg_quality: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"image_format": self.image_format, "jpeg_quality": self.jpeg_quality}


@dataclass(frozen=True)
class FlowInfo:
    """The flow backend a dataset was built with: ``name`` (a registry name, or ``synthetic-truth``
    for :mod:`flowprep.train.synthdata`), ``params`` (what ``backend.params()`` returned: plain JSON
    data; checked against the backend's own declaration where a backend is made from them) and
    ``device`` (where it ran, for people: ``"cpu"``, ``"cuda:0 (...)"``)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    device: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params), "device": self.device}


def _side(v: Any, where: str) -> int:
    return want_int(v, where, MIN_SIDE, MAX_SIDE)


def decode_from(f: Fields) -> DecodeInfo:
    short = f.whole("short_side", MIN_SIDE, MAX_SIDE, default=None, nullable=True)
    size = f.array("size", default=None, nullable=True)
    if size is not None:
        if len(size) != 2:
            raise FieldError(f.path("size"), "[width, height]", size)
        size = (_side(size[0], f.path("size[0]")), _side(size[1], f.path("size[1]")))
    if short is not None and size is not None:
        raise FieldError(f.path("size"), "null when short_side is given (one or the other)", list(size))
    return DecodeInfo(short, size, f.whole("frame_step", 1, MAX_COUNT, default=1))


def rgb_from(f: Fields) -> RgbInfo:
    fmt = f.text("image_format", IMAGE_FORMATS, default="png")
    return RgbInfo(fmt, f.whole("jpeg_quality", 1, 100, default=None, nullable=True))


def flow_from(f: Fields) -> FlowInfo:
    name = f.text("name", max_len=64)
    if not name:
        raise FieldError(f.path("name"), "a backend name", name)
    params = f.json("params", default={}, nullable=True) or {}
    if not isinstance(params, dict):
        raise FieldError(f.path("params"), "an object", params)
    return FlowInfo(name, params, f.text("device", default=""))


def encoding_from(f: Fields) -> FlowEncoding:
    mode = f.text("mode", MODES)
    bound = f.number("bound", 0, sys.float_info.max, lo_open=True)
    fmt = f.text("image_format", FORMATS)
    quality = f.whole("jpeg_quality", 1, 100)
    try:
        return FlowEncoding(mode, bound, fmt, quality)
    except ConfigError as exc:  # not reached after the checks above; kept so none escapes
        raise FieldError(f.where, f"a valid flow encoding ({exc})", f.data) from None


@dataclass(frozen=True)
class Recipe:
    """How a dataset's frames were made, as far as a model's inputs depend on it.

    Every section may be None: the dataset has no such stream (``flow`` of an RGB-only build), or a
    checkpoint made by hand or by an older flowprep does not say. ``modality`` is the dataset's
    (:data:`DATASET_MODALITIES`).
    """

    modality: str | None = None
    decode: DecodeInfo | None = None
    rgb: RgbInfo | None = None
    flow: FlowInfo | None = None
    encoding: FlowEncoding | None = None

    @property
    def frame_step(self) -> int:
        return self.decode.frame_step if self.decode else 1

    def sections(self) -> dict[str, Any]:
        """``{"decode", "rgb", "flow", "encoding"}`` as JSON (None for a missing section)."""
        return {
            "decode": self.decode.to_dict() if self.decode else None,
            "rgb": self.rgb.to_dict() if self.rgb else None,
            "flow": self.flow.to_dict() if self.flow else None,
            "encoding": self.encoding.to_dict() if self.encoding else None,
        }


def recipe_from(f: Fields, modality_key: str = "modality") -> Recipe:
    """The recipe sections of the object ``f`` (a dataset record, a checkpoint's copy of one, or a
    model record, whose dataset modality is under ``dataset_modality``); absent or null sections are None."""
    modality = f.text(modality_key, DATASET_MODALITIES, default=None, nullable=True)
    decode, rgb = f.obj("decode", None, True), f.obj("rgb", None, True)
    flow, enc = f.obj("flow", None, True), f.obj("encoding", None, True)
    return Recipe(
        modality,
        decode_from(decode) if decode is not None else None,
        rgb_from(rgb) if rgb is not None else None,
        flow_from(flow) if flow is not None else None,
        encoding_from(enc) if enc is not None else None,
    )

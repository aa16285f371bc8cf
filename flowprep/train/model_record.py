"""The exported model record, ``flowprep_model.json``, as a typed, validated value: :class:`ModelRecord`.

``flowprep export`` writes it beside ``model.onnx`` (:meth:`ModelRecord.to_dict`), ``flowprep infer``
and ``flowprep doctor`` read it (:func:`read_model_record`). It lives with training's code because
both the export and the serve stages use it and neither may import the other; it needs no torch.

The reader checks what inference allocates from: the model-shape fields get training's limits
(:data:`~flowprep.loader.spec.FRAMES_RANGE`, ..., :func:`~flowprep.loader.spec.input_budget_problem`:
a record declaring 4096 frames at 1024 px is refused in one line instead of reaching 12.7 GB), the
classes the label-file rules, ``num_classes``/``inputs``/``output`` must agree with them, and the
recipe sections (how training frames and flow were made) are read by
:func:`~flowprep.layout.sections.recipe_from`. The export's own sections (``onnx``, ``triton``,
``tensorrt``, ``deepstream``) are informational: checked to be plain JSON objects and kept as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from flowprep.errors import ConfigError
from flowprep.fsio.reading import read_json
from flowprep.layout.fields import REQUIRED, FieldError, Fields, want_json, want_name
from flowprep.layout.names import class_name_problem
from flowprep.layout.sections import Recipe, recipe_from
from flowprep.limits import MAX_COUNT
from flowprep.loader.spec import (
    ARCHS,
    FRAMES_RANGE,
    INPUT_SIZE_RANGE,
    NORM_OFFSET,
    NORM_SCALE,
    OUTPUT_NAME,
    SAMPLE_RATE_RANGE,
    STREAMS,
    input_budget_problem,
    input_shapes,
)

MODEL_RECORD = "flowprep_model.json"
MODEL_FORMAT = "flowprep-model"
VERSION = 1
#: the export's own sections, kept as written
DEPLOY_SECTIONS = ("onnx", "triton", "tensorrt", "deepstream")
#: the largest model record read (they are a few kilobytes)
MAX_MODEL_RECORD_BYTES = 16 << 20
_INT64 = 2**63 - 1


@dataclass(frozen=True)
class ModelRecord:
    """What inference needs to feed an exported model as it was trained.

    Attributes:
        arch, modality: :data:`~flowprep.loader.spec.ARCHS`, :data:`~flowprep.loader.spec.STREAMS`.
        frames, sample_rate, input_size: T, the frame step inside a window, S.
        classes: label names, index = output index.
        recipe: how the training frames were made (decode, RGB format, flow backend, encoding,
            the dataset's modality); None sections when the checkpoint did not say.
        epoch, best_acc: the checkpoint's, for people (None when unknown).
        deploy: the export's own sections (``onnx`` with the parity results, ``triton``,
            ``tensorrt``, ``deepstream``), plain JSON.
    """

    arch: str
    modality: str
    frames: int
    sample_rate: int
    input_size: int
    classes: tuple[str, ...]
    recipe: Recipe = field(default_factory=Recipe)
    epoch: int | None = None
    best_acc: float | None = None
    deploy: Mapping[str, Any] = field(default_factory=dict)
    version: int = VERSION

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Input name -> shape without batch (:func:`flowprep.loader.spec.input_shapes`)."""
        return input_shapes(self.arch, self.modality, self.frames, self.input_size)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``flowprep_model.json``."""
        return {
            "format": MODEL_FORMAT,
            "version": self.version,
            "arch": self.arch,
            "modality": self.modality,
            "frames": self.frames,
            "sample_rate": self.sample_rate,
            "input_size": self.input_size,
            "classes": list(self.classes),
            "num_classes": len(self.classes),
            "inputs": {n: list(s) for n, s in self.input_shapes().items()},
            "input_layout": "NCTHW" if self.arch == "3d" else "N(C*T)HW, channel c of frame t at c*T+t",
            "output": {OUTPUT_NAME: [len(self.classes)]},
            "output_kind": "logits (softmax for scores)",
            "normalization": {
                "scale": NORM_SCALE,
                "offset": NORM_OFFSET,
                "formula": "(x - offset) * scale",
                "equivalent": "(x / 255 - 0.5) / 0.5",
            },
            "color_order": "RGB",
            # how the training frames were made: inference repeats it exactly
            **self.recipe.sections(),
            "dataset_modality": self.recipe.modality,
            "checkpoint": {"epoch": self.epoch, "best_acc": self.best_acc},
            **{k: dict(v) if isinstance(v, Mapping) else v for k, v in self.deploy.items()},
        }


class ModelShape(NamedTuple):
    """The fields a checkpoint and a model record share: the schema version, what the model is
    (``arch``, ``modality``: :data:`~flowprep.loader.spec.ARCHS`, :data:`~flowprep.loader.spec.STREAMS`)
    and what it reads (T frames ``sample_rate`` apart at ``input_size`` px; ``classes`` in output order)."""

    version: int
    arch: str
    modality: str
    frames: int
    sample_rate: int
    input_size: int
    classes: tuple[str, ...]


def read_model_shape(f: Fields, fmt: str, max_version: int) -> ModelShape:
    """Read ``format`` (must be ``fmt``), ``version`` (at most ``max_version``) and the model-shape
    fields of a checkpoint or a model record, with training's limits (the one reader of both).

    Raises:
        FieldError: the first field that does not follow the schema.
    """
    if f.data.get("format") != fmt:
        raise FieldError("format", repr(fmt), f.data.get("format", REQUIRED))
    version = f.whole("version", 0, _INT64, default=0)
    if version > max_version:
        raise FieldError("version", f"at most {max_version} (this flowprep's; upgrade flowprep)", version)
    arch, modality = f.text("arch", ARCHS), f.text("modality", STREAMS)
    frames = f.whole("frames", *FRAMES_RANGE)
    rate = f.whole("sample_rate", *SAMPLE_RATE_RANGE, default=1)
    size = f.whole("input_size", *INPUT_SIZE_RANGE)
    budget = input_budget_problem(frames, rate, size)
    if budget:
        raise FieldError("frames, sample_rate and input_size", f"a model that fits in memory ({budget})", frames)
    raw = f.array("classes", max_len=MAX_COUNT)
    classes = tuple(want_name(c, f"classes[{i}]", class_name_problem) for i, c in enumerate(raw))
    if not classes or len(set(classes)) != len(classes):
        raise FieldError("classes", "a non-empty list without repeats", list(classes))
    return ModelShape(version, arch, modality, frames, rate, size, classes)


def model_record_from_dict(data: Any) -> ModelRecord:
    """The :class:`ModelRecord` of a parsed ``flowprep_model.json``.

    Raises:
        FieldError: the first field that does not follow the schema (:func:`read_model_record`
            adds the file).
    """
    f = Fields(data)
    version, arch, modality, frames, rate, size, classes = read_model_shape(f, MODEL_FORMAT, VERSION)
    if f.has("num_classes") and f.data["num_classes"] != len(classes):
        raise FieldError("num_classes", f"{len(classes)} (the number of classes)", f.data["num_classes"])
    shapes = {n: list(s) for n, s in input_shapes(arch, modality, frames, size).items()}
    if f.has("inputs") and f.data["inputs"] != shapes:
        raise FieldError("inputs", f"{shapes} (what arch, modality, frames and input_size make)", f.data["inputs"])
    output = {OUTPUT_NAME: [len(classes)]}
    if f.has("output") and f.data["output"] != output:
        raise FieldError("output", f"{output} (one logit per class)", f.data["output"])
    ck = f.obj("checkpoint", default=None, nullable=True)
    deploy = {k: f.json(k) for k in DEPLOY_SECTIONS if f.has(k)}
    for k, v in deploy.items():
        if v is not None and not isinstance(v, dict):
            raise FieldError(k, "an object or null", v)
    return ModelRecord(
        arch=arch,
        modality=modality,
        frames=frames,
        sample_rate=rate,
        input_size=size,
        classes=classes,
        recipe=recipe_from(f, modality_key="dataset_modality"),
        epoch=ck.whole("epoch", 0, _INT64, default=None, nullable=True) if ck else None,
        best_acc=ck.number("best_acc", -1, 1, default=None, nullable=True) if ck else None,
        deploy=deploy,
        version=version,
    )


def read_model_record(path: Path) -> ModelRecord:
    """Read and check ``flowprep_model.json`` at ``path``.

    Raises:
        ConfigError: missing, unreadable, oversized, not JSON (or nested too deep), or a field that
            does not follow the schema (one line naming the file and the field).
    """
    data = read_json(path, what="model record", max_bytes=MAX_MODEL_RECORD_BYTES, error=ConfigError)
    try:
        return model_record_from_dict(data)
    except FieldError as exc:
        raise ConfigError(
            f"{path} is not a valid flowprep model record ({exc}); re-export the model with `flowprep export`"
        ) from None


def checked_model_record(record: ModelRecord, path: Path) -> dict[str, Any]:
    """``record.to_dict()`` after reading it back with :func:`model_record_from_dict` (what the
    export writes is what ``infer`` reads).

    Raises:
        ConfigError: it does not pass its own reader (one line naming the field).
    """
    data = record.to_dict()
    try:
        model_record_from_dict(want_json(data, "model record"))
    except FieldError as exc:
        raise ConfigError(f"refusing to write {path}: {exc} (a model record flowprep could not read back)") from None
    return data

"""A checkpoint's contents as a typed, validated value: :class:`Checkpoint`.

:func:`checkpoint_from_dict` is the one reader of what ``torch.load(weights_only=True)`` returned
(see :mod:`flowprep.train.checkpoint` for the file): it checks every field's type and range and
raises :class:`~flowprep.layout.fields.FieldError` naming the field, which the loader turns into
one :class:`~flowprep.errors.CheckpointError` line naming the file. The model-shape fields get
training's own limits (:data:`~flowprep.loader.spec.FRAMES_RANGE` and the others, and
:func:`~flowprep.loader.spec.input_budget_problem`), class names the label-file rules
(:func:`~flowprep.layout.names.class_name_problem`), and the training dataset's record the recipe
reader (:func:`~flowprep.layout.sections.recipe_from`). Optimizer, scheduler and scaler states are
checked for shape here (containers of tensors and numbers) and against the objects they are loaded
into when a run is resumed (:func:`flowprep.train.checkpoint.check_state_fits`).

:meth:`Checkpoint.to_dict` gives what :func:`~flowprep.train.checkpoint.save_checkpoint` writes, and
the saver reads it back with :func:`checkpoint_from_dict` first: flowprep writes no checkpoint it
would refuse to read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from flowprep.layout.fields import FieldError, Fields, want_json
from flowprep.layout.sections import Recipe, recipe_from
from flowprep.train.model_record import read_model_shape

FORMAT = "flowprep-checkpoint"
VERSION = 1
#: the most epochs a run may have (``train --epochs``)
MAX_EPOCHS = 100_000


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint (the dict of :mod:`flowprep.train.checkpoint`), checked.

    Attributes:
        arch, modality: :data:`~flowprep.loader.spec.ARCHS`, :data:`~flowprep.loader.spec.STREAMS`.
        frames, sample_rate, input_size: T, the frame step inside a clip, S (training's limits).
        classes: label names, index = label id.
        state_dict: parameter name -> tensor.
        dataset_record: the training dataset's record without its clips (JSON), or None.
        recipe: its decode/rgb/flow/encoding sections, typed (empty for a hand-made checkpoint).
        epoch: epochs completed; best_acc: best validation top-1 (in [-1, 1]; -1: none yet) or None.
        optimizer, scheduler, scaler, rng_state: training state for ``--resume`` (None if absent).
        args: the training options (JSON). path: the file it was read from ("" if not read).
    """

    arch: str
    modality: str
    frames: int
    sample_rate: int
    input_size: int
    classes: tuple[str, ...]
    state_dict: Mapping[str, torch.Tensor]
    dataset_record: Mapping[str, Any] | None = None
    recipe: Recipe = field(default_factory=Recipe)
    epoch: int = 0
    best_acc: float | None = None
    optimizer: Mapping[str, Any] | None = None
    scheduler: Mapping[str, Any] | None = None
    scaler: Mapping[str, Any] | None = None
    rng_state: Mapping[str, Any] | None = None
    args: Mapping[str, Any] = field(default_factory=dict)
    path: str = ""
    version: int = VERSION

    @property
    def where(self) -> str:
        """The file, for messages (``"checkpoint"`` when it was not read from one)."""
        return self.path or "checkpoint"

    def to_dict(self) -> dict[str, Any]:
        """What ``torch.save`` writes: only tensors and plain containers (``weights_only`` loads it)."""
        return {
            "format": FORMAT,
            "version": self.version,
            "arch": self.arch,
            "modality": self.modality,
            "frames": self.frames,
            "sample_rate": self.sample_rate,
            "input_size": self.input_size,
            "classes": list(self.classes),
            "state_dict": dict(self.state_dict),
            "dataset_record": dict(self.dataset_record) if self.dataset_record is not None else None,
            "epoch": self.epoch,
            "best_acc": self.best_acc,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "scaler": self.scaler,
            "rng_state": self.rng_state,
            "args": dict(self.args),
        }


def _tensors(v: Any, where: str, depth: int = 6) -> Any:
    """``v`` if it is tensors, numbers, strings, booleans and None in dicts/lists (an optimizer's or
    scheduler's state: ``torch.optim`` puts tensors, ints and floats there, and a Counter of milestones)."""
    if v is None or isinstance(v, (torch.Tensor, str, bool, int, float)):
        return v
    if depth > 0 and isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            _tensors(x, f"{where}[{i}]", depth - 1)
        return v
    if depth > 0 and isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise FieldError(f"{where} keys", "strings or whole numbers", k)
            _tensors(x, f"{where}.{k}", depth - 1)
        return v
    raise FieldError(where, "tensors, numbers and strings in objects and lists", v)


def _state(f: Fields, key: str) -> Mapping[str, Any] | None:
    v = f.data.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise FieldError(key, "an object or null", v)
    return _tensors(v, key)


def _state_dict(f: Fields) -> dict[str, torch.Tensor]:
    sd = f.obj("state_dict")
    if not sd.data:
        raise FieldError("state_dict", "a non-empty object of tensors", sd.data)
    for k, v in sd.data.items():
        if not isinstance(k, str):
            raise FieldError("state_dict keys", "strings", k)
        if not isinstance(v, torch.Tensor):
            raise FieldError(f"state_dict.{k}", "a tensor", v)
    return dict(sd.data)


def checkpoint_from_dict(data: Any, path: str = "") -> Checkpoint:
    """The :class:`Checkpoint` of a loaded checkpoint dict.

    Raises:
        FieldError: the first field that does not follow the schema (the loader adds the file).
    """
    f = Fields(data)
    version, arch, modality, frames, rate, size, classes = read_model_shape(f, FORMAT, VERSION)
    rec = f.obj("dataset_record", default=None, nullable=True)
    best = f.number("best_acc", -1, 1, default=None, nullable=True)
    args = f.obj("args", default=None, nullable=True)
    return Checkpoint(
        arch=arch,
        modality=modality,
        frames=frames,
        sample_rate=rate,
        input_size=size,
        classes=classes,
        state_dict=_state_dict(f),
        dataset_record=want_json(rec.data, "dataset_record") if rec is not None else None,
        recipe=recipe_from(rec) if rec is not None else Recipe(),
        epoch=f.whole("epoch", 0, MAX_EPOCHS, default=0),
        best_acc=best,
        optimizer=_state(f, "optimizer"),
        scheduler=_state(f, "scheduler"),
        scaler=_state(f, "scaler"),
        rng_state=_state(f, "rng_state"),
        args=want_json(args.data, "args") if args is not None else {},
        path=path,
        version=version,
    )

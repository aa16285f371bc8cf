"""The checkpoint file: what training writes and evaluation, export and inference read.

A checkpoint is ``torch.save`` of one dict::

    {"format": "flowprep-checkpoint", "version": 1,
     "arch": "2d" | "3d", "modality": "rgb" | "of" | "joint",
     "frames": int,            # T
     "sample_rate": int,       # frame step inside a clip
     "input_size": int,        # S: inputs are S x S
     "classes": [str, ...],    # label id = index
     "state_dict": {...},      # model weights (see flowprep.train.models for names)
     "dataset_record": {...},  # the training dataset's flowprep.json (flow encoding etc.),
                               # without its per-clip list "clips" ("clip_count" instead)
     "epoch": int,             # epochs completed
     "best_acc": float,        # best validation top-1 so far, 0..1
     "optimizer": {...} | None, "scheduler": {...} | None, "scaler": {...} | None (AMP),
     "rng_state": {...} | None,  # to resume exactly (see flowprep.train.loop)
     "args": {...}}            # the training options, JSON-like

Only tensors and plain Python containers are stored, so files load with ``weights_only=True``.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flowprep.errors import CheckpointError, ConfigError, writing
from flowprep.fsio.paths import printable as printable_path
from flowprep.fsio.writing import write_bytes_atomic
from flowprep.layout.dataset_record import DatasetRecord
from flowprep.layout.fields import FieldError, shown
from flowprep.loader.spec import streams as model_streams
from flowprep.train.checkpoint_meta import FORMAT, VERSION, Checkpoint, checkpoint_from_dict
from flowprep.train.models import build_model
from flowprep.train.torchfile import load_torch_file

__all__ = [
    "check_compatible",
    "check_state_fits",
    "load_checkpoint",
    "model_from_checkpoint",
    "recipe_differences",
    "save_checkpoint",
]


def save_checkpoint(path: Path, ckpt: Checkpoint | Mapping[str, Any]) -> Path:
    """Write ``ckpt`` atomically to ``path``.

    ``ckpt`` may also be the dict of the module docstring (``format``/``version`` filled in), as a
    library caller or a test writes one by hand. What is written is first read back with
    :func:`~flowprep.train.checkpoint_meta.checkpoint_from_dict`, so flowprep never writes a
    checkpoint it would refuse to load.

    Raises:
        CheckpointError: ``ckpt`` does not pass its own reader (one line naming the field).
        OutputError: the file cannot be written.
    """
    path = Path(path)
    data = ckpt.to_dict() if isinstance(ckpt, Checkpoint) else {"format": FORMAT, "version": VERSION, **ckpt}
    try:
        data = checkpoint_from_dict(data).to_dict()
    except FieldError as exc:
        raise CheckpointError(f"refusing to write {path}: {exc} (a checkpoint flowprep could not load)") from None
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    # serialised in memory first: torch.save straight to a file on a full disk fails with an
    # internal RuntimeError ("unexpected pos ..."), while a plain write says ENOSPC
    buf = io.BytesIO()
    torch.save(data, buf)
    write_bytes_atomic(path, buf.getbuffer())
    return path


def load_checkpoint(path: Path) -> Checkpoint:
    """Read and check a checkpoint (on the CPU).

    The file is checked before ``torch.load`` sees it (a regular file of bounded size whose zip
    members do not inflate past their limits: :func:`~flowprep.train.torchfile.load_torch_file`) and
    loaded with ``weights_only=True``; then every field is checked
    (:func:`~flowprep.train.checkpoint_meta.checkpoint_from_dict`).

    Raises:
        CheckpointError: missing/unreadable/oversized file, not a PyTorch file, not a flowprep
            checkpoint, a newer version, or a field that does not follow the schema (one line
            naming the file and the field).
    """
    path = Path(path)
    if not os.path.lexists(path):  # anything else that is not a regular file: read_bytes says what it is
        raise CheckpointError(f"checkpoint {printable_path(path)} does not exist")
    data = load_torch_file(path, CheckpointError, "so not a flowprep checkpoint")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a flowprep checkpoint (no format {FORMAT!r}); train one with `flowprep train`"
        )
    try:
        return checkpoint_from_dict(data, str(path))
    except FieldError as exc:
        raise CheckpointError(f"{path}: {exc} (the file was edited or damaged; use another checkpoint)") from None


def check_compatible(
    ckpt: Checkpoint, arch: str | None = None, modality: str | None = None, frames: int | None = None
) -> None:
    """Raise :class:`CheckpointError` if ``ckpt`` is not the asked architecture/modality/frames."""
    for key, want in (("arch", arch), ("modality", modality), ("frames", frames)):
        if want is not None and getattr(ckpt, key) != want:
            raise CheckpointError(
                f"{ckpt.where} is a {ckpt.arch} {ckpt.modality} model with "
                f"{ckpt.frames} frames, but {key} {want!r} was asked"
            )


def model_from_checkpoint(ckpt: Checkpoint, arch: str | None = None, modality: str | None = None) -> nn.Module:
    """The checkpoint's model with its weights, in eval mode, on the CPU.

    Args:
        ckpt: from :func:`load_checkpoint`.
        arch, modality: if given, what the caller expects; a different checkpoint raises.

    Raises:
        CheckpointError: another architecture/modality than asked, or weights that do not fit.
    """
    check_compatible(ckpt, arch, modality)
    try:
        model = build_model(ckpt.arch, ckpt.modality, len(ckpt.classes), ckpt.frames)
    except ConfigError as exc:
        raise CheckpointError(f"{ckpt.where}: {exc}") from exc
    try:
        model.load_state_dict(dict(ckpt.state_dict), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{ckpt.where}: weights do not fit a {ckpt.arch} {ckpt.modality} ResNet-18 ({str(exc).splitlines()[0]})"
        ) from exc
    return model.eval()


def _like(template: Any, loaded: Any, where: str) -> None:
    """Raise :class:`CheckpointError` unless ``loaded`` has the kind of ``template``: a bool for a
    bool, a finite number for a number (None: any scalar, a 0-d tensor included), a string for a string, a tensor of the
    same shape for a tensor, lists of the same length item by item, a mapping of whole numbers for a
    mapping (a scheduler's milestones)."""
    if isinstance(template, torch.Tensor):
        ok = isinstance(loaded, torch.Tensor) and tuple(loaded.shape) == tuple(template.shape)
    elif isinstance(template, bool):
        ok = isinstance(loaded, bool)
    elif isinstance(template, (int, float)):
        ok = _is_number(loaded)
    elif template is None:
        ok = (
            loaded is None
            or isinstance(loaded, (bool, str))
            or _is_number(loaded)
            or (isinstance(loaded, torch.Tensor) and loaded.dim() == 0)  # Adam's step
        )
    elif isinstance(template, str):
        ok = isinstance(loaded, str)
    elif isinstance(template, (list, tuple)):
        ok = isinstance(loaded, (list, tuple)) and len(loaded) == len(template)
        if ok:
            for i, (t, x) in enumerate(zip(template, loaded)):
                _like(t, x, f"{where}[{i}]")
    elif isinstance(template, Mapping):
        ok = isinstance(loaded, Mapping) and all(_is_whole(k) and _is_whole(v) for k, v in loaded.items())
    else:
        ok = True  # a kind torch may add: the load itself says whether it fits
    if not ok:
        want = (
            f"a tensor of shape {tuple(template.shape)}"
            if isinstance(template, torch.Tensor)
            else f"like {shown(template, 40)}"
        )
        raise CheckpointError(f"{where} does not fit this run: {shown(loaded, 60)} where {want} belongs")


def _is_number(v: Any) -> bool:
    """An int (not a bool) or a finite float (``math.isfinite`` of a huge int would overflow)."""
    return _is_whole(v) or (isinstance(v, float) and math.isfinite(v))


def _is_whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _keys_like(template: Mapping[str, Any], loaded: Any, where: str, extra_ok: bool = False) -> Mapping[str, Any]:
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"{where} does not fit this run: {shown(loaded, 60)} is not an object")
    missing = sorted(set(template) - set(loaded))
    unknown = sorted(str(k) for k in set(loaded) - set(template))
    if missing or (unknown and not extra_ok):
        what = f"lacks {missing}" if missing else f"has unknown keys {unknown}"
        raise CheckpointError(f"{where} does not fit this run: it {what}")
    return loaded


def check_state_fits(obj: Any, loaded: Any, where: str) -> None:
    """Raise :class:`CheckpointError` (one line naming ``where``) unless ``loaded`` — an optimizer's,
    scheduler's or gradient scaler's state from a checkpoint — fits ``obj``, the object it is about
    to be loaded into.

    ``load_state_dict`` takes almost anything and fails later, in the middle of an epoch (a string
    learning rate, a momentum buffer of another shape) or sets arbitrary attributes (a scheduler's
    ``__dict__.update``); this fails first. Checked against ``obj.state_dict()``: the same keys,
    values of the same kinds (:func:`_like`), and for an optimizer, per parameter, state tensors
    of that parameter's shape (0-d tensors and numbers, such as Adam's ``step``, are fine).
    """
    template = obj.state_dict()
    if isinstance(obj, torch.optim.Optimizer):
        loaded = _keys_like(template, loaded, where)
        groups = loaded["param_groups"]
        if not isinstance(groups, (list, tuple)) or len(groups) != len(template["param_groups"]):
            raise CheckpointError(
                f"{where}.param_groups does not fit this run: {shown(groups, 60)} where "
                f"{len(template['param_groups'])} parameter group(s) belong"
            )
        params = [p for g in obj.param_groups for p in g["params"]]
        for i, (t, g) in enumerate(zip(template["param_groups"], groups)):
            _keys_like(t, g, f"{where}.param_groups[{i}]")
            for k in t:
                _like(t[k], g[k], f"{where}.param_groups[{i}].{k}")
        state = loaded["state"]
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{where}.state does not fit this run: {shown(state, 60)} is not an object")
        for pid, entry in state.items():
            if not _is_whole(pid) or not 0 <= pid < len(params) or not isinstance(entry, Mapping):
                raise CheckpointError(f"{where}.state does not fit this run: no parameter {shown(pid)} here")
            for k, v in entry.items():
                if isinstance(v, torch.Tensor) and v.dim() > 0:
                    _like(params[pid].detach(), v, f"{where}.state.{pid}.{k}")
                else:
                    _like(None, v, f"{where}.state.{pid}.{k}")
        return
    # a scheduler's state may gain or lose keys between torch versions; a key naming an attribute
    # of the object that its state does not hold (its optimizer, a method) is never accepted
    loaded = _keys_like(template, loaded, where, extra_ok=True)
    clobbers = sorted(str(k) for k in loaded if k not in template and (not isinstance(k, str) or hasattr(obj, k)))
    if clobbers:
        raise CheckpointError(f"{where} does not fit this run: it would replace {clobbers}")
    for k in template:
        _like(template[k], loaded[k], f"{where}.{k}")


#: dataset record fields that decide what a model's inputs look like, per stream it reads
#: (``flow.device`` is left out: the same backend on another device is the same recipe)
RECIPE_FIELDS = {
    "any": ("decode.size", "decode.short_side", "decode.frame_step"),
    "rgb": ("rgb.image_format",),
    "of": ("flow.name", "flow.params", "encoding"),
}


def _field(record: Mapping[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k in sorted(value):
            out.update(_flat(f"{prefix}.{k}", value[k]))
        return out or {prefix: {}}
    return {prefix: list(value) if isinstance(value, tuple) else value}


def recipe_differences(ckpt: Checkpoint, record: DatasetRecord) -> list[str]:
    """The fields in which ``record`` was built differently from the checkpoint's data.

    Only what the checkpoint's model reads counts: the decode section for every model, the RGB
    image format for RGB/joint models, and the flow backend (name, parameters) and encoding for
    flow/joint models. A section the checkpoint's record does not have is not compared (older or
    hand-made checkpoints). Checked by ``flowprep train --resume`` and ``flowprep evaluate``.

    Returns:
        One ``"field: checkpoint value != dataset value"`` string per differing field (the flow
        parameters as one entry when the backends differ anyway); empty if the recipes match.
    """
    ck_rec = {k: v for k, v in ckpt.recipe.sections().items() if v is not None}
    ds_rec = record.recipe.sections()
    fields = list(RECIPE_FIELDS["any"])
    for stream in model_streams(ckpt.modality):
        fields += RECIPE_FIELDS[stream]
    diffs = []
    backend_differs = _field(ck_rec, "flow.name") != _field(ds_rec, "flow.name")
    for name in fields:
        if name.split(".")[0] not in ck_rec:
            continue
        want, have = _flat(name, _field(ck_rec, name)), _flat(name, _field(ds_rec, name))
        if name == "flow.params" and backend_differs:
            if want != have:
                diffs.append("flow.params (another backend)")
            continue
        for key in sorted(set(want) | set(have)):
            if want.get(key) != have.get(key):
                diffs.append(f"{key}: {want.get(key)!r} != {have.get(key)!r}")
    return diffs

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

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flowprep.errors import CheckpointError, ConfigError, writing  # CheckpointError: also importable here
from flowprep.loader.spec import ARCHS, STREAMS
from flowprep.loader.spec import streams as model_streams
from flowprep.train.models import build_model
from flowprep.train.torchfile import load_torch_file

FORMAT = "flowprep-checkpoint"
VERSION = 1
REQUIRED = ("arch", "modality", "frames", "sample_rate", "input_size", "classes", "state_dict")


def save_checkpoint(path: Path, ckpt: dict[str, Any]) -> Path:
    """Write ``ckpt`` (the dict above; ``format``/``version`` are filled in) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "version": VERSION, **ckpt}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    # serialised in memory first: torch.save straight to a file on a full disk fails with an
    # internal RuntimeError ("unexpected pos ..."), while a plain write says ENOSPC
    buf = io.BytesIO()
    torch.save(data, buf)
    try:
        with writing(path):
            tmp.write_bytes(buf.getbuffer())
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check a checkpoint (on the CPU).

    Raises:
        CheckpointError: missing/unreadable file, not a PyTorch file, not a flowprep checkpoint,
            a newer version, or an unknown architecture/modality (one-line messages).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    ckpt = load_torch_file(path, CheckpointError, "so not a flowprep checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a flowprep checkpoint (no format {FORMAT!r}); train one with `flowprep train`"
        )
    if int(ckpt.get("version", 0)) > VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {ckpt.get('version')}; this flowprep "
            f"reads up to {VERSION}: upgrade flowprep"
        )
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is an incomplete flowprep checkpoint (missing {missing})")
    if ckpt["arch"] not in ARCHS or ckpt["modality"] not in STREAMS:
        raise CheckpointError(
            f"{path} holds architecture {ckpt['arch']!r} / modality "
            f"{ckpt['modality']!r}; this flowprep knows {ARCHS} x {STREAMS}"
        )
    ckpt["path"] = str(path)
    return ckpt


def check_compatible(
    ckpt: dict[str, Any], arch: str | None = None, modality: str | None = None, frames: int | None = None
) -> None:
    """Raise :class:`CheckpointError` if ``ckpt`` is not the asked architecture/modality/frames."""
    where = ckpt.get("path", "checkpoint")
    for key, want in (("arch", arch), ("modality", modality), ("frames", frames)):
        if want is not None and ckpt[key] != want:
            raise CheckpointError(
                f"{where} is a {ckpt['arch']} {ckpt['modality']} model with "
                f"{ckpt['frames']} frames, but {key} {want!r} was asked"
            )


def model_from_checkpoint(ckpt: dict[str, Any], arch: str | None = None, modality: str | None = None) -> nn.Module:
    """The checkpoint's model with its weights, in eval mode, on the CPU.

    Args:
        ckpt: from :func:`load_checkpoint`.
        arch, modality: if given, what the caller expects; a different checkpoint raises.

    Raises:
        CheckpointError: another architecture/modality than asked, or weights that do not fit.
    """
    check_compatible(ckpt, arch, modality)
    try:
        model = build_model(ckpt["arch"], ckpt["modality"], len(ckpt["classes"]), int(ckpt["frames"]))
    except ConfigError as exc:
        raise CheckpointError(f"{ckpt.get('path', 'checkpoint')}: {exc}") from exc
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{ckpt.get('path', 'checkpoint')}: weights do not fit a "
            f"{ckpt['arch']} {ckpt['modality']} ResNet-18 ({str(exc).splitlines()[0]})"
        ) from exc
    return model.eval()


#: dataset record fields that decide what a model's inputs look like, per stream it reads
#: (``flow.device`` is left out: the same backend on another device is the same recipe)
RECIPE_FIELDS = {
    "any": ("decode.size", "decode.short_side", "decode.frame_step"),
    "rgb": ("rgb.image_format",),
    "of": ("flow.name", "flow.params", "encoding"),
}


def _field(record: dict[str, Any], dotted: str) -> Any:
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


def recipe_differences(ckpt: dict[str, Any], dataset_record: dict[str, Any]) -> list[str]:
    """The fields in which ``dataset_record`` was built differently from the checkpoint's data.

    Only what the checkpoint's model reads counts: the decode section for every model, the RGB
    image format for RGB/joint models, and the flow backend (name, parameters) and encoding for
    flow/joint models. A section the checkpoint's record does not have is not compared (older or
    hand-made checkpoints). Checked by ``flowprep train --resume`` and ``flowprep evaluate``.

    Returns:
        One ``"field: checkpoint value != dataset value"`` string per differing field (the flow
        parameters as one entry when the backends differ anyway); empty if the recipes match.
    """
    ck_rec = ckpt.get("dataset_record") or {}
    fields = list(RECIPE_FIELDS["any"])
    for stream in model_streams(ckpt["modality"]):
        fields += RECIPE_FIELDS[stream]
    diffs = []
    backend_differs = _field(ck_rec, "flow.name") != _field(dataset_record, "flow.name")
    for name in fields:
        if name.split(".")[0] not in ck_rec:
            continue
        want, have = _flat(name, _field(ck_rec, name)), _flat(name, _field(dataset_record, name))
        if name == "flow.params" and backend_differs:
            if want != have:
                diffs.append("flow.params (another backend)")
            continue
        for key in sorted(set(want) | set(have)):
            if want.get(key) != have.get(key):
                diffs.append(f"{key}: {want.get(key)!r} != {have.get(key)!r}")
    return diffs

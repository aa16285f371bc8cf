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

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flowprep.errors import ConfigError, FlowprepError
from flowprep.train.models import ARCHS, MODALITIES, build_model

FORMAT = "flowprep-checkpoint"
VERSION = 1
REQUIRED = ("arch", "modality", "frames", "sample_rate", "input_size", "classes", "state_dict")


class CheckpointError(FlowprepError):
    """A file that is not a flowprep checkpoint, or one that does not fit what is asked of it."""


def save_checkpoint(path: Path, ckpt: dict[str, Any]) -> Path:
    """Write ``ckpt`` (the dict above; ``format``/``version`` are filled in) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "version": VERSION, **ckpt}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(data, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check a checkpoint (on the CPU).

    Raises:
        CheckpointError: missing/unreadable file, not a flowprep checkpoint, a newer version, or
            an unknown architecture/modality.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip/torch errors of many types: all mean "not loadable"
        raise CheckpointError(f"{path} is not a flowprep checkpoint (cannot load it: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a flowprep checkpoint (no format {FORMAT!r}); "
                              "train one with `flowprep train`")
    if int(ckpt.get("version", 0)) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {ckpt.get('version')}; this flowprep "
                              f"reads up to {VERSION}: upgrade flowprep")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is an incomplete flowprep checkpoint (missing {missing})")
    if ckpt["arch"] not in ARCHS or ckpt["modality"] not in MODALITIES:
        raise CheckpointError(f"{path} holds architecture {ckpt['arch']!r} / modality "
                              f"{ckpt['modality']!r}; this flowprep knows {ARCHS} x {MODALITIES}")
    ckpt["path"] = str(path)
    return ckpt


def check_compatible(ckpt: dict[str, Any], arch: str | None = None, modality: str | None = None,
                     frames: int | None = None) -> None:
    """Raise :class:`CheckpointError` if ``ckpt`` is not the asked architecture/modality/frames."""
    where = ckpt.get("path", "checkpoint")
    for key, want in (("arch", arch), ("modality", modality), ("frames", frames)):
        if want is not None and ckpt[key] != want:
            raise CheckpointError(f"{where} is a {ckpt['arch']} {ckpt['modality']} model with "
                                  f"{ckpt['frames']} frames, but {key} {want!r} was asked")


def model_from_checkpoint(ckpt: dict[str, Any], arch: str | None = None,
                          modality: str | None = None) -> nn.Module:
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
        raise CheckpointError(f"{ckpt.get('path', 'checkpoint')}: weights do not fit a "
                              f"{ckpt['arch']} {ckpt['modality']} ResNet-18 ({str(exc).splitlines()[0]})"
                              ) from exc
    return model.eval()

"""The export stage's config (validated on creation) and summary."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowprep.errors import ConfigError
from flowprep.export.tensorrt import Profile
from flowprep.fsio.paths import check_path
from flowprep.layout.record import RECORD_NAME
from flowprep.layout.registry import frame_tops


@dataclass
class ExportConfig:
    """Options of ``flowprep export``.

    Attributes:
        checkpoint: ``best.pt`` / ``last.pt``.
        out: deploy folder (created; an earlier export's files are replaced once the new set is complete,
            others kept).
        fp16: also write and check ``model_fp16.onnx``; fp16 engine and DeepStream ``network-mode``.
        engine: build a TensorRT engine if TensorRT and a GPU are here (else the command is given).
        min_batch, opt_batch, max_batch: TensorRT profile; ``max_batch`` is Triton's ``max_batch_size``.
        ds_batch: sequences per DeepStream inference (``network-input-shape``'s batch, nvinfer ``batch-size``).
        triton_name: Triton model name (default: the folder name).

    Raises:
        ConfigError: a Triton name that is not a folder name, a DeepStream batch outside the profile.
        ExportError: a profile without ``1 <= min <= opt <= max``.
    """

    checkpoint: Path
    out: Path
    fp16: bool = False
    engine: bool = False
    min_batch: int = 1
    opt_batch: int = 4
    max_batch: int = 8
    ds_batch: int = 4
    triton_name: str | None = None

    def __post_init__(self) -> None:
        self.checkpoint, self.out = check_path(self.checkpoint, "CHECKPOINT"), check_path(self.out, "--out")
        if self.triton_name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", self.triton_name):
            raise ConfigError(
                f"--triton-name {self.triton_name!r}: Triton model names are folder names; "
                "use letters, digits, '_', '.' and '-'"
            )
        Profile(self.min_batch, self.opt_batch, self.max_batch)  # raises ExportError for bad batch sizes
        _check_not_in_dataset(self.out)
        if not 1 <= self.ds_batch <= self.max_batch:
            raise ConfigError(
                f"--deepstream-batch must be within 1..{self.max_batch} (the engine's max batch), got {self.ds_batch}"
            )

    @property
    def profile(self) -> Profile:
        """The TensorRT optimization profile (raises ExportError for bad batch sizes)."""
        return Profile(self.min_batch, self.opt_batch, self.max_batch)


def _check_not_in_dataset(out: Path) -> None:
    """Refuse a deploy folder inside a dataset's ``train/``, ``val/`` or ``rawframes/``: those hold only
    class folders (TAO lists them), so it would become a stray class that fails ``flowprep verify``."""
    target = out.resolve()
    for folder in (target, *target.parents):
        if folder.name in frame_tops() and (folder.parent / RECORD_NAME).is_file():
            raise ConfigError(
                f"--out {out} is inside the dataset's {folder.name}/ folder, which holds only class "
                "folders; choose a folder outside it"
            )


@dataclass
class ExportSummary:
    """What an export wrote and measured."""

    out: Path
    arch: str
    modality: str
    files: list[str] = field(default_factory=list)
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)
    engine: str | None = None
    engine_note: str = ""
    trtexec: list[str] = field(default_factory=list)
    deepstream_note: str = ""

"""The train and evaluate stages' configs (validated on creation) and summaries. Torch-free.

The CLI builds and checks a config before torch is loaded; :mod:`flowprep.train.api` runs it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flowprep.errors import ConfigError, DatasetError
from flowprep.fsio.paths import check_path
from flowprep.layout.base import SIDES
from flowprep.layout.packed import SHARDS_DIR
from flowprep.layout.record import find_root
from flowprep.layout.registry import frame_tops
from flowprep.limits import MAX_SEED, check_count, check_finite
from flowprep.loader.sampling import CONV_SEGMENTS
from flowprep.loader.spec import (
    ARCHS,
    CROPS,
    DEVICES,
    EVAL_MODES,
    FRAMES_RANGE,
    INPUT_SIZE_RANGE,
    OPTIMIZERS,
    SAMPLE_RATE_RANGE,
    STREAMS,
    input_budget_problem,
)


@dataclass
class TrainConfig:
    """Training options (CLI: ``flowprep train``), checked on creation (:class:`ConfigError`).

    Defaults follow TAO's action-recognition spec where it has one (SGD momentum 0.9, weight decay
    5e-4, steps at 15 and 25 x0.1, dropout 0.5, flip 0.5, lr 0.01 as in TAO's sample specs).
    ``modality`` is the model's input streams (:data:`~flowprep.loader.spec.STREAMS`).
    """

    dataset: Path
    out: Path
    arch: str = "2d"
    modality: str = "rgb"
    frames: int = 32
    sample_rate: int = 1
    input_size: int = 224
    epochs: int = 30
    batch_size: int = 8
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_steps: list[int] = field(default_factory=lambda: [15, 25])
    lr_decay: float = 0.1
    clip_grad: float = 0.0  # max gradient L2 norm; 0 = off (TAO's default)
    dropout: float = 0.5
    crop: str = "random"
    hflip: float = 0.5
    amp: bool = True  # only on CUDA
    workers: int = 2
    seed: int = 0
    resume: bool = False
    imagenet: Path | None = None  # torchvision ResNet-18 state_dict
    device: str = "auto"
    shuffle_labels: bool = False  # sanity check: should not generalise
    progress: bool = True
    # a packed dataset's shards read sequentially (flowprep.loader.ShardStream), not by random access
    stream: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` for a bad option (also run on creation; again after changes)."""
        check_path(self.dataset, "DATASET")
        check_path(self.out, "--out")
        if self.imagenet is not None:
            check_path(self.imagenet, "--imagenet")
        if self.arch not in ARCHS or self.modality not in STREAMS:
            raise ConfigError(f"--arch must be one of {ARCHS} and --modality one of {STREAMS}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.crop not in CROPS:
            raise ConfigError(f"--crop must be one of {CROPS}, got {self.crop!r}")
        for name in ("frames", "sample_rate", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.input_size < 32:
            raise ConfigError(f"--input-size must be >= 32 (ResNet downsamples 32x), got {self.input_size}")
        if not 0 <= self.hflip <= 1 or not 0 <= self.dropout < 1:
            raise ConfigError("--hflip must be in [0, 1] and --dropout in [0, 1)")
        self._check_numbers()
        inside = out_inside_dataset(self.dataset, self.out)
        if inside:
            raise ConfigError(inside)

    def _check_numbers(self) -> None:
        """Finite numbers in range (nan passes every ``<``/``>`` test above), sizes with a ceiling."""
        for name, lo, hi in (
            ("frames", *FRAMES_RANGE),
            ("sample_rate", *SAMPLE_RATE_RANGE),
            ("input_size", *INPUT_SIZE_RANGE),
            ("epochs", 1, 100_000),
            ("batch_size", 1, 4096),
            ("workers", 0, 256),
        ):
            check_count(f"--{name.replace('_', '-')}", getattr(self, name), lo, hi)
        check_finite("--lr", self.lr, 0, 10, lo_open=True)
        check_finite("--momentum", self.momentum, 0, 1, hi_open=True)
        check_finite("--weight-decay", self.weight_decay, 0, 1)
        check_finite("--lr-decay", self.lr_decay, 0, 1, lo_open=True)
        check_finite("--clip-grad", self.clip_grad, 0)
        check_finite("--hflip", self.hflip, 0, 1)
        check_finite("--dropout", self.dropout, 0, 1, hi_open=True)
        for step in self.lr_steps:
            check_count("--lr-steps", step, 1, 100_000)
        check_count("--seed", self.seed, 0, MAX_SEED)
        budget = input_budget_problem(self.frames, self.sample_rate, self.input_size)
        if budget:
            raise ConfigError(f"--frames/--sample-rate/--input-size: {budget}")

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def out_inside_dataset(dataset: Path, out: Path) -> str | None:
    """Why ``out`` may not hold a run, or None: inside the dataset's ``train/``, ``val/`` or
    ``rawframes/`` a run folder would be listed as a class (TAO lists them) and fail ``verify``, as
    it would among a packed dataset's ``shards/``."""
    try:
        root = find_root(Path(dataset)).resolve()
    except DatasetError:
        return None  # not a dataset: open_dataset says so
    target = Path(out).resolve()
    for top in (*frame_tops(), SHARDS_DIR):
        if target.is_relative_to(root / top):
            return (
                f"--out {out} is inside the dataset's {top}/ folder, which holds only "
                f"{'shards' if top == SHARDS_DIR else 'class folders'}; "
                "choose a folder outside it"
            )
    return None


@dataclass
class TrainSummary:
    """What a training run ended with (every rank returns one; only rank 0 wrote the files).

    Attributes:
        best_acc: best validation top-1 in [0, 1] (-1 if no epoch ran).
        epochs: the configured number of epochs.
        last, best, log: ``last.pt``, ``best.pt``, ``log.jsonl`` in the run folder.
        clips_per_s: training throughput of the last epoch run, all ranks together (0 if none ran).
        rank: this process's rank (0 without torchrun).
    """

    best_acc: float
    epochs: int
    last: Path
    best: Path
    log: Path
    clips_per_s: float
    rank: int = 0


@dataclass
class EvalConfig:
    """Evaluation options (CLI: ``flowprep evaluate``), checked on creation (:class:`ConfigError`).

    ``arch``/``modality``, when given, are what the caller expects the checkpoint to be. ``side``
    defaults to the dataset folder's (see :func:`resolve_side`). ``out``
    defaults to ``<checkpoint dir>/eval-<side>``.
    """

    checkpoint: Path
    dataset: Path
    mode: str = "center"
    out: Path | None = None
    side: str | None = None
    batch_size: int = 8
    device: str = "auto"
    segments: int = CONV_SEGMENTS
    progress: bool = True
    arch: str | None = None
    modality: str | None = None
    allow_recipe_mismatch: bool = False

    def __post_init__(self) -> None:
        check_path(self.checkpoint, "CHECKPOINT")
        check_path(self.dataset, "DATASET")
        if self.out is not None:
            check_path(self.out, "--out")
        if self.mode not in EVAL_MODES:
            raise ConfigError(f"--mode must be one of {EVAL_MODES}, got {self.mode!r}")
        check_count("--batch-size", self.batch_size, 1, 4096)
        check_count("segments", self.segments, 1, 1000)
        if self.device not in DEVICES:
            raise ConfigError(f"--device must be one of {DEVICES}, got {self.device!r}")
        inside = out_inside_dataset(self.dataset, self.out) if self.out is not None else None
        if inside:  # a report folder there would be listed as a class and fail verify, as for train
            raise ConfigError(inside)


@dataclass
class EvalSummary:
    """An evaluation's results; ``report`` is what ``out/report.json`` holds.

    Attributes:
        out: the report folder. side: ``"train"`` or ``"val"``.
        modes: per protocol (``center``/``conv``), :func:`flowprep.train.evaluate.metrics` (``top1``,
            ``mean_class_accuracy``, ``clips``, ...) plus ``predictions``.
        report: the whole report (checkpoint facts, ``recipe_mismatch``, ``modes``).
    """

    out: Path
    side: str
    modes: dict[str, dict[str, Any]]
    report: dict[str, Any]

    @property
    def report_path(self) -> Path:
        return self.out / "report.json"


def resolve_side(dataset: Path, side: str | None) -> str:
    """The side to evaluate: ``side``, or the folder's when ``dataset`` is ``<root>/train|val``,
    else ``"val"``.

    Raises:
        ConfigError: ``side`` is not a side, or contradicts the side folder ``dataset`` names.
        DatasetError: ``dataset`` is not a flowprep dataset (root or side folder).
    """
    if side is not None and side not in SIDES:
        raise ConfigError(f"side must be one of {SIDES}, got {side!r}")
    path = Path(dataset)
    folder = path.name if find_root(path) != path else None
    if folder is not None and side is not None and side != folder:
        raise ConfigError(
            f"{path} is the {folder} side of its dataset, but side {side!r} was asked; "
            f"pass the dataset root to choose a side, or drop --side"
        )
    return side or folder or "val"

"""Build configuration: everything that decides the bytes of a dataset, and how to run the build;
and :class:`BuildSummary`, what a build did."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from flowprep.archive.bounded import MAX_CLIP_BYTES as DEFAULT_MAX_CLIP_BYTES
from flowprep.builder.options import OPTIONS, output_settings
from flowprep.errors import BackendNotInstalledError, ConfigError, OptionError
from flowprep.flow.encoding import FlowEncoding
from flowprep.flow.registry import BACKENDS, check_params
from flowprep.fsio.paths import check_path
from flowprep.layout.dataset_record import PACK_FORMATS
from flowprep.layout.packed import DEFAULT_SHARD_SIZE
from flowprep.layout.registry import LAYOUT_NAMES, get_layout
from flowprep.layout.sections import DATASET_MODALITIES
from flowprep.limits import MAX_BYTES, MAX_SEED, MAX_SIDE, MIN_SIDE, check_count, check_finite

#: seconds to wait for the Dask scheduler to answer (the per-clip size limit is the archive module's)
DEFAULT_SCHEDULER_TIMEOUT = 30.0

_SCHEDULER = re.compile(
    r"(?:(?:tcp|tls|ws|wss|ucx)://)?"
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
    r"(?::(\d{1,5}))?/?"
)


def scheduler_problem(address: str) -> str | None:
    """Why ``address`` is not a Dask scheduler address (``tcp://host:8786``, ``tls://...``, ``host:port``,
    ``inproc://...``), or None."""
    if address.startswith("inproc://") and len(address) > len("inproc://"):
        return None
    m = _SCHEDULER.fullmatch(address)
    if m is None:
        return f"--scheduler {address!r} is not an address like tcp://HOST:8786"
    if m.group(1) is not None and not 1 <= int(m.group(1)) <= 65535:
        return f"--scheduler {address!r}: port {m.group(1)} is outside 1..65535"
    return None


@dataclass
class BuildConfig:
    """Options of ``flowprep build``.

    Each field has one row in :data:`flowprep.builder.options.OPTIONS` saying whether it decides the
    output (those form the fingerprint stored in the output folder: a later run with a different
    fingerprint is refused unless ``force``), what the build state, the clip jobs and the dataset
    record keep of it, and how the command line sets it. Every rule on the values is checked here,
    for library callers and the command line alike (:class:`~flowprep.errors.ConfigError`; about one
    option's value: :class:`~flowprep.errors.OptionError`).

    Attributes:
        source: release folder or archive (RAR/zip/tar), see :func:`flowprep.archive.reader.list_videos`.
        out: output dataset folder.
        classes: classes to build, in label order (None = all, sorted).
        splits_source: folder/archive holding HMDB51's split files or UCF101's lists (for
            ``official_split``; UCF101's ``classInd.txt`` also fixes the class order).
        train_list, val_list: list files giving the split exactly (both or neither; see
            :mod:`flowprep.datasets.lists`).
        allow_missing_clips: list entries with no clip in the release are warned about and recorded
            (the record's ``split.missing``) instead of stopping the build.
        layout: ``"tao"`` or ``"mmaction2"``.
        modality: ``"rgb"``, ``"flow"`` or ``"both"``.
        flow: flow backend name (``"auto"`` is resolved before the build starts).
        flow_params: backend parameters (see ``flowprep backends``).
        encoding: how flow becomes 8-bit images.
        rgb_format: ``"png"`` (TAO default) or ``"jpg"``.
        rgb_quality: JPEG quality for RGB frames when ``rgb_format`` is ``"jpg"``.
        val_ratio, seed, split_by, official_split: the train/val split.
        short_side, size, frame_step: decoding (resize, temporal subsampling).
        jobs: worker processes (None = all cores).
        force: overwrite an output folder made with another configuration.
        engine: ``"local"`` (joblib processes) or ``"dask"``.
        scheduler: Dask scheduler address for ``engine="dask"``.
        shard: ``(k, n)``: build only part k of n (1-based) of the clip list.
        gpus: GPU ids for GPU flow backends, one per worker round-robin (None = backend default).
        progress: show a progress bar.
        max_clip_bytes: a clip larger than this is not read (recorded as failed); also checked while reading.
        scheduler_timeout: seconds to wait for the Dask scheduler to answer.
        source_kind: recorded in the dataset record (``"hmdb51"``, ``"ucf101"`` for the presets).
        pack: ``"webdataset"``: write the dataset as tar shards (:mod:`flowprep.builder.packbuild`);
            None: clip folders.
        shard_size: target bytes per shard of a packed build.
    """

    source: Path
    out: Path
    classes: list[str] | None = None
    splits_source: Path | None = None
    layout: str = "tao"
    modality: str = "both"
    flow: str = "tvl1"
    flow_params: dict[str, Any] = field(default_factory=dict)
    encoding: FlowEncoding = field(default_factory=FlowEncoding)
    rgb_format: str = "png"
    rgb_quality: int = 95
    val_ratio: float = 0.1
    seed: int = 0
    split_by: str = "group"
    official_split: int | None = None
    short_side: int | None = None
    size: tuple[int, int] | None = None
    frame_step: int = 1
    jobs: int | None = None
    force: bool = False
    engine: str = "local"
    scheduler: str | None = None
    shard: tuple[int, int] | None = None
    gpus: list[int] | None = None
    progress: bool = True
    source_kind: str = "folder"
    max_clip_bytes: int = DEFAULT_MAX_CLIP_BYTES
    scheduler_timeout: float = DEFAULT_SCHEDULER_TIMEOUT
    train_list: Path | None = None
    val_list: Path | None = None
    allow_missing_clips: bool = False
    pack: str | None = None
    shard_size: int = DEFAULT_SHARD_SIZE

    def __post_init__(self) -> None:
        # paths enter here for library callers too: OpenCV must never see an undecodable byte
        self.source = check_path(self.source, "SOURCE")
        self.out = check_path(self.out, "--out")
        if self.splits_source is not None:
            self.splits_source = check_path(self.splits_source, "--splits")
        self.train_list = check_path(self.train_list, "--train-list") if self.train_list is not None else None
        self.val_list = check_path(self.val_list, "--val-list") if self.val_list is not None else None
        self._check_combinations()
        if self.layout not in LAYOUT_NAMES:
            raise ConfigError(f"--layout must be one of {LAYOUT_NAMES}, got {self.layout!r}")
        if self.modality not in DATASET_MODALITIES:
            raise ConfigError(f"--modality must be one of {DATASET_MODALITIES}, got {self.modality!r}")
        if self.rgb_format not in ("png", "jpg"):
            raise ConfigError(f"RGB image format must be png or jpg, got {self.rgb_format!r}")
        if self.short_side is not None and not MIN_SIDE <= self.short_side <= MAX_SIDE:
            raise ConfigError(f"--short-side must be {MIN_SIDE} to {MAX_SIDE} pixels, got {self.short_side}")
        if self.size is not None and (min(self.size) < MIN_SIDE or max(self.size) > MAX_SIDE):
            raise ConfigError(
                f"--size sides must be {MIN_SIDE} to {MAX_SIDE} pixels, got {self.size[0]}x{self.size[1]}"
            )
        check_finite("--val-ratio", self.val_ratio, 0, 1, lo_open=True, hi_open=True)
        if self.frame_step < 1:
            raise ConfigError(f"--frame-step must be >= 1, got {self.frame_step}")
        if self.jobs is not None and self.jobs < 1:
            raise ConfigError(f"-j/--jobs must be >= 1, got {self.jobs}")
        if self.shard is not None:
            k, n = self.shard
            if not (n >= 1 and 1 <= k <= n):
                raise ConfigError(f"--shard must be K/N with 1 <= K <= N, got {k}/{n}")
        if self.engine not in ("local", "dask"):
            raise ConfigError(f"--engine must be local or dask, got {self.engine!r}")
        self._check_run_limits()
        self._check_flow_params()
        self._check_pack()
        if isinstance(self.classes, str):  # a str is a sequence of letters: "wave" would be w, a, v, e
            raise ConfigError(f"classes must be a list of class names, got the string {self.classes!r}")
        if self.classes is not None:
            self.classes = list(self.classes)  # a tuple or a generator from a library caller
            if not self.classes:
                raise ConfigError("--classes selects no class")
            dup = sorted({c for c in self.classes if self.classes.count(c) > 1})
            if dup:
                raise ConfigError(f"--classes lists {', '.join(dup)} more than once")

    def _check_combinations(self) -> None:
        """Options that contradict each other, in the order the command line has always reported them."""
        if self.size is not None and self.short_side is not None:
            raise ConfigError("give --size or --short-side, not both")
        if self.scheduler is not None and self.engine != "dask":
            raise ConfigError("--scheduler goes with --engine dask")
        if self.scheduler is not None and scheduler_problem(self.scheduler):
            raise ConfigError(str(scheduler_problem(self.scheduler)))
        if self.official_split is not None and self.splits_source is None:
            raise ConfigError("--official-split needs --splits (the folder or archive with the split files)")
        if (self.train_list is None) != (self.val_list is None):
            raise ConfigError("give both --train-list and --val-list (the lists keep the split exactly)")
        if self.train_list is not None and (self.official_split is not None or self.splits_source is not None):
            # with lists the split files would be read for nothing, yet named in the record's source
            raise ConfigError("give --train-list/--val-list or --splits/--official-split, not both")

    def _check_run_limits(self) -> None:
        check_count("--max-clip-bytes", self.max_clip_bytes, 1, MAX_BYTES)
        check_count("--seed", self.seed, 0, MAX_SEED)
        if not (math.isfinite(self.scheduler_timeout) and self.scheduler_timeout > 0):
            raise ConfigError(f"--scheduler-timeout must be a positive number of seconds, got {self.scheduler_timeout}")

    def _check_flow_params(self) -> None:
        # the backend's own declarations (flowprep.flow.params); "auto" and names not known here
        # are checked when the backend is made
        if not isinstance(self.flow_params, dict):
            raise ConfigError(
                f"flow_params must be a dict of backend parameters, got {type(self.flow_params).__name__}"
            )
        if self.flow in BACKENDS:
            try:
                check_params(self.flow, self.flow_params)
            except ConfigError as exc:
                raise OptionError(str(exc), option="--flow-param") from None
            except BackendNotInstalledError:
                pass  # checked where the backend runs (a Dask worker may have what this machine lacks)

    def _check_pack(self) -> None:
        if self.pack is None:
            return
        if self.pack not in PACK_FORMATS:
            raise ConfigError(f"--pack must be one of {PACK_FORMATS}, got {self.pack!r}")
        if not get_layout(self.layout).packable:
            raise ConfigError("--pack writes the TAO layout's images into shards; use it with --layout tao")
        check_count("--shard-size", self.shard_size, 1, MAX_BYTES)

    @property
    def needs_flow(self) -> bool:
        return self.modality in ("flow", "both")

    @property
    def needs_rgb(self) -> bool:
        return self.modality in ("rgb", "both")

    def source_identity(self) -> list[Any]:
        """``[[name, size or None], ...]`` of the source (and split and list files): a folder is known by
        name only."""
        paths = [self.source] + [p for p in (self.splits_source, self.train_list, self.val_list) if p is not None]
        return [[p.name, None if p.is_dir() else p.stat().st_size] for p in paths]

    def effective_jobs(self) -> int:
        return self.jobs or os.cpu_count() or 1

    def output_settings(self) -> dict[str, Any]:
        """The output-determining settings as plain JSON data (paths excluded: a moved release is the
        same), as :data:`flowprep.builder.options.OPTIONS` declares them."""
        return output_settings(self)


def fingerprint(settings: dict[str, Any]) -> str:
    """A short stable hash of JSON-able settings."""
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


if {f.name for f in fields(BuildConfig)} != set(OPTIONS):  # pragma: no cover - a guard on the declaration
    raise ImportError("every BuildConfig field needs one row in flowprep.builder.options.OPTIONS, and no more")


@dataclass
class BuildSummary:
    """What a build did. ``failed``: (clip id, reason) of every clip that is not finished."""

    out: Path
    classes: list[str]
    counts: dict[str, dict[str, int]]
    built: int = 0
    existing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    excluded: int = 0
    frames: int = 0
    seconds: float = 0.0
    flow: dict[str, Any] | None = None
    record_written: bool = True
    shard: tuple[int, int] | None = None
    pending: int = 0
    #: "<class>/<side>" with no built clip (a class too small to split, or whose clips failed)
    empty_sides: list[str] = field(default_factory=list)
    #: (clip id, frames lost) of built clips whose video had undecodable frames
    decode_errors: list[tuple[str, int]] = field(default_factory=list)
    #: a packed build: the shards this run wrote, and the seconds packing took
    shards_written: list[str] = field(default_factory=list)
    pack_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

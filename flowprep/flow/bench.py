"""``flowprep bench-flow``: accuracy and speed of flow backends on pairs with known flow.

Pairs with known flow come from :mod:`flowprep.flow.pairs` (real frames warped by smooth fields,
and user pairs with a Middlebury ``.flo``).

Metrics per backend, over all valid pixels of all pairs: mean end-point error (EPE, Euclidean
distance between estimated and true flow, pixels), the fraction of pixels with EPE > 1 px and > 3 px,
the mean EPE per group of pairs and per band of true motion
(:data:`~flowprep.flow.bench_report.MOTION_BINS`), and frames (pairs) per second of
:meth:`FlowBackend.calc` alone, after one untimed warm-up call (the median of ``repeats`` timed
passes), with the hours that speed implies for HMDB5 on this machine's cores.
Measuring one backend or encoding is :mod:`flowprep.flow.bench_measure`; the result records, the
table, the plot and the visualizations are in :mod:`flowprep.flow.bench_report`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowprep.errors import ConfigError, FlowprepError
from flowprep.flow import registry
from flowprep.flow.bench_measure import cpu_cores, encoding_error, run_backend
from flowprep.flow.bench_report import BenchResult, write_plot
from flowprep.flow.encoding import FlowEncoding
from flowprep.flow.pairs import DEFAULT_MAGNITUDES, DEFAULT_VIDEO, FlowPair, load_pair, synthetic_pairs
from flowprep.flow.scenes import HELD_OUT_FRAMES, scene_pairs
from flowprep.fsio.paths import check_path, printable
from flowprep.fsio.reading import check_regular
from flowprep.fsio.writing import check_new_file

log = logging.getLogger(__name__)

#: the largest --video read for synthetic pairs (only its first frames are decoded)
MAX_VIDEO_BYTES = 64 << 30


@dataclass
class BenchConfig:
    """Options of ``flowprep bench-flow``, checked on creation (:class:`ConfigError`).

    Attributes:
        backends: registry names; a named backend that cannot run here is an error. Default: every
            registered backend, those that cannot run here reported with the reason, not measured.
        size: ``(width, height)`` of the synthetic pairs, each at least 16.
        magnitudes: largest speed (pixels, > 0) of each level of synthetic pairs; empty for none.
        per_magnitude: synthetic pairs per level (each from a different frame).
        extra_pairs: ``(frame1, frame2, gt.flo)`` paths.
        video: frames for synthetic pairs and scenes (None or missing: procedural texture).
        scenes: layered scenes (:mod:`flowprep.flow.scenes`: an object moving over a moving
            background, noise, gain) per motion class 1-3, 3-8 and 8-20 px, made from the second
            half of ``video`` (the frames ``bench/tune_cpu_flow.py`` never tunes on), ``size`` big.
        repeats: timed passes over the pairs; pairs/s is the median pass.
        bounds: ``fixed`` encoding bounds (> 0) whose quantization error is reported (``maxrad`` always is).
        jpeg_quality: JPEG quality (1..100) for the encoding error rows.
        threads: ``cv2.setNumThreads`` during the run (1 = one build worker's view); None leaves it.
        backend_params: per-backend constructor parameters.
        plot: PNG path for the EPE-vs-speed plot.
        vis_dir: folder for one colour-wheel visualization per backend.
        seed: for the synthetic fields.
        overwrite: ``plot`` and the visualizations may replace existing files (never an input).

    Raises:
        ConfigError: a value out of range, an unusable path, a ``video`` given that is not a regular
            file, or an output file that exists without ``overwrite``.
    """

    backends: Sequence[str] | None = None
    size: tuple[int, int] = (320, 240)
    magnitudes: Sequence[float] = DEFAULT_MAGNITUDES
    per_magnitude: int = 2
    extra_pairs: Sequence[tuple[Path, Path, Path]] = ()
    video: Path | None = DEFAULT_VIDEO
    bounds: Sequence[float] = (20.0,)
    jpeg_quality: int = 95
    threads: int | None = 1
    backend_params: dict[str, dict[str, Any]] | None = None
    plot: Path | None = None
    vis_dir: Path | None = None
    seed: int = 0
    scenes: int = 0
    repeats: int = 1
    overwrite: bool = False

    def __post_init__(self) -> None:
        self._check_paths()
        if min(self.size) < 16:
            raise ConfigError(f"bench-flow: pair width and height must be at least 16, got {self.size}")
        if any(not (v > 0 and math.isfinite(v)) for v in (*self.magnitudes, *self.bounds)):
            raise ConfigError("bench-flow: magnitudes and encoding bounds must be positive")
        if self.per_magnitude < 0 or not 1 <= self.jpeg_quality <= 100 or (self.threads or 0) < 0:
            raise ConfigError(
                "bench-flow: pairs per magnitude and threads must be >= 0, "
                f"JPEG quality within 1..100 (got {self.per_magnitude}, {self.threads}, "
                f"{self.jpeg_quality})"
            )
        if self.scenes < 0 or self.repeats < 1:
            raise ConfigError(f"bench-flow: scenes must be >= 0 and repeats >= 1 (got {self.scenes}, {self.repeats})")

    def _check_paths(self) -> None:
        pairs = [Path(check_path(p, "--pair")) for pair in self.extra_pairs for p in pair]
        if self.video is not None:
            self.video = check_path(self.video, "--video")
            if self.video != DEFAULT_VIDEO:  # the default may be absent (then a texture is used)
                check_regular(self.video, what="--video", max_bytes=MAX_VIDEO_BYTES, error=ConfigError)
        if self.plot is not None:
            inputs = [*pairs, self.video]
            self.plot = check_new_file(self.plot, option="--plot", overwrite=self.overwrite, inputs=inputs)
        if self.vis_dir is not None:
            self.vis_dir = check_path(self.vis_dir, "--vis-dir")
            old = sorted(self.vis_dir.glob("flow_*.png")) if self.vis_dir.is_dir() else []
            if old and not self.overwrite:
                raise ConfigError(
                    f"--vis-dir {printable(self.vis_dir)} already holds {old[0].name} (and {len(old) - 1} more "
                    "visualization(s)); choose another folder, or pass --overwrite to replace them"
                )


# ---------------------------------------------------------------------------------------- stage


def bench_flow(
    backends: Sequence[str] | None = None,
    size: tuple[int, int] = (320, 240),
    magnitudes: Sequence[float] = DEFAULT_MAGNITUDES,
    per_magnitude: int = 2,
    extra_pairs: Sequence[tuple[Path, Path, Path]] = (),
    video: Path | None = DEFAULT_VIDEO,
    bounds: Sequence[float] = (20.0,),
    jpeg_quality: int = 95,
    threads: int | None = 1,
    backend_params: dict[str, dict[str, Any]] | None = None,
    plot: Path | None = None,
    vis_dir: Path | None = None,
    seed: int = 0,
    scenes: int = 0,
    repeats: int = 1,
) -> BenchResult:
    """:func:`bench` of the :class:`BenchConfig` of these arguments (see there)."""
    return bench(
        BenchConfig(
            backends,
            size,
            magnitudes,
            per_magnitude,
            extra_pairs,
            video,
            bounds,
            jpeg_quality,
            threads,
            backend_params,
            plot,
            vis_dir,
            seed,
            scenes,
            repeats,
        )
    )


def pair_labels(paths: Sequence[Path]) -> list[str]:
    """Distinct labels for the user's pairs: each frame1's file name, with as many parent folders as
    it takes to tell equal names apart, and ``#k`` appended where even the paths are equal."""
    parts = [Path(p).absolute().parts for p in paths]
    labels = []
    for mine in parts:
        # other paths with this file name; an identical path cannot be told apart by folders
        same = [o for o in parts if o != mine and o[-1] == mine[-1]]
        depth = 1
        while any(o[-depth:] == mine[-depth:] for o in same):
            depth += 1
        labels.append("/".join(mine[-depth:]))
    numbered = list(labels)
    for i, label in enumerate(labels):
        if labels.count(label) > 1:
            numbered[i] = f"{label}#{labels[: i + 1].count(label)}"
    return numbered


def _pairs(cfg: BenchConfig) -> tuple[list[FlowPair], str]:
    """The synthetic pairs, scenes and the user's pairs, and where the synthetic frames came from ("" if none)."""
    pairs: list[FlowPair] = []
    sources = []
    if cfg.magnitudes:
        pairs, source = synthetic_pairs(cfg.size, cfg.magnitudes, cfg.per_magnitude, cfg.video, cfg.seed)
        sources.append(source)
    if cfg.scenes:
        scenes, source = scene_pairs(cfg.video, cfg.size, cfg.scenes, cfg.seed, HELD_OUT_FRAMES)
        pairs += scenes
        sources.append(source)
    user = [load_pair(Path(a), Path(b), Path(c)) for a, b, c in cfg.extra_pairs]
    for p, label in zip(user, pair_labels([a for a, _, _ in cfg.extra_pairs])):
        p.name = p.group = label
    pairs += user
    source = ", ".join(dict.fromkeys(sources))
    if not pairs:
        raise FlowprepError("bench-flow has no pairs: give magnitudes or --pair FRAME1 FRAME2 GT.flo")
    return pairs, source


def bench(cfg: BenchConfig, given: tuple[list[FlowPair], str] | None = None) -> BenchResult:
    """Measure flow backends; the stage behind ``flowprep bench-flow``.

    ``given``: ``(pairs, where their frames came from)`` made by the caller, measured instead of the
    pairs ``cfg`` describes (``bench/tune_cpu_flow.py`` uses it for its held-out warps).
    """
    import cv2  # lazy, as elsewhere in flowprep: OpenCV loads when a stage runs, not on import

    names = list(cfg.backends) if cfg.backends else list(registry.BACKENDS)
    pairs, source = given if given is not None else _pairs(cfg)
    old_threads = cv2.getNumThreads()
    if cfg.threads is not None:
        cv2.setNumThreads(int(cfg.threads))
    try:
        results, vis_files = [], []
        for name in names:
            log.info("bench-flow: running %s on %d pairs", name, len(pairs))
            res, files = run_backend(
                name,
                pairs,
                (cfg.backend_params or {}).get(name),
                cfg.vis_dir,
                strict=bool(cfg.backends),
                repeats=cfg.repeats,
            )
            results.append(res)
            vis_files += files
    finally:
        cv2.setNumThreads(old_threads)
    encodings = [FlowEncoding("fixed", float(b), fmt, cfg.jpeg_quality) for b in cfg.bounds for fmt in ("png", "jpg")]
    encodings += [FlowEncoding("maxrad", 20.0, fmt, cfg.jpeg_quality) for fmt in ("png", "jpg")]
    enc_results = [encoding_error(pairs, e) for e in encodings]
    pair_info = [
        {
            "name": p.name,
            "magnitude": p.magnitude,
            "size": [p.prev.shape[1], p.prev.shape[0]],
            "valid_fraction": float(p.valid.mean()),
        }
        for p in pairs
    ]
    sizes = list(dict.fromkeys((int(p.prev.shape[1]), int(p.prev.shape[0])) for p in pairs))
    synthetic_size = (int(cfg.size[0]), int(cfg.size[1])) if source else None
    result = BenchResult(
        synthetic_size,
        sizes,
        source or "pairs given",
        int(cfg.threads or cv2.getNumThreads()),
        cpu_cores(),
        pair_info,
        results,
        enc_results,
        vis_files=vis_files,
    )
    if cfg.plot is not None:
        result.plot = str(write_plot(result, cfg.plot))
    return result

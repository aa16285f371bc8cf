"""``flowprep bench-flow``: accuracy and speed of flow backends on pairs with known flow.

Pairs with known flow come from :mod:`flowprep.flow.pairs` (real frames warped by smooth fields,
and user pairs with a Middlebury ``.flo``).

Metrics per backend, over all valid pixels of all pairs: mean end-point error (EPE, Euclidean
distance between estimated and true flow, pixels), the fraction of pixels with EPE > 1 px and > 3 px,
the mean EPE per group of pairs and per band of true motion (:data:`MOTION_BINS`), and frames (pairs)
per second of :meth:`FlowBackend.calc` alone, after one untimed warm-up call (the median of
``repeats`` timed passes), with the hours that speed implies for HMDB5 on this machine's cores.
The result records, the table, the plot and the visualizations are in :mod:`flowprep.flow.bench_report`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flowprep.errors import ConfigError, FlowprepError
from flowprep.flow import registry
from flowprep.flow.bench_report import (
    HMDB5_PAIRS,
    MAXRAD_NOTE,
    MOTION_BINS,
    BackendResult,
    BenchResult,
    EncodingResult,
    write_plot,
    write_visualization,
)
from flowprep.flow.encoding import FlowEncoding
from flowprep.flow.pairs import DEFAULT_MAGNITUDES, DEFAULT_VIDEO, FlowPair, load_pair, synthetic_pairs
from flowprep.flow.scenes import HELD_OUT_FRAMES, scene_pairs
from flowprep.fsio import check_new_file, check_path, check_regular, printable

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


# -------------------------------------------------------------------------------------- metrics


def epe(est: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """End-point errors (``float32``, pixels) of the valid pixels, flattened."""
    d = est[valid].astype(np.float32) - gt[valid]
    return np.sqrt((d * d).sum(-1))


def by_motion(errors: list[np.ndarray], pairs: Sequence[FlowPair]) -> dict[str, float]:
    """Mean EPE of the valid pixels whose true speed is in each band of :data:`MOTION_BINS` (bands
    without pixels are left out). ``errors[i]`` is :func:`epe` of ``pairs[i]``."""
    speed = np.concatenate([np.sqrt((p.flow[p.valid] ** 2).sum(-1)) for p in pairs]) if pairs else np.zeros(0)
    allerr = np.concatenate(errors) if errors else np.zeros(0, np.float32)
    out = {}
    for label, lo, hi in MOTION_BINS:
        sel = (speed >= lo) & (speed < hi)
        if sel.any():
            out[label] = float(allerr[sel].mean())
    return out


def _summary(errors: list[np.ndarray], pairs: Sequence[FlowPair]) -> tuple[float, float, float, dict[str, float]]:
    allerr = np.concatenate(errors) if errors else np.zeros(0, np.float32)
    by_mag: dict[str, list[np.ndarray]] = {}
    for e, p in zip(errors, pairs):
        by_mag.setdefault(p.group or p.name, []).append(e)
    per = {k: float(np.concatenate(v).mean()) for k, v in by_mag.items()}
    if allerr.size == 0:
        return float("nan"), float("nan"), float("nan"), per
    return float(allerr.mean()), float((allerr > 1).mean()), float((allerr > 3).mean()), per


def _jpeg_gray(img: np.ndarray, quality: int) -> np.ndarray:
    """What a JPEG file of the gray ``uint8`` image reads back as."""
    import cv2  # lazy, as elsewhere in flowprep: OpenCV loads when a stage runs, not on import

    out = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)
    if out is None:
        raise ValueError("JPEG round trip failed")
    return out


def encoding_error(pairs: Sequence[FlowPair], enc: FlowEncoding) -> EncodingResult:
    """EPE that encoding the true flow with ``enc`` (and decoding it back) adds."""
    errors = []
    for p in pairs:
        from flowprep.flow.encoding import max_radius

        u, v = enc.encode(p.flow)
        if enc.image_format == "jpg":
            u, v = (_jpeg_gray(c, enc.jpeg_quality) for c in (u, v))
        rad = max_radius(p.flow) if enc.mode == "maxrad" else None
        errors.append(epe(enc.decode(u, v, max_rad=rad), p.flow, p.valid))
    mean, f1, f3, per = _summary(errors, pairs)
    label = (
        f"{enc.mode}"
        + (f" bound {enc.bound:g}" if enc.mode == "fixed" else "")
        + (f" jpg q{enc.jpeg_quality}" if enc.image_format == "jpg" else " png")
    )
    return EncodingResult(label, enc.to_dict(), mean, f1, f3, per, MAXRAD_NOTE if enc.mode == "maxrad" else "")


def run_backend(
    name: str,
    pairs: Sequence[FlowPair],
    params: dict[str, Any] | None = None,
    vis_dir: Path | None = None,
    strict: bool = False,
    repeats: int = 1,
) -> tuple[BackendResult, list[str]]:
    """Build backend ``name``, run it on every pair (``repeats`` timed passes), and measure.

    A backend that cannot run here raises (``strict``) or gives a result with ``error`` set.
    """
    from flowprep.errors import BackendNotInstalledError, BackendUnavailableError

    try:
        backend = registry.create_backend(name, **(params or {}))
    except (BackendNotInstalledError, BackendUnavailableError) as exc:
        if strict:
            raise
        return BackendResult(name, False, error=str(exc)), []
    files = []
    try:
        backend.calc(pairs[0].prev, pairs[0].nxt)  # warm-up: lazy allocations, GPU context, caches
        errors: list[np.ndarray] = []
        runs, cpu_runs = [], []
        vis_pair = None
        for r in range(repeats):
            seconds = cpu_seconds = 0.0
            for p in pairs:
                t0, c0 = time.perf_counter(), time.thread_time()
                est = backend.calc(p.prev, p.nxt)
                seconds += time.perf_counter() - t0
                cpu_seconds += time.thread_time() - c0
                if r:
                    continue  # the backends are deterministic: later passes only time
                errors.append(epe(est, p.flow, p.valid))
                if vis_pair is None or abs(p.magnitude - 10) < abs(vis_pair[0].magnitude - 10):
                    vis_pair = (p, est)
            runs.append(len(pairs) / max(seconds, 1e-9))
            cpu_runs.append(len(pairs) / max(cpu_seconds, 1e-9))
        mean, f1, f3, per = _summary(errors, pairs)
        fps = float(np.median(runs))
        result = BackendResult(
            name,
            True,
            device=backend.device(),
            params=backend.params(),
            epe_mean=mean,
            frac_over_1px=f1,
            frac_over_3px=f3,
            fps=fps,
            pairs=len(pairs),
            epe_by_magnitude=per,
            epe_by_motion=by_motion(errors, pairs),
            fps_runs=runs,
            cpu_fps=float(np.median(cpu_runs)),
            hmdb5_hours=HMDB5_PAIRS / (fps * cpu_cores()) / 3600,
        )
        if vis_dir is not None and vis_pair is not None:
            files.append(str(write_visualization(Path(vis_dir), name, *vis_pair)))
    finally:
        backend.close()
    return result, files


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


def cpu_cores() -> int:
    """The cores this process may run on (its affinity mask, else all of the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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

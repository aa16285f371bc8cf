"""``flowprep bench-flow``: accuracy and speed of flow backends on pairs with known flow.

Pairs with known flow come from :mod:`flowprep.flow.pairs` (real frames warped by smooth fields,
and user pairs with a Middlebury ``.flo``).

Metrics per backend, over all valid pixels of all pairs: mean end-point error (EPE, Euclidean
distance between estimated and true flow, pixels), the fraction of pixels with EPE > 1 px and > 3 px,
and frames (pairs) per second of :meth:`FlowBackend.calc` alone, after one untimed warm-up call.
The result records, the table, the plot and the visualizations are in :mod:`flowprep.flow.bench_report`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flowprep.errors import ConfigError, FlowprepError
from flowprep.flow import registry
from flowprep.flow.bench_report import (
    MAXRAD_NOTE,
    BackendResult,
    BenchResult,
    EncodingResult,
    write_plot,
    write_visualization,
)
from flowprep.flow.encoding import FlowEncoding
from flowprep.flow.pairs import DEFAULT_MAGNITUDES, DEFAULT_VIDEO, FlowPair, load_pair, synthetic_pairs
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
        video: frames for synthetic pairs (None or missing: procedural texture).
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


def _summary(errors: list[np.ndarray], pairs: Sequence[FlowPair]) -> tuple[float, float, float, dict[str, float]]:
    allerr = np.concatenate(errors) if errors else np.zeros(0, np.float32)
    by_mag: dict[str, list[np.ndarray]] = {}
    for e, p in zip(errors, pairs):
        by_mag.setdefault(f"{p.magnitude:g}" if p.name.startswith("synthetic-") else p.name, []).append(e)
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
) -> tuple[BackendResult, list[str]]:
    """Build backend ``name``, run it on every pair, and measure.

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
        errors, seconds = [], 0.0
        vis_pair = None
        for p in pairs:
            t0 = time.perf_counter()
            est = backend.calc(p.prev, p.nxt)
            seconds += time.perf_counter() - t0
            errors.append(epe(est, p.flow, p.valid))
            if vis_pair is None or abs(p.magnitude - 10) < abs(vis_pair[0].magnitude - 10):
                vis_pair = (p, est)
        mean, f1, f3, per = _summary(errors, pairs)
        result = BackendResult(
            name,
            True,
            device=backend.device(),
            params=backend.params(),
            epe_mean=mean,
            frac_over_1px=f1,
            frac_over_3px=f3,
            fps=len(pairs) / max(seconds, 1e-9),
            pairs=len(pairs),
            epe_by_magnitude=per,
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
        )
    )


def _pairs(cfg: BenchConfig) -> tuple[list[FlowPair], str]:
    """The synthetic pairs and the user's, and where the synthetic pairs' frames came from ("" if none)."""
    if cfg.magnitudes:
        pairs, source = synthetic_pairs(cfg.size, cfg.magnitudes, cfg.per_magnitude, cfg.video, cfg.seed)
    else:
        pairs, source = [], ""
    pairs += [load_pair(Path(a), Path(b), Path(c)) for a, b, c in cfg.extra_pairs]
    if not pairs:
        raise FlowprepError("bench-flow has no pairs: give magnitudes or --pair FRAME1 FRAME2 GT.flo")
    return pairs, source


def bench(cfg: BenchConfig) -> BenchResult:
    """Measure flow backends; the stage behind ``flowprep bench-flow``."""
    import cv2  # lazy, as elsewhere in flowprep: OpenCV loads when a stage runs, not on import

    names = list(cfg.backends) if cfg.backends else list(registry.BACKENDS)
    pairs, source = _pairs(cfg)
    old_threads = cv2.getNumThreads()
    if cfg.threads is not None:
        cv2.setNumThreads(int(cfg.threads))
    try:
        results, vis_files = [], []
        for name in names:
            log.info("bench-flow: running %s on %d pairs", name, len(pairs))
            res, files = run_backend(
                name, pairs, (cfg.backend_params or {}).get(name), cfg.vis_dir, strict=bool(cfg.backends)
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
        pair_info,
        results,
        enc_results,
        vis_files=vis_files,
    )
    if cfg.plot is not None:
        result.plot = str(write_plot(result, cfg.plot))
    return result

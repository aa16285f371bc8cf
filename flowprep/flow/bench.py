"""``flowprep bench-flow``: accuracy and speed of flow backends on pairs with known flow.

Pairs with known flow come from :mod:`flowprep.flow.pairs` (real frames warped by smooth fields,
and user pairs with a Middlebury ``.flo``).

Metrics per backend, over all valid pixels of all pairs: mean end-point error (EPE, Euclidean
distance between estimated and true flow, pixels), the fraction of pixels with EPE > 1 px and > 3 px,
and frames (pairs) per second of :meth:`FlowBackend.calc` alone, after one untimed warm-up call.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flowprep.errors import ConfigError, FlowprepError, OutputError, writing
from flowprep.flow import registry
from flowprep.flow.encoding import FlowEncoding
from flowprep.flow.pairs import DEFAULT_MAGNITUDES, DEFAULT_VIDEO, FlowPair, load_pair, synthetic_pairs

log = logging.getLogger(__name__)


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

    def __post_init__(self) -> None:
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


@dataclass
class BackendResult:
    """One backend's numbers. ``error`` is set (and the numbers are NaN) when it could not run."""

    name: str
    available: bool
    error: str = ""
    device: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    epe_mean: float = float("nan")
    frac_over_1px: float = float("nan")
    frac_over_3px: float = float("nan")
    fps: float = float("nan")
    pairs: int = 0
    epe_by_magnitude: dict[str, float] = field(default_factory=dict)


#: What a ``maxrad`` error row assumes: decoding needs each frame's scale, which the dataset does not keep.
MAXRAD_NOTE = "per-frame scale known; not stored in the images"


@dataclass
class EncodingResult:
    """Error that storing the *true* flow as two 8-bit images adds (no backend involved).

    ``note`` says what the row assumes beyond the images (``MAXRAD_NOTE`` for ``maxrad``, else empty).
    """

    label: str
    encoding: dict[str, Any]
    epe_mean: float
    frac_over_1px: float
    frac_over_3px: float
    epe_by_magnitude: dict[str, float] = field(default_factory=dict)
    note: str = ""


@dataclass
class BenchResult:
    """Everything ``bench-flow`` measured; ``to_dict()`` is the ``--json`` output.

    ``size`` is the ``(width, height)`` of the synthetic pairs (None without any); ``sizes`` lists the
    distinct sizes of all pairs measured, user pairs included, in order of first appearance.
    """

    size: tuple[int, int] | None
    sizes: list[tuple[int, int]]
    frames_source: str
    opencv_threads: int
    pairs: list[dict[str, Any]]
    backends: list[BackendResult]
    encodings: list[EncodingResult]
    plot: str = ""
    vis_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def write_visualization(vis_dir: Path, name: str, pair: FlowPair, est: np.ndarray) -> Path:
    """PNG with frame1 | true flow | estimated flow (colour wheel, same scale) for one pair."""
    import cv2

    from flowprep.flow.visualize import flow_to_color

    vis_dir.mkdir(parents=True, exist_ok=True)
    scale = max(float(np.sqrt((pair.flow[pair.valid] ** 2).sum(-1)).max()) if pair.valid.any() else 1.0, 1.0)
    frame = cv2.cvtColor(pair.prev, cv2.COLOR_GRAY2RGB)
    row = np.concatenate([frame, flow_to_color(pair.flow, scale), flow_to_color(est, scale)], axis=1)
    path = vis_dir / f"flow_{name}_{pair.name}.png"
    # imwrite reports a failed write (full disk, no permission) with False, not an exception
    if not cv2.imwrite(str(path), cv2.cvtColor(row, cv2.COLOR_RGB2BGR)):
        raise OutputError(f"cannot write {path} (disk full or not writable?)")
    return path


def write_plot(result: BenchResult, path: Path) -> Path:
    """EPE (mean) against pairs/s, one point per backend, log-scale x; matplotlib with the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for b in result.backends:
        if b.available:
            ax.scatter([b.fps], [b.epe_mean])
            ax.annotate(b.name, (b.fps, b.epe_mean), textcoords="offset points", xytext=(5, 5))
    ax.set_xscale("log")
    ax.set_xlabel(f"pairs per second ({sizes_text(result)}, {result.opencv_threads} OpenCV thread(s))")
    ax.set_ylabel("mean end-point error (px)")
    ax.set_title("flowprep bench-flow")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with writing(path):
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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


def format_table(result: BenchResult) -> str:
    """The terminal report: one row per backend, then the encoding rows."""
    mags = sorted({k for b in result.backends for k in b.epe_by_magnitude}, key=_mag_key)
    head = f"{'backend':<12} {'EPE':>6} {'>1px':>6} {'>3px':>6} {'pairs/s':>8}  " + " ".join(
        f"{m + 'px':>6}" if _is_num(m) else f"{m[:6]:>6}" for m in mags
    )
    n = len(result.pairs)
    lines = [
        f"flow backends on {n} pair{'s' if n != 1 else ''} at {sizes_text(result)}; frames: "
        f"{result.frames_source}; OpenCV threads: {result.opencv_threads}; EPE in px, mean per level at right",
        head,
    ]
    for b in result.backends:
        if not b.available:
            lines.append(f"{b.name:<12} not run: {b.error}")
            continue
        lines.append(
            f"{b.name:<12} {b.epe_mean:6.2f} {b.frac_over_1px:6.1%} {b.frac_over_3px:6.1%} {b.fps:8.1f}  "
            + " ".join(f"{b.epe_by_magnitude.get(m, float('nan')):6.2f}" for m in mags)
        )
    lines.append("")
    lines.append("error added by storing the true flow as 8-bit images:")
    for e in result.encodings:
        lines.append(
            f"  {e.label:<22} EPE {e.epe_mean:6.3f}  >1px {e.frac_over_1px:6.1%}  >3px {e.frac_over_3px:6.1%}"
            + (f"  ({e.note})" if e.note else "")
        )
    if result.plot:
        lines.append(f"plot: {result.plot}")
    for f in result.vis_files:
        lines.append(f"visualization: {f}")
    return "\n".join(lines)


def sizes_text(result: BenchResult) -> str:
    """``"64x48"``, or with several sizes ``"320x240 (10 pairs), 64x48 (1 pair)"``."""
    counts: dict[str, int] = {}
    for p in result.pairs:
        key = f"{p['size'][0]}x{p['size'][1]}"
        counts[key] = counts.get(key, 0) + 1
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{k} ({n} pair{'s' if n != 1 else ''})" for k, n in counts.items())


def _is_num(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _mag_key(s: str) -> tuple[int, float, str]:
    return (0, float(s), "") if _is_num(s) else (1, 0.0, s)

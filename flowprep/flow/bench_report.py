"""What ``flowprep bench-flow`` reports: the result records and how they are shown.

The dataclasses are the ``--json`` output (:meth:`BenchResult.to_dict`); :func:`format_table` is the
terminal report, :func:`write_plot` the EPE-vs-speed PNG and :func:`write_visualization` the
colour-wheel PNG of one pair. The measuring itself is in :mod:`flowprep.flow.bench`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flowprep.errors import OutputError, writing
from flowprep.flow.pairs import FlowPair
from flowprep.fsio.writing import atomic_path, write_bytes_atomic

#: frame pairs in HMDB5 (its five classes' ~1,100 clips of ~90 frames each): the flow of one build
HMDB5_PAIRS = 100_000
#: bands of true speed (label, from px, to px) that bench-flow reports EPE for, pixel by pixel
MOTION_BINS: tuple[tuple[str, float, float], ...] = (
    ("0-3", 0.0, 3.0),
    ("3-8", 3.0, 8.0),
    ("8-20", 8.0, 20.0),
    (">20", 20.0, float("inf")),
)


@dataclass
class BackendResult:
    """One backend's numbers. ``error`` is set (and the numbers are NaN) when it could not run.

    ``fps`` is pairs per second (median of ``fps_runs``, one per timed pass); ``cpu_fps`` pairs per
    second of the measuring thread's CPU time (what one core gives when it is not shared; for CPU
    backends with one OpenCV thread, meaningless for GPU ones, whose work is not on the CPU);
    ``epe_by_magnitude``
    is the mean EPE per group of pairs (see :attr:`FlowPair.group`), ``epe_by_motion`` per band of
    :data:`MOTION_BINS`; ``hmdb5_hours`` is the wall-clock time :data:`HMDB5_PAIRS` pairs would take
    at ``fps`` per core on every core of this machine (one build worker per core).
    """

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
    epe_by_motion: dict[str, float] = field(default_factory=dict)
    fps_runs: list[float] = field(default_factory=list)
    cpu_fps: float = float("nan")
    hmdb5_hours: float = float("nan")


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
    distinct sizes of all pairs measured, user pairs included, in order of first appearance;
    ``cores`` the cores the HMDB5 hours assume.
    """

    size: tuple[int, int] | None
    sizes: list[tuple[int, int]]
    frames_source: str
    opencv_threads: int
    cores: int
    pairs: list[dict[str, Any]]
    backends: list[BackendResult]
    encodings: list[EncodingResult]
    plot: str = ""
    vis_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_visualization(vis_dir: Path, name: str, pair: FlowPair, est: np.ndarray) -> Path:
    """PNG with frame1 | true flow | estimated flow (colour wheel, same scale) for one pair."""
    import cv2

    from flowprep.flow.visualize import flow_to_color

    vis_dir.mkdir(parents=True, exist_ok=True)  # the user's folder (BenchConfig checked its files)
    scale = max(float(np.sqrt((pair.flow[pair.valid] ** 2).sum(-1)).max()) if pair.valid.any() else 1.0, 1.0)
    frame = cv2.cvtColor(pair.prev, cv2.COLOR_GRAY2RGB)
    row = np.concatenate([frame, flow_to_color(pair.flow, scale), flow_to_color(est, scale)], axis=1)
    path = vis_dir / f"flow_{name}_{pair.name.replace('/', '_').replace('#', '_')}.png"
    # encoded in memory and written atomically by Python: imwrite reports a failed write (full disk,
    # no permission) with False only, and would follow a symlink put in the file's place
    ok, png = cv2.imencode(".png", cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"cannot encode the visualization {path}")
    write_bytes_atomic(path, png.tobytes())
    return path


def frontier(backends: list[BackendResult]) -> list[BackendResult]:
    """The backends no other beats on both EPE and speed (the accuracy/speed frontier), fastest first."""
    ran = [b for b in backends if b.available and np.isfinite(b.epe_mean) and np.isfinite(b.fps)]
    best: list[BackendResult] = []
    for b in sorted(ran, key=lambda r: (-r.fps, r.epe_mean)):
        if not best or b.epe_mean < best[-1].epe_mean:
            best.append(b)
    return best


def write_plot(result: BenchResult, path: Path) -> Path:
    """EPE (mean) against pairs/s, one point per backend, log-scale x, the frontier joined by a
    dashed line; the top axis gives the HMDB5 hours each speed implies. Matplotlib, Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for b in result.backends:
        if b.available:
            ax.scatter([b.fps], [b.epe_mean])
            ax.annotate(b.name, (b.fps, b.epe_mean), textcoords="offset points", xytext=(5, 5))
    front = frontier(result.backends)
    if len(front) > 1:
        ax.plot([b.fps for b in front], [b.epe_mean for b in front], "k--", lw=0.8, label="frontier")
        ax.legend(loc="best")
    ax.set_xscale("log")
    per_hour = HMDB5_PAIRS / 3600 / max(result.cores, 1)  # pairs/s <-> HMDB5 hours on this machine

    def swap(x):  # pairs/s <-> hours: the same map both ways
        return per_hour / np.maximum(x, 1e-9)

    top = ax.secondary_xaxis("top", functions=(swap, swap))
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")  # 0.5, 20, 300 rather than 5x10^-1
    ax.xaxis.set_major_formatter(plain)
    top.xaxis.set_major_formatter(plain)
    top.set_xlabel(f"HMDB5 hours on {result.cores} core(s)")
    ax.set_xlabel(f"pairs per second ({sizes_text(result)}, {result.opencv_threads} OpenCV thread(s))")
    ax.set_ylabel("mean end-point error (px)")
    ax.set_title("flowprep bench-flow")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    # a temporary name with the same suffix (matplotlib picks the format by it), renamed once written
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


def format_table(result: BenchResult) -> str:
    """The terminal report: one row per backend, then the encoding rows."""
    mags = sorted({k for b in result.backends for k in b.epe_by_magnitude}, key=_mag_key)
    head = (
        f"{'backend':<12} {'EPE':>6} {'>1px':>6} {'>3px':>6} {'pairs/s':>8} {'CPU p/s':>8} {'HMDB5 h':>8}  "
        + " ".join(f"{m + 'px':>6}" if _is_num(m) else f"{m:>6}" for m in mags)
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
            f"{b.name:<12} {b.epe_mean:6.2f} {b.frac_over_1px:6.1%} {b.frac_over_3px:6.1%} {b.fps:8.3g} "
            f"{b.cpu_fps:8.3g} {b.hmdb5_hours:8.2f}  "
            + " ".join(f"{b.epe_by_magnitude.get(m, float('nan')):{max(6, len(m))}.2f}" for m in mags)
        )
    bins = [label for label, _, _ in MOTION_BINS if any(label in b.epe_by_motion for b in result.backends)]
    if bins:
        lines.append("")
        lines.append("EPE by true motion of the pixel (px), all pairs:")
        lines.append(f"{'backend':<12} " + " ".join(f"{label + 'px':>7}" for label in bins))
        for b in result.backends:
            if b.available:
                lines.append(f"{b.name:<12} " + " ".join(f"{b.epe_by_motion.get(m, float('nan')):7.2f}" for m in bins))
    front = frontier(result.backends)
    if front:
        lines.append("accuracy/speed frontier (no other backend is both faster and more accurate): ")
        lines[-1] += ", ".join(b.name for b in front)
    lines.append(
        f"HMDB5 h: hours for HMDB5's ~{HMDB5_PAIRS:,} pairs at that speed per core on this machine's "
        f"{result.cores} core(s); CPU p/s: pairs per second of CPU time (a core not shared with other jobs)"
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

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
from flowprep.fsio import atomic_path, write_bytes_atomic


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


def write_visualization(vis_dir: Path, name: str, pair: FlowPair, est: np.ndarray) -> Path:
    """PNG with frame1 | true flow | estimated flow (colour wheel, same scale) for one pair."""
    import cv2

    from flowprep.flow.visualize import flow_to_color

    vis_dir.mkdir(parents=True, exist_ok=True)  # the user's folder (BenchConfig checked its files)
    scale = max(float(np.sqrt((pair.flow[pair.valid] ** 2).sum(-1)).max()) if pair.valid.any() else 1.0, 1.0)
    frame = cv2.cvtColor(pair.prev, cv2.COLOR_GRAY2RGB)
    row = np.concatenate([frame, flow_to_color(pair.flow, scale), flow_to_color(est, scale)], axis=1)
    path = vis_dir / f"flow_{name}_{pair.name}.png"
    # encoded in memory and written atomically by Python: imwrite reports a failed write (full disk,
    # no permission) with False only, and would follow a symlink put in the file's place
    ok, png = cv2.imencode(".png", cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"cannot encode the visualization {path}")
    write_bytes_atomic(path, png.tobytes())
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

"""Measuring one flow backend, or one flow encoding, on pairs with known flow (for ``bench-flow``).

:func:`run_backend` builds a backend, runs it over the pairs (one untimed warm-up call, then
``repeats`` timed passes of :meth:`FlowBackend.calc` alone, wall and thread CPU time) and gives a
:class:`~flowprep.flow.bench_report.BackendResult`: end-point errors (:func:`epe`, pixels) in all,
per group of pairs and per band of true motion (:func:`by_motion`), pairs per second and the hours
that speed implies for HMDB5 on :func:`cpu_cores`. :func:`encoding_error` measures what writing the
true flow as 8-bit images (PNG or JPEG) and reading it back adds. :mod:`flowprep.flow.bench` chooses
the pairs and backends and runs these; ``flowprep doctor`` runs :func:`run_backend` on its own pairs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowprep.flow import registry
from flowprep.flow.bench_report import (
    HMDB5_PAIRS,
    MAXRAD_NOTE,
    MOTION_BINS,
    BackendResult,
    EncodingResult,
    write_visualization,
)
from flowprep.flow.encoding import FlowEncoding
from flowprep.flow.pairs import FlowPair


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


def cpu_cores() -> int:
    """The cores this process may run on (its affinity mask, else all of the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1

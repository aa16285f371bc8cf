"""Doctor checks of optical flow on the GPU: NVOF accuracy and speed on warped real frames, VPI on a Jetson.

NVOF accuracy: real frames (the carphone clip when present, else textures) warped by known smooth
fields of 2-30 px (quick: 2 and 5 px, 128x96); end-point error (EPE) per grid and preset must be
<= :data:`NVOF_MAX_EPE` px and the flow must point the right way (its projection on the true flow
>= half the true flow's squared length, averaged). NVOF speed: pairs/s at 320x240 and 1920x1080
(reported, no threshold).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flowprep.doctor.checks.common import Numbers, need
from flowprep.doctor.framework import CheckFailed, DoctorContext, Skip
from flowprep.errors import BackendNotInstalledError, BackendUnavailableError

NVOF_MAX_EPE = 1.5
PRESETS = ("slow", "medium", "fast")


def _sign_ok(flow: np.ndarray, pair: Any) -> bool:
    dot = (flow * pair.flow).sum(-1)[pair.valid].mean()
    return bool(dot >= 0.5 * (pair.flow**2).sum(-1)[pair.valid].mean())


def check_nvof_accuracy(ctx: DoctorContext) -> tuple[str, Numbers]:
    from flowprep.flow.bench_measure import run_backend
    from flowprep.flow.nvof import NvofBackend
    from flowprep.flow.pairs import synthetic_pairs

    grids = need(ctx.nvof_grids, "no optical-flow engine found by the engine check")
    size, mags = ((128, 96), (2.0, 5.0)) if ctx.quick else ((320, 240), (2.0, 5.0, 10.0, 20.0, 30.0))
    pairs, source = synthetic_pairs(size, mags, per_magnitude=1)
    numbers: Numbers = {"frames": source, "size": f"{size[0]}x{size[1]}", "epe_limit": NVOF_MAX_EPE}
    worst = 0.0
    for grid in grids:
        for preset in PRESETS[:1] if ctx.quick else PRESETS:
            res, _ = run_backend("nvof", pairs, {"grid": grid, "preset": preset, "path": "ctypes"}, strict=True)
            numbers[f"grid{grid}-{preset}"] = {
                "epe": round(res.epe_mean, 3),
                "pairs_per_s": round(res.fps, 1),
                "epe_by_px": {k: round(v, 3) for k, v in res.epe_by_magnitude.items()},
            }
            worst = max(worst, res.epe_mean)
    backend = NvofBackend(grid=grids[0], path="ctypes")
    try:
        numbers["sign_ok"] = all(_sign_ok(backend.calc(p.prev, p.nxt), p) for p in pairs)
    finally:
        backend.close()
    # which frames were warped: the carphone clip exists only beside a developer checkout
    detail = (
        f"worst EPE {worst:.2f} px (limit {NVOF_MAX_EPE}), sign {'right' if numbers['sign_ok'] else 'WRONG'}, "
        f"on {Path(source).name} frames"
    )
    if worst > NVOF_MAX_EPE or not numbers["sign_ok"]:
        raise CheckFailed(detail, numbers)
    return detail, numbers


def check_nvof_speed(ctx: DoctorContext) -> tuple[str, Numbers]:
    from flowprep.flow.bench_measure import run_backend
    from flowprep.flow.pairs import synthetic_pairs

    need(ctx.nvof_grids, "no optical-flow engine found by the engine check")
    numbers: Numbers = {}
    for size in [(320, 240)] + ([] if ctx.quick else [(1920, 1080)]):
        pairs, _ = synthetic_pairs(size, (5.0,), per_magnitude=3)
        res, _ = run_backend("nvof", pairs, {"path": "ctypes"}, strict=True)
        numbers[f"{size[0]}x{size[1]}"] = round(res.fps, 1)
    return ", ".join(f"{k}: {v} pairs/s" for k, v in numbers.items()) + " (preset slow, grid 1)", numbers


def check_vpi(ctx: DoctorContext) -> tuple[str, Numbers]:
    from flowprep.flow.bench_measure import run_backend
    from flowprep.flow.pairs import synthetic_pairs
    from flowprep.flow.vpi import VpiBackend

    try:
        where = VpiBackend.probe()
    except (BackendNotInstalledError, BackendUnavailableError) as exc:
        raise Skip(str(exc)) from exc
    pairs, _ = synthetic_pairs((320, 240), (2.0, 5.0, 10.0), per_magnitude=1)
    res, _ = run_backend("vpi", pairs, strict=True)
    numbers = {"device": where, "epe": round(res.epe_mean, 3), "pairs_per_s": round(res.fps, 1)}
    if res.epe_mean > NVOF_MAX_EPE:
        raise CheckFailed(f"VPI EPE {res.epe_mean:.2f} px > {NVOF_MAX_EPE}", numbers)
    return f"VPI dense flow on {where}: EPE {res.epe_mean:.2f} px", numbers

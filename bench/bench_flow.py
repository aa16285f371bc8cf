"""Benchmark of the flow backends: ``python bench/bench_flow.py [out.json] [--pair F1 F2 GT.flo ...]``.

Two runs, one OpenCV thread (one build worker's view), both saved as JSON with their tables printed:

1. ``flowprep bench-flow``'s defaults: 320x240 carphone frames warped by smooth fields of 2..30 px
   (``out.json``, plot ``out.png``, colour-wheel images in ``flow_vis/``);
2. the goal check of the ``dis-fine`` preset (issue 20) on pairs it was not tuned on: the 18 held-out
   layered scenes of ``bench-flow --scenes 6`` (object over background, occlusion, noise; motion
   1-20 px) plus any ``--pair`` with ground truth, every backend, median of 3 timed passes
   (``out_goal.json``, frontier plot ``out_goal.png``). The goal is stated as ratios to
   ``tvl1-fast`` measured in the same run, so machine load mostly cancels out: EPE at most 0.88x
   tvl1-fast's, speed at least 20x; pairs/s per core (goal >= 50) is printed too, with the load.

The tables in docs/flow.md come from this.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from flowprep.errors import FlowprepError
from flowprep.flow.bench import BenchConfig, bench, bench_flow
from flowprep.flow.bench_report import BenchResult, format_table
from flowprep.flow.pairs import DEFAULT_VIDEO
from flowprep.limits import json_safe

#: issue 20's goal for dis-fine against tvl1-fast
EPE_RATIO_GOAL = 0.88
SPEED_RATIO_GOAL = 20.0
PAIRS_PER_SECOND_GOAL = 50.0
#: pairs per second per core of tvl1-fast on the machine issue 20 measured on (its table): 50 pairs/s
#: there is its "20x tvl1-fast"
ISSUE_BASELINE_PAIRS_PER_SECOND = 2.4


def goal_lines(
    result: BenchResult,
    small: BenchResult | None = None,
    footage: dict[str, float] | None = None,
    preset: str = "dis-fine",
    baseline: str = "tvl1-fast",
) -> list[str]:
    """The goal check: ``preset`` against ``baseline`` on every pair, then on each ``--pair`` alone.

    The speed verdicts use the first of: ``footage`` (pairs per CPU-second of each backend on
    consecutive frames of real footage at 320x240, :func:`footage_speed`: what a build computes),
    ``small`` (a run on 320x240 synthetic warps), ``result`` (pairs of mixed sizes); the others are
    printed beside. They differ because TV-L1 stops iterating once converged, sooner on smooth warps.
    """
    rows = {b.name: b for b in result.backends}
    p, b = rows.get(preset), rows.get(baseline)
    if p is None or b is None or not (p.available and b.available):
        return [f"goal check: {preset} or {baseline} did not run"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT MET"

    epe_ratio = p.epe_mean / b.epe_mean
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"goal check, {preset} against {baseline} in this run ({p.pairs} held-out pairs):",
        f"  EPE {p.epe_mean:.3f} vs {b.epe_mean:.3f} px: {epe_ratio:.2f}x (goal <= {EPE_RATIO_GOAL}x): "
        + verdict(epe_ratio <= EPE_RATIO_GOAL),
    ]
    # speeds per CPU-second of the measuring thread: what a core does when it is not shared; the
    # wall-clock figures are printed too (they include waiting for a core on a busy machine)
    speeds: list[tuple[str, float, float]] = []
    if footage and preset in footage and baseline in footage:
        speeds.append(("on consecutive frames of the clip at 320x240", footage[preset], footage[baseline]))
    small_rows = {r.name: r for r in small.backends} if small is not None else {}
    sp, sb = small_rows.get(preset), small_rows.get(baseline)
    if sp is not None and sb is not None and sp.available and sb.available:
        speeds.append((f"on the first run's {sp.pairs} synthetic warps at 320x240", sp.cpu_fps, sb.cpu_fps))
    speeds.append((f"on these {p.pairs} pairs (mixed sizes)", p.cpu_fps, b.cpu_fps))
    where, mine, theirs = speeds[0]
    lines += [
        f"  speed {where}: {mine:.1f} vs {theirs:.2f} pairs per CPU-second: {mine / theirs:.1f}x "
        f"(goal >= {SPEED_RATIO_GOAL:g}x): " + verdict(mine / theirs >= SPEED_RATIO_GOAL),
        f"  {preset} pairs per CPU-second on one core {where}: {mine:.1f} (goal >= "
        f"{PAIRS_PER_SECOND_GOAL:g}): " + verdict(mine >= PAIRS_PER_SECOND_GOAL),
        # the absolute figure depends on the machine; scaled by the baseline's speed it is comparable
        f"    (issue 20's machine ran {baseline} at {ISSUE_BASELINE_PAIRS_PER_SECOND:g} pairs/s, this one at "
        f"{theirs:.2f}: there {preset} would run about {mine * ISSUE_BASELINE_PAIRS_PER_SECOND / theirs:.0f})",
    ]
    lines += [f"  speed {w}: {m:.1f} vs {t:.2f} pairs per CPU-second: {m / t:.1f}x" for w, m, t in speeds[1:]]
    lines.append(
        f"  wall clock: {p.fps:.1f} vs {b.fps:.2f} pairs/s ({p.fps / b.fps:.1f}x) with a 1-minute load average "
        f"of {load:.1f} on {result.cores} core(s)"
    )
    missed = []
    named = [name for name in p.epe_by_magnitude if not name.startswith("scene ")]
    for name in named:
        mine, theirs = p.epe_by_magnitude[name], b.epe_by_magnitude.get(name, float("nan"))
        ratio = mine / theirs
        if not ratio <= EPE_RATIO_GOAL:
            missed.append(name)
        lines.append(f"  pair {name}: EPE {mine:.3f} vs {theirs:.3f} px: {ratio:.3f}x")
    if named:
        lines.append(
            f"  pairs within the EPE goal: {len(named) - len(missed)} of {len(named)}"
            + (f" (not: {', '.join(missed)})" if missed else "")
        )
    return lines


def footage_speed(
    video: Path, backends: Sequence[str], pairs: int = 12, size: tuple[int, int] = (320, 240), repeats: int = 3
) -> dict[str, float]:
    """Pairs per CPU-second of each backend on ``pairs`` consecutive-frame pairs of ``video``.

    Frames 10k and 10k + 1 (gray, resized to ``size``), one OpenCV thread; the median of
    ``repeats`` timed passes after one untimed call. No true flow is needed: speed only. An
    unreadable video or a backend that cannot run here gives an empty result or leaves it out."""
    import cv2

    from flowprep.flow import registry
    from flowprep.video.decode import iter_frames

    frames: list[np.ndarray] = []
    try:
        for i, rgb in enumerate(iter_frames(video, size=size, name=str(video))):
            if i % 10 in (0, 1):
                frames.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
            if len(frames) >= 2 * pairs:
                break
    except FlowprepError as exc:  # DecodeError: missing, unreadable or not a video
        print(f"footage speed: cannot decode {video} ({exc}); skipped")
        return {}
    couples = [(frames[k], frames[k + 1]) for k in range(0, len(frames) - 1, 2)]
    if not couples:
        return {}
    cv2.setNumThreads(1)
    out = {}
    for name in backends:
        try:
            backend = registry.create_backend(name)
        except FlowprepError as exc:
            print(f"footage speed: {name} not run ({exc})")
            continue
        try:
            backend.calc(*couples[0])
            runs = []
            for _ in range(repeats):
                t0 = time.thread_time()
                for prev, nxt in couples:
                    backend.calc(prev, nxt)
                runs.append(len(couples) / max(time.thread_time() - t0, 1e-9))
        finally:
            backend.close()
        out[name] = float(np.median(runs))
        print(f"footage speed: {name} {out[name]:.2f} pairs per CPU-second ({len(couples)} pairs of {video.name})")
    return out


def pairs_in(folder: Path) -> list[list[Path]]:
    """The ``[frame1, frame2, flo]`` triplets of ``folder``'s sub-folders, sorted by name."""
    if not folder.is_dir():
        raise SystemExit(f"--pairs-dir {folder}: not a folder")
    found = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        triplet = [sub / f"{sub.name}.png", sub / f"{sub.name}_2.png", sub / f"{sub.name}.flo"]
        if all(p.is_file() for p in triplet):
            found.append(triplet)
    if not found:
        raise SystemExit(f"--pairs-dir {folder}: no sub-folder NAME with NAME.png, NAME_2.png and NAME.flo")
    return found


def _save(result: BenchResult, path: Path) -> None:
    path.write_text(json.dumps(json_safe(result.to_dict()), indent=2, allow_nan=False))
    print(format_table(result))
    print(f"wrote {path}\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="flow backends benchmark and dis-fine's goal check")
    ap.add_argument("out", nargs="?", type=Path, default=Path("bench_flow.json"))
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="frames to warp (default: the carphone clip)")
    ap.add_argument("--pair", nargs=3, action="append", type=Path, default=[], metavar=("F1", "F2", "GT"))
    ap.add_argument(
        "--pairs-dir",
        type=Path,
        help="every sub-folder NAME holding NAME.png, NAME_2.png and NAME.flo (what bench/real_pairs.py "
        "writes) is one more --pair; `make bench REAL_PAIRS=DIR` passes it",
    )
    args = ap.parse_args(argv)
    if args.pairs_dir is not None:
        args.pair += pairs_in(args.pairs_dir)
    out: Path = args.out
    # three timed passes: this run's speeds decide the goal's speed verdict (320x240)
    small = bench_flow(video=args.video, plot=out.with_suffix(".png"), vis_dir=out.parent / "flow_vis", repeats=3)
    _save(small, out)
    goal = out.with_name(out.stem + "_goal.json")
    result = bench(
        BenchConfig(
            # tvl1 (~1 pair/s) is in run 1; three passes over 18 scenes would take it ~3 more minutes
            ["tvl1-fast", "dis-fine", "dis", "farneback"],
            magnitudes=(),
            scenes=6,
            repeats=3,
            extra_pairs=args.pair,
            video=args.video,
            plot=goal.with_suffix(".png"),
        )
    )
    _save(result, goal)
    footage = footage_speed(args.video, ["dis-fine", "tvl1-fast"])
    print("\n".join(goal_lines(result, small, footage)))


if __name__ == "__main__":
    main()

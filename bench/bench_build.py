"""``make bench`` (build part): frames per second of the whole build per flow backend, against

* the bare flow kernel on the same frames (what the pipeline adds: decode, PNG/JPEG writes, commit),
* a plain single-process script doing the same work one clip at a time (bench/plain_script.py), once
  with OpenCV single-threaded and once with OpenCV's default threading.

Input: real footage (../shared/data/carphone_pristine.mp4, scaled to 320x240 like HMDB51) cut into
clips; synthetic clips if it is absent. All numbers come from one run on this machine, so the ratios
are what to read. Writes a table and ``<out>/bench_build.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARPHONE = ROOT.parent / "shared" / "data" / "carphone_pristine.mp4"


def make_input(folder: Path, clips: int, frames: int, size: tuple[int, int]) -> list[Path]:
    """``clips`` AVI clips of ``frames`` frames at ``size``, in two class folders."""
    from flowprep.synth import moving_frames, write_video
    from flowprep.video.decode import iter_frames

    if CARPHONE.is_file():
        source = list(iter_frames(CARPHONE, size=size))
    else:
        source = list(moving_frames(120, size[1], size[0], (2.0, 1.0), seed=0))
    paths = []
    for i in range(clips):
        start = (i * frames) % max(1, len(source) - frames)
        cls = folder / ("a" if i % 2 == 0 else "b")
        cls.mkdir(parents=True, exist_ok=True)
        path = cls / f"Clip{i}_{cls.name}_f_cm_np1_fr_med_0.avi"
        write_video(path, source[start : start + frames], codec="mpeg4")
        paths.append(path)
    return paths


def bare_kernel(videos: list[Path], backend_name: str) -> float:
    """Frames per second of the flow kernel alone (decoded gray frames in memory, OpenCV 1 thread)."""
    import cv2

    from flowprep.flow.registry import create_backend
    from flowprep.video.decode import iter_frames

    cv2.setNumThreads(1)
    grays = [[cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in iter_frames(v)] for v in videos]
    backend = create_backend(backend_name)
    n = sum(len(g) for g in grays)
    t0 = time.perf_counter()
    for g in grays:
        for a, b in zip(g[:-1], g[1:]):
            backend.calc(a, b)
    return n / (time.perf_counter() - t0)


def whole_build(release: Path, out: Path, backend_name: str, jobs: int) -> float:
    from flowprep.builder.api import build
    from flowprep.builder.config import BuildConfig

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    s = build(BuildConfig(source=release, out=out, flow=backend_name, jobs=jobs, progress=False))
    dt = time.perf_counter() - t0
    if not s.ok:
        raise SystemExit(f"bench build failed: {s.failed}")
    return sum(1 for _ in out.rglob("rgb/*.png")) / dt


def plain_script(videos: list[Path], out: Path, threads: int | None) -> float:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(ROOT / "bench" / "plain_script.py"), str(out), *map(str, videos)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    return res["frames"] / res["seconds"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--flow", action="append", help="backends (default: tvl1, tvl1-fast, dis, dis-fine, farneback)")
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.split("x"))
    backends = args.flow or ["tvl1", "tvl1-fast", "dis", "dis-fine", "farneback"]
    args.out.mkdir(parents=True, exist_ok=True)
    release = args.out / "release"
    shutil.rmtree(release, ignore_errors=True)
    videos = make_input(release, args.clips, args.frames, size)
    print(
        f"input: {len(videos)} clips x {args.frames} frames at {size[0]}x{size[1]} "
        f"({'carphone footage' if CARPHONE.is_file() else 'synthetic'}), {os.cpu_count()} cores"
    )
    rows = []
    for name in backends:
        row = {"backend": name, "kernel_fps": bare_kernel(videos, name)}
        row["build_j1_fps"] = whole_build(release, args.out / f"build-{name}-j1", name, 1)
        row["build_j2_fps"] = whole_build(release, args.out / f"build-{name}-j2", name, 2)
        row["j1_vs_kernel"] = row["build_j1_fps"] / row["kernel_fps"]
        if name == "tvl1":
            row["script_1thread_fps"] = plain_script(videos, args.out / "script-1", 1)
            row["script_default_fps"] = plain_script(videos, args.out / "script-default", None)
            row["j2_vs_script_1thread"] = row["build_j2_fps"] / row["script_1thread_fps"]
            row["j2_vs_script_default"] = row["build_j2_fps"] / row["script_default_fps"]
        rows.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    print()
    print(f"{'backend':<10} {'kernel':>8} {'-j 1':>8} {'-j 2':>8} {'-j1/kernel':>10}  (frames/s)")
    for r in rows:
        print(
            f"{r['backend']:<10} {r['kernel_fps']:>8.1f} {r['build_j1_fps']:>8.1f} {r['build_j2_fps']:>8.1f} "
            f"{r['j1_vs_kernel']:>10.2f}"
        )
    tv = next((r for r in rows if r["backend"] == "tvl1"), None)
    if tv:
        print(
            f"plain script (TV-L1): 1 thread {tv['script_1thread_fps']:.2f} fps, default threads "
            f"{tv['script_default_fps']:.2f} fps; flowprep -j 2 = {tv['j2_vs_script_1thread']:.2f}x the "
            f"1-thread script, {tv['j2_vs_script_default']:.2f}x the default-threaded one"
        )
    (args.out / "bench_build.json").write_text(
        json.dumps(
            {"size": size, "clips": args.clips, "frames": args.frames, "cores": os.cpu_count(), "rows": rows}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

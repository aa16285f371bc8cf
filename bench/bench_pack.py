"""``make bench`` (packing part): folder vs packed output of one HMDB5-shaped build, in one run.

    python bench/bench_pack.py [--out bench-out] [--clips 1135] [--frames 75] [--flow dis] [-j 2]

Input: HMDB5's shape — five classes, ``--clips`` clips (HMDB5 has 1,135) of ``--frames`` frames
(its mean is 75) at 320x240 — cut from real footage (../shared/data/carphone_pristine.mp4; synthetic
texture if absent), so PNG and JPEG sizes are those of camera images, not of flat test patterns.

Measured, all in this run on this machine:

* files and bytes of the dataset (everything but the ``.flowprep/`` build state);
* wall time of ``flowprep build`` without and with ``--pack webdataset`` (same flow backend; the
  fastest CPU one by default, so packing's share of the time is the largest it gets), and the
  packing step's own seconds; ``flowprep pack`` of the folder build;
* clips/s the training loader reads (``ClipDataset``: random access, folder and packed;
  ``ShardStream``: sequential shards), joint RGB + flow, 8 frames at 112x112, batch 8, one epoch
  of the train side after one warm-up epoch (the page cache holds both datasets: a cluster file
  system's metadata cost, which packing removes, is not in these numbers).

Writes a table and ``<out>/bench_pack.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARPHONE = ROOT.parent / "shared" / "data" / "carphone_pristine.mp4"
CLASSES = ["push", "fall_floor", "walk", "run", "ride_bike"]


def make_release(folder: Path, clips: int, frames: int, size: tuple[int, int]) -> int:
    """``clips`` AVI clips in five class folders, HMDB-style names (two clips per source video)."""
    from flowprep.synth import moving_frames, write_video
    from flowprep.video.decode import iter_frames

    if CARPHONE.is_file():
        source = list(iter_frames(CARPHONE, size=size))
    else:
        source = list(moving_frames(300, size[1], size[0], (2.0, 1.0), seed=0))
    for i in range(clips):
        cls = CLASSES[i % len(CLASSES)]
        start = (i * 37) % max(1, len(source) - frames)
        seq = source[start : start + frames]
        if i % 2:  # mirrored: not every clip of a class the same images
            seq = [f[:, ::-1].copy() for f in seq]
        (folder / cls).mkdir(parents=True, exist_ok=True)
        write_video(folder / cls / f"Source{i // 10}_{cls}_u_cm_np1_fr_med_{i}.avi", seq, codec="mpeg4")
    return clips


def census(root: Path) -> tuple[int, int]:
    """``(files, bytes)`` of a dataset, its ``.flowprep/`` build state left out."""
    files = size = 0
    for dirpath, dirnames, names in os.walk(root):
        if Path(dirpath) == root and ".flowprep" in dirnames:
            dirnames.remove(".flowprep")
        files += len(names)
        size += sum(os.path.getsize(os.path.join(dirpath, n)) for n in names)
    return files, size


def timed_build(release: Path, out: Path, flow: str, jobs: int, pack: str | None, shard_size: int) -> dict:
    from flowprep.builder.api import build
    from flowprep.builder.config import BuildConfig

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    s = build(
        BuildConfig(
            source=release, out=out, flow=flow, jobs=jobs, progress=False, pack=pack, shard_size=shard_size, seed=0
        )
    )
    wall = time.perf_counter() - t0
    if not s.ok:
        raise SystemExit(f"bench build failed: {s.failed[:3]}")
    files, size = census(out)
    return {"seconds": wall, "pack_seconds": s.pack_seconds, "frames": s.frames, "files": files, "bytes": size}


def loader_rate(dataset, workers: int) -> float:
    """Clips per second of one epoch through a DataLoader (after a warm-up epoch)."""
    from torch.utils.data import DataLoader

    from flowprep.loader.torchdata import ShardStream

    kw = {"batch_size": 8, "num_workers": workers}
    if not isinstance(dataset, ShardStream):
        kw["shuffle"] = True
    rate = 0.0
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        n, t0 = 0, time.perf_counter()
        for _, labels in DataLoader(dataset, **kw):
            n += len(labels)
        rate = n / (time.perf_counter() - t0)
    return rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--clips", type=int, default=1135)
    ap.add_argument("--frames", type=int, default=75)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--flow", default="dis")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--shard-size", type=int, default=1 << 30)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers for the loader rates")
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.split("x"))
    work = args.out / "pack"
    release = work / "release"
    shutil.rmtree(release, ignore_errors=True)
    make_release(release, args.clips, args.frames, size)
    print(f"input: {args.clips} clips x {args.frames} frames at {args.size}, flow {args.flow}, -j {args.jobs}")
    folder = timed_build(release, work / "folder", args.flow, args.jobs, None, args.shard_size)
    packed = timed_build(release, work / "packed", args.flow, args.jobs, "webdataset", args.shard_size)
    from flowprep.builder.convert import pack_dataset

    shutil.rmtree(work / "converted", ignore_errors=True)
    t0 = time.perf_counter()
    pack_dataset(work / "folder", work / "converted", args.shard_size)
    convert_s = time.perf_counter() - t0

    import torch

    from flowprep.loader.torchdata import ClipDataset, ShardStream

    torch.set_num_threads(1)
    kw = {"frames": 8, "size": 112, "seed": 0}
    rates = {
        "folder ClipDataset": loader_rate(ClipDataset(work / "folder", "train", "joint", **kw), args.workers),
        "packed ClipDataset": loader_rate(ClipDataset(work / "packed", "train", "joint", **kw), args.workers),
        "packed ShardStream": loader_rate(ShardStream(work / "packed", "train", "joint", **kw), args.workers),
    }
    result = {
        "clips": args.clips,
        "frames_per_clip": args.frames,
        "size": args.size,
        "flow": args.flow,
        "jobs": args.jobs,
        "cores": os.cpu_count(),
        "shard_size": args.shard_size,
        "folder": folder,
        "packed": packed,
        "pack_command_seconds": convert_s,
        "loader_clips_per_s": rates,
        "files_ratio": folder["files"] / packed["files"],
        "build_time_ratio": packed["seconds"] / folder["seconds"],
        "shardstream_vs_folder": rates["packed ShardStream"] / rates["folder ClipDataset"],
        "indexed_vs_folder": rates["packed ClipDataset"] / rates["folder ClipDataset"],
    }
    (args.out / "bench_pack.json").write_text(json.dumps(result, indent=2))
    print(f"{'':<22} {'folder':>12} {'packed':>12} {'ratio':>8}")
    print(f"{'files':<22} {folder['files']:>12,} {packed['files']:>12,} {result['files_ratio']:>7.0f}x fewer")
    print(f"{'bytes':<22} {folder['bytes']:>12,} {packed['bytes']:>12,} {packed['bytes'] / folder['bytes']:>8.4f}")
    print(
        f"{'build seconds':<22} {folder['seconds']:>12.1f} {packed['seconds']:>12.1f} "
        f"{result['build_time_ratio']:>8.3f}"
        f"  (packing step {packed['pack_seconds']:.1f} s; `flowprep pack` of the folder build {convert_s:.1f} s)"
    )
    for name, r in rates.items():
        print(f"loader {name:<20} {r:>8.1f} clips/s")
    print(
        f"loader, packed / folder: ShardStream {result['shardstream_vs_folder']:.2f}x, "
        f"ClipDataset {result['indexed_vs_folder']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

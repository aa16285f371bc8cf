"""Build a dataset from your own videos, arranged as one folder per class.

    my_videos/
      wave/clip001.mp4 ...
      clap/take_2.avi ...

    python examples/own_dataset.py my_videos --out data/mine --classes wave,clap --flow tvl1-fast

The same as ``flowprep build my_videos --out data/mine ...``, through the Python API, which is what
to call from your own scripts or notebooks. A zip/tar/RAR of such folders works as the source too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import flowprep


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, nargs="?", help="class-folder videos (default: a generated sample)")
    ap.add_argument("--out", type=Path, default=Path("data/own"))
    ap.add_argument("--classes", default=None)
    ap.add_argument("--flow", default="tvl1-fast")
    ap.add_argument("--short-side", type=int, default=None)
    args = ap.parse_args()
    source = args.source
    if source is None:
        source = args.out.parent / "own-sample"
        if not source.is_dir():
            flowprep.make_release_folder(
                source,
                {"wave": (1.0, -1.0), "clap": (0.0, 1.5)},
                sources_per_class=4,
                clips_per_source=2,
                frames=12,
                height=96,
                width=128,
                with_splits=False,
            )
    cfg = flowprep.BuildConfig(
        source=source,
        out=args.out,
        classes=args.classes.split(",") if args.classes else None,
        flow=args.flow,
        modality="both",
        layout="tao",
        encoding=flowprep.FlowEncoding(mode="fixed", bound=20.0, image_format="jpg", jpeg_quality=95),
        val_ratio=0.1,
        seed=0,
        split_by="group",
        short_side=args.short_side,
    )
    try:
        summary = flowprep.build(cfg, on_plan=lambda plan: print(plan.counts()))
        report = flowprep.verify(args.out)
    except flowprep.FlowprepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for cls, row in report.rows.items():
        print(f"{cls:<12} train {row['train']:>4}  val {row['val']:>4}  frames {row['frames']:>6}")
    print(f"total: {report.clips_checked} clips checked, {len(report.problems)} problem(s)")
    for problem in report.problems:
        print(f"problem: {problem}", file=sys.stderr)
    for clip_id, why in summary.failed:
        print(f"failed: {clip_id}: {why}", file=sys.stderr)
    return 0 if summary.ok and not report.problems else 1


if __name__ == "__main__":
    sys.exit(main())

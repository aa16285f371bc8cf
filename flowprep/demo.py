"""``make demo``: build HMDB5 from a small built-in HMDB51-shaped release, verify it, write a preview page.

The release is generated here (no download): procedurally textured clips whose motion direction
depends on the class, packed the way HMDB51 ships (``hmdb51_org.rar`` holding one RAR per class,
``test_train_splits.rar`` holding the split files), plus two classes HMDB5 does not select, to show
that only the selected ones are unpacked. Safe to run twice: the second run finds everything done.

    python -m flowprep.demo [--out demo-out] [--flow tvl1-fast]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowprep.synth import DEMO_CLASSES

__all__ = ["make_demo_release", "main"]


def make_demo_release(folder: Path) -> tuple[Path, Path]:
    """Write (once) the demo's ``hmdb51_org.rar`` and ``test_train_splits.rar`` into ``folder``."""
    from flowprep.archive.rar4 import make_hmdb51_rars
    from flowprep.fsio.owned import remove_inside
    from flowprep.synth import make_release_folder

    outer, splits = folder / "hmdb51_org.rar", folder / "test_train_splits.rar"
    if outer.is_file() and splits.is_file():
        return outer, splits
    unpacked = folder / "unpacked"
    remove_inside(folder, unpacked.name, (unpacked.name,))  # left by a run that was stopped
    make_release_folder(
        unpacked, DEMO_CLASSES, sources_per_class=5, clips_per_source=2, frames=16, height=96, width=128, seed=2024
    )
    result = make_hmdb51_rars(unpacked, folder)
    remove_inside(folder, unpacked.name, (unpacked.name,))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    parser.add_argument("--flow", default="tvl1-fast")
    parser.add_argument("-j", "--jobs", type=int, default=None)
    args = parser.parse_args(argv)
    from flowprep.cli import main as cli_main

    outer, splits = make_demo_release(args.out / "release")
    print(f"demo release: {outer} ({outer.stat().st_size // 1024} KiB), {splits}")
    steps = [
        ["stats", str(outer), "--classes", "walk,run,ride_bike,fall_floor,push"],
        [
            "build-hmdb5",
            "--archive",
            str(outer),
            "--splits",
            str(splits),
            "--out",
            str(args.out / "hmdb5"),
            "--flow",
            args.flow,
        ]
        + (["-j", str(args.jobs)] if args.jobs else []),
        ["verify", str(args.out / "hmdb5")],
        ["preview", str(args.out / "hmdb5"), "--out", str(args.out / "hmdb5-preview"), "--no-progress"],
    ]
    for step in steps:
        print(f"\n$ flowprep {' '.join(step)}", flush=True)
        try:
            cli_main(step)
        except SystemExit as exc:
            if exc.code not in (0, None):
                return int(exc.code)
    print(
        f"\ndone: the TAO-layout dataset is in {args.out / 'hmdb5'} "
        f"(record: flowprep.json, TAO spec snippet: tao_dataset_spec.yaml);\n"
        f"open {args.out / 'hmdb5-preview' / 'index.html'} in a browser to look at it"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

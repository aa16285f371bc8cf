"""CPU training throughput (clips/s) of `flowprep train` at small sizes.

    python bench/bench_train.py [--epochs 2] [--out bench_train.json]

Writes a synthetic TAO dataset (60 train clips of 16 frames, 64x80) to a temporary folder and
trains each configuration for ``--epochs`` epochs with one process; reports the training-pass
throughput of the last epoch (data loading included, ``--workers 0``, batch 8).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

CONFIGS = [
    # arch, modality, frames, input size
    ("2d", "of", 4, 32),
    ("2d", "of", 8, 64),
    ("2d", "rgb", 8, 64),
    ("3d", "of", 8, 64),
    ("2d", "joint", 8, 64),
    ("2d", "of", 32, 112),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from flowprep.train.config import TrainConfig
    from flowprep.train.loop import train
    from flowprep.train.synthdata import make_tao_dataset

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ds = Path(tmp) / "ds"
        make_tao_dataset(ds, train_per_class=12, val_per_class=2, frames=16, height=64, width=80)
        # 32-frame windows loop over the 15 flow frames (see flowprep.loader.sampling)
        for arch, modality, frames, size in CONFIGS:
            t0 = time.perf_counter()
            res = train(
                TrainConfig(
                    dataset=ds,
                    out=Path(tmp) / f"{arch}-{modality}-{frames}-{size}",
                    arch=arch,
                    modality=modality,
                    frames=frames,
                    input_size=size,
                    epochs=args.epochs,
                    batch_size=8,
                    workers=0,
                    progress=False,
                )
            )
            row = {
                "arch": arch,
                "modality": modality,
                "frames": frames,
                "input_size": size,
                "train_clips_per_s": round(res.clips_per_s, 1),
                "wall_s": round(time.perf_counter() - t0, 1),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    report = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor(),
        "cores": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "results": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

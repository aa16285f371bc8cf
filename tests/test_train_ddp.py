"""`torchrun --nproc_per_node 2` (gloo, CPU) trains one epoch and writes one checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from flowprep.train.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from flowprep.train.synthdata import make_tao_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    ds = tmp_path / "ds"
    make_tao_dataset(ds, train_per_class=3, val_per_class=1, frames=5, height=36, width=44)
    out = tmp_path / "run"
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        OMP_NUM_THREADS="1",
        CUDA_VISIBLE_DEVICES="",
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "flowprep",
        "train",
        str(ds),
        "--out",
        str(out),
        "--modality",
        "of",
        "--arch",
        "2d",
        "--frames",
        "2",
        "--input-size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--no-progress",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "log.jsonl"]
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["world_size"] == 2 and log[0]["epoch"] == 1
    ck = load_checkpoint(out / "last.pt")
    assert ck.epoch == 1 and ck.args["modality"] == "of"
    model_from_checkpoint(ck)
    # the summary line is printed once (rank 0)
    assert proc.stdout.count("best val top-1") == 1

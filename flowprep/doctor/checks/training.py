"""Doctor checks of the pipeline on the GPU: a multi-GPU NVOF build, CUDA training (AMP), DDP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowprep.doctor.checks.common import Numbers, need, run_flowprep
from flowprep.doctor.framework import CheckFailed, DoctorContext, Skip
from flowprep.fsio.reading import parse_json, read_text
from flowprep.layout.record import read_record

#: torchrun for 2 processes on this machine; --standalone picks a free rendezvous port (a static
#: launch uses 29500 and fails when another job holds it)
DDP_LAUNCH = ("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "flowprep")


def _torch_cuda() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise Skip(f"torch is not installed ({exc}); `pip install 'flowprep[train]'` with a CUDA build") from exc
    if not torch.cuda.is_available():
        raise Skip(f"torch {torch.__version__} sees no CUDA device (CPU build or no GPU)")
    return torch


def check_build(ctx: DoctorContext) -> tuple[str, Numbers]:
    from flowprep.archive.rar4 import make_hmdb51_rars
    from flowprep.synth import DEMO_CLASSES, make_release_folder

    need(ctx.nvof_grids, "no optical-flow engine found by the engine check")
    h, w = (48, 64) if ctx.quick else (96, 128)
    unpacked, rel = ctx.workdir / "unpacked", ctx.workdir / "release"
    make_release_folder(
        unpacked, DEMO_CLASSES, sources_per_class=2, clips_per_source=1, frames=8, height=h, width=w, seed=5
    )
    outer, splits = make_hmdb51_rars(unpacked, rel)
    jobs = max(2, len(ctx.gpus))
    out = ctx.workdir / "hmdb5"
    run_flowprep(
        "build-hmdb5",
        "--archive",
        str(outer),
        "--splits",
        str(splits),
        "--out",
        str(out),
        "--flow",
        "nvof",
        "--gpus",
        "all",
        "-j",
        str(jobs),
    )
    run_flowprep("verify", str(out))
    ctx.dataset = out
    record = read_record(out)
    return f"build-hmdb5 --flow nvof --gpus all -j {jobs} and verify passed", {
        "jobs": jobs,
        "gpus": len(ctx.gpus),
        "flow_device": record.flow.device if record.flow else "",
    }


def _train_args(dataset: Path, out: Path, arch: str) -> list[str]:
    return [
        "train",
        str(dataset),
        "--out",
        str(out),
        "--arch",
        arch,
        "--modality",
        "rgb",
        "--frames",
        "8",
        "--input-size",
        "112",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--workers",
        "2",
        "--device",
        "cuda",
        "--amp",
        "--lr-steps",
        "",
        "--no-progress",
    ]


def check_train_cuda(ctx: DoctorContext) -> tuple[str, Numbers]:
    import time

    _torch_cuda()
    dataset = need(ctx.dataset, "needs the dataset of the build check")
    numbers: Numbers = {}
    for arch in ("2d", "3d"):
        t0 = time.perf_counter()
        run_flowprep(*_train_args(dataset, ctx.workdir / f"train-{arch}", arch))
        numbers[f"{arch}_epoch_s"] = round(time.perf_counter() - t0, 1)
    ctx.checkpoint = ctx.workdir / "train-2d" / "last.pt"
    return "one AMP epoch each of a 2D and a 3D model on CUDA", numbers


def _logged_world_size(log_path: Path) -> int:
    """``world_size`` of the last epoch in a training run's ``log.jsonl`` (0 when there is none)."""
    from flowprep.train.loop import MAX_LOG_BYTES  # torch: the DDP check has it

    if not log_path.is_file():
        return 0
    lines = read_text(log_path, what="training log", max_bytes=MAX_LOG_BYTES, owned=True).splitlines()
    return int(parse_json(lines[-1], where=f"training log {log_path}").get("world_size", 0)) if lines else 0


def check_ddp(ctx: DoctorContext) -> tuple[str, Numbers]:
    torch = _torch_cuda()
    n = torch.cuda.device_count()
    if n < 2:
        raise Skip(f"DDP needs 2 GPUs, torch sees {n}")
    dataset = need(ctx.dataset, "needs the dataset of the build check")
    out = ctx.workdir / "train-ddp"
    run_flowprep(*_train_args(dataset, out, "2d"), module=DDP_LAUNCH)
    # exit 0 alone does not prove DDP: without torchrun's environment each process trains alone
    world = _logged_world_size(out / "log.jsonl")
    if world != 2:
        raise CheckFailed(f"the DDP run trained with world size {world}, not 2", {"world_size": world})
    return "2-process NCCL DDP epoch", {"processes": 2, "world_size": world}

"""The doctor's checks, one small function per GPU claim, listed in :data:`CHECKS` (run in order).

By subject: :mod:`.gpu` (driver, GPUs, optical-flow engine), :mod:`.flow` (NVOF accuracy and speed,
VPI), :mod:`.training` (multi-GPU build, CUDA training, DDP), :mod:`.deploy` (TensorRT, ONNX Runtime
CUDA, ``infer``); :mod:`.common` holds what they share. Each module's docstring gives its numbers
and pass criteria. A check's later neighbours use what it found (:class:`DoctorContext`), so the
order of :data:`CHECKS` matters.
"""

from __future__ import annotations

from flowprep.doctor.checks.deploy import check_infer_cuda, check_ort_cuda, check_tensorrt
from flowprep.doctor.checks.flow import check_nvof_accuracy, check_nvof_speed, check_vpi
from flowprep.doctor.checks.gpu import check_driver, check_gpus, check_nvof_engine
from flowprep.doctor.checks.training import check_build, check_ddp, check_train_cuda
from flowprep.doctor.framework import Check

CHECKS: list[Check] = [
    Check("driver", check_driver, 10, "NVIDIA driver and its CUDA version"),
    Check("gpus", check_gpus, 10, "GPUs, names, compute capability"),
    Check("nvof-engine", check_nvof_engine, 30, "optical-flow engine and its grid sizes, per GPU"),
    Check("nvof-accuracy", check_nvof_accuracy, 60, "NVOF EPE per grid and preset on warped real frames, sign"),
    Check("nvof-speed", check_nvof_speed, 45, "NVOF pairs/s at 320x240 and 1920x1080"),
    Check("build", check_build, 60, "build-hmdb5 --flow nvof --gpus all -j N, then verify"),
    Check("train-cuda", check_train_cuda, 90, "one AMP epoch of a 2D and a 3D model on CUDA"),
    Check("ddp", check_ddp, 60, "DDP (NCCL) with 2 processes when >= 2 GPUs"),
    Check("tensorrt", check_tensorrt, 180, "export --fp16 --engine; engine vs ONNX Runtime"),
    Check("ort-cuda", check_ort_cuda, 30, "ONNX Runtime CUDA provider parity with CPU"),
    Check("infer-cuda", check_infer_cuda, 30, "flowprep infer on CUDA"),
    Check("vpi", check_vpi, 30, "VPI dense flow on a Jetson"),
]

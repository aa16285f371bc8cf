"""Doctor checks of the machine: the NVIDIA driver, the GPUs, and each GPU's optical-flow engine."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from typing import Any

from flowprep.doctor.checks.common import Numbers, need
from flowprep.doctor.framework import CheckFailed, DoctorContext, Skip
from flowprep.errors import BackendNotInstalledError, BackendUnavailableError


def _cuda_driver() -> Any:
    """cuda-bindings' driver module after ``cuInit``, or :class:`Skip` saying what is missing."""
    from flowprep.flow import nvof
    from flowprep.flow.nvof_session import cuda_result

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        raise Skip(f"no NVIDIA driver here ({exc})") from exc
    try:
        driver = nvof.import_cuda_driver()
    except BackendNotInstalledError as exc:
        raise Skip(str(exc)) from exc
    cuda_result(driver, driver.cuInit(0), "cuInit")
    return driver


def check_driver(ctx: DoctorContext) -> tuple[str, Numbers]:
    from flowprep.flow.nvof_session import cuda_result

    driver = _cuda_driver()
    v = int(cuda_result(driver, driver.cuDriverGetVersion(), "cuDriverGetVersion"))
    numbers: Numbers = {"cuda_driver_api": f"{v // 1000}.{v % 1000 // 10}"}
    smi = shutil.which("nvidia-smi")
    if smi:
        out = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            numbers["driver"] = out.stdout.split()[0]
    return f"CUDA driver API {numbers['cuda_driver_api']}", numbers


def check_gpus(ctx: DoctorContext) -> tuple[str, Numbers]:
    from flowprep.flow import nvof
    from flowprep.flow.nvof_session import cuda_result

    driver = _cuda_driver()
    count = int(cuda_result(driver, driver.cuDeviceGetCount(), "cuDeviceGetCount"))
    if count == 0:
        raise CheckFailed("the driver sees no GPU (CUDA_VISIBLE_DEVICES, container --gpus)")
    for i in range(count):
        _, name, cc = nvof.device_info(driver, i)
        ctx.gpus.append({"index": i, "name": name, "compute": f"{cc[0]}.{cc[1]}"})
    return f"{count} GPU(s): " + ", ".join(f"{g['name']} (sm {g['compute']})" for g in ctx.gpus), {"gpus": ctx.gpus}


def check_nvof_engine(ctx: DoctorContext) -> tuple[str, Numbers]:
    from flowprep.flow.nvof import NvofBackend
    from flowprep.synth import texture

    need(ctx.gpus, "no GPU found by the GPU check")
    frame = texture(64, 64, 0)[..., 1].copy()
    numbers: Numbers = {}
    for g in ctx.gpus:
        try:
            backend = NvofBackend(grid=1, gpu=g["index"], path="ctypes")
        except BackendNotInstalledError as exc:
            raise Skip(str(exc)) from exc
        except BackendUnavailableError as exc:
            numbers[f"gpu{g['index']}"] = {"name": g["name"], "error": str(exc)}
            continue
        try:
            backend.calc(frame, frame)  # opens a session: the engine's caps are read there
            numbers[f"gpu{g['index']}"] = {"name": g["name"], "grids": backend.supported_grids}
        finally:
            backend.close()
    ok = [v for v in numbers.values() if "grids" in v]
    if not ok:
        raise CheckFailed("no GPU here has a usable optical-flow engine", numbers)
    ctx.nvof_grids = list(ok[0]["grids"])
    return f"optical-flow engine on {len(ok)} of {len(ctx.gpus)} GPU(s), grids {ctx.nvof_grids}", numbers

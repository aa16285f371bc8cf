"""The doctor's checks, one small function per GPU claim, listed in :data:`CHECKS` (run in order).

Numbers and pass criteria:

* NVOF accuracy: real frames (the carphone clip when present, else textures) warped by known smooth
  fields of 2-30 px (quick: 2 and 5 px, 128x96); end-point error (EPE) per grid and preset must be
  <= :data:`NVOF_MAX_EPE` px and the flow must point the right way (its projection on the true flow
  >= half the true flow's squared length, averaged).
* NVOF speed: pairs/s at 320x240 and 1920x1080 (reported, no threshold).
* TensorRT: engine output (fp16) vs ONNX Runtime on the CPU (fp32): class probabilities within
  :data:`TRT_PROB_TOL`, same top-1 class. ONNX Runtime CUDA vs CPU: within :data:`ORT_PROB_TOL`.
"""

from __future__ import annotations

import ctypes
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from flowprep.doctor.api import Check, CheckFailed, DoctorContext, Skip
from flowprep.errors import BackendNotInstalledError, BackendUnavailableError
from flowprep.layout.record import read_record

NVOF_MAX_EPE = 1.5
TRT_PROB_TOL = 0.02
ORT_PROB_TOL = 1e-3
#: ONNX Runtime providers that run on the GPU (the session reports the one it really uses first)
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
PRESETS = ("slow", "medium", "fast")
Numbers = dict[str, Any]
#: torchrun for 2 processes on this machine; --standalone picks a free rendezvous port (a static
#: launch uses 29500 and fails when another job holds it)
DDP_LAUNCH = ("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "flowprep")


# ------------------------------------------------------------------ helpers


def _run_cli(
    *args: str, timeout: float = 300, module: tuple[str, ...] = ("-m", "flowprep")
) -> subprocess.CompletedProcess[str]:
    """Run the flowprep CLI in a subprocess; the finished process, or :class:`CheckFailed` with its last error line."""
    res = subprocess.run([sys.executable, *module, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()] or [f"exit status {res.returncode}"]
        raise CheckFailed(f"`flowprep {args[0]}` failed: {lines[-1]}")
    return res


def _flowprep(*args: str, timeout: float = 300, module: tuple[str, ...] = ("-m", "flowprep")) -> str:
    """Run the flowprep CLI in a subprocess; its stdout (see :func:`_run_cli`)."""
    return _run_cli(*args, timeout=timeout, module=module).stdout


def _cuda_driver() -> Any:
    """cuda-bindings' driver module after ``cuInit``, or :class:`Skip` saying what is missing."""
    from flowprep.flow import nvof

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        raise Skip(f"no NVIDIA driver here ({exc})") from exc
    try:
        driver = nvof._import_cuda_driver()
    except BackendNotInstalledError as exc:
        raise Skip(str(exc)) from exc
    nvof._cu(driver, driver.cuInit(0), "cuInit")
    return driver


def _torch_cuda() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise Skip(f"torch is not installed ({exc}); `pip install 'flowprep[train]'` with a CUDA build") from exc
    if not torch.cuda.is_available():
        raise Skip(f"torch {torch.__version__} sees no CUDA device (CPU build or no GPU)")
    return torch


def _need(value: Any, why: str) -> Any:
    if not value:
        raise Skip(why)
    return value


# ------------------------------------------------------------------ driver, GPUs, engine


def check_driver(ctx: DoctorContext) -> tuple[str, Numbers]:
    from flowprep.flow.nvof import _cu

    driver = _cuda_driver()
    v = int(_cu(driver, driver.cuDriverGetVersion(), "cuDriverGetVersion"))
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

    driver = _cuda_driver()
    count = int(nvof._cu(driver, driver.cuDeviceGetCount(), "cuDeviceGetCount"))
    if count == 0:
        raise CheckFailed("the driver sees no GPU (CUDA_VISIBLE_DEVICES, container --gpus)")
    for i in range(count):
        _, name, cc = nvof._device_info(driver, i)
        ctx.gpus.append({"index": i, "name": name, "compute": f"{cc[0]}.{cc[1]}"})
    return f"{count} GPU(s): " + ", ".join(f"{g['name']} (sm {g['compute']})" for g in ctx.gpus), {"gpus": ctx.gpus}


def check_nvof_engine(ctx: DoctorContext) -> tuple[str, Numbers]:
    from flowprep.flow.nvof import NvofBackend
    from flowprep.synth import texture

    _need(ctx.gpus, "no GPU found by the GPU check")
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


# ------------------------------------------------------------------ NVOF on real frames


def _sign_ok(flow: np.ndarray, pair: Any) -> bool:
    dot = (flow * pair.flow).sum(-1)[pair.valid].mean()
    return bool(dot >= 0.5 * (pair.flow**2).sum(-1)[pair.valid].mean())


def check_nvof_accuracy(ctx: DoctorContext) -> tuple[str, Numbers]:
    from flowprep.flow.bench import run_backend
    from flowprep.flow.nvof import NvofBackend
    from flowprep.flow.pairs import synthetic_pairs

    grids = _need(ctx.nvof_grids, "no optical-flow engine found by the engine check")
    size, mags = ((128, 96), (2.0, 5.0)) if ctx.quick else ((320, 240), (2.0, 5.0, 10.0, 20.0, 30.0))
    pairs, source = synthetic_pairs(size, mags, per_magnitude=1)
    numbers: Numbers = {"frames": source, "size": f"{size[0]}x{size[1]}", "epe_limit": NVOF_MAX_EPE}
    worst = 0.0
    for grid in grids:
        for preset in PRESETS[:1] if ctx.quick else PRESETS:
            res, _ = run_backend("nvof", pairs, {"grid": grid, "preset": preset, "path": "ctypes"}, strict=True)
            numbers[f"grid{grid}-{preset}"] = {
                "epe": round(res.epe_mean, 3),
                "pairs_per_s": round(res.fps, 1),
                "epe_by_px": {k: round(v, 3) for k, v in res.epe_by_magnitude.items()},
            }
            worst = max(worst, res.epe_mean)
    backend = NvofBackend(grid=grids[0], path="ctypes")
    try:
        numbers["sign_ok"] = all(_sign_ok(backend.calc(p.prev, p.nxt), p) for p in pairs)
    finally:
        backend.close()
    # which frames were warped: the carphone clip exists only beside a developer checkout
    detail = (
        f"worst EPE {worst:.2f} px (limit {NVOF_MAX_EPE}), sign {'right' if numbers['sign_ok'] else 'WRONG'}, "
        f"on {Path(source).name} frames"
    )
    if worst > NVOF_MAX_EPE or not numbers["sign_ok"]:
        raise CheckFailed(detail, numbers)
    return detail, numbers


def check_nvof_speed(ctx: DoctorContext) -> tuple[str, Numbers]:
    from flowprep.flow.bench import run_backend
    from flowprep.flow.pairs import synthetic_pairs

    _need(ctx.nvof_grids, "no optical-flow engine found by the engine check")
    numbers: Numbers = {}
    for size in [(320, 240)] + ([] if ctx.quick else [(1920, 1080)]):
        pairs, _ = synthetic_pairs(size, (5.0,), per_magnitude=3)
        res, _ = run_backend("nvof", pairs, {"path": "ctypes"}, strict=True)
        numbers[f"{size[0]}x{size[1]}"] = round(res.fps, 1)
    return ", ".join(f"{k}: {v} pairs/s" for k, v in numbers.items()) + " (preset slow, grid 1)", numbers


# ------------------------------------------------------------------ build, training


def check_build(ctx: DoctorContext) -> tuple[str, Numbers]:
    from flowprep.archive.rar4 import make_hmdb51_rars
    from flowprep.synth import DEMO_CLASSES, make_release_folder

    _need(ctx.nvof_grids, "no optical-flow engine found by the engine check")
    h, w = (48, 64) if ctx.quick else (96, 128)
    unpacked, rel = ctx.workdir / "unpacked", ctx.workdir / "release"
    make_release_folder(
        unpacked, DEMO_CLASSES, sources_per_class=2, clips_per_source=1, frames=8, height=h, width=w, seed=5
    )
    outer, splits = make_hmdb51_rars(unpacked, rel)
    jobs = max(2, len(ctx.gpus))
    out = ctx.workdir / "hmdb5"
    _flowprep(
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
    _flowprep("verify", str(out))
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
    dataset = _need(ctx.dataset, "needs the dataset of the build check")
    numbers: Numbers = {}
    for arch in ("2d", "3d"):
        t0 = time.perf_counter()
        _flowprep(*_train_args(dataset, ctx.workdir / f"train-{arch}", arch))
        numbers[f"{arch}_epoch_s"] = round(time.perf_counter() - t0, 1)
    ctx.checkpoint = ctx.workdir / "train-2d" / "last.pt"
    return "one AMP epoch each of a 2D and a 3D model on CUDA", numbers


def _logged_world_size(log_path: Path) -> int:
    """``world_size`` of the last epoch in a training run's ``log.jsonl`` (0 when there is none)."""
    lines = log_path.read_text().splitlines() if log_path.is_file() else []
    return int(json.loads(lines[-1]).get("world_size", 0)) if lines else 0


def check_ddp(ctx: DoctorContext) -> tuple[str, Numbers]:
    torch = _torch_cuda()
    n = torch.cuda.device_count()
    if n < 2:
        raise Skip(f"DDP needs 2 GPUs, torch sees {n}")
    dataset = _need(ctx.dataset, "needs the dataset of the build check")
    out = ctx.workdir / "train-ddp"
    _flowprep(*_train_args(dataset, out, "2d"), module=DDP_LAUNCH)
    # exit 0 alone does not prove DDP: without torchrun's environment each process trains alone
    world = _logged_world_size(out / "log.jsonl")
    if world != 2:
        raise CheckFailed(f"the DDP run trained with world size {world}, not 2", {"world_size": world})
    return "2-process NCCL DDP epoch", {"processes": 2, "world_size": world}


# ------------------------------------------------------------------ export, inference


def _probabilities(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _random_inputs(deploy: Path, batch: int = 2) -> dict[str, np.ndarray]:
    from flowprep.train.model_record import MODEL_RECORD, read_model_record

    rec = read_model_record(deploy / MODEL_RECORD)
    rng = np.random.default_rng(0)
    return {n: rng.standard_normal((batch, *s)).astype(np.float32) for n, s in rec.input_shapes().items()}


def _deploy(ctx: DoctorContext, *extra: str) -> Path:
    ckpt = _need(ctx.checkpoint, "needs the model of the CUDA training check")
    out = ctx.workdir / ("deploy" + "-".join(("",) + extra).replace("--", "-"))
    if not (out / "model.onnx").is_file():
        _flowprep("export", str(ckpt), "-o", str(out), *extra, timeout=600)
    return out


def _trt_run(engine_path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Run a serialized engine once (TensorRT 10 tensor API, buffers as torch CUDA tensors)."""
    import tensorrt as trt
    import torch

    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:  # TensorRT returns None (and logs why) for a plan from another version or GPU
        raise CheckFailed(f"TensorRT cannot deserialize {engine_path.name} (see its log above)")
    context = engine.create_execution_context()
    keep = {}
    for name, arr in inputs.items():
        keep[name] = torch.from_numpy(arr).cuda()
        # both return False (and only log) on a bad name or a shape outside the engine's profile
        if not context.set_input_shape(name, tuple(arr.shape)):
            raise CheckFailed(f"TensorRT refused input {name!r} of shape {arr.shape}")
        if not context.set_tensor_address(name, keep[name].data_ptr()):
            raise CheckFailed(f"TensorRT refused the address of input {name!r}")
    out = torch.empty(tuple(context.get_tensor_shape("fc_pred")), dtype=torch.float32, device="cuda")
    context.set_tensor_address("fc_pred", out.data_ptr())
    stream = torch.cuda.current_stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise CheckFailed("TensorRT execute_async_v3 returned False")
    stream.synchronize()
    return out.cpu().numpy()


def check_tensorrt(ctx: DoctorContext) -> tuple[str, Numbers]:
    from flowprep.export.tensorrt import tensorrt_status
    from flowprep.serve.runner import OnnxRunner

    ok, why = tensorrt_status()
    if not ok:
        raise Skip(why)
    deploy = _deploy(ctx, "--fp16", "--engine")
    engine = _need(sorted(deploy.glob("*.engine")), f"export wrote no engine in {deploy}")[0]
    inputs = _random_inputs(deploy)
    ref = _probabilities(OnnxRunner(deploy / "model.onnx", ["CPUExecutionProvider"])(inputs))
    got = _probabilities(_trt_run(engine, inputs))
    diff = float(np.abs(ref - got).max())
    numbers = {
        "max_prob_diff": round(diff, 5),
        "tolerance": TRT_PROB_TOL,
        "top1_same": bool((ref.argmax(-1) == got.argmax(-1)).all()),
    }
    if diff > TRT_PROB_TOL or not numbers["top1_same"]:
        raise CheckFailed(f"fp16 engine differs from ONNX Runtime: {diff:.4f}", numbers)
    return f"fp16 engine agrees with ONNX Runtime (max prob diff {diff:.4f} <= {TRT_PROB_TOL})", numbers


def _ort_cuda() -> None:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise Skip(f"onnxruntime is not installed ({exc})") from exc
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise Skip("this onnxruntime has no CUDAExecutionProvider (`pip install onnxruntime-gpu`)")


def _ort_cuda_provider(ort_version: str) -> Any:
    """The CUDA provider entry for an fp32 parity check: ONNX Runtime runs fp32 GEMMs and convolutions in
    TF32 on Ampere and newer GPUs by default (``use_tf32``, an option since ONNX Runtime 1.18), which
    alone can exceed :data:`ORT_PROB_TOL`; older versions have no per-session switch."""
    major, minor = (int(p) for p in ort_version.split(".")[:2])
    return ("CUDAExecutionProvider", {"use_tf32": "0"}) if (major, minor) >= (1, 18) else "CUDAExecutionProvider"


def _ort_run(path: Path, providers: list[Any], inputs: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """``(providers the session really uses, float32 logits)`` of one ONNX Runtime run."""
    import onnxruntime as ort

    from flowprep.train.spec import OUTPUT_NAME

    sess = ort.InferenceSession(str(path), providers=providers)
    feed = {i.name: inputs[i.name] for i in sess.get_inputs()}
    return list(sess.get_providers()), np.asarray(sess.run([OUTPUT_NAME], feed)[0], dtype=np.float32)


def check_ort_cuda(ctx: DoctorContext) -> tuple[str, Numbers]:
    import onnxruntime as ort

    _ort_cuda()
    deploy = _deploy(ctx)
    ctx.deploy = deploy
    inputs = _random_inputs(deploy)
    model = deploy / "model.onnx"
    cpu = _probabilities(_ort_run(model, ["CPUExecutionProvider"], inputs)[1])
    used, logits = _ort_run(model, [_ort_cuda_provider(ort.__version__), "CPUExecutionProvider"], inputs)
    if used[0] != "CUDAExecutionProvider":  # it falls back to the CPU when its CUDA libraries do not load
        raise CheckFailed(f"ONNX Runtime fell back to {used}")
    diff = float(np.abs(cpu - _probabilities(logits)).max())
    numbers = {"max_prob_diff": diff, "tolerance": ORT_PROB_TOL}
    if diff > ORT_PROB_TOL:
        raise CheckFailed(f"CUDA provider differs from CPU by {diff:.2e}", numbers)
    return f"CUDA provider agrees with CPU (max prob diff {diff:.1e})", numbers


def _infer_provider(stderr: str) -> str:
    """The first ONNX Runtime provider named in ``infer``'s summary line (``... (onnxruntime (A, B)), ...``)."""
    m = re.search(r"\(onnxruntime \(([A-Za-z]+ExecutionProvider)", stderr)
    return m.group(1) if m else ""


def check_infer_cuda(ctx: DoctorContext) -> tuple[str, Numbers]:
    from flowprep.flow.pairs import DEFAULT_VIDEO
    from flowprep.synth import moving_frames, write_video

    _ort_cuda()
    deploy = _need(ctx.deploy, "needs the ONNX model of the ONNX Runtime CUDA check")
    video = DEFAULT_VIDEO
    if not video.is_file():
        video = ctx.workdir / "clip.avi"
        write_video(video, moving_frames(48, 128, 160, (2.0, 0.0), seed=1))
    res = _run_cli("infer", str(video), "-m", str(deploy / "model.onnx"), "--max-frames", "64", "--json-out", "-")
    windows = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    provider = _infer_provider(res.stderr)
    numbers = {"json_lines": len(windows), "provider": provider}
    # exit 0 alone proves nothing: ONNX Runtime falls back to the CPU when its CUDA libraries do not load
    if provider not in GPU_PROVIDERS:
        raise CheckFailed(f"infer ran on {provider or 'an unknown provider'}, not CUDA", numbers)
    if not windows:
        raise CheckFailed("infer on CUDA wrote no JSON lines", numbers)
    return f"infer on {provider}: {len(windows)} JSON lines", numbers


def check_vpi(ctx: DoctorContext) -> tuple[str, Numbers]:
    from flowprep.flow.bench import run_backend
    from flowprep.flow.pairs import synthetic_pairs
    from flowprep.flow.vpi import VpiBackend

    try:
        where = VpiBackend.probe()
    except (BackendNotInstalledError, BackendUnavailableError) as exc:
        raise Skip(str(exc)) from exc
    pairs, _ = synthetic_pairs((320, 240), (2.0, 5.0, 10.0), per_magnitude=1)
    res, _ = run_backend("vpi", pairs, strict=True)
    numbers = {"device": where, "epe": round(res.epe_mean, 3), "pairs_per_s": round(res.fps, 1)}
    if res.epe_mean > NVOF_MAX_EPE:
        raise CheckFailed(f"VPI EPE {res.epe_mean:.2f} px > {NVOF_MAX_EPE}", numbers)
    return f"VPI dense flow on {where}: EPE {res.epe_mean:.2f} px", numbers


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

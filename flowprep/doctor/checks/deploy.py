"""Doctor checks of deployment on the GPU: a TensorRT engine, ONNX Runtime's CUDA provider, ``infer``.

TensorRT: engine output (fp16) vs ONNX Runtime on the CPU (fp32): class probabilities within
:data:`TRT_PROB_TOL`, same top-1 class. ONNX Runtime CUDA vs CPU: within :data:`ORT_PROB_TOL`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from flowprep.doctor.checks.common import Numbers, need, run_cli, run_flowprep
from flowprep.doctor.framework import CheckFailed, DoctorContext, Skip
from flowprep.fsio.reading import read_bytes

#: the largest TensorRT engine read (an engine of flowprep's models is tens of MB)
MAX_ENGINE_BYTES = 4 << 30

TRT_PROB_TOL = 0.02
ORT_PROB_TOL = 1e-3
#: ONNX Runtime providers that run on the GPU (the session reports the one it really uses first)
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def _probabilities(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _random_inputs(deploy: Path, batch: int = 2) -> dict[str, np.ndarray]:
    from flowprep.train.model_record import MODEL_RECORD, read_model_record

    spec = read_model_record(deploy / MODEL_RECORD)
    rng = np.random.default_rng(0)
    return {n: rng.standard_normal((batch, *s)).astype(np.float32) for n, s in spec.input_shapes().items()}


def _deploy(ctx: DoctorContext, *extra: str) -> Path:
    ckpt = need(ctx.checkpoint, "needs the model of the CUDA training check")
    out = ctx.workdir / ("deploy" + "-".join(("",) + extra).replace("--", "-"))
    if not (out / "model.onnx").is_file():
        run_flowprep("export", str(ckpt), "-o", str(out), *extra, timeout=600)
    return out


def _trt_run(engine_path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Run a serialized engine once (TensorRT 10 tensor API, buffers as torch CUDA tensors)."""
    import tensorrt as trt
    import torch

    plan = read_bytes(engine_path, what="TensorRT engine", max_bytes=MAX_ENGINE_BYTES, owned=True)
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
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
    engine = need(sorted(deploy.glob("*.engine")), f"export wrote no engine in {deploy}")[0]
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

    from flowprep.loader.spec import OUTPUT_NAME
    from flowprep.serve.runner import read_onnx

    sess = ort.InferenceSession(read_onnx(path), providers=providers)
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
    deploy = need(ctx.deploy, "needs the ONNX model of the ONNX Runtime CUDA check")
    video = DEFAULT_VIDEO
    if not video.is_file():
        video = ctx.workdir / "clip.avi"
        write_video(video, moving_frames(48, 128, 160, (2.0, 0.0), seed=1))
    res = run_cli("infer", str(video), "-m", str(deploy / "model.onnx"), "--max-frames", "64", "--json-out", "-")
    windows = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    provider = _infer_provider(res.stderr)
    numbers = {"json_lines": len(windows), "provider": provider}
    # exit 0 alone proves nothing: ONNX Runtime falls back to the CPU when its CUDA libraries do not load
    if provider not in GPU_PROVIDERS:
        raise CheckFailed(f"infer ran on {provider or 'an unknown provider'}, not CUDA", numbers)
    if not windows:
        raise CheckFailed("infer on CUDA wrote no JSON lines", numbers)
    return f"infer on {provider}: {len(windows)} JSON lines", numbers

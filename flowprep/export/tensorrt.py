"""TensorRT engines: the optimization profile, the ``trtexec`` command line, and the Python-API build.

EXPERIMENTAL: the engine build needs the ``tensorrt`` Python package with NVIDIA's libraries and a
GPU; it has not run in this project's CI (``pip install tensorrt`` cannot fetch NVIDIA's libraries
there). Its pure parts (profile shapes, command line) are tested.

FP16 differs by TensorRT major version:

* TensorRT 10: weakly typed networks; ``BuilderFlag.FP16`` lets the builder pick fp16 kernels for
  the fp32 ONNX model (``trtexec --fp16``).
* TensorRT 10.12+: weak typing is deprecated; with the fp16 ONNX model present the network is
  built strongly typed from it instead (:func:`strongly_typed_fp16`).
* TensorRT >= 11: every network is strongly typed and ``BuilderFlag.FP16`` / ``--fp16`` are gone;
  precision comes from the graph, so the fp16 ONNX model (``model_fp16.onnx``, fp32 I/O) is built.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

from flowprep.errors import BackendNotInstalledError, BackendUnavailableError, ExportError
from flowprep.fsio.writing import write_bytes_atomic

log = logging.getLogger(__name__)

WORKSPACE_MIB = 2048


@dataclass(frozen=True)
class Profile:
    """One optimization profile: batch sizes ``min <= opt <= max`` for every input (other dims fixed)."""

    min_batch: int = 1
    opt_batch: int = 4
    max_batch: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ExportError(
                f"TensorRT profile needs 1 <= min <= opt <= max batch, got "
                f"{self.min_batch}/{self.opt_batch}/{self.max_batch}"
            )

    def shapes(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[tuple[int, ...], ...]]:
        """Input name -> ``(min_shape, opt_shape, max_shape)`` with the batch dimension in front."""
        return {n: ((self.min_batch, *s), (self.opt_batch, *s), (self.max_batch, *s)) for n, s in shapes.items()}


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(int(d)) for d in shape)


def trtexec_command(
    onnx: str | Path,
    engine: str | Path,
    shapes: dict[str, tuple[int, ...]],
    profile: Profile,
    fp16: bool = False,
    trt_major: int = 10,
) -> list[str]:
    """The ``trtexec`` argv that builds the same engine as :func:`build_engine`.

    Args:
        onnx: the model to build (for fp16 on TensorRT >= 11, the fp16 ONNX file); a bare file name
            for a command run in the deploy folder.
        engine: where ``--saveEngine`` writes (also a bare name in the deploy folder).
        shapes: input name -> shape without batch.
        profile: batch sizes.
        fp16: add ``--fp16`` (TensorRT 10 only; on >= 11 pass the fp16 ONNX instead).
        trt_major: the TensorRT major version of the machine that runs the command.
    """
    per = profile.shapes(shapes)

    def arg(flag: str, i: int) -> str:
        return f"--{flag}=" + ",".join(f"{n}:{_dims(s[i])}" for n, s in per.items())

    cmd = [
        "trtexec",
        f"--onnx={onnx}",
        arg("minShapes", 0),
        arg("optShapes", 1),
        arg("maxShapes", 2),
        f"--saveEngine={engine}",
        f"--memPoolSize=workspace:{WORKSPACE_MIB}",
    ]
    if fp16 and trt_major < 11:
        cmd.append("--fp16")
    return cmd


def command_line(argv: list[str]) -> str:
    """One shell-quoted line."""
    return " ".join(shlex.quote(a) for a in argv)


def _cuda_device_count() -> int | None:
    """CUDA devices visible, from a CUDA build of torch or else NVIDIA's cuda-bindings; None when neither can tell."""
    try:
        import torch

        # a CPU-only torch build (torch.version.cuda is None) reports no device even beside a GPU: ask the driver
        if torch.version.cuda is not None:
            return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except ImportError:
        pass
    try:
        from cuda.bindings import driver
    except ImportError:
        return None
    if driver.cuInit(0)[0] != driver.CUresult.CUDA_SUCCESS:
        return 0
    err, count = driver.cuDeviceGetCount()
    return int(count) if err == driver.CUresult.CUDA_SUCCESS else 0


def tensorrt_status() -> tuple[bool, str]:
    """``(usable, why)``: can an engine be built here (``tensorrt`` importable and a CUDA GPU present)?"""
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        return False, f"the tensorrt Python package is not installed ({exc})"
    count = _cuda_device_count()
    if count is None:
        return False, "cannot tell whether a CUDA GPU is present: install torch or `pip install 'flowprep[nvof]'`"
    if count == 0:
        return False, "no CUDA GPU is visible"
    return True, "ok"


def strongly_typed_fp16(version: str, have_fp16_onnx: bool) -> bool:
    """Build fp16 as a strongly-typed network from the fp16 ONNX model?

    TensorRT 10.12 deprecated weak typing (``BuilderFlag.FP16``) and 11 removed it; from 10.12 on
    the fp16 ONNX model is built strongly typed when it was exported, else 10.x falls back to the
    (deprecated) builder flag.
    """
    parts = [int(p) for p in str(version).split(".")[:2] if p.isdigit()] + [0, 0]
    major, minor = parts[0], parts[1]
    return major >= 11 or (major == 10 and minor >= 12 and have_fp16_onnx)


def trt_major_version() -> int:
    """Installed TensorRT's major version (raises if not installed)."""
    import tensorrt as trt

    return int(str(trt.__version__).split(".")[0])


def build_engine(
    onnx: Path,
    engine: Path,
    shapes: dict[str, tuple[int, ...]],
    profile: Profile,
    fp16: bool = False,
    fp16_onnx: Path | None = None,
) -> Path:
    """Build and save a serialized TensorRT engine with one min/opt/max batch profile.

    Args:
        onnx: the fp32 ONNX model.
        engine: output ``.engine`` (``.plan``) file.
        shapes: input name -> shape without batch.
        profile: batch sizes.
        fp16: fp16 engine: ``BuilderFlag.FP16`` on TensorRT 10, ``fp16_onnx`` on TensorRT >= 11.
        fp16_onnx: the fp16 ONNX model (required for ``fp16`` on TensorRT >= 11).

    Raises:
        BackendNotInstalledError: no ``tensorrt`` package.
        BackendUnavailableError: no GPU.
        ExportError: the parser or builder failed.
        OutputError: the engine cannot be written.
    """
    ok, why = tensorrt_status()
    if not ok:
        cls = BackendNotInstalledError if "not installed" in why else BackendUnavailableError
        raise cls(f"cannot build a TensorRT engine here: {why}")
    import tensorrt as trt

    major = trt_major_version()
    typed = fp16 and strongly_typed_fp16(trt.__version__, fp16_onnx is not None)
    src = Path(onnx)
    if fp16 and major >= 11 and fp16_onnx is None:
        raise ExportError("TensorRT >= 11 builds fp16 engines from an fp16 ONNX model; export with --fp16")
    if typed:
        src = Path(fp16_onnx)  # type: ignore[arg-type]
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # explicit batch is the only mode since TensorRT 10; strongly typed takes precision from the graph
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if typed and major < 11 else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(src)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {src}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_MIB << 20)
    if fp16 and not typed:
        config.set_flag(trt.BuilderFlag.FP16)
    opt = builder.create_optimization_profile()
    for name, (lo, mid, hi) in profile.shapes(shapes).items():
        opt.set_shape(name, lo, mid, hi)
    config.add_optimization_profile(opt)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT failed to build an engine from {src} (see its log above)")
    engine = Path(engine)
    write_bytes_atomic(engine, memoryview(plan))  # an IHostMemory: its buffer, not a copy
    log.info("TensorRT %s engine written: %s", trt.__version__, engine)
    return engine

"""ONNX export with ActionRecognitionNet's interface, an fp16 variant, and the ONNX Runtime parity check.

Interface (as TAO's exported ActionRecognitionNet): inputs ``input_rgb`` and/or ``input_of``
(``float32``, normalised ``(x / 255 - 0.5) / 0.5``, shapes from
:func:`flowprep.loader.spec.input_shapes`), output ``fc_pred`` (``float32`` ``(B, num_classes)``
logits). Only the batch dimension is dynamic; opset 17.

torch >= 2.9 defaults ``torch.onnx.export`` to the dynamo exporter, which needs ``onnxscript``; the
TorchScript exporter (``dynamo=False``) handles these plain conv nets and needs nothing extra, so
it is used explicitly.

fp16: the fp32 graph is converted with ONNX Runtime's ``float16`` tool (``keep_io_types=True``: inputs
and output stay ``float32``, so the same pre-processing and DeepStream's FP32 tensors feed it).
ONNX Runtime's CPU provider runs the converted graph, so its parity is checked too, against a looser
tolerance (fp16 has about 3 significant digits).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from flowprep.errors import ExportError
from flowprep.fsio.writing import atomic_path
from flowprep.loader.spec import OUTPUT_NAME

log = logging.getLogger(__name__)

OPSET = 17
#: fp32 parity: the largest difference of logits, ONNX Runtime vs PyTorch on the same random input,
#: relative to the logits' scale, max(1, max |logit|) (see :func:`check_parity`); a few float32
#: roundings through ~20 layers stay near 1e-6
FP32_TOL = 1e-4
#: fp16 parity, relative likewise: fp16 keeps ~3 significant digits
FP16_REL_TOL = 2e-2


def export_onnx(model: Any, shapes: dict[str, tuple[int, ...]], path: Path, opset: int = OPSET) -> Path:
    """Write ``model`` as ONNX with a dynamic batch dimension and every other dimension fixed.

    Args:
        model: a ``torch.nn.Module`` in eval mode whose ``forward`` takes one tensor per entry of
            ``shapes``, in that order.
        shapes: input name -> shape without the batch dimension (``input_shapes(...)``).
        path: output ``.onnx`` file.
        opset: ONNX opset (17, as TAO's models).

    Raises:
        ExportError: the exporter failed.
        OutputError: the file cannot be written (full or read-only disk).
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = tuple(torch.zeros((1, *s), dtype=torch.float32) for s in shapes.values())
    names = list(shapes)
    axes = {n: {0: "batch"} for n in [*names, OUTPUT_NAME]}
    # written under a temporary name and renamed (atomic_path removes it on any failure, and turns
    # an OSError of a full or read-only disk into an OutputError naming the file, not the exporter)
    with atomic_path(path, keep_suffix=False) as tmp:
        try:
            with warnings.catch_warnings():
                # the TorchScript exporter is chosen on purpose (see the module docstring)
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(
                    model.eval(),
                    dummy,
                    str(tmp),
                    input_names=names,
                    output_names=[OUTPUT_NAME],
                    dynamic_axes=axes,
                    opset_version=opset,
                    do_constant_folding=True,
                    dynamo=False,
                )
        except OSError:
            raise
        except Exception as exc:  # the exporter raises many types; all mean "could not export"
            raise ExportError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    check_interface(path, shapes)
    return path


def convert_fp16(src: Path, dst: Path) -> Path:
    """Write an fp16 copy of the fp32 ONNX model ``src`` (weights and compute fp16, I/O stays fp32)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    half = convert_float_to_float16(model, keep_io_types=True)
    with atomic_path(Path(dst), keep_suffix=False) as tmp:
        onnx.save(half, str(tmp))
    return Path(dst)


def check_interface(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """Raise :class:`ExportError` unless the ONNX file has exactly these inputs (dynamic batch, fixed
    other dims) and one output ``fc_pred``."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    got: dict[str, list] = {}
    for inp in model.graph.input:
        dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
        got[inp.name] = dims
    want = {n: ["batch", *s] for n, s in shapes.items()}
    if {k: [d if isinstance(d, int) else "batch" for d in v] for k, v in got.items()} != want:
        raise ExportError(f"{path}: inputs are {got}, expected {want}")
    outs = [o.name for o in model.graph.output]
    if outs != [OUTPUT_NAME]:
        raise ExportError(f"{path}: outputs are {outs}, expected [{OUTPUT_NAME!r}]")


def random_inputs(shapes: dict[str, tuple[int, ...]], batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Uniform ``[-1, 1]`` ``float32`` inputs (the normalised range), ``(batch, *shape)`` each."""
    rng = np.random.default_rng(seed)
    return {n: rng.uniform(-1.0, 1.0, (batch, *s)).astype(np.float32) for n, s in shapes.items()}


def torch_logits(model: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """PyTorch forward on ``inputs`` (in order) -> ``float32`` ``(B, num_classes)``."""
    import torch

    with torch.inference_mode():
        out = model.eval()(*(torch.from_numpy(a) for a in inputs.values()))
    return out.float().numpy()


def ort_logits(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """ONNX Runtime (CPU provider) forward -> ``float32`` ``(B, num_classes)``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run([OUTPUT_NAME], inputs)[0], dtype=np.float32)


def check_parity(
    model: Any, path: Path, shapes: dict[str, tuple[int, ...]], fp16: bool = False, batch: int = 2, seed: int = 0
) -> dict[str, Any]:
    """Compare ONNX Runtime with PyTorch on one random batch; raise if they differ.

    A batch of 2 (the export used 1) also proves the batch dimension is dynamic. The difference is
    judged relative to the logits' magnitude: ``max |onnx - torch| / max(1, max |torch|)``. Float
    arithmetic errs in proportion to the numbers' size, so an absolute tolerance fails models with
    large logits (a short-trained model's ~3e15 differ by 1e9, a relative 4e-7) and the floor of 1
    keeps tiny logits from making noise look large.

    Returns:
        ``{"max_abs_diff", "max_rel_diff", "tolerance" (relative), "scale", "max_abs_logit",
        "batch", "fp16"}``.

    Raises:
        ExportError: non-finite output (either side), wrong shape, or a relative difference above
            the tolerance (:data:`FP32_TOL`, fp16: :data:`FP16_REL_TOL`).
    """
    inputs = random_inputs(shapes, batch, seed)
    ref = torch_logits(model, inputs)
    got = ort_logits(path, inputs)
    if got.shape != ref.shape:
        raise ExportError(f"{path}: ONNX Runtime output shape {got.shape}, PyTorch {ref.shape}")
    if not np.all(np.isfinite(ref)):
        raise ExportError(f"{path}: the PyTorch model's output is not finite (damaged weights?); nothing to compare")
    if not np.all(np.isfinite(got)):
        raise ExportError(f"{path}: ONNX Runtime output is not finite")
    diff = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64))))
    peak = float(np.max(np.abs(ref)))
    scale = max(1.0, peak)
    rel = diff / scale
    tol = FP16_REL_TOL if fp16 else FP32_TOL
    result = {
        "max_abs_diff": diff,
        "max_rel_diff": rel,
        "tolerance": tol,
        "scale": scale,
        "max_abs_logit": peak,
        "batch": batch,
        "fp16": fp16,
    }
    if not rel <= tol:
        raise ExportError(
            f"{path}: ONNX Runtime differs from PyTorch by {diff:.3g} (max abs, logits), {rel:.3g} of the "
            f"logits' scale {scale:.3g}, more than the relative tolerance {tol:.3g}; the export is not trustworthy"
        )
    log.info("parity %s: max abs diff %.3g, relative %.3g (tolerance %.3g)", Path(path).name, diff, rel, tol)
    return result

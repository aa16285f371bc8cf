"""Model runners for inference: an exported ONNX model through ONNX Runtime, or a checkpoint in PyTorch.

Both take ``{input name: float32 array (B, ...)}`` and return ``float32`` logits ``(B, num_classes)``.
An ONNX model is described by the ``flowprep_model.json`` that ``flowprep export`` writes beside
it (classes, frames, input size, and how the training frames and flow were made); a checkpoint
carries the same in its dict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flowprep.errors import ConfigError
from flowprep.fsio.reading import read_bytes
from flowprep.layout.sections import Recipe
from flowprep.loader.spec import OUTPUT_NAME, STREAM_INPUTS, input_shapes
from flowprep.train.model_record import MODEL_RECORD, ModelRecord, read_model_record

if TYPE_CHECKING:  # the checkpoint module imports torch; an ONNX model needs none
    from flowprep.train.checkpoint_meta import Checkpoint

log = logging.getLogger(__name__)

#: preferred ONNX Runtime providers, best first (only those present are used)
PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

#: the largest ONNX model read: protobuf's limit for one file (flowprep's models are < 200 MB)
MAX_ONNX_BYTES = 2 << 30


@dataclass
class ModelSpec:
    """What inference needs to know about a model.

    Attributes:
        arch, modality: ``"2d"``/``"3d"``, ``"rgb"``/``"of"``/``"joint"``.
        frames, sample_rate, input_size: T, step between frames of a window, S (checked against
            training's limits by the record readers).
        classes: label names, index = class id.
        recipe: how the training frames were made (the dataset record's decode, rgb, flow and
            encoding sections; None sections when the model does not say).
        source: the model file.
    """

    arch: str
    modality: str
    frames: int
    sample_rate: int
    input_size: int
    classes: list[str]
    recipe: Recipe = field(default_factory=Recipe)
    source: str = ""

    @property
    def streams(self) -> tuple[str, ...]:
        return STREAM_INPUTS[self.modality]

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Input name -> shape without batch (:func:`flowprep.loader.spec.input_shapes`)."""
        return input_shapes(self.arch, self.modality, self.frames, self.input_size)


def spec_from_record(rec: ModelRecord, source: str) -> ModelSpec:
    """A :class:`ModelSpec` from a checked ``flowprep_model.json``
    (:func:`~flowprep.train.model_record.read_model_record`)."""
    return ModelSpec(
        rec.arch, rec.modality, rec.frames, rec.sample_rate, rec.input_size, list(rec.classes), rec.recipe, source
    )


def spec_from_checkpoint(ckpt: Checkpoint) -> ModelSpec:
    """A :class:`ModelSpec` from a checked checkpoint."""
    return ModelSpec(
        ckpt.arch,
        ckpt.modality,
        ckpt.frames,
        ckpt.sample_rate,
        ckpt.input_size,
        list(ckpt.classes),
        ckpt.recipe,
        ckpt.path,
    )


class OnnxRunner:
    """ONNX Runtime session; providers TensorRT/CUDA when present, else CPU."""

    def __init__(self, path: Path, providers: list[str] | None = None, threads: int | None = None):
        import onnxruntime as ort

        avail = ort.get_available_providers()
        chosen = [p for p in (providers or PROVIDERS) if p in avail] or ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
        data = read_onnx(path)  # ONNX Runtime gets the bytes checked, not a name to open
        try:
            self.session = ort.InferenceSession(data, opts, providers=chosen)
        except Exception as exc:  # ORT raises its own exception types for unloadable models
            raise ConfigError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}") from exc
        self.providers = self.session.get_providers()
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        out = self.session.run([OUTPUT_NAME], {n: inputs[n] for n in self.input_names})[0]
        return np.asarray(out, dtype=np.float32)

    def describe(self) -> str:
        return f"onnxruntime ({', '.join(self.providers)})"


class TorchRunner:
    """A checkpoint's model in PyTorch (CUDA when available)."""

    def __init__(self, model: Any, spec: ModelSpec, device: str | None = None):
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.eval().to(self.device)
        self.names = list(spec.input_shapes())

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            xs = [torch.from_numpy(inputs[n]).to(self.device) for n in self.names]
            return self.model(*xs).float().cpu().numpy()

    def describe(self) -> str:
        return f"pytorch ({self.device})"


def read_onnx(path: Path) -> bytes:
    """The bytes of the ONNX model ``path``, through the gate: a regular file (a FIFO would block
    ONNX's own open forever) of at most :data:`MAX_ONNX_BYTES`.

    Raises:
        ConfigError: missing, not a regular file, or too big (one line naming the file).
    """
    return read_bytes(path, what="ONNX model", max_bytes=MAX_ONNX_BYTES, error=ConfigError)


def onnx_io(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """``(inputs, outputs)`` of an ONNX file: name -> shape without the batch dimension."""
    import onnx  # lazy: onnx is an optional extra (export)

    data = read_onnx(path)
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf DecodeError and OSError alike: not a readable model
        raise ConfigError(f"{path} is not a readable ONNX model: {exc}") from exc

    def dims(v) -> tuple[int, ...]:
        return tuple(int(d.dim_value) for d in v.type.tensor_type.shape.dim[1:])

    inits = {i.name for i in model.graph.initializer}
    ins = {v.name: dims(v) for v in model.graph.input if v.name not in inits}
    return ins, {v.name: dims(v) for v in model.graph.output}


def check_onnx_matches(path: Path, spec: ModelSpec) -> None:
    """Raise :class:`ConfigError` unless the ONNX file's inputs/output fit the model record."""
    ins, outs = onnx_io(path)
    want = spec.input_shapes()
    if ins != want:
        raise ConfigError(
            f"model/modality mismatch: {path} takes {ins}, but its record describes a "
            f"{spec.arch} {spec.modality} model taking {want}; re-export it"
        )
    if outs.get(OUTPUT_NAME) != (len(spec.classes),):
        raise ConfigError(
            f"model/label mismatch: {path} outputs {outs}, but its record lists {len(spec.classes)} classes"
        )


def load_model(path: Path, providers: list[str] | None = None, threads: int | None = None):
    """``(spec, runner)`` for an exported ``model.onnx`` (with ``flowprep_model.json`` beside it) or a
    ``.pt`` checkpoint.

    Raises:
        ConfigError: missing file/record, or a model that does not fit its record.
        flowprep.train.checkpoint.CheckpointError: an unreadable checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model {path} does not exist")
    if path.suffix.lower() == ".onnx":
        rec_path = path.parent / MODEL_RECORD
        if not rec_path.is_file():
            raise ConfigError(
                f"{path} has no {MODEL_RECORD} beside it (frames, classes and flow "
                "settings live there); use the folder `flowprep export` wrote"
            )
        spec = spec_from_record(read_model_record(rec_path), str(path))
        check_onnx_matches(path, spec)
        return spec, OnnxRunner(path, providers, threads)
    from flowprep.train.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(path)
    spec = spec_from_checkpoint(ckpt)
    return spec, TorchRunner(model_from_checkpoint(ckpt), spec)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``float32`` ``(B, K)`` logits -> probabilities summing to 1."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def top_k(probs: np.ndarray, classes: list[str], k: int) -> list[dict[str, Any]]:
    """``[{"label", "index", "score"}, ...]`` best first for one probability vector ``(K,)``."""
    order = np.argsort(-probs, kind="stable")[: max(1, k)]
    return [{"label": classes[i], "index": int(i), "score": round(float(probs[i]), 6)} for i in order]

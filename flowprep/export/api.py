"""``flowprep export``: a checkpoint -> a deploy folder.

Folder contents::

    model.onnx                  fp32, inputs input_rgb / input_of, output fc_pred, dynamic batch, opset 17
    model_fp16.onnx             with --fp16 (fp16 weights and compute, fp32 inputs/output)
    labels.txt                  one class per line, class-index order
    flowprep_model.json         arch, modality, frames, input size, normalisation, flow backend + encoding,
                                parity results (what `flowprep infer` reads)
    config.pbtxt                Triton (platform onnxruntime_onnx); put it and model.onnx in
                                <repo>/<name>/config.pbtxt and <repo>/<name>/1/model.onnx
    build_engine.sh             the trtexec commands for a GPU machine (TensorRT 10 and 11)
    model.engine                with --engine where TensorRT and a GPU are present
    config_preprocess_{2d,3d}_custom.txt, config_infer_primary_{2d,3d}_action.txt,
    deepstream_action_recognition_config.txt, labels_nvinfer.txt
                                DeepStream 3D action recognition sample files (RGB models only)
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowprep.errors import ConfigError
from flowprep.export import configs
from flowprep.export.onnx_export import OPSET, check_parity, convert_fp16, export_onnx
from flowprep.export.tensorrt import Profile, build_engine, command_line, tensorrt_status, trtexec_command
from flowprep.layout.names import remove_inside
from flowprep.layout.record import dump_json, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


@dataclass
class ExportSummary:
    """What an export wrote and measured."""

    out: Path
    arch: str
    modality: str
    files: list[str] = field(default_factory=list)
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)
    engine: str | None = None
    engine_note: str = ""
    trtexec: list[str] = field(default_factory=list)
    deepstream_note: str = ""


def _triton_name(out: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", out.resolve().name) or "flowprep_model"


def artefact_names() -> set[str]:
    """Every file name an export may write (whatever the model)."""
    names = {"model.onnx", "model_fp16.onnx", "labels.txt", "flowprep_model.json", "config.pbtxt",
             "build_engine.sh", "model.engine", "labels_nvinfer.txt"}
    for arch in ("2d", "3d"):
        names.update(configs.deepstream_names(arch).values())
    return names


#: the export's own manifest of the files it wrote into the deploy folder
MANIFEST = ".flowprep-export.json"


def _owned(out: Path) -> set[str]:
    """Artefact names an earlier export wrote into ``out`` (a folder exported before the manifest
    existed, recognised by its ``flowprep_model.json``: the artefacts present)."""
    path = out / MANIFEST
    if path.is_file():
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))["entries"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path} is damaged ({exc}); remove it and the files it listed, or use another --out")
        return set(entries) & artefact_names() if isinstance(entries, list) else set()
    if (out / configs.MODEL_RECORD).is_file():
        return {n for n in artefact_names() if (out / n).is_file()}
    return set()


def _take_folder(out: Path, planned: set[str]) -> None:
    """Refuse a folder holding an artefact name flowprep did not write there; remove what an earlier
    export wrote (no stale fp16 model or DeepStream config of another architecture stays beside the
    new model); list ``planned`` in the manifest before anything is written. Other files are left alone.

    Raises:
        ConfigError: a file of one of the artefact names that no export wrote (named in the message).
    """
    owned = _owned(out)
    foreign = sorted(n for n in artefact_names() if os.path.lexists(out / n) and n not in owned)
    if foreign:
        raise ConfigError(f"{out / foreign[0]} was not written by flowprep export and an export would replace it"
                          f"{f' (and {len(foreign) - 1} more)' if len(foreign) > 1 else ''}; move it away or "
                          "choose another --out")
    stale = sorted(n for n in owned if os.path.lexists(out / n))
    if stale:
        log.warning("replacing the earlier export in %s (%d file(s))", out, len(stale))
    for n in stale:
        remove_inside(out, n, owned)
    write_text_atomic(out / MANIFEST, dump_json({"entries": sorted(planned)}))


def _planned(modality: str, arch: str, fp16: bool, engine: bool) -> set[str]:
    names = {"model.onnx", "labels.txt", "config.pbtxt", "build_engine.sh", configs.MODEL_RECORD}
    names |= {"model_fp16.onnx"} if fp16 else set()
    names |= {"model.engine"} if engine else set()
    if modality == "rgb":
        names |= set(configs.deepstream_names(arch).values()) | {"labels_nvinfer.txt"}
    return names


def export_checkpoint(checkpoint: Path, out: Path, fp16: bool = False, engine: bool = False,
                      min_batch: int = 1, opt_batch: int = 4, max_batch: int = 8, ds_batch: int = 4,
                      triton_name: str | None = None) -> ExportSummary:
    """Export a ``flowprep train`` checkpoint (see the module docstring for the folder).

    Args:
        checkpoint: ``best.pt`` / ``last.pt``.
        out: deploy folder (created; the files an earlier export wrote are removed first, others kept;
            a file of an artefact's name that no export wrote is refused).
        fp16: also write and check ``model_fp16.onnx``; fp16 engine and DeepStream ``network-mode``.
        engine: build a TensorRT engine if TensorRT and a GPU are here (else the command is given).
        min_batch, opt_batch, max_batch: TensorRT profile; ``max_batch`` is Triton's ``max_batch_size``.
        ds_batch: sequences per DeepStream inference (``network-input-shape``'s batch, nvinfer ``batch-size``).
        triton_name: Triton model name (default: the folder name).

    Raises:
        CheckpointError, ExportError (failed export or parity), ConfigError (bad batch sizes).
    """
    from flowprep.train.checkpoint import load_checkpoint, model_from_checkpoint
    from flowprep.train.models import input_shapes

    if triton_name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", triton_name):
        raise ConfigError(f"--triton-name {triton_name!r}: Triton model names are folder names; "
                          "use letters, digits, '_', '.' and '-'")
    profile = Profile(min_batch, opt_batch, max_batch)
    if not 1 <= ds_batch <= max_batch:
        raise ConfigError(f"--deepstream-batch must be within 1..{max_batch} (the engine's max batch), got {ds_batch}")
    ckpt = load_checkpoint(Path(checkpoint))
    model = model_from_checkpoint(ckpt)
    arch, modality, frames, size = ckpt["arch"], ckpt["modality"], int(ckpt["frames"]), int(ckpt["input_size"])
    shapes = input_shapes(arch, modality, frames, size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _take_folder(out, _planned(modality, arch, fp16, engine))
    summary = ExportSummary(out, arch, modality)

    def wrote(name: str) -> None:
        summary.files.append(name)

    onnx_path = out / "model.onnx"
    export_onnx(model, shapes, onnx_path)
    try:
        summary.parity["fp32"] = check_parity(model, onnx_path, shapes)
    except Exception:
        onnx_path.unlink(missing_ok=True)  # a model that failed its check must not look deployable
        raise
    wrote("model.onnx")
    fp16_path = None
    if fp16:
        fp16_path = convert_fp16(onnx_path, out / "model_fp16.onnx")
        try:
            summary.parity["fp16"] = check_parity(model, fp16_path, shapes, fp16=True)
        except Exception:
            fp16_path.unlink(missing_ok=True)
            raise
        wrote("model_fp16.onnx")

    classes = list(ckpt["classes"])
    (out / "labels.txt").write_text(configs.labels_text(classes), encoding="utf-8")
    wrote("labels.txt")
    name = triton_name or _triton_name(out)
    (out / "config.pbtxt").write_text(configs.triton_config(name, shapes, len(classes), max_batch), encoding="utf-8")
    wrote("config.pbtxt")

    # TensorRT: the trtexec lines always; an engine only where it can be built
    engine_path = out / "model.engine"
    cmd10 = trtexec_command(onnx_path.name, engine_path.name, shapes, profile, fp16=fp16, trt_major=10)
    cmd11 = trtexec_command((fp16_path or onnx_path).name, engine_path.name, shapes, profile, fp16=fp16, trt_major=11)
    summary.trtexec = cmd10
    script = ["#!/bin/sh", "# Build a TensorRT engine from this folder on a machine with an NVIDIA GPU.",
              "# TensorRT 10.x:", command_line(cmd10),
              "# TensorRT 11.x (no --fp16 flag: precision comes from the ONNX graph):",
              "# " + command_line(cmd11), ""]
    (out / "build_engine.sh").write_text("\n".join(script), encoding="utf-8")
    wrote("build_engine.sh")
    if engine:
        ok, why = tensorrt_status()
        if ok:
            build_engine(onnx_path, engine_path, shapes, profile, fp16=fp16, fp16_onnx=fp16_path)
            summary.engine = str(engine_path)
            wrote("model.engine")
        else:
            summary.engine_note = (f"no TensorRT engine built here ({why}); everything else is done. "
                                   "On the GPU machine run: " + command_line(cmd10))

    if modality == "rgb":
        names = configs.deepstream_names(arch)
        sample_rate = int(ckpt.get("sample_rate", 1))
        frame_step = int(((ckpt.get("dataset_record") or {}).get("decode") or {}).get("frame_step") or 1)
        files = {
            names["preprocess"]: configs.deepstream_preprocess(arch, frames, size, ds_batch,
                                                               subsample=sample_rate * frame_step - 1),
            names["infer"]: configs.deepstream_infer("model.onnx", "labels_nvinfer.txt", ds_batch, fp16),
            names["app"]: configs.deepstream_app(arch),
            "labels_nvinfer.txt": configs.nvinfer_labels_text(classes),
        }
        for fname, text in files.items():
            (out / fname).write_text(text, encoding="utf-8")
            wrote(fname)
    else:
        summary.deepstream_note = configs.DEEPSTREAM_RGB_ONLY

    record = configs.model_record(ckpt, shapes, {
        "onnx": {"file": "model.onnx", "fp16_file": "model_fp16.onnx" if fp16 else None, "opset": OPSET,
                 "dynamic_axes": "batch only", "parity": summary.parity},
        "triton": {"name": name, "max_batch_size": max_batch},
        "tensorrt": {"profile": {"min": min_batch, "opt": opt_batch, "max": max_batch},
                     "engine": "model.engine" if summary.engine else None, "trtexec": command_line(cmd10)},
        "deepstream": ({"preprocess": configs.deepstream_names(arch)["preprocess"],
                        "infer": configs.deepstream_names(arch)["infer"], "batch": ds_batch}
                       if modality == "rgb" else {"note": configs.DEEPSTREAM_RGB_ONLY}),
    })
    write_json_atomic(out / configs.MODEL_RECORD, record)
    wrote(configs.MODEL_RECORD)
    write_text_atomic(out / MANIFEST, dump_json({"entries": sorted(summary.files)}))
    return summary

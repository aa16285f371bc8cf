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
from pathlib import Path
from typing import Any

from flowprep.errors import ConfigError
from flowprep.export import configs
from flowprep.export.config import ExportConfig, ExportSummary
from flowprep.export.onnx_export import OPSET, check_parity, convert_fp16, export_onnx
from flowprep.export.tensorrt import build_engine, command_line, tensorrt_status, trtexec_command
from flowprep.layout.names import removable, remove_inside, warn_collisions
from flowprep.layout.record import dump_json, write_json_atomic, write_text_atomic
from flowprep.train.checkpoint import Checkpoint, load_checkpoint, model_from_checkpoint
from flowprep.train.model_record import ModelRecord, checked_model_record
from flowprep.train.spec import input_shapes

log = logging.getLogger(__name__)
__all__ = ["ExportConfig", "ExportSummary", "artefact_names", "export", "export_checkpoint"]


def _triton_name(out: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", out.resolve().name) or "flowprep_model"


def artefact_names() -> set[str]:
    """Every file name an export may write (whatever the model)."""
    names = {
        "model.onnx",
        "model_fp16.onnx",
        "labels.txt",
        "flowprep_model.json",
        "config.pbtxt",
        "build_engine.sh",
        "model.engine",
        "labels_nvinfer.txt",
    }
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
            raise ConfigError(
                f"{path} is damaged ({exc}); remove it and the files it listed, or use another --out"
            ) from None
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
        raise ConfigError(
            f"{out / foreign[0]} was not written by flowprep export and an export would replace it"
            f"{f' (and {len(foreign) - 1} more)' if len(foreign) > 1 else ''}; move it away or "
            "choose another --out"
        )
    stale = sorted(n for n in owned if os.path.lexists(out / n))
    for n in stale:  # all checked before any is removed: a refusal leaves the earlier export whole
        removable(out, n, owned)
    if stale:
        log.warning("replacing the earlier export in %s (%d file(s))", out, len(stale))
    for n in stale:
        remove_inside(out, n, owned)
    write_text_atomic(out / MANIFEST, dump_json({"entries": sorted(planned)}))


def _planned(modality: str, arch: str, fp16: bool, engine: bool) -> set[str]:
    """Every file an export of this model may write (the manifest lists them before the first write)."""
    names = {"model.onnx", "labels.txt", "config.pbtxt", "build_engine.sh", configs.MODEL_RECORD}
    names |= {"model_fp16.onnx"} if fp16 else set()
    names |= {"model.engine"} if engine else set()
    if modality == "rgb":
        names |= set(configs.deepstream_names(arch).values()) | {"labels_nvinfer.txt"}
    return names


def _write_onnx(
    model: Any, shapes: dict[str, tuple[int, ...]], cfg: ExportConfig, summary: ExportSummary
) -> Path | None:
    """``model.onnx`` (and ``model_fp16.onnx`` with ``fp16``), each checked against PyTorch; returns the
    fp16 file or None. A model that fails its check is removed: it must not look deployable."""
    onnx_path = cfg.out / "model.onnx"
    export_onnx(model, shapes, onnx_path)
    try:
        summary.parity["fp32"] = check_parity(model, onnx_path, shapes)
    except Exception:
        onnx_path.unlink(missing_ok=True)
        raise
    summary.files.append("model.onnx")
    if not cfg.fp16:
        return None
    fp16_path = convert_fp16(onnx_path, cfg.out / "model_fp16.onnx")
    try:
        summary.parity["fp16"] = check_parity(model, fp16_path, shapes, fp16=True)
    except Exception:
        fp16_path.unlink(missing_ok=True)
        raise
    summary.files.append("model_fp16.onnx")
    return fp16_path


def _write(cfg: ExportConfig, summary: ExportSummary, name: str, text: str) -> None:
    (cfg.out / name).write_text(text, encoding="utf-8")
    summary.files.append(name)


def _write_tensorrt(
    shapes: dict[str, tuple[int, ...]], cfg: ExportConfig, fp16_path: Path | None, summary: ExportSummary
) -> list[str]:
    """``build_engine.sh`` (the trtexec lines, always) and ``model.engine`` where it can be built here;
    returns the TensorRT 10 command."""
    onnx_path, engine_path, profile = cfg.out / "model.onnx", cfg.out / "model.engine", cfg.profile
    cmd10 = trtexec_command(onnx_path.name, engine_path.name, shapes, profile, fp16=cfg.fp16, trt_major=10)
    cmd11 = trtexec_command(
        (fp16_path or onnx_path).name, engine_path.name, shapes, profile, fp16=cfg.fp16, trt_major=11
    )
    summary.trtexec = cmd10
    script = [
        "#!/bin/sh",
        "# Build a TensorRT engine from this folder on a machine with an NVIDIA GPU.",
        "# TensorRT 10.x:",
        command_line(cmd10),
        "# TensorRT 11.x (no --fp16 flag: precision comes from the ONNX graph):",
        "# " + command_line(cmd11),
        "",
    ]
    _write(cfg, summary, "build_engine.sh", "\n".join(script))
    if cfg.engine:
        ok, why = tensorrt_status()
        if ok:
            build_engine(onnx_path, engine_path, shapes, profile, fp16=cfg.fp16, fp16_onnx=fp16_path)
            summary.engine = str(engine_path)
            summary.files.append("model.engine")
        else:
            summary.engine_note = (
                f"no TensorRT engine built here ({why}); everything else is done. "
                "On the GPU machine run: " + command_line(cmd10)
            )
    return cmd10


def _write_deepstream(ckpt: Checkpoint, cfg: ExportConfig, summary: ExportSummary) -> None:
    """DeepStream's 3D action-recognition sample files for an RGB model (a note for other models)."""
    if ckpt.modality != "rgb":
        summary.deepstream_note = configs.DEEPSTREAM_RGB_ONLY
        return
    arch, frames, size = ckpt.arch, ckpt.frames, ckpt.input_size
    names = configs.deepstream_names(arch)
    files = {
        names["preprocess"]: configs.deepstream_preprocess(
            arch, frames, size, cfg.ds_batch, subsample=ckpt.sample_rate * ckpt.recipe.frame_step - 1
        ),
        names["infer"]: configs.deepstream_infer("model.onnx", "labels_nvinfer.txt", cfg.ds_batch, cfg.fp16),
        names["app"]: configs.deepstream_app(arch),
        "labels_nvinfer.txt": configs.nvinfer_labels_text(list(ckpt.classes)),
    }
    for fname, text in files.items():
        _write(cfg, summary, fname, text)


def _write_record(ckpt: Checkpoint, cfg: ExportConfig, name: str, cmd10: list[str], summary: ExportSummary) -> None:
    """``flowprep_model.json``: what ``flowprep infer`` and a reader of the folder need to know."""
    arch = ckpt.arch
    record = ModelRecord(
        arch=ckpt.arch,
        modality=ckpt.modality,
        frames=ckpt.frames,
        sample_rate=ckpt.sample_rate,
        input_size=ckpt.input_size,
        classes=ckpt.classes,
        recipe=ckpt.recipe,
        epoch=ckpt.epoch,
        best_acc=ckpt.best_acc,
        deploy={
            "onnx": {
                "file": "model.onnx",
                "fp16_file": "model_fp16.onnx" if cfg.fp16 else None,
                "opset": OPSET,
                "dynamic_axes": "batch only",
                "parity": summary.parity,
            },
            "triton": {"name": name, "max_batch_size": cfg.max_batch},
            "tensorrt": {
                "profile": {"min": cfg.min_batch, "opt": cfg.opt_batch, "max": cfg.max_batch},
                "engine": "model.engine" if summary.engine else None,
                "trtexec": command_line(cmd10),
            },
            "deepstream": (
                {
                    "preprocess": configs.deepstream_names(arch)["preprocess"],
                    "infer": configs.deepstream_names(arch)["infer"],
                    "batch": cfg.ds_batch,
                }
                if ckpt.modality == "rgb"
                else {"note": configs.DEEPSTREAM_RGB_ONLY}
            ),
        },
    )
    path = cfg.out / configs.MODEL_RECORD
    write_json_atomic(path, checked_model_record(record, path))
    summary.files.append(configs.MODEL_RECORD)


def export(cfg: ExportConfig) -> ExportSummary:
    """Export a ``flowprep train`` checkpoint (see the module docstring for the folder).

    Raises:
        CheckpointError, ExportError (failed export or parity), ConfigError (a file of an export's
        name in ``out`` that no export wrote: it is never replaced).
    """
    ckpt = load_checkpoint(cfg.checkpoint)  # class names checked: each survives every label file
    warn_collisions(ckpt.classes, str(cfg.checkpoint))
    model = model_from_checkpoint(ckpt)
    shapes = input_shapes(ckpt.arch, ckpt.modality, ckpt.frames, ckpt.input_size)
    cfg.out.mkdir(parents=True, exist_ok=True)
    _take_folder(cfg.out, _planned(ckpt.modality, ckpt.arch, cfg.fp16, cfg.engine))
    summary = ExportSummary(cfg.out, ckpt.arch, ckpt.modality)
    fp16_path = _write_onnx(model, shapes, cfg, summary)
    classes = list(ckpt.classes)
    _write(cfg, summary, "labels.txt", configs.labels_text(classes))
    name = cfg.triton_name or _triton_name(cfg.out)
    _write(cfg, summary, "config.pbtxt", configs.triton_config(name, shapes, len(classes), cfg.max_batch))
    cmd10 = _write_tensorrt(shapes, cfg, fp16_path, summary)
    _write_deepstream(ckpt, cfg, summary)
    _write_record(ckpt, cfg, name, cmd10, summary)
    write_text_atomic(cfg.out / MANIFEST, dump_json({"entries": sorted(summary.files)}))
    return summary


def export_checkpoint(
    checkpoint: Path,
    out: Path,
    fp16: bool = False,
    engine: bool = False,
    min_batch: int = 1,
    opt_batch: int = 4,
    max_batch: int = 8,
    ds_batch: int = 4,
    triton_name: str | None = None,
) -> ExportSummary:
    """:func:`export` of the :class:`ExportConfig` of these arguments (see there).

    Raises:
        CheckpointError, ExportError (failed export or parity), ConfigError (bad batch sizes).
    """
    return export(ExportConfig(checkpoint, out, fp16, engine, min_batch, opt_batch, max_batch, ds_batch, triton_name))

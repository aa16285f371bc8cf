"""The export stage's entry point, :func:`export` (``flowprep export``; config and summary in
:mod:`flowprep.export.config`): a checkpoint -> a deploy folder.

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
    .flowprep-export.json       the export's ownership manifest (the files above it wrote)

Every file is first written into ``.flowprep-export.tmp/`` inside the folder; only a complete,
checked set is moved into place (the model record last), so an export that fails part-way leaves
the earlier export, or nothing, never a half-made set that looks deployable. An export holds
``.flowprep-export.lock`` while it runs: a second export into the same folder is refused.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from flowprep.errors import ConfigError, OutputError, writing
from flowprep.export import deploy_files
from flowprep.export.config import ExportConfig, ExportSummary
from flowprep.export.onnx_export import OPSET, check_parity, convert_fp16, export_onnx
from flowprep.export.tensorrt import build_engine, command_line, tensorrt_status, trtexec_command
from flowprep.fsio.lock import FolderLock
from flowprep.fsio.owned import Manifest, check_no_link, make_dirs, removable, remove_inside
from flowprep.fsio.writing import write_json_atomic, write_text_atomic
from flowprep.layout.names import warn_collisions
from flowprep.loader.spec import input_shapes
from flowprep.train.checkpoint import load_checkpoint, model_from_checkpoint
from flowprep.train.checkpoint_meta import Checkpoint
from flowprep.train.model_record import MODEL_RECORD, ModelRecord, checked_model_record

log = logging.getLogger(__name__)
__all__ = ["artefact_names", "export", "export_checkpoint"]


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
        names.update(deploy_files.deepstream_names(arch).values())
    return names


#: the export's own manifest of the files it wrote into the deploy folder (an ownership manifest)
MANIFEST = ".flowprep-export.json"
#: held while an export writes into the folder: a second export into it is refused
LOCK = ".flowprep-export.lock"
#: the files of the export being made are written here, and moved into the folder once all are
STAGE = ".flowprep-export.tmp"


def _manifest(out: Path) -> Manifest:
    return Manifest(
        out, MANIFEST, artefact_names(), ConfigError, "remove it and the files it listed, or use another --out"
    )


def _owned(out: Path) -> set[str]:
    """Artefact names an earlier export wrote into ``out`` (a folder exported before the manifest
    existed, recognised by its ``flowprep_model.json``: the artefacts present)."""
    manifest = _manifest(out)
    if os.path.lexists(manifest.path):
        return manifest.read()
    if (out / MODEL_RECORD).is_file():
        return {n for n in artefact_names() if (out / n).is_file()}
    return set()


def _check_folder(out: Path) -> set[str]:
    """The names an earlier export wrote into ``out``, after refusing a folder where an artefact name
    holds a file no export wrote, or where one of the earlier export's files is a symlink (checked
    before the model is converted, so a refusal costs nothing and leaves the folder as it was).

    Raises:
        ConfigError: a file of one of the artefact names that no export wrote (named in the message),
            or a symlink among the earlier export's files.
    """
    owned = _owned(out)
    foreign = sorted(n for n in artefact_names() if os.path.lexists(out / n) and n not in owned)
    if foreign:
        raise ConfigError(
            f"{out / foreign[0]} was not written by flowprep export and an export would replace it"
            f"{f' (and {len(foreign) - 1} more)' if len(foreign) > 1 else ''}; move it away or "
            "choose another --out"
        )
    for n in sorted(owned):
        removable(out, n, owned)
    return owned


def _commit(out: Path, stage: Path, files: list[str], owned: set[str]) -> None:
    """Move the complete export from ``stage`` into ``out``, replacing the earlier export's files.

    The earlier model record goes first and the new one comes last, so at no moment does the folder
    hold a record beside files of another export; the manifest lists both sets until the end, so an
    interruption leaves nothing that a later export would take for the user's.
    """
    current = set(files)
    _manifest(out).write(owned | current)
    if MODEL_RECORD in owned:
        remove_inside(out, MODEL_RECORD, owned)
    for name in sorted(current - {MODEL_RECORD}):
        os.replace(check_no_link(stage.parent, f"{STAGE}/{name}"), out / name)
    stale = sorted(n for n in owned - current if os.path.lexists(out / n))
    if stale:
        log.warning("removed %d file(s) of the earlier export in %s: %s", len(stale), out, ", ".join(stale))
    for name in stale:  # no stale fp16 model or DeepStream config of another architecture stays
        remove_inside(out, name, owned)
    os.replace(stage / MODEL_RECORD, out / MODEL_RECORD)
    _manifest(out).write(current)


def _write_onnx(
    model: Any, shapes: dict[str, tuple[int, ...]], stage: Path, cfg: ExportConfig, summary: ExportSummary
) -> Path | None:
    """``model.onnx`` (and ``model_fp16.onnx`` with ``fp16``) in ``stage``, each checked against
    PyTorch (a failed check ends the export: the stage is discarded); returns the fp16 file or None."""
    onnx_path = stage / "model.onnx"
    export_onnx(model, shapes, onnx_path)
    summary.parity["fp32"] = check_parity(model, onnx_path, shapes)
    summary.files.append("model.onnx")
    if not cfg.fp16:
        return None
    fp16_path = convert_fp16(onnx_path, stage / "model_fp16.onnx")
    summary.parity["fp16"] = check_parity(model, fp16_path, shapes, fp16=True)
    summary.files.append("model_fp16.onnx")
    return fp16_path


def _write(stage: Path, summary: ExportSummary, name: str, text: str) -> None:
    write_text_atomic(stage / name, text)
    summary.files.append(name)


def _write_tensorrt(
    shapes: dict[str, tuple[int, ...]],
    stage: Path,
    cfg: ExportConfig,
    fp16_path: Path | None,
    summary: ExportSummary,
) -> list[str]:
    """``build_engine.sh`` (the trtexec lines, always) and ``model.engine`` where it can be built here;
    returns the TensorRT 10 command."""
    onnx_path, engine_path, profile = stage / "model.onnx", stage / "model.engine", cfg.profile
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
    _write(stage, summary, "build_engine.sh", "\n".join(script))
    if cfg.engine:
        ok, why = tensorrt_status()
        if ok:
            build_engine(onnx_path, engine_path, shapes, profile, fp16=cfg.fp16, fp16_onnx=fp16_path)
            summary.engine = str(cfg.out / engine_path.name)
            summary.files.append("model.engine")
        else:
            summary.engine_note = (
                f"no TensorRT engine built here ({why}); everything else is done. "
                "On the GPU machine run: " + command_line(cmd10)
            )
    return cmd10


def _write_deepstream(ckpt: Checkpoint, stage: Path, cfg: ExportConfig, summary: ExportSummary) -> None:
    """DeepStream's 3D action-recognition sample files for an RGB model (a note for other models)."""
    if ckpt.modality != "rgb":
        summary.deepstream_note = deploy_files.DEEPSTREAM_RGB_ONLY
        return
    arch, frames, size = ckpt.arch, ckpt.frames, ckpt.input_size
    names = deploy_files.deepstream_names(arch)
    files = {
        names["preprocess"]: deploy_files.deepstream_preprocess(
            arch, frames, size, cfg.ds_batch, subsample=ckpt.sample_rate * ckpt.recipe.frame_step - 1
        ),
        names["infer"]: deploy_files.deepstream_infer("model.onnx", "labels_nvinfer.txt", cfg.ds_batch, cfg.fp16),
        names["app"]: deploy_files.deepstream_app(arch),
        "labels_nvinfer.txt": deploy_files.nvinfer_labels_text(list(ckpt.classes)),
    }
    for fname, text in files.items():
        _write(stage, summary, fname, text)


def _write_record(
    ckpt: Checkpoint, stage: Path, cfg: ExportConfig, name: str, cmd10: list[str], summary: ExportSummary
) -> None:
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
                    "preprocess": deploy_files.deepstream_names(arch)["preprocess"],
                    "infer": deploy_files.deepstream_names(arch)["infer"],
                    "batch": cfg.ds_batch,
                }
                if ckpt.modality == "rgb"
                else {"note": deploy_files.DEEPSTREAM_RGB_ONLY}
            ),
        },
    )
    path = stage / MODEL_RECORD
    write_json_atomic(path, checked_model_record(record, cfg.out / MODEL_RECORD))
    summary.files.append(MODEL_RECORD)


def export(cfg: ExportConfig) -> ExportSummary:
    """Export a ``flowprep train`` checkpoint (see the module docstring for the folder).

    Raises:
        CheckpointError, ExportError (failed export or parity), ConfigError (a file of an export's
        name in ``out`` that no export wrote: it is never replaced; another export running into
        ``out``), OutputError (the folder cannot be written).
    """
    ckpt = load_checkpoint(cfg.checkpoint)  # class names checked: each survives every label file
    warn_collisions(ckpt.classes, str(cfg.checkpoint))
    model = model_from_checkpoint(ckpt)
    shapes = input_shapes(ckpt.arch, ckpt.modality, ckpt.frames, ckpt.input_size)
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the deploy folder {cfg.out}: {exc.strerror or exc}") from None
    with FolderLock(cfg.out, LOCK, "export"):
        owned = _check_folder(cfg.out)
        remove_inside(cfg.out, STAGE, (STAGE,))  # left by an export that was killed
        stage = make_dirs(cfg.out, STAGE)
        try:
            with writing(stage):
                summary = _write_all(ckpt, model, shapes, stage, cfg)
                _commit(cfg.out, stage, summary.files, owned)
        finally:
            remove_inside(cfg.out, STAGE, (STAGE,))
    return summary


def _write_all(
    ckpt: Checkpoint, model: Any, shapes: dict[str, tuple[int, ...]], stage: Path, cfg: ExportConfig
) -> ExportSummary:
    """Every file of the export, in ``stage``."""
    summary = ExportSummary(cfg.out, ckpt.arch, ckpt.modality)
    fp16_path = _write_onnx(model, shapes, stage, cfg, summary)
    classes = list(ckpt.classes)
    _write(stage, summary, "labels.txt", deploy_files.labels_text(classes))
    name = cfg.triton_name or _triton_name(cfg.out)
    _write(stage, summary, "config.pbtxt", deploy_files.triton_config(name, shapes, len(classes), cfg.max_batch))
    cmd10 = _write_tensorrt(shapes, stage, cfg, fp16_path, summary)
    _write_deepstream(ckpt, stage, cfg, summary)
    _write_record(ckpt, stage, cfg, name, cmd10, summary)
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

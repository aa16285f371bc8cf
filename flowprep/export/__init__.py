"""Deployment artefacts: ONNX (+ fp16), labels, the model record, Triton and DeepStream configs, TensorRT.

Modules: :mod:`.onnx_export` (export and the ONNX Runtime parity check), :mod:`.deploy_files` (the
text files beside the model), :mod:`.tensorrt` (optimization profile, ``trtexec`` command, engine build),
:mod:`.config` (``ExportConfig``, ``ExportSummary``), :mod:`.api` (the ``export`` stage function),
:mod:`flowprep.commands.export` (CLI). Import the submodules; several
import torch.
"""

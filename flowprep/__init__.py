"""flowprep: action-recognition video releases to training-ready RGB + optical-flow datasets.

The public Python API is the names of this package (``__all__``, documented in docs/api.md)::

    import flowprep

    summary = flowprep.build(flowprep.BuildConfig(source="my_videos", out="data/mine", flow="dis"))
    report = flowprep.verify("data/mine")
    ds = flowprep.open_dataset("data/mine")     # root, checked record, sides

One function per stage, each taking a typed config and returning a summary: :func:`build`
(:func:`build_hmdb5`, :func:`build_ucf101`), :func:`verify`, :func:`open_dataset`,
:func:`train_model`, :func:`evaluate_model`, :func:`export_model`, :func:`infer`,
:func:`preview_dataset`; the flow backends (:func:`flow_backends`, :func:`flow_backend_status`,
:func:`create_flow_backend`); the PyTorch loader (:class:`ClipDataset`, :class:`ShardStream`); and
one exception family (:class:`FlowprepError` and its subclasses: a one-line message saying what is
wrong and how to fix it). Internal module paths (``flowprep.builder.api`` ...) may move between
releases; these names stay.

``import flowprep`` is cheap: it never imports OpenCV, PyAV, torch, CUDA or VPI. Each public name
is imported on first use, with what it needs (``flowprep.train_model`` imports torch). Each stage
lives in its own package (``archive``, ``datasets``, ``video``, ``flow``, ``layout``, ``builder``,
``loader``, ``train``, ``export``, ``serve``, ``preview``, ``doctor``) and exposes plain typed
functions; the click commands (``flowprep.commands``, registered by ``flowprep.cli``) only parse
and report. Below the stages: ``fsio`` (the one gate to the file system), ``limits``, ``env``,
``errors`` (docs/architecture.md has the layers).
"""

import importlib
from typing import Any

__version__ = "0.1.0"

from flowprep.errors import (  # noqa: E402
    ArchiveError,
    BackendNotInstalledError,
    BackendUnavailableError,
    CheckpointError,
    ClipError,
    ConfigError,
    DatasetError,
    DecodeError,
    ExportError,
    FlowprepError,
    FlowResultError,
    FrameSizeError,
    OptionError,
    OutputError,
    WorkerDiedError,
)

#: public name -> (module, attribute), imported on first use. By name: the root package sits below
#: every layer (import-linter), only these re-exports reach up. ``train``, ``export`` and
#: ``preview`` are subpackages, so their stage functions are ``train_model``, ``export_model`` and
#: ``preview_dataset`` here.
_LAZY: dict[str, tuple[str, str]] = {
    # build
    "build": ("flowprep.builder.api", "build"),
    "build_hmdb5": ("flowprep.builder.api", "build_hmdb5"),
    "build_ucf101": ("flowprep.builder.api", "build_ucf101"),
    "BuildConfig": ("flowprep.builder.config", "BuildConfig"),
    "BuildSummary": ("flowprep.builder.config", "BuildSummary"),
    "FlowEncoding": ("flowprep.flow.encoding", "FlowEncoding"),
    "make_release_folder": ("flowprep.synth", "make_release_folder"),
    # a built dataset
    "verify": ("flowprep.layout.verify", "verify"),
    "VerifyReport": ("flowprep.layout.verify", "VerifyReport"),
    "open_dataset": ("flowprep.layout.dataset", "open_dataset"),
    "Dataset": ("flowprep.layout.dataset", "Dataset"),
    # flow backends
    "flow_backends": ("flowprep.flow.registry", "flow_backends"),
    "flow_backend_status": ("flowprep.flow.registry", "backend_status"),
    "create_flow_backend": ("flowprep.flow.registry", "create_backend"),
    "FlowBackend": ("flowprep.flow.base", "FlowBackend"),
    # the PyTorch loader
    "ClipDataset": ("flowprep.loader", "ClipDataset"),
    "ShardStream": ("flowprep.loader", "ShardStream"),
    # train, evaluate
    "train_model": ("flowprep.train.api", "train"),
    "TrainConfig": ("flowprep.train.config", "TrainConfig"),
    "TrainSummary": ("flowprep.train.config", "TrainSummary"),
    "evaluate_model": ("flowprep.train.api", "evaluate"),
    "EvalConfig": ("flowprep.train.config", "EvalConfig"),
    "EvalSummary": ("flowprep.train.config", "EvalSummary"),
    # export, infer, preview
    "export_model": ("flowprep.export.api", "export"),
    "ExportConfig": ("flowprep.export.config", "ExportConfig"),
    "ExportSummary": ("flowprep.export.config", "ExportSummary"),
    "infer": ("flowprep.serve.api", "infer"),
    "InferConfig": ("flowprep.serve.config", "InferConfig"),
    "InferSummary": ("flowprep.serve.config", "InferSummary"),
    "preview_dataset": ("flowprep.preview.api", "preview"),
    "PreviewConfig": ("flowprep.preview.config", "PreviewConfig"),
    "PreviewSummary": ("flowprep.preview.config", "PreviewSummary"),
}

__all__ = [
    "__version__",
    *_LAZY,
    "FlowprepError",
    "ArchiveError",
    "BackendNotInstalledError",
    "BackendUnavailableError",
    "CheckpointError",
    "ClipError",
    "ConfigError",
    "DatasetError",
    "DecodeError",
    "ExportError",
    "FlowResultError",
    "FrameSizeError",
    "OptionError",
    "OutputError",
    "WorkerDiedError",
]


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'flowprep' has no attribute {name!r}")
    value = getattr(importlib.import_module(where[0]), where[1])
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

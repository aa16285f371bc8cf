"""flowprep: action-recognition video releases to training-ready RGB + optical-flow datasets.

``import flowprep`` is cheap: it never imports OpenCV, PyAV, torch, CUDA or VPI. Each stage lives in
its own package (``archive``, ``datasets``, ``video``, ``flow``, ``layout``, ``build``, ``loader``,
``train``, ``export``, ``serve``) and exposes plain typed functions; ``flowprep.cli`` only parses and
reports. ``flowprep.ClipDataset`` and ``flowprep.ShardStream`` (the public PyTorch loader,
:mod:`flowprep.loader`) are imported, with torch, on first use.
"""

import importlib
from typing import Any

__version__ = "0.1.0"

from flowprep.errors import BackendUnavailableError, FlowprepError  # noqa: E402

__all__ = ["__version__", "FlowprepError", "BackendUnavailableError", "ClipDataset", "ShardStream"]


def __getattr__(name: str) -> Any:
    if name in ("ClipDataset", "ShardStream"):
        # by name: the root package sits below every layer (import-linter), only this re-export reaches up
        return getattr(importlib.import_module("flowprep.loader"), name)
    raise AttributeError(f"module 'flowprep' has no attribute {name!r}")

"""flowprep: action-recognition video releases to training-ready RGB + optical-flow datasets.

``import flowprep`` is cheap: it never imports OpenCV, PyAV, torch, CUDA or VPI. Each stage lives in
its own package (``archive``, ``datasets``, ``video``, ``flow``, ``layout``, ``build``, ``train``,
``export``, ``serve``) and exposes plain typed functions; ``flowprep.cli`` only parses and reports.
"""

__version__ = "0.1.0"

from flowprep.errors import BackendUnavailableError, FlowprepError  # noqa: E402

__all__ = ["__version__", "FlowprepError", "BackendUnavailableError"]

"""The infer stage's entry point: an :class:`~flowprep.serve.config.InferConfig` in, an
:class:`~flowprep.serve.config.InferSummary` out (both defined in :mod:`flowprep.serve.config`)::

    from flowprep.serve.api import infer
    from flowprep.serve.config import InferConfig

    summary = infer(InferConfig("clip.mp4", "deploy/model.onnx"), on_result=print)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowprep.serve.config import InferConfig, InferSummary
from flowprep.serve.infer import InferSession

__all__ = ["infer"]


def infer(cfg: InferConfig, on_result: Callable[[dict[str, Any]], None] | None = None) -> InferSummary:
    """Classify ``cfg.input`` with a sliding window; ``on_result`` gets each window's dict, then the
    clip verdict's (see ``docs/deploy.md``).

    Raises:
        ConfigError / DecodeError / CheckpointError / Backend*Error: one-line problems.
    """
    return InferSession(cfg, on_result).run()

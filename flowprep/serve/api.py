"""The infer stage: an :class:`InferConfig` in, an :class:`InferSummary` out.

from flowprep.serve.api import InferConfig, infer
summary = infer(InferConfig("clip.mp4", "deploy/model.onnx"), on_result=print)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowprep.serve.config import InferConfig, InferSummary
from flowprep.serve.infer import InferSession

__all__ = ["InferConfig", "InferSummary", "infer"]


def infer(cfg: InferConfig, on_result: Callable[[dict[str, Any]], None] | None = None) -> InferSummary:
    """Classify ``cfg.input`` with a sliding window; ``on_result`` gets each window's dict, then the
    clip verdict's (see ``docs/deploy.md``).

    Raises:
        ConfigError / DecodeError / CheckpointError / Backend*Error: one-line problems.
    """
    return InferSession(cfg, on_result).run()

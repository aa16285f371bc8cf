"""The train and evaluate stages' entry points: a config in, a summary out (imports torch)::

    from flowprep.train.api import train
    from flowprep.train.config import TrainConfig

    summary = train(TrainConfig(dataset="data/hmdb5", out="runs/rgb2d", epochs=10))
    print(summary.best_acc, summary.best)

Configs and summaries are defined in the torch-free :mod:`flowprep.train.config`.
"""

from __future__ import annotations

from flowprep.train.config import EvalConfig, EvalSummary, TrainConfig, TrainSummary
from flowprep.train.evaluate import evaluate_config
from flowprep.train.loop import train as _train

__all__ = ["evaluate", "train"]


def train(cfg: TrainConfig) -> TrainSummary:
    """Train a model, write its checkpoints and log (see :func:`flowprep.train.loop.train`)."""
    return _train(cfg)


def evaluate(cfg: EvalConfig) -> EvalSummary:
    """Evaluate a checkpoint and write its report (see :func:`flowprep.train.evaluate.evaluate_config`)."""
    return evaluate_config(cfg)

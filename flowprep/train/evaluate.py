"""Evaluation of a checkpoint on one side of a dataset: top-1, per-class accuracy, confusion matrix.

Modes (frame windows from :mod:`flowprep.loader.sampling`, center crop, no flip):

``center``  one window of T frames from the middle of each clip.
``conv``    10 windows centred on 10 equal segments; the clip's score is the mean of the windows'
            softmax probabilities, every segment counted once.
``all``     both.

Outputs in ``out`` (default ``<checkpoint dir>/eval-<side>``): ``report.json`` and, per mode,
``confusion_<mode>.txt`` and ``confusion_<mode>.png``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from flowprep.errors import DatasetError
from flowprep.fsio.writing import atomic_path, write_json_atomic, write_text_atomic
from flowprep.loader import sampling
from flowprep.loader.frames import load_windows, stream_length
from flowprep.loader.source import Clip, DatasetInfo, list_clips
from flowprep.loader.spec import streams as model_streams
from flowprep.loader.torchdata import to_model_inputs
from flowprep.train.checkpoint import load_checkpoint, model_from_checkpoint, recipe_differences
from flowprep.train.checkpoint_meta import Checkpoint
from flowprep.train.config import EvalConfig, EvalSummary, resolve_side

log = logging.getLogger(__name__)
__all__ = [
    "confusion_png",
    "confusion_text",
    "evaluate",
    "evaluate_config",
    "metrics",
]


def confusion_text(cm: np.ndarray, classes: list[str]) -> str:
    """Rows: true class; columns: predicted class (numbered as the rows); counts."""
    w = max(5, len(str(int(cm.max()))) + 1 if cm.size else 5)
    name_w = max(len(c) for c in classes) + 4
    head = " " * name_w + "".join(f"{j:>{w}d}" for j in range(len(classes)))
    rows = [f"{i:>2d} {c:<{name_w - 3}}" + "".join(f"{int(v):>{w}d}" for v in cm[i]) for i, c in enumerate(classes)]
    return "true \\ predicted\n" + head + "\n" + "\n".join(rows) + "\n"


def confusion_png(cm: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    """Row-normalised confusion matrix as an image (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(2 + 0.45 * n, 1.5 + 0.45 * n), dpi=100)
    ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        str(int(cm[i, j])),
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    fig.tight_layout()
    try:
        with atomic_path(Path(path)) as tmp:  # same suffix: matplotlib picks the format by it
            fig.savefig(tmp)
    finally:
        plt.close(fig)


def metrics(true: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Top-1, per-class accuracy and confusion matrix of integer labels ``(N,)``."""
    n = len(classes)
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (true, pred), 1)
    per_class = {
        c: {
            "correct": int(cm[i, i]),
            "total": int(cm[i].sum()),
            "accuracy": float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None,
        }
        for i, c in enumerate(classes)
    }
    accs = [v["accuracy"] for v in per_class.values() if v["accuracy"] is not None]
    return {
        "top1": float((true == pred).mean()) if len(true) else 0.0,
        "clips": int(len(true)),
        "mean_class_accuracy": float(np.mean(accs)) if accs else 0.0,
        "per_class": per_class,
        "confusion": cm.tolist(),
    }


def evaluate(
    checkpoint: Path,
    dataset: Path,
    mode: str = "center",
    out: Path | None = None,
    side: str | None = None,
    batch_size: int = 8,
    device: str = "auto",
    segments: int = sampling.CONV_SEGMENTS,
    progress: bool = True,
    arch: str | None = None,
    modality: str | None = None,
    allow_recipe_mismatch: bool = False,
) -> EvalSummary:
    """Evaluate ``checkpoint`` on ``dataset``: :func:`evaluate_config` of an :class:`EvalConfig` of these."""
    return evaluate_config(
        EvalConfig(
            checkpoint,
            dataset,
            mode,
            out,
            side,
            batch_size,
            device,
            segments,
            progress,
            arch,
            modality,
            allow_recipe_mismatch,
        )
    )


def _recipe_check(cfg: EvalConfig, ck: Checkpoint, info: DatasetInfo) -> list[str]:
    """The recipe differences between the checkpoint's training data and ``info`` (refused unless
    ``allow_recipe_mismatch``, then logged)."""
    diffs = recipe_differences(ck, info.record)
    if diffs and not cfg.allow_recipe_mismatch:
        raise DatasetError(
            f"{info.root} was built differently from the data {cfg.checkpoint} was trained "
            f"on (checkpoint != dataset): {'; '.join(diffs)}; rebuild it with the "
            "checkpoint's recipe, or pass --allow-recipe-mismatch"
        )
    if diffs:
        log.warning(
            "evaluating on a dataset built differently from the training data (checkpoint != dataset): %s",
            "; ".join(diffs),
        )
    return diffs


def _clip_scores(
    model: torch.nn.Module,
    ck: Checkpoint,
    info: DatasetInfo,
    clip: Clip,
    mode: str,
    cfg: EvalConfig,
    dev: torch.device,
) -> tuple[np.ndarray, int]:
    """Mean softmax probabilities ``float32`` ``(num_classes,)`` of one clip's windows, and their count."""
    streams = model_streams(ck.modality)
    frames, rate, size = ck.frames, ck.sample_rate, ck.input_size
    n = stream_length(clip, streams)
    wins = (
        sampling.center_indices(n, frames, rate)[None]
        if mode == "center"
        else sampling.conv_indices(n, frames, rate, cfg.segments)
    )
    arrs = load_windows(info, clip, streams, wins, size, "center")
    probs = []
    with torch.no_grad():
        for b in range(0, len(wins), cfg.batch_size):
            xs = to_model_inputs([torch.from_numpy(arrs[s][b : b + cfg.batch_size]) for s in streams], ck.arch)
            probs.append(torch.softmax(model(*[x.to(dev) for x in xs]).float(), 1).cpu())
    return torch.cat(probs).mean(0).numpy(), len(wins)


def _evaluate_mode(
    model: torch.nn.Module,
    ck: Checkpoint,
    info: DatasetInfo,
    clips: list[Clip],
    mode: str,
    cfg: EvalConfig,
    dev: torch.device,
    out: Path,
) -> dict[str, Any]:
    """One protocol over every clip: :func:`metrics` plus ``predictions``; writes the confusion files."""
    classes = list(ck.classes)
    remap = [classes.index(c) for c in info.classes]  # dataset label -> model label, by class name
    true, pred, rows = [], [], []
    for clip in tqdm(clips, desc=f"evaluate ({mode})", unit="clip", disable=not cfg.progress):
        p, windows = _clip_scores(model, ck, info, clip, mode, cfg, dev)
        t, k = remap[clip.label], int(p.argmax())
        true.append(t)
        pred.append(k)
        rows.append(
            {"id": clip.id, "true": classes[t], "pred": classes[k], "score": float(p[k]), "windows": int(windows)}
        )
    res = metrics(np.array(true, dtype=np.int64), np.array(pred, dtype=np.int64), classes)
    cm = np.array(res["confusion"])
    write_text_atomic(out / f"confusion_{mode}.txt", confusion_text(cm, classes))
    title = f"{ck.arch} {ck.modality} {mode}: top-1 {res['top1']:.3f}"
    confusion_png(cm, classes, out / f"confusion_{mode}.png", title)
    res["predictions"] = rows
    return res


def evaluate_config(cfg: EvalConfig) -> EvalSummary:
    """Evaluate ``cfg.checkpoint`` on ``cfg.dataset`` (root or its ``val``/``train`` folder).

    ``side`` defaults to the folder's (see :func:`resolve_side`). A dataset built with another recipe
    than the checkpoint's training data (:func:`~flowprep.train.checkpoint.recipe_differences`: flow
    backend/encoding, decode settings, RGB format) is refused unless ``allow_recipe_mismatch``,
    which logs a warning and lists the differences in the report's ``recipe_mismatch``.

    Returns:
        An :class:`EvalSummary`; its ``report`` (also written to ``out/report.json``): checkpoint
        facts, and per mode the :func:`metrics` plus the per-clip predictions.

    Raises:
        CheckpointError, DatasetError, ConfigError: bad checkpoint, dataset without the
            checkpoint's modality, with classes the model does not know or (without
            ``allow_recipe_mismatch``) another recipe, bad options.
    """
    side = resolve_side(cfg.dataset, cfg.side)
    ck = load_checkpoint(cfg.checkpoint)
    model = model_from_checkpoint(ck, cfg.arch, cfg.modality)
    info, clips = list_clips(cfg.dataset, ck.modality, side)
    classes = list(ck.classes)
    unknown = [c for c in info.classes if c not in classes]
    if unknown:
        raise DatasetError(f"{info.root} has classes the model was not trained on: {unknown}")
    diffs = _recipe_check(cfg, ck, info)
    dev = torch.device("cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    model.to(dev)
    out = Path(cfg.out) if cfg.out else Path(cfg.checkpoint).parent / f"eval-{side}"
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "checkpoint": str(cfg.checkpoint),
        "dataset": str(info.root),
        "arch": ck.arch,
        "modality": ck.modality,
        "frames": ck.frames,
        "sample_rate": ck.sample_rate,
        "input_size": ck.input_size,
        "classes": classes,
        "side": side,
        "recipe_mismatch": diffs,
        "modes": {},
    }
    for m in ["center", "conv"] if cfg.mode == "all" else [cfg.mode]:
        report["modes"][m] = _evaluate_mode(model, ck, info, clips, m, cfg, dev, out)
    write_json_atomic(out / "report.json", report)
    return EvalSummary(out, side, report["modes"], report)

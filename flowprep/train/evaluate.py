"""Evaluation of a checkpoint on one side of a dataset: top-1, per-class accuracy, confusion matrix.

Modes (frame windows from :mod:`flowprep.train.sampling`, center crop, no flip):

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

from flowprep.errors import ConfigError, DatasetError, writing
from flowprep.layout.record import SIDES, find_root, write_json_atomic
from flowprep.limits import check_count
from flowprep.train import sampling
from flowprep.train.checkpoint import load_checkpoint, model_from_checkpoint, recipe_differences
from flowprep.train.data import load_windows, open_dataset, stream_length, to_model_inputs
from flowprep.train.models import streams as model_streams

log = logging.getLogger(__name__)
MODES = ("center", "conv", "all")


def resolve_side(dataset: Path, side: str | None) -> str:
    """The side to evaluate: ``side``, or the folder's when ``dataset`` is ``<root>/train|val``,
    else ``"val"``.

    Raises:
        ConfigError: ``side`` is not a side, or contradicts the side folder ``dataset`` names.
        DatasetError: ``dataset`` is not a flowprep dataset (root or side folder).
    """
    if side is not None and side not in SIDES:
        raise ConfigError(f"side must be one of {SIDES}, got {side!r}")
    path = Path(dataset)
    folder = path.name if find_root(path) != path else None
    if folder is not None and side is not None and side != folder:
        raise ConfigError(f"{path} is the {folder} side of its dataset, but side {side!r} was asked; "
                          f"pass the dataset root to choose a side, or drop --side")
    return side or folder or "val"


def confusion_text(cm: np.ndarray, classes: list[str]) -> str:
    """Rows: true class; columns: predicted class (numbered as the rows); counts."""
    w = max(5, len(str(int(cm.max()))) + 1 if cm.size else 5)
    name_w = max(len(c) for c in classes) + 4
    head = " " * name_w + "".join(f"{j:>{w}d}" for j in range(len(classes)))
    rows = [f"{i:>2d} {c:<{name_w - 3}}" + "".join(f"{int(v):>{w}d}" for v in cm[i])
            for i, c in enumerate(classes)]
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
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def metrics(true: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Top-1, per-class accuracy and confusion matrix of integer labels ``(N,)``."""
    n = len(classes)
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (true, pred), 1)
    per_class = {c: {"correct": int(cm[i, i]), "total": int(cm[i].sum()),
                     "accuracy": float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None}
                 for i, c in enumerate(classes)}
    accs = [v["accuracy"] for v in per_class.values() if v["accuracy"] is not None]
    return {"top1": float((true == pred).mean()) if len(true) else 0.0, "clips": int(len(true)),
            "mean_class_accuracy": float(np.mean(accs)) if accs else 0.0,
            "per_class": per_class, "confusion": cm.tolist()}


def evaluate(checkpoint: Path, dataset: Path, mode: str = "center", out: Path | None = None,
             side: str | None = None, batch_size: int = 8, device: str = "auto",
             segments: int = sampling.CONV_SEGMENTS, progress: bool = True, arch: str | None = None,
             modality: str | None = None, allow_recipe_mismatch: bool = False) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on ``dataset`` (root or its ``val``/``train`` folder).

    ``arch``/``modality``, when given, are what the caller expects the checkpoint to be. ``side``
    defaults to the folder's (see :func:`resolve_side`). A dataset built with another recipe than
    the checkpoint's training data (:func:`~flowprep.train.checkpoint.recipe_differences`: flow
    backend/encoding, decode settings, RGB format) is refused unless ``allow_recipe_mismatch``,
    which logs a warning and lists the differences in the report's ``recipe_mismatch``.

    Returns:
        The report (also written to ``out/report.json``): checkpoint facts, and per mode the
        :func:`metrics` plus the per-clip predictions.

    Raises:
        CheckpointError, DatasetError, ConfigError: bad checkpoint, dataset without the
            checkpoint's modality, with classes the model does not know or (without
            ``allow_recipe_mismatch``) another recipe, bad options.
    """
    from tqdm import tqdm

    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {MODES}, got {mode!r}")
    check_count("--batch-size", batch_size, 1, 4096)
    check_count("segments", segments, 1, 1000)
    side = resolve_side(dataset, side)
    ck = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ck, arch, modality)
    info, clips = open_dataset(dataset, ck["modality"], side)
    classes = list(ck["classes"])
    unknown = [c for c in info.classes if c not in classes]
    if unknown:
        raise DatasetError(f"{info.root} has classes the model was not trained on: {unknown}")
    diffs = recipe_differences(ck, info.record)
    if diffs and not allow_recipe_mismatch:
        raise DatasetError(f"{info.root} was built differently from the data {checkpoint} was trained "
                           f"on (checkpoint != dataset): {'; '.join(diffs)}; rebuild it with the "
                           "checkpoint's recipe, or pass --allow-recipe-mismatch")
    if diffs:
        log.warning("evaluating on a dataset built differently from the training data "
                    "(checkpoint != dataset): %s", "; ".join(diffs))
    # dataset label -> model label, by class name
    remap = [classes.index(c) for c in info.classes]
    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    model.to(dev)
    streams = model_streams(ck["modality"])
    frames, rate, size = int(ck["frames"]), int(ck["sample_rate"]), int(ck["input_size"])
    modes = ["center", "conv"] if mode == "all" else [mode]
    out = Path(out) if out else Path(checkpoint).parent / f"eval-{side}"
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"checkpoint": str(checkpoint), "dataset": str(info.root),
                              "arch": ck["arch"], "modality": ck["modality"], "frames": frames,
                              "sample_rate": rate, "input_size": size, "classes": classes, "side": side,
                              "recipe_mismatch": diffs, "modes": {}}
    for m in modes:
        true, pred, rows = [], [], []
        for clip in tqdm(clips, desc=f"evaluate ({m})", unit="clip", disable=not progress):
            n = stream_length(clip, streams)
            wins = (sampling.center_indices(n, frames, rate)[None] if m == "center"
                    else sampling.conv_indices(n, frames, rate, segments))
            arrs = load_windows(info, clip, streams, wins, size, "center")
            probs = []
            with torch.no_grad():
                for b in range(0, len(wins), batch_size):
                    xs = to_model_inputs([torch.from_numpy(arrs[s][b:b + batch_size]) for s in streams],
                                         ck["arch"])
                    probs.append(torch.softmax(model(*[x.to(dev) for x in xs]).float(), 1).cpu())
            p = torch.cat(probs).mean(0).numpy()
            t, k = remap[clip.label], int(p.argmax())
            true.append(t)
            pred.append(k)
            rows.append({"id": clip.id, "true": classes[t], "pred": classes[k], "score": float(p[k]),
                         "windows": int(len(wins))})
        res = metrics(np.array(true, dtype=np.int64), np.array(pred, dtype=np.int64), classes)
        cm = np.array(res["confusion"])
        with writing(out / f"confusion_{m}.txt") as path:
            path.write_text(confusion_text(cm, classes))
        with writing(out / f"confusion_{m}.png") as path:
            confusion_png(cm, classes, path, f"{ck['arch']} {ck['modality']} {m}: top-1 {res['top1']:.3f}")
        res["predictions"] = rows
        report["modes"][m] = res
    write_json_atomic(out / "report.json", report)
    report["out"] = str(out)
    return report

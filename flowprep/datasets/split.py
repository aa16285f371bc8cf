"""Train/validation splits: seeded, per class, grouped by source video (HMDB51 sources, UCF101 groups)."""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from typing import Any

from flowprep.archive.scan import VideoEntry
from flowprep.datasets.base import Assignment, SplitRequest, SplitSource, order_classes, stem
from flowprep.datasets.hmdb51 import group_key
from flowprep.errors import ConfigError
from flowprep.layout.base import SIDES

log = logging.getLogger(__name__)

SPLIT_BY = ("group", "clip")


def _val_target(n: int, val_ratio: float) -> int:
    return min(max(1, round(n * val_ratio)), n - 1) if n > 1 else 0


def split_class(
    cls: str, names: list[str], val_ratio: float = 0.1, seed: int = 0, split_by: str = "group"
) -> dict[str, str]:
    """Split one class's clips into train and val.

    The validation side gets ``round(n * val_ratio)`` clips, at least one (when the class has two or
    more clips) and never all of them. With ``split_by="group"`` whole source videos are drawn (in a
    seeded random order) until the target is reached without overshooting where possible, so
    near-duplicate clips never straddle the split; a class whose clips all come from one source
    falls back to a per-clip split, with a warning. The result depends only on the set of names, the
    class, the ratio and the seed (not on listing order).

    Returns:
        clip name -> ``"train"`` or ``"val"``.
    """
    if split_by not in SPLIT_BY:
        raise ConfigError(f"--split-by must be one of {SPLIT_BY}, got {split_by!r}")
    if not 0 < val_ratio < 1:
        raise ConfigError(f"--val-ratio must be between 0 and 1, got {val_ratio}")
    names = sorted(set(names))
    target = _val_target(len(names), val_ratio)
    # bytes (the same seed as the str for UTF-8 names): a non-UTF-8 file name's surrogates would
    # make str seeding raise before the name checks could report it
    rng = random.Random(f"flowprep-split:{seed}:{cls}".encode("utf-8", "surrogateescape"))
    groups: dict[str, list[str]] = defaultdict(list)
    for name in names:
        groups[group_key(name, cls) if split_by == "group" else stem(name)].append(name)
    if split_by == "group" and len(groups) < 2 and len(names) > 1:
        log.warning("class %s: all %d clips come from one source video; splitting per clip", cls, len(names))
        groups = {stem(n): [n] for n in names}
    order = sorted(groups)
    rng.shuffle(order)
    val: set[str] = set()
    for key in order:
        if len(val) >= target:
            break
        if len(val) + len(groups[key]) <= target:
            val.update(groups[key])
    if len(val) < target and len(val) == 0 and target > 0:
        # Every group is bigger than the target: take the smallest one that leaves train non-empty.
        for key in sorted(order, key=lambda k: len(groups[k])):
            if len(groups[key]) < len(names):
                val.update(groups[key])
                break
    return {n: ("val" if n in val else "train") for n in names}


def split_all(
    clips: dict[str, list[str]], val_ratio: float = 0.1, seed: int = 0, split_by: str = "group"
) -> dict[str, dict[str, str]]:
    """:func:`split_class` for every class: class -> {clip name -> side}."""
    return {cls: split_class(cls, names, val_ratio, seed, split_by) for cls, names in sorted(clips.items())}


def side_counts(sides: dict[str, dict[str, str]]) -> dict[str, dict[str, int]]:
    """class -> {"train": n, "val": n} (``unused`` and ``unlisted`` clips not counted)."""
    return {cls: {s: sum(1 for v in m.values() if v == s) for s in SIDES} for cls, m in sorted(sides.items())}


class RandomSplit(SplitSource):
    """The seeded per-class split (:func:`split_all`), the default.

    ``order``: every class in label order (UCF101's ``classInd.txt`` when ``--splits`` gives it,
    ``where`` naming it), or None: the selected classes as given, or sorted.
    """

    def __init__(self, request: SplitRequest, order: list[str] | None = None, where: str = ""):
        super().__init__(request)
        self.order = order
        self.where = where

    def assign(self, clips: dict[str, list[VideoEntry]], selected: list[str]) -> Assignment:
        req = self.request
        classes = order_classes(selected, req.classes_given, self.order, self.where)
        names = {c: [v.name for v in clips[c]] for c in classes}
        split: dict[str, Any] = {
            "method": req.split_by,
            "official_split": None,
            "val_ratio": req.val_ratio,
            "seed": req.seed,
            "split_by": req.split_by,
        }
        if self.order is not None:
            split["classes_from"] = self.where
        return Assignment(classes=classes, sides=split_all(names, req.val_ratio, req.seed, req.split_by), split=split)

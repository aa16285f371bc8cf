"""Train/validation splits: seeded, per class, grouped by source video, or HMDB51's official ones."""

from __future__ import annotations

import logging
import random
from collections import defaultdict

from flowprep.datasets.hmdb51 import group_key, stem
from flowprep.errors import ConfigError

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


def official_sides(clips: dict[str, list[str]], table: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Sides from HMDB51's split files (see :func:`flowprep.datasets.hmdb51.parse_split_files`).

    Clips marked unused (code 0) get side ``"unused"``, clips the files do not list ``"unlisted"``;
    neither is built. Entries of the files with no clip in the release are logged.

    Raises:
        ConfigError: a selected class has no split file.
    """
    out: dict[str, dict[str, str]] = {}
    for cls, names in sorted(clips.items()):
        if cls not in table:
            raise ConfigError(f"the split files have no entry for class {cls!r}")
        sides = {name: table[cls].get(stem(name), "unlisted") for name in names}
        unlisted = sum(v == "unlisted" for v in sides.values())
        if unlisted:
            log.warning("class %s: %d clip(s) not listed in the split file; left out", cls, unlisted)
        ghosts = set(table[cls]) - {stem(n) for n in names}
        if ghosts:
            log.warning(
                "class %s: %d clip(s) of the split file are not in the release, e.g. %s",
                cls,
                len(ghosts),
                sorted(ghosts)[0],
            )
        out[cls] = sides
    return out


def side_counts(sides: dict[str, dict[str, str]]) -> dict[str, dict[str, int]]:
    """class -> {"train": n, "val": n} (``unused`` and ``unlisted`` clips not counted)."""
    return {
        cls: {s: sum(1 for v in m.values() if v == s) for s in ("train", "val")} for cls, m in sorted(sides.items())
    }

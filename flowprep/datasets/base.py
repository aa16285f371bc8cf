"""Split sources: where a build's train/val assignment and class order come from.

A *split source* takes the clips of the selected classes and says, for each clip, on which side it
goes (``"train"``, ``"val"``) or why it is left out, which classes the dataset has and in which label
order, and what the record's ``split`` section says. The conventions, one module each:

* :mod:`flowprep.datasets.split`: a seeded per-class split (``--val-ratio``, ``--split-by``), the default;
* :mod:`flowprep.datasets.hmdb51`: HMDB51's official split files (``<class>_test_splitN.txt``);
* :mod:`flowprep.datasets.ucf101`: UCF101's ``classInd.txt`` and ``trainlist0N``/``testlist0N``;
* :mod:`flowprep.datasets.lists`: any ``--train-list``/``--val-list`` files (``path [label]`` lines);
* :mod:`flowprep.datasets.folders`: a release already split into ``train/<class>/`` and ``val/<class>/``.

:func:`flowprep.datasets.sources.split_source` picks one for a build; a new convention is a module
with a :class:`SplitSource` subclass, registered there.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from flowprep.archive.scan import VideoEntry
from flowprep.errors import ConfigError
from flowprep.fsio.paths import printable

log = logging.getLogger(__name__)

#: a clip's "side" when it is not built -> the words the record's ``excluded`` list gives as the reason
EXCLUDED_REASONS = {
    "unused": "code 0 in the split file",
    "unlisted": "not in the split file",
    "unlisted_lists": "not in the split lists",
    "outside": "not under train/ or val/",
}
#: names of a long list shown in a message or a warning (the total is always given)
SHOWN = 10


def stem(name: str) -> str:
    """The file name without folder and extension (the dots inside HMDB names are kept)."""
    # a bare name (the usual case) is its own base name: pathlib dominated matching a UCF101-sized list
    bare = "/" not in name and "\\" not in name and name != "."
    base = name if bare else PurePosixPath(name.replace("\\", "/")).name
    return base.rsplit(".", 1)[0] if "." in base else base


def path_parts(path: str) -> list[str]:
    """The components of a path as a list file writes it (``/`` or ``\\``), without empty and ``.`` ones."""
    return [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]


def examples(items: Collection[str], shown: int = SHOWN) -> str:
    """The first ``shown`` items (sorted), comma-separated, and how many more: ``"a, b (+3 more)"``."""
    items = sorted(items)
    head = ", ".join(printable(i) for i in items[:shown])
    return head + (f" (+{len(items) - shown} more)" if len(items) > shown else "")


@dataclass(frozen=True)
class SplitRequest:
    """What a build asks of its split (the :class:`~flowprep.builder.config.BuildConfig` fields).

    Attributes:
        release: the release folder or archive (for paths inside it and its class list).
        splits: folder/archive of official split files (HMDB51's or UCF101's), or None.
        official_split: 1, 2 or 3 (needs ``splits``), or None.
        train_list, val_list: generic list files (both or neither).
        val_ratio, seed, split_by: the seeded split.
        allow_missing: list entries with no clip in the release are warned about and recorded instead
            of being an error.
        classes_given: the user chose the classes (``--classes``): they are all kept, even if a list
            gives one no clip; otherwise classes no list or side folder mentions are left out.
    """

    release: Path
    splits: Path | None = None
    official_split: int | None = None
    train_list: Path | None = None
    val_list: Path | None = None
    val_ratio: float = 0.1
    seed: int = 0
    split_by: str = "group"
    allow_missing: bool = False
    classes_given: bool = False


@dataclass
class Assignment:
    """The result of :meth:`SplitSource.assign`.

    Attributes:
        classes: the dataset's classes in label order (label id = index).
        sides: class -> {clip file name -> ``"train"``, ``"val"`` or a key of :data:`EXCLUDED_REASONS`},
            for every clip of every class in ``classes``.
        split: the record's ``split`` section, without ``counts``.
    """

    classes: list[str]
    sides: dict[str, dict[str, str]]
    split: dict[str, Any]


class SplitSource(ABC):
    """One convention of saying which clip goes where (see the module docstring)."""

    def __init__(self, request: SplitRequest):
        self.request = request

    @abstractmethod
    def assign(self, clips: dict[str, list[VideoEntry]], selected: list[str]) -> Assignment:
        """Sides for the clips of the ``selected`` classes (in the order the user gave, or sorted).

        Raises:
            ConfigError: the split cannot be followed exactly (malformed files, entries missing from
                the release, contradictions); the message names the file, the line or the clips.
        """


def no_split(method: str, **extra: Any) -> dict[str, Any]:
    """A record ``split`` section for a split that is given, not drawn (no ratio, no seed)."""
    return {"method": method, "official_split": None, "val_ratio": None, "seed": None, "split_by": None, **extra}


def order_classes(selected: list[str], given: bool, order: list[str] | None, where: str) -> list[str]:
    """The classes of the dataset in label order, when a split source fixes the order.

    Args:
        selected: the selected classes (as given, or sorted).
        given: whether the user chose them (``--classes``).
        order: every class the source knows, in label order; None: ``selected`` as it is.
        where: what holds ``order``, for messages (``"classInd.txt"``).

    Raises:
        ConfigError: a selected class the source does not know.
    """
    if order is None:
        return list(selected)
    known = set(order)
    unknown = [c for c in selected if c not in known]
    if unknown:
        hint = "" if given else "; choose the classes it has with --classes"
        raise ConfigError(f"{len(unknown)} class(es) are not in {where}: {examples(unknown)}{hint}")
    chosen = set(selected)
    out = [c for c in order if c in chosen]
    if given and out != list(selected):
        log.warning("classes are in %s's label order, not in the order given: %s", where, ", ".join(out))
    return out

"""Releases that come already split into folders: ``train/<class>/<clip>`` and ``val/<class>/<clip>``.

Kinetics downloads (and many re-packed datasets) arrive as ``train/<class>/*.mp4`` and
``val/<class>/*.mp4``, often beside a ``test/`` folder, in a folder or an archive (a wrapper folder
above them is fine). Such a release is recognised when the selected clips sit in class folders under
a ``train`` folder and under a ``val`` folder; its split is then kept exactly: a clip's side is the
folder above its class folder. Clips anywhere else (``test/<class>/``, a class folder at the top) are
left out, warned about and listed in the record's ``excluded``; without ``--classes``, a class with
no clip under ``train/`` or ``val/`` (a flat ``test/`` folder reads as a class named ``test``) is left
out with a warning. The same clip name in ``train/<class>/`` and ``val/<class>/`` is an error of the
release listing (clip names occur twice in one class).
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

from flowprep.archive.scan import VideoEntry
from flowprep.datasets.base import Assignment, SplitSource, examples, no_split, order_classes
from flowprep.layout.base import SIDES

log = logging.getLogger(__name__)


def side_folder(entry: VideoEntry, release: Path) -> str | None:
    """The name of the folder above a clip's class folder inside the release (``"train"`` for
    ``.../train/walk/a.mp4``), or None when the class folder is at the top."""
    member = entry.ref.member
    if entry.ref.archive is None:  # a file of a folder release: only its path inside the release counts
        path = Path(member)
        root = Path(release).resolve()
        parts = path.relative_to(root).parts if path.is_relative_to(root) else path.parts
    else:
        parts = PurePosixPath(member.replace("\\", "/")).parts
    return parts[-3] if len(parts) >= 3 else None


def is_presplit(clips: dict[str, list[VideoEntry]], release: Path) -> bool:
    """Whether some of ``clips`` lie under a ``train/<class>/`` folder and some under ``val/<class>/``."""
    found = {side_folder(v, release) for videos in clips.values() for v in videos}
    return set(SIDES) <= found


class FolderSplit(SplitSource):
    """The split of a release's ``train/`` and ``val/`` folders, exactly.

    ``order``: every class in label order (e.g. from UCF101's ``classInd.txt``), or None (the
    selected classes as given, or sorted).
    """

    def __init__(self, request, order: list[str] | None = None, where: str = ""):
        super().__init__(request)
        self.order = order
        self.where = where

    def assign(self, clips: dict[str, list[VideoEntry]], selected: list[str]) -> Assignment:
        req = self.request
        sides = {c: {v.name: self._side(v) for v in clips[c]} for c in selected}
        keep = list(selected)
        if not req.classes_given:
            keep = [c for c in selected if any(s in SIDES for s in sides[c].values())]
            dropped = sorted(set(selected) - set(keep))
            if dropped:
                log.warning(
                    "%d class(es) have no clip under train/ or val/; left out: %s", len(dropped), examples(dropped)
                )
        classes = order_classes(keep, req.classes_given, self.order, self.where)
        outside = [f"{c}/{n}" for c in classes for n, s in sides[c].items() if s == "outside"]
        if outside:
            log.warning(
                "%d clip(s) are not under train/ or val/; left out (the record's excluded lists them): %s",
                len(outside),
                examples(outside),
            )
        extra = {"classes_from": self.where} if self.order is not None else {}
        return Assignment(
            classes=classes,
            sides={c: sides[c] for c in classes},
            split=no_split("folders", folders={s: s for s in SIDES}, **extra),
        )

    def _side(self, entry: VideoEntry) -> str:
        side = side_folder(entry, self.request.release)
        return side if side in SIDES else "outside"

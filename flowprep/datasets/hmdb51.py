"""HMDB51 clip names, their tags, source videos, and the official split files.

A clip name is ``<source>_<action>_<body>_<camera>_<people>_<view>_<quality>_<n>.avi``, e.g.
``Bob's_#1_walk_f_cm_np1_fr_med_0.avi``. Several clips are cut from one source video; clips of the
same source look alike, so they are kept on one side of a train/val split.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from flowprep.archive.reader import read_text_files
from flowprep.archive.scan import VideoEntry
from flowprep.datasets.base import Assignment, SplitRequest, SplitSource, stem
from flowprep.datasets.ucf101 import parse_ucf_name
from flowprep.errors import ConfigError

log = logging.getLogger(__name__)

#: tag -> (human name, allowed values with their meaning), in name order
TAGS: dict[str, tuple[str, dict[str, str]]] = {
    "body": ("visible body part", {"f": "full", "u": "upper", "l": "lower", "h": "head"}),
    "camera": ("camera motion", {"cm": "motion", "nm": "static"}),
    "people": ("people", {"np1": "1", "np2": "2", "np3": "3"}),
    "view": ("viewpoint", {"fr": "front", "ba": "back", "le": "left", "ri": "right"}),
    "quality": ("quality", {"goo": "good", "med": "medium", "bad": "bad"}),
}

_TAIL = re.compile(
    r"_(?P<body>[fulh])_(?P<camera>cm|nm)_(?P<people>np[123])_(?P<view>fr|ba|le|ri)"
    r"_(?P<quality>goo|med|bad)_(?P<n>\d+)$"
)


@dataclass(frozen=True)
class ClipName:
    """What an HMDB51 clip name says. ``source`` is ``""`` when ``action`` is not found in the name."""

    stem: str
    source: str
    action: str
    tags: dict[str, str]
    index: int


def parse_clip_name(name: str, action: str | None = None) -> ClipName | None:
    """Parse an HMDB51 clip name; None if it does not carry the five tags and an index.

    Args:
        name: file name, with or without ``.avi``.
        action: the class, when known: the source is the part before ``_<action>``.
    """
    s = stem(name)
    m = _TAIL.search(s)
    if not m:
        return None
    head = s[: m.start()]
    tags = {k: m.group(k) for k in TAGS}
    if action and head.endswith("_" + action):
        source = head[: -len(action) - 1]
    elif action:
        source = ""
    else:
        source, _, action = head.rpartition("_")
    return ClipName(stem=s, source=source, action=action or "", tags=tags, index=int(m.group("n")))


def group_key(name: str, cls: str) -> str:
    """The source video a clip was cut from, so near-duplicates can stay on one side of a split.

    HMDB51 names give their source; UCF101 names (``v_<action>_gNN_cNN``) their group; any other
    name is its own group.
    """
    parsed = parse_clip_name(name, cls)
    if parsed is not None and parsed.source:
        return parsed.source
    ucf = parse_ucf_name(name)
    if ucf is not None:
        return ucf.group_key
    return stem(name)


_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>[123])\.txt$")


def parse_split_files(texts: dict[str, str], split: int) -> dict[str, dict[str, str]]:
    """Read HMDB51's official split files for one split.

    Args:
        texts: file base name -> content, e.g. ``{"walk_test_split1.txt": "clip.avi 1\\n..."}``.
        split: 1, 2 or 3.

    Returns:
        class -> {clip stem -> "train" | "val" | "unused"} (codes 1, 2, 0).

    Raises:
        ConfigError: no file for that split, or a malformed line.
    """
    if split not in (1, 2, 3):
        raise ConfigError(f"--official-split must be 1, 2 or 3, got {split}")
    sides = {"0": "unused", "1": "train", "2": "val"}
    out: dict[str, dict[str, str]] = {}
    for fname, text in texts.items():
        m = _SPLIT_FILE.match(PurePosixPath(fname).name)
        if not m or int(m.group("k")) != split:
            continue
        table: dict[str, str] = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            # names may contain spaces? HMDB's do not, but the code is always the last token.
            clip, _, code = line.rpartition(" ")
            if not clip or code not in sides:
                raise ConfigError(f"{fname}:{lineno}: expected '<clip>.avi <0|1|2>', got {line!r}")
            table[stem(clip.strip())] = sides[code]
        out[m.group("cls")] = table
    if not out:
        raise ConfigError(f"no HMDB51 split files for split {split} (expected <class>_test_split{split}.txt)")
    return out


def recognizes(texts: dict[str, str]) -> bool:
    """Whether split files (base name -> text) are HMDB51's: some are ``<class>_test_splitN.txt``."""
    return any(_SPLIT_FILE.match(PurePosixPath(n).name) for n in texts)


def official_sides(clips: dict[str, list[str]], table: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Sides from HMDB51's split files (see :func:`parse_split_files`).

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


class HMDB51Official(SplitSource):
    """HMDB51's official split N: code 1 -> train, 2 -> val, 0 and unlisted clips left out.

    HMDB51's files are per class and were written for its own release, so (unlike the list
    conventions) an entry with no clip is a warning, as it always was here.
    """

    def __init__(self, request: SplitRequest, texts: dict[str, str] | None = None):
        super().__init__(request)
        self.texts = texts

    def assign(self, clips: dict[str, list[VideoEntry]], selected: list[str]) -> Assignment:
        req = self.request
        if req.splits is None or req.official_split is None:
            raise ConfigError("--official-split needs --splits (the folder or archive with the split files)")
        texts = self.texts if self.texts is not None else read_text_files(req.splits)
        table = parse_split_files(texts, req.official_split)
        names = {c: [v.name for v in clips[c]] for c in selected}
        split: dict[str, Any] = {
            "method": "official",
            "official_split": req.official_split,
            "val_ratio": None,
            "seed": None,
            "split_by": None,
        }
        return Assignment(classes=list(selected), sides=official_sides(names, table), split=split)

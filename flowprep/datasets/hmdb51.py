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
_UCF = re.compile(r"^v_(?P<action>.+)_g(?P<group>\d+)_c(?P<n>\d+)$")


@dataclass(frozen=True)
class ClipName:
    """What an HMDB51 clip name says. ``source`` is ``""`` when ``action`` is not found in the name."""

    stem: str
    source: str
    action: str
    tags: dict[str, str]
    index: int


def stem(name: str) -> str:
    """The file name without folder and extension (the dots inside HMDB names are kept)."""
    base = PurePosixPath(name.replace("\\", "/")).name
    return base.rsplit(".", 1)[0] if "." in base else base


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
    m = _UCF.match(stem(name))
    if m:
        return "g" + m.group("group")
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

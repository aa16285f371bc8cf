"""Names that become path components, and the one way flowprep deletes anything.

Every class name (from a folder, an archive's name or a record), every clip folder name (from a file
name) and every name read back from a plan or split file passes :func:`name_problem` before it is
joined to an output path. Every deletion under an output folder goes through :func:`remove_inside`,
which proves the target lies inside one of the allowed top-level entries of that folder and follows
no symlink on the way.
"""

from __future__ import annotations

import logging
import os
import shutil
import unicodedata
from collections.abc import Collection, Iterable
from pathlib import Path

from flowprep.errors import ConfigError

log = logging.getLogger(__name__)

#: the longest file name common file systems accept (bytes of UTF-8)
MAX_NAME_BYTES = 255
#: characters a class name may not hold, with the file each would break (whitespace and line
#: breaks are refused as well: see :func:`class_name_problem`)
CLASS_NAME_BREAKERS = {
    ";": "DeepStream's labels_nvinfer.txt separates labels with ';'",
    ",": "comma-separated lists such as --classes split on ','",
}


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be one path component, or None if it can.

    Refused: empty, only dots (``.``, ``..``, ``...`` collapse or climb on some systems), path
    separators, NUL and other control characters, text that is not valid Unicode (undecodable bytes
    of a non-UTF-8 file name) and names over 255 bytes. HMDB51's ``#``, ``(``, ``&``, ``!``, ``'``,
    inner and leading dots of other names are fine.
    """
    if not name:
        return "empty name"
    if set(name) == {"."}:
        return "a name made only of dots"
    if "/" in name or "\\" in name:
        return "a path separator in the name"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "a control character in the name"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    if len(encoded) > MAX_NAME_BYTES:
        return f"a name longer than {MAX_NAME_BYTES} bytes"
    return None


def class_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a class name, or None if it can.

    A class name is a folder name (:func:`name_problem`) that also survives every label file
    flowprep writes, unescaped: one label a line (``labels.txt``, Triton's label files), fields
    separated by whitespace (``train_list.txt``, mmaction2's lists), labels separated by ``;``
    (DeepStream's ``labels_nvinfer.txt``), items separated by ``,`` (``--classes``). So no whitespace
    of any kind (``str.isspace``: spaces, tabs, line breaks, U+0085, U+2028, U+2029, no-break
    spaces) and no character of :data:`CLASS_NAME_BREAKERS`. The builder writes whitespace in a
    source's class folder as ``_`` before checking; names read back from a record or a checkpoint are
    checked as they are.
    """
    if not isinstance(name, str):
        return f"not a string but {type(name).__name__}"
    why = name_problem(name)
    if why is not None:
        return why
    if any(ch.isspace() for ch in name):
        return (
            "whitespace in the name (labels.txt holds one label a line and the train/val lists "
            "separate fields by whitespace)"
        )
    for ch, what in CLASS_NAME_BREAKERS.items():
        if ch in name:
            return f"a {ch!r} in the name ({what})"
    return None


def check_class_name(name: str, what: str = "class") -> str:
    """``name`` if it can be a class name (:func:`class_name_problem`); else ConfigError naming ``what``.

    Raises:
        ConfigError: one line, naming the character or rule the name breaks.
    """
    if isinstance(name, str) and name_problem(name) is not None:
        return check_name(name, what)  # "cannot be a folder name", as for any path component
    why = class_name_problem(name)
    if why is not None:
        shown = printable(name) if isinstance(name, str) else name
        raise ConfigError(f"{what} {shown!r} cannot be a class name ({why}); rename it in the source")
    return name


def collision_key(name: str) -> str:
    """The form under which two class names look the same to a person or a file system: NFKC,
    case-folded, NFKC again (Unicode's recommended caseless match: ``Walk``, ``WALK`` and ``ｗａｌｋ``
    share one key, as do ``é`` precomposed and ``e`` + combining accent)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def class_name_collisions(names: Iterable[str]) -> list[tuple[str, ...]]:
    """Groups of two or more distinct names with one :func:`collision_key`, in first-seen order.

    They are different labels to flowprep, but a case-insensitive file system (macOS, Windows)
    puts their folders in one, and a reader of a label file cannot tell them apart.
    """
    groups: dict[str, list[str]] = {}
    for n in names:
        group = groups.setdefault(collision_key(n), [])
        if n not in group:
            group.append(n)
    return [tuple(g) for g in groups.values() if len(g) > 1]


def warn_collisions(names: Iterable[str], where: str) -> list[tuple[str, ...]]:
    """Log a warning for each group of :func:`class_name_collisions`; returns the groups."""
    groups = class_name_collisions(names)
    for g in groups:
        log.warning(
            "%s: classes %s differ only in case or Unicode form; a case-insensitive file system "
            "merges their folders and a reader cannot tell their labels apart: consider renaming",
            where,
            ", ".join(repr(printable(n)) for n in g),
        )
    return groups


def printable(name: str) -> str:
    """``name`` with undecodable bytes (a non-UTF-8 file name) as U+FFFD: safe in messages and JSON."""
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that no byte decoded to
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def check_name(name: str, what: str) -> str:
    """``name`` if it is a safe path component; else ConfigError naming ``what`` (e.g. "class").

    Raises:
        ConfigError: see :func:`name_problem`.
    """
    why = name_problem(name)
    if why is not None:
        raise ConfigError(f"{what} {printable(name)!r} cannot be a folder name ({why}); rename it in the source")
    return name


def _checked_parts(root: Path, rel: str | Path) -> tuple[str, ...]:
    parts = Path(rel).parts
    if Path(rel).is_absolute() or not parts:
        raise ConfigError(f"refusing to remove {rel}: not a path inside {root}")
    for p in parts:
        if name_problem(p) is not None:
            raise ConfigError(f"refusing to remove {root / rel}: component {p!r} is not a plain name")
    return parts


def removable(root: Path, rel: str | Path, tops: Collection[str]) -> Path | None:
    """``root/rel`` if :func:`remove_inside` may delete it, None if it does not exist; checks only.

    Callers that delete several entries check them all first, so a refusal (a symlinked ``train/``)
    leaves the folder as it was instead of half removed.

    Raises:
        ConfigError: the path fails a check of :func:`remove_inside` (the one-line message names it).
    """
    root = Path(os.path.abspath(root))
    parts = _checked_parts(root, rel)
    path = root.joinpath(*parts)
    if parts[0] not in tops:
        raise ConfigError(f"refusing to remove {path}: not one of flowprep's entries in {root}")
    cur = root
    for p in parts:
        cur = cur / p
        if cur.is_symlink():
            raise ConfigError(
                f"refusing to remove {path}: {cur} is a symlink (flowprep never follows one "
                "out of the output folder); remove or replace it yourself"
            )
        if not os.path.lexists(cur):
            return None
    if root.resolve() not in path.resolve().parents:
        raise ConfigError(f"refusing to remove {path}: it resolves outside {root.resolve()}")
    return path


def remove_inside(root: Path, rel: str | Path, tops: Collection[str]) -> bool:
    """Delete ``root/rel`` (a file or a whole folder) if it provably lies inside ``root/<top>``.

    ``rel`` must be plain names (no ``.``, ``..``, separators inside a name), its first one of
    ``tops``; no component below ``root`` may be a symlink (a symlinked ``train/`` would lead the
    deletion elsewhere), and the resolved path must still lie under the resolved ``root``. A missing
    path is fine (returns False; True when something was removed).

    Raises:
        ConfigError: the path fails a check (the one-line message names it); nothing was removed.
    """
    path = removable(root, rel, tops)
    if path is None:
        return False
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    return True


def validate_component(name: str, what: str) -> str:
    """:func:`check_name` under the name the record checks and the tests use."""
    return check_name(name, what)

"""Names that become path components and class names: a class or clip name is checked before it
is joined to an output path (the path-component rules are :func:`flowprep.fsio.paths.name_problem`'s,
deletion is :func:`flowprep.fsio.owned.remove_inside`'s) and before it is written to a label file.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable

from flowprep.errors import ConfigError
from flowprep.fsio.paths import name_problem, printable

log = logging.getLogger(__name__)

#: characters a class name may not hold, with the file each would break (whitespace and line
#: breaks are refused as well: see :func:`class_name_problem`)
CLASS_NAME_BREAKERS = {
    ";": "DeepStream's labels_nvinfer.txt separates labels with ';'",
    ",": "comma-separated lists such as --classes split on ','",
}


def class_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a class name, or None if it can.

    A class name is a folder name (:func:`flowprep.fsio.paths.name_problem`) that also survives every label file
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


def check_name(name: str, what: str) -> str:
    """``name`` if it is a safe path component; else ConfigError naming ``what`` (e.g. "class").

    Raises:
        ConfigError: see :func:`name_problem`.
    """
    why = name_problem(name)
    if why is not None:
        raise ConfigError(f"{what} {printable(name)!r} cannot be a folder name ({why}); rename it in the source")
    return name


def validate_component(name: str, what: str) -> str:
    """:func:`check_name` under the name the record checks and the tests use."""
    return check_name(name, what)

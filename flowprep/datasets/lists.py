"""List files (``--train-list``/``--val-list``, and UCF101's lists) and matching them to a release.

A list file names one clip per line: ``relative/path`` or ``relative/path label``, separated by
whitespace (the path may hold spaces; the label is the last token when it is a whole number) or, in a
``.csv`` file or one whose first entry has a comma, by a comma (CSV quoting allowed). CRLF or LF line
ends; blank lines and lines starting with ``#`` are skipped, and so is a first line whose first field
is a column name (``path``, ``video``, ``file``, ``filename``, ``clip``, ``name``).

An entry is matched to a clip of the release by its last two path components, class folder and file
name, so a wrapper (``UCF-101/``), a side folder (``train/``) or an absolute prefix need not match;
the file name may lack its extension. An entry whose folder is no class of the release (or that is a
bare file name) is looked up by file name in every selected class. Entries of classes the release has
but the build does not select are ignored, and so, with ``--classes``, are entries looked up by file
name that no selected class has (they may belong to the others).

What stops the build (:class:`~flowprep.errors.ConfigError`, with the count and the first
:data:`~flowprep.datasets.base.SHOWN` names): a malformed line (file and line), entries no clip of the
release matches (unless ``allow_missing``: then they are warned about and recorded in the record's
``split.missing``), a clip on both lists, a bare name found in two classes, labels that contradict
each other (one class with two labels, one label for two classes) or the convention's ids. What is
warned about and recorded: clips of the release on no list (left out, in the record's ``excluded``),
a clip twice on one list, and (without ``--classes``) classes of the release no list mentions (left
out). Label ids, when the lists give them, fix the class order (sorted by label; the dataset's ids
are 0-based positions in that order, so lists labelled 0..N-1 keep their ids).
"""

from __future__ import annotations

import csv
import logging
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowprep.archive.reader import list_classes, read_text_file
from flowprep.archive.scan import VideoEntry
from flowprep.datasets.base import (
    Assignment,
    SplitSource,
    examples,
    no_split,
    order_classes,
    path_parts,
    stem,
)
from flowprep.errors import ConfigError
from flowprep.layout.base import SIDES

log = logging.getLogger(__name__)

_HEADER = ("path", "video", "file", "filename", "clip", "name")
_LABELLED = re.compile(r"(?P<path>.*?\S)\s+(?P<label>\d+)")


@dataclass(frozen=True)
class ListEntry:
    """One line of a list: its side, path as written (``/`` separators), label or None, and ``file:line``."""

    side: str
    path: str
    label: int | None
    where: str

    @property
    def parts(self) -> list[str]:
        return path_parts(self.path)


def _fields(line: str, as_csv: bool, where: str) -> tuple[str, str | None]:
    if as_csv:
        row = [f.strip() for f in next(csv.reader([line]))]
        if not 1 <= len(row) <= 2:
            raise ConfigError(f"{where}: expected 'path' or 'path,label', got {len(row)} fields: {line!r}")
        return row[0], (row[1] if len(row) == 2 else None)
    m = _LABELLED.fullmatch(line)
    return (m.group("path"), m.group("label")) if m else (line, None)


def parse_list(text: str, side: str, name: str) -> list[ListEntry]:
    """The entries of one list file (format in the module docstring).

    Args:
        text: the file's text; side: ``"train"`` or ``"val"``; name: the file's name, for messages.

    Raises:
        ConfigError: a line with an empty path, too many CSV fields, or a label that is not a whole number.
    """
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    as_csv = name.lower().endswith(".csv") or bool(lines and "," in lines[0][1])
    out: list[ListEntry] = []
    for i, (lineno, line) in enumerate(lines):
        where = f"{name}:{lineno}"
        path, label = _fields(line, as_csv, where)
        if i == 0 and path.lower() in _HEADER and (label is None or not label.isdigit()):
            continue  # a header row
        path = path.replace("\\", "/")
        if not path.strip("/."):
            raise ConfigError(f"{where}: no path in {line!r}")
        if label is not None and not (label.isascii() and label.isdigit()):
            raise ConfigError(f"{where}: the label must be a whole number >= 0, got {label!r}")
        out.append(ListEntry(side, path, int(label) if label is not None else None, where))
    return out


def read_list(path: Path, side: str) -> list[ListEntry]:
    """:func:`parse_list` of the file at ``path`` (a regular file of at most 64 MiB, UTF-8 or Latin-1)."""
    return parse_list(read_text_file(Path(path)), side, Path(path).name)


@dataclass
class ListMatch:
    """Entries matched to clips: class -> {clip name -> side}, class -> label (of labelled entries),
    and the entries that match no clip, by side."""

    sides: dict[str, dict[str, str]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in SIDES})


class _Index:
    """The selected clips, by (class, file name or stem) and by file name or stem alone."""

    def __init__(self, clips: dict[str, list[VideoEntry]]):
        self.key: dict[tuple[str, str], str] = {}
        self.bare: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for cls, videos in clips.items():
            for v in videos:
                self.key[(cls, v.name)] = v.name
                self.bare[v.name].add((cls, v.name))
        for cls, videos in clips.items():  # stems second: a full name always wins over a stem
            for v in videos:
                self.key.setdefault((cls, stem(v.name)), v.name)
                if stem(v.name) != v.name:
                    self.bare[stem(v.name)].add((cls, v.name))


def match_entries(
    entries: list[ListEntry],
    clips: dict[str, list[VideoEntry]],
    release_classes: Callable[[], set[str]],
    allow_missing: bool,
    given: bool,
    lists: str,
) -> ListMatch:
    """Match list entries to the clips of the selected classes (rules in the module docstring).

    Args:
        entries: of both lists; clips: class -> clips of the selected classes.
        release_classes: every class of the release (called only when an entry's folder is no
            selected class); allow_missing: warn about unmatched entries instead of raising.
        given: the classes were chosen (bare names found in none of them may belong to others).
        lists: the lists' names, for messages.

    Raises:
        ConfigError: see the module docstring.
    """
    index = _Index(clips)
    out = ListMatch()
    first: dict[tuple[str, str], ListEntry] = {}
    both: list[str] = []
    ambiguous: list[str] = []
    twice = ignored = unmatched_bare = 0
    labels: dict[str, dict[int, str]] = defaultdict(dict)  # class -> label -> where
    known: set[str] | None = None
    for e in entries:
        parts = e.parts
        folder = parts[-2] if len(parts) >= 2 else None
        if folder is not None and folder not in clips:
            known = release_classes() if known is None else known
            if folder in known:
                ignored += 1  # a class of the release that is not selected
                continue
        by_name = folder is None or folder not in clips  # no class folder: looked up in every class
        if folder is None or by_name:
            hits = index.bare.get(parts[-1], set())
        else:
            name = index.key.get((folder, parts[-1]))
            hits = {(folder, name)} if name is not None else set()
        if not hits:
            if by_name and given:
                unmatched_bare += 1
            else:
                out.missing[e.side].append(e.path)
            continue
        if len(hits) > 1:
            ambiguous.append(f"{e.where} {e.path} ({' or '.join(sorted(c for c, _ in hits))})")
            continue
        key = next(iter(hits))
        if key in first:
            if first[key].side == e.side:
                twice += 1
            else:
                both.append(f"{key[0]}/{key[1]} ({first[key].where}, {e.where})")
            continue
        first[key] = e
        out.sides.setdefault(key[0], {})[key[1]] = e.side
        if e.label is not None:
            labels[key[0]].setdefault(e.label, e.where)
    if ambiguous:
        raise ConfigError(
            f"{len(ambiguous)} bare file name(s) of {lists} match clips of several classes: "
            f"{examples(ambiguous)}; give them as <class>/<file>"
        )
    if both:
        raise ConfigError(f"{len(both)} clip(s) are on both the train and the val list: {examples(both)}")
    out.labels = _one_label_each(labels)
    if twice:
        log.warning("%d clip(s) are listed twice on one list of %s; counted once", twice, lists)
    if ignored or unmatched_bare:
        log.info("%d entr(ies) of %s belong to classes not selected", ignored + unmatched_bare, lists)
    _report_missing(out.missing, lists, allow_missing)
    return out


def _one_label_each(labels: dict[str, dict[int, str]]) -> dict[str, int]:
    """class -> its label; ConfigError when a class has two labels or two classes share one."""
    two = [
        f"{c} ({', '.join(f'{n} at {w}' for n, w in sorted(ls.items()))})" for c, ls in labels.items() if len(ls) > 1
    ]
    if two:
        raise ConfigError(f"{len(two)} class(es) have two labels in the lists: {examples(two)}")
    out = {c: next(iter(ls)) for c, ls in labels.items()}
    by_label: dict[int, list[str]] = defaultdict(list)
    for c, n in out.items():
        by_label[n].append(c)
    shared = [f"{n} ({', '.join(sorted(cs))})" for n, cs in sorted(by_label.items()) if len(cs) > 1]
    if shared:
        raise ConfigError(f"{len(shared)} label(s) are given to several classes in the lists: {examples(shared)}")
    return out


def _report_missing(missing: dict[str, list[str]], lists: str, allow: bool) -> None:
    n = sum(len(v) for v in missing.values())
    if not n:
        return
    text = (
        f"{n} entr{'y' if n == 1 else 'ies'} of {lists} name clips the release does not have "
        f"({len(missing['train'])} on the train list, {len(missing['val'])} on the val list): "
        f"{examples([p for side in SIDES for p in missing[side]])}"
    )
    if not allow:
        raise ConfigError(
            f"{text}; check the release and the lists, or pass --allow-missing-clips to build without them"
        )
    log.warning("%s; left out (--allow-missing-clips), listed in the record's split.missing", text)


def list_assignment(
    match: ListMatch,
    clips: dict[str, list[VideoEntry]],
    selected: list[str],
    given: bool,
    split: dict[str, Any],
    order: list[str] | None = None,
    where: str = "the lists' labels",
) -> Assignment:
    """The :class:`Assignment` of matched lists: classes (in ``order``, or by the lists' labels when
    they give any), sides (``"unlisted_lists"`` for clips on no list) and ``split`` (+ ``missing``)."""
    if order is None and match.labels:
        unlabelled = sorted(c for c in match.sides if c not in match.labels)
        if unlabelled:
            raise ConfigError(f"the lists give labels, but none to {len(unlabelled)} class(es): {examples(unlabelled)}")
        order = sorted(match.labels, key=lambda c: match.labels[c])
        if given:
            order += sorted(c for c in selected if c not in match.labels)  # listed nowhere: after the others
    keep = list(selected)
    if not given:
        keep = [c for c in selected if c in match.sides]
        dropped = [c for c in selected if c not in match.sides]
        if dropped:
            log.warning(
                "%d class(es) of the release have no clip on the lists; left out: %s", len(dropped), examples(dropped)
            )
        if not keep:
            raise ConfigError("no clip of the release is on the lists")
    classes = order_classes(keep, given, order, where)
    sides = {c: {v.name: match.sides.get(c, {}).get(v.name, "unlisted_lists") for v in clips[c]} for c in classes}
    unlisted = [f"{c}/{n}" for c in classes for n, s in sides[c].items() if s == "unlisted_lists"]
    if unlisted:
        log.warning(
            "%d clip(s) of the release are on no list; left out (the record's excluded lists them): %s",
            len(unlisted),
            examples(unlisted),
        )
    if any(match.missing.values()):
        split = {**split, "missing": {s: sorted(match.missing[s]) for s in SIDES}}
    return Assignment(classes=classes, sides=sides, split=split)


class ListFiles(SplitSource):
    """``--train-list`` and ``--val-list``: the given split, exactly."""

    def assign(self, clips: dict[str, list[VideoEntry]], selected: list[str]) -> Assignment:
        req = self.request
        if req.train_list is None or req.val_list is None:
            raise ConfigError("give both --train-list and --val-list")
        names = {"train": Path(req.train_list).name, "val": Path(req.val_list).name}
        entries = read_list(req.train_list, "train") + read_list(req.val_list, "val")
        match = match_entries(
            entries,
            {c: clips[c] for c in selected},
            lambda: set(list_classes(req.release, quiet=True)),
            req.allow_missing,
            req.classes_given,
            f"{names['train']} and {names['val']}",
        )
        return list_assignment(match, clips, selected, req.classes_given, no_split("lists", lists=names))

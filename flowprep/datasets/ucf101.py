"""UCF101: clip names, ``classInd.txt`` and the official train/test lists.

The release, ``UCF101.rar``, holds ``UCF-101/<Class>/v_<Class>_gNN_cNN.avi``: clip NN of group NN,
a group being the clips cut from one long video (25 groups a class, 4 to 7 clips a group). The split
archive, ``UCF101TrainTestSplits-RecognitionTask.zip``, holds ``ucfTrainTestlist/`` with
``classInd.txt`` (``<id> <Class>``, ids 1 to 101, the label order published models use),
``trainlist0{1,2,3}.txt`` (``<Class>/<clip>.avi <id>``) and ``testlist0{1,2,3}.txt``
(``<Class>/<clip>.avi``), CRLF line ends. Official split N: trainlist0N is the training side and
testlist0N the validation side, exactly; every group is on one side.

The class folder and the clip names do not always agree on case (``HandstandPushups/v_HandStandPushups_...``):
clips are matched by class folder and file name as the lists write them, never by the name's action.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flowprep.archive.reader import list_classes
from flowprep.archive.scan import VideoEntry
from flowprep.datasets.base import Assignment, SplitRequest, SplitSource, examples, path_parts, stem
from flowprep.datasets.lists import ListEntry, list_assignment, match_entries, parse_list
from flowprep.errors import ConfigError
from flowprep.layout.base import SIDES

CLASS_IND = "classInd.txt"
_NAME = re.compile(r"^v_(?P<action>.+)_g(?P<group>\d+)_c(?P<clip>\d+)$")
_CLASS_LINE = re.compile(r"(?P<id>\d+)\s+(?P<cls>\S.*)")


@dataclass(frozen=True)
class UcfName:
    """What a UCF101 clip name ``v_<action>_gNN_cNN`` says: the action as written, group and clip
    numbers, and the group as written (``"g08"``: the key that keeps a group on one side of a split)."""

    action: str
    group: int
    clip: int
    group_key: str


def parse_ucf_name(name: str) -> UcfName | None:
    """Parse ``v_<action>_gNN_cNN[.avi]`` (any folder); None for any other name."""
    m = _NAME.match(stem(name))
    if not m:
        return None
    return UcfName(
        action=m.group("action"),
        group=int(m.group("group")),
        clip=int(m.group("clip")),
        group_key="g" + m.group("group"),
    )


def parse_class_ind(text: str, name: str = CLASS_IND) -> list[str]:
    """The classes of ``classInd.txt`` in id order (id 1 first).

    Raises:
        ConfigError: a malformed line, a repeated id or class, or ids that are not 1..N.
    """
    ids: dict[int, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        m = _CLASS_LINE.fullmatch(line)
        if not m:
            raise ConfigError(f"{name}:{lineno}: expected '<id> <class>', got {line!r}")
        k, cls = int(m.group("id")), m.group("cls").strip()
        if k in ids or cls in ids.values():
            raise ConfigError(f"{name}:{lineno}: {'id ' + str(k) if k in ids else 'class ' + cls} is given twice")
        ids[k] = cls
    if not ids:
        raise ConfigError(f"{name} lists no class")
    if sorted(ids) != list(range(1, len(ids) + 1)):
        raise ConfigError(f"{name}: the ids must be 1 to {len(ids)}, got {min(ids)} to {max(ids)} with gaps")
    return [ids[k] for k in sorted(ids)]


def recognizes(texts: dict[str, str]) -> bool:
    """Whether split files (base name -> text) are UCF101's: they hold ``classInd.txt``."""
    return CLASS_IND in texts


def _need(texts: dict[str, str], name: str, where: str) -> str:
    if name not in texts:
        have = ", ".join(sorted(n for n in texts if n.startswith(("trainlist", "testlist", "class")))) or "none"
        raise ConfigError(f"{where}: no {name} among UCF101's list files (found: {have})")
    return texts[name]


class UCF101Official(SplitSource):
    """UCF101's official split N: ``trainlist0N`` -> train, ``testlist0N`` -> val; class order from classInd.txt."""

    def __init__(self, request: SplitRequest, texts: dict[str, str]):
        super().__init__(request)
        self.texts = texts

    def assign(self, clips: dict[str, list[VideoEntry]], selected: list[str]) -> Assignment:
        req = self.request
        k = req.official_split
        if k not in (1, 2, 3):
            raise ConfigError(f"--official-split must be 1, 2 or 3, got {k}")
        where = str(req.splits)
        order = parse_class_ind(_need(self.texts, CLASS_IND, where))
        names = {"train": f"trainlist0{k}.txt", "val": f"testlist0{k}.txt"}
        entries = [e for side in SIDES for e in parse_list(_need(self.texts, names[side], where), side, names[side])]
        ids = {c: i + 1 for i, c in enumerate(order)}
        wrong = [
            f"{e.where} {e.path} (label {e.label}, classInd.txt: {ids.get(_folder(e.path), 'no such class')})"
            for e in entries
            if e.label is not None and ids.get(_folder(e.path)) != e.label
        ]
        if wrong:
            raise ConfigError(f"{len(wrong)} label(s) of {names['train']} disagree with {CLASS_IND}: {examples(wrong)}")
        # checked against classInd.txt: the generic checks of the labels would only repeat it
        entries = [ListEntry(e.side, e.path, None, e.where) for e in entries]
        match = match_entries(
            entries,
            {c: clips[c] for c in selected},
            lambda: set(list_classes(req.release, quiet=True)),
            req.allow_missing,
            req.classes_given,
            f"{names['train']} and {names['val']}",
        )
        split = {
            "method": "official",
            "official_split": k,
            "val_ratio": None,
            "seed": None,
            "split_by": None,
            "convention": "ucf101",
            "lists": names,
            "classes_from": CLASS_IND,
        }
        return list_assignment(match, clips, selected, req.classes_given, split, order, CLASS_IND)


def _folder(path: str) -> str:
    parts = path_parts(path)
    return parts[-2] if len(parts) >= 2 else ""

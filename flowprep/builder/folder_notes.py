"""What a build keeps in ``<out>/.flowprep/`` for later processes, and how damaged state files are read.

A build's processes (shards on other nodes, a later ``flowprep finalize``) share no memory, only
the output folder. :class:`BuildNotes` (a part of :class:`~flowprep.builder.folder.BuildFolder`,
which owns the paths) writes and reads what they pass on::

    build.json    what `flowprep finalize` needs to re-make the plan (config, source paths, flow)
    failed/       one note per failed clip (why it failed)
    decode/       one note per built clip that lost frames to decode errors
    reports/      one report per shard (``shard-K-of-N.json``)

Every file is written aside and renamed (:func:`~flowprep.fsio.writing.write_text_atomic`). A state file
that cannot be read is one line naming it (:func:`read_state_fields`); a torn note only loses the
reason or warning it carried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flowprep.errors import DatasetError
from flowprep.fsio.owned import remove_inside
from flowprep.fsio.reading import MAX_JSON_BYTES, read_json, try_read_bytes
from flowprep.fsio.writing import dump_json, write_text_atomic
from flowprep.layout.paths import STATE_DIR

T = TypeVar("T")


def _damaged_hint(path: Path) -> str:
    return f"(damaged or edited by hand); remove the output folder {path.parent.parent} and build again"


def _read_json(path: Path) -> Any:
    try:
        return read_json(path, what="build state file", owned=True, error=DatasetError)
    except DatasetError as exc:
        raise DatasetError(f"{exc} {_damaged_hint(path)}") from None


def read_state_fields(path: Path, **fields: type) -> dict[str, Any]:
    """The JSON object in ``path``; each of ``fields`` present must have its type (a damaged or
    hand-edited state file is one line naming it, not an AttributeError deep in the build).

    Raises:
        DatasetError: unreadable, not an object, or a field of another type.
    """
    d = _read_json(path)
    bad = [k for k, kind in fields.items() if isinstance(d, dict) and k in d and not isinstance(d[k], kind)]
    if not isinstance(d, dict) or bad:
        why = "not a JSON object" if not isinstance(d, dict) else f"{bad[0]!r} has the wrong type"
        raise DatasetError(f"cannot read build state file {path}: {why} {_damaged_hint(path)}")
    return d


class BuildNotes:
    """The build state, failure and decode notes and shard reports of one output folder.

    A part of :class:`~flowprep.builder.folder.BuildFolder`, which sets the paths below.
    """

    out: Path
    build_state: Path
    failed_dir: Path
    decode_dir: Path
    reports_dir: Path

    def save_state(self, state: dict[str, Any]) -> None:
        """Write ``build.json`` unless it already holds the same state (shards start together)."""
        text = dump_json(state)
        # through the gate: a link or a FIFO planted at the name is not read (the write replaces it)
        old, _ = try_read_bytes(self.build_state, MAX_JSON_BYTES, owned=True)
        if old == text.encode("utf-8"):
            return
        write_text_atomic(self.build_state, text)

    def load_state(self) -> dict[str, Any]:
        """``build.json``. Raises DatasetError when there is none or it cannot be read."""
        if not self.build_state.is_file():
            raise DatasetError(
                f"{self.out} has no build state ({STATE_DIR}/{self.build_state.name}); it was "
                "not made by `flowprep build` (or by a version before 0.2)"
            )
        return read_state_fields(self.build_state)

    def _note_path(self, clip_id: str, folder: Path | None = None) -> Path:
        return (folder or self.failed_dir) / f"{hashlib.sha1(clip_id.encode()).hexdigest()[:20]}.json"

    def note_decode_errors(self, clip_id: str, lost: int, expected: int) -> None:
        """Remember (before the clip is published) that it lost ``lost`` of ``expected`` frames; 0 clears."""
        p = self._note_path(clip_id, self.decode_dir)
        if lost <= 0:
            remove_inside(self.out, str(p.relative_to(self.out)), (STATE_DIR,))
            return
        p.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(p, dump_json({"id": clip_id, "lost": lost, "expected": expected}))

    def read_decode_errors(self) -> dict[str, int]:
        """clip id -> frames its video lost to decode errors (clips without loss are absent)."""
        # a torn note only loses the warning; the frames on disk are what they are
        return _read_notes(self.decode_dir, "decode note", lambda d: int(d["lost"]))

    def note_failures(self, failed: list[tuple[str, str]]) -> None:
        """Remember why clips failed, for a record written later by another process."""
        for clip_id, error in failed:
            p = self._note_path(clip_id)
            p.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(p, dump_json({"id": clip_id, "error": error}))

    def read_failures(self) -> dict[str, str]:
        """clip id -> last recorded failure reason."""
        # a note is a courtesy; a torn one only loses the reason
        return _read_notes(self.failed_dir, "failure note", lambda d: str(d["error"]))

    def write_shard_report(self, shard: tuple[int, int], report: dict[str, Any]) -> Path:
        """``reports/shard-K-of-N.json``: one file per shard, never shared."""
        k, n = shard
        p = self.reports_dir / f"shard-{k}-of-{n}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(p, dump_json(report))
        return p

    def shard_counts(self) -> set[int]:
        """The N of every shard report present (one value when the shards agree)."""
        ns = set()
        for p in self.reports_dir.glob("shard-*-of-*.json") if self.reports_dir.is_dir() else []:
            try:
                ns.add(int(p.stem.rsplit("-", 1)[1]))
            except ValueError:
                continue
        return ns


def _read_notes(folder: Path, what: str, value: Callable[[Any], T]) -> dict[str, T]:
    """clip id -> ``value(note)`` for each ``*.json`` note in ``folder`` (none if it is absent),
    skipping a note that is unreadable, torn or without the fields ``value`` takes."""
    notes: dict[str, T] = {}
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            d = read_json(p, what=what, owned=True, error=DatasetError)
            notes[str(d["id"])] = value(d)
        except (DatasetError, ValueError, KeyError, TypeError):
            continue
    return notes

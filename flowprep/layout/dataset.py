"""A built dataset, opened: its root folder, its checked record and the sides it holds.

::

    ds = flowprep.open_dataset("data/hmdb5")      # the root, or its train/ or val/ folder
    ds.root, ds.layout, ds.classes, ds.sides      # Path, "tao", ["push", ...], ("train", "val")
    ds.clips("val")                               # the record's entries of the built val clips

It reads only ``flowprep.json`` (no image is opened; ``flowprep.verify`` checks the images), so it
is cheap on any dataset size. The public loader (:mod:`flowprep.loader`) reads the images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowprep.errors import DatasetError
from flowprep.layout.record import SIDES, find_root, read_record


@dataclass(frozen=True)
class Dataset:
    """A built dataset.

    Attributes:
        root: the folder holding ``flowprep.json``.
        record: the dataset record, checked against its schema
            (:func:`flowprep.layout.record.read_record`): classes, split, decode, flow backend and
            encoding, and one entry per clip (``id``, ``class``, ``label``, ``side``, ``frames``,
            ``status``).
        sides: the sides (``"train"``, ``"val"``, in that order) with at least one built clip.
    """

    root: Path
    record: dict[str, Any]
    sides: tuple[str, ...]

    @property
    def layout(self) -> str:
        """``"tao"`` or ``"mmaction2"``."""
        return str(self.record.get("layout", "tao"))

    @property
    def classes(self) -> list[str]:
        """Class names; a class's label is its index."""
        return list(self.record["classes"])

    def clips(self, side: str) -> list[dict[str, Any]]:
        """The record's entries of ``side``'s built clips (status ``ok``), in the record's order.

        Raises:
            DatasetError: ``side`` is not ``"train"`` or ``"val"``.
        """
        if side not in SIDES:
            raise DatasetError(f"side must be one of {SIDES}, got {side!r}")
        return [c for c in self.record.get("clips", []) if c["side"] == side and c["status"] == "ok"]


def open_dataset(path: str | Path) -> Dataset:
    """Open the dataset at ``path`` (its root, or its ``train``/``val`` folder).

    Raises:
        DatasetError: no ``flowprep.json`` there, or one that cannot be read or breaks the schema
            (one line naming the file and the field).
    """
    root = find_root(Path(path))
    record = read_record(root)
    built = {c["side"] for c in record.get("clips", []) if c["status"] == "ok"}
    return Dataset(root, record, tuple(s for s in SIDES if s in built))

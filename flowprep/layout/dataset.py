"""A built dataset, opened: its root folder, its checked record and the sides it holds.

::

    ds = flowprep.open_dataset("data/hmdb5")      # the root, or its train/ or val/ folder
    ds.root, ds.layout.name, ds.classes, ds.sides # Path, "tao", ["push", ...], ("train", "val")
    ds.clips("val")                               # the record's entries of the built val clips
    ds.side_dir("val")                            # data/hmdb5/val: its class folders
    ds.record.flow.name, ds.record.encoding       # the typed record (flowprep.layout.dataset_record)

It reads only ``flowprep.json`` (no image is opened; ``flowprep.verify`` checks the images), so it
is cheap on any dataset size. The public loader (:mod:`flowprep.loader`) reads the images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flowprep.errors import DatasetError
from flowprep.layout.base import SIDES, Layout
from flowprep.layout.dataset_record import ClipEntry, DatasetRecord
from flowprep.layout.record import find_root, read_record
from flowprep.layout.registry import get_layout


@dataclass(frozen=True)
class Dataset:
    """A built dataset.

    Attributes:
        root: the folder holding ``flowprep.json``.
        record: the dataset record, typed and checked
            (:class:`~flowprep.layout.dataset_record.DatasetRecord`, :func:`flowprep.layout.record.read_record`):
            classes, split, decode, flow backend and encoding, and one entry per clip (``id``,
            ``cls``, ``label``, ``side``, ``frames``, ``status``).
        sides: the sides (``"train"``, ``"val"``, in that order) with at least one built clip.
    """

    root: Path
    record: DatasetRecord
    sides: tuple[str, ...]

    @property
    def layout(self) -> Layout:
        """The layout (``layout.name``: ``"tao"`` or ``"mmaction2"``): where clips and frames are."""
        return get_layout(self.record.layout)

    def side_dir(self, side: str) -> Path:
        """The folder holding ``side``'s class folders (``root/train``; ``root/rawframes`` for both
        sides of an mmaction2 dataset). A packed dataset keeps its clips in ``root/shards`` instead."""
        return self.layout.side_dir(self.root, side)

    @property
    def classes(self) -> list[str]:
        """Class names; a class's label is its index."""
        return list(self.record.classes)

    def clips(self, side: str) -> list[ClipEntry]:
        """The record's entries of ``side``'s built clips (status ``ok``), in the record's order.

        Raises:
            DatasetError: ``side`` is not ``"train"`` or ``"val"``.
        """
        if side not in SIDES:
            raise DatasetError(f"side must be one of {SIDES}, got {side!r}")
        return self.record.ok_clips(side)


def open_dataset(path: str | Path) -> Dataset:
    """Open the dataset at ``path`` (its root, or its ``train``/``val`` folder).

    Raises:
        DatasetError: no ``flowprep.json`` there, or one that cannot be read or breaks the schema
            (one line naming the file and the field).
    """
    root = find_root(Path(path))
    record = read_record(root)
    built = {c.side for c in record.ok_clips()}
    return Dataset(root, record, tuple(s for s in SIDES if s in built))

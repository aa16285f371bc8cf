"""What a dataset layout is: one class per layout owns every rule about how a built dataset lies on disk.

A layout says where a side's clip folders are, what the frames inside a clip folder are called,
how many a finished clip holds, which list files and spec snippets the build writes beside them, and
what ``flowprep verify`` checks besides the clips. The build, verify, preview, train and export ask
the layout (:func:`flowprep.layout.registry.get_layout`), never test its name. The layouts are
:class:`~flowprep.layout.tao.TaoLayout` and :class:`~flowprep.layout.mmaction2.Mmaction2Layout`;
adding one is a module with its class and a row in :mod:`flowprep.layout.registry`.

Frame ``k`` is 0-based everywhere in flowprep; flow image ``k`` is the flow from frame k to k+1.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Protocol

#: the two sides of a split, in the order lists and tables give them
SIDES = ("train", "val")


class BuiltClip(Protocol):
    """What a layout reads of a built clip's record entry (:class:`~flowprep.layout.dataset_record.ClipEntry`)."""

    @property
    def cls(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def label(self) -> int: ...
    @property
    def frames(self) -> int: ...
    @property
    def flow_frames(self) -> int: ...


class RecordView(Protocol):
    """What a layout reads of a dataset record (:class:`~flowprep.layout.dataset_record.DatasetRecord`,
    which imports the layouts, so they name only this)."""

    @property
    def classes(self) -> tuple[str, ...]: ...
    @property
    def modality(self) -> str: ...
    @property
    def has_rgb(self) -> bool: ...
    @property
    def has_flow(self) -> bool: ...
    def ok_clips(self, side: str | None = None) -> Sequence[BuiltClip]: ...


class Layout(ABC):
    """How clips lie on disk in one layout. Stateless; one instance per layout (the registry's).

    Attributes:
        name: the ``--layout`` name, stored in the dataset record (``"layout"``).
        tops: every top-level entry a build of this layout writes besides the record, labels and
            report (the build owns these: ``--force`` may replace them, nothing else).
        default_rgb_format: the RGB image format when ``--rgb-format`` is not given.
        trainable: whether ``flowprep train``/``evaluate`` and the loader read it.
        packable: whether ``--pack`` / ``flowprep pack`` can put its clips into shards (the
            shards' member names are this layout's frame names).
    """

    name: ClassVar[str]
    tops: ClassVar[tuple[str, ...]]
    default_rgb_format: ClassVar[str]
    trainable: ClassVar[bool] = False
    packable: ClassVar[bool] = False

    # --- where clips are -----------------------------------------------------------------------

    @abstractmethod
    def side_top(self, side: str) -> str:
        """The top-level folder holding ``side``'s class folders (two sides may share one)."""

    @property
    def clip_tops(self) -> tuple[str, ...]:
        """Top-level folders that hold only class folders, clip folders and frames."""
        return tuple(dict.fromkeys(self.side_top(s) for s in SIDES))

    def side_dir(self, root: Path, side: str) -> Path:
        """The folder holding ``side``'s class folders."""
        return Path(root) / self.side_top(side)

    def clip_dir(self, root: Path, side: str, cls: str, clip: str) -> Path:
        """Final folder of one clip."""
        return self.side_dir(root, side) / cls / clip

    # --- what is in a clip folder --------------------------------------------------------------

    @abstractmethod
    def rgb_name(self, k: int, image_format: str = "png") -> str:
        """Relative file name of RGB frame ``k`` (0-based) inside the clip folder."""

    @abstractmethod
    def flow_names(self, k: int, image_format: str = "jpg") -> tuple[str, str]:
        """Relative file names ``(u, v)`` of flow image ``k`` (0-based, between frames k and k+1)."""

    def subdirs(self, rgb: bool, flow: bool) -> list[str]:
        """Folders to create inside a clip folder (none when frames lie in it directly)."""
        return []

    def clip_files(self, folder: Path, rgb: bool, flow: bool) -> tuple[set[str], list[str]]:
        """The relative names of the files in a finished clip folder, and problems with its
        structure (``verify``). Frames lie in the folder itself unless the layout says otherwise."""
        return set(os.listdir(folder)), []

    @abstractmethod
    def count_frames(self, folder: Path) -> tuple[int, int]:
        """``(RGB frames, flow images)`` found in a finished clip folder (either may be 0)."""

    # --- what is beside the clips ---------------------------------------------------------------

    @abstractmethod
    def side_files(self, root: Path, record: RecordView) -> dict[str, str]:
        """The list files and spec snippet of a folder dataset: relative path -> text.

        Args:
            root: the dataset root, absolute (snippets name absolute paths).
            record: the dataset record (its classes, modality and built clips).
        """

    def required_files(self, record: RecordView) -> list[str]:
        """Relative paths of the side files ``flowprep verify`` requires (none unless the layout
        says so)."""
        return []

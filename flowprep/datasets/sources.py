"""Which split source a build uses (see :mod:`flowprep.datasets.base` for what one is).

In order: list files when given (``--train-list``/``--val-list``); an official split when asked
(``--official-split N``: the files given with ``--splits`` say which convention, the first of
:data:`OFFICIAL` that recognises them, HMDB51's otherwise); the release's own ``train/`` and ``val/``
folders when it has them; else the seeded split. A ``classInd.txt`` among ``--splits`` (UCF101) also
fixes the class order of the last two. A new convention of official split files is one module with a
``recognizes(texts)`` function and a :class:`~flowprep.datasets.base.SplitSource`, added to :data:`OFFICIAL`.
"""

from __future__ import annotations

from collections.abc import Callable

from flowprep.archive.reader import read_text_files
from flowprep.archive.scan import VideoEntry
from flowprep.datasets import folders, hmdb51, ucf101
from flowprep.datasets.base import SplitRequest, SplitSource
from flowprep.datasets.lists import ListFiles
from flowprep.datasets.split import RandomSplit

#: conventions of official split files: (recognizes(base name -> text), source(request, texts)), tried in order
OFFICIAL: tuple[tuple[Callable[[dict[str, str]], bool], Callable[[SplitRequest, dict[str, str]], SplitSource]], ...] = (
    (ucf101.recognizes, ucf101.UCF101Official),
    (hmdb51.recognizes, hmdb51.HMDB51Official),
)


def split_source(request: SplitRequest, clips: dict[str, list[VideoEntry]]) -> SplitSource:
    """The split source for a build whose selected clips are ``clips`` (class -> clips).

    Raises:
        ArchiveError: the split files cannot be read.
    """
    if request.train_list is not None or request.val_list is not None:
        return ListFiles(request)
    if request.splits is not None and request.official_split is not None:
        texts = read_text_files(request.splits)
        for recognizes, source in OFFICIAL:
            if recognizes(texts):
                return source(request, texts)
        return hmdb51.HMDB51Official(request, texts)  # says which files it expected
    order = class_order(request)
    where = ucf101.CLASS_IND if order is not None else ""
    if folders.is_presplit(clips, request.release):
        return folders.FolderSplit(request, order, where)
    return RandomSplit(request, order, where)


def class_order(request: SplitRequest) -> list[str] | None:
    """The classes of a ``classInd.txt`` among ``--splits`` (only that file is read), or None."""
    if request.splits is None:
        return None
    texts = read_text_files(request.splits, only=(ucf101.CLASS_IND,))
    return ucf101.parse_class_ind(texts[ucf101.CLASS_IND]) if ucf101.CLASS_IND in texts else None

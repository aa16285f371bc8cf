"""Dataset layouts as data: one row per layout, looked up by the name the record and ``--layout`` use.

Adding a layout means a module with its :class:`~flowprep.layout.base.Layout` subclass and a row
here; the build, verify, preview, train and export then know it (see docs/architecture.md).
"""

from __future__ import annotations

from flowprep.errors import DatasetError
from flowprep.layout.base import Layout
from flowprep.layout.mmaction2 import Mmaction2Layout
from flowprep.layout.tao import TaoLayout

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (TaoLayout(), Mmaction2Layout())}
#: ``--layout`` choices, default first
LAYOUT_NAMES = tuple(LAYOUTS)
#: what a record without a ``layout`` field (written before there was a choice) holds
DEFAULT_LAYOUT = "tao"


def get_layout(name: str) -> Layout:
    """The layout called ``name``.

    Raises:
        DatasetError: no such layout (a record written by a newer flowprep, or edited).
    """
    try:
        return LAYOUTS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset layout {name!r}; this flowprep knows {LAYOUT_NAMES}") from None


def frame_tops() -> tuple[str, ...]:
    """Every layout's clip folders at a dataset root (``train``, ``val``, ``rawframes``): folders that
    hold only class folders, where nothing else may be written."""
    return tuple(dict.fromkeys(t for layout in LAYOUTS.values() for t in layout.clip_tops))

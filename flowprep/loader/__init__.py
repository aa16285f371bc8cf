"""The public loader: read a flowprep dataset (folder or packed) exactly as ``flowprep train`` does.

::

    from flowprep.loader import ClipDataset, ShardStream

:class:`ClipDataset` (map-style: folder or packed dataset) and :class:`ShardStream` (iterable: the
shards of a packed dataset, read sequentially) return, per clip, ``(inputs, label)`` with the
training run's sampling, crop, flip (u negated) and normalisation; see
:mod:`flowprep.loader.torchdata` and docs/loader.md. :func:`list_clips` lists a side's clips and
the record (classes, flow encoding) without torch.

Importing this package imports neither torch nor OpenCV: the names are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowprep.loader.frames import flip_u, load_windows
    from flowprep.loader.source import Clip, DatasetInfo, list_clips
    from flowprep.loader.torchdata import ClipDataset, ShardStream, to_model_inputs

_WHERE = {
    "ClipDataset": "flowprep.loader.torchdata",
    "ShardStream": "flowprep.loader.torchdata",
    "to_model_inputs": "flowprep.loader.torchdata",
    "list_clips": "flowprep.loader.source",
    "DatasetInfo": "flowprep.loader.source",
    "Clip": "flowprep.loader.source",
    "flip_u": "flowprep.loader.frames",
    "load_windows": "flowprep.loader.frames",
}
__all__ = [
    "Clip",
    "ClipDataset",
    "DatasetInfo",
    "ShardStream",
    "flip_u",
    "load_windows",
    "list_clips",
    "to_model_inputs",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'flowprep.loader' has no attribute {name!r}")

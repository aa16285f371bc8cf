"""Reading ``torch.save`` files safely, with one-line errors instead of torch's internals.

``torch.load(..., weights_only=True)`` fails on a wrong file with whatever the unpickler hit first
— ``KeyError: 105`` for a text file, a paragraph about PyTorch 2.6's ``weights_only`` default for
a JSON file — which means nothing to the user. :func:`load_torch_file` tells the cases apart by
the file's first bytes and says what the file is not.

It also bounds what loading may cost before torch sees the file: a regular file (a FIFO would block
``torch.load`` forever) of at most :data:`MAX_TORCH_BYTES` (:func:`flowprep.fsio.reading.open_file`),
and for the zip format (everything ``torch.save`` writes since 1.6) members that unpack to at most
:data:`MAX_TORCH_BYTES` in all and at most :data:`~flowprep.fsio.reading.MAX_RATIO` times their packed
size (:func:`flowprep.fsio.reading.check_zip_ratio`): ``torch.save`` stores tensors uncompressed, so a
13 MB file whose directory claims 3 GB is refused unread. The legacy pickle format has no
directory to check; it is bounded by the file's size only.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any, BinaryIO

from flowprep.errors import FlowprepError
from flowprep.fsio.reading import check_zip_ratio, open_file

#: ``torch.save`` writes a zip archive (since torch 1.6); the legacy format is a pickle stream,
#: which starts with the PROTO opcode
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTO = 0x80
#: the largest PyTorch file opened, and the most its zip members may unpack to (ResNet-152's
#: ImageNet weights are 240 MB; a ResNet-18 3D joint checkpoint with its optimizer state 0.5 GB)
MAX_TORCH_BYTES = 16 << 30


def load_torch_file(path: Path, error: type[FlowprepError], then: str = "") -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with clean errors.

    Args:
        path: an existing file.
        error: the exception class to raise (e.g. ``ConfigError`` or ``CheckpointError``).
        then: appended to every message after a comma (``"so not a flowprep checkpoint"``).

    Returns:
        Whatever the file holds (tensors in plain Python containers).

    Raises:
        error: the file is not a regular file, is over :data:`MAX_TORCH_BYTES`, is not a zip/pickle
            file, unpacks to too much or inflates too far, holds objects other than tensors and plain
            containers, or is damaged. The message is one line naming ``path``.
    """
    path = Path(path)
    tail = f", {then}" if then else ""
    # a regular file (opened non-blocking: torch.load on a FIFO waited forever for a writer), and
    # torch reads this very descriptor, not whatever the name leads to after the checks
    with open_file(path, what="PyTorch file", max_bytes=MAX_TORCH_BYTES, error=error) as fh:
        return _load(fh, path, error, tail)


def _load(fh: BinaryIO, path: Path, error: type[FlowprepError], tail: str) -> Any:
    import torch

    try:
        head = fh.read(4)
        fh.seek(0)
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from exc
    if head != ZIP_MAGIC and (not head or head[0] != PICKLE_PROTO):
        raise error(f"{path} is not a PyTorch file (not a zip/pickle checkpoint){tail}")
    if head == ZIP_MAGIC:  # before torch allocates what the directory declares
        check_zip_ratio(path, what="PyTorch file", max_bytes=MAX_TORCH_BYTES, fh=fh, error=error)
    try:
        with warnings.catch_warnings():
            # torch warns about legacy formats and the weights_only default; the error below
            # (or a successful load) is all the user needs
            warnings.simplefilter("ignore")
            return torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise error(
                f"{path} holds Python objects other than tensors and plain containers; "
                f"flowprep only loads such files with weights_only=True{tail}"
            ) from exc
        raise error(f"{path} is a damaged or foreign pickle file, not a loadable PyTorch file{tail}") from exc
    except Exception as exc:  # zip/storage/pickle errors of many types: all mean "damaged"
        kind = "zip archive" if head == ZIP_MAGIC else "pickle file"
        raise error(f"{path} is a damaged or foreign {kind}, not a loadable PyTorch file{tail}") from exc

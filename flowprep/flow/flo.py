"""Middlebury ``.flo`` files: the ground-truth flow format of the Middlebury, Sintel and KITTI-derived sets.

Layout (little-endian): the float32 tag ``202021.25`` (the bytes ``PIEH``), int32 width, int32 height,
then ``height * width`` pairs of float32 ``(u, v)`` in row-major order. Values above ``1e9`` mark
pixels with unknown flow (:data:`UNKNOWN_FLOW`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowprep.errors import DatasetError
from flowprep.fsio.reading import read_bytes
from flowprep.fsio.writing import write_bytes_atomic

TAG = 202021.25
#: magnitude above which a component means "unknown" (Middlebury's convention)
UNKNOWN_FLOW_THRESHOLD = 1e9
#: value written for unknown pixels
UNKNOWN_FLOW = 1e10


#: the largest .flo read: an 8192x8192 field (the largest frame flowprep takes) and its header
MAX_FLO_BYTES = 12 + 8192 * 8192 * 8


def read_flo(path: Path) -> np.ndarray:
    """Read a ``.flo`` file.

    Returns:
        ``float32`` ``(H, W, 2)``, pixels, x then y; unknown pixels keep their huge value (see
        :func:`valid_mask`).

    Raises:
        DatasetError: not a ``.flo`` file, or truncated.
    """
    path = Path(path)
    data = read_bytes(path, what="flow file", max_bytes=MAX_FLO_BYTES, error=DatasetError)
    if len(data) < 12:
        raise DatasetError(f"{path} is not a Middlebury .flo file (only {len(data)} bytes)")
    tag = np.frombuffer(data, "<f4", 1, 0)[0]
    if tag != np.float32(TAG):
        raise DatasetError(f"{path} is not a Middlebury .flo file (tag {tag!r}, expected {TAG})")
    width, height = (int(x) for x in np.frombuffer(data, "<i4", 2, 4))
    if not (0 < width < 1 << 16 and 0 < height < 1 << 16):
        raise DatasetError(f"{path}: implausible .flo size {width}x{height}")
    need = 12 + width * height * 8
    if len(data) < need:
        raise DatasetError(f"{path} is truncated: {len(data)} bytes, {need} needed for {width}x{height}")
    flow = np.frombuffer(data, "<f4", width * height * 2, 12).reshape(height, width, 2)
    return flow.astype(np.float32)


def write_flo(path: Path, flow: np.ndarray) -> None:
    """Write ``flow`` (``(H, W, 2)`` float, pixels, x then y) as a ``.flo`` file, atomically.

    Raises:
        OutputError: the file cannot be written.
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got {flow.shape}")
    height, width = flow.shape[:2]
    header = np.array([TAG], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    write_bytes_atomic(Path(path), header + np.ascontiguousarray(flow, dtype="<f4").tobytes())


def valid_mask(flow: np.ndarray) -> np.ndarray:
    """``bool`` ``(H, W)``: pixels whose flow is known and finite."""
    return np.isfinite(flow).all(axis=-1) & (np.abs(flow) < UNKNOWN_FLOW_THRESHOLD).all(axis=-1)

"""Flow (float pixels) <-> two 8-bit gray images (u = horizontal, v = vertical).

Two conventions, both recorded in the dataset record so that training and inference treat the
images exactly as they were made:

``fixed`` (I3D / TSN / mmaction2 / denseflow)
    clip to ``[-bound, bound]`` pixels, then ``q = floor(255 * (f + bound) / (2 * bound) + 0.5)``.
    Zero flow maps to 128 (127.5 rounded up). Inverse: ``f = q * 2 * bound / 255 - bound``, exact to
    within half a step (``bound / 255`` px, 0.078 px at the default bound 20) inside the bound.

``maxrad`` (TAO ActionRecognitionNet's recipe)
    per frame, ``max_rad = max(1, max(sqrt(u^2 + v^2)))``;
    ``q = floor(f / max_rad * 127.999 + 128)``. The scale differs per frame and is not stored in the
    images, so pixels cannot be recovered from one image; :func:`decode` returns flow in units of
    ``max_rad`` unless the per-frame ``max_rad`` is given. Models are trained on the 8-bit images, so
    what matters is that inference encodes the same way, which it does from the record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from flowprep.errors import ConfigError
from flowprep.limits import check_finite

MODES = ("fixed", "maxrad")
FORMATS = ("jpg", "png")


@dataclass(frozen=True)
class FlowEncoding:
    """How flow is stored.

    Attributes:
        mode: ``"fixed"`` or ``"maxrad"`` (see module docstring).
        bound: clip bound in pixels for ``fixed`` (ignored by ``maxrad``), > 0.
        image_format: ``"jpg"`` (TAO's default) or ``"png"`` (lossless).
        jpeg_quality: 1..100, for ``jpg``.
    """

    mode: str = "fixed"
    bound: float = 20.0
    image_format: str = "jpg"
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"flow encoding mode must be one of {MODES}, got {self.mode!r}")
        check_finite("flow bound (pixels)", self.bound, 0, lo_open=True)
        if self.image_format not in FORMATS:
            raise ConfigError(f"flow image format must be one of {FORMATS}, got {self.image_format!r}")
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise ConfigError(f"JPEG quality must be 1..100, got {self.jpeg_quality}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowEncoding:
        return cls(
            mode=d["mode"], bound=float(d["bound"]), image_format=d["image_format"], jpeg_quality=int(d["jpeg_quality"])
        )

    def encode(self, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :func:`encode`."""
        return encode(flow, self)

    def decode(self, u: np.ndarray, v: np.ndarray, max_rad: float | None = None) -> np.ndarray:
        """See :func:`decode`."""
        return decode(u, v, self, max_rad)


def max_radius(flow: np.ndarray) -> float:
    """TAO's per-frame scale: ``max(1, max over pixels of |flow|)`` in pixels."""
    mag = np.sqrt(np.square(flow[..., 0], dtype=np.float32) + np.square(flow[..., 1], dtype=np.float32))
    return float(max(1.0, float(mag.max()) if mag.size else 1.0))


def encode(flow: np.ndarray, enc: FlowEncoding) -> tuple[np.ndarray, np.ndarray]:
    """Quantize flow to two 8-bit images.

    Args:
        flow: ``float32`` ``(H, W, 2)``, pixels, x then y.
        enc: the encoding.

    Returns:
        ``(u, v)``: ``uint8`` ``(H, W)`` each, 0..255, 128 ~ zero motion.
    """
    f = flow.astype(np.float32, copy=False)
    if enc.mode == "fixed":
        b = np.float32(enc.bound)
        q = np.floor((np.clip(f, -b, b) + b) * (np.float32(255.0) / (2 * b)) + np.float32(0.5))
    else:
        q = np.floor(f / np.float32(max_radius(f)) * np.float32(127.999) + np.float32(128.0))
    q = np.clip(q, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(q[..., 0]), np.ascontiguousarray(q[..., 1])


def decode(u: np.ndarray, v: np.ndarray, enc: FlowEncoding, max_rad: float | None = None) -> np.ndarray:
    """Invert :func:`encode`.

    Args:
        u, v: ``uint8`` ``(H, W)`` images as written.
        enc: the encoding recorded with the dataset.
        max_rad: for ``maxrad``, the frame's scale in pixels; if None the result is in max-radius units.

    Returns:
        ``float32`` ``(H, W, 2)`` flow in pixels (``fixed``, or ``maxrad`` with ``max_rad``).
    """
    q = np.stack([u, v], axis=-1).astype(np.float32)
    if enc.mode == "fixed":
        b = np.float32(enc.bound)
        return q * (2 * b / np.float32(255.0)) - b
    scale = np.float32(1.0 if max_rad is None else max_rad)
    # +0.5: the middle of the quantization step that floor() mapped to q.
    return (q + np.float32(0.5) - np.float32(128.0)) / np.float32(127.999) * scale


def normalize_uint8(x: np.ndarray) -> np.ndarray:
    """Network input normalisation used by TAO for RGB and flow alike: ``(x / 255 - 0.5) / 0.5``.

    Args:
        x: ``uint8`` array of any shape.

    Returns:
        ``float32`` of the same shape in ``[-1, 1]``.
    """
    return (x.astype(np.float32) / np.float32(255.0) - np.float32(0.5)) / np.float32(0.5)

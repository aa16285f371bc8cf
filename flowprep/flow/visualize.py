"""Flow to colour (the Middlebury colour wheel of Baker et al. 2011): hue is direction, saturation is speed."""

from __future__ import annotations

import numpy as np

# Number of hues between the primary/secondary colours on the wheel (Baker et al.'s choice).
_RY, _YG, _GC, _CB, _BM, _MR = 15, 6, 4, 11, 13, 6


def color_wheel() -> np.ndarray:
    """The wheel: ``float32`` ``(55, 3)`` RGB in 0..255, red at angle 0 going through yellow, green, ..."""
    segments = [
        (_RY, lambda t: (255, 255 * t, 0)),
        (_YG, lambda t: (255 - 255 * t, 255, 0)),
        (_GC, lambda t: (0, 255, 255 * t)),
        (_CB, lambda t: (0, 255 - 255 * t, 255)),
        (_BM, lambda t: (255 * t, 0, 255)),
        (_MR, lambda t: (255, 0, 255 - 255 * t)),
    ]
    rows = []
    for n, fn in segments:
        t = np.arange(n, dtype=np.float32) / n
        r, g, b = fn(t)
        rows.append(np.stack(np.broadcast_arrays(np.float32(r), np.float32(g), np.float32(b)), axis=1))
    return np.concatenate(rows).astype(np.float32)


def flow_to_color(flow: np.ndarray, max_flow: float | None = None) -> np.ndarray:
    """Colour-code flow.

    Args:
        flow: ``float32`` ``(H, W, 2)`` pixels; non-finite / unknown pixels are drawn black.
        max_flow: speed (pixels) drawn fully saturated; default the largest valid speed in ``flow``.

    Returns:
        ``uint8`` ``(H, W, 3)`` RGB.
    """
    flow = np.asarray(flow, dtype=np.float32)
    bad = ~np.isfinite(flow).all(axis=-1) | (np.abs(flow) > 1e9).any(axis=-1)
    u = np.where(bad, 0, flow[..., 0])
    v = np.where(bad, 0, flow[..., 1])
    rad = np.sqrt(u * u + v * v)
    scale = float(max_flow) if max_flow else float(rad.max()) if rad.size else 1.0
    scale = max(scale, 1e-6)
    u, v, rad = u / scale, v / scale, rad / scale
    wheel = color_wheel()
    n = wheel.shape[0]
    angle = np.arctan2(-v, -u) / np.pi  # -1..1
    fk = (angle + 1) / 2 * (n - 1)
    k0 = np.floor(fk).astype(np.int64) % n
    k1 = (k0 + 1) % n
    f = (fk - np.floor(fk))[..., None]
    col = ((1 - f) * wheel[k0] + f * wheel[k1]) / 255.0
    inside = (rad <= 1)[..., None]
    sat = np.clip(rad, 0, 1)[..., None]
    col = np.where(inside, 1 - sat * (1 - col), col * 0.75)  # out-of-range speeds are darkened
    out = np.floor(255 * col + 0.5).astype(np.uint8)
    out[bad] = 0
    return out

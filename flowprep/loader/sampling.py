"""Which frames of a clip go into the network.

A window is ``T`` frames taken every ``sample_rate`` frames: it spans ``(T - 1) * sample_rate + 1``
frames. Indices are 0-based positions in one stream of the clip: the RGB frames (``N`` of them) or
the flow images (``N - 1``). A joint model samples on the flow count and uses the same indices for
both streams, so RGB frame ``k`` goes with the flow from frame ``k`` to ``k + 1``.

Short clips (fewer frames than the window spans): the window starts at 0 and *loops* — index
``(k * sample_rate) mod n`` — so every sampled frame is a real frame and flow keeps real motion
(repeating the last frame would feed still RGB frames and one repeated flow field instead).
"""

from __future__ import annotations

import numpy as np

from flowprep.errors import ConfigError

#: segments of the "conv" evaluation mode
CONV_SEGMENTS = 10


def span(frames: int, sample_rate: int) -> int:
    """Frames covered by one window."""
    return (frames - 1) * sample_rate + 1


def _check(n: int, frames: int, sample_rate: int) -> None:
    if n < 1:
        raise ConfigError(f"cannot sample from a clip with {n} frames")
    if frames < 1 or sample_rate < 1:
        raise ConfigError(f"frames and sample rate must be >= 1, got {frames} and {sample_rate}")


def window(n: int, start: int, frames: int, sample_rate: int) -> np.ndarray:
    """Indices of the window starting at ``start`` (looping when the clip is short).

    Returns:
        ``int64`` ``(frames,)`` in ``[0, n)``.
    """
    _check(n, frames, sample_rate)
    if n < span(frames, sample_rate):
        return (np.arange(frames, dtype=np.int64) * sample_rate) % n
    return start + np.arange(frames, dtype=np.int64) * sample_rate


def random_indices(n: int, frames: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Training: a window with a uniformly random start in ``[0, n - span]``."""
    _check(n, frames, sample_rate)
    room = n - span(frames, sample_rate)
    start = int(rng.integers(0, room + 1)) if room > 0 else 0
    return window(n, start, frames, sample_rate)


def center_indices(n: int, frames: int, sample_rate: int = 1) -> np.ndarray:
    """The window in the middle: start ``(n - span) // 2`` (32 of 128 frames -> 48..79)."""
    _check(n, frames, sample_rate)
    return window(n, max(0, (n - span(frames, sample_rate)) // 2), frames, sample_rate)


def conv_indices(n: int, frames: int, sample_rate: int = 1, segments: int = CONV_SEGMENTS) -> np.ndarray:
    """Windows centred on ``segments`` equal parts of the clip, one per segment.

    Segment ``i`` is ``[i * n / segments, (i + 1) * n / segments)``; its window is centred on the
    segment's centre ``floor((2i + 1) * n / (2 * segments))`` and shifted inside the clip where it
    would stick out. Every segment gives exactly one window, even when windows overlap or the clip
    is short (then they coincide), so each segment counts once in the averaged score.

    Returns:
        ``int64`` ``(segments, frames)``.
    """
    _check(n, frames, sample_rate)
    if segments < 1:
        raise ConfigError(f"segments must be >= 1, got {segments}")
    s = span(frames, sample_rate)
    rows = []
    for i in range(segments):
        centre = (2 * i + 1) * n // (2 * segments)
        start = min(max(0, centre - s // 2), max(0, n - s))
        rows.append(window(n, start, frames, sample_rate))
    return np.stack(rows)

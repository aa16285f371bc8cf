"""Frame pairs with known optical flow, for ``flowprep bench-flow`` and the flow tests.

Pairs with known flow are made on the fly from real frames (the first frames of a video, by default
``../shared/data/carphone_pristine.mp4`` beside a checkout, if present, else :func:`flowprep.synth.texture`), and
from user pairs with a Middlebury ``.flo``.

Warp convention. A smooth field ``B`` is defined on the grid of the *second* frame and the second
frame is made by backward warping: ``frame2(y) = frame1(y - B(y))`` (``cv2.remap``, bilinear), so
every pixel of frame2 is exactly defined. The forward flow the backends must find lives on frame1:
``F(x)`` with ``frame1(x) = frame2(x + F(x))``, i.e. ``F(x) = B(x + F(x))``, solved by fixed-point
iteration (converges because the field is smooth: its spatial derivatives are well below 1). Pixels of
frame1 whose target ``x + F(x)`` falls outside frame2 (they leave the picture) are masked out of the
error.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowprep.errors import DecodeError, FlowprepError
from flowprep.fsio.reading import MAX_FRAME_BYTES, read_bytes

log = logging.getLogger(__name__)

#: real footage for the synthetic pairs when flowprep runs from a checkout with the project's
#: shared test data beside it; elsewhere (or if absent) procedural textures are used
DEFAULT_VIDEO = Path(__file__).resolve().parents[3] / "shared" / "data" / "carphone_pristine.mp4"
DEFAULT_MAGNITUDES: tuple[float, ...] = (2.0, 5.0, 10.0, 20.0, 30.0)
#: largest side (px) of the grid synthetic flow fields are made on (:func:`field_grid`)
FIELD_GRID = 640


@dataclass
class FlowPair:
    """Two gray frames and their true flow.

    Attributes:
        name: label, e.g. ``"synthetic-10px-1"`` or the frame file name.
        prev, nxt: ``uint8`` ``(H, W)`` gray frames.
        flow: ``float32`` ``(H, W, 2)`` true flow from ``prev`` to ``nxt``, pixels.
        valid: ``bool`` ``(H, W)``, pixels where ``flow`` is known and visible in ``nxt``.
        magnitude: largest true speed in pixels (the nominal level for synthetic pairs).
        group: the column ``bench-flow`` reports the pair's EPE under, shared by the pairs averaged
            together (e.g. ``"10"`` for the 10 px synthetic pairs); empty: the pair's own name.
    """

    name: str
    prev: np.ndarray
    nxt: np.ndarray
    flow: np.ndarray
    valid: np.ndarray
    magnitude: float
    group: str = ""


def load_frames(video: Path | None, n: int, size: tuple[int, int], seed: int = 0) -> tuple[list[np.ndarray], str]:
    """``n`` distinct gray frames (``uint8`` ``(h, w)`` with ``size = (w, h)``) and where they came from.

    Frames are taken every 10th frame of ``video`` (decoded with PyAV, converted to gray, resized with
    area interpolation); without a readable video, :func:`flowprep.synth.texture` images are used.
    """
    import cv2

    w, h = size
    # a video the user named must give frames; only the default clip may be absent
    strict = video is not None and Path(video) != DEFAULT_VIDEO
    if video is not None and (strict or Path(video).is_file()):
        try:
            import av

            frames = []
            with av.open(str(video)) as container:
                if not container.streams.video:
                    raise DecodeError(f"--video {video}: no video stream (an audio-only file?)")
                for i, frame in enumerate(container.decode(video=0)):
                    if i % 10 == 0:
                        gray = frame.to_ndarray(format="gray")
                        frames.append(cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA))
                    if len(frames) >= n:
                        break
            if frames:
                while len(frames) < n:
                    frames.append(frames[len(frames) % max(1, len(frames))])
                return frames, str(video)
            if strict:
                raise DecodeError(f"--video {video}: no frame decodes")
        except (OSError, ValueError) as exc:  # PyAV raises subclasses of these for broken files
            if strict:
                raise DecodeError(f"--video {video}: cannot decode it ({exc})") from None
            log.warning("cannot decode %s (%s); using synthetic texture frames", video, exc)
    from flowprep.synth import texture

    return [cv2.cvtColor(texture(h, w, seed + k), cv2.COLOR_RGB2GRAY) for k in range(n)], "flowprep.synth.texture"


def field_grid(height: int, width: int) -> tuple[int, int]:
    """``(rows, cols)`` of the grid synthetic fields are made on for an ``height x width`` pair.

    The full size up to :data:`FIELD_GRID` pixels a side; above, the same aspect on a grid of at most
    that many, so that making a pair costs a constant plus a multiple of its pixel count.
    """
    k = max(1, math.ceil(max(height, width) / FIELD_GRID))
    return -(-height // k), -(-width // k)


def smooth_field(height: int, width: int, magnitude: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random flow field whose largest speed is ``magnitude`` pixels.

    A global translation (about 60 % of the magnitude, random direction: camera pan) plus a
    low-frequency random field (Gaussian-blurred noise, features about a third of the image wide:
    moving limbs and objects), scaled so that ``max |field| == magnitude``. The noise is blurred on
    :func:`field_grid` (the blur's cost grows with its sigma times the pixels, so at full size with
    cube of the side) and bilinearly upsampled: pairs up to :data:`FIELD_GRID` px are made exactly
    as before the grid existed.

    Returns:
        ``float32`` ``(height, width, 2)``.
    """
    import cv2

    angle = rng.uniform(0, 2 * np.pi)
    base = np.array([np.cos(angle), np.sin(angle)], np.float32) * 0.6
    gh, gw = field_grid(height, width)
    sigma = max(gh, gw) / 6.0
    noise = rng.standard_normal((gh, gw, 2)).astype(np.float32)
    local: np.ndarray = cv2.GaussianBlur(noise, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    local *= 0.4 / max(float(np.abs(local).max()), 1e-6)
    if (gh, gw) != (height, width):
        local = cv2.resize(local, (width, height), interpolation=cv2.INTER_LINEAR)
    f = local + base
    # x**2 + y**2 is what .sum(-1) computes for two values, without numpy's slow short-axis reduction
    f *= np.float32(magnitude / max(float(np.sqrt(f[..., 0] ** 2 + f[..., 1] ** 2).max()), 1e-6))
    return f.astype(np.float32)


def _fixed_point(field2: np.ndarray, iterations: int) -> np.ndarray:
    """``F`` with ``F(x) = B(x + F(x))`` for the field ``B`` = ``field2``, by fixed-point iteration."""
    import cv2

    h, w = field2.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    flow = field2.copy()
    for _ in range(iterations):
        flow = cv2.remap(
            field2, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    return flow


def warp_pair(
    frame1: np.ndarray, field2: np.ndarray, iterations: int = 30
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Make frame2 and the true forward flow from a field defined on frame2's grid.

    Pairs larger than :data:`FIELD_GRID` px solve the fixed point on :func:`field_grid` (the field
    is smooth on that scale) and upsample it; the residual below is still checked at full size.

    Args:
        frame1: ``uint8`` ``(H, W)``.
        field2: ``float32`` ``(H, W, 2)`` field ``B`` on frame2's grid: ``frame2(y) = frame1(y - B(y))``.
        iterations: fixed-point iterations for ``F(x) = B(x + F(x))``.

    Returns:
        ``(frame2, flow, valid)``: ``uint8`` ``(H, W)``; ``float32`` ``(H, W, 2)`` forward flow on
        frame1's grid; ``bool`` ``(H, W)`` where ``x + F(x)`` is inside frame2 and the iteration converged
        (to 0.01 px; the grid's solution differs from the full-size one by under 0.005 px, measured
        at 1280x960 and 2048x1536 with 2 and 30 px motion).
    """
    import cv2

    h, w = frame1.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    frame2 = cv2.remap(
        frame1, gx - field2[..., 0], gy - field2[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    gh, gw = field_grid(h, w)
    if (gh, gw) == (h, w):
        flow = _fixed_point(field2, iterations)
    else:
        # in grid pixels per axis (cv2.resize maps pixel centres with the factors w/gw and h/gh)
        scale = np.array([w / gw, h / gh], np.float32)
        small = cv2.resize(field2, (gw, gh), interpolation=cv2.INTER_AREA) / scale
        flow = cv2.resize(_fixed_point(small, iterations), (w, h), interpolation=cv2.INTER_LINEAR) * scale
    residual = (
        cv2.remap(field2, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        - flow
    )
    tx, ty = gx + flow[..., 0], gy + flow[..., 1]
    # frame2's source pixels near the border were reflected in, so keep a 1-pixel margin.
    converged = np.maximum(np.abs(residual[..., 0]), np.abs(residual[..., 1])) < 0.01
    valid = (tx >= 1) & (tx <= w - 2) & (ty >= 1) & (ty <= h - 2) & converged
    return frame2, flow.astype(np.float32), valid


def synthetic_pairs(
    size: tuple[int, int] = (320, 240),
    magnitudes: Sequence[float] = DEFAULT_MAGNITUDES,
    per_magnitude: int = 2,
    video: Path | None = DEFAULT_VIDEO,
    seed: int = 0,
) -> tuple[list[FlowPair], str]:
    """Pairs of real frames warped by smooth fields of each magnitude; see the module docstring."""
    log.info("making %d synthetic pairs of %dx%d", len(magnitudes) * per_magnitude, size[0], size[1])
    frames, source = load_frames(video, len(magnitudes) * per_magnitude, size, seed)
    rng = np.random.default_rng(seed)
    pairs = []
    k = 0
    for mag in magnitudes:
        for j in range(per_magnitude):
            f1 = frames[k]
            k += 1
            field2 = smooth_field(f1.shape[0], f1.shape[1], float(mag), rng)
            f2, flow, valid = warp_pair(f1, field2)
            pairs.append(FlowPair(f"synthetic-{mag:g}px-{j}", f1, f2, flow, valid, float(mag), f"{mag:g}"))
    return pairs, source


def load_pair(frame1: Path, frame2: Path, flo: Path) -> FlowPair:
    """A user pair: two images (read as gray) and the ``.flo`` ground truth from frame1 to frame2."""
    import cv2

    from flowprep.flow.flo import read_flo, valid_mask

    imgs = []
    for p in (frame1, frame2):
        # bytes first, from a regular file only: cv2.imread on a FIFO blocked forever
        data = read_bytes(p, what="image", max_bytes=MAX_FRAME_BYTES, error=DecodeError)
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE) if data else None
        if img is None:
            raise DecodeError(f"cannot read image {p}: not an image")
        imgs.append(img)
    flow = read_flo(flo)
    if imgs[0].shape != imgs[1].shape or imgs[0].shape != flow.shape[:2]:
        raise FlowprepError(
            f"pair {frame1.name}: sizes differ: {imgs[0].shape}, {imgs[1].shape}, flow {flow.shape[:2]}"
        )
    valid = valid_mask(flow)
    mag = float(np.sqrt((np.where(valid[..., None], flow, 0) ** 2).sum(-1)).max())
    return FlowPair(
        Path(frame1).name, imgs[0], imgs[1], np.where(valid[..., None], flow, 0).astype(np.float32), valid, mag
    )

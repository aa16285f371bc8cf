"""A clip's windows as network input: read, crop, resize, flip (u negated) and normalise.

Per clip, one stream's input is ``float32`` ``(C, T, S, S)`` in ``[-1, 1]`` (C = 3 for RGB in RGB
order, 2 for flow: u then v), normalised as TAO does, ``(x / 255 - 0.5) / 0.5``, directly from the
8-bit images (:func:`flowprep.flow.encoding.normalize_uint8`); 2D models take it reshaped to
``(C * T, S, S)`` (:func:`flowprep.loader.torchdata.to_model_inputs`).

Geometry: a crop (the same for every frame and both streams of a clip) is cut from the frames and
resized to ``S x S``. Flow images are resized like RGB images, without rescaling the flow values
(as TAO does): the network sees the 8-bit images exactly as written. A horizontal flip mirrors
every image and, for flow, negates the horizontal component (:func:`flip_u`) — which TAO's loader
does not do, teaching it that mirrored motion goes the wrong way.

The flow images hold the *encoded* flow; the network sees the code values (as TAO's models do).
To get flow in pixels back, decode u/v with the recorded encoding
(:func:`flowprep.flow.encoding.decode` with ``info.encoding``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flowprep.errors import DatasetError
from flowprep.flow.encoding import normalize_uint8
from flowprep.layout.packed import ClipFiles
from flowprep.layout.registry import get_layout
from flowprep.loader.source import Clip, DatasetInfo, clip_files
from flowprep.loader.spec import CROP_FRACTION

#: TSN's multi-scale crop: width and height each one of these fractions of the short side
MULTISCALE = (1.0, 0.875, 0.75, 0.66)


def flip_u(u: np.ndarray) -> np.ndarray:
    """Negate the horizontal flow of an 8-bit ``u`` image (``uint8``, any shape): ``q -> 256 - q``.

    Both encodings put zero flow at 128 and a flow of ``k`` whole quantization steps at
    ``128 + k``, so ``256 - q`` is exactly the code of the negated flow on that lattice — zero
    included: a still background stays 128, and flipped clips cannot be told from unflipped ones
    by it. Between lattice points the code of ``-f`` is ``255 - q`` (floor quantization mirrors
    bins one lower), so there the result is one step high (0.157 px at bound 20; 1/128 of the
    frame's max radius for ``maxrad``). The 8-bit value alone cannot tell the two cases apart; we
    keep zero fixed because still regions, often exactly zero (NVOF's 1/32-px fixed point,
    clipped or synthetic flow), dominate real flow fields, while the naive ``255 - q`` would turn
    every still pixel 128 into 127. ``q = 0`` (the negative bound) maps to 255.
    """
    return np.clip(256 - u.astype(np.int16), 0, 255).astype(np.uint8)


def crop_box(h: int, w: int, crop: str, rng: np.random.Generator | None) -> tuple[int, int, int, int]:
    """``(y0, x0, ch, cw)`` of the region to cut from ``h x w`` frames (see :data:`~flowprep.loader.spec.CROPS`)."""
    short = min(h, w)
    if crop == "full":
        return 0, 0, h, w
    if crop == "multiscale" and rng is not None:
        i = int(rng.integers(len(MULTISCALE)))
        j = int(np.clip(i + rng.integers(-1, 2), 0, len(MULTISCALE) - 1))
        ch, cw = max(1, round(short * MULTISCALE[i])), max(1, round(short * MULTISCALE[j]))
    else:
        ch = cw = max(1, round(short * CROP_FRACTION))
    if crop in ("random", "multiscale") and rng is not None:
        return int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1)), ch, cw
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def decode_image(files: ClipFiles, rel: str, color: bool) -> np.ndarray:
    """Image ``rel`` of a clip: ``uint8`` ``(H, W, 3)`` RGB, or ``(H, W)`` gray when not ``color``."""
    import cv2

    data = files.read(rel)
    where = f"{files.where}/{rel}"
    if not data:
        raise DatasetError(f"frame {where} is empty (0 bytes); run `flowprep verify` on the dataset")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise DatasetError(f"cannot decode frame {where} (not an image); run `flowprep verify` on the dataset")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if color else img


def read_frames(info: DatasetInfo, files: ClipFiles, stream: str, ks: Sequence[int]) -> dict[int, np.ndarray]:
    """Frames ``ks`` of one stream, ``uint8``: RGB ``(H, W, 3)``, flow ``(H, W, 2)`` (u, v as written)."""
    frames: dict[int, np.ndarray] = {}
    layout = get_layout(info.record.layout)
    for k in ks:
        if stream == "rgb":
            frames[k] = decode_image(files, layout.rgb_name(k, info.rgb_format), True)
        else:
            un, vn = layout.flow_names(k, info.encoding.image_format if info.encoding else "jpg")
            frames[k] = np.stack([decode_image(files, un, False), decode_image(files, vn, False)], -1)
    return frames


def load_windows(
    info: DatasetInfo,
    clip: Clip,
    streams: Sequence[str],
    windows: np.ndarray,
    size: int,
    crop: str = "center",
    hflip: bool = False,
    rng: np.random.Generator | None = None,
    files: ClipFiles | None = None,
) -> dict[str, np.ndarray]:
    """Read, crop, resize, flip and normalise ``K`` windows of one clip.

    Args:
        windows: ``int`` ``(K, T)`` frame indices (see :mod:`flowprep.loader.sampling`).
        size: S, output side in pixels.
        crop: one of :data:`~flowprep.loader.spec.CROPS`; random kinds draw from ``rng`` (center
            crop without one).
        hflip: mirror the clip (and negate u).
        files: the clip's images when already read (a streamed sample); else read via :func:`clip_files`.

    Returns:
        stream -> ``float32`` ``(K, C, T, S, S)`` in ``[-1, 1]``.
    """
    import cv2

    windows = np.asarray(windows, dtype=np.int64)
    wanted = np.unique(windows).tolist()
    files = files if files is not None else clip_files(info, clip)
    cache = {s: read_frames(info, files, s, wanted) for s in streams}
    first = next(iter(cache[streams[0]].values()))
    y0, x0, ch, cw = crop_box(first.shape[0], first.shape[1], crop, rng)
    out = {}
    for s in streams:
        prepared = {}
        for k, img in cache[s].items():
            if img.shape[:2] != first.shape[:2]:
                raise DatasetError(
                    f"{files.where}: frame {k} of {s} is {img.shape[1]}x{img.shape[0]}, "
                    f"other frames are {first.shape[1]}x{first.shape[0]}"
                )
            img = cv2.resize(
                np.ascontiguousarray(img[y0 : y0 + ch, x0 : x0 + cw]),
                (size, size),
                interpolation=cv2.INTER_AREA if ch > size else cv2.INTER_LINEAR,
            )
            if hflip:
                img = img[:, ::-1]
                if s == "of":
                    img = np.stack([flip_u(img[..., 0]), img[..., 1]], -1)
            prepared[k] = normalize_uint8(img)
        # (K, T, S, S, C) -> (K, C, T, S, S)
        arr = np.stack([np.stack([prepared[k] for k in row]) for row in windows.tolist()])
        out[s] = np.ascontiguousarray(arr.transpose(0, 4, 1, 2, 3))
    return out


def stream_length(clip: Clip, streams: Sequence[str]) -> int:
    """Frames to sample from: the flow count when flow is used (RGB has one more)."""
    return clip.flow_frames if "of" in streams else clip.frames

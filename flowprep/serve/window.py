"""From streamed video frames to network inputs, exactly as the training dataset was made and read.

Per source frame (``uint8`` ``(H, W, 3)`` RGB):

1. *Dataset frame* — as ``flowprep build`` made it: keep every ``frame_step``-th frame and resize it
   with :func:`flowprep.video.decode.target_size` / ``resize_frame`` from the record's ``decode``
   section. Flow between consecutive dataset frames comes from the recorded backend and parameters
   (gray frames via ``cv2.COLOR_RGB2GRAY``), is quantized with the recorded
   :class:`~flowprep.flow.encoding.FlowEncoding`, and — when the dataset stored JPEGs — goes through
   the same JPEG encode/decode, so the network sees the artefacts it was trained on.
2. *Network frame* — as :func:`flowprep.loader.frames.load_windows` reads an evaluation clip: a centred
   square crop of ``0.875`` of the short side, resized to ``S x S`` (area filter when shrinking),
   kept as ``uint8`` until a window is assembled, then normalised ``(x / 255 - 0.5) / 0.5``.

Items (one per dataset frame, or per flow image for flow models) go into a ring buffer long enough
for one window (:func:`flowprep.loader.sampling.span`), so any window that ends at the newest item can
be assembled; memory is ``span`` items of ``S x S x 5`` bytes at most.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from flowprep.errors import ConfigError
from flowprep.flow.base import FlowBackend
from flowprep.flow.encoding import FlowEncoding, normalize_uint8
from flowprep.layout.sections import DecodeInfo, RgbInfo
from flowprep.loader.spec import CROP_FRACTION  # the evaluation crop of training: 224 of 256
from flowprep.video.decode import resize_frame, target_size


def center_crop_box(h: int, w: int) -> tuple[int, int, int, int]:
    """``(y0, x0, ch, cw)`` of the centred square evaluation crop (same as ``loader.frames.crop_box(h, w,
    "center", None)``)."""
    side = max(1, round(min(h, w) * CROP_FRACTION))
    return (h - side) // 2, (w - side) // 2, side, side


def to_network(img: np.ndarray, size: int) -> np.ndarray:
    """Crop and resize one dataset image (``uint8`` ``(H, W, C)``) to ``uint8`` ``(size, size, C)``."""
    import cv2

    y0, x0, ch, cw = center_crop_box(img.shape[0], img.shape[1])
    crop = np.ascontiguousarray(img[y0 : y0 + ch, x0 : x0 + cw])
    out = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if ch > size else cv2.INTER_LINEAR)
    return out if out.ndim == 3 else out[..., None]


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """What a JPEG file of ``img`` reads back as (OpenCV's codec, as the build writes)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else None
    if out is None:
        raise ValueError("JPEG encoding failed")
    return out


@dataclass
class Item:
    """One position of the sampled stream.

    Attributes:
        index: position in the stream (dataset frame k, or flow image k: frames k -> k+1).
        first_src, last_src: source-video frame numbers of the first and last frame it uses.
        rgb: ``uint8`` ``(S, S, 3)`` or None. flow: ``uint8`` ``(S, S, 2)`` (u, v) or None.
    """

    index: int
    first_src: int
    last_src: int
    rgb: np.ndarray | None = None
    flow: np.ndarray | None = None


def _stream_image(item: Item, stream: str) -> np.ndarray:
    """The item's ``rgb`` or ``flow`` (for ``"of"``) image; every item of a window has both it needs."""
    img = item.rgb if stream == "rgb" else item.flow
    if img is None:
        raise ValueError(f"window item {item.index} has no {stream} image")
    return img


class FrameProcessor:
    """Turns source frames into :class:`Item` s (see the module docstring).

    Args:
        size: S, network input side.
        use_rgb, use_flow: which streams the model takes.
        decode: the dataset record's ``decode`` section (``short_side``, ``size``, ``frame_step``) or None.
        rgb_format: the record's ``rgb`` section (``image_format``, ``jpeg_quality``) or None.
        (Both typed: :mod:`flowprep.layout.sections`.)
        backend: a :class:`~flowprep.flow.base.FlowBackend` (required with ``use_flow``).
        encoding: the record's flow encoding (required with ``use_flow``).
    """

    def __init__(
        self,
        size: int,
        use_rgb: bool,
        use_flow: bool,
        decode: DecodeInfo | None = None,
        rgb_format: RgbInfo | None = None,
        backend: Any = None,
        encoding: FlowEncoding | None = None,
    ):
        decode = decode or DecodeInfo()
        self.size, self.use_rgb, self.use_flow = size, use_rgb, use_flow
        self.short_side = decode.short_side
        self.wh = decode.size
        self.frame_step = decode.frame_step
        rgb_format = rgb_format or RgbInfo()
        self.rgb_jpeg = rgb_format.jpeg_quality if rgb_format.image_format == "jpg" else None
        self.backend, self.encoding = backend, encoding
        self._flow: tuple[FlowBackend, FlowEncoding] | None = None
        if use_flow:
            if backend is None or encoding is None:
                raise ConfigError("flow pre-processing needs a flow backend and a flow encoding")
            self._flow = (backend, encoding)
        self._target: tuple[int, int] | None = None
        self._prev: tuple[int, np.ndarray, np.ndarray | None] | None = None  # (src, gray, rgb_net)
        self._k = 0  # dataset frames seen

    def push(self, src_index: int, frame: np.ndarray) -> Item | None:
        """Feed source frame ``src_index``; returns the item it completes, if any."""
        import cv2

        if src_index % self.frame_step:
            return None
        if self._target is None:
            self._target = target_size(frame.shape[1], frame.shape[0], self.short_side, self.wh)
        ds = resize_frame(frame, self._target)
        rgb_net = None
        if self.use_rgb:
            img = (
                ds
                if self.rgb_jpeg is None
                else cv2.cvtColor(jpeg_roundtrip(cv2.cvtColor(ds, cv2.COLOR_RGB2BGR), self.rgb_jpeg), cv2.COLOR_BGR2RGB)
            )
            rgb_net = to_network(img, self.size)
        k = self._k
        self._k += 1
        if self._flow is None:
            return Item(k, src_index, src_index, rgb=rgb_net)
        backend, enc = self._flow
        gray = cv2.cvtColor(ds, cv2.COLOR_RGB2GRAY)
        prev, self._prev = self._prev, (src_index, gray, rgb_net)
        if prev is None:
            return None
        flow = backend.calc(prev[1], gray)
        u, v = enc.encode(flow)
        if enc.image_format == "jpg":
            u, v = jpeg_roundtrip(u, enc.jpeg_quality), jpeg_roundtrip(v, enc.jpeg_quality)
        uv = to_network(np.stack([u, v], -1), self.size)
        return Item(k - 1, prev[0], src_index, rgb=prev[2], flow=uv)


class WindowBuffer:
    """The newest ``capacity`` items, and windows assembled from them.

    Args:
        frames: T. sample_rate: step between the T items of a window.
        arch: ``"2d"`` (inputs ``(1, C*T, S, S)``, channel-major) or ``"3d"`` (``(1, C, T, S, S)``).
        streams: ``("rgb",)``, ``("of",)`` or ``("rgb", "of")``, in the model's input order.
    """

    NAMES = {"rgb": "input_rgb", "of": "input_of"}

    def __init__(self, frames: int, sample_rate: int, arch: str, streams: tuple[str, ...]):
        self.frames, self.sample_rate, self.arch, self.streams = frames, sample_rate, arch, streams
        self.span = (frames - 1) * sample_rate + 1
        self.items: deque[Item] = deque(maxlen=self.span)
        self.count = 0  # items pushed in total

    def push(self, item: Item) -> None:
        self.items.append(item)
        self.count += 1

    def held(self, index: int) -> Item:
        """The buffered item with stream position ``index`` (must still be buffered)."""
        first = self.count - len(self.items)
        if not first <= index < self.count:
            raise IndexError(f"item {index} is not buffered (holding {first}..{self.count - 1})")
        return self.items[index - first]

    def assemble(self, indices: np.ndarray) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
        """Network inputs for the window made of items ``indices`` (``int`` ``(T,)``).

        Returns:
            ``({input name: float32 array with batch 1, in [-1, 1]}, (first_src, last_src))``.
        """
        its = [self.held(int(i)) for i in indices]
        out = {}
        for s in self.streams:
            # (T, S, S, C) -> (C, T, S, S)
            arr = np.stack([_stream_image(it, s) for it in its]).transpose(3, 0, 1, 2)
            x = normalize_uint8(np.ascontiguousarray(arr))
            if self.arch == "2d":
                x = x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])
            out[self.NAMES[s]] = x[None]
        return out, (min(it.first_src for it in its), max(it.last_src for it in its))

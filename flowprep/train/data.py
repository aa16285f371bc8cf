"""Reading a built TAO-layout dataset into network inputs: clip list, frames, augmentation.

Per clip, one stream's input is ``float32`` ``(C, T, S, S)`` in ``[-1, 1]`` (C = 3 for RGB in RGB
order, 2 for flow: u then v), normalised as TAO does, ``(x / 255 - 0.5) / 0.5``, directly from the
8-bit images (:func:`flowprep.flow.encoding.normalize_uint8`); 2D models take it reshaped to
``(C * T, S, S)`` (:func:`to_model_inputs`).

Geometry: a crop (the same for every frame and both streams of a clip) is cut from the frames and
resized to ``S x S``. Flow images are resized like RGB images, without rescaling the flow values
(as TAO does): the network sees the 8-bit images exactly as written. A horizontal flip mirrors
every image and, for flow, negates the horizontal component (:func:`flip_u`) — which TAO's loader
does not do, teaching it that mirrored motion goes the wrong way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flowprep.archive.bounded import MAX_FRAME_BYTES, read_regular
from flowprep.errors import ArchiveError, DatasetError
from flowprep.flow.encoding import FlowEncoding, normalize_uint8
from flowprep.layout.paths import flow_names, rgb_name
from flowprep.layout.record import SIDES, DatasetRecord, find_root, read_record
from flowprep.train import sampling
from flowprep.train.spec import CROP_FRACTION, CROPS
from flowprep.train.spec import streams as model_streams

# CROP_FRACTION (train.spec): crop side as a fraction of the short side for "random" and "center":
# 224/256, TAO's and torchvision's "resize to 256, crop 224"
#: TSN's multi-scale crop: width and height each one of these fractions of the short side
MULTISCALE = (1.0, 0.875, 0.75, 0.66)


@dataclass(frozen=True)
class Clip:
    """One clip folder. ``frames``: RGB frames N; ``flow_frames``: flow images (N - 1)."""

    id: str
    path: Path
    label: int
    frames: int
    flow_frames: int


@dataclass(frozen=True)
class DatasetInfo:
    """What the record says: root, classes (label = index), formats and flow encoding."""

    root: Path
    record: DatasetRecord
    classes: list[str]
    rgb_format: str
    encoding: FlowEncoding | None


def open_dataset(path: Path, modality: str, side: str | None = None) -> tuple[DatasetInfo, list[Clip]]:
    """The clips of one side of a dataset, checked against ``modality``.

    Args:
        path: the dataset root, or its ``train``/``val`` folder (then ``side`` defaults to it).
        modality: ``"rgb"``, ``"of"`` or ``"joint"``.
        side: ``"train"`` or ``"val"``; default ``"val"`` for a root path.

    Raises:
        DatasetError: not a flowprep dataset, not the TAO layout, lacking the modality, or no clips.
    """
    path = Path(path)
    root = find_root(path)
    record = read_record(root)
    if side is None:
        side = path.name if path != root and path.name in SIDES else "val"
    if side not in SIDES:
        raise DatasetError(f"side must be one of {SIDES}, got {side!r}")
    if record.layout != "tao":
        raise DatasetError(
            f"{root} has the {record.layout} layout; flowprep train reads the TAO layout: rebuild with --layout tao"
        )
    need_rgb, need_flow = modality in ("rgb", "joint"), modality in ("of", "joint")
    if (need_rgb and not record.has_rgb) or (need_flow and not record.has_flow):
        needs = "RGB frames and flow" if modality == "joint" else "RGB frames" if need_rgb else "flow"
        raise DatasetError(
            f"{root} was built with modality {record.modality!r}, but a "
            f"{modality!r} model needs {needs}; "
            "rebuild it with --modality both"
        )
    classes = list(record.classes)  # the reader refuses a record without classes
    enc = record.encoding if record.has_flow else None
    info = DatasetInfo(root, record, classes, record.rgb.image_format if record.rgb else "png", enc)
    clips = []
    for c in record.ok_clips(side):
        cdir = root / c.id
        if not cdir.is_dir():
            raise DatasetError(f"{root}: clip folder {c.id} listed in the record is missing")
        if (need_rgb and c.frames < 1) or (need_flow and c.flow_frames < 1):
            continue  # too short to sample from (one frame has no flow); the build reports these
        clips.append(Clip(c.id, cdir, c.label, c.frames, c.flow_frames))
    if not clips:
        raise DatasetError(f"{root} has no usable {side} clips for modality {modality!r}")
    return info, clips


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
    """``(y0, x0, ch, cw)`` of the region to cut from ``h x w`` frames (see :data:`CROPS`)."""
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


def _imread(path: Path, color: bool) -> np.ndarray:
    import cv2

    # bytes first: a missing or empty file gets its own message (cv2.imread would also print a
    # warning of its own to stderr)
    try:
        # regular files only, bounded: a FIFO among the frames hung training, /dev/zero filled memory
        data = read_regular(path, MAX_FRAME_BYTES)
    except ArchiveError as exc:
        why = str(exc).removesuffix("; skipped")  # the listing's wording; here the run stops
        raise DatasetError(f"cannot read frame {why}; run `flowprep verify` on the dataset") from None
    if not data:
        raise DatasetError(f"frame {path} is empty (0 bytes); run `flowprep verify` on the dataset")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise DatasetError(f"cannot decode frame {path} (not an image); run `flowprep verify` on the dataset")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if color else img


def load_windows(
    info: DatasetInfo,
    clip: Clip,
    streams: Sequence[str],
    windows: np.ndarray,
    size: int,
    crop: str = "center",
    hflip: bool = False,
    rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Read, crop, resize, flip and normalise ``K`` windows of one clip.

    Args:
        windows: ``int`` ``(K, T)`` frame indices (see :mod:`flowprep.train.sampling`).
        size: S, output side in pixels.
        crop: one of :data:`CROPS`; random kinds draw from ``rng`` (center crop without one).
        hflip: mirror the clip (and negate u).

    Returns:
        stream -> ``float32`` ``(K, C, T, S, S)`` in ``[-1, 1]``.
    """
    import cv2

    windows = np.asarray(windows, dtype=np.int64)
    wanted = np.unique(windows)
    cache: dict[str, dict[int, np.ndarray]] = {}
    for s in streams:
        frames: dict[int, np.ndarray] = {}
        for k in wanted.tolist():
            if s == "rgb":
                frames[k] = _imread(clip.path / rgb_name("tao", k, info.rgb_format), True)
            else:
                un, vn = flow_names("tao", k, info.encoding.image_format if info.encoding else "jpg")
                frames[k] = np.stack([_imread(clip.path / un, False), _imread(clip.path / vn, False)], -1)
        cache[s] = frames
    first = next(iter(cache[streams[0]].values()))
    y0, x0, ch, cw = crop_box(first.shape[0], first.shape[1], crop, rng)
    out = {}
    for s in streams:
        prepared = {}
        for k, img in cache[s].items():
            if img.shape[:2] != first.shape[:2]:
                raise DatasetError(
                    f"{clip.path}: frame {k} of {s} is {img.shape[1]}x{img.shape[0]}, "
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


class ClipDataset:
    """A map-style (``torch.utils.data.Dataset``-compatible) dataset of one window per clip.

    Training draws the window start, crop and flip from a generator seeded by
    ``(seed, epoch, index)``, so a sample does not depend on worker count, order or resumption.
    ``__getitem__`` returns ``(inputs, label)``: ``inputs`` a tuple of ``float32`` tensors
    ``(C, T, S, S)`` in stream order (rgb, then of), ``label`` an int.
    """

    def __init__(
        self,
        info: DatasetInfo,
        clips: Sequence[Clip],
        modality: str,
        frames: int,
        sample_rate: int,
        size: int,
        train: bool,
        crop: str = "random",
        hflip: float = 0.5,
        seed: int = 0,
        labels: Sequence[int] | None = None,
    ):
        if crop not in CROPS:
            raise DatasetError(f"crop must be one of {CROPS}, got {crop!r}")
        self.info, self.clips, self.streams = info, list(clips), model_streams(modality)
        self.frames, self.sample_rate, self.size = frames, sample_rate, size
        self.train, self.crop, self.hflip, self.seed = train, crop, hflip, seed
        self.labels = list(labels) if labels is not None else [c.label for c in self.clips]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        import torch

        clip = self.clips[i]
        n = stream_length(clip, self.streams)
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            idx = sampling.random_indices(n, self.frames, self.sample_rate, rng)
            flip = bool(rng.random() < self.hflip)
            arrs = load_windows(self.info, clip, self.streams, idx[None], self.size, self.crop, flip, rng)
        else:
            idx = sampling.center_indices(n, self.frames, self.sample_rate)
            arrs = load_windows(self.info, clip, self.streams, idx[None], self.size, "center")
        return tuple(torch.from_numpy(arrs[s][0]) for s in self.streams), self.labels[i]


def to_model_inputs(inputs: Sequence[Any], arch: str) -> list[Any]:
    """Batched ``(B, C, T, S, S)`` tensors -> what the model takes (2D: ``(B, C*T, S, S)``, channel-major)."""
    if arch == "3d":
        return list(inputs)
    return [x.reshape(x.shape[0], x.shape[1] * x.shape[2], *x.shape[3:]) for x in inputs]

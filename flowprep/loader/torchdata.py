"""The public PyTorch datasets: what ``flowprep train`` feeds its models, for your own training code.

:class:`ClipDataset` (map-style, random access) reads a folder dataset or a packed one through its
shard index; :class:`ShardStream` (iterable) streams the shards of a packed dataset sequentially.
Both return, per clip, ``(inputs, label)``: ``inputs`` a tuple of ``float32`` tensors
``(C, T, S, S)`` in ``[-1, 1]`` in stream order (rgb, then of: u then v), or ``(C * T, S, S)`` with
``arch="2d"``; ``label`` the class's index in ``info.classes``. Sampling
(:mod:`flowprep.loader.sampling`), crop, the horizontal flip that negates u and the normalisation
(:mod:`flowprep.loader.frames`) are the training run's own code, and every random choice of a sample
is drawn from a generator seeded by ``(seed, epoch, clip index)``: the same clip gets the same
tensors from either class, whatever the order, worker count or resumption.

Example::

    from torch.utils.data import DataLoader
    from flowprep.loader import ClipDataset

    ds = ClipDataset("data/hmdb5", "train", "of", frames=32, size=224)
    for epoch in range(10):
        ds.set_epoch(epoch)
        for (flow,), labels in DataLoader(ds, batch_size=8, shuffle=True, num_workers=4):
            ...  # flow: float32 (8, 2, 32, 224, 224)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from flowprep.errors import DatasetError
from flowprep.layout.packed import ClipFiles, iter_samples
from flowprep.loader import sampling
from flowprep.loader.frames import load_windows, stream_length
from flowprep.loader.source import Clip, DatasetInfo, list_clips
from flowprep.loader.spec import ARCHS, CROPS, STREAMS
from flowprep.loader.spec import streams as model_streams

Sample = tuple[tuple[torch.Tensor, ...], int]


class _Clips:
    """The options both datasets share, and how one clip becomes one sample."""

    def _setup(
        self,
        info: DatasetInfo,
        clips: Sequence[Clip],
        modality: str,
        frames: int,
        sample_rate: int,
        size: int,
        train: bool,
        crop: str,
        hflip: float,
        seed: int,
        labels: Sequence[int] | None,
        arch: str,
    ) -> None:
        if crop not in CROPS:
            raise DatasetError(f"crop must be one of {CROPS}, got {crop!r}")
        if modality not in STREAMS:
            raise DatasetError(f"modality must be one of {STREAMS}, got {modality!r}")
        if arch not in ARCHS:
            raise DatasetError(f"arch must be one of {ARCHS}, got {arch!r}")
        if frames < 1 or sample_rate < 1 or size < 1:
            raise DatasetError(f"frames, sample_rate and size must be >= 1, got {frames}, {sample_rate}, {size}")
        self.info, self.clips, self.streams = info, list(clips), model_streams(modality)
        self.modality, self.frames, self.sample_rate, self.size = modality, frames, sample_rate, size
        self.train, self.crop, self.hflip, self.seed, self.arch = train, crop, hflip, seed, arch
        self.labels = list(labels) if labels is not None else [c.label for c in self.clips]
        if len(self.labels) != len(self.clips):
            raise DatasetError(f"{len(self.labels)} labels for {len(self.clips)} clips")
        self.epoch = 0

    @property
    def classes(self) -> list[str]:
        """Class names; a label is an index into this list."""
        return self.info.classes

    def set_epoch(self, epoch: int) -> None:
        """Draw the next epoch's windows, crops and flips (call before each epoch when training)."""
        self.epoch = epoch

    def _sample(self, i: int, files: ClipFiles | None = None) -> Sample:
        clip = self.clips[i]
        n = stream_length(clip, self.streams)
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            idx = sampling.random_indices(n, self.frames, self.sample_rate, rng)
            flip = bool(rng.random() < self.hflip)
            arrs = load_windows(self.info, clip, self.streams, idx[None], self.size, self.crop, flip, rng, files)
        else:
            idx = sampling.center_indices(n, self.frames, self.sample_rate)
            arrs = load_windows(self.info, clip, self.streams, idx[None], self.size, "center", files=files)
        xs = tuple(torch.from_numpy(arrs[s][0]) for s in self.streams)
        if self.arch == "2d":
            xs = tuple(x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]) for x in xs)
        return xs, self.labels[i]


def _opened(
    dataset: str | Path | tuple[DatasetInfo, Sequence[Clip]], side: str | None, modality: str
) -> tuple[DatasetInfo, Sequence[Clip]]:
    if isinstance(dataset, tuple):
        return dataset
    return list_clips(Path(dataset), modality, side)


class ClipDataset(_Clips, Dataset):
    """Map-style dataset: one window per clip of one side of a folder or packed dataset.

    Args:
        dataset: the dataset root (or its ``train``/``val`` folder), or ``(info, clips)`` from
            :func:`flowprep.loader.list_clips`.
        side: ``"train"`` or ``"val"`` (default: the folder's name, else ``"val"``).
        modality: the model's input streams: ``"rgb"``, ``"of"`` or ``"joint"``.
        frames: T, frames per window; sample_rate: every n-th frame; size: S, the output side.
        train: random window, crop and flip (default: ``side == "train"``); else the centred
            window and crop, no flip (``flowprep train``'s validation).
        crop: ``"random"``, ``"multiscale"``, ``"center"`` or ``"full"`` (training only).
        hflip: probability of the flip that mirrors the clip and negates u.
        seed: seeds every sample's choices together with the epoch and the clip's index.
        labels: replace the clips' labels (same length as the clips).
        arch: ``"3d"``: inputs ``(C, T, S, S)``; ``"2d"``: ``(C * T, S, S)``, channel-major.

    ``ds[i]`` is ``(inputs, label)`` (see the module docstring); ``ds.clips[i]`` the clip (id,
    frame counts), ``ds.info`` the record, classes and flow encoding.

    Raises:
        DatasetError: not a flowprep dataset, lacking the modality, or bad options.
    """

    def __init__(
        self,
        dataset: str | Path | tuple[DatasetInfo, Sequence[Clip]],
        side: str | None = None,
        modality: str = "joint",
        *,
        frames: int = 32,
        sample_rate: int = 1,
        size: int = 224,
        train: bool | None = None,
        crop: str = "random",
        hflip: float = 0.5,
        seed: int = 0,
        labels: Sequence[int] | None = None,
        arch: str = "3d",
    ) -> None:
        info, clips = _opened(dataset, side, modality)
        is_train = train if train is not None else (clips[0].id.split("/")[0] == "train" if clips else False)
        self._setup(info, clips, modality, frames, sample_rate, size, is_train, crop, hflip, seed, labels, arch)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> Sample:
        return self._sample(i)


class ShardStream(_Clips, IterableDataset):
    """Iterable dataset: the shards of one side of a packed dataset, read sequentially.

    Every epoch the shard order is shuffled (``shuffle``, seeded by ``(seed, epoch)``) and each
    (rank, worker) slot reads its own shards, round-robin; with fewer shards than slots every slot
    reads all shards and keeps every n-th clip. Clips pass through a shuffle buffer of ``buffer``
    samples. No shard is loaded whole: one clip at a time is in memory per slot (plus the buffer's
    decoded samples). A clip's tensors equal :class:`ClipDataset`'s for the same seed and epoch.

    Args:
        dataset, side, modality, frames, sample_rate, size, train, crop, hflip, seed, labels, arch:
            as :class:`ClipDataset`; the dataset must be packed.
        shuffle: shuffle shards and samples (default: ``train``).
        buffer: shuffle buffer size in samples (0 or 1: none).
        rank, world: this process's rank and the number of processes (default: from
            ``torch.distributed`` when it is initialised, else 0 and 1).
        samples_per_rank: yield exactly this many samples per epoch on this rank (a short share
            starts over, a long one stops), so DDP ranks take equal steps; None: each clip once.

    Raises:
        DatasetError: a folder dataset (pack it with ``flowprep pack``), or as :class:`ClipDataset`.
    """

    def __init__(
        self,
        dataset: str | Path | tuple[DatasetInfo, Sequence[Clip]],
        side: str | None = None,
        modality: str = "joint",
        *,
        frames: int = 32,
        sample_rate: int = 1,
        size: int = 224,
        train: bool | None = None,
        crop: str = "random",
        hflip: float = 0.5,
        seed: int = 0,
        labels: Sequence[int] | None = None,
        arch: str = "3d",
        shuffle: bool | None = None,
        buffer: int = 64,
        rank: int | None = None,
        world: int | None = None,
        samples_per_rank: int | None = None,
    ) -> None:
        info, clips = _opened(dataset, side, modality)
        if info.packed is None:
            raise DatasetError(f"{info.root} is a folder dataset; ShardStream reads packed ones (`flowprep pack`)")
        is_train = train if train is not None else (clips[0].id.split("/")[0] == "train" if clips else False)
        self._setup(info, clips, modality, frames, sample_rate, size, is_train, crop, hflip, seed, labels, arch)
        self.side = clips[0].id.split("/")[0]
        self.shuffle = is_train if shuffle is None else shuffle
        self.buffer = max(1, buffer)
        if rank is None or world is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            rank, world = (dist.get_rank(), dist.get_world_size()) if ready else (0, 1)
        if not 0 <= rank < world:
            raise DatasetError(f"rank must be in [0, {world}), got {rank}")
        self.rank, self.world, self.samples_per_rank = rank, world, samples_per_rank
        self._position = {c.id: i for i, c in enumerate(self.clips)}

    def __len__(self) -> int:
        """Samples this rank yields per epoch (all workers together)."""
        if self.samples_per_rank is not None:
            return self.samples_per_rank
        return len(self._slot_clips(self.rank, self.world))

    def _shards(self) -> list[str]:
        packed = self.info.packed
        names = packed.side_shards(self.side) if packed is not None else []
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, 17]).permutation(len(names))
            names = [names[j] for j in order.tolist()]
        return names

    def _slot_clips(self, slot: int, slots: int) -> list[int]:
        """Clip indices slot ``slot`` of ``slots`` yields, in reading order (for ``len`` and quotas)."""
        packed = self.info.packed
        if packed is None:
            return []
        shards = self._shards()
        mine = set(shards[slot::slots]) if len(shards) >= slots else set(shards)
        order = {s: j for j, s in enumerate(shards)}
        found = sorted(
            (order[packed.clips[c.id].shard], packed.clips[c.id].offset, i)
            for i, c in enumerate(self.clips)
            if packed.clips[c.id].shard in mine
        )
        idx = [i for _, _, i in found]
        return idx if len(shards) >= slots else idx[slot::slots]

    def _read(self, shards: list[str], keep: set[int]) -> Iterator[tuple[int, ClipFiles]]:
        packed = self.info.packed
        if packed is None:
            return
        for name in shards:
            for _, _, clip in iter_samples(packed.dir / name):
                i = self._position.get(str((clip.entry or {}).get("id")))
                if i is not None and i in keep:
                    yield i, clip

    def __iter__(self) -> Iterator[Sample]:
        worker = get_worker_info()
        wid, nworkers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        slot, slots = self.rank * nworkers + wid, self.world * nworkers
        keep = set(self._slot_clips(slot, slots))
        shards = self._shards()
        mine = shards[slot::slots] if len(shards) >= slots else shards
        quota = None
        if self.samples_per_rank is not None:
            quota = self.samples_per_rank // nworkers + (wid < self.samples_per_rank % nworkers)
        rng = np.random.default_rng([self.seed, self.epoch, slot, 23])
        yielded, buf = 0, []
        while quota is None or yielded < quota:
            before = yielded
            for i, files in self._read(mine, keep):
                buf.append(self._sample(i, files))
                if len(buf) >= self.buffer:
                    yield buf.pop(int(rng.integers(len(buf))) if self.shuffle else 0)
                    yielded += 1
                    if quota is not None and yielded >= quota:
                        return
            while buf and (quota is None or yielded < quota):
                yield buf.pop(int(rng.integers(len(buf))) if self.shuffle else 0)
                yielded += 1
            if quota is None or yielded == before:
                return  # one pass; or nothing to start over with


def to_model_inputs(inputs: Sequence[Any], arch: str) -> list[Any]:
    """Batched ``(B, C, T, S, S)`` tensors -> what the model takes (2D: ``(B, C*T, S, S)``, channel-major)."""
    if arch == "3d":
        return list(inputs)
    return [x.reshape(x.shape[0], x.shape[1] * x.shape[2], *x.shape[3:]) for x in inputs]

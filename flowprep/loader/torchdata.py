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
from flowprep.layout.packed import ClipFiles
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
        train: bool | None,
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
        if train is None:  # the side the clips are on
            train = bool(clips) and clips[0].id.split("/")[0] == "train"
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
        self._setup(info, clips, modality, frames, sample_rate, size, train, crop, hflip, seed, labels, arch)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> Sample:
        return self._sample(i)


class ShardStream(_Clips, IterableDataset):
    """Iterable dataset: the shards of one side of a packed dataset, read sequentially.

    Every epoch the shard order is shuffled (``shuffle``, seeded by ``(seed, epoch)``); each DDP
    rank takes its own shards, round-robin, and each DataLoader worker its own of the rank's (where
    there are fewer shards than ranks, or than a rank's workers, they take every n-th clip
    instead). A worker reads its shards from start to end, one read per
    clip at the offset the index gives (other slots' clips are skipped, not read), through a
    shuffle buffer of ``buffer`` clips that permutes the reading order within that window (see
    :meth:`order`): reads stay within a few hundred MB of each other, and one clip at a time is in
    memory per slot — no shard is loaded whole, no decoded clips wait in a buffer. A clip's tensors
    equal :class:`ClipDataset`'s for the same seed and epoch.

    Args:
        dataset, side, modality, frames, sample_rate, size, train, crop, hflip, seed, labels, arch:
            as :class:`ClipDataset`; the dataset must be packed.
        shuffle: shuffle shards and samples (default: ``train``).
        buffer: shuffle window in clips (0 or 1: shard order only).
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
        self._setup(info, clips, modality, frames, sample_rate, size, train, crop, hflip, seed, labels, arch)
        self.side = clips[0].id.split("/")[0]
        self.shuffle = self.train if shuffle is None else shuffle
        self.buffer = max(1, buffer)
        if rank is None or world is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            rank, world = (dist.get_rank(), dist.get_world_size()) if ready else (0, 1)
        if not 0 <= rank < world:
            raise DatasetError(f"rank must be in [0, {world}), got {rank}")
        self.rank, self.world, self.samples_per_rank = rank, world, samples_per_rank

    def __len__(self) -> int:
        """Samples this rank yields per epoch (all its workers together)."""
        if self.samples_per_rank is not None:
            return self.samples_per_rank
        return len(self._share(self._shards(), self.rank, self.world)[1])

    def _shards(self) -> list[str]:
        packed = self.info.packed
        names = packed.side_shards(self.side) if packed is not None else []
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, 17]).permutation(len(names))
            names = [names[j] for j in order.tolist()]
        return names

    def _share(self, shards: list[str], k: int, n: int) -> tuple[list[str], list[int]]:
        """Part ``k`` of ``n`` of ``shards``: ``(its shards, its clip indices in reading order)``.

        Whole shards round-robin when there are at least ``n``; else every n-th clip of all of them.
        """
        packed = self.info.packed
        if packed is None:
            return [], []
        mine = shards[k::n] if len(shards) >= n else shards
        rank = {s: j for j, s in enumerate(mine)}
        refs = ((packed.clips[c.id], i) for i, c in enumerate(self.clips))
        idx = [i for _, _, i in sorted((rank[r.shard], r.offset, i) for r, i in refs if r.shard in rank)]
        return (mine, idx) if len(shards) >= n else ([], idx[k::n])

    def order(self, worker: int = 0, workers: int = 1) -> list[int]:
        """Clip indices in the order DataLoader worker ``worker`` of ``workers`` of this rank reads
        them this epoch: the rank's share of the shards (the epoch's shard order), the worker's share
        of that, each shard front to back, then through the shuffle buffer (a window of ``buffer``
        clips, one drawn at random each step)."""
        rank_shards, rank_clips = self._share(self._shards(), self.rank, self.world)
        if len(rank_shards) >= workers:
            front = self._share(rank_shards, worker, workers)[1]
        else:
            front = rank_clips[worker::workers]
        if not self.shuffle or self.buffer <= 1:
            return front
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker, 23])
        out, buf = [], []
        for i in front:
            buf.append(i)
            if len(buf) >= self.buffer:
                out.append(buf.pop(int(rng.integers(len(buf)))))
        while buf:
            out.append(buf.pop(int(rng.integers(len(buf)))))
        return out

    def __iter__(self) -> Iterator[Sample]:
        worker = get_worker_info()
        wid, nworkers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        order = self.order(wid, nworkers)
        if self.samples_per_rank is None:
            quota = len(order)
        else:
            quota = self.samples_per_rank // nworkers + (wid < self.samples_per_rank % nworkers)
        packed = self.info.packed
        for j in range(quota if order else 0):  # a short share starts over (DistributedSampler pads alike)
            i = order[j % len(order)]
            # the buffer shuffles indices, not decoded clips: one clip in memory, reads stay near each other
            yield self._sample(i, packed.read_clip(self.clips[i].id) if packed is not None else None)


def to_model_inputs(inputs: Sequence[Any], arch: str) -> list[Any]:
    """Batched ``(B, C, T, S, S)`` tensors -> what the model takes (2D: ``(B, C*T, S, S)``, channel-major)."""
    if arch == "3d":
        return list(inputs)
    return [x.reshape(x.shape[0], x.shape[1] * x.shape[2], *x.shape[3:]) for x in inputs]

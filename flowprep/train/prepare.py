"""What a training run is made of before its first epoch: this rank's data loaders and the model.

:func:`open_loaders` builds the datasets, the distributed sampler and the loaders; :func:`make_model`
the seeded model with its optimiser, learning-rate schedule and fp16 gradient scaler. The epochs,
checkpoints and resumption are in :mod:`flowprep.train.loop`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from flowprep.loader.source import Clip, DatasetInfo
from flowprep.loader.torchdata import ClipDataset, ShardStream
from flowprep.train.config import TrainConfig
from flowprep.train.models import build_model, init_from_imagenet

# the training log: these messages belong to the run, as those of flowprep.train.loop do
log = logging.getLogger("flowprep.train.loop")


@dataclass
class RunData:
    """The datasets and loaders of a run (this rank's share)."""

    info: DatasetInfo
    train_ds: ClipDataset | ShardStream
    sampler: DistributedSampler | None  # None when streaming shards (ShardStream orders the clips)
    train_dl: DataLoader
    val_dl: DataLoader
    per_rank: int  # training clips per rank per epoch


@dataclass
class RunModel:
    """The model and what optimises it; ``net`` is the DDP wrapper under torchrun, else ``model``."""

    model: nn.Module
    net: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.MultiStepLR
    scaler: torch.amp.GradScaler | None


def open_loaders(
    cfg: TrainConfig,
    info: DatasetInfo,
    train_clips: list[Clip],
    val_clips: list[Clip],
    rank: int,
    world: int,
    device: torch.device,
) -> RunData:
    """Datasets, the distributed sampler and the loaders (validation: every clip once over all ranks)."""
    labels = [c.label for c in train_clips]
    if cfg.shuffle_labels:
        labels = np.random.default_rng([cfg.seed, 7]).permutation(labels).tolist()
    # the training samples' options, the same for the map-style dataset and the shard stream
    train_options: dict[str, Any] = dict(
        modality=cfg.modality,
        frames=cfg.frames,
        sample_rate=cfg.sample_rate,
        size=cfg.input_size,
        train=True,
        crop=cfg.crop,
        hflip=cfg.hflip,
        seed=cfg.seed,
        labels=labels,
    )
    train_ds: ClipDataset | ShardStream = ClipDataset((info, train_clips), **train_options)
    val_ds = ClipDataset(
        (info, val_clips),
        modality=cfg.modality,
        frames=cfg.frames,
        sample_rate=cfg.sample_rate,
        size=cfg.input_size,
        train=False,
    )
    per_rank = -(-len(train_ds) // world)
    sampler: DistributedSampler | None = None
    if cfg.stream:
        # sequential reads of the shards: every rank takes per_rank clips, so DDP ranks step together
        train_ds = ShardStream(
            (info, train_clips),
            **train_options,
            rank=rank,
            world=world,
            samples_per_rank=per_rank if world > 1 else None,
        )
        train_dl: DataLoader = DataLoader(
            train_ds,
            batch_size=cfg.batch_size,
            num_workers=cfg.workers,
            drop_last=per_rank > cfg.batch_size,
            pin_memory=device.type == "cuda",
        )
    else:
        sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
        train_dl = DataLoader(
            train_ds,
            batch_size=cfg.batch_size,
            sampler=sampler,
            num_workers=cfg.workers,
            drop_last=per_rank > cfg.batch_size,
            pin_memory=device.type == "cuda",
        )
    # validation: every clip exactly once over all ranks (no padding duplicates)
    val_dl: DataLoader = DataLoader(
        Subset(val_ds, list(range(rank, len(val_ds), world))), batch_size=cfg.batch_size, num_workers=cfg.workers
    )
    return RunData(info, train_ds, sampler, train_dl, val_dl, per_rank)


def make_model(cfg: TrainConfig, num_classes: int, device: torch.device) -> RunModel:
    """A seeded model (ImageNet-initialised when asked and not resuming), optimiser, schedule, scaler."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, cfg.modality, num_classes, cfg.frames, cfg.dropout)
    if cfg.imagenet is not None and not cfg.resume:
        skipped = init_from_imagenet(model, cfg.imagenet)
        log.info("initialised from %s (fresh: %s)", cfg.imagenet, ", ".join(skipped))
    model.to(device)
    opt: torch.optim.Optimizer
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.lr_steps), gamma=cfg.lr_decay)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp and device.type == "cuda" else None
    return RunModel(model, model, opt, sched, scaler)

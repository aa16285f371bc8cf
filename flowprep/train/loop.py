"""Training: one process, or one per GPU/CPU slot under ``torchrun`` (DistributedDataParallel).

Files in ``out``: ``last.pt`` (every epoch), ``best.pt`` (best validation top-1), ``log.jsonl``
(one JSON object per epoch). Only rank 0 writes.

Determinism and exact resumption: every source of randomness is a function of ``(seed, epoch)``
— the shuffling (``DistributedSampler(seed)`` + ``set_epoch``), each sample's window start, crop
and flip (seeded by ``(seed, epoch, index)``, independent of data-loader workers), and dropout
(torch's generator is re-seeded from ``(seed, epoch, rank)`` at the start of every epoch). So a run
resumed from ``last.pt`` of epoch ``e`` computes the same epochs ``e+1...`` as an uninterrupted run,
on the CPU bit for bit. The RNG states are stored in the checkpoint as well, for inspection.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flowprep.errors import ConfigError, DatasetError, writing
from flowprep.layout.record import find_root, json_safe
from flowprep.limits import check_count, check_finite
from flowprep.train import checkpoint as ckpt_mod
from flowprep.train.data import CROPS, ClipDataset, open_dataset, to_model_inputs
from flowprep.train.models import ARCHS, MODALITIES, build_model, init_from_imagenet

log = logging.getLogger(__name__)
OPTIMIZERS = ("sgd", "adamw")


@dataclass
class TrainConfig:
    """Training options (CLI: ``flowprep train``). Defaults follow TAO's action-recognition spec
    where it has one (SGD momentum 0.9, weight decay 5e-4, steps at 15 and 25 x0.1, dropout 0.5,
    flip 0.5, lr 0.01 as in TAO's sample specs)."""

    dataset: Path
    out: Path
    arch: str = "2d"
    modality: str = "rgb"
    frames: int = 32
    sample_rate: int = 1
    input_size: int = 224
    epochs: int = 30
    batch_size: int = 8
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_steps: list[int] = field(default_factory=lambda: [15, 25])
    lr_decay: float = 0.1
    clip_grad: float = 0.0          # max gradient L2 norm; 0 = off (TAO's default)
    dropout: float = 0.5
    crop: str = "random"
    hflip: float = 0.5
    amp: bool = True                # only on CUDA
    workers: int = 2
    seed: int = 0
    resume: bool = False
    imagenet: Path | None = None    # torchvision ResNet-18 state_dict
    device: str = "auto"
    shuffle_labels: bool = False    # sanity check: should not generalise
    progress: bool = True

    def validate(self) -> None:
        if self.arch not in ARCHS or self.modality not in MODALITIES:
            raise ConfigError(f"--arch must be one of {ARCHS} and --modality one of {MODALITIES}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.crop not in CROPS:
            raise ConfigError(f"--crop must be one of {CROPS}, got {self.crop!r}")
        for name in ("frames", "sample_rate", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.input_size < 32:
            raise ConfigError(f"--input-size must be >= 32 (ResNet downsamples 32x), got {self.input_size}")
        if not 0 <= self.hflip <= 1 or not 0 <= self.dropout < 1:
            raise ConfigError("--hflip must be in [0, 1] and --dropout in [0, 1)")
        self._check_numbers()
        inside = out_inside_dataset(self.dataset, self.out)
        if inside:
            raise ConfigError(inside)

    def _check_numbers(self) -> None:
        """Finite numbers in range (nan passes every ``<``/``>`` test above), sizes with a ceiling."""
        for name, lo, hi in (("frames", 1, 4096), ("sample_rate", 1, 1000), ("input_size", 32, 1024),
                             ("epochs", 1, 100_000), ("batch_size", 1, 4096), ("workers", 0, 256)):
            check_count(f"--{name.replace('_', '-')}", getattr(self, name), lo, hi)
        check_finite("--lr", self.lr, 0, 10, lo_open=True)
        check_finite("--momentum", self.momentum, 0, 1, hi_open=True)
        check_finite("--weight-decay", self.weight_decay, 0, 1)
        check_finite("--lr-decay", self.lr_decay, 0, 1, lo_open=True)
        check_finite("--clip-grad", self.clip_grad, 0)
        check_finite("--hflip", self.hflip, 0, 1)
        check_finite("--dropout", self.dropout, 0, 1, hi_open=True)
        for step in self.lr_steps:
            check_count("--lr-steps", step, 1, 100_000)

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def out_inside_dataset(dataset: Path, out: Path) -> str | None:
    """Why ``out`` may not hold a run, or None: inside the dataset's ``train/``, ``val/`` or
    ``rawframes/`` a run folder would be listed as a class (TAO lists them) and fail ``verify``."""
    try:
        root = find_root(Path(dataset)).resolve()
    except DatasetError:
        return None  # not a dataset: open_dataset says so
    target = Path(out).resolve()
    for top in ("train", "val", "rawframes"):
        if target.is_relative_to(root / top):
            return f"--out {out} is inside the dataset's {top}/ folder, which holds only class folders; " \
                   "choose a folder outside it"
    return None


def _dist_setup(device: str) -> tuple[int, int, torch.device]:
    """``(rank, world, device)``; initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked, but torch sees no CUDA device")
    if world > 1:
        import torch.distributed as dist

        local = int(os.environ.get("LOCAL_RANK", "0"))
        if cuda:  # NCCL's recommended order: bind the device before creating the process group
            torch.cuda.set_device(local)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if cuda else "gloo")
        rank = dist.get_rank()
        return rank, world, torch.device(f"cuda:{local}" if cuda else "cpu")
    return 0, 1, torch.device("cuda" if cuda else "cpu")


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _all_sum(values: list[float], world: int, device: torch.device) -> list[float]:
    if world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _run_epoch(model: nn.Module, loader, arch: str, device: torch.device, opt=None, scaler=None,
               clip_grad: float = 0.0, bar=None) -> tuple[float, float, int]:
    """One pass; trains when ``opt`` is given. Returns (loss sum, correct, count) on this rank."""
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    loss_sum, correct, count = 0.0, 0.0, 0
    train = opt is not None
    model.train(train)
    amp = scaler is not None
    with torch.set_grad_enabled(train):
        for inputs, labels in loader:
            xs = [x.to(device, non_blocking=True) for x in to_model_inputs(inputs, arch)]
            labels = labels.to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                logits = model(*xs)
                loss = loss_fn(logits.float(), labels)
            if train:
                opt.zero_grad(set_to_none=True)
                batch_loss = loss / labels.numel()
                if amp:
                    scaler.scale(batch_loss).backward()
                    scaler.unscale_(opt)
                else:
                    batch_loss.backward()
                if clip_grad > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
                if amp:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
            loss_sum += float(loss.detach())
            correct += float((logits.argmax(1) == labels).sum())
            count += labels.numel()
            if bar is not None:
                bar.update(labels.numel())
                bar.set_postfix(loss=f"{loss_sum / max(count, 1):.3f}", acc=f"{correct / max(count, 1):.3f}")
    return loss_sum, correct, count


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train a model on ``cfg.dataset`` and write checkpoints and a log to ``cfg.out``.

    Returns:
        ``{"best_acc": float, "epochs": int, "last": path, "best": path, "log": path,
        "clips_per_s": float}`` (throughput of the last epoch's training pass, all ranks).

    Raises:
        ConfigError: contradicting options, an existing run without ``resume``, a resume that
            does not match (architecture, modality, frames, classes, or the dataset's recipe:
            see :func:`flowprep.train.checkpoint.recipe_differences`). DatasetError: see :func:`flowprep.train.data.open_dataset`.
        CheckpointError: a ``last.pt`` that is not a compatible checkpoint.
    """
    from torch.utils.data import DataLoader, DistributedSampler
    from tqdm import tqdm

    cfg.validate()
    out = Path(cfg.out)
    last_path, best_path, log_path = out / "last.pt", out / "best.pt", out / "log.jsonl"
    if last_path.exists() and not cfg.resume:
        raise ConfigError(f"{out} already holds a run (last.pt); pass --resume to continue it "
                          "or choose another --out")
    if cfg.resume and not last_path.exists():
        raise ConfigError(f"--resume: {last_path} does not exist")
    info, train_clips = open_dataset(cfg.dataset, cfg.modality, "train")
    _, val_clips = open_dataset(cfg.dataset, cfg.modality, "val")
    rank, world, device = _dist_setup(cfg.device)

    labels = [c.label for c in train_clips]
    if cfg.shuffle_labels:
        labels = np.random.default_rng([cfg.seed, 7]).permutation(labels).tolist()
    train_ds = ClipDataset(info, train_clips, cfg.modality, cfg.frames, cfg.sample_rate, cfg.input_size,
                           True, cfg.crop, cfg.hflip, cfg.seed, labels)
    val_ds = ClipDataset(info, val_clips, cfg.modality, cfg.frames, cfg.sample_rate, cfg.input_size, False)
    sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    per_rank = -(-len(train_ds) // world)
    train_dl = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                          drop_last=per_rank > cfg.batch_size, pin_memory=device.type == "cuda")
    # validation: every clip exactly once over all ranks (no padding duplicates)
    val_dl = DataLoader(torch.utils.data.Subset(val_ds, list(range(rank, len(val_ds), world))),
                        batch_size=cfg.batch_size, num_workers=cfg.workers)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, cfg.modality, len(info.classes), cfg.frames, cfg.dropout)
    if cfg.imagenet is not None and not cfg.resume:
        skipped = init_from_imagenet(model, cfg.imagenet)
        log.info("initialised from %s (fresh: %s)", cfg.imagenet, ", ".join(skipped))
    model.to(device)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.lr_steps), gamma=cfg.lr_decay)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp and device.type == "cuda" else None

    start, best_acc = 0, -1.0
    if cfg.resume:
        ck = ckpt_mod.load_checkpoint(last_path)
        ckpt_mod.check_compatible(ck, cfg.arch, cfg.modality, cfg.frames)
        if ck["classes"] != info.classes:
            raise ConfigError(f"--resume: {last_path} was trained on classes {ck['classes']}, "
                              f"the dataset has {info.classes}")
        changed = [f"--{k.replace('_', '-')} {ck.get(k)} -> {v}" for k, v in
                   (("sample_rate", cfg.sample_rate), ("input_size", cfg.input_size)) if ck.get(k) != v]
        if changed:
            raise ConfigError(f"--resume: {last_path} was trained with other options ({', '.join(changed)}); "
                              "resume with the same ones")
        diffs = ckpt_mod.recipe_differences(ck, info.record)
        if diffs:
            raise ConfigError(f"--resume: {info.root} was built differently from the data {last_path} "
                              f"was trained on (checkpoint != dataset): {'; '.join(diffs)}")
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        if scaler is not None and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        start, best_acc = int(ck["epoch"]), float(ck["best_acc"])
        if rank == 0 and log_path.exists():
            # drop epochs logged after the checkpoint was written (interrupted in between)
            kept = [ln for ln in log_path.read_text().splitlines() if _logged_epoch(ln) <= start]
            log_path.write_text("".join(ln + "\n" for ln in kept))
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    clips_per_s = 0.0
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    for epoch in range(start, cfg.epochs):
        torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + rank)
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        lr = opt.param_groups[0]["lr"]
        bar = tqdm(total=len(train_dl) * cfg.batch_size if train_dl.drop_last else per_rank,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="clip", leave=False,
                   disable=not cfg.progress or rank != 0)
        t0 = time.perf_counter()
        tl, tc, tn = _all_sum(list(_run_epoch(net, train_dl, cfg.arch, device, opt, scaler, cfg.clip_grad, bar)),
                              world, device)
        elapsed = time.perf_counter() - t0
        bar.close()
        sched.step()
        vl, vc, vn = _all_sum(list(_run_epoch(model, val_dl, cfg.arch, device)), world, device)
        clips_per_s = tn / max(elapsed, 1e-9)
        val_acc = vc / max(vn, 1)
        improved = val_acc > best_acc
        best_acc = max(best_acc, val_acc)
        entry = {"epoch": epoch + 1, "lr": lr, "train_loss": tl / max(tn, 1), "train_acc": tc / max(tn, 1),
                 "val_loss": vl / max(vn, 1), "val_acc": val_acc, "best_acc": best_acc,
                 "train_clips_per_s": round(clips_per_s, 3), "world_size": world}
        if rank == 0:
            ck = {"arch": cfg.arch, "modality": cfg.modality, "frames": cfg.frames,
                  "sample_rate": cfg.sample_rate, "input_size": cfg.input_size, "classes": info.classes,
                  "state_dict": model.state_dict(), "dataset_record": _record_without_clips(info.record),
                  "epoch": epoch + 1, "best_acc": best_acc, "optimizer": opt.state_dict(),
                  "scheduler": sched.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                  "rng_state": _rng_state(), "args": cfg.to_json()}
            # last.pt is the commit point of an epoch, so it is written last: interrupted before it,
            # --resume redoes the epoch (identically) and rewrites best.pt and the log line; the
            # resume drops log lines of epochs after last.pt.
            if improved:
                ckpt_mod.save_checkpoint(best_path, ck)
            with writing(log_path), open(log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(json_safe(entry), allow_nan=False) + "\n")
            ckpt_mod.save_checkpoint(last_path, ck)
            log.info("epoch %d: %s", epoch + 1, entry)
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return {"best_acc": best_acc, "epochs": cfg.epochs, "last": str(last_path), "best": str(best_path),
            "log": str(log_path), "clips_per_s": clips_per_s, "rank": rank}


def _logged_epoch(line: str) -> float:
    """Epoch of a log line; a line cut off by an interrupt counts as after every checkpoint."""
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return float("inf")


def _record_without_clips(record: dict[str, Any]) -> dict[str, Any]:
    """The dataset record minus its per-clip list (large for big datasets, useless to inference);
    ``clip_count`` says how many there were."""
    rec = {k: v for k, v in record.items() if k != "clips"}
    rec["clip_count"] = len(record.get("clips", []))
    return rec

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
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from flowprep.env import DistEnv, dist_env
from flowprep.errors import CheckpointError, ConfigError, FlowprepError
from flowprep.fsio.reading import parse_json, read_text
from flowprep.fsio.writing import write_text_atomic
from flowprep.limits import json_safe
from flowprep.loader.source import DatasetInfo, list_clips
from flowprep.loader.torchdata import to_model_inputs
from flowprep.train import checkpoint as ckpt_mod
from flowprep.train.checkpoint_meta import Checkpoint
from flowprep.train.config import TrainConfig, TrainSummary
from flowprep.train.prepare import RunData, RunModel, make_model, open_loaders

log = logging.getLogger(__name__)

#: the largest training log read (one line of about 300 bytes per epoch)
MAX_LOG_BYTES = 16 << 20

__all__ = [
    "evaluate_epoch",
    "train",
    "train_one_epoch",
]


def _dist_setup(device: str, denv: DistEnv | None = None) -> tuple[int, int, torch.device]:
    """``(rank, world, device)``; initialises the process group under torchrun.

    ``denv`` is torchrun's environment (default: read and checked by :func:`flowprep.env.dist_env`).

    Raises:
        ConfigError: a malformed torchrun variable, a ``LOCAL_RANK`` with no CUDA device of that
            number, or a process group that cannot be joined (one line, naming the cause).
    """
    denv = dist_env() if denv is None else denv
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked, but torch sees no CUDA device")
    if not denv.distributed:
        return 0, 1, torch.device("cuda" if cuda else "cpu")
    local = denv.local_rank
    if cuda:  # NCCL's recommended order: bind the device before creating the process group
        count = torch.cuda.device_count()
        if local >= count:
            raise ConfigError(
                f"environment variable LOCAL_RANK={local} names CUDA device {local}, but torch sees {count}; "
                "start at most that many processes per node (torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend="nccl" if cuda else "gloo")
        except (RuntimeError, ValueError, OSError) as exc:  # DistNetworkError, timeouts, bad store
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(
                f"cannot join the process group at {denv.master_addr}:{denv.master_port} "
                f"(rank {denv.rank} of {denv.world_size}): {first}"
            ) from exc
    return dist.get_rank(), denv.world_size, torch.device(f"cuda:{local}" if cuda else "cpu")


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _all_sum(values: list[float], world: int, device: torch.device) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _step(
    model: nn.Module,
    loss: torch.Tensor,
    count: int,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    clip_grad: float,
) -> None:
    """One optimiser step on the batch mean of a summed ``loss`` (fp16 loss scaling with ``scaler``)."""
    opt.zero_grad(set_to_none=True)
    batch_loss = loss / count
    if scaler is not None:
        scaler.scale(batch_loss).backward()
        scaler.unscale_(opt)
    else:
        batch_loss.backward()
    if clip_grad > 0:
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()


def _run_epoch(
    model: nn.Module,
    loader: DataLoader,
    arch: str,
    device: torch.device,
    opt: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    clip_grad: float = 0.0,
    bar: Any = None,
) -> tuple[float, float, int]:
    """One pass; trains when ``opt`` is given. Returns (loss sum, correct, count) on this rank."""
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    loss_sum, correct, count = 0.0, 0.0, 0
    training = opt is not None
    model.train(training)
    with torch.set_grad_enabled(training):
        for inputs, labels in loader:
            xs = [x.to(device, non_blocking=True) for x in to_model_inputs(inputs, arch)]
            labels = labels.to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=scaler is not None):
                logits = model(*xs)
                loss = loss_fn(logits.float(), labels)
            if opt is not None:
                _step(model, loss, labels.numel(), opt, scaler, clip_grad)
            loss_sum += float(loss.detach())
            correct += float((logits.argmax(1) == labels).sum())
            count += labels.numel()
            if bar is not None:
                bar.update(labels.numel())
                bar.set_postfix(loss=f"{loss_sum / max(count, 1):.3f}", acc=f"{correct / max(count, 1):.3f}")
    return loss_sum, correct, count


def _run_paths(cfg: TrainConfig) -> tuple[Path, Path, Path]:
    """``(last.pt, best.pt, log.jsonl)`` of the run folder, after checking it fits ``cfg.resume``."""
    out = Path(cfg.out)
    last_path, best_path, log_path = out / "last.pt", out / "best.pt", out / "log.jsonl"
    if last_path.exists() and not cfg.resume:
        raise ConfigError(f"{out} already holds a run (last.pt); pass --resume to continue it or choose another --out")
    if cfg.resume and not last_path.exists():
        raise ConfigError(f"--resume: {last_path} does not exist")
    return last_path, best_path, log_path


def _check_resumable(cfg: TrainConfig, ck: Checkpoint, last_path: Path, info: DatasetInfo) -> None:
    """Raise :class:`ConfigError` unless ``last.pt`` continues with these options and this dataset."""
    ckpt_mod.check_compatible(ck, cfg.arch, cfg.modality, cfg.frames)
    if list(ck.classes) != info.classes:
        raise ConfigError(
            f"--resume: {last_path} was trained on classes {list(ck.classes)}, the dataset has {info.classes}"
        )
    changed = [
        f"--{k.replace('_', '-')} {getattr(ck, k)} -> {v}"
        for k, v in (("sample_rate", cfg.sample_rate), ("input_size", cfg.input_size))
        if getattr(ck, k) != v
    ]
    if changed:
        raise ConfigError(
            f"--resume: {last_path} was trained with other options ({', '.join(changed)}); resume with the same ones"
        )
    diffs = ckpt_mod.recipe_differences(ck, info.record)
    if diffs:
        raise ConfigError(
            f"--resume: {info.root} was built differently from the data {last_path} "
            f"was trained on (checkpoint != dataset): {'; '.join(diffs)}"
        )


def _resume(
    cfg: TrainConfig, m: RunModel, info: DatasetInfo, last_path: Path, log_path: Path, rank: int
) -> tuple[int, float]:
    """Load ``last.pt`` into ``m``; returns ``(epochs done, best accuracy)``. Rank 0 also drops log
    lines of epochs logged after the checkpoint was written (interrupted in between).

    Raises:
        ConfigError: another run's options or dataset (see :func:`_check_resumable`).
        CheckpointError: a ``last.pt`` without training state, or whose optimizer, scheduler or
            scaler state does not fit this run (checked before anything is loaded).
    """
    ck = ckpt_mod.load_checkpoint(last_path)
    _check_resumable(cfg, ck, last_path, info)
    if ck.optimizer is None or ck.scheduler is None or ck.best_acc is None:
        raise CheckpointError(
            f"{last_path} holds no training state (optimizer, schedule, best accuracy); cannot resume"
        )
    ckpt_mod.check_state_fits(m.opt, ck.optimizer, f"{last_path}: optimizer")
    ckpt_mod.check_state_fits(m.sched, ck.scheduler, f"{last_path}: scheduler")
    if m.scaler is not None and ck.scaler:
        ckpt_mod.check_state_fits(m.scaler, ck.scaler, f"{last_path}: scaler")
    try:
        m.model.load_state_dict(dict(ck.state_dict))
        m.opt.load_state_dict(dict(ck.optimizer))
        m.sched.load_state_dict(dict(ck.scheduler))
        if m.scaler is not None and ck.scaler:
            m.scaler.load_state_dict(dict(ck.scaler))
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:  # what the checks above may miss
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{last_path}: its training state does not fit this run ({first})") from exc
    start = ck.epoch
    if rank == 0:
        trim_log(log_path, start)
    return start, ck.best_acc


def _read_log(log_path: Path) -> str:
    """The training log's text ("" when there is none yet), read through the gate: a regular file
    of at most :data:`MAX_LOG_BYTES`, not through a symlink (flowprep writes none in a run folder)."""
    if not os.path.lexists(log_path):
        return ""
    return read_text(log_path, what="training log", max_bytes=MAX_LOG_BYTES, owned=True, error=ConfigError)


def trim_log(log_path: Path, epochs: int) -> None:
    """Drop the log lines of epochs after ``epochs`` (logged, then interrupted before ``last.pt``);
    rewritten atomically, so an interrupt here leaves the old log, not half of it."""
    if os.path.lexists(log_path):
        kept = [ln for ln in _read_log(log_path).splitlines() if _logged_epoch(ln) <= epochs]
        write_text_atomic(log_path, "".join(ln + "\n" for ln in kept))


def append_log(log_path: Path, entry: dict[str, Any]) -> None:
    """Add ``entry`` as one JSON line to the log. The log is rewritten whole (a temporary sibling
    renamed into place) rather than appended to: an append would follow a symlink planted at its name
    and leave a partial line on a full disk. It holds one short line per epoch, so this costs nothing."""
    line = json.dumps(json_safe(entry), allow_nan=False) + "\n"
    write_text_atomic(log_path, _read_log(log_path) + line)


def train_one_epoch(
    cfg: TrainConfig, epoch: int, data: RunData, m: RunModel, rank: int, world: int, device: torch.device
) -> tuple[float, float, int, float]:
    """Train one epoch (re-seeded from ``(seed, epoch, rank)`` for exact resumption), then step the
    schedule. Returns ``(loss sum, correct, count, seconds)`` summed over all ranks."""
    torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + rank)
    if data.sampler is not None:
        data.sampler.set_epoch(epoch)
    data.train_ds.set_epoch(epoch)
    bar = tqdm(
        total=len(data.train_dl) * cfg.batch_size if data.train_dl.drop_last else data.per_rank,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        unit="clip",
        leave=False,
        disable=not cfg.progress or rank != 0,
    )
    t0 = time.perf_counter()
    sums = _run_epoch(m.net, data.train_dl, cfg.arch, device, m.opt, m.scaler, cfg.clip_grad, bar)
    tl, tc, tn = _all_sum(list(sums), world, device)
    elapsed = time.perf_counter() - t0
    bar.close()
    m.sched.step()
    return tl, tc, int(tn), elapsed


def evaluate_epoch(
    model: nn.Module, loader: DataLoader, arch: str, world: int, device: torch.device
) -> tuple[float, float, int]:
    """Validation pass: ``(loss sum, correct, count)`` summed over all ranks."""
    vl, vc, vn = _all_sum(list(_run_epoch(model, loader, arch, device)), world, device)
    return vl, vc, int(vn)


def _checkpoint(cfg: TrainConfig, info: DatasetInfo, m: RunModel, epoch: int, best_acc: float) -> Checkpoint:
    """The checkpoint after ``epoch`` (0-based) (see :mod:`flowprep.train.checkpoint`)."""
    return Checkpoint(
        arch=cfg.arch,
        modality=cfg.modality,
        frames=cfg.frames,
        sample_rate=cfg.sample_rate,
        input_size=cfg.input_size,
        classes=tuple(info.classes),
        state_dict=m.model.state_dict(),
        # the record minus its per-clip list (large for big datasets, useless to inference)
        dataset_record=info.record.summary_dict(),
        recipe=info.record.recipe,
        epoch=epoch + 1,
        best_acc=best_acc,
        optimizer=m.opt.state_dict(),
        scheduler=m.sched.state_dict(),
        scaler=m.scaler.state_dict() if m.scaler else None,
        rng_state=_rng_state(),
        args=cfg.to_json(),
    )


def _save_epoch(paths: tuple[Path, Path, Path], ck: Checkpoint, entry: dict[str, Any], improved: bool) -> None:
    """Write ``best.pt`` (when ``improved``), the log line, then ``last.pt``.

    last.pt is the commit point of an epoch, so it is written last: interrupted before it, --resume
    redoes the epoch (identically) and rewrites best.pt and the log line; the resume drops log lines
    of epochs after last.pt.
    """
    last_path, best_path, log_path = paths
    if improved:
        ckpt_mod.save_checkpoint(best_path, ck)
    append_log(log_path, entry)
    ckpt_mod.save_checkpoint(last_path, ck)


def train(cfg: TrainConfig) -> TrainSummary:
    """Train a model on ``cfg.dataset`` and write checkpoints and a log to ``cfg.out``.

    Returns:
        A :class:`TrainSummary`; ``clips_per_s`` is the throughput of the last epoch's training pass,
        all ranks together.

    Raises:
        ConfigError: contradicting options, an existing run without ``resume``, a resume that
            does not match (architecture, modality, frames, classes, or the dataset's recipe:
            see :func:`flowprep.train.checkpoint.recipe_differences`).
        DatasetError: see :func:`flowprep.loader.source.list_clips`.
        CheckpointError: a ``last.pt`` that is not a compatible checkpoint.
    """
    cfg.validate()  # again: a config may have been changed since it was created
    denv = dist_env()  # before any work: a malformed torchrun variable is one line, not a traceback
    paths = _run_paths(cfg)
    info, train_clips = list_clips(cfg.dataset, cfg.modality, "train")
    _, val_clips = list_clips(cfg.dataset, cfg.modality, "val")
    rank, world, device = _dist_setup(cfg.device, denv)
    data = open_loaders(cfg, info, train_clips, val_clips, rank, world, device)
    m = make_model(cfg, len(info.classes), device)
    start, best_acc = _resume(cfg, m, info, paths[0], paths[2], rank) if cfg.resume else (0, -1.0)
    if world > 1:
        m.net = nn.parallel.DistributedDataParallel(
            m.model, device_ids=[device.index] if device.type == "cuda" else None
        )
    clips_per_s = 0.0
    if rank == 0:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
    for epoch in range(start, cfg.epochs):
        lr = m.opt.param_groups[0]["lr"]
        tl, tc, tn, elapsed = train_one_epoch(cfg, epoch, data, m, rank, world, device)
        vl, vc, vn = evaluate_epoch(m.model, data.val_dl, cfg.arch, world, device)
        clips_per_s = tn / max(elapsed, 1e-9)
        val_acc = vc / max(vn, 1)
        improved = val_acc > best_acc
        best_acc = max(best_acc, val_acc)
        entry = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": tl / max(tn, 1),
            "train_acc": tc / max(tn, 1),
            "val_loss": vl / max(vn, 1),
            "val_acc": val_acc,
            "best_acc": best_acc,
            "train_clips_per_s": round(clips_per_s, 3),
            "world_size": world,
        }
        if rank == 0:
            _save_epoch(paths, _checkpoint(cfg, info, m, epoch, best_acc), entry, improved)
            log.info("epoch %d: %s", epoch + 1, entry)
        if world > 1:
            dist.barrier()
    if world > 1:
        dist.destroy_process_group()
    return TrainSummary(best_acc, cfg.epochs, paths[0], paths[1], paths[2], clips_per_s, rank)


def _logged_epoch(line: str) -> float:
    """Epoch of a log line; a line cut off by an interrupt counts as after every checkpoint."""
    try:
        return int(parse_json(line, where="training log line")["epoch"])
    except (FlowprepError, ValueError, KeyError, TypeError):
        return float("inf")

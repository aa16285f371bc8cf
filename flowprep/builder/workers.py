"""Worker processes of one build: a stable per-host slot index for each, and the GPU it binds.

Kept apart from the clip job and the engines so that both can use it without importing each other.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path

from flowprep.flow.gpus import discover_gpus, gpu_for_worker

_SLOTS: dict[tuple[int, str], tuple[int, int]] = {}


def worker_slot(scope: str, root: Path | None = None) -> int:
    """This process's worker index on this host within ``scope`` (one build run): 0, 1, 2, ...

    Each process holds an exclusive ``flock`` on ``<tmp>/flowprep-slots/<scope>/<k>.lock`` for its
    lifetime and takes the lowest free ``k``. The kernel drops the lock when the process dies, so a
    restarted worker takes the freed index; the files live on the local disk, so the numbering is
    per host (as GPU ordinals are).
    """
    key = (os.getpid(), scope)
    if key in _SLOTS:
        return _SLOTS[key][0]
    safe = hashlib.sha1(scope.encode()).hexdigest()[:16]
    folder = Path(root or tempfile.gettempdir()) / "flowprep-slots" / safe
    folder.mkdir(parents=True, exist_ok=True)
    k = 0
    while True:
        fd = os.open(folder / f"{k}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            k += 1
            continue
        _SLOTS[key] = (k, fd)  # the fd stays open: closing it would free the slot
        return k


def worker_gpu(gpus: tuple[int, ...] | None, scope: str) -> int | None:
    """The CUDA ordinal this worker process binds, or None (no GPU visible: the backend's default).

    * ``--gpus`` given: ``gpus[slot % len(gpus)]`` with this process's :func:`worker_slot`.
    * otherwise the devices this process sees (``CUDA_VISIBLE_DEVICES``, Slurm, ``nvidia-smi``; see
      :func:`flowprep.flow.gpus.discover_gpus`), taken by slot in the order of their physical ids.
      Ordering by id, not by position, matters under dask-cuda, which gives each worker the same
      devices in a rotated order: slot k still means one physical device on every worker.
    """
    if gpus:
        return gpus[0] if len(gpus) == 1 else gpu_for_worker(worker_slot(scope), list(gpus))
    visible = discover_gpus()
    if not visible:
        return None
    ordered = sorted(visible, key=lambda g: (not g.ident.isdigit(), int(g.ident) if g.ident.isdigit() else 0,
                                             g.ident))
    if len(ordered) == 1:
        return ordered[0].index
    return ordered[worker_slot(scope) % len(ordered)].index

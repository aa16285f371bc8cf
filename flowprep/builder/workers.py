"""Worker processes of one build: a stable per-host slot index for each, and the GPU it binds.

Kept apart from the clip job and the engines so that both can use it without importing each other.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path

from flowprep.flow.gpus import discover_gpus, gpu_for_worker

_SLOTS: dict[tuple[int, str], tuple[int, int]] = {}
_WATCHED: set[int] = set()
#: seconds between two looks at the parent process
WATCH_INTERVAL = 1.0


def _parent_gone(main_pid: int, was_child: bool) -> bool:
    if was_child:  # reparenting is immediate, even while the dead parent is an unreaped zombie
        return os.getppid() != main_pid
    try:
        os.kill(main_pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _watch(main_pid: int, was_child: bool) -> None:
    while not _parent_gone(main_pid, was_child):
        time.sleep(WATCH_INTERVAL)
    # The build's main process is gone (kill -9): nobody will collect this worker's results. Its
    # clip is unfinished in the temporary folder, which a rerun ignores; exit now, not in minutes.
    os._exit(3)


def watch_main_process(main_pid: int | None) -> None:
    """In a local worker process: exit soon after the build's main process ``main_pid`` dies.

    Started once per process (a daemon thread polling every :data:`WATCH_INTERVAL` s); a no-op in
    the main process itself and when ``main_pid`` is None (Dask workers outlive any one client).
    """
    if main_pid is None or main_pid == os.getpid() or main_pid in _WATCHED:
        return
    _WATCHED.add(main_pid)
    threading.Thread(
        target=_watch, args=(main_pid, os.getppid() == main_pid), daemon=True, name="flowprep-parent-watch"
    ).start()


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
    ordered = sorted(visible, key=lambda g: (not g.ident.isdigit(), int(g.ident) if g.ident.isdigit() else 0, g.ident))
    if len(ordered) == 1:
        return ordered[0].index
    return ordered[worker_slot(scope) % len(ordered)].index

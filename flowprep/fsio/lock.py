"""A lock file that keeps two runs of a command from writing into one output folder at once.

The lock names the pid, host and process start time of its holder. It is created exclusively (a hard
link into place: of N racing processes exactly one wins), a lock whose process on this host is gone
is taken over (the start time tells a reused pid apart), and a damaged one is refused, not guessed
at. Builds (``.flowprep/lock``), exports and previews use it.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from flowprep.errors import ConfigError, FlowprepError
from flowprep.fsio.owned import make_dirs, remove_inside
from flowprep.fsio.paths import printable
from flowprep.fsio.reading import parse_json, try_read_bytes
from flowprep.fsio.writing import create_exclusive, dump_json

log = logging.getLogger(__name__)

#: Linux's largest pid_max (2**22): a lock naming a larger pid was not written by flowprep
MAX_PID = 4_194_304
_MAX_LOCK_BYTES = 4096  # a lock holds three short fields


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None: tells a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int, start: str | None) -> bool:
    """Whether process ``pid`` (started at ``start``, if known) still runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        pass
    now = start_time(pid)
    return start is None or now is None or now == start  # another start time: the pid was reused


class FolderLock:
    """The lock ``folder/rel`` of one run of ``what`` ("build", "export", "preview") into ``folder``.

    Use :meth:`acquire` and :meth:`release` (or ``with``); :meth:`check` only makes sure nobody
    else holds it (job-array shards of one build run together and take no lock).
    """

    def __init__(self, folder: Path, rel: str, what: str) -> None:
        self.folder, self.rel, self.what = Path(folder), rel, what
        self.path = self.folder / rel
        self._text: str | None = None

    def holder(self) -> dict[str, Any] | None:
        """``{"pid", "host", "stale"}`` of the lock's holder (``pid`` "?" when the file is damaged or
        being written), or None when nobody holds it."""
        data, why = try_read_bytes(self.path, _MAX_LOCK_BYTES, owned=True)
        if data is None and not os.path.lexists(self.path):
            return None  # nobody holds it (or it was released meanwhile)
        if data is None and "symbolic link" in why:
            raise ConfigError(f"{printable(self.path)} is a symlink; flowprep writes none: remove it")
        try:
            d = parse_json((data or b"").decode("utf-8"), where=printable(self.path))
            pid, host = int(d["pid"]), str(d["host"])
            if not 0 < pid <= MAX_PID:  # 0 and -1 name process groups for kill(); a huge one overflows it
                raise ValueError(f"pid {pid}")
        except (FlowprepError, ValueError, KeyError, TypeError):  # being written, or damaged: not ours
            return {"pid": "?", "host": "?", "stale": False}
        start = d.get("start")
        stale = host == socket.gethostname() and not pid_alive(pid, str(start) if start is not None else None)
        return {"pid": pid, "host": host, "stale": stale}

    def _remove(self) -> None:
        remove_inside(self.folder, self.rel, (Path(self.rel).parts[0],))

    def check(self, take: bool = True) -> None:
        """Take the lock (``take``), or only make sure nobody else holds it.

        Raises:
            ConfigError: another run holds the folder (pid and host named), or the lock is damaged;
                a lock left by a dead process on this host is taken over.
        """
        text = dump_json({"pid": os.getpid(), "host": socket.gethostname(), "start": start_time(os.getpid())})
        for _ in range(3):
            holder = self.holder()
            if holder is not None and holder["stale"]:
                log.warning("removing a stale lock of pid %s (no longer running)", holder["pid"])
                self._remove()
                continue
            if holder is not None and holder["pid"] == "?":
                raise ConfigError(
                    f"{printable(self.path)} names no {self.what} (damaged, or another {self.what} is writing "
                    f"it now); if no {self.what} into this folder is running, remove it"
                )
            if holder is not None:
                raise ConfigError(
                    f"another {self.what} (pid {holder['pid']} on {holder['host']}) holds "
                    f"{printable(self.folder)}; wait for it, or remove {printable(self.path)} if it is gone"
                )
            if not take:
                return
            if len(Path(self.rel).parts) > 1:
                make_dirs(self.folder, Path(self.rel).parent)
            if create_exclusive(self.path, text):
                self._text = text
                return
        raise ConfigError(f"{printable(self.path)} keeps changing: is another {self.what} running?")

    @property
    def held(self) -> bool:
        """Whether this object took the lock (and has not released it)."""
        return self._text is not None

    def acquire(self) -> None:
        """:meth:`check` taking the lock."""
        self.check(take=True)

    def release(self) -> None:
        """Drop the lock taken by :meth:`acquire` (only if it is still ours)."""
        if self._text is None:
            return
        data, _ = try_read_bytes(self.path, _MAX_LOCK_BYTES, owned=True)
        if data is not None and data.decode("utf-8", "replace") == self._text:
            self._remove()  # else removed or replaced by hand: nothing of ours to release
        self._text = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

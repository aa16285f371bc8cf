"""Every environment variable flowprep reads, parsed in one place, with one-line errors.

Read here and nowhere else (``os.environ`` appears in no other module of the package):

- torchrun's ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and
  ``MASTER_PORT`` (:func:`dist_env`), which ``flowprep train`` uses to join a DistributedDataParallel
  run;
- ``CUDA_VISIBLE_DEVICES`` and Slurm's ``SLURM_STEP_GPUS`` / ``SLURM_JOB_GPUS`` (:func:`gpu_env`),
  which say which GPUs this process may use (:mod:`flowprep.flow.gpus`).

A malformed value (``WORLD_SIZE=abc``, ``WORLD_SIZE=2`` without ``RANK``, ``LOCAL_RANK=x``, a rank
not below the world size, a port outside 1..65535) raises :class:`~flowprep.errors.ConfigError`
naming the variable and its value, so the CLI prints one line and exits 1 before torch starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from flowprep.errors import ConfigError

#: the most processes a run may have (far above any real cluster; a typo such as 10**9 is refused)
MAX_WORLD = 65_536
#: torchrun's variables, in the order :func:`dist_env` checks them
DIST_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
#: where the visible GPUs come from, first match wins (see :mod:`flowprep.flow.gpus`)
GPU_VARS = ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS")


def environ() -> Mapping[str, str]:
    """This process's environment (the one place the package touches ``os.environ``)."""
    return os.environ


@dataclass(frozen=True)
class DistEnv:
    """How this process takes part in a distributed run (torchrun's variables, checked).

    Attributes:
        world_size: processes in the run (1: not distributed; the other fields are then defaults).
        rank: this process's rank, ``0 <= rank < world_size``.
        local_rank: its index on this node, ``0 <= local_rank < local_world_size``; the CUDA device it binds.
        local_world_size: processes on this node (``LOCAL_WORLD_SIZE``, else ``world_size``).
        master_addr, master_port: the rendezvous address (required when ``world_size > 1``).
    """

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1
    master_addr: str = ""
    master_port: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _bad(var: str, value: str, what: str) -> ConfigError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ConfigError(
        f"environment variable {var}={shown} {what}; torchrun sets it for each process "
        "(unset it to train in one process)"
    )


def _whole(env: Mapping[str, str], var: str, lo: int, hi: int, default: int | None) -> int:
    """``env[var]`` as an int in ``[lo, hi]``; ``default`` when unset or empty (None: required)."""
    raw = env.get(var, "")
    text = raw.strip()
    if not text:
        if default is None:
            raise _bad(var, raw, "is not set, but WORLD_SIZE > 1 needs it")
        return default
    # int() would accept "1_0" and 4300-digit strings; a plain decimal of a few digits is what launchers write
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise _bad(var, raw, f"must be a whole number in [{lo}, {hi}]")
    value = int(text)
    if not lo <= value <= hi:
        raise _bad(var, raw, f"must be a whole number in [{lo}, {hi}]")
    return value


def dist_env(env: Mapping[str, str] | None = None) -> DistEnv:
    """torchrun's variables from ``env`` (default: this process's environment), checked.

    Unset or empty ``WORLD_SIZE``, or ``1``, means one process: the other variables are then not
    read (as before: a stray ``RANK`` in a login shell does not stop a single-process run). With
    ``WORLD_SIZE > 1``, ``RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` are required (torch's
    ``env://`` rendezvous needs them); ``LOCAL_RANK`` defaults to 0 and ``LOCAL_WORLD_SIZE`` to
    ``WORLD_SIZE``.

    Raises:
        ConfigError: one line naming the variable and its value.
    """
    env = environ() if env is None else env
    world = _whole(env, "WORLD_SIZE", 1, MAX_WORLD, 1)
    if world == 1:
        return DistEnv()
    rank = _whole(env, "RANK", 0, world - 1, None)
    local_world = _whole(env, "LOCAL_WORLD_SIZE", 1, world, world)
    local_rank = _whole(env, "LOCAL_RANK", 0, local_world - 1, 0)
    addr = env.get("MASTER_ADDR", "")
    if not addr.strip():
        raise _bad("MASTER_ADDR", addr, "is not set, but WORLD_SIZE > 1 needs it")
    if len(addr) > 255 or any(ch.isspace() or ord(ch) < 32 for ch in addr.strip()):
        raise _bad("MASTER_ADDR", addr, "must be a host name or address")
    port = _whole(env, "MASTER_PORT", 1, 65535, None)
    return DistEnv(world, rank, local_rank, local_world, addr.strip(), port)


@dataclass(frozen=True)
class GpuEnv:
    """The GPU list one environment variable gives.

    Attributes:
        source: the variable (one of :data:`GPU_VARS`).
        idents: its comma-separated entries, stripped, empty ones dropped (indices, ``GPU-``/``MIG-``
            UUIDs); for ``CUDA_VISIBLE_DEVICES`` cut at the first entry starting with ``-`` (CUDA stops
            there; ``-1`` is the usual way to hide every device), so it may be empty.
    """

    source: str
    idents: tuple[str, ...]


def _entries(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def gpu_env(env: Mapping[str, str] | None = None) -> GpuEnv | None:
    """The first of :data:`GPU_VARS` that is set (Slurm's only when non-empty), or None.

    Entries are identifiers, never parsed as numbers here: CUDA accepts UUIDs as well as indices,
    and treats an invalid entry as the end of the list, which :class:`GpuEnv` reproduces.
    """
    env = environ() if env is None else env
    if "CUDA_VISIBLE_DEVICES" in env:
        usable: list[str] = []
        for ident in _entries(env["CUDA_VISIBLE_DEVICES"]):
            if ident.startswith("-"):
                break
            usable.append(ident)
        return GpuEnv("CUDA_VISIBLE_DEVICES", tuple(usable))
    for var in GPU_VARS[1:]:
        if env.get(var, "").strip():
            return GpuEnv(var, tuple(_entries(env[var])))
    return None

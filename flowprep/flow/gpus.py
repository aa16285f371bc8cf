"""Which GPUs this process may use, and which one each build worker takes.

Discovery, first match wins:

1. ``CUDA_VISIBLE_DEVICES`` (indices or ``GPU-``/``MIG-`` UUIDs). CUDA renumbers the visible devices
   ``0..n-1`` inside the process, so the usable ordinals are ``range(n)``; an empty value or ``-1``
   means no GPU.
2. Slurm's ``SLURM_STEP_GPUS`` / ``SLURM_JOB_GPUS`` (physical indices of the allocation). With
   ``ConstrainDevices=yes`` (Slurm's usual GPU setup) the process sees only those devices, again
   numbered ``0..n-1``; that is what is returned.
3. ``nvidia-smi -L`` if it is on ``PATH``.

Worker ``k`` of a build then takes GPU ``gpus[k % len(gpus)]`` (:func:`gpu_for_worker`): with
``--jobs 8 --gpus 0,1,2,3`` each GPU serves two worker processes, each with its own CUDA context.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from flowprep.env import gpu_env
from flowprep.errors import ConfigError


@dataclass(frozen=True)
class GpuInfo:
    """A GPU as this process sees it.

    Attributes:
        index: CUDA device ordinal inside this process (what ``gpu=`` of a backend takes).
        name: model name when known (from ``nvidia-smi``), else ``""``.
        ident: the identifier it was listed under (index, UUID, Slurm index).
        source: ``"CUDA_VISIBLE_DEVICES"``, ``"SLURM_STEP_GPUS"``, ``"SLURM_JOB_GPUS"`` or ``"nvidia-smi"``.
    """

    index: int
    name: str
    ident: str
    source: str


_SMI_LINE = re.compile(r"^GPU\s+(\d+):\s*(.*?)\s*(?:\(UUID:\s*([^)]+)\))?\s*$")


def parse_nvidia_smi_list(text: str) -> list[GpuInfo]:
    """Parse ``nvidia-smi -L`` output (``GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-...)`` per line).

    MIG lines (indented ``MIG ...``) are not separate CUDA devices unless listed in
    ``CUDA_VISIBLE_DEVICES``, so they are skipped.
    """
    gpus = []
    for line in text.splitlines():
        m = _SMI_LINE.match(line.strip())
        if m:
            gpus.append(GpuInfo(int(m.group(1)), m.group(2), m.group(3) or m.group(1), "nvidia-smi"))
    return gpus


def _run_nvidia_smi() -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _split(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def discover_gpus(
    env: Mapping[str, str] | None = None, nvidia_smi: Callable[[], str | None] = _run_nvidia_smi
) -> list[GpuInfo]:
    """The GPUs visible to this process (see the module docstring for the order of sources).

    Args:
        env: environment to read (default: this process's, through :func:`flowprep.env.gpu_env`).
        nvidia_smi: returns ``nvidia-smi -L`` output or None when unavailable (injectable for tests).
    """
    names: dict[str, str] = {}

    def smi_names() -> dict[str, str]:
        if not names:
            text = nvidia_smi()
            for g in parse_nvidia_smi_list(text or ""):
                names[str(g.index)] = names[g.ident] = g.name
        return names

    given = gpu_env(env)
    if given is not None:
        if not given.idents:
            return []
        known = smi_names()
        return [GpuInfo(i, known.get(ident, ""), ident, given.source) for i, ident in enumerate(given.idents)]
    return [GpuInfo(g.index, g.name, g.ident, "nvidia-smi") for g in parse_nvidia_smi_list(nvidia_smi() or "")]


def parse_gpus(spec: str | Sequence[int] | None, visible: Sequence[GpuInfo] | None = None) -> list[int]:
    """Turn ``--gpus`` into device ordinals.

    Args:
        spec: ``"all"``, ``"0,1,2,3"``, a sequence of ints, or None (no choice made: ``[0]``).
        visible: the discovered GPUs (default :func:`discover_gpus`); ids must be among them when
            any were discovered (if discovery found nothing, explicit ids are trusted as given).

    Returns:
        distinct ordinals in the order given.

    Raises:
        ConfigError: malformed list, duplicates, ids not visible, or ``all`` with no GPU visible.
    """
    if spec is None:
        return [0]
    visible = discover_gpus() if visible is None else list(visible)
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "all":
            if not visible:
                raise ConfigError(
                    "--gpus all: no GPU is visible (CUDA_VISIBLE_DEVICES, Slurm and nvidia-smi "
                    "list none); pass explicit ids or check the driver"
                )
            return [g.index for g in visible]
        try:
            ids = [int(p) for p in _split(text)]
        except ValueError:
            raise ConfigError(
                f"--gpus must be 'all' or comma-separated device numbers like 0,1,2,3; got {spec!r}"
            ) from None
    else:
        ids = [int(i) for i in spec]
    if not ids:
        raise ConfigError("--gpus is empty; give 'all' or device numbers like 0,1")
    if any(i < 0 for i in ids):
        raise ConfigError(f"--gpus ids must be >= 0, got {ids}")
    if len(set(ids)) != len(ids):
        raise ConfigError(f"--gpus lists a device twice: {ids}")
    if visible:
        known = {g.index for g in visible}
        missing = [i for i in ids if i not in known]
        if missing:
            raise ConfigError(
                f"--gpus {missing} not visible here; visible devices: {sorted(known)} (from {visible[0].source})"
            )
    return ids


def gpu_for_worker(worker_index: int, gpus: Sequence[int]) -> int:
    """The GPU ordinal worker ``worker_index`` (0-based) uses: round-robin over ``gpus``."""
    if not gpus:
        raise ConfigError("no GPU to assign: the --gpus list is empty")
    if worker_index < 0:
        raise ValueError(f"worker index must be >= 0, got {worker_index}")
    return int(gpus[worker_index % len(gpus)])


def assign(n_workers: int, gpus: Sequence[int]) -> list[int]:
    """``[gpu_for_worker(k, gpus) for k in range(n_workers)]``."""
    return [gpu_for_worker(k, gpus) for k in range(n_workers)]

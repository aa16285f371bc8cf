"""What the doctor's checks share: running the flowprep CLI in a subprocess, skipping on a missing need."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from flowprep.doctor.framework import CheckFailed, Skip

#: a check's numbers (JSON-safe values), reported in the table and the JSON report
Numbers = dict[str, Any]


def run_cli(
    *args: str, timeout: float = 300, module: tuple[str, ...] = ("-m", "flowprep")
) -> subprocess.CompletedProcess[str]:
    """Run the flowprep CLI in a subprocess; the finished process, or :class:`CheckFailed` with its last error line."""
    res = subprocess.run([sys.executable, *module, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()] or [f"exit status {res.returncode}"]
        raise CheckFailed(f"`flowprep {args[0]}` failed: {lines[-1]}")
    return res


def run_flowprep(*args: str, timeout: float = 300, module: tuple[str, ...] = ("-m", "flowprep")) -> str:
    """Run the flowprep CLI in a subprocess; its stdout (see :func:`run_cli`)."""
    return run_cli(*args, timeout=timeout, module=module).stdout


def need(value: Any, why: str) -> Any:
    """``value`` if it is truthy (what an earlier check found), else :class:`Skip` saying ``why``."""
    if not value:
        raise Skip(why)
    return value

"""Helpers shared by several test modules (imported as ``from helpers import ...``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest
from click.testing import CliRunner

#: run-specific files a byte-for-byte comparison of two builds leaves out (timings, absolute paths)
IGNORED = {"build_report.json", "tao_dataset_spec.yaml"}


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file of a dataset except run-specific ones and the build state, by relative path."""
    out = {}
    for dirpath, _, files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir.split(os.sep)[0] in (".flowprep", ".flowprep-tmp"):
            continue
        for f in files:
            rel = os.path.normpath(os.path.join(rel_dir, f))
            if rel not in IGNORED:
                out[rel] = Path(dirpath, f).read_bytes()
    return out


def run_cli(*args):
    """Invoke ``flowprep`` in-process; exceptions other than exits propagate (so tracebacks fail tests)."""
    from flowprep.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose tool is missing here, but fail it in CI (CI=true), which installs every tool
    (.ci/run): there a missing browser, Slurm or stand-in driver must not pass quietly as a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"CI should have this: {reason}")
    pytest.skip(reason)

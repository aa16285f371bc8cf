"""flowprep.archive.bounded: input read in bounded memory (compression bombs, devices, the
per-clip size limit)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from helpers import ROOT, build_args, few_lines, run_flowprep


def _zeros_zip(path: Path, member: str, size: int, method: int = zipfile.ZIP_DEFLATED) -> None:
    """A zip holding ``size`` zero bytes as ``member`` (written in chunks: the test stays small in RAM)."""
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=method) as zf, zf.open(member, "w", force_zip64=True) as fh:
        for _ in range(size >> 20):
            fh.write(chunk)


def _run_limited(code: str, limit_bytes: int, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a Python subprocess whose address space is capped at ``limit_bytes``."""
    pre = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({limit_bytes}, {limit_bytes}))\n"
    return subprocess.run(
        [sys.executable, "-c", pre + code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_compressed_bomb_and_devices_are_refused_in_bounded_memory(tmp_path):
    bomb = tmp_path / "bomb.zip"
    _zeros_zip(bomb, "walk/big.avi", 256 << 20)  # 256 MiB of zeros in about 250 KB
    assert bomb.stat().st_size < 2 << 20
    code = f"""
from flowprep.archive.bounded import MemberRef, read_member
from flowprep.errors import ArchiveError
for ref in [MemberRef({str(bomb)!r}, "walk/big.avi", {256 << 20}), MemberRef(None, "/dev/zero", 0)]:
    try:
        read_member(ref)
    except ArchiveError as exc:
        print("refused:", exc)
"""
    r = _run_limited(code, 160 << 20)  # less than the member: reading it whole would die
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and "ratio" in lines[0] and "not a regular file" in lines[1], r.stdout


def test_inner_archive_bomb_is_refused_before_unpacking(tmp_path):
    inner = tmp_path / "walk.zip"
    _zeros_zip(inner, "walk/a.avi", 40 << 20, zipfile.ZIP_STORED)  # stored: the outer zip squeezes it
    outer = tmp_path / "release.zip"
    with zipfile.ZipFile(outer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(inner, "walk.zip")
    inner.unlink()
    assert outer.stat().st_size < 1 << 20
    out = tmp_path / "out"
    r = run_flowprep(*build_args(outer, out))
    assert r.returncode == 1 and few_lines(r, 2) and "ratio" in r.stderr, r.stderr
    assert not list((out / ".flowprep").rglob("*.zip")) if out.exists() else True


def test_clip_size_limit(walk_release, tmp_path):
    r = run_flowprep(*build_args(walk_release, tmp_path / "out", "--max-clip-bytes", "1000"))
    assert r.returncode == 1 and "over the per-clip limit of 1000" in r.stderr and few_lines(r, 6), r.stderr
    r = run_flowprep(*build_args(walk_release, tmp_path / "o2", "--max-clip-bytes", "0"))
    assert r.returncode == 2

"""flowprep.builder.workers: a killed worker is one line naming its clip; workers end soon after
the main process is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowprep.synth import moving_frames, write_video
from helpers import ROOT


def _children(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture()
def slow_release(tmp_path) -> Path:
    rel = tmp_path / "slow"
    (rel / "walk").mkdir(parents=True)
    data = b""
    for k in range(8):
        path = rel / "walk" / f"s{k}.avi"
        if not data:
            write_video(path, moving_frames(40, 96, 128, (1.0, 0.5), k))
            data = path.read_bytes()
        path.write_bytes(data)
    return rel


def _start(slow_release: Path, out: Path) -> subprocess.Popen:
    """A 2-worker TV-L1 build; returns it and its worker processes once they are busy."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flowprep",
            "build",
            str(slow_release),
            "--out",
            str(out),
            "--flow",
            "tvl1",
            "-j",
            "2",
            "--no-progress",
            "--split-by",
            "clip",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        tmp = out / ".flowprep-tmp"
        if tmp.is_dir() and len(os.listdir(tmp)) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before the test could act; make the input bigger"
    return proc


def _worker_pids(main: int) -> list[int]:
    """Processes under ``main`` that run clips (loky workers), found by their command line."""
    out = []
    for pid in _children(main):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"loky" in cmd and b"resource_tracker" not in cmd:
            out.append(pid)
    return out


def test_a_killed_worker_is_one_line_naming_the_clip(slow_release, tmp_path):
    proc = _start(slow_release, tmp_path / "out")
    workers = _worker_pids(proc.pid)
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "worker process died" in err and "walk/s" in err and "rerun" in err and len(err.strip().splitlines()) <= 3


def test_workers_exit_soon_after_the_main_process_is_killed(slow_release, tmp_path):
    proc = _start(slow_release, tmp_path / "out")
    workers = _worker_pids(proc.pid)
    assert workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers)

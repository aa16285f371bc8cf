"""Build the stand-in NVIDIA driver (libcuda.c, libnvidia_opticalflow.c) and run flowprep against it.

Test infrastructure only. The libraries are compiled with the system C compiler into a folder of the
test session and put on ``LD_LIBRARY_PATH`` of a subprocess, so the unmodified nvof backend and
NVIDIA's real cuda-bindings (12.x or 13.x, installed by ``make cuda-bindings`` into
``.venv/cuda-bindings-<major>``) load them as they would load a driver. The stand-in writes one log
line per event to ``$FLOWPREP_STUB_LOG``; :class:`StubRun` reads it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
#: cuda-bindings majors the emulated tests run with, and where `make cuda-bindings` installs them
BINDINGS = {major: REPO / ".venv" / f"cuda-bindings-{major}" for major in ("12", "13")}
A100 = "NVIDIA A100-SXM4-40GB:8.0"
T4 = "Tesla T4:7.5"


def compiler() -> str | None:
    """The system C compiler, or None."""
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


def build(out: Path) -> Path:
    """Compile both stand-in libraries into ``out``; returns ``out``. Raises CalledProcessError."""
    cc = compiler()
    if cc is None:
        raise FileNotFoundError("no C compiler (cc/gcc) on PATH")
    out.mkdir(parents=True, exist_ok=True)
    flags = ["-shared", "-fPIC", "-O2", "-Wall"]
    subprocess.run(
        [cc, *flags, "-o", str(out / "libcuda.so.1"), "-Wl,-soname,libcuda.so.1", str(HERE / "libcuda.c")], check=True
    )
    subprocess.run(
        [
            cc,
            *flags,
            "-o",
            str(out / "libnvidia-opticalflow.so.1"),
            "-Wl,-soname,libnvidia-opticalflow.so.1",
            str(HERE / "libnvidia_opticalflow.c"),
            f"-L{out}",
            "-l:libcuda.so.1",
            "-Wl,-rpath,$ORIGIN",
            "-lm",
        ],
        check=True,
    )
    return out


def missing_bindings(major: str) -> str | None:
    """Why cuda-bindings ``major`` cannot be used, or None."""
    folder = BINDINGS[major]
    if not (folder / "cuda" / "bindings").is_dir():
        return f"cuda-bindings {major}.x not installed in {folder} (run `make cuda-bindings`)"
    return None


@dataclass
class StubRun:
    """One emulated machine: the stand-in libraries (and nvidia-smi), a cuda-bindings major and a log file."""

    libdir: Path
    major: str
    log: Path

    def env(self, gpus: str = A100, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWPREP_STUB_")}
        env.pop("CUDA_VISIBLE_DEVICES", None)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(self.libdir), env.get("LD_LIBRARY_PATH")]))
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(BINDINGS[self.major])])
        env["PATH"] = os.pathsep.join([str(HERE / "bin"), env.get("PATH", "")])  # the stand-in nvidia-smi
        env.update(FLOWPREP_STUB_LOG=str(self.log), FLOWPREP_STUB_GPUS=gpus, OMP_NUM_THREADS="1")
        env.update(extra)
        return env

    def python(self, code: str, gpus: str = A100, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", code],
            env=self.env(gpus, **extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def flowprep(self, *args: str, gpus: str = A100, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
        return self.python(f"from flowprep.cli import main; main({list(args)!r})", gpus, timeout, **extra)

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.is_file() else []

    def misuse(self) -> list[str]:
        return [line for line in self.lines() if " MISUSE " in line]

    def exits(self) -> list[str]:
        """The per-process state lines written at exit ("<pid> exit refcounts=.. stack_depth=.. ...")."""
        return [line for line in self.lines() if " exit " in line]

    def assert_balanced(self) -> None:
        """No misuse, and every process ended with no retained context, an empty stack, no live memory."""
        assert self.misuse() == [], self.misuse()
        exits = self.exits()
        assert exits, self.lines()
        for line in exits:
            fields = dict(f.split("=", 1) for f in line.split()[2:])
            assert set(filter(None, fields["refcounts"].split(","))) <= {"0"}, line
            assert fields["stack_depth"] == "0" and fields["live_allocations"] == "0", line


@pytest.fixture(scope="session")
def stub_libdir(tmp_path_factory) -> Path:
    """The stand-in libraries, built once per test session (skips with the reason if impossible)."""
    # CI installs the compiler (.ci/run): there a missing stand-in is a failure, not a quiet skip.
    give_up = pytest.fail if os.environ.get("CI") else pytest.skip
    if compiler() is None:
        give_up("no C compiler (cc/gcc) to build the stand-in driver; install gcc libc6-dev")
    try:
        return build(tmp_path_factory.mktemp("gpu_stub"))
    except (OSError, subprocess.CalledProcessError) as exc:
        give_up(f"cannot build the stand-in driver: {exc}")


def any_major() -> str:
    """A usable cuda-bindings major (13 first), or skip."""
    for major in ("13", "12"):
        if missing_bindings(major) is None:
            return major
    pytest.skip(missing_bindings("12") or "no cuda-bindings")

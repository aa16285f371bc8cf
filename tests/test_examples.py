"""The examples stay runnable: the Python one end to end (small), the shell ones parse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
def test_own_dataset_example_builds_and_verifies(tmp_path):
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "own_dataset.py"), "--out", str(tmp_path / "own"), "--flow", "dis"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "total" in r.stdout and (tmp_path / "own" / "flowprep.json").is_file()


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.sh")))
def test_shell_examples_parse(script):
    assert subprocess.run(["bash", "-n", str(EXAMPLES / script)]).returncode == 0


def test_dask_example_says_what_to_install_without_dask_jobqueue():
    pytest.importorskip("distributed")
    # dask-jobqueue is in the cluster extra: hide it (a None entry in sys.modules makes its import fail)
    hide = (
        "import runpy, sys; sys.modules['dask_jobqueue'] = None; sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    script = str(EXAMPLES / "dask_slurm.py")
    r = subprocess.run([sys.executable, "-c", hide, script, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "usage" in r.stdout.lower()
    r = subprocess.run([sys.executable, "-c", hide, script, "src", "out"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "pip install dask-jobqueue" in r.stdout + r.stderr


def test_dask_example_with_out_dot_reaches_the_cluster_without_a_traceback(tmp_path):
    """``dask_slurm.py SRC .``: ``Path('.').with_suffix()`` raised ValueError before any work."""
    pytest.importorskip("distributed")
    stub = (
        "import runpy, sys, types; m = types.ModuleType('dask_jobqueue')\n"
        "def SLURMCluster(**kw): print('logs:', kw['log_directory']); raise SystemExit(3)\n"
        "m.SLURMCluster = SLURMCluster; sys.modules['dask_jobqueue'] = m; sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    (tmp_path / "out").mkdir()
    script = str(EXAMPLES / "dask_slurm.py")
    r = subprocess.run(
        [sys.executable, "-c", stub, script, str(tmp_path), "."],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path / "out",
    )
    assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr
    assert f"logs: {tmp_path / 'out.dask-logs'}" in r.stdout
    bad = subprocess.run(  # an OUT holding a byte that is not UTF-8: refused before any job is submitted
        [sys.executable, "-c", stub, script, str(tmp_path), b"caf\xe9"], capture_output=True, timeout=120, cwd=tmp_path
    )
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr and b"not UTF-8" in bad.stderr, bad.stderr

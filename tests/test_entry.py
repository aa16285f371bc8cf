"""The console script (flowprep/entry.py): Ctrl-C or SIGTERM before the CLI is ready is one line."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

# The signal must land in a known phase on a loaded machine, so each child blocks there (in Python
# code, where the handler runs at once) after saying so; no sleep in the test decides anything.
BLOCK_IN_IMPORT = """
import sys, time
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "flowprep.commands.build":  # imported by flowprep.cli, half-way through
            print("blocked", flush=True)
            time.sleep(120)
        return None
sys.meta_path.insert(0, Block())
from flowprep.entry import main
sys.exit(main())
"""

BLOCK_BEFORE_HANDLERS = """
import sys, time
from flowprep import cli
def blocked(self):
    print("blocked", flush=True)
    time.sleep(120)
cli._SignalWatch.install = blocked  # the CLI is imported; its handlers are not installed yet
sys.argv = ["flowprep", "--version"]
from flowprep.entry import main
sys.exit(main())
"""


#: a test run started in the background by a non-interactive shell inherits SIGINT ignored, and
#: Python then keeps it ignored: the child takes Python's usual Ctrl-C handler back first
RESTORE_SIGINT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def _interrupt(code: str, sig: int) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(
        [sys.executable, "-c", RESTORE_SIGINT + code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "blocked\n"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("phase", [BLOCK_IN_IMPORT, BLOCK_BEFORE_HANDLERS], ids=["import", "before-handlers"])
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_an_early_signal_is_one_line_and_its_exit_status(phase, sig, status):
    result = _interrupt(phase, sig)
    assert "Traceback" not in result.stderr
    assert result.stderr == "flowprep: interrupted\n"
    assert result.returncode == status and result.stdout == ""


def test_the_entry_imports_neither_the_cli_nor_its_dependencies():
    code = "import sys, flowprep.entry; print(sorted({'flowprep.cli', 'click', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"


def test_python_m_flowprep_runs_the_cli_through_the_entry():
    result = subprocess.run([sys.executable, "-m", "flowprep", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("Usage: flowprep [OPTIONS] COMMAND [ARGS]...")
    assert result.stderr == ""


def test_the_console_script_is_the_entry():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    scripts = text.split("[project.scripts]\n", 1)[1].split("\n\n", 1)[0]
    assert scripts.strip() == 'flowprep = "flowprep.entry:main"'

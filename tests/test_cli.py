"""The command line's own machinery (flowprep/cli.py): signals answered within seconds."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time

import pytest

from flowprep.cli import one_line, os_error_line
from flowprep.errors import FlowprepError
from helpers import invoke_checked

# The main thread spends a minute inside one OpenCV call (a Gaussian blur with a huge sigma, what
# bench-flow used to do), where Python cannot run its signal handler.
STUCK = """
import sys, numpy as np, cv2
from flowprep import cli
cli._WATCH.append(cli._SignalWatch()); cli._WATCH[0].install()
cv2.setNumThreads(1)
try:
    print("ready", flush=True)
    cv2.GaussianBlur(np.zeros((3000, 3000), np.float32), (0, 0), 800)
except KeyboardInterrupt:
    print("handled late", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_long_c_call_ends_the_process_within_seconds(sig):
    proc = subprocess.Popen([sys.executable, "-c", STUCK], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(0.5)  # into the blur (a signal before it would be handled at once: "handled late")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)  # the watch waits 2.5 s for the handler
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130) and "handled late" not in out
    assert err == "flowprep: interrupted (stopped inside a long computation)\n"


def test_a_signal_in_python_code_takes_the_normal_path(tmp_path):
    code = (
        "import time\nfrom flowprep import cli\ncli._WATCH.append(cli._SignalWatch()); cli._WATCH[0].install()\n"
        "try:\n    print('ready', flush=True)\n    time.sleep(60)\nexcept KeyboardInterrupt:\n"
        "    time.sleep(4)  # cleanup longer than the watch's grace: it must not cut it short\n"
        "    print('cleaned up', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out == "cleaned up\n" and err == "" and proc.returncode == 0


def test_worker_errors_keep_their_original_line():
    exc = FlowprepError(
        "Caught DatasetError in DataLoader worker process 0.\nOriginal Traceback (most "
        'recent call last):\n  File "x", line 1\nflowprep.errors.FlowprepError: frame x is empty'
    )
    assert one_line(exc) == "frame x is empty"


def test_os_errors_become_one_line_only_with_a_file_name():
    assert (
        os_error_line(OSError(errno.EROFS, "Read-only file system", "/x/r.json")) == "/x/r.json: Read-only file system"
    )
    assert os_error_line(OSError(errno.ENOSPC, "No space left on device")).startswith("No space left")
    assert os_error_line(OSError(errno.ENOENT, "No such file or directory")) is None  # names no file
    assert os_error_line(OSError(errno.EBADF, "Bad file descriptor", "/x")) is None  # a bug, not the disk


def test_a_killed_worker_is_one_line(monkeypatch, small_dataset_copy):
    # issue 9 part 6: a worker killed with kill -9 gave joblib's 49-line TerminatedWorkerError; the
    # build names its clips itself, the CLI turns any other pool's (verify -j) into one line
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    import flowprep.layout.verify as verify_mod

    def dies(*args, **kwargs):
        raise TerminatedWorkerError(
            "A worker process managed by the executor was unexpectedly terminated. "
            "This could be caused by a segmentation fault.\n\nThe exit codes of the "
            "workers are {SIGKILL(-9)}"
        )

    monkeypatch.setattr(verify_mod, "verify", dies)
    out = invoke_checked("verify", small_dataset_copy, "-j", "2", code=1)
    assert len(out.strip().splitlines()) == 1 and "a worker process died" in out, out

"""``flowprep --version`` names the versions that decide output bytes, so a bug report carries them."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np

from flowprep import __version__, versions


def test_version_lists_the_libraries_that_decide_output_bytes():
    r = subprocess.run([sys.executable, "-m", "flowprep", "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"flowprep {__version__}"
    found = dict(line.strip().split(": ", 1) for line in lines[1:])
    assert set(found) == {"python", "numpy", "opencv", "pyav", "torch"}
    assert found["numpy"] == np.__version__
    assert found["opencv"].startswith(cv2.__version__ + " (opencv-contrib-python-headless ")
    assert "FFmpeg" in found["pyav"] or "libavcodec" in found["pyav"]


def test_a_missing_library_is_reported_not_raised(monkeypatch):
    real = versions._dist
    monkeypatch.setattr(versions, "_dist", lambda name: None if name == "torch" else real(name))
    assert versions.output_versions()["torch"].startswith("not installed")

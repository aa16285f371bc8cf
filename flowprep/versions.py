"""The versions that decide flowprep's output bytes, for ``flowprep --version`` and bug reports.

A dataset built twice from the same source and options is byte-identical only under the same OpenCV
(flow, JPEG/PNG encoders), PyAV and its bundled FFmpeg (decoding), numpy (arithmetic) and, for
training and export, torch. Each is looked up without failing: a missing or broken package is
reported as such, never as a traceback of ``--version``.
"""

from __future__ import annotations

import importlib
import platform
from importlib import metadata

from flowprep import __version__

__all__ = ["output_versions", "version_text"]


def _dist(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _opencv() -> str:
    dists = [
        d
        for d in ("opencv-contrib-python-headless", "opencv-contrib-python", "opencv-python-headless", "opencv-python")
        if _dist(d)
    ]
    try:
        cv2 = importlib.import_module("cv2")
    except ImportError as exc:
        return f"not importable ({exc})"
    wheel = f" ({dists[0]} {_dist(dists[0])})" if dists else ""
    return f"{cv2.__version__}{wheel}"


def _pyav() -> str:
    try:
        av = importlib.import_module("av")
    except ImportError as exc:
        return f"not importable ({exc})"
    libs = getattr(av, "library_versions", {}) or {}
    codec = libs.get("libavcodec")
    ffmpeg = getattr(av, "ffmpeg_version_info", None)
    detail = []
    if ffmpeg:
        detail.append(f"FFmpeg {ffmpeg}")
    if codec:
        detail.append("libavcodec " + ".".join(str(p) for p in codec))
    return f"{av.__version__}" + (f" ({', '.join(detail)})" if detail else "")


def output_versions() -> dict[str, str]:
    """``{component: version text}`` for flowprep, Python, numpy, OpenCV, PyAV/FFmpeg and torch."""
    versions = {"flowprep": __version__, "python": f"{platform.python_implementation()} {platform.python_version()}"}
    versions["numpy"] = _dist("numpy") or "not installed"
    versions["opencv"] = _opencv()
    versions["pyav"] = _pyav()
    # torch is imported only for its version if it is installed at all (an optional extra)
    versions["torch"] = _dist("torch") or "not installed (the train/export extras need it)"
    return versions


def version_text() -> str:
    """The lines ``flowprep --version`` prints: ``flowprep X`` first, then one ``name: version`` a line."""
    v = output_versions()
    lines = [f"flowprep {v.pop('flowprep')}"]
    lines += [f"  {name}: {text}" for name, text in v.items()]
    return "\n".join(lines)

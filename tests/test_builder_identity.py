"""Behaviour is unchanged by restructuring: a dataset built with a fixed config is byte-identical to the
one the code built before (issue 11's restructuring), checked through a recorded digest."""

from __future__ import annotations

import hashlib

import av
import cv2
import pytest

from flowprep.builder.api import build
from flowprep.builder.config import BuildConfig
from helpers import tree_bytes

#: sha256 over (relative path, sha256 of the bytes) of every file :func:`helpers.tree_bytes` keeps, for
#: the build below of the ``tiny_release`` fixture. Recorded with the code of main at bce86c7 (before the
#: restructuring) and equal after it; two runs in different folders give the same value.
DIGEST = "f06f739ac547576878fc45e578b0fdf8395706c4e28ee1c507970f38d2db99bf"
#: the (OpenCV, PyAV) versions the digest was checked under: the synthetic release is encoded with PyAV
#: (FFmpeg), the flow (DIS) and JPEG/PNG files are made by OpenCV. requirements/dev.lock pins one of these
#: pairs, so `make test` always runs this test; `make test-latest` may meet a new pair: then the test
#: still runs, and passes if the bytes are unchanged, or fails naming the versions and the new digest
#: (a finding to look at, and to add here once understood), never a silent skip.
CHECKED_WITH = {("5.0.0", "18.1.0"), ("5.1.0", "18.1.0")}
FILES = 665


def _digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]).digest())
    return h.hexdigest()


def test_build_is_byte_identical_to_the_recorded_one(tiny_release, tmp_path):
    here = (cv2.__version__, av.__version__)
    out = tmp_path / "ds"
    s = build(
        BuildConfig(
            source=tiny_release, out=out, flow="dis", jobs=1, progress=False, seed=3, split_by="clip", rgb_format="jpg"
        )
    )
    assert s.ok
    files = tree_bytes(out)
    digest = _digest(files)
    if here not in CHECKED_WITH and (len(files), digest) != (FILES, DIGEST):
        pytest.fail(
            f"OpenCV {here[0]} / PyAV {here[1]} (not among the checked {sorted(CHECKED_WITH)}) build other bytes: "
            f"{len(files)} files, digest {digest}; find what changed before recording it"
        )
    assert len(files) == FILES
    assert digest == DIGEST

"""flowprep.demo: the release's scratch folder is removed through the gate, never through a link."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowprep.demo import make_demo_release
from flowprep.errors import ConfigError


def test_a_symlinked_scratch_folder_is_refused_not_written_into(tmp_path: Path):
    # before: rmtree(ignore_errors=True) skipped the link silently and the release was written
    # into the folder it led to
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("the user's file")
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "unpacked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ConfigError, match=r"unpacked is a symlink"):
        make_demo_release(demo)
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]

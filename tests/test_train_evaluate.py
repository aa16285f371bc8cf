"""flowprep.train.evaluate's files: written atomically, never through a link planted at the name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("torch")

from flowprep.train.evaluate import confusion_png  # noqa: E402


def test_the_confusion_image_replaces_a_link_not_its_target(tmp_path: Path):
    # before: savefig(path) followed a link at the name and overwrote its target
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"the user's file")
    out = tmp_path / "eval-val"
    out.mkdir()
    (out / "confusion_clip.png").symlink_to(outside)
    confusion_png(np.array([[3, 1], [0, 4]]), ["run", "walk"], out / "confusion_clip.png", "2d rgb clip")
    assert not (out / "confusion_clip.png").is_symlink()
    assert (out / "confusion_clip.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outside.read_bytes() == b"the user's file"
    assert sorted(p.name for p in out.iterdir()) == ["confusion_clip.png"]

"""flowprep.layout.verify (and the image container checks of flowprep.layout.images it runs):
damaged frames are found, --quick reads the first and last image of each folder."""

from __future__ import annotations

import os

from flowprep.layout.images import container_problem
from helpers import first_clip, invoke_checked


def test_verify_finds_truncated_images(small_dataset_copy):
    clip = first_clip(small_dataset_copy)
    os.truncate(clip / "u" / "000003.jpg", (clip / "u" / "000003.jpg").stat().st_size - 40)
    os.truncate(clip / "rgb" / "000002.png", (clip / "rgb" / "000002.png").stat().st_size - 40)
    out = invoke_checked("verify", small_dataset_copy, code=1)
    assert "u/000003.jpg: unreadable image (truncated JPEG" in out
    assert "rgb/000002.png: unreadable image (truncated PNG" in out
    # --quick reads the first and last image of each folder only
    invoke_checked("verify", "--quick", small_dataset_copy, code=0)
    os.truncate(clip / "rgb" / "000000.png", 100)
    assert "rgb/000000.png: unreadable image" in invoke_checked("verify", "--quick", small_dataset_copy, code=1)


def test_container_checks():
    png = b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + b"\0" * 13 + b"\0\0\0\0"
    assert "CRC" in container_problem(png, "png")
    assert "truncated" in container_problem(b"\xff\xd8\xff\xe0abc", "jpg")
    assert container_problem(b"\xff\xd8abc\xff\xd9", "jpg") is None

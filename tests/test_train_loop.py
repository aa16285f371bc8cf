"""flowprep.train.loop's training log: rewritten atomically through the gate, never through a link."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("torch")

from flowprep.errors import ConfigError, OutputError  # noqa: E402
from flowprep.train.loop import append_log, trim_log  # noqa: E402


def _epochs(path: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines()]


def test_the_log_is_appended_and_trimmed_to_the_checkpoint(tmp_path: Path):
    log = tmp_path / "log.jsonl"
    for epoch in (1, 2, 3):
        append_log(log, {"epoch": epoch, "lr": 0.01})
    assert log.read_text() == "".join(f'{{"epoch": {e}, "lr": 0.01}}\n' for e in (1, 2, 3))
    trim_log(log, 2)  # last.pt holds epoch 2: the line of epoch 3 is dropped on resume
    assert _epochs(log) == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl"]  # no temporary left


def test_a_symlink_at_the_log_is_not_followed(tmp_path: Path):
    # before: open(log, "a") appended each epoch to whatever the link led to
    outside = tmp_path / "outside.txt"
    outside.write_text("the user's file\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").symlink_to(outside)
    with pytest.raises(ConfigError, match=r"cannot read training log .*log\.jsonl: a symbolic link"):
        append_log(run / "log.jsonl", {"epoch": 1})
    with pytest.raises(ConfigError, match="a symbolic link"):
        trim_log(run / "log.jsonl", 0)
    assert outside.read_text() == "the user's file\n"


def test_a_failed_write_leaves_the_old_log_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    log = tmp_path / "log.jsonl"
    append_log(log, {"epoch": 1})
    before = log.read_bytes()

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OutputError, match=r"cannot write .*log\.jsonl: No space left on device"):
        append_log(log, {"epoch": 2})
    assert log.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl"]

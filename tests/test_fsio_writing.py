"""flowprep.fsio.writing: every writer on a full, read-only or missing output is one line naming
the file, leaves nothing half-written, and --force removes only the temporary files it made."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from flowprep.errors import OutputError
from flowprep.fsio.writing import write_text_atomic
from helpers import build_args, invoke_checked, run_cli, run_flowprep, tree_names


def _writers(small_dataset: Path, tiny_models: dict, target: Path) -> dict[str, list]:
    video = next((small_dataset.parent / "rel" / "walk").iterdir())
    bench = ["bench-flow", "--flow", "dis", "--size", "64x48", "--magnitudes", "2", "--pairs-per-magnitude", "1"]
    return {
        "evaluate --out": ["evaluate", tiny_models["rgb"], small_dataset, "--out", target / "e", "--no-progress"],
        "export --out": ["export", tiny_models["rgb"], "--out", target / "x"],
        "infer --output": ["infer", video, "--model", tiny_models["onnx"], "--output", target / "a.mp4"],
        "infer --json-out": ["infer", video, "--model", tiny_models["onnx"], "--json-out", target / "j.jsonl"],
        "bench-flow --plot": [*bench, "--plot", target / "p.png"],
        "bench-flow --vis-dir": [*bench, "--vis-dir", target / "vis"],
        "train --out": [
            "train",
            small_dataset,
            "--out",
            target / "run",
            "--epochs",
            "1",
            "--frames",
            "4",
            "--input-size",
            "32",
            "--workers",
            "0",
            "--no-progress",
        ],
        "build --out": [
            "build",
            small_dataset.parent / "rel",
            "--out",
            target / "ds",
            "--flow",
            "dis",
            "-j",
            "1",
            "--no-progress",
        ],
    }


WRITERS = [
    "evaluate --out",
    "export --out",
    "infer --output",
    "infer --json-out",
    "bench-flow --plot",
    "bench-flow --vis-dir",
    "train --out",
    "build --out",
]


@pytest.mark.parametrize("kind", ["readonly", "full", "parent is a file"])
@pytest.mark.parametrize("writer", WRITERS)
def test_unwritable_output_is_one_line(writer, kind, small_dataset, tiny_models, tmp_path, request, one_torch_thread):
    if kind == "parent is a file":
        target = tmp_path / "afile"
        target.write_text("x")
    else:
        target = request.getfixturevalue("readonly_dir" if kind == "readonly" else "full_dir")
    before = tree_names(tmp_path)
    out = invoke_checked(*_writers(small_dataset, tiny_models, target)[writer], code=1)
    # the builder's state files are written by builder code that names no file on ENOSPC
    assert str(target) in out or (writer == "build --out" and "No space left on device" in out)
    if kind != "full":  # a full disk keeps the folders made before the first write failed
        assert tree_names(tmp_path) == before


def test_json_out_in_a_missing_folder(tiny_models, small_dataset, tmp_path):
    video = next((small_dataset.parent / "rel" / "walk").iterdir())
    out = invoke_checked(
        "infer", video, "--model", tiny_models["onnx"], "--json-out", tmp_path / "missing" / "x.jsonl", code=1
    )
    assert "missing/x.jsonl: No such file or directory" in out


def test_atomic_write_on_a_full_disk(full_dir):
    with pytest.raises(OutputError, match="No space left"):
        write_text_atomic(full_dir / "flowprep.json", "x" * 100_000)
    assert sorted(p.name for p in full_dir.iterdir()) == ["pad"]


def test_annotated_video_on_a_full_disk_fails_cleanly(full_dir):
    pytest.importorskip("av")
    # in a subprocess: flushing PyAV's encoder after a failed write crashed the process (SIGSEGV)
    code = (
        "import numpy as np, sys; from flowprep.serve.annotate import AnnotatedWriter\n"
        f"w = AnnotatedWriter({str(full_dir / 'a.mp4')!r}, 25)\n"
        "try:\n    [w.write(np.zeros((64, 80, 3), np.uint8)) for _ in range(30)]\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
        "w.close()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-500:]
    assert "OutputError" in r.stdout and "No space left" in r.stdout


def test_preview_on_a_full_disk_is_one_line(small_dataset, full_dir, capfd):
    from flowprep.preview.api import write_legend

    with pytest.raises(OutputError, match="wheel.png: No space left"):  # one line naming the file
        write_legend(full_dir / "wheel.png")
    assert "libpng" not in capfd.readouterr().err and sorted(p.name for p in full_dir.iterdir()) == ["pad"]
    # a subprocess: OpenCV's imwrite printed libpng's own error line on the process's stderr
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flowprep",
            "preview",
            str(small_dataset),
            "--out",
            str(full_dir / "p"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "No space left" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "target",
    [
        "flowprep.builder.folder.write_text_atomic",
        "flowprep.builder.folder_notes.write_text_atomic",
        "flowprep.builder.finalize.write_record",
    ],
)
def test_a_full_or_read_only_output_is_one_line(walk_release, tmp_path, monkeypatch, target):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "x"))

    monkeypatch.setattr(target, full)
    r = run_cli(*build_args(walk_release, tmp_path / "out"))
    assert r.exit_code == 1 and "No space left on device" in r.output
    assert r.output.strip().splitlines()[-1].startswith("flowprep: error: cannot write into")


def test_force_removes_temporary_files_a_killed_write_left(walk_release, tmp_path):
    from flowprep.fsio.writing import is_tmp_of, unique_tmp

    out = tmp_path / "out"
    assert run_flowprep(*build_args(walk_release, out)).returncode == 0
    left = unique_tmp(out / "labels.txt")  # what a kill -9 during the write of labels.txt leaves
    left.write_text("half")
    mine = out / ".labels.txt.mine.tmp"  # not of unique_tmp's shape: the user's, kept
    mine.write_text("mine")
    assert is_tmp_of(left.name, "labels.txt") and not is_tmp_of(mine.name, "labels.txt")
    assert not is_tmp_of(".flowprep.json.h-1-abcdef12.tmp", "labels.txt")
    r = run_flowprep(*build_args(walk_release, out, "--force", "--seed", "3"))
    assert r.returncode == 0, r.stderr
    assert not left.exists() and mine.read_text() == "mine"

"""flowprep.fsio.writing: every writer on a full, read-only or missing output is one line naming
the file, leaves nothing half-written, and --force removes only the temporary files it made;
:class:`~flowprep.fsio.writing.AtomicFile` creates its temporary exclusively, keeps the suffix when
asked, and renames it only on success."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from flowprep.errors import OutputError
from flowprep.fsio import writing
from flowprep.fsio.writing import AtomicFile, atomic_path, write_text_atomic
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


# --- AtomicFile: a file streamed in pieces under a temporary sibling, then renamed or removed -------


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_streamed_file_replaces_the_old_one_only_when_whole(tmp_path: Path):
    target = tmp_path / "shard.tar"
    target.write_bytes(b"old")
    with AtomicFile(target) as out:
        for piece in (b"a", b"b", b"c"):
            out.file.write(piece)
        out.file.flush()
        assert target.read_bytes() == b"old" and out.tmp.read_bytes() == b"abc"  # readers see the old file
        assert out.tmp.parent == tmp_path and writing.is_tmp_of(out.tmp.name, "shard.tar")
    assert _names(tmp_path) == ["shard.tar"] and target.read_bytes() == b"abc"


@pytest.mark.parametrize("error", [RuntimeError("encoder died"), KeyboardInterrupt()])
def test_an_interrupted_stream_leaves_no_temporary_and_the_old_file(tmp_path: Path, error: BaseException):
    target = tmp_path / "a.mp4"
    target.write_bytes(b"old")
    with pytest.raises(type(error)), AtomicFile(target) as out:
        out.file.write(b"half")
        raise error
    with pytest.raises(type(error)), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise error
    assert _names(tmp_path) == ["a.mp4"] and target.read_bytes() == b"old"


def test_commit_and_discard_across_calls(tmp_path: Path):
    kept, dropped = AtomicFile(tmp_path / "kept"), AtomicFile(tmp_path / "dropped")
    kept.file.write(b"x")
    dropped.file.write(b"y")
    kept.commit()
    dropped.discard()
    kept.discard()  # after commit: nothing (a writer's cleanup path calls it unconditionally)
    dropped.discard()
    assert _names(tmp_path) == ["kept"] and (tmp_path / "kept").read_bytes() == b"x"
    with pytest.raises(RuntimeError, match="discarded"):
        dropped.commit()
    with AtomicFile(tmp_path / "probe") as probe:  # a write probe: discarded in the body, not committed
        probe.file.write(b"{}")
        probe.discard()
    assert _names(tmp_path) == ["kept"]


def test_a_failed_write_or_rename_is_one_line_naming_the_file(tmp_path: Path):
    target = tmp_path / "out.bin"
    with pytest.raises(OutputError, match=f"cannot write {target}: No space"), AtomicFile(target):
        raise OSError(errno.ENOSPC, "No space left on device")  # as write() reports a full disk
    (tmp_path / "folder").mkdir()
    out = AtomicFile(tmp_path / "folder")
    with pytest.raises(OutputError, match="cannot write .*folder: Is a directory"):
        out.commit()  # os.replace onto a folder fails: the temporary goes
    with pytest.raises(OutputError, match="missing/out.bin: No such file"):
        AtomicFile(tmp_path / "missing" / "out.bin")
    assert _names(tmp_path) == ["folder"]


@pytest.mark.parametrize("by_name", [False, True])
def test_a_link_planted_at_the_temporary_name_is_never_followed(tmp_path: Path, monkeypatch, by_name: bool):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    planted = tmp_path / ".out.mp4.guessed.tmp.mp4"
    planted.symlink_to(victim)
    monkeypatch.setattr(writing, "unique_tmp", lambda path, keep_suffix=False: planted)
    with pytest.raises(OutputError, match="File exists"):
        AtomicFile(tmp_path / "out.mp4", keep_suffix=True, by_name=by_name)
    assert victim.read_bytes() == b"precious" and planted.is_symlink()
    assert _names(tmp_path) == [planted.name, "victim"]


def test_a_writer_by_name_gets_a_new_empty_file_with_the_suffix(tmp_path: Path):
    with AtomicFile(tmp_path / "a.mkv", keep_suffix=True, by_name=True) as out:
        assert out.tmp.suffix == ".mkv" and out.file.closed  # FFmpeg picks the container by the suffix
        assert out.tmp.is_file() and not out.tmp.is_symlink() and out.tmp.stat().st_size == 0
        out.tmp.write_bytes(b"video")  # what the library does: reopen by name
    assert _names(tmp_path) == ["a.mkv"] and (tmp_path / "a.mkv").read_bytes() == b"video"

"""flowprep.fsio.reading: inputs are read only as regular files (FIFOs, devices and symlinks
leading out are refused in one line, without blocking or unbounded memory)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flowprep.layout.record import read_record
from helpers import build_args, few_lines, first_clip, invoke_checked, run_flowprep


def _verify_subprocess(ds: Path) -> subprocess.CompletedProcess:
    # a subprocess with a timeout and an address-space limit: before the fix a FIFO frame blocked
    # verify for ever and a frame linked to /dev/zero grew its memory without bound
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
        "from flowprep.cli import main; main(sys.argv[1:])"
    )
    return subprocess.run(
        [sys.executable, "-c", code, "verify", str(ds)], capture_output=True, text=True, timeout=120, check=False
    )


def test_verify_reads_frames_only_as_regular_files(small_dataset_copy, tmp_path):
    clip = first_clip(small_dataset_copy)
    outside = tmp_path / "outside.jpg"
    shutil.copy(clip / "u" / "000001.jpg", outside)
    for name, make in [
        ("000000.jpg", lambda p: os.mkfifo(p)),
        ("000001.jpg", lambda p: p.symlink_to("/dev/zero")),
        ("000002.jpg", lambda p: p.symlink_to(outside)),
    ]:
        (clip / "u" / name).unlink()
        make(clip / "u" / name)
    shutil.move(clip / "v", tmp_path / "v")
    (clip / "v").symlink_to(tmp_path / "v")  # a folder leading out of the dataset
    r = _verify_subprocess(small_dataset_copy)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "u/000000.jpg: unreadable image (a FIFO, not a regular file)" in r.stderr
    assert "u/000001.jpg: unreadable image (a symbolic link" in r.stderr
    assert "u/000002.jpg: unreadable image (a symbolic link" in r.stderr
    assert "unexpected entry 'v'" in r.stderr


@pytest.mark.parametrize("damage", ["missing", "empty", "fifo", "dev_zero"])
def test_train_with_a_bad_frame_in_a_worker_is_one_line(damage, small_dataset_copy, tmp_path, one_torch_thread):
    frame = first_clip(small_dataset_copy) / "rgb" / "000002.png"
    frame.unlink() if damage != "empty" else frame.write_bytes(b"")
    if damage == "fifo":  # opening it used to block training forever
        os.mkfifo(frame)
    elif damage == "dev_zero":  # reading it used to grow memory without limit
        frame.symlink_to("/dev/zero")
    out = invoke_checked(
        "train",
        small_dataset_copy,
        "--out",
        tmp_path / "run",
        "--epochs",
        "1",
        "--frames",
        "4",
        "--input-size",
        "32",
        "--batch-size",
        "2",
        "--workers",
        "1",
        "--no-progress",
        code=1,
    )
    assert "000002.png" in out and "DataLoader worker" not in out
    assert not (tmp_path / "run" / "last.pt").exists()


def test_fifo_and_dev_zero_clips_are_skipped_without_hanging(walk_release, tmp_path):
    (walk_release / "walk" / "zero.avi").symlink_to("/dev/zero")
    os.mkfifo(walk_release / "walk" / "pipe.avi")
    out = tmp_path / "out"
    r = run_flowprep(*build_args(walk_release, out), timeout=120)
    assert r.returncode == 0 and r.stderr.count("not a regular file") == 2 and few_lines(r), r.stderr
    record = read_record(out)
    assert len(record.clips) == 3
    # skipped inputs are counted in the summary and listed in the record, as the guide asks
    assert list(record.excluded) == [
        "walk/pipe.avi (skipped: not a regular file)",
        "walk/zero.avi (skipped: not a regular file)",
    ]
    assert "(2 clip(s) left out: 0 marked unused (0) by the split files, 0 not listed in them, 2 skipped" in r.stdout


def test_a_fifo_or_device_source_or_splits_is_one_line_and_touches_nothing(walk_release, tmp_path):
    fifo, out = tmp_path / "fifo.zip", tmp_path / "out"
    os.mkfifo(fifo)
    for args in ((fifo,), ("/dev/zero",), (walk_release, "--splits", "/dev/zero", "--official-split", "1")):
        r = run_flowprep(*build_args(args[0], out, *args[1:]), timeout=30)  # opening the FIFO used to block
        assert r.returncode == 1 and few_lines(r, 1) and "not a folder or a regular file" in r.stderr, r.stderr
        assert not out.exists()


def test_open_file_read_head_and_a_size_bound_at_opening(tmp_path):
    import zipfile

    from flowprep.errors import DatasetError
    from flowprep.fsio.reading import check_zip_ratio, open_file, open_regular, read_head

    data = tmp_path / "data.bin"
    data.write_bytes(b"0123456789")
    assert read_head(data, 4, what="archive") == b"0123"
    assert read_head(data, 64, what="archive") == b"0123456789"
    with open_file(data, what="shard") as fh:
        assert fh.read() == b"0123456789"
    with pytest.raises(DatasetError, match=r"cannot read shard .*data\.bin: 10 bytes, over the limit of 9"):
        open_regular(data, what="shard", max_bytes=9, error=DatasetError)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(data)
    for path, owned, why in ((tmp_path / "fifo", False, "a FIFO"), (tmp_path / "link", True, "a symbolic link")):
        with pytest.raises(DatasetError, match=why):
            read_head(path, 4, what="archive", owned=owned, error=DatasetError)
        with pytest.raises(DatasetError, match=why):
            open_file(path, what="shard", owned=owned, error=DatasetError)
    # the zip check on an open file leaves it at its start, for the reader it is handed to next
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("a", b"x" * 100)
    with open_file(tmp_path / "a.zip", what="zip") as fh:
        fh.read(7)
        assert check_zip_ratio(tmp_path / "a.zip", what="zip", max_bytes=1000, fh=fh) == 100
        assert fh.tell() == 0

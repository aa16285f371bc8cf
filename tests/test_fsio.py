"""flowprep.fsio, the one gate to the file system: reading, JSON, zip containers, writing, paths."""

from __future__ import annotations

import errno
import json
import os
import socket
import zipfile
from pathlib import Path

import pytest

from flowprep import fsio
from flowprep.errors import ConfigError, DatasetError, FlowprepError, OutputError
from flowprep.fsio.lock import FolderLock
from flowprep.fsio.owned import Manifest, check_no_link, make_dirs, remove_inside
from flowprep.fsio.paths import check_path, path_problem
from flowprep.fsio.reading import check_regular, check_zip_ratio, json_depth_exceeds, read_bytes, read_json
from flowprep.fsio.writing import (
    atomic_path,
    check_new_file,
    create_exclusive,
    is_tmp_of,
    unique_tmp,
    write_text_atomic,
)

# --- reading -------------------------------------------------------------------------------------


def test_read_bytes_reads_a_regular_file_and_follows_a_user_link(tmp_path: Path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    (tmp_path / "link").symlink_to(f)
    assert read_bytes(f, what="file", max_bytes=3) == b"abc"
    assert read_bytes(tmp_path / "link", what="file", max_bytes=3) == b"abc"


def test_a_fifo_is_refused_at_once_in_one_line(tmp_path: Path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # no writer: a blocking open would wait forever
    with pytest.raises(ConfigError) as err:
        read_bytes(fifo, what="image", max_bytes=10, error=ConfigError)
    assert str(err.value) == f"cannot read image {fifo}: a FIFO, not a regular file"


@pytest.mark.parametrize("owned", [False, True])
def test_a_device_is_refused_directly_or_through_a_link(tmp_path: Path, owned: bool):
    with pytest.raises(FlowprepError, match="character device"):
        read_bytes("/dev/zero", what="frame", max_bytes=10)
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(FlowprepError, match="character device|symbolic link"):
        read_bytes(tmp_path / "zero", what="frame", max_bytes=10, owned=owned)


def test_a_symlink_inside_an_owned_folder_is_not_followed(tmp_path: Path):
    (tmp_path / "real").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(DatasetError, match="a symbolic link .*not followed"):
        read_bytes(tmp_path / "link", what="frame", max_bytes=10, owned=True, error=DatasetError)


def test_size_limit_and_missing_file(tmp_path: Path):
    f = tmp_path / "big"
    f.write_bytes(b"x" * 11)
    with pytest.raises(FlowprepError, match="11 bytes, over the limit of 10"):
        read_bytes(f, what="file", max_bytes=10)
    with pytest.raises(FlowprepError, match="cannot read file .*: No such file"):
        read_bytes(tmp_path / "nope", what="file", max_bytes=10)
    with pytest.raises(FlowprepError, match="a folder, not a regular file"):
        read_bytes(tmp_path, what="file", max_bytes=10)


# --- JSON ----------------------------------------------------------------------------------------


def test_read_json_reads_what_flowprep_writes(tmp_path: Path):
    obj = {"a": [1, 2.5, {"b": None, "c": "x[{"}], "d": '\u00e9"]'}
    f = tmp_path / "r.json"
    f.write_text(json.dumps(obj), encoding="utf-8")
    assert read_json(f, what="record") == obj


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path: Path, depth: int):
    f = tmp_path / "deep.json"
    f.write_text("[" * depth + "]" * depth)
    with pytest.raises(DatasetError, match="nested deeper than 64 levels"):
        read_json(f, what="dataset record", error=DatasetError)
    f.write_text('{"a":' * depth + "1" + "}" * depth)
    with pytest.raises(DatasetError, match="nested deeper than 64 levels"):
        read_json(f, what="dataset record", error=DatasetError)


def test_nesting_at_the_limit_and_brackets_in_strings_are_fine(tmp_path: Path):
    f = tmp_path / "ok.json"
    f.write_text("[" * 64 + '"' + "[" * 500 + '\\"' + '"' + "]" * 64)
    assert read_json(f, what="file")  # 64 levels; the 500 brackets are inside a string
    assert not json_depth_exceeds([[]] * 10_000 + [[[[]]]], 4)
    assert json_depth_exceeds([[]] * 10_000 + [{"a": [[[]]]}], 4)
    assert not json_depth_exceeds("[[[[[", 0)  # a scalar has no depth


@pytest.mark.parametrize(
    "text, why",
    [
        ("{", "not valid JSON"),
        ("[NaN]", r"not valid JSON \(NaN is not a JSON number\)"),
        ("1" * 5000, "not valid JSON"),  # int() over 4300 digits is a ValueError
        ("[1}", "not valid JSON"),
        ("[" * 100 + "}" * 100, "not valid JSON|nested deeper"),
    ],
)
def test_bad_json_is_one_line(tmp_path: Path, text: str, why: str):
    f = tmp_path / "bad.json"
    f.write_text(text)
    with pytest.raises(FlowprepError, match=why) as err:
        read_json(f, what="manifest")
    assert "\n" not in str(err.value)


def test_json_not_utf8_and_too_big(tmp_path: Path):
    f = tmp_path / "x.json"
    f.write_bytes(b'"\xff"')
    with pytest.raises(FlowprepError, match="not UTF-8 text"):
        read_json(f, what="manifest")
    f.write_text("[" + "1," * 100 + "1]")
    with pytest.raises(FlowprepError, match="over the limit of 100"):
        read_json(f, what="manifest", max_bytes=100)


# --- zip containers ------------------------------------------------------------------------------


def test_check_zip_ratio_passes_stored_tensors_and_refuses_a_bomb(tmp_path: Path):
    ok = tmp_path / "ok.pt"
    with zipfile.ZipFile(ok, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data/0", os.urandom(1000))
    assert check_zip_ratio(ok, what="checkpoint", max_bytes=1 << 20) == 1000
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data/0", bytes(64 << 20))  # 64 MiB of zeros deflate to ~64 KB
    with pytest.raises(CheckpointErrorLike, match=r"ratio \d+:1, the limit is 100:1"):
        check_zip_ratio(bomb, what="checkpoint", max_bytes=1 << 30, error=CheckpointErrorLike)
    with pytest.raises(FlowprepError, match="unpacks to more than 1000 bytes"):
        check_zip_ratio(bomb, what="checkpoint", max_bytes=1000, max_ratio=10**9)


def test_check_zip_ratio_on_a_non_zip_is_one_line(tmp_path: Path):
    f = tmp_path / "x.pt"
    f.write_bytes(b"\x80\x02not a zip")
    with pytest.raises(FlowprepError, match="not a readable zip file") as err:
        check_zip_ratio(f, what="checkpoint", max_bytes=100)
    assert "\n" not in str(err.value)


class CheckpointErrorLike(FlowprepError):
    """Any FlowprepError subclass the caller names is what is raised."""


def test_check_regular_refuses_a_fifo_without_blocking(tmp_path: Path):
    fifo = tmp_path / "weights.pt"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="a FIFO, not a regular file"):
        check_regular(fifo, what="PyTorch file", max_bytes=10, error=ConfigError)
    (tmp_path / "ok").write_bytes(b"12345")
    assert check_regular(tmp_path / "ok", what="file", max_bytes=None) == 5


# --- writing -------------------------------------------------------------------------------------


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_leaves_no_temporary_on_failure(tmp_path: Path):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.suffix == ".mp4" and tmp.parent == tmp_path  # writers pick the format by the suffix
        tmp.write_bytes(b"half")
        raise RuntimeError("encoder died")
    assert _left(tmp_path) == ["out.mp4"] and target.read_bytes() == b"old"
    with pytest.raises(OutputError, match=f"cannot write {target}: No space"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")  # as write() reports a full disk
    assert _left(tmp_path) == ["out.mp4"]
    write_text_atomic(target, "new")
    assert _left(tmp_path) == ["out.mp4"] and target.read_text() == "new"


def test_an_atomic_write_replaces_a_symlink_not_its_target(tmp_path: Path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "index.html").symlink_to(victim)
    write_text_atomic(tmp_path / "out" / "index.html", "page")
    assert victim.read_text() == "precious" and not (tmp_path / "out" / "index.html").is_symlink()


def test_tmp_names_are_recognised(tmp_path: Path):
    for keep in (False, True):
        tmp = unique_tmp(tmp_path / "flowprep.json", keep_suffix=keep)
        assert is_tmp_of(tmp.name, "flowprep.json") and not is_tmp_of(tmp.name, "other.json")


def test_check_new_file_refuses_existing_files_inputs_and_specials(tmp_path: Path):
    video = tmp_path / "victim.avi"
    video.write_bytes(b"the user's video")
    new = tmp_path / "new.mp4"
    assert check_new_file(new, option="--output") == new
    with pytest.raises(ConfigError, match="already exists; .*--overwrite"):
        check_new_file(video, option="--output")
    assert check_new_file(video, option="--output", overwrite=True) == video
    for same in (video, tmp_path / "." / "victim.avi"):  # the input, however it is spelled
        with pytest.raises(ConfigError, match="is the command's own input; .*not even with --overwrite"):
            check_new_file(same, option="--output", overwrite=True, inputs=[video])
    os.link(video, tmp_path / "hardlink.avi")
    with pytest.raises(ConfigError, match="own input"):
        check_new_file(tmp_path / "hardlink.avi", option="--output", overwrite=True, inputs=[video, None])
    os.mkfifo(tmp_path / "fifo")
    for special in (tmp_path / "fifo", tmp_path, Path("/dev/null")):
        with pytest.raises(ConfigError, match="not a regular file"):
            check_new_file(special, option="--json-out", overwrite=True)
    assert video.read_bytes() == b"the user's video"


def test_create_exclusive(tmp_path: Path):
    assert create_exclusive(tmp_path / "lock", "a") and not create_exclusive(tmp_path / "lock", "b")
    assert (tmp_path / "lock").read_text() == "a" and _left(tmp_path) == ["lock"]


# --- owned outputs: deletion, folders, manifests, locks ------------------------------------------


def test_remove_inside_never_follows_a_symlink(tmp_path: Path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    (out / "media").mkdir(parents=True)
    outside.mkdir()
    (outside / "c0000.mp4").write_text("keep")
    (out / "media" / "c0000.mp4").write_text("ours")
    assert remove_inside(out, "media/c0000.mp4", ("media",))
    assert not remove_inside(out, "media/c0000.mp4", ("media",))  # gone already: fine
    (out / "media").rmdir()
    (out / "media").symlink_to(outside)
    with pytest.raises(ConfigError, match="is a symlink"):
        remove_inside(out, "media/c0000.mp4", ("media",))
    for bad in ("../outside", "/etc", "other/x"):
        with pytest.raises(ConfigError, match="refusing to remove"):
            remove_inside(out, bad, ("media",))
    assert (outside / "c0000.mp4").read_text() == "keep"


def test_make_dirs_and_check_no_link_refuse_a_symlinked_folder(tmp_path: Path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    assert make_dirs(out, "a/b") == out / "a" / "b" and (out / "a" / "b").is_dir()
    (out / "media").symlink_to(outside)
    with pytest.raises(ConfigError, match="media is a symlink"):
        make_dirs(out, "media")
    with pytest.raises(ConfigError, match="media is a symlink"):
        check_no_link(out, "media/c0000.mp4")
    (out / "file").write_text("x")
    with pytest.raises(ConfigError, match="it is a file, not a folder"):
        make_dirs(out, "file/sub")
    assert _left(outside) == []


def test_one_manifest_format_for_every_command(tmp_path: Path):
    m = Manifest(tmp_path, ".flowprep-export.json", {"model.onnx", "labels.txt"}, DatasetError, "fix it")
    assert m.read() == set() and not m.exists()
    m.write(["model.onnx", "labels.txt", "model.onnx"])
    assert json.loads(m.path.read_text()) == {"entries": ["labels.txt", "model.onnx"]}
    assert m.read() == {"model.onnx", "labels.txt"}
    # a tampered manifest cannot widen what flowprep replaces or removes
    m.path.write_text(json.dumps({"entries": ["model.onnx", "../../etc/passwd", 5, "README"]}))
    assert m.read() == {"model.onnx"}
    # the key of preview manifests written before this format is read too
    m.path.write_text(json.dumps({"files": ["labels.txt"]}))
    assert m.read() == {"labels.txt"}
    for text in ("[]", "{", "[" * 5000 + "]" * 5000, '{"entries": 3}'):
        m.path.write_text(text)
        with pytest.raises(DatasetError, match=r"cannot read ownership manifest .*damaged or edited by hand\); fix it"):
            m.read()
    m.path.unlink()
    m.path.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(DatasetError, match="symbolic link"):
        m.read()


def test_folder_lock_refuses_a_second_holder_and_takes_over_a_dead_one(tmp_path: Path):
    import subprocess
    import sys

    first, second = FolderLock(tmp_path, ".x.lock", "export"), FolderLock(tmp_path, ".x.lock", "export")
    with first:
        assert first.held
        with pytest.raises(ConfigError, match=rf"another export \(pid {os.getpid()} on .*\) holds {tmp_path}"):
            second.acquire()
    assert not (tmp_path / ".x.lock").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".x.lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with second:  # its holder is gone: the stale lock is taken over
        assert second.held
    (tmp_path / ".x.lock").write_text("garbage")
    with pytest.raises(ConfigError, match="names no export"):
        second.acquire()


# --- paths ---------------------------------------------------------------------------------------

#: a path holding the byte 0xE9 (a Latin-1 "é"), as Python holds undecodable bytes: a lone surrogate
BAD = "caf\udce9"


def test_path_policy():
    assert path_problem("/data/hmdb51/brush_hair/Ärger (1).avi") is None
    assert "not UTF-8" in path_problem(f"/tmp/{BAD}")
    assert "control character" in path_problem("/tmp/a\nb")
    with pytest.raises(ConfigError, match=r"--out '/tmp/caf\ufffd': the path holds bytes that are not UTF-8"):
        check_path(f"/tmp/{BAD}", "--out")


@pytest.mark.parametrize(
    "args",
    [
        ["build", "{bad}", "--out", "{tmp}/out"],
        ["build", "{tmp}", "--out", "{bad}"],
        ["bench-flow", "--flow", "farneback", "--vis-dir", "{bad}"],
        ["bench-flow", "--flow", "farneback", "--plot", "{bad}.png"],
        ["infer", "{bad}.avi", "--model", "{tmp}/m.onnx"],
        ["infer", "{tmp}/in.avi", "--model", "{tmp}/m.onnx", "--output", "{bad}.mp4"],
        ["export", "{tmp}/c.pt", "--out", "{bad}"],
        ["preview", "{tmp}", "--out", "{bad}"],
        ["train", "{tmp}", "--out", "{bad}"],
        ["verify", "{bad}"],
    ],
)
def test_an_unusable_path_is_a_usage_error_before_any_work(tmp_path: Path, args: list[str]):
    from helpers import run_cli

    bad = str(tmp_path / BAD)
    r = run_cli(*(a.format(bad=bad, tmp=tmp_path) for a in args))
    assert r.exit_code == 2 and "bytes that are not UTF-8" in r.output, r.output
    assert "Traceback" not in r.output and _left(tmp_path) == []


def test_a_non_utf8_out_is_refused_by_the_real_command_not_a_signal(tmp_path: Path):
    import subprocess
    import sys

    out = os.fsencode(tmp_path) + b"/caf\xe9"  # cv2.imwrite crashed with SIGSEGV on this
    r = subprocess.run(
        [sys.executable, "-m", "flowprep", "bench-flow", "--flow", "farneback", "--vis-dir", out],
        capture_output=True,
        timeout=300,
    )
    assert r.returncode == 2 and b"bytes that are not UTF-8" in r.stderr and b"Traceback" not in r.stderr, r.stderr
    assert _left(tmp_path) == []


def test_library_entry_points_apply_the_same_policy(tmp_path: Path):
    from flowprep.builder.config import BuildConfig
    from flowprep.export.config import ExportConfig
    from flowprep.layout.record import find_root

    bad = tmp_path / BAD
    with pytest.raises(ConfigError, match="--out .*not UTF-8"):
        BuildConfig(source=tmp_path, out=bad)
    with pytest.raises(ConfigError, match="CHECKPOINT .*not UTF-8"):
        ExportConfig(bad, tmp_path / "deploy")
    with pytest.raises(ConfigError, match="dataset .*not UTF-8"):
        find_root(bad)


# --- nothing bypasses the gate -------------------------------------------------------------------


def test_nothing_parses_json_or_takes_a_path_outside_the_gate():
    """Every JSON file goes through fsio.read_json/parse_json (size and depth limits), and every CLI
    path through commands.params.SafePath (the path policy): a new reader or option cannot skip them."""
    import re

    root = Path(fsio.__file__).resolve().parents[1]
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        if rel != "fsio/reading.py" and re.search(r"\bjson\.loads?\(", text):
            offenders.append(f"{rel}: json.load")
        if rel != "commands/params.py" and "click.Path(" in text:
            offenders.append(f"{rel}: click.Path")
    assert offenders == []

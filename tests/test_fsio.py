"""flowprep.fsio, the one gate to the file system: reading, JSON, zip containers, writing, paths."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from flowprep import fsio
from flowprep.errors import ConfigError, DatasetError, FlowprepError

# --- reading -------------------------------------------------------------------------------------


def test_read_bytes_reads_a_regular_file_and_follows_a_user_link(tmp_path: Path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    (tmp_path / "link").symlink_to(f)
    assert fsio.read_bytes(f, what="file", max_bytes=3) == b"abc"
    assert fsio.read_bytes(tmp_path / "link", what="file", max_bytes=3) == b"abc"


def test_a_fifo_is_refused_at_once_in_one_line(tmp_path: Path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # no writer: a blocking open would wait forever
    with pytest.raises(ConfigError) as err:
        fsio.read_bytes(fifo, what="image", max_bytes=10, error=ConfigError)
    assert str(err.value) == f"image {fifo} is a FIFO, not a regular file; refused"


@pytest.mark.parametrize("owned", [False, True])
def test_a_device_is_refused_directly_or_through_a_link(tmp_path: Path, owned: bool):
    with pytest.raises(FlowprepError, match="character device"):
        fsio.read_bytes("/dev/zero", what="frame", max_bytes=10)
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(FlowprepError, match="character device|symbolic link"):
        fsio.read_bytes(tmp_path / "zero", what="frame", max_bytes=10, owned=owned)


def test_a_symlink_inside_an_owned_folder_is_not_followed(tmp_path: Path):
    (tmp_path / "real").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(DatasetError, match="is a symbolic link .*not followed"):
        fsio.read_bytes(tmp_path / "link", what="frame", max_bytes=10, owned=True, error=DatasetError)


def test_size_limit_and_missing_file(tmp_path: Path):
    f = tmp_path / "big"
    f.write_bytes(b"x" * 11)
    with pytest.raises(FlowprepError, match="11 bytes, over the limit of 10"):
        fsio.read_bytes(f, what="file", max_bytes=10)
    with pytest.raises(FlowprepError, match="cannot read file .*No such file"):
        fsio.read_bytes(tmp_path / "nope", what="file", max_bytes=10)
    with pytest.raises(FlowprepError, match="is a folder"):
        fsio.read_bytes(tmp_path, what="file", max_bytes=10)


# --- JSON ----------------------------------------------------------------------------------------


def test_read_json_reads_what_flowprep_writes(tmp_path: Path):
    obj = {"a": [1, 2.5, {"b": None, "c": "x[{"}], "d": '\u00e9"]'}
    f = tmp_path / "r.json"
    f.write_text(json.dumps(obj), encoding="utf-8")
    assert fsio.read_json(f, what="record") == obj


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path: Path, depth: int):
    f = tmp_path / "deep.json"
    f.write_text("[" * depth + "]" * depth)
    with pytest.raises(DatasetError, match="nests deeper than 64 levels"):
        fsio.read_json(f, what="dataset record", error=DatasetError)
    f.write_text('{"a":' * depth + "1" + "}" * depth)
    with pytest.raises(DatasetError, match="nests deeper than 64 levels"):
        fsio.read_json(f, what="dataset record", error=DatasetError)


def test_nesting_at_the_limit_and_brackets_in_strings_are_fine(tmp_path: Path):
    f = tmp_path / "ok.json"
    f.write_text("[" * 64 + '"' + "[" * 500 + '\\"' + '"' + "]" * 64)
    assert fsio.read_json(f, what="file")  # 64 levels; the 500 brackets are inside a string
    assert not fsio.json_depth_exceeds("[]" * 10_000 + "[[[]]]", 3)
    assert fsio.json_depth_exceeds("[]" * 10_000 + "[[[[]]]]", 3)


@pytest.mark.parametrize(
    "text, why",
    [
        ("{", "not valid JSON"),
        ("[NaN]", "not valid JSON: NaN is not a JSON number"),
        ("1" * 5000, "not valid JSON"),  # int() over 4300 digits is a ValueError
        ("[1}", "not valid JSON"),
        ("[" * 100 + "}" * 100, "not valid JSON|nests deeper"),
    ],
)
def test_bad_json_is_one_line(tmp_path: Path, text: str, why: str):
    f = tmp_path / "bad.json"
    f.write_text(text)
    with pytest.raises(FlowprepError, match=why) as err:
        fsio.read_json(f, what="manifest")
    assert "\n" not in str(err.value)


def test_json_not_utf8_and_too_big(tmp_path: Path):
    f = tmp_path / "x.json"
    f.write_bytes(b'"\xff"')
    with pytest.raises(FlowprepError, match="not UTF-8 text"):
        fsio.read_json(f, what="manifest")
    f.write_text("[" + "1," * 100 + "1]")
    with pytest.raises(FlowprepError, match="over the limit of 100"):
        fsio.read_json(f, what="manifest", max_bytes=100)


# --- zip containers ------------------------------------------------------------------------------


def test_check_zip_ratio_passes_stored_tensors_and_refuses_a_bomb(tmp_path: Path):
    ok = tmp_path / "ok.pt"
    with zipfile.ZipFile(ok, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data/0", os.urandom(1000))
    assert fsio.check_zip_ratio(ok, what="checkpoint", max_bytes=1 << 20) == 1000
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data/0", bytes(64 << 20))  # 64 MiB of zeros deflate to ~64 KB
    with pytest.raises(CheckpointErrorLike, match=r"ratio \d+:1, the limit is 100:1"):
        fsio.check_zip_ratio(bomb, what="checkpoint", max_bytes=1 << 30, error=CheckpointErrorLike)
    with pytest.raises(FlowprepError, match="unpacks to more than 1000 bytes"):
        fsio.check_zip_ratio(bomb, what="checkpoint", max_bytes=1000, max_ratio=10**9)


def test_check_zip_ratio_on_a_non_zip_is_one_line(tmp_path: Path):
    f = tmp_path / "x.pt"
    f.write_bytes(b"\x80\x02not a zip")
    with pytest.raises(FlowprepError, match="is not a readable zip file") as err:
        fsio.check_zip_ratio(f, what="checkpoint", max_bytes=100)
    assert "\n" not in str(err.value)


class CheckpointErrorLike(FlowprepError):
    """Any FlowprepError subclass the caller names is what is raised."""

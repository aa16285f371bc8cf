"""The stored RAR 4.x writer: read back by rarfile (pure Python), and listed by unar/lsar and bsdtar."""

from __future__ import annotations

import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
import rarfile

from flowprep.archive.rar4 import RAR4_MARKER, make_hmdb51_rars, rar4_bytes, write_rar4, write_rar4_from_folder

ODD_FILES = [
    ("walk/Bob's_#1_walk_f_cm_np1_fr_med_0.avi", b"\x00\x01avi" * 300),
    ("walk/run(fast)&more!_walk_u_nm_np2_le_bad_1.avi", b"second clip"),
    ("walk/A.B.C_walk_h_cm_np3_ba_goo_0.avi", b""),
    ("sub/üȵĩöḋè/file.txt", b"file\n"),
    ("sub/日本語 name.txt", b"jp"),
    ("top level.txt", b"top"),
]
ODD_DIRS = ["walk", "sub", "sub/üȵĩöḋè"]


@pytest.fixture(scope="module")
def odd_rar(tmp_path_factory) -> Path:
    return write_rar4(tmp_path_factory.mktemp("rar4") / "odd.rar", ODD_FILES, ODD_DIRS)


def test_rarfile_reads_back_every_member(odd_rar: Path):
    data = odd_rar.read_bytes()
    assert data.startswith(RAR4_MARKER)
    with rarfile.RarFile(str(odd_rar), errors="strict") as rf:  # strict: any header CRC error raises
        infos = {i.filename.rstrip("/"): i for i in rf.infolist()}
        assert set(infos) == {n for n, _ in ODD_FILES} | set(ODD_DIRS)
        for d in ODD_DIRS:
            assert infos[d].is_dir()
        for name, payload in ODD_FILES:
            info = infos[name]
            assert info.is_file() and not info.is_symlink()
            assert info.compress_type == rarfile.RAR_M0
            assert info.file_size == len(payload)
            assert info.CRC == zlib.crc32(payload)
            assert info.date_time == (2011, 1, 1, 0, 0, 0)
            assert rf.read(name) == payload
        rf.testrar()  # reads every member and checks its CRC32


def test_bytes_are_deterministic(tmp_path: Path):
    a = write_rar4(tmp_path / "a.rar", ODD_FILES, ODD_DIRS).read_bytes()
    b = write_rar4(tmp_path / "b.rar", ODD_FILES, ODD_DIRS).read_bytes()
    assert a == b
    # end-of-archive block as WinRAR writes it: CRC 0x3DC4, type 0x7B, flags 0x4000, size 7
    assert a.endswith(bytes.fromhex("c43d7b00400700"))
    # empty archive: archive header with the CRC rarfile itself uses for it (0x90CF), then the end block
    assert rar4_bytes([], []) == RAR4_MARKER + bytes.fromhex("cf9073 0000 0d00 0000 00000000 c43d7b00400700")


def test_symlink_entries_are_marked_as_symlinks(tmp_path: Path):
    path = write_rar4(tmp_path / "l.rar", [("a.txt", b"a")], symlinks=[("link", "/etc/passwd")])
    with rarfile.RarFile(str(path)) as rf:
        assert rf.getinfo("link").is_symlink()
        assert not rf.getinfo("a.txt").is_symlink()


def test_names_outside_the_bmp_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="Basic Multilingual Plane"):
        write_rar4(tmp_path / "x.rar", [("emoji_\U0001f600.txt", b"")])


@pytest.mark.parametrize("tool,args", [("lsar", []), ("bsdtar", ["-tf"])])
def test_external_tools_list_it(odd_rar: Path, tool: str, args: list[str]):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    out = subprocess.run([tool, *args, str(odd_rar)], capture_output=True, check=True, text=True).stdout
    listed = {line.strip().rstrip("/") for line in out.splitlines()}
    assert {n for n, _ in ODD_FILES} <= listed


def test_unar_extracts_the_same_bytes(odd_rar: Path, tmp_path: Path):
    if shutil.which("unar") is None:
        pytest.skip("unar is not installed")
    subprocess.run(["unar", "-q", "-D", "-o", str(tmp_path), str(odd_rar)], check=True, capture_output=True)
    for name, payload in ODD_FILES:
        assert (tmp_path / name).read_bytes() == payload


def test_write_from_folder_is_recursive_sorted_with_dirs(tmp_path: Path):
    src = tmp_path / "src"
    (src / "b" / "deep").mkdir(parents=True)
    (src / "a").mkdir()
    (src / "b" / "deep" / "z.txt").write_bytes(b"z")
    (src / "a" / "y.txt").write_bytes(b"y")
    (src / "x.txt").write_bytes(b"x")
    path = write_rar4_from_folder(tmp_path / "f.rar", src, arc_prefix="top")
    with rarfile.RarFile(str(path)) as rf:
        names = [i.filename for i in rf.infolist()]
        assert names == ["top/", "top/a/", "top/b/", "top/b/deep/", "top/a/y.txt", "top/b/deep/z.txt", "top/x.txt"]
        assert rf.read("top/b/deep/z.txt") == b"z"


def test_make_hmdb51_rars_layout(tmp_path: Path):
    rel = tmp_path / "rel"
    for cls in ("walk", "run"):
        (rel / cls).mkdir(parents=True)
        (rel / cls / f"Bob's_#1_{cls}_f_cm_np1_fr_med_0.avi").write_bytes(cls.encode() * 10)
    (rel / "testTrainMulti_7030_splits").mkdir()
    (rel / "testTrainMulti_7030_splits" / "walk_test_split1.txt").write_text("a.avi 1 \n")
    outer, splits = make_hmdb51_rars(rel, tmp_path / "out")
    assert (outer.name, splits.name) == ("hmdb51_org.rar", "test_train_splits.rar")
    with rarfile.RarFile(str(outer)) as rf:
        assert rf.namelist() == ["run.rar", "walk.rar"]
        inner = tmp_path / "walk.rar"
        inner.write_bytes(rf.read("walk.rar"))
    with rarfile.RarFile(str(inner)) as rf:
        assert rf.namelist() == ["walk/", "walk/Bob's_#1_walk_f_cm_np1_fr_med_0.avi"]
        assert rf.read("walk/Bob's_#1_walk_f_cm_np1_fr_med_0.avi") == b"walk" * 10
    with rarfile.RarFile(str(splits)) as rf:
        assert rf.read("testTrainMulti_7030_splits/walk_test_split1.txt") == b"a.avi 1 \n"
    again = make_hmdb51_rars(rel, tmp_path / "again")
    assert again[0].read_bytes() == outer.read_bytes()

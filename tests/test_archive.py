"""Reading releases: folders, archives, HMDB51's RAR of RARs; safety rules and one-line errors."""

from __future__ import annotations

import concurrent.futures
import io
import json
import logging
import multiprocessing
import pickle
import shutil
import struct
import tarfile
import zipfile
import zlib
from dataclasses import asdict
from pathlib import Path

import pytest
import rarfile

from flowprep.archive.bounded import MemberRef, read_member
from flowprep.archive.formats import detect_kind
from flowprep.archive.rar4 import make_hmdb51_rars, rar4_bytes, write_rar4
from flowprep.archive.reader import list_classes, list_videos, read_text_files
from flowprep.archive.scan import VideoEntry
from flowprep.errors import ArchiveError, ConfigError
from flowprep.synth import make_release_folder
from hostile_archives import EVIL_NAMES, write_malicious_archive

SHARED_RAR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "rar"
ALL_CLASSES = ["fall_floor", "push", "ride_bike", "run", "walk"]
STEST = "".join(f"{i:03d}\n" for i in range(512))  # content of the rarfile project's stest*.txt


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A tiny HMDB51-shaped release: (unpacked folder, hmdb51_org.rar, test_train_splits.rar)."""
    root = tmp_path_factory.mktemp("release")
    make_release_folder(root / "rel", frames=4, height=32, width=32, sources_per_class=2, clips_per_source=1)
    outer, splits = make_hmdb51_rars(root / "rel", root / "rars")
    return root / "rel", outer, splits


def _original(rel: Path, e: VideoEntry) -> bytes:
    return (rel / e.cls / e.name).read_bytes()


def _patch_rar_header(data: bytes, offset: int, field_pos: int, value: bytes) -> bytes:
    """Overwrite bytes inside the header block starting at ``offset`` and fix its HEAD_CRC."""
    size = struct.unpack_from("<H", data, offset + 5)[0]
    block = bytearray(data[offset : offset + size])
    block[field_pos : field_pos + len(value)] = value
    block[0:2] = struct.pack("<H", zlib.crc32(bytes(block[2:])) & 0xFFFF)
    return data[:offset] + bytes(block) + data[offset + size :]


FIRST_FILE_HEADER = 7 + 13  # marker block + archive header
METHOD_POS, FLAGS_POS = 25, 3  # within a file header


# --- the four source shapes ---------------------------------------------------------------------


def test_nested_hmdb51_rar_extracts_only_selected_classes(release, tmp_path: Path):
    rel, outer, _ = release
    assert detect_kind(outer) == "rar"
    assert list_classes(outer) == ALL_CLASSES
    cache = tmp_path / "cache"
    entries = list_videos(outer, cache, classes={"walk", "run"})
    assert [e.cls for e in entries] == ["run", "run", "walk", "walk"]
    assert entries == sorted(entries, key=lambda e: (e.cls, e.name))
    cached = sorted(p.name for p in cache.rglob("*") if p.is_file())
    assert cached == ["run.rar", "walk.rar"]
    for e in entries:
        assert Path(e.ref.archive).parent.parent == cache.resolve()
        assert e.ref.member == f"{e.cls}/{e.name}"
        assert read_member(e.ref) == _original(rel, e)
    # a second listing re-uses the complete cached copies; a copy of the wrong size is replaced
    walk = cache / "hmdb51_org" / "walk.rar"
    stamp = walk.stat().st_mtime_ns
    (cache / "hmdb51_org" / "run.rar").write_bytes(b"partial")
    assert list_videos(outer, cache, classes=["walk", "run"]) == entries
    assert walk.stat().st_mtime_ns == stamp
    assert read_member(entries[0].ref) == _original(rel, entries[0])


def test_folder_of_class_folders(release, tmp_path: Path):
    rel, _, _ = release
    entries = list_videos(rel, tmp_path / "cache")
    assert len(entries) == 10 and sorted({e.cls for e in entries}) == ALL_CLASSES
    assert all(e.ref.archive is None for e in entries)
    assert read_member(entries[3].ref) == _original(rel, entries[3])
    assert not (tmp_path / "cache").exists()  # nothing to extract


def test_folder_of_per_class_archives(release, tmp_path: Path):
    rel, outer, _ = release
    unpacked = tmp_path / "hmdb51_org"
    unpacked.mkdir()
    with rarfile.RarFile(str(outer)) as rf:
        for name in rf.namelist():
            (unpacked / name).write_bytes(rf.read(name))
    assert list_classes(unpacked) == ALL_CLASSES
    entries = list_videos(unpacked, tmp_path / "cache", classes=["ride_bike"])
    assert [e.ref.archive for e in entries] == [str(unpacked / "ride_bike.rar")] * 2
    assert all(read_member(e.ref) == _original(rel, e) for e in entries)
    assert not (tmp_path / "cache").exists()


def test_folders_holding_only_one_folder_are_descended(release, tmp_path: Path):
    rel, outer, _ = release
    # what `mkdir unr && cd unr && unar hmdb51_org.rar` makes, plus macOS litter
    wrapped = tmp_path / "unr" / "hmdb51_org"
    wrapped.mkdir(parents=True)
    (tmp_path / "unr" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "unr" / "__MACOSX" / "hmdb51_org").mkdir(parents=True)
    with rarfile.RarFile(str(outer)) as rf:
        for name in rf.namelist():
            (wrapped / name).write_bytes(rf.read(name))
    assert list_classes(tmp_path / "unr") == ALL_CLASSES
    entries = list_videos(tmp_path / "unr", tmp_path / "cache", classes=["walk"])
    assert [e.ref.archive for e in entries] == [str(wrapped.resolve() / "walk.rar")] * 2
    assert all(read_member(e.ref) == _original(rel, e) for e in entries)
    # class folders two wrappers deep
    deep = tmp_path / "a" / "b" / "hmdb51"
    shutil.copytree(rel, deep)
    (tmp_path / "a" / "._b").write_bytes(b"mac")
    assert list_classes(tmp_path / "a") == ALL_CLASSES
    assert len(list_videos(tmp_path / "a", tmp_path / "cache", classes=["run", "push"])) == 4
    # a lone folder holding clips is the one class, not a wrapper
    shutil.copytree(rel / "walk", tmp_path / "one" / "walk")
    assert list_classes(tmp_path / "one") == ["walk"]
    assert {e.cls for e in list_videos(tmp_path / "one", tmp_path / "cache")} == {"walk"}
    # an archive of per-class archives under a top folder
    with rarfile.RarFile(str(outer)) as rf:
        inner = [(f"hmdb51_org/{name}", rf.read(name)) for name in rf.namelist()]
    top = write_rar4(tmp_path / "top.rar", inner)
    assert list_classes(top) == ALL_CLASSES
    (entry, _) = list_videos(top, tmp_path / "cache", classes=["push"])
    assert read_member(entry.ref) == _original(rel, entry)


def test_nothing_found_says_what_was_looked_for(tmp_path: Path):
    (tmp_path / "src" / "wrap" / "notes").mkdir(parents=True)
    (tmp_path / "src" / "wrap" / "notes" / "readme.txt").write_text("no clips here")
    for call in (lambda: list_classes(tmp_path / "src"), lambda: list_videos(tmp_path / "src", tmp_path / "c")):
        with pytest.raises(ArchiveError) as err:
            call()
        msg = str(err.value)
        assert "no videos found" in msg and "\n" not in msg
        assert f"{tmp_path / 'src' / 'wrap' / 'notes'} ({tmp_path / 'src'} holds only this folder)" in msg
        assert ".avi/.mp4" in msg and "per-class archives (<class>.tar.gz/" in msg and ".rar/.zip" in msg
    empty = write_rar4(tmp_path / "empty.rar", [("docs/readme.txt", b"x")])
    with pytest.raises(ArchiveError, match=r"no videos found: looked in archive .*empty\.rar for clips"):
        list_classes(empty)


def test_build_with_classes_on_a_source_without_videos_is_one_line(tmp_path: Path):
    from click.testing import CliRunner

    from flowprep.cli import cli

    (tmp_path / "unr" / "hmdb51_org").mkdir(parents=True)
    res = CliRunner().invoke(
        cli, ["build", str(tmp_path / "unr"), "--classes", "walk", "--out", str(tmp_path / "out"), "--flow", "dis"]
    )
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "no videos found: looked in folder" in lines[0] and "unknown class" not in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "rar"])
def test_archive_of_class_folders_under_a_top_folder(release, tmp_path: Path, kind: str):
    rel, _, _ = release
    files = [(f"hmdb/{p.parent.name}/{p.name}", p.read_bytes()) for p in sorted(rel.glob("*/*.avi"))]
    path = tmp_path / f"release.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files:
                zf.writestr(name, data)
                zf.writestr(f"__MACOSX/{name.rsplit('/', 1)[0]}/._{name.rsplit('/', 1)[1]}", b"mac")  # litter
    elif kind == "tar.gz":
        with tarfile.open(path, "w:gz") as tf:
            for name, data in files:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    else:
        write_rar4(path, files)
    assert detect_kind(path) == kind.split(".")[0]
    entries = list_videos(path, tmp_path / "cache", classes=["push", "walk"])
    assert [e.cls for e in entries] == ["push", "push", "walk", "walk"]
    assert all(read_member(e.ref) == _original(rel, e) for e in entries)


def test_split_files_from_rar_zip_tar_and_folder(release, tmp_path: Path):
    rel, _, splits = release
    want = {p.name: p.read_text() for p in (rel / "testTrainMulti_7030_splits").glob("*.txt")}
    assert len(want) == 15
    assert read_text_files(splits) == want
    assert read_text_files(rel / "testTrainMulti_7030_splits") == want
    zpath, tpath = tmp_path / "s.zip", tmp_path / "s.tar"
    with zipfile.ZipFile(zpath, "w") as zf, tarfile.open(tpath, "w") as tf:
        for name, text in want.items():
            zf.writestr(f"testTrainMulti_7030_splits/{name}", text)
            info = tarfile.TarInfo(f"testTrainMulti_7030_splits/{name}")
            info.size = len(text.encode())
            tf.addfile(info, io.BytesIO(text.encode()))
    assert read_text_files(zpath) == want
    assert read_text_files(tpath) == want


def test_refs_are_picklable_json_able_and_work_in_another_process(release, tmp_path: Path):
    rel, outer, _ = release
    entries = list_videos(outer, tmp_path / "cache", classes=["push"])
    ref = entries[0].ref
    assert pickle.loads(pickle.dumps(ref)) == ref
    assert MemberRef(**json.loads(json.dumps(asdict(ref)))) == ref
    read_member(ref)  # opens the archive in this process first: the child must not re-use that handle
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        assert list(pool.map(read_member, [e.ref for e in entries])) == [_original(rel, e) for e in entries]


# --- unsafe members -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["zip", "tar", "rar"])
def test_hostile_members_are_skipped_and_never_written(tmp_path: Path, caplog, kind: str):
    good = {"walk/a.avi": b"A", "run/b.avi": b"BB", "walk/notes.txt": b"ok"}
    work = tmp_path / "work"
    path = write_malicious_archive(work / f"evil.{kind}", kind, good)
    with caplog.at_level(logging.WARNING, logger="flowprep.archive"):
        entries = list_videos(path, work / "cache")
        texts = read_text_files(path)
    assert [(e.cls, e.name) for e in entries] == [("run", "b.avi"), ("walk", "a.avi")]
    assert [read_member(e.ref) for e in entries] == [b"BB", b"A"]
    assert texts == {"notes.txt": "ok"}
    for name in EVIL_NAMES:
        assert name in caplog.text
    assert "walk/link.avi" in caplog.text and "symlink" in caplog.text
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["work", f"evil.{kind}"])
    assert not Path("/abs.txt").exists()


def test_inner_archive_names_are_sanitized_in_the_cache(tmp_path: Path):
    inner = rar4_bytes([("x/clip.avi", b"clip")])
    outer = write_rar4(
        tmp_path / "outer.rar",
        [("we ird&.rar", inner), ("sub/ok.rar", inner), ("../evil.rar", inner), ("/abs.rar", inner)],
    )
    assert list_classes(outer) == ["ok", "we ird&"]
    cache = tmp_path / "cache"
    entries = list_videos(outer, cache)
    assert [(e.cls, e.name) for e in entries] == [("ok", "clip.avi"), ("we ird&", "clip.avi")]
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")}
    odd = {w for w in written if w.endswith("-we_ird_.rar")}
    assert len(odd) == 1 and odd.pop().startswith("cache/outer/")
    assert {w for w in written if not w.endswith("-we_ird_.rar")} == {
        "cache",
        "cache/outer",
        "cache/outer/ok.rar",
        "outer.rar",
    }


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_a_class_with_both_a_folder_and_an_archive_is_warned(tmp_path: Path, caplog, kind: str):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("walk/a.avi", b"a")
    members = {"walk.zip": inner.getvalue(), "walk/c.avi": b"c", "run/r.avi": b"r"}
    src = tmp_path / ("src" if kind == "folder" else "src.zip")
    if kind == "folder":
        for name, data in members.items():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes(data)
    else:
        with zipfile.ZipFile(src, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
    with caplog.at_level(logging.WARNING, logger="flowprep.archive"):
        names = [(v.cls, v.name) for v in list_videos(src, tmp_path / "cache")]
    assert names == [("run", "r.avi"), ("walk", "c.avi")]
    assert "both a folder and an archive (walk); using the folders" in caplog.text


def test_unknown_class_lists_available(release, tmp_path: Path):
    _, outer, _ = release
    with pytest.raises(ConfigError) as err:
        list_videos(outer, tmp_path / "cache", classes=["walk", "dance", "fly"])
    msg = str(err.value)
    assert "dance, fly" in msg and "fall_floor, push, ride_bike, run, walk" in msg and "\n" not in msg
    assert not (tmp_path / "cache").exists()


def test_missing_path_and_non_archive(tmp_path: Path):
    with pytest.raises(ArchiveError, match="no such file"):
        list_videos(tmp_path / "nope.rar", tmp_path / "cache")
    fake = tmp_path / "notes.rar"
    fake.write_text("this is a text file, not a RAR\n" * 40)
    for fn in (detect_kind, list_classes, read_text_files):
        with pytest.raises(ArchiveError, match="not a folder, RAR, zip or tar"):
            fn(fake)
    with pytest.raises(ArchiveError, match="cannot read"):
        read_member(MemberRef(None, str(tmp_path / "gone.avi"), 3))


def test_empty_source_is_an_error(tmp_path: Path):
    with pytest.raises(ArchiveError, match="no videos found"):
        list_videos(tmp_path, tmp_path / "cache")
    with pytest.raises(ArchiveError, match="no videos found"):
        list_classes(tmp_path)


def test_truncated_rar(release, tmp_path: Path):
    _, outer, _ = release
    data = outer.read_bytes()
    for cut in (FIRST_FILE_HEADER + 10, len(data) // 2):  # inside a header, inside a member's data
        bad = tmp_path / f"cut{cut}.rar"
        bad.write_bytes(data[:cut])
        with pytest.raises(ArchiveError, match="truncated") as err:
            list_videos(bad, tmp_path / "cache")
        assert "\n" not in str(err.value)


def test_corrupt_crc_in_data_and_header(tmp_path: Path):
    clip = bytes(range(256)) * 8
    good = rar4_bytes([("walk/a.avi", clip)])
    pos = good.index(clip) + 100
    flipped = tmp_path / "data.rar"
    flipped.write_bytes(good[:pos] + bytes([good[pos] ^ 0xFF]) + good[pos + 1 :])
    (entry,) = list_videos(flipped, tmp_path / "cache")
    with pytest.raises(ArchiveError, match="CRC"):
        read_member(entry.ref)
    header = tmp_path / "header.rar"
    header.write_bytes(good[: FIRST_FILE_HEADER + 12] + b"\xff" + good[FIRST_FILE_HEADER + 13 :])
    with pytest.raises(ArchiveError, match="corrupt.*CRC"):
        list_videos(header, tmp_path / "cache")


def test_truncated_zip_and_corrupt_tar_gz(tmp_path: Path):
    zpath = tmp_path / "a.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("walk/a.avi", b"x" * 5000)
    zpath.write_bytes(zpath.read_bytes()[:3000])
    with pytest.raises(ArchiveError, match="truncated or corrupt"):
        list_videos(zpath, tmp_path / "cache")
    tpath = tmp_path / "a.tar.gz"
    with tarfile.open(tpath, "w:gz") as tf:
        info = tarfile.TarInfo("walk/a.avi")
        info.size = 100_000
        tf.addfile(info, io.BytesIO(bytes(range(256)) * 400))
    tpath.write_bytes(tpath.read_bytes()[:600])
    with pytest.raises(ArchiveError, match="truncated or corrupt|cannot read"):
        (entry,) = list_videos(tpath, tmp_path / "cache")
        read_member(entry.ref)


def test_later_volume_of_a_multi_volume_rar(tmp_path: Path):
    data = rar4_bytes([("walk/a.avi", b"x")])
    flags = struct.unpack_from("<H", data, FIRST_FILE_HEADER + FLAGS_POS)[0] | 0x0001  # continued from before
    path = tmp_path / "vol.part2.rar"
    path.write_bytes(_patch_rar_header(data, FIRST_FILE_HEADER, FLAGS_POS, struct.pack("<H", flags)))
    with pytest.raises(ArchiveError, match="first volume"):
        list_classes(path)


def test_encrypted_members_are_refused(tmp_path: Path):
    zpath = tmp_path / "enc.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("walk/a.avi", b"x")
    data = bytearray(zpath.read_bytes())  # zipfile cannot encrypt: set the "encrypted" bit by hand
    central = data.index(b"PK\x01\x02")
    data[6] |= 0x1
    data[central + 8] |= 0x1
    zpath.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="encrypted"):
        list_videos(zpath, tmp_path / "cache")
    rpath = tmp_path / "enc.rar"
    data = rar4_bytes([("walk/a.avi", b"x")])
    flags = struct.unpack_from("<H", data, FIRST_FILE_HEADER + FLAGS_POS)[0] | 0x0004  # password flag
    rpath.write_bytes(_patch_rar_header(data, FIRST_FILE_HEADER, FLAGS_POS, struct.pack("<H", flags)))
    with pytest.raises(ArchiveError, match="encrypted"):
        list_videos(rpath, tmp_path / "cache")


def test_compressed_rar_without_any_tool_says_what_to_install(tmp_path: Path, monkeypatch):
    # A header that claims method 0x33 (compressed): rarfile must hand it to an external tool.
    data = rar4_bytes([("walk/a.avi", b"not really compressed")])
    path = tmp_path / "m3.rar"
    path.write_bytes(_patch_rar_header(data, FIRST_FILE_HEADER, METHOD_POS, b"\x33"))
    (entry,) = list_videos(path, tmp_path / "cache")  # listing needs no tool
    for tool in ("UNRAR_TOOL", "UNAR_TOOL", "BSDTAR_TOOL", "SEVENZIP_TOOL", "SEVENZIP2_TOOL"):
        monkeypatch.setattr(rarfile, tool, str(tmp_path / "no-such-binary"))
    monkeypatch.setattr(rarfile, "CURRENT_SETUP", None)  # forget the tool found earlier
    with pytest.raises(ArchiveError) as err:
        read_member(entry.ref)
    msg = str(err.value)
    assert "install one of: `apt-get install unar` (or unrar, 7zip, libarchive-tools/bsdtar)" in msg
    assert "\n" not in msg


def test_duplicate_clip_names_in_one_class(tmp_path: Path):
    path = write_rar4(tmp_path / "dup.rar", [("a/walk/x.avi", b"1"), ("b/walk/x.avi", b"2")])
    with pytest.raises(ArchiveError, match="walk/x.avi"):
        list_videos(path, tmp_path / "cache")


# --- real compressed RARs (rarfile project's samples), read through the external tool ------------


def _shared(name: str) -> Path:
    path = SHARED_RAR / name
    if not path.is_file():
        pytest.skip(f"shared sample {path} is absent")
    return path


@pytest.mark.parametrize(
    "name,want",
    [
        ("rar3-solid.rar", {"stest1.txt": STEST, "stest2.txt": STEST}),
        ("rar5-crc.rar", {"stest1.txt": STEST, "stest2.txt": STEST}),
        ("rar5-solid-qo.rar", {"stest1.txt": STEST, "stest2.txt": STEST}),  # same names twice, same text
        (
            "rar3-subdirs.rar",
            {"file1.txt": "file1\n", "file2.txt": "file2\n", "long fn.txt": "long fn\n", "file.txt": "file\n"},
        ),
    ],
)
def test_shared_compressed_rars(name: str, want: dict[str, str]):
    path = _shared(name)
    assert detect_kind(path) == "rar"
    try:
        rarfile.tool_setup()
    except rarfile.RarCannotExec:
        pytest.skip("no RAR decompressor installed (unar, unrar, 7z or bsdtar)")
    assert read_text_files(path) == want
    member = "somedir/stest2.txt" if name == "rar5-solid-qo.rar" else "stest1.txt"
    if name != "rar3-subdirs.rar":
        assert read_member(MemberRef(str(path), member, 2048)).decode() == STEST
    else:
        assert read_member(MemberRef(str(path), "sub/üȵĩöḋè/file.txt", 5)) == b"file\n"


def _only_tool(monkeypatch, tmp_path: Path, keep: str) -> None:
    for tool in ("UNRAR_TOOL", "UNAR_TOOL", "BSDTAR_TOOL", "SEVENZIP_TOOL", "SEVENZIP2_TOOL"):
        if tool != keep:
            monkeypatch.setattr(rarfile, tool, str(tmp_path / "no-such-binary"))
    monkeypatch.setattr(rarfile, "CURRENT_SETUP", None)


def test_bsdtar_alone_reads_rar5_and_explains_solid_rar3(tmp_path: Path, monkeypatch):
    # rarfile 4.5 puts "--" between bsdtar's -f and the archive; archive/failures.py works around it.
    crc, solid = _shared("rar5-crc.rar"), _shared("rar3-solid.rar")
    if shutil.which("bsdtar") is None:
        pytest.skip("bsdtar is not installed")
    _only_tool(monkeypatch, tmp_path, "BSDTAR_TOOL")
    assert read_member(MemberRef(str(crc), "stest1.txt", 2048)).decode() == STEST
    hint = r"\(bsdtar\) failed.*bsdtar reads no solid RARs.*apt-get install unar"
    with pytest.raises(ArchiveError, match=hint):
        read_text_files(solid)


def test_member_bounds_size_ratio_and_short_reads(tmp_path):
    from flowprep.archive.formats import Member, bound_reason, open_archive
    from flowprep.fsio.reading import MAX_RATIO, RATIO_FLOOR

    assert bound_reason(Member("a", 100, "file", packed=100), 1000) is None
    assert "over the limit" in bound_reason(Member("a", 2000, "file", packed=2000), 1000)
    assert bound_reason(Member("a", RATIO_FLOOR, "file", packed=1), 1 << 40) is None  # small: never a bomb
    big = RATIO_FLOOR + 1
    assert "ratio" in bound_reason(Member("a", big, "file", packed=big // (MAX_RATIO + 1)), 1 << 40)
    assert bound_reason(Member("a", big, "file", packed=-1), 1 << 40) is None  # unknown: size bound only
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("c/a.avi", b"x" * 5000)
    ref = MemberRef(str(path), "c/a.avi", 5000)
    assert read_member(ref) == b"x" * 5000
    with pytest.raises(ArchiveError, match="per-clip limit of 4000"):
        read_member(ref, limit=4000)
    with open_archive(path) as arc, pytest.raises(ArchiveError, match="over the limit"):
        arc.read("c/a.avi", limit=10)
    tgz = tmp_path / "t.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        info = tarfile.TarInfo("c/a.avi")
        info.size = 5000
        tf.addfile(info, io.BytesIO(b"x" * 5000))
    with open_archive(tgz) as arc:
        assert arc.member("c/a.avi").packed == tgz.stat().st_size  # the stream's size bounds a member's


def test_plain_files_must_be_regular(tmp_path):
    import os

    fifo = tmp_path / "f.avi"
    os.mkfifo(fifo)
    with pytest.raises(ArchiveError, match="not a regular file"):
        read_member(MemberRef(None, str(fifo), 0))  # returns at once: opened non-blocking
    real = tmp_path / "r.avi"
    real.write_bytes(b"y" * 300)
    with pytest.raises(ArchiveError, match="over the limit of 100"):
        read_member(MemberRef(None, str(real), 99), limit=100)

"""flowprep.archive.reader: reading a release (folder, tar, zip, per-class archives): names that
would escape the layout, non-UTF-8 names, symlinks, folders flowprep wrote, ambiguous archives."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from flowprep.layout.record import read_record
from helpers import build_args, clip_bytes, few_lines, invoke_checked, run_flowprep, snapshot_outside


@pytest.fixture()
def non_utf8_release(small_dataset, tmp_path) -> Path:
    rel = tmp_path / "rel"
    shutil.copytree(small_dataset.parent / "rel", rel)
    video = min((rel / "walk").iterdir())
    shutil.copy(os.fsencode(video), os.fsencode(rel / "walk") + b"/bad\xffname.avi")
    return rel


@pytest.mark.parametrize("kind", ["folder", "tar"])
def test_non_utf8_names(kind, non_utf8_release, tmp_path, caplog):
    src = non_utf8_release
    if kind == "tar":
        src = tmp_path / "rel.tar"
        with tarfile.open(src, "w") as tar:
            tar.add(non_utf8_release, arcname="rel")
    # a clip: skipped with the reason, the build goes on
    out = invoke_checked("build", src, "--out", tmp_path / "o1", "--flow", "dis", "-j", "1", "--no-progress", code=0)
    assert "skipping clip" in caplog.text and "not valid UTF-8" in caplog.text
    # a class: one line
    bad_class = os.fsencode(non_utf8_release) + b"/r\xffun"
    shutil.copytree(os.fsencode(non_utf8_release / "run"), bad_class)
    if kind == "tar":
        with tarfile.open(src, "w") as tar:
            tar.add(non_utf8_release, arcname="rel")
    out = invoke_checked("build", src, "--out", tmp_path / "o2", "--flow", "dis", "-j", "1", "--no-progress", code=1)
    assert "not valid UTF-8" in out


def _dots_zip(path: Path, members: list[str]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for k, m in enumerate(members):
            zf.writestr(m, clip_bytes(k))


def test_dots_archive_class_is_refused_and_force_deletes_nothing(walk_release, tmp_path):
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    (datasets / "sibling.txt").write_text("keep me")
    out = datasets / "out"
    _dots_zip(walk_release / "...zip", ["x/...avi", "x/a.avi", "x/b.avi"])
    before = snapshot_outside(tmp_path, out)
    r = run_flowprep(*build_args(walk_release, out))
    assert r.returncode == 1 and few_lines(r) and "'..'" in r.stderr and "class" in r.stderr, r.stderr
    assert not out.exists()  # refused before --out was touched
    _dots_zip(walk_release / "...zip", ["x/c.avi", "x/d.avi"])
    before = snapshot_outside(tmp_path, out)
    r = run_flowprep(*build_args(walk_release, out, "--force"))
    assert r.returncode == 1 and few_lines(r), r.stderr
    assert snapshot_outside(tmp_path, out) == before
    assert not any(p.is_file() for p in (out / "train").glob("*")) if (out / "train").exists() else True
    # The good class alone still builds.
    r = run_flowprep(*build_args(walk_release, out, "--classes", "walk", "--force"))
    assert r.returncode == 0, r.stderr
    assert snapshot_outside(tmp_path, out) == before


@pytest.mark.parametrize("bad", ["..avi", "...avi"])
def test_dot_clip_names_are_skipped_and_listed(walk_release, tmp_path, bad):
    (walk_release / "walk" / bad).write_bytes(clip_bytes(5))
    out = tmp_path / "datasets" / "out"
    out.parent.mkdir()
    before = snapshot_outside(tmp_path, out)
    r = run_flowprep(*build_args(walk_release, out))
    assert r.returncode == 0 and "skipping clip" in r.stderr and few_lines(r), r.stderr
    assert "1 clip(s) left out" in r.stdout
    rec = read_record(out)
    assert len(rec.clips) == 3 and any(bad in e and "skipped" in e for e in rec.excluded)
    for side in ("train", "val"):
        for cls in (out / side).iterdir():
            assert all(sorted(os.listdir(c)) == ["rgb", "u", "v"] for c in cls.iterdir())  # no stray frames
    assert snapshot_outside(tmp_path, out) == before


def test_names_of_the_longest_allowed_length_build(tmp_path):
    src, cls = tmp_path / "src", "c" * 255  # the longest name the validator accepts
    for folder, names in ((cls, ["a", "n" * 251]), ("run", ["a", "b"])):
        (src / folder).mkdir(parents=True)
        for k, name in enumerate(names):
            (src / folder / f"{name}.avi").write_bytes(clip_bytes(k))
    r = run_flowprep(*build_args(src, tmp_path / "out"))
    assert r.returncode == 0, r.stderr  # the temporary clip folder's name stays under 255 bytes
    assert (tmp_path / "out" / "train" / cls).is_dir() or (tmp_path / "out" / "val" / cls).is_dir()


def test_symlinked_class_folder_is_followed_and_loops_end(walk_release, tmp_path):
    elsewhere = tmp_path / "elsewhere" / "run"
    elsewhere.mkdir(parents=True)
    for k in range(2):
        (elsewhere / f"r{k}.avi").write_bytes(clip_bytes(k))
    (walk_release / "run").symlink_to(elsewhere)
    (walk_release / "loop").symlink_to(walk_release)
    (walk_release / "walk" / "everything").symlink_to("/")  # never walked
    r = run_flowprep(*build_args(walk_release, tmp_path / "out"), timeout=120)
    assert r.returncode == 0 and "symlink loop" in r.stderr and few_lines(r), r.stderr
    assert "a symlinked folder inside a class folder" in r.stderr
    assert list(read_record(tmp_path / "out").classes) == ["run", "walk"]


def test_non_utf8_names_folder_and_tar(walk_release, tmp_path):
    bad = os.fsdecode(b"bad\xffname.avi")
    (walk_release / "walk" / bad).write_bytes(clip_bytes(7))
    tar = tmp_path / "rel.tar"
    subprocess.run(["tar", "cf", str(tar), "-C", str(walk_release), "."], check=True)
    for src, out in ((walk_release, tmp_path / "o1"), (tar, tmp_path / "o2")):
        r = run_flowprep(*build_args(src, out))
        assert r.returncode == 0 and "not valid UTF-8" in r.stderr and few_lines(r), r.stderr
        assert len(read_record(out).clips) == 3
    os.rename(walk_release / "walk", walk_release / os.fsdecode(b"cl\xff"))
    r = run_flowprep(*build_args(walk_release, tmp_path / "o3"))
    assert r.returncode == 1 and few_lines(r, 2) and "cannot be a folder name" in r.stderr, r.stderr


def test_a_preview_written_into_the_release_is_not_a_class(walk_release, tmp_path):
    assert run_flowprep(*build_args(walk_release, tmp_path / "ds")).returncode == 0
    r = run_flowprep("preview", tmp_path / "ds", "--out", walk_release / "preview", "--no-progress")
    assert r.returncode == 0 and (walk_release / "preview" / "media" / "c0000.mp4").is_file(), r.stderr
    r = run_flowprep(*build_args(walk_release, tmp_path / "ds2"))
    assert r.returncode == 0 and "a folder flowprep wrote" in r.stderr, r.stderr
    assert list(read_record(tmp_path / "ds2").classes) == ["walk"]  # not also "media"


def test_two_archives_for_one_class_are_ambiguous(walk_release, tmp_path):
    rel = tmp_path / "arch"
    rel.mkdir()
    for name in ("walk.zip", "walk.tar"):
        shutil.make_archive(str(rel / name.split(".")[0]) + "-tmp", name.split(".")[1], walk_release)
        os.rename(next(rel.glob("*-tmp.*")), rel / name)
    r = run_flowprep(*build_args(rel, tmp_path / "out"))
    assert r.returncode == 1 and few_lines(r, 2) and "two per-class archives" in r.stderr, r.stderr

"""flowprep.builder.folder: the output folder's state (lock, ownership manifest, plan, settings):
--force removes only what flowprep wrote, damaged state is one line, nothing outside --out is touched."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile

import pytest

from flowprep.layout.record import read_record
from helpers import build_args, few_lines, run_flowprep, snapshot_outside


def test_tampered_plan_cannot_delete_outside(walk_release, tmp_path):
    datasets = tmp_path / "datasets"
    out = datasets / "out"
    datasets.mkdir()
    (datasets / "sibling.txt").write_text("keep me")
    assert run_flowprep(*build_args(walk_release, out)).returncode == 0
    (out / ".flowprep" / "plan.json").write_text('{"clips": ["val/../..", "train/walk/w0"]}')
    before = snapshot_outside(tmp_path, out)
    r = run_flowprep(*build_args(walk_release, out, "--force"))
    assert r.returncode == 1 and few_lines(r) and "refusing to remove" in r.stderr, r.stderr
    assert snapshot_outside(tmp_path, out) == before


def test_force_refuses_a_users_file(walk_release, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "labels.txt").write_text("my labels")
    r = run_flowprep(*build_args(walk_release, out, "--force"))
    assert r.returncode == 1 and few_lines(r) and "labels.txt" in r.stderr, r.stderr
    assert (out / "labels.txt").read_text() == "my labels"
    assert sorted(os.listdir(out)) == ["labels.txt"]  # nothing left behind


def test_force_keeps_what_flowprep_did_not_write(walk_release, tmp_path):
    out = tmp_path / "out"
    (out / "mmaction2").mkdir(parents=True)
    (out / "mmaction2" / "mine.py").write_text("x = 1")
    (out / "rawframes").mkdir()
    (out / "notes.md").write_text("notes")
    assert run_flowprep(*build_args(walk_release, out, "--force")).returncode == 0  # TAO: writes neither
    r = run_flowprep(*build_args(walk_release, out, "--force", "--seed", "3"))
    assert r.returncode == 0, r.stderr
    assert (out / "mmaction2" / "mine.py").read_text() == "x = 1" and (out / "rawframes").is_dir()
    assert (out / "notes.md").read_text() == "notes"
    # An mmaction2 build would replace them: refused, naming the folder.
    r = run_flowprep(*build_args(walk_release, out, "--force", "--layout", "mmaction2"))
    assert r.returncode == 1 and few_lines(r) and "not written by flowprep" in r.stderr, r.stderr
    assert (out / "mmaction2" / "mine.py").is_file() and (out / "train").is_dir()


def test_force_with_symlinked_train_is_one_line(walk_release, tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    assert run_flowprep(*build_args(walk_release, out)).returncode == 0
    os.rename(out / "train", elsewhere)
    (out / "train").symlink_to(elsewhere)
    r = run_flowprep(*build_args(walk_release, out, "--force", "--seed", "5"))
    assert r.returncode == 1 and few_lines(r) and "symlink" in r.stderr, r.stderr
    assert (elsewhere / "walk").is_dir()
    # checked before anything was removed: the previous build is whole, record and lists included
    assert read_record(out).counts and (out / "train_list.txt").is_file() and (out / "labels.txt").is_file()


def test_concurrent_build_is_told_the_folder_is_held(walk_release, tmp_path):
    out = tmp_path / "out"
    assert run_flowprep(*build_args(walk_release, out)).returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".flowprep" / "lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        r = run_flowprep(*build_args(walk_release, out))
        assert r.returncode == 1 and few_lines(r) and "another build" in r.stderr, r.stderr
    finally:
        holder.kill()
        holder.wait()
    r = run_flowprep(*build_args(walk_release, out))  # the holder is gone: its lock is stale
    assert r.returncode == 0, r.stderr
    assert not (out / ".flowprep" / "lock").exists()


@pytest.mark.parametrize(
    "text", ["garbage", '{"pid": 99999999999999999999, "host": "H"}', '{"pid": -1, "host": "H"}', "[1]"]
)
def test_a_damaged_lock_is_one_line(walk_release, tmp_path, text):
    out = tmp_path / "out"
    assert run_flowprep(*build_args(walk_release, out)).returncode == 0
    (out / ".flowprep" / "lock").write_text(text.replace("H", socket.gethostname()))
    r = run_flowprep(*build_args(walk_release, out))
    assert r.returncode == 1 and few_lines(r, 1) and "names no build" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "name,text",
    [
        ("owned.json", "[]"),
        ("owned.json", "null"),
        ("config.json", '{"settings": 5}'),
        ("plan.json", '{"clips": [[1]]}'),
    ],
)
def test_a_damaged_state_file_is_one_line(walk_release, tmp_path, name, text):
    out = tmp_path / "out"
    assert run_flowprep(*build_args(walk_release, out)).returncode == 0
    (out / ".flowprep" / name).write_text(text)
    r = run_flowprep(*build_args(walk_release, out))
    assert r.returncode == 1 and few_lines(r, 1) and "cannot read" in r.stderr, r.stderr
    assert f"{out / '.flowprep' / name}: " in r.stderr and "damaged or edited by hand" in r.stderr, r.stderr
    assert (out / "train" / "walk").is_dir()
    r = run_flowprep(*build_args(walk_release, out, "--force", "--seed", "7"))  # plan.json: pruned, then rebuilt
    assert r.returncode == (0 if name == "plan.json" else 1) and few_lines(r, 2), r.stderr


def test_out_is_not_the_source_and_the_source_not_inside_out(walk_release, tmp_path):
    before = snapshot_outside(tmp_path, tmp_path / "none")
    r = run_flowprep(*build_args(walk_release, walk_release, "--force"))
    assert r.returncode == 1 and few_lines(r, 1) and "is the source folder" in r.stderr, r.stderr
    assert snapshot_outside(tmp_path, tmp_path / "none") == before
    out = tmp_path / "out"
    shutil.copytree(walk_release, out / "train" / "rel")
    before = snapshot_outside(tmp_path, tmp_path / "none")
    r = run_flowprep(*build_args(out / "train" / "rel", out, "--force"))
    assert r.returncode == 1 and few_lines(r, 1) and "lies inside" in r.stderr, r.stderr
    assert snapshot_outside(tmp_path, tmp_path / "none") == before


@pytest.mark.parametrize("own", [".flowprep", ".flowprep-tmp"])
def test_a_symlinked_state_or_tmp_folder_is_refused(walk_release, tmp_path, own):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    assert run_flowprep(*build_args(walk_release, out)).returncode == 0
    shutil.rmtree(out / "train" / "walk")
    if (out / own).exists():
        os.rename(out / own, elsewhere)
    else:
        elsewhere.mkdir()
    (out / own).symlink_to(elsewhere)
    before = snapshot_outside(tmp_path, out)
    r = run_flowprep(*build_args(walk_release, out))
    assert r.returncode == 1 and few_lines(r, 1) and "is a symlink" in r.stderr, r.stderr
    assert snapshot_outside(tmp_path, out) == before


@pytest.mark.parametrize("target", ["missing/x", "self"])
def test_a_dangling_or_looping_out_symlink_is_one_line(walk_release, tmp_path, target):
    out = tmp_path / "out"
    out.symlink_to(tmp_path / target if target != "self" else out)
    r = run_flowprep(*build_args(walk_release, out))
    assert r.returncode == 1 and few_lines(r, 1) and "symlink to nothing" in r.stderr, r.stderr
    assert not (tmp_path / "missing").exists()


def test_a_build_refused_while_planning_leaves_nothing(walk_release, tmp_path):
    splits, out = tmp_path / "splits.zip", tmp_path / "out"
    with zipfile.ZipFile(splits, "w") as z:
        z.writestr("run_test_split1.txt", "w0.avi 1\n")  # no entry for class walk
    r = run_flowprep(*build_args(walk_release, out, "--splits", splits, "--official-split", "1"))
    assert r.returncode == 1 and few_lines(r, 1) and "no entry for class 'walk'" in r.stderr, r.stderr
    assert not out.exists()
    with zipfile.ZipFile(splits, "w") as z:  # fixed: another size, so another source identity
        z.writestr("walk_test_split1.txt", "w0.avi 1\nw1.avi 2\nw2.avi 1\n")
    r = run_flowprep(*build_args(walk_release, out, "--splits", splits, "--official-split", "1"))
    assert r.returncode == 0, r.stderr  # not "holds a build made with other settings"


def test_force_on_a_folder_built_before_the_manifest(walk_release, tmp_path):
    out = tmp_path / "out"
    assert run_flowprep(*build_args(walk_release, out)).returncode == 0
    (out / ".flowprep" / "owned.json").unlink()  # as a build by an older flowprep left it
    (out / "rawframes").mkdir()  # the user's, beside a TAO build
    r = run_flowprep(*build_args(walk_release, out, "--force", "--seed", "9"))
    assert r.returncode == 0, r.stderr
    assert (out / "rawframes").is_dir() and json.loads((out / ".flowprep" / "owned.json").read_text())["entries"]
    # A lock whose pid now belongs to another process (reused) is stale too.
    (out / ".flowprep" / "lock").write_text(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "start": "1"})
    )
    assert run_flowprep(*build_args(walk_release, out, "--seed", "9")).returncode == 0


def test_the_build_state_is_compared_through_the_gate_not_a_planted_link(tmp_path):
    # before: build.json was read through a link planted at its name; a link to a copy of the
    # state made the build skip its write and keep the state in someone else's file
    from flowprep.builder.folder_notes import BuildNotes
    from flowprep.fsio.writing import dump_json

    state = {"plan": "abc", "version": 1}
    outside = tmp_path / "outside.json"
    outside.write_text(dump_json(state))
    notes = BuildNotes()
    notes.build_state = tmp_path / "build.json"
    notes.build_state.symlink_to(outside)
    notes.save_state(state)
    assert not notes.build_state.is_symlink() and notes.build_state.read_text() == dump_json(state)
    notes.save_state(state)  # unchanged: not rewritten
    assert outside.read_text() == dump_json(state)

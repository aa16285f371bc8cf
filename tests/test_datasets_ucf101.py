"""UCF101: names, classInd.txt, the official splits exactly, `build-ucf101` and `stats` on a UCF101-shaped release."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from flowprep.builder.config import BuildConfig
from flowprep.builder.folder import BuildFolder
from flowprep.builder.plan import make_plan
from flowprep.datasets.hmdb51 import group_key
from flowprep.datasets.ucf101 import parse_class_ind, parse_ucf_name
from flowprep.errors import ConfigError
from flowprep.layout.record import read_record
from flowprep.preview.page import _kv_rows
from helpers import UCF_CLASSES, run_cli, ucf_clip

#: tiny and fast: DIS on 32x40 frames, one process
FAST = ("--flow", "dis", "-j", "1", "--no-progress")


def _list(ucf_release, name: str) -> set[str]:
    """The ``Class/clip.avi`` entries of one of the fixture's list files."""
    text = (ucf_release["lists"] / name).read_bytes().decode()
    assert "\r\n" in text  # CRLF, as UCF101's
    return {line.split()[0] for line in text.splitlines() if line.strip()}


def _built(record, side: str) -> set[str]:
    return {f"{c.cls}/{c.source}" for c in record.clips if c.side == side and c.ok}


def test_names_and_groups():
    p = parse_ucf_name("UCF-101/HandstandPushups/v_HandStandPushups_g08_c01.avi")
    assert (p.action, p.group, p.clip, p.group_key) == ("HandStandPushups", 8, 1, "g08")
    assert parse_ucf_name("Bob_walk_f_cm_np1_fr_med_0.avi") is None
    assert group_key("v_ApplyEyeMakeup_g08_c01.avi", "ApplyEyeMakeup") == "g08"  # as before: the key orders the split


def test_class_ind():
    assert parse_class_ind("1 ApplyEyeMakeup\r\n2 JumpingJack\r\n\r\n3 JumpRope\r\n") == [
        "ApplyEyeMakeup",
        "JumpingJack",
        "JumpRope",
    ]
    for text, match in [
        ("1 A\n1 B\n", "id 1 is given twice"),
        ("1 A\n2 A\n", "class A is given twice"),
        ("1 A\n3 B\n", "ids must be 1 to 2"),
        ("A 1\n", "expected '<id> <class>'"),
        ("", "no class"),
    ]:
        with pytest.raises(ConfigError, match=match):
            parse_class_ind(text)


def test_build_ucf101_official_split_1_is_the_lists_exactly(ucf_release, tmp_path):
    out = tmp_path / "ds"
    r = run_cli(
        "build-ucf101", "--archive", ucf_release["rar"], "--splits", ucf_release["zip"], "--official-split", "1",
        "--out", out, *FAST,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "split: as given, train = trainlist01.txt, val = testlist01.txt" in r.output
    assert "label order: classInd.txt" in r.output
    rec = read_record(out)
    assert _built(rec, "train") == _list(ucf_release, "trainlist01.txt")
    assert _built(rec, "val") == _list(ucf_release, "testlist01.txt")
    # classInd.txt's order (JumpingJack before JumpRope), not sorted()
    assert (out / "labels.txt").read_text().split() == list(UCF_CLASSES) == list(rec.classes)
    assert sorted(UCF_CLASSES) != list(UCF_CLASSES)
    assert json.loads((out / "label_map.json").read_text())["JumpRope"] == 3  # classInd id 4, 0-based
    split = rec.split
    assert (split.method, split.official_split, split.convention) == ("official", 1, "ucf101")
    assert split.lists == {"train": "trainlist01.txt", "val": "testlist01.txt"}
    assert split.classes_from == "classInd.txt" and "missing" not in split.to_dict()
    assert rec.source.kind == "ucf101" and not rec.excluded
    # the HandStandPushups file names (case differs from their folder) are matched as the lists write them
    assert f"HandstandPushups/{ucf_clip('HandstandPushups', 2, 1)}" in _built(rec, "train")
    v = run_cli("verify", out)
    assert v.exit_code == 0, v.output
    split_row = dict(_kv_rows(rec))["split"]  # the preview page says which split
    assert split_row == "official 1: train = trainlist01.txt, val = testlist01.txt; classes from classInd.txt"
    s = run_cli("stats", out / "val", "--json")
    assert s.exit_code == 0, s.output
    stats = json.loads(s.output)
    assert stats["convention"] == "ucf101"
    assert stats["classes"]["JumpRope"]["groups"] == 2  # split 1 tests groups 1 and 4


def test_official_splits_2_and_3_and_the_generic_build(ucf_release, tmp_path):
    """`build SOURCE --splits ucf.zip --official-split N` (what failed before) gives the same plan."""
    for k in (2, 3):
        for source_kind in ("folder", "ucf101"):
            cfg = BuildConfig(
                source=ucf_release["rar"] if source_kind == "ucf101" else ucf_release["folder"],
                out=tmp_path / f"o{k}{source_kind}",
                splits_source=ucf_release["lists"] if source_kind == "folder" else ucf_release["zip"],
                official_split=k,
                source_kind=source_kind,
            )
            plan = make_plan(cfg, BuildFolder(cfg.out))
            got = {side: {f"{j.cls}/{j.name}" for j in plan.jobs if j.side == side} for side in ("train", "val")}
            assert got["train"] == _list(ucf_release, f"trainlist0{k}.txt")
            assert got["val"] == _list(ucf_release, f"testlist0{k}.txt")
            assert plan.classes == list(UCF_CLASSES)


def test_classes_subset_keeps_classind_order_and_default_is_the_group_split(ucf_release, tmp_path, caplog):
    cfg = BuildConfig(
        source=ucf_release["rar"],
        out=tmp_path / "o",
        splits_source=ucf_release["zip"],
        classes=["JumpRope", "ApplyEyeMakeup"],
        val_ratio=0.25,
        source_kind="ucf101",
    )
    plan = make_plan(cfg, BuildFolder(cfg.out))
    assert plan.classes == ["ApplyEyeMakeup", "JumpRope"]
    assert "classInd.txt's label order" in caplog.text
    assert plan.split["method"] == "group" and plan.split["classes_from"] == "classInd.txt"
    assert {j.label for j in plan.jobs if j.cls == "JumpRope"} == {1}
    for cls in plan.classes:  # every group on one side, 25 % of 8 clips = 2 = one group in val
        sides = {}
        for j in plan.jobs:
            if j.cls == cls:
                sides.setdefault(parse_ucf_name(j.name).group, set()).add(j.side)
        assert all(len(s) == 1 for s in sides.values())
        assert sum(j.side == "val" for j in plan.jobs if j.cls == cls) == 2


def _edited_zip(ucf_release, tmp_path: Path, edit) -> Path:
    lists = tmp_path / "ucfTrainTestlist"
    shutil.copytree(ucf_release["lists"], lists)
    edit(lists)
    z = tmp_path / "splits.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(lists.iterdir()):
            zf.write(p, f"ucfTrainTestlist/{p.name}")
    return z


def test_list_entries_missing_from_the_release_stop_the_build_unless_allowed(ucf_release, tmp_path):
    release = tmp_path / "UCF-101"
    shutil.copytree(ucf_release["folder"], release)
    gone = [f"JumpRope/{ucf_clip('JumpRope', 1, 2)}", f"ApplyEyeMakeup/{ucf_clip('ApplyEyeMakeup', 2, 1)}"]
    for g in gone:
        (release / g).unlink()
    args = ("build-ucf101", "--archive", release, "--splits", ucf_release["zip"], "--official-split", "1")
    r = run_cli(*args, "--out", tmp_path / "a", "--modality", "rgb", *FAST)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "2 entries of trainlist01.txt and testlist01.txt name clips the release does not have" in r.output
    assert "(1 on the train list, 1 on the val list)" in r.output and gone[0] in r.output
    assert "--allow-missing-clips" in r.output
    assert not (tmp_path / "a" / "flowprep.json").exists()
    r = run_cli(*args, "--out", tmp_path / "b", "--modality", "rgb", "--allow-missing-clips", *FAST)
    assert r.exit_code == 0, r.output
    rec = read_record(tmp_path / "b")
    assert rec.split.to_dict()["missing"] == {"train": [gone[1]], "val": [gone[0]]}
    assert _built(rec, "val") == _list(ucf_release, "testlist01.txt") - {gone[0]}


def test_release_clips_missing_from_the_lists_are_left_out_and_recorded(ucf_release, tmp_path, caplog):
    extra = ucf_clip("JumpRope", 1, 1)

    def drop(lists: Path) -> None:
        p = lists / "testlist01.txt"
        p.write_bytes(b"".join(line for line in p.read_bytes().splitlines(True) if extra.encode() not in line))

    z = _edited_zip(ucf_release, tmp_path, drop)
    cfg = BuildConfig(source=ucf_release["rar"], out=tmp_path / "o", splits_source=z, official_split=1)
    plan = make_plan(cfg, BuildFolder(cfg.out))
    assert plan.excluded == [f"JumpRope/{extra} (not in the split lists)"]
    assert "1 clip(s) of the release are on no list" in caplog.text and extra in caplog.text
    assert f"JumpRope/{extra}" not in {f"{j.cls}/{j.name}" for j in plan.jobs}


@pytest.mark.parametrize(
    "edit,message",
    [
        (
            lambda d: (d / "trainlist01.txt").write_bytes(
                (d / "trainlist01.txt").read_bytes().replace(b".avi 4\r\n", b".avi 3\r\n", 1)
            ),
            "1 label(s) of trainlist01.txt disagree with classInd.txt",
        ),
        (lambda d: (d / "testlist01.txt").unlink(), "no testlist01.txt among UCF101's list files"),
        (
            lambda d: (d / "testlist01.txt").write_bytes(
                (d / "testlist01.txt").read_bytes() + (d / "trainlist01.txt").read_bytes().splitlines(True)[0]
            ),
            "1 clip(s) are on both the train and the val list",
        ),
        (lambda d: (d / "classInd.txt").write_text("1 A\n1 B\n"), "classInd.txt:2: id 1 is given twice"),
    ],
    ids=["wrong-label", "no-testlist", "both-sides", "bad-classind"],
)
def test_bad_lists_are_one_line_errors(ucf_release, tmp_path, edit, message):
    z = _edited_zip(ucf_release, tmp_path, edit)
    out = tmp_path / "out"
    r = run_cli("build-ucf101", "--archive", ucf_release["rar"], "--splits", z, "--official-split", "1", "--out", out)
    assert r.exit_code == 1, r.output
    assert message in r.output and "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.startswith("flowprep: error")]) == 1


def test_build_ucf101_usage_and_missing_classind(ucf_release, hmdb_split_zip, tmp_path):
    r = run_cli("build-ucf101", "--archive", ucf_release["rar"], "--out", tmp_path / "o")
    assert r.exit_code == 2 and "--splits" in r.output
    r = run_cli("build-ucf101", "--archive", ucf_release["rar"], "--splits", hmdb_split_zip, "--out", tmp_path / "o")
    assert r.exit_code == 1 and "holds no classInd.txt" in r.output and "Traceback" not in r.output
    r = run_cli(
        "build-ucf101", "--archive", ucf_release["rar"], "--splits", tmp_path / "nope.zip", "--out", tmp_path / "o"
    )
    assert r.exit_code == 1 and "no such file or folder" in r.output
    r = run_cli(
        "build-ucf101", "--archive", ucf_release["rar"], "--splits", ucf_release["zip"], "--classes", "Nope",
        "--out", tmp_path / "o",
    )  # fmt: skip
    assert r.exit_code == 1 and "unknown class(es) Nope" in r.output
    assert not (tmp_path / "o").exists()


@pytest.fixture()
def hmdb_split_zip(tmp_path) -> Path:
    z = tmp_path / "hmdb_splits.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("testTrainMulti_7030_splits/walk_test_split1.txt", "a.avi 1\n")
    return z


def test_stats_of_a_ucf101_release(ucf_release):
    r = run_cli("stats", ucf_release["rar"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[1].split() == ["class", "clips", "groups", "min", "mean", "max"]
    assert lines[-2].split() == ["total", "32", "16", "2", "2.0", "2"]
    assert "a group is the clips cut from one long video" in lines[-1]


@pytest.mark.slow
def test_train_and_evaluate_read_a_ucf101_dataset(ucf_release, tmp_path, one_torch_thread):
    """Downstream is unchanged: train and evaluate take a build-ucf101 dataset as they take HMDB5."""
    pytest.importorskip("torch")
    data = tmp_path / "ucf"
    r = run_cli(
        "build-ucf101", "--archive", ucf_release["rar"], "--splits", ucf_release["zip"], "--official-split", "2",
        "--out", data, *FAST,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    runs = tmp_path / "run"
    r = run_cli(
        "train", data, "--modality", "of", "--arch", "2d", "--frames", "4", "--input-size", "32", "--epochs", "1",
        "--batch-size", "4", "--workers", "0", "--out", runs, "--no-progress",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    ev = run_cli("evaluate", runs / "best.pt", data / "val", "--mode", "center", "--out", tmp_path / "eval")
    assert ev.exit_code == 0, ev.output
    report = json.loads(next((tmp_path / "eval").glob("*.json")).read_text())
    assert report["classes"] == list(UCF_CLASSES)

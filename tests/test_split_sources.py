"""Split sources: list files and releases already split into train/ and val/ folders keep their split
exactly; mismatches between lists and release are reported; which source a build picks."""

from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path

import pytest

from flowprep.archive.bounded import MemberRef
from flowprep.archive.scan import VideoEntry
from flowprep.builder.config import BuildConfig
from flowprep.builder.finalize import config_to_state, load_build_state
from flowprep.builder.folder import BuildFolder
from flowprep.builder.plan import make_plan
from flowprep.datasets.base import SplitRequest
from flowprep.datasets.lists import ListEntry, match_entries, parse_list
from flowprep.datasets.sources import split_source
from flowprep.errors import ConfigError
from flowprep.layout.record import read_record
from helpers import UCF_CLASSES, run_cli, ucf_clip

FAST = ("--flow", "dis", "-j", "1", "--no-progress")


def test_parse_list_formats():
    text = "# a comment\r\nwalk/a.avi 3\r\n\r\nrun/my clip.avi 1\r\nrun/b.avi\r\n"
    got = [(e.side, e.path, e.label, e.where) for e in parse_list(text, "train", "t.txt")]
    assert got == [
        ("train", "walk/a.avi", 3, "t.txt:2"),
        ("train", "run/my clip.avi", 1, "t.txt:4"),  # spaces in a path; the label is the last token
        ("train", "run/b.avi", None, "t.txt:5"),
    ]
    csv_text = 'path,label\n"walk/a, b.avi",0\nrun\\b.avi , 2\n'
    got = [(e.path, e.label) for e in parse_list(csv_text, "val", "v.csv")]
    assert got == [("walk/a, b.avi", 0), ("run/b.avi", 2)]  # header skipped, quotes, backslashes
    assert [e.path for e in parse_list("video\nwalk/a.avi\n", "val", "v.txt")] == ["walk/a.avi"]


@pytest.mark.parametrize(
    "text,name,match",
    [
        ("walk/a.avi,x\n", "l.csv", r"l.csv:1: the label must be a whole number >= 0, got 'x'"),
        ("walk/a.avi,1,2\n", "l.csv", r"l.csv:1: expected 'path' or 'path,label', got 3 fields"),
        ("walk/a.avi 1\n./ 2\n", "l.txt", r"l.txt:2: no path"),
    ],
)
def test_parse_list_errors_name_file_and_line(text, name, match):
    with pytest.raises(ConfigError, match=match):
        parse_list(text, "train", name)


def _clips(spec: dict[str, list[str]]) -> dict[str, list[VideoEntry]]:
    return {c: [VideoEntry(c, n, MemberRef(None, f"/r/{c}/{n}", 1)) for n in names] for c, names in spec.items()}


def _match(entries, clips, allow=False, given=False, release=None):
    return match_entries(entries, clips, lambda: set(release or clips), allow, given, "t and v")


def test_match_by_class_folder_and_name_stem_or_bare_name(caplog):
    clips = _clips({"walk": ["a.avi", "b.avi", "c.avi"], "run": ["d.avi"]})
    entries = [
        ListEntry("train", "UCF-101/walk/a.avi", 0, "t:1"),  # a wrapper folder before the class
        ListEntry("train", "walk/b", 0, "t:2"),  # no extension
        ListEntry("val", "d.avi", 1, "v:1"),  # a bare file name
        ListEntry("val", "/abs/videos/c.avi", None, "v:2"),  # no class folder: looked up by name
        ListEntry("train", "walk/a.avi", 0, "t:3"),  # twice on one list: warned
        ListEntry("train", "jump/x.avi", 5, "t:4"),  # a class of the release that is not selected
    ]
    m = _match(entries, clips, release={"walk", "run", "jump"})
    assert m.sides == {"walk": {"a.avi": "train", "b.avi": "train", "c.avi": "val"}, "run": {"d.avi": "val"}}
    assert m.labels == {"walk": 0, "run": 1}
    assert m.missing == {"train": [], "val": []}
    assert "1 clip(s) are listed twice on one list" in caplog.text


def test_match_errors_and_allowed_missing(caplog):
    clips = _clips({"walk": ["a.avi", "b.avi"], "run": ["a.avi"]})
    many = [ListEntry("train", f"walk/gone{i}.avi", None, f"t:{i}") for i in range(12)]
    with pytest.raises(ConfigError) as exc:
        _match(many + [ListEntry("val", "walk/b.avi", None, "v:1")], clips)
    text = str(exc.value)
    assert (
        "12 entries of t and v name clips the release does not have (12 on the train list, 0 on the val list)" in text
    )
    assert "walk/gone0.avi" in text and "(+2 more)" in text  # the first 10 and the total
    m = _match(many, clips, allow=True)
    assert len(m.missing["train"]) == 12 and "left out (--allow-missing-clips)" in caplog.text
    with pytest.raises(
        ConfigError, match="1 bare file name.* match clips of several classes: t:1 a.avi \\(run or walk\\)"
    ):
        _match([ListEntry("train", "a.avi", None, "t:1")], clips)
    with pytest.raises(
        ConfigError, match=r"1 clip\(s\) are on both the train and the val list: walk/b.avi \(t:1, v:1\)"
    ):
        _match([ListEntry("train", "walk/b.avi", None, "t:1"), ListEntry("val", "walk/b", None, "v:1")], clips)
    with pytest.raises(ConfigError, match=r"1 class\(es\) have two labels"):
        _match([ListEntry("train", "walk/a.avi", 0, "t:1"), ListEntry("val", "walk/b.avi", 1, "v:1")], clips)
    with pytest.raises(ConfigError, match=r"1 label\(s\) are given to several classes in the lists: 0 \(run, walk\)"):
        _match([ListEntry("train", "walk/a.avi", 0, "t:1"), ListEntry("val", "run/a.avi", 0, "v:1")], clips)


# --- a release already split into train/ and val/ folders (Kinetics-style) ---------------------------


@pytest.fixture(scope="module")
def presplit(ucf_release, tmp_path_factory) -> Path:
    """``kinetics/{train,val}/<class>/*.avi`` (groups 1-3 train, 4 val) and a flat ``kinetics/test/``."""
    root = tmp_path_factory.mktemp("presplit") / "kinetics"
    for cls in UCF_CLASSES:
        for g in range(1, 5):
            for c in (1, 2):
                side = "val" if g == 4 else "train"
                (root / side / cls).mkdir(parents=True, exist_ok=True)
                shutil.copy(ucf_release["folder"] / cls / ucf_clip(cls, g, c), root / side / cls)
    (root / "test").mkdir()
    shutil.copy(ucf_release["folder"] / "JumpRope" / ucf_clip("JumpRope", 1, 1), root / "test" / "t1.avi")
    return root


def _sides(plan) -> dict[str, set[str]]:
    return {s: {f"{j.cls}/{j.name}" for j in plan.jobs if j.side == s} for s in ("train", "val")}


def _on_disk(root: Path, side: str) -> set[str]:
    return {f"{p.parent.name}/{p.name}" for p in (root / side).glob("*/*.avi")}


def test_presplit_folder_release_keeps_its_split_exactly(presplit, tmp_path, caplog):
    out = tmp_path / "ds"
    r = run_cli("build", presplit, "--out", out, "--modality", "rgb", *FAST)
    assert r.exit_code == 0, r.output
    assert "split: as given, train = train, val = val" in r.output
    rec = read_record(out)
    for side in ("train", "val"):
        assert {f"{c.cls}/{c.source}" for c in rec.clips if c.side == side} == _on_disk(presplit, side)
    assert list(rec.classes) == sorted(UCF_CLASSES)  # the flat test/ folder reads as a class "test": left out
    assert rec.split.method == "folders" and rec.split.val_ratio is None
    assert "have no clip under train/ or val/; left out: test" in caplog.text


def test_presplit_archive_with_a_wrapper_and_clips_outside_the_sides(presplit, tmp_path, caplog):
    z = tmp_path / "k.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(presplit.rglob("*.avi")):
            zf.write(p, f"k400/{p.relative_to(presplit).as_posix()}")
        # a class folder at the top and one under test/: not on a side
        zf.write(presplit / "train" / "JumpRope" / ucf_clip("JumpRope", 1, 1), "k400/test/JumpRope/x.avi")
    cfg = BuildConfig(source=z, out=tmp_path / "o", classes=["JumpRope", "ApplyEyeMakeup"])
    plan = make_plan(cfg, BuildFolder(cfg.out))
    assert plan.classes == ["JumpRope", "ApplyEyeMakeup"]  # no order of its own: --classes' order
    want = {s: {e for e in _on_disk(presplit, s) if e.split("/")[0] in plan.classes} for s in ("train", "val")}
    assert _sides(plan) == want
    assert plan.excluded == ["JumpRope/x.avi (not under train/ or val/)"]
    assert "1 clip(s) are not under train/ or val/" in caplog.text


def test_a_release_with_only_a_train_folder_is_split_as_usual(ucf_release, tmp_path):
    root = tmp_path / "rel" / "train"
    shutil.copytree(ucf_release["folder"], root)
    (tmp_path / "rel" / "README.txt").write_text("not a class")
    cfg = BuildConfig(source=tmp_path / "rel", out=tmp_path / "o")
    plan = make_plan(cfg, BuildFolder(cfg.out))
    assert plan.split["method"] == "group"


# --- list files ---------------------------------------------------------------------------------------


def _write_lists(ucf_release, tmp_path: Path, val_groups=(3,)) -> tuple[Path, Path, dict[str, set[str]]]:
    """A CSV train list labelled in a custom class order, and a whitespace val list without labels."""
    order = ["JumpRope", "ApplyEyeMakeup", "HandstandPushups", "JumpingJack"]
    rows, val, want = ["path,label"], [], {"train": set(), "val": set()}
    for cls in UCF_CLASSES:
        for g in (1, 2, 3):  # group 4 is on no list
            for c in (1, 2):
                path = f"{cls}/{ucf_clip(cls, g, c)}"
                if g in val_groups:
                    val.append(f"./UCF-101/{path}")
                    want["val"].add(path)
                else:
                    rows.append(f"{path},{order.index(cls) + 10}")
                    want["train"].add(path)
    t, v = tmp_path / "train.csv", tmp_path / "val list.txt"
    t.write_text("\r\n".join(rows) + "\r\n")
    v.write_text("\n".join(val) + "\n")
    return t, v, want


def test_list_files_keep_their_split_exactly_and_labels_fix_the_order(ucf_release, tmp_path, caplog):
    t, v, want = _write_lists(ucf_release, tmp_path)
    out = tmp_path / "ds"
    r = run_cli(
        "build", ucf_release["rar"], "--train-list", t, "--val-list", v, "--out", out, "--modality", "rgb", *FAST
    )
    assert r.exit_code == 0, r.output
    rec = read_record(out)
    for side in ("train", "val"):
        assert {f"{c.cls}/{c.source}" for c in rec.clips if c.side == side} == want[side]
    assert list(rec.classes) == ["JumpRope", "ApplyEyeMakeup", "HandstandPushups", "JumpingJack"]  # by label 10..13
    assert rec.split.method == "lists"
    assert rec.split.lists == {"train": "train.csv", "val": "val list.txt"}
    assert [f.name for f in rec.source.files] == ["UCF101.rar", "train.csv", "val list.txt"]
    # group 4 is on no list: left out, counted, recorded
    assert len(rec.excluded) == 8 and all(e.endswith("(not in the split lists)") for e in rec.excluded)
    assert "8 clip(s) of the release are on no list" in caplog.text
    assert "(8 clip(s) left out: 8 not in the split lists)" in r.output


def test_list_file_mismatches_and_usage_errors_exit_cleanly(ucf_release, tmp_path):
    t, v, _ = _write_lists(ucf_release, tmp_path)
    v.write_text(v.read_text() + "JumpRope/v_JumpRope_g09_c01.avi\n")
    base = ("build", ucf_release["folder"], "--out", tmp_path / "o")
    r = run_cli(*base, "--train-list", t, "--val-list", v)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "1 entry of train.csv and val list.txt name clips the release does not have" in r.output
    assert "JumpRope/v_JumpRope_g09_c01.avi" in r.output
    assert not (tmp_path / "o").exists()  # refused before anything was written
    for args, message in [
        (("--train-list", t), "give both --train-list and --val-list"),
        (("--train-list", t, "--val-list", v, "--official-split", "1", "--splits", t), "not both"),
    ]:
        r = run_cli(*base, *args)
        assert r.exit_code == 2 and message in r.output, r.output
    r = run_cli(*base, "--train-list", t, "--val-list", tmp_path / "missing.txt")
    assert r.exit_code == 1 and "cannot read list file" in r.output and "Traceback" not in r.output
    assert "missing.txt: No such file" in r.output


def test_lists_survive_the_build_state(ucf_release, tmp_path):
    """`flowprep finalize` re-makes the plan from the state: the lists (and --allow-missing-clips) are in it."""
    t, v, _ = _write_lists(ucf_release, tmp_path)
    cfg = BuildConfig(source=ucf_release["rar"], out=tmp_path / "o", train_list=t, val_list=v, allow_missing_clips=True)
    (tmp_path / "o" / ".flowprep").mkdir(parents=True)
    folder = BuildFolder(cfg.out)
    folder.save_state(config_to_state(cfg, None))
    again, _ = load_build_state(folder)
    assert (again.train_list, again.val_list, again.allow_missing_clips) == (t.resolve(), v.resolve(), True)
    assert again.output_settings() == cfg.output_settings()
    moved, _ = load_build_state(folder, lists=(tmp_path / "a.txt", tmp_path / "b.txt"))
    assert moved.train_list == tmp_path / "a.txt"
    # a build without lists stores no list keys: states of earlier versions read the same
    plain = config_to_state(BuildConfig(source=ucf_release["rar"], out=tmp_path / "p"), None)["config"]
    assert "train_list" not in plain and "allow_missing_clips" not in plain


def test_which_source_a_build_uses(ucf_release, tiny_release, presplit):
    def kind(**kw) -> str:
        release = kw.pop("release", ucf_release["rar"])
        return type(split_source(SplitRequest(release=release, **kw), {})).__name__

    assert kind(train_list=Path("t"), val_list=Path("v")) == "ListFiles"
    assert kind(splits=ucf_release["zip"], official_split=1) == "UCF101Official"
    assert kind(splits=tiny_release / "testTrainMulti_7030_splits", official_split=1) == "HMDB51Official"
    assert kind(splits=tiny_release / "testTrainMulti_7030_splits") == "RandomSplit"
    assert kind() == "RandomSplit"
    clips = {
        "walk": [
            VideoEntry("walk", "a.avi", MemberRef(None, str(presplit / "train" / "walk" / "a.avi"), 1)),
            VideoEntry("walk", "b.avi", MemberRef(None, str(presplit / "val" / "walk" / "b.avi"), 1)),
        ]
    }
    assert type(split_source(SplitRequest(release=presplit), clips)).__name__ == "FolderSplit"


def test_logging_is_quiet_for_the_default_split(tiny_release, tmp_path, caplog):
    """The seeded split of an HMDB51 folder logs nothing new (its record is byte-identical: test_builder_identity)."""
    caplog.set_level(logging.WARNING)
    cfg = BuildConfig(source=tiny_release, out=tmp_path / "o", split_by="clip", seed=3)
    plan = make_plan(cfg, BuildFolder(cfg.out))
    assert plan.split == {
        "method": "clip",
        "official_split": None,
        "val_ratio": 0.1,
        "seed": 3,
        "split_by": "clip",
        "counts": plan.split["counts"],
    }
    assert caplog.text == ""


def test_stem_is_pathlibs_for_every_kind_of_name():
    """stem() skips pathlib for bare names; the result must stay what it was (it names clip folders)."""
    from pathlib import PurePosixPath

    from flowprep.datasets.base import stem

    def old(name: str) -> str:
        base = PurePosixPath(name.replace("\\", "/")).name
        return base.rsplit(".", 1)[0] if "." in base else base

    names = ["", ".", "..", "...", "a", "a.avi", "A.B.C_walk_0.avi", ".hidden", "x.", "a/b.avi", "a\\b.c", "a/.",
             "a/..", "//x.avi", "a/b/", "v_X_g01_c01.avi", "Bob's_#1 (1).avi", "\udcff.avi"]  # fmt: skip
    assert [stem(n) for n in names] == [old(n) for n in names]


def test_with_classes_entries_of_other_classes_are_ignored(caplog):
    caplog.set_level(logging.INFO)
    clips = _clips({"walk": ["a.avi"]})
    entries = [
        ListEntry("train", "walk/a.avi", None, "t:1"),
        ListEntry("train", "run/b.avi", None, "t:2"),  # a class of the release, not selected
        ListEntry("val", "videos/c.avi", None, "v:1"),  # looked up by name: maybe another class's
    ]
    m = _match(entries, clips, given=True, release={"walk", "run"})
    assert m.sides == {"walk": {"a.avi": "train"}} and m.missing == {"train": [], "val": []}
    assert "2 entr(ies) of t and v belong to classes not selected" in caplog.text
    with pytest.raises(ConfigError, match="1 entry of t and v name clips the release does not have"):
        _match(entries, clips, given=False, release={"walk", "run"})  # all classes: c.avi is missing

"""The build stage end to end: nested RAR -> verified HMDB5 dataset, resume, failures, options."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from flowprep.builder.api import HMDB5_LABEL_ORDER, build
from flowprep.builder.config import BuildConfig
from flowprep.layout.record import read_record
from helpers import run_cli, tree_bytes


@pytest.fixture(scope="module")
def hmdb_rars(tiny_release, tmp_path_factory):
    from flowprep.archive.rar4 import make_hmdb51_rars

    return make_hmdb51_rars(tiny_release, tmp_path_factory.mktemp("rars"))


def test_build_hmdb5_from_nested_rar_is_verified(hmdb_rars, tmp_path):
    outer, splits = hmdb_rars
    out = tmp_path / "hmdb5"
    r = run_cli(
        "build-hmdb5", "--archive", outer, "--splits", splits, "--out", out, "--flow", "dis", "-j", "2", "--no-progress"
    )
    assert r.exit_code == 0, r.output
    assert "walk" in r.output and "total" in r.output  # per-class counts printed
    rec = read_record(out)
    assert list(rec.classes) == HMDB5_LABEL_ORDER
    assert rec.source.kind == "hmdb51"
    assert rec.flow.name == "dis" and rec.encoding.mode == "fixed"
    assert all(c.ok and c.frames == 8 and c.flow_frames == 7 for c in rec.clips)
    clip = out / "train" / "walk" / next(c.name for c in rec.clips if c.cls == "walk" and c.side == "train")
    assert sorted(os.listdir(clip)) == ["rgb", "u", "v"]
    assert sorted(os.listdir(clip / "rgb"))[:2] == ["000000.png", "000001.png"]
    assert sorted(os.listdir(clip / "u")) == sorted(os.listdir(clip / "v")) == [f"{k:06d}.jpg" for k in range(7)]
    # TAO lists these folders: nothing but class folders, clip folders and frames.
    for side in ("train", "val"):
        assert all((out / side / c).is_dir() for c in os.listdir(out / side))
    assert (out / "labels.txt").read_text().split() == HMDB5_LABEL_ORDER
    assert json.loads((out / "label_map.json").read_text())["push"] == 0
    assert "train_dataset_dir" in (out / "tao_dataset_spec.yaml").read_text()
    # Only the selected classes' inner RARs were unpacked (to the cache).
    cached = sorted(p.name for p in (out / ".flowprep" / "cache").rglob("*.rar"))
    assert cached == sorted(f"{c}.rar" for c in HMDB5_LABEL_ORDER)
    v = run_cli("verify", out)
    assert v.exit_code == 0, v.output
    assert "ok" in v.output
    # Re-running the same command is a no-op that ends with the same dataset.
    before = tree_bytes(out)
    r2 = run_cli(
        "build-hmdb5", "--archive", outer, "--splits", splits, "--out", out, "--flow", "dis", "-j", "2", "--no-progress"
    )
    assert r2.exit_code == 0 and "0 clip(s) built" in r2.output
    assert tree_bytes(out) == before


def test_classes_must_be_a_list_not_a_string(tmp_path):
    from flowprep.errors import ConfigError

    with pytest.raises(ConfigError, match="list of class names"):
        BuildConfig(source=tmp_path, out=tmp_path / "o", classes="wave")  # type: ignore[arg-type]
    assert BuildConfig(source=tmp_path, out=tmp_path / "o", classes=("wave", "clap")).classes == ["wave", "clap"]


@pytest.mark.parametrize(
    ("flow", "flow_params"), [("dis", {}), ("dis-fine", {}), ("dis-fine", {"consistency_px": 1.0})]
)
def test_flow_images_encode_the_true_motion(tiny_release, tmp_path, flow, flow_params):
    out = tmp_path / "d"
    s = build(
        BuildConfig(
            source=tiny_release,
            out=out,
            classes=["walk"],
            flow=flow,
            flow_params=flow_params,
            modality="flow",
            encoding=__import__("flowprep.flow.encoding", fromlist=["x"]).FlowEncoding(image_format="png"),
            jobs=1,
            progress=False,
        )
    )
    assert s.ok and s.built == 6
    rec = read_record(out)
    assert rec.modality == "flow" and rec.rgb is None
    assert rec.flow.name == flow
    if flow == "dis-fine":  # the preset's parameters are recorded, all of them
        from flowprep.flow.dis_fine import FineDISBackend

        assert dict(rec.flow.params) == {**FineDISBackend.DEFAULTS, **flow_params}
        assert run_cli("verify", out).exit_code == 0
    c = rec.clips[0]
    assert c.frames == 8 and c.flow_frames == 7
    u = cv2.imread(str(out / c.side / "walk" / c.name / "u" / "000003.png"), cv2.IMREAD_GRAYSCALE)
    v = cv2.imread(str(out / c.side / "walk" / c.name / "v" / "000003.png"), cv2.IMREAD_GRAYSCALE)
    # walk moves right by 2 px/frame times a speed in [0.75, 1.25]: fixed bound 20 -> q = 128 + 2 * 6.375
    mean_dx = (np.median(u[8:-8, 8:-8]) - 127.5) * 40 / 255
    mean_dy = (np.median(v[8:-8, 8:-8]) - 127.5) * 40 / 255
    assert 1.3 < mean_dx < 2.7 and abs(mean_dy) < 0.3


@pytest.mark.slow
def test_resume_after_kill_is_byte_identical(tiny_release, tmp_path):
    ref = tmp_path / "ref"
    cfg = dict(
        source=tiny_release,
        classes=["walk", "run", "push"],
        flow="tvl1",
        jobs=1,
        progress=False,
        flow_params={"scales": 2, "warps": 2},
    )
    build(BuildConfig(out=ref, **cfg))
    out = tmp_path / "out"
    code = (
        "from flowprep.builder.api import build; from flowprep.builder.config import BuildConfig;"
        f"build(BuildConfig(source={str(tiny_release)!r}, out={str(out)!r}, classes=['walk', 'run', 'push'],"
        " flow='tvl1', jobs=1, progress=False,"
        " flow_params={'scales': 2, 'warps': 2}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 120

    def n_done():
        return sum(
            len(os.listdir(out / s / c)) for s in ("train", "val") if (out / s).is_dir() for c in os.listdir(out / s)
        )

    while n_done() < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the build finished before it could be killed; make the test input bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "flowprep.json").exists()
    s = build(BuildConfig(out=out, **cfg))
    assert s.ok and s.existing >= 4 and s.built + s.existing == 18
    assert tree_bytes(out) == tree_bytes(ref)
    assert not (out / ".flowprep-tmp").exists()


def test_corrupt_clip_fails_alone_and_exit_code(release_copy, tmp_path):
    bad = release_copy / "run" / "Broken_run_f_cm_np1_fr_med_0.avi"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage" * 10)
    out = tmp_path / "o"
    r = run_cli(
        "build",
        release_copy,
        "--out",
        out,
        "--flow",
        "dis",
        "-j",
        "1",
        "--no-progress",
        "--split-by",
        "clip",
        "--seed",
        "5",
    )
    assert r.exit_code == 1
    assert "Broken_run_f_cm_np1_fr_med_0" in r.output and "1 failed" in r.output
    rec = read_record(out)
    failed = [c for c in rec.clips if c.status == "failed"]
    assert len(failed) == 1 and "Broken" in failed[0].id and failed[0].error
    assert sum(c.ok for c in rec.clips) == 30
    assert not any("Broken" in p for p in os.listdir(out / failed[0].side / "run"))
    v = run_cli("verify", out)
    assert v.exit_code == 1 and "failed at build time" in v.output


def test_other_configuration_is_refused_unless_forced(tiny_release, tmp_path):
    out = tmp_path / "o"
    base = ["build", tiny_release, "--out", out, "--classes", "walk,run", "--flow", "dis", "-j", "1", "--no-progress"]
    assert run_cli(*base).exit_code == 0
    r = run_cli(*base[:-5], "--flow", "farneback", "-j", "1", "--no-progress")
    assert r.exit_code == 1 and "other settings" in r.output and "flow" in r.output
    r = run_cli(*base[:-5], "--flow", "farneback", "-j", "1", "--no-progress", "--force")
    assert r.exit_code == 0
    assert read_record(out).flow.name == "farneback"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("mine")
    r = run_cli("build", tiny_release, "--out", foreign, "--flow", "dis", "--no-progress")
    assert r.exit_code == 1 and "not made by flowprep" in r.output


def test_mmaction2_layout_and_official_split(tiny_release, tmp_path):
    out = tmp_path / "mm"
    r = run_cli(
        "build",
        tiny_release,
        "--out",
        out,
        "--classes",
        "walk,run",
        "--layout",
        "mmaction2",
        "--splits",
        tiny_release / "testTrainMulti_7030_splits",
        "--official-split",
        "1",
        "--flow",
        "dis",
        "-j",
        "2",
        "--no-progress",
    )
    assert r.exit_code == 0, r.output
    rec = read_record(out)
    assert rec.split.method == "official" and rec.rgb.image_format == "jpg"
    walk = next(c for c in rec.clips if c.cls == "walk")
    names = sorted(os.listdir(out / "rawframes" / "walk" / walk.name))
    assert names[0] == "flow_x_00001.jpg" and "img_00001.jpg" in names and "img_00008.jpg" in names
    assert "flow_y_00007.jpg" in names and "flow_x_00008.jpg" not in names
    lines = (out / "mmaction2" / "train_list_rawframes.txt").read_text().splitlines()
    assert lines and all(len(ln.rsplit(" ", 2)) == 3 for ln in lines)
    assert (out / "mmaction2" / "val_list_rawframes_flow.txt").read_text().split()[1] == "7"
    # split file 1 of the synthetic release marks the first source of every 3 as test (code 2)
    assert rec.split.counts["walk"].to_dict() == {"train": 4, "val": 2}
    assert run_cli("verify", out).exit_code == 0


def test_verify_finds_damage(tiny_release, tmp_path):
    out = tmp_path / "o"
    assert (
        run_cli("build", tiny_release, "--out", out, "--classes", "push", "--flow", "dis", "--no-progress").exit_code
        == 0
    )
    rec = read_record(out)
    c = rec.clips[0]
    clip = out / c.side / "push" / c.name
    (clip / "v" / "000002.jpg").unlink()
    (clip / "u" / "000001.jpg").write_bytes(b"not a jpeg")
    (out / "train" / "push" / "stray").mkdir()
    r = run_cli("verify", out)
    assert r.exit_code == 1
    assert "missing" in r.output and "unreadable" in r.output and "stray" in r.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--out", "{tmp}/o", "--archive", "{tmp}/nope.rar"], "does not exist"),
        (["--out", "{tmp}/o", "--archive", "{tmp}/text.rar"], "not"),
        (["--out", "{tmp}/o", "--archive", "{rel}", "--classes", "walk,dance"], "unknown class"),
        (["--out", "{tmp}/o", "--archive", "{rel}", "--flow", "warp9"], "unknown flow backend"),
    ],
)
def test_cli_errors_are_one_line_exit_1(tiny_release, tmp_path, args, message):
    (tmp_path / "text.rar").write_text("hello, I am not an archive")
    args = [a.format(tmp=tmp_path, rel=tiny_release) for a in args]
    r = run_cli("build-hmdb5", *args, "--no-progress")
    assert r.exit_code == 1, r.output
    assert r.output.startswith("flowprep: error:") and message in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize(
    "args",
    [
        ["--size", "big"],
        ["--size", "8x8"],
        ["--short-side", "4"],
        ["--val-ratio", "0"],
        ["--val-ratio", "1"],
        ["--frame-step", "0"],
        ["-j", "0"],
        ["--shard", "4/3"],
        ["--official-split", "2"],
        ["--size", "64x48", "--short-side", "32"],
        ["--scheduler", "tcp://127.0.0.1:1"],
    ],
)
def test_usage_errors_exit_2(tiny_release, tmp_path, args):
    r = run_cli("build", tiny_release, "--out", tmp_path / "o", "--no-progress", *args)
    assert r.exit_code == 2, r.output
    assert not (tmp_path / "o").exists()


def test_missing_out_is_a_usage_error(tiny_release):
    assert run_cli("build", tiny_release).exit_code == 2


def test_unwritable_output_stops_the_build_with_one_line(tiny_release, tmp_path, monkeypatch):
    monkeypatch.setattr(cv2, "imwrite", lambda *a, **k: False)  # what OpenCV says on a full disk
    out = tmp_path / "o"
    r = run_cli("build", tiny_release, "--out", out, "--classes", "walk", "--flow", "dis", "-j", "1", "--no-progress")
    assert r.exit_code == 1
    assert r.output.splitlines()[-1].startswith("flowprep: error: could not write")
    assert "Traceback" not in r.output
    assert not (out / ".flowprep-tmp").exists() or not any((out / ".flowprep-tmp").iterdir())
    assert not (out / "train").exists() and not (out / "val").exists()


def test_one_frame_clip_fails_alone(release_copy, tmp_path):
    from flowprep.synth import moving_frames, write_video

    write_video(release_copy / "push" / "Short_push_f_cm_np1_fr_med_0.avi", moving_frames(1, 64, 80, (1, 0), seed=9))
    out = tmp_path / "o"
    r = run_cli(
        "build",
        release_copy,
        "--out",
        out,
        "--classes",
        "push",
        "--flow",
        "dis",
        "-j",
        "1",
        "--no-progress",
        "--split-by",
        "clip",
    )
    assert r.exit_code == 1 and "only 1 frame(s)" in r.output
    rec = read_record(out)
    assert sum(c.ok for c in rec.clips) == 6
    r = run_cli(
        "build",
        release_copy,
        "--out",
        tmp_path / "rgb",
        "--classes",
        "push",
        "--modality",
        "rgb",
        "-j",
        "1",
        "--no-progress",
        "--split-by",
        "clip",
    )
    assert r.exit_code == 0  # RGB alone needs no second frame


def test_changed_source_is_refused_then_brought_up_to_date_with_force(release_copy, tmp_path):
    out = tmp_path / "o"
    args = ["build", release_copy, "--out", out, "--classes", "walk,run", "--flow", "dis", "-j", "1", "--no-progress"]
    assert run_cli(*args).exit_code == 0
    walk = sorted((release_copy / "walk").iterdir())
    for k in range(4):  # new clips can move old ones between train and val
        (release_copy / "walk" / f"NewSource{k}_walk_f_cm_np1_fr_med_0.avi").write_bytes(walk[0].read_bytes())
    walk[1].unlink()
    r = run_cli(*args)
    assert r.exit_code == 1 and "changed since" in r.output and "--force" in r.output
    r = run_cli(*args, "--force")
    assert r.exit_code == 0, r.output
    rec = read_record(out)
    on_disk = {
        f"{side}/{cls}/{clip}"
        for side in ("train", "val")
        for cls in os.listdir(out / side)
        for clip in os.listdir(out / side / cls)
    }
    assert on_disk == {c.id for c in rec.clips}  # nothing stale, nothing on both sides
    assert run_cli("verify", out).exit_code == 0


def test_class_names_with_spaces_become_safe_folders(tmp_path):
    from flowprep.synth import make_release_folder

    rel = tmp_path / "rel"
    make_release_folder(
        rel,
        {"walk": (1.0, 0.0)},
        sources_per_class=2,
        clips_per_source=2,
        frames=4,
        height=32,
        width=32,
        with_splits=False,
    )
    (rel / "walk").rename(rel / "walk fast")
    out = tmp_path / "o"
    r = run_cli("build", rel, "--out", out, "--flow", "dis", "-j", "1", "--no-progress")
    assert r.exit_code == 0, r.output
    assert list(read_record(out).classes) == ["walk_fast"]
    assert all(len(line.split()) == 3 for line in (out / "train_list.txt").read_text().splitlines())


def test_flow_kernel_failure_fails_the_clip_not_the_build(tiny_release, tmp_path, monkeypatch):
    from flowprep.flow.opencv_cpu import DISBackend

    def boom(self, prev, nxt):
        raise cv2.error("The input image must have either width or height >= 12")

    monkeypatch.setattr(DISBackend, "calc", boom)
    r = run_cli(
        "build", tiny_release, "--out", tmp_path / "o", "--classes", "walk", "--flow", "dis", "-j", "1", "--no-progress"
    )
    assert r.exit_code == 1 and "flow failed on frames 0->1" in r.output and "Traceback" not in r.output


def test_mmaction2_flow_only_snippet_and_stats_of_a_dataset(tiny_release, tmp_path):
    out = tmp_path / "mm"
    assert (
        run_cli(
            "build",
            tiny_release,
            "--out",
            out,
            "--classes",
            "run",
            "--layout",
            "mmaction2",
            "--modality",
            "flow",
            "--flow",
            "dis",
            "--no-progress",
        ).exit_code
        == 0
    )
    settings = (out / "mmaction2" / "dataset_settings.py").read_text()
    assert "ann_file_train_flow" in settings and "ann_file_train =" not in settings
    for line in settings.splitlines():
        if line.startswith("ann_file"):
            assert Path(line.split("=", 1)[1].strip().strip("'")).is_file()
    r = run_cli("stats", out, "--json")
    assert json.loads(r.output)["total"]["clips"] == 6

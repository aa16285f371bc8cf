"""Hostile and unlucky input (issue 9, defects 4-6): numbers, damaged datasets and records, full or
read-only disks, tiny frames, non-UTF-8 names. Every case: the exit status (1, or 2 for usage), no
traceback, a few lines on stderr at most, nothing created outside the output folder."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from flowprep.cli import cli, one_line, os_error_line
from flowprep.commands.params import CommaList, Shard, Size, finite
from flowprep.errors import ConfigError, FlowprepError, FrameSizeError, OutputError
from flowprep.flow.encoding import FlowEncoding
from flowprep.fsio import dump_json, printable, write_text_atomic
from flowprep.layout.images import container_problem
from flowprep.layout.names import validate_component
from flowprep.layout.record import read_record
from flowprep.limits import json_safe

CLASSES = {"walk": (1.0, 0.0), "run": (0.0, 1.0)}


def invoke(*args, code: int) -> str:
    """Run ``flowprep ARGS`` in-process; check the status, no traceback, a short stderr."""
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == code, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) <= 4, res.stderr
    return res.output


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A 2-class TAO dataset (rgb + DIS flow, 6 frames of 64x80 a clip)."""
    from flowprep.synth import make_release_folder

    base = tmp_path_factory.mktemp("safety")
    make_release_folder(
        base / "rel", classes=CLASSES, sources_per_class=2, clips_per_source=1, frames=6, seed=1, with_splits=False
    )
    invoke(
        "build",
        base / "rel",
        "--out",
        base / "ds",
        "--flow",
        "dis",
        "-j",
        "1",
        "--no-progress",
        "--split-by",
        "clip",
        code=0,
    )
    return base / "ds"


@pytest.fixture()
def ds_copy(dataset, tmp_path) -> Path:
    dst = tmp_path / "ds"
    shutil.copytree(dataset, dst)
    return dst


def _mount(path: Path, options: str) -> Path:
    path.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({r.stderr.strip() or 'not permitted'}): root ignores file "
            "permissions, so read-only and full disks need a mount"
        )
    return path


@pytest.fixture()
def readonly_dir(tmp_path):
    d = _mount(tmp_path / "ro", "ro,size=64k")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)  # lazy: PyAV may leak a descriptor


@pytest.fixture()
def full_dir(tmp_path):
    d = _mount(tmp_path / "full", "size=64k")
    with open(d / "pad", "wb") as fh:  # fill it: folders can still be made, files not written
        try:
            fh.write(b"\0" * 64 * 1024)
        except OSError:
            pass
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)  # lazy: PyAV may leak a descriptor


# ---- numbers -------------------------------------------------------------------------------------

BAD_NUMBERS = [
    ["build", "SRC", "--out", "OUT", "--bound", "inf"],
    ["build", "SRC", "--out", "OUT", "--bound", "nan"],
    ["build", "SRC", "--out", "OUT", "--val-ratio", "nan"],
    ["build", "SRC", "--out", "OUT", "--size", "100000x100000"],
    ["build", "SRC", "--out", "OUT", "--size", "8x8"],
    ["build", "SRC", "--out", "OUT", "--short-side", "100000"],
    ["build", "SRC", "--out", "OUT", "--shard", "3/2"],
    ["build", "SRC", "--out", "OUT", "--flow-param", "finest_scale=nan"],
    ["build", "SRC", "--out", "OUT", "--classes", " , "],
    ["train", "SRC", "--out", "OUT", "--lr", "nan"],
    ["train", "SRC", "--out", "OUT", "--lr", "inf"],
    ["train", "SRC", "--out", "OUT", "--workers", "-1"],
    ["train", "SRC", "--out", "OUT", "--input-size", "100000"],
    ["train", "SRC", "--out", "OUT", "--lr-steps", "5,x"],
    ["train", "SRC", "--out", "OUT", "--dropout", "nan"],
    ["evaluate", "SRC/x.pt", "SRC", "--batch-size", "0"],
    ["bench-flow", "--magnitudes", "nan"],
    ["bench-flow", "--magnitudes", "2,-1"],
    ["bench-flow", "--bound", "inf"],
    ["bench-flow", "--size", "100000x100000"],
    ["infer", "x.mp4", "--model", "m.onnx", "--fps", "nan"],
    ["infer", "x.mp4", "--model", "m.onnx", "--stride", "0"],
    ["infer", "x.mp4", "--model", "m.onnx", "--top-k", "0"],
    ["infer", "x.mp4", "--model", "m.onnx", "--max-frames", "-1"],
    ["export", "x.pt", "--out", "OUT", "--max-batch", "0"],
    ["preview", "SRC", "--out", "OUT", "--fps", "nan"],
    ["preview", "SRC", "--out", "OUT", "--max-frames", "0"],
]


@pytest.mark.parametrize("args", BAD_NUMBERS, ids=lambda a: " ".join(a[:1] + a[-2:]))
def test_bad_numbers_are_usage_errors(args, tmp_path):
    (tmp_path / "SRC").mkdir()
    before = snapshot(tmp_path)
    out = invoke(*[a.replace("SRC", str(tmp_path / "SRC")).replace("OUT", str(tmp_path / "o")) for a in args], code=2)
    assert "Invalid value" in out
    assert snapshot(tmp_path) == before


def test_config_dataclasses_check_numbers_too(tmp_path):
    from flowprep.builder.config import BuildConfig

    with pytest.raises(ConfigError, match="finite"):
        FlowEncoding(bound=math.inf)
    with pytest.raises(ConfigError, match="val-ratio"):
        BuildConfig(source=tmp_path, out=tmp_path / "o", val_ratio=math.nan)
    with pytest.raises(ConfigError, match="8192"):
        BuildConfig(source=tmp_path, out=tmp_path / "o", size=(100000, 100000))
    torch_loop = pytest.importorskip("flowprep.train.loop")
    for bad in ({"lr": math.nan}, {"workers": -1}, {"input_size": 100000}, {"clip_grad": math.inf}):
        with pytest.raises(ConfigError):
            torch_loop.TrainConfig(dataset=tmp_path, out=tmp_path / "o", **bad).validate()


def test_parameter_types():
    assert Size().convert("320x240", None, None) == (320, 240)
    assert CommaList().convert(" a, b ,,", None, None) == ["a", "b"]
    assert CommaList(int).convert("15,25", None, None) == [15, 25]
    assert Shard().convert("2/3", None, None) == (2, 3)
    assert finite(0, 1, lo_open=True).convert("0.5", None, None) == 0.5


def test_json_is_always_valid():
    with pytest.raises(ValueError):
        dump_json({"bound": math.inf})
    assert json_safe({"a": [math.nan, 1.0], "b": math.inf}) == {"a": [None, 1.0], "b": None}


# ---- verify and the record ------------------------------------------------------------------------


def _clip(ds: Path) -> Path:
    c = read_record(ds).clips[0]
    return ds / c.id


def test_verify_finds_truncated_images(ds_copy):
    clip = _clip(ds_copy)
    os.truncate(clip / "u" / "000003.jpg", (clip / "u" / "000003.jpg").stat().st_size - 40)
    os.truncate(clip / "rgb" / "000002.png", (clip / "rgb" / "000002.png").stat().st_size - 40)
    out = invoke("verify", ds_copy, code=1)
    assert "u/000003.jpg: unreadable image (truncated JPEG" in out
    assert "rgb/000002.png: unreadable image (truncated PNG" in out
    # --quick reads the first and last image of each folder only
    invoke("verify", "--quick", ds_copy, code=0)
    os.truncate(clip / "rgb" / "000000.png", 100)
    assert "rgb/000000.png: unreadable image" in invoke("verify", "--quick", ds_copy, code=1)


def test_container_checks():
    png = b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + b"\0" * 13 + b"\0\0\0\0"
    assert "CRC" in container_problem(png, "png")
    assert "truncated" in container_problem(b"\xff\xd8\xff\xe0abc", "jpg")
    assert container_problem(b"\xff\xd8abc\xff\xd9", "jpg") is None


TAMPER = {
    "classes deleted": lambda r: r.pop("classes"),
    "clips null": lambda r: r.__setitem__("clips", None),
    "frames a string": lambda r: r["clips"][0].__setitem__("frames", "6"),
    "clip name ..": lambda r: r["clips"][0].__setitem__("name", ".."),
    "clip id escapes": lambda r: r["clips"][0].__setitem__("id", "../../outside"),
    "class name ..": lambda r: r.__setitem__("classes", ["..", "walk"]),
    "absolute name": lambda r: r["clips"][0].__setitem__("name", "/etc"),
    "name not a string": lambda r: r["clips"][0].__setitem__("name", 5),
    "encoding damaged": lambda r: r.__setitem__("encoding", {"mode": "fixed", "bound": "x"}),
    "clip not an object": lambda r: r["clips"].__setitem__(0, []),
    # nested fields the preview page and stats format (they tracebacked before the schema covered them)
    "split a list": lambda r: r.__setitem__("split", [1]),
    "source a string": lambda r: r.__setitem__("source", "x"),
    "flow a string": lambda r: r.__setitem__("flow", "x"),
    "decode a number": lambda r: r.__setitem__("decode", 7),
    "normalization a number": lambda r: r.__setitem__("normalization", 3),
    "counts per class a number": lambda r: r.__setitem__("counts", {"walk": 5}),
    "planned counts a string": lambda r: r["split"].__setitem__("counts", {"walk": {"train": "3"}}),
    "source size a string": lambda r: r["source"].__setitem__("files", [{"name": "a", "size": "big"}]),
    "clip listed twice": lambda r: r["clips"].append(dict(r["clips"][0])),
    "clip source null": lambda r: r["clips"][0].__setitem__("source", None),
    "clip source deleted": lambda r: r["clips"][0].pop("source"),
}


@pytest.mark.parametrize("tamper", TAMPER.values(), ids=TAMPER.keys())
def test_tampered_record_is_one_line(tamper, ds_copy):
    rec = json.loads((ds_copy / "flowprep.json").read_text())
    tamper(rec)
    (ds_copy / "flowprep.json").write_text(json.dumps(rec))
    for args in (["verify", ds_copy], ["stats", ds_copy], ["preview", ds_copy, "--out", ds_copy.parent / "p"]):
        out = invoke(*args, code=1)
        assert "flowprep.json" in out and len(out.strip().splitlines()) == 1
    assert not (ds_copy.parent / "p").exists()


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


def test_verify_reads_frames_only_as_regular_files(ds_copy, tmp_path):
    clip = _clip(ds_copy)
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
    r = _verify_subprocess(ds_copy)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "u/000000.jpg: unreadable image (a FIFO, not a regular file)" in r.stderr
    assert "u/000001.jpg: unreadable image (a symbolic link" in r.stderr
    assert "u/000002.jpg: unreadable image (a symbolic link" in r.stderr
    assert "unexpected entry 'v'" in r.stderr


def test_validate_component():
    assert validate_component("run(fast)&more!", "clip") == "run(fast)&more!"
    for bad in ("..", ".", "", "a/b", "/etc", "a\0b", os.fsdecode(b"\xff")):
        with pytest.raises(FlowprepError):
            validate_component(bad, "clip")


# ---- train on damaged data ------------------------------------------------------------------------


def test_train_refuses_out_inside_the_dataset(dataset):
    pytest.importorskip("torch")
    before = snapshot(dataset)
    out = invoke("train", dataset, "--out", dataset / "train" / "run1", code=2)
    assert "inside the dataset" in out
    assert snapshot(dataset) == before


def test_evaluate_refuses_out_inside_the_dataset(dataset, tmp_path):
    from flowprep.train.config import EvalConfig

    for side in ("train", "val"):
        with pytest.raises(ConfigError, match="inside the dataset"):
            EvalConfig(tmp_path / "best.pt", dataset / "val", out=dataset / side / "report")
    assert EvalConfig(tmp_path / "best.pt", dataset / "val", out=tmp_path / "report").out == tmp_path / "report"


@pytest.mark.parametrize("damage", ["missing", "empty", "fifo", "dev_zero"])
def test_train_with_a_bad_frame_in_a_worker_is_one_line(damage, ds_copy, tmp_path, one_torch_thread):
    frame = _clip(ds_copy) / "rgb" / "000002.png"
    frame.unlink() if damage != "empty" else frame.write_bytes(b"")
    if damage == "fifo":  # opening it used to block training forever
        os.mkfifo(frame)
    elif damage == "dev_zero":  # reading it used to grow memory without limit
        frame.symlink_to("/dev/zero")
    out = invoke(
        "train",
        ds_copy,
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


def test_messages_are_printable_lines():
    assert printable(os.fsdecode(b"a\xffb") + "\nc", escape=True) == "a\\xffb\\nc"
    assert printable("x\ud800y", escape=True) == "x\\ud800y"
    assert printable(os.fsdecode(b"a\xffb") + "\nc") == "a\ufffdb\nc"  # messages and JSON


def test_worker_errors_keep_their_original_line():
    exc = FlowprepError(
        "Caught DatasetError in DataLoader worker process 0.\nOriginal Traceback (most "
        'recent call last):\n  File "x", line 1\nflowprep.errors.FlowprepError: frame x is empty'
    )
    assert one_line(exc) == "frame x is empty"


# ---- full and read-only disks ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(dataset, tmp_path_factory):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from flowprep.export.api import export_checkpoint
    from flowprep.train.checkpoint import save_checkpoint
    from flowprep.train.models import build_model

    d = tmp_path_factory.mktemp("models")
    rec = read_record(dataset).summary_dict()
    paths = {}
    for modality in ("rgb", "of"):
        torch.manual_seed(0)
        model = build_model("2d", modality, 2, frames=4)
        paths[modality] = save_checkpoint(
            d / f"{modality}.pt",
            {
                "arch": "2d",
                "modality": modality,
                "frames": 4,
                "sample_rate": 1,
                "input_size": 32,
                "classes": ["run", "walk"],
                "state_dict": model.state_dict(),
                "dataset_record": rec,
                "epoch": 1,
                "best_acc": 0.0,
            },
        )
    export_checkpoint(paths["rgb"], d / "deploy")
    paths["onnx"] = d / "deploy" / "model.onnx"
    return paths


def _writers(dataset: Path, models: dict, target: Path) -> dict[str, list]:
    video = next((dataset.parent / "rel" / "walk").iterdir())
    bench = ["bench-flow", "--flow", "dis", "--size", "64x48", "--magnitudes", "2", "--pairs-per-magnitude", "1"]
    return {
        "evaluate --out": ["evaluate", models["rgb"], dataset, "--out", target / "e", "--no-progress"],
        "export --out": ["export", models["rgb"], "--out", target / "x"],
        "infer --output": ["infer", video, "--model", models["onnx"], "--output", target / "a.mp4"],
        "infer --json-out": ["infer", video, "--model", models["onnx"], "--json-out", target / "j.jsonl"],
        "bench-flow --plot": [*bench, "--plot", target / "p.png"],
        "bench-flow --vis-dir": [*bench, "--vis-dir", target / "vis"],
        "train --out": [
            "train",
            dataset,
            "--out",
            target / "run",
            "--epochs",
            "1",
            "--frames",
            "4",
            "--input-size",
            "32",
            "--workers",
            "0",
            "--no-progress",
        ],
        "build --out": [
            "build",
            dataset.parent / "rel",
            "--out",
            target / "ds",
            "--flow",
            "dis",
            "-j",
            "1",
            "--no-progress",
        ],
    }


WRITERS = [
    "evaluate --out",
    "export --out",
    "infer --output",
    "infer --json-out",
    "bench-flow --plot",
    "bench-flow --vis-dir",
    "train --out",
    "build --out",
]


@pytest.mark.parametrize("kind", ["readonly", "full", "parent is a file"])
@pytest.mark.parametrize("writer", WRITERS)
def test_unwritable_output_is_one_line(writer, kind, dataset, models, tmp_path, request, one_torch_thread):
    if kind == "parent is a file":
        target = tmp_path / "afile"
        target.write_text("x")
    else:
        target = request.getfixturevalue("readonly_dir" if kind == "readonly" else "full_dir")
    before = snapshot(tmp_path)
    out = invoke(*_writers(dataset, models, target)[writer], code=1)
    # the builder's state files are written by builder code that names no file on ENOSPC
    assert str(target) in out or (writer == "build --out" and "No space left on device" in out)
    if kind != "full":  # a full disk keeps the folders made before the first write failed
        assert snapshot(tmp_path) == before


def test_json_out_in_a_missing_folder(models, dataset, tmp_path):
    video = next((dataset.parent / "rel" / "walk").iterdir())
    out = invoke("infer", video, "--model", models["onnx"], "--json-out", tmp_path / "missing" / "x.jsonl", code=1)
    assert "missing/x.jsonl: No such file or directory" in out


def test_atomic_write_on_a_full_disk(full_dir):
    with pytest.raises(OutputError, match="No space left"):
        write_text_atomic(full_dir / "flowprep.json", "x" * 100_000)
    assert sorted(p.name for p in full_dir.iterdir()) == ["pad"]


def test_os_errors_become_one_line_only_with_a_file_name():
    assert (
        os_error_line(OSError(errno.EROFS, "Read-only file system", "/x/r.json")) == "/x/r.json: Read-only file system"
    )
    assert os_error_line(OSError(errno.ENOSPC, "No space left on device")).startswith("No space left")
    assert os_error_line(OSError(errno.ENOENT, "No such file or directory")) is None  # names no file
    assert os_error_line(OSError(errno.EBADF, "Bad file descriptor", "/x")) is None  # a bug, not the disk


# ---- tiny frames, odd names -----------------------------------------------------------------------


def test_dis_refuses_frames_it_would_crash_on():
    from flowprep.flow.registry import create_backend

    dis = create_backend("dis")
    for h, w in ((1, 1), (4, 4), (12, 40)):  # OpenCV's DIS segfaults on 12x40
        with pytest.raises(FrameSizeError):
            dis.calc(np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8))


@pytest.mark.parametrize("side", [1, 4])
def test_tiny_frames_with_dis(side, models, tmp_path):
    import cv2

    from flowprep.flow.flo import write_flo

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        cv2.imwrite(str(frames / f"{i:04d}.png"), rng.integers(0, 255, (side, side, 3), dtype=np.uint8))
    write_flo(tmp_path / "gt.flo", np.zeros((side, side, 2), np.float32))
    out = invoke("infer", frames, "--model", models["of"], "--fps", "10", "--flow", "dis", code=1)
    assert "too small for the dis backend" in out
    out = invoke(
        "bench-flow",
        "--flow",
        "dis",
        "--pairs-per-magnitude",
        "0",
        "--pair",
        frames / "0000.png",
        frames / "0001.png",
        tmp_path / "gt.flo",
        code=1,
    )
    assert "too small for the dis backend" in out


@pytest.fixture()
def non_utf8_release(dataset, tmp_path) -> Path:
    rel = tmp_path / "rel"
    shutil.copytree(dataset.parent / "rel", rel)
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
    out = invoke("build", src, "--out", tmp_path / "o1", "--flow", "dis", "-j", "1", "--no-progress", code=0)
    assert "skipping clip" in caplog.text and "not valid UTF-8" in caplog.text
    # a class: one line
    bad_class = os.fsencode(non_utf8_release) + b"/r\xffun"
    shutil.copytree(os.fsencode(non_utf8_release / "run"), bad_class)
    if kind == "tar":
        with tarfile.open(src, "w") as tar:
            tar.add(non_utf8_release, arcname="rel")
    out = invoke("build", src, "--out", tmp_path / "o2", "--flow", "dis", "-j", "1", "--no-progress", code=1)
    assert "not valid UTF-8" in out


def test_annotated_video_on_a_full_disk_fails_cleanly(full_dir):
    pytest.importorskip("av")
    # in a subprocess: flushing PyAV's encoder after a failed write crashed the process (SIGSEGV)
    code = (
        "import numpy as np, sys; from flowprep.serve.annotate import AnnotatedWriter\n"
        f"w = AnnotatedWriter({str(full_dir / 'a.mp4')!r}, 25)\n"
        "try:\n    [w.write(np.zeros((64, 80, 3), np.uint8)) for _ in range(30)]\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
        "w.close()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-500:]
    assert "OutputError" in r.stdout and "No space left" in r.stdout


def test_preview_on_a_full_disk_is_one_line(dataset, full_dir, capfd):
    from flowprep.preview.api import write_legend

    with pytest.raises(OutputError, match="wheel.png: No space left"):  # one line naming the file
        write_legend(full_dir / "wheel.png")
    assert "libpng" not in capfd.readouterr().err and sorted(p.name for p in full_dir.iterdir()) == ["pad"]
    # a subprocess: OpenCV's imwrite printed libpng's own error line on the process's stderr
    r = subprocess.run(
        [sys.executable, "-m", "flowprep", "preview", str(dataset), "--out", str(full_dir / "p"), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "No space left" in r.stderr, r.stderr


def test_a_killed_worker_is_one_line(monkeypatch, ds_copy):
    # issue 9 part 6: a worker killed with kill -9 gave joblib's 49-line TerminatedWorkerError; the
    # build names its clips itself, the CLI turns any other pool's (verify -j) into one line
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    import flowprep.layout.verify as verify_mod

    def dies(*args, **kwargs):
        raise TerminatedWorkerError(
            "A worker process managed by the executor was unexpectedly terminated. "
            "This could be caused by a segmentation fault.\n\nThe exit codes of the "
            "workers are {SIGKILL(-9)}"
        )

    monkeypatch.setattr(verify_mod, "verify", dies)
    out = invoke("verify", ds_copy, "-j", "2", code=1)
    assert len(out.strip().splitlines()) == 1 and "a worker process died" in out, out

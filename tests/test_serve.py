"""flowprep infer: windows at the expected times on a real clip, annotated output, ONNX vs PyTorch runners,
dataset-exact pre-processing, and one-line errors. Models are tiny (8 frames, 64x64)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
av = pytest.importorskip("av")

from flowprep.cli import cli  # noqa: E402
from flowprep.export.api import export_checkpoint  # noqa: E402
from flowprep.layout.sections import DecodeInfo  # noqa: E402
from flowprep.serve.infer import infer  # noqa: E402
from flowprep.serve.window import FrameProcessor, WindowBuffer, center_crop_box  # noqa: E402
from flowprep.train.checkpoint import save_checkpoint  # noqa: E402
from flowprep.train.models import build_model  # noqa: E402

CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "carphone_pristine.mp4"
needs_clip = pytest.mark.skipif(not CLIP.is_file(), reason=f"test clip {CLIP} not present")
CLASSES = ["walk", "run", "push"]
RECORD = {
    "format": "flowprep-dataset",
    "modality": "both",
    "decode": {"short_side": 96, "size": None, "frame_step": 1},
    "rgb": {"image_format": "png", "jpeg_quality": None},
    "flow": {"name": "dis", "params": {}, "device": "cpu"},
    "encoding": {"mode": "fixed", "bound": 20.0, "image_format": "jpg", "jpeg_quality": 95},
}
T, S = 8, 64


def make_checkpoint(path: Path, arch: str, modality: str, record: dict | None = None) -> Path:
    torch.manual_seed(0)
    model = build_model(arch, modality, len(CLASSES), frames=T)
    return save_checkpoint(
        path,
        {
            "arch": arch,
            "modality": modality,
            "frames": T,
            "sample_rate": 1,
            "input_size": S,
            "classes": CLASSES,
            "state_dict": model.state_dict(),
            "dataset_record": RECORD if record is None else record,
            "epoch": 1,
            "best_acc": 0.0,
        },
    )


@pytest.fixture(scope="module")
def rgb3d(tmp_path_factory):
    d = tmp_path_factory.mktemp("rgb3d")
    ckpt = make_checkpoint(d / "best.pt", "3d", "rgb")
    export_checkpoint(ckpt, d / "deploy")
    return ckpt, d / "deploy" / "model.onnx"


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@needs_clip
def test_infer_clip_windows_times_and_annotated_video(rgb3d, tmp_path):
    _, onnx_path = rgb3d
    out, js = tmp_path / "annotated.mp4", tmp_path / "res.jsonl"
    res = CliRunner().invoke(
        cli,
        [
            "infer",
            str(CLIP),
            "--model",
            str(onnx_path),
            "--output",
            str(out),
            "--stride",
            "4",
            "--top-k",
            "2",
            "--json-out",
            str(js),
        ],
    )
    assert res.exit_code == 0, res.output
    lines = _lines(js)
    wins, clip = lines[:-1], lines[-1]
    fps = 30000 / 1001
    # 120 frames, T = 8, stride 4: windows start at 0, 4, ..., 112
    assert [w["start_frame"] for w in wins] == list(range(0, 113, 4))
    for w in wins:
        assert w["end_frame"] == w["start_frame"] + T - 1
        assert w["start_s"] == pytest.approx(w["start_frame"] / fps, abs=1e-3)
        assert w["end_s"] == pytest.approx((w["start_frame"] + T) / fps, abs=1e-3)
        assert len(w["top_k"]) == 2 and w["top_k"][0]["score"] >= w["top_k"][1]["score"]
        assert {t["label"] for t in w["top_k"]} <= set(CLASSES)
    assert clip["type"] == "clip" and clip["protocol"] == "conv" and clip["segments"] == 10
    assert sum(1 for _ in av.open(str(out)).decode(video=0)) == 120
    assert "annotated video" in res.output


@pytest.mark.slow
@needs_clip
def test_onnx_and_checkpoint_runners_agree_and_skip_frames(rgb3d):
    ckpt, onnx_path = rgb3d
    a, b = [], []
    s1 = infer(CLIP, onnx_path, skip_frames=1, stride=5, max_frames=40, on_result=a.append)
    s2 = infer(CLIP, ckpt, skip_frames=1, stride=5, max_frames=40, on_result=b.append)
    assert s1.runner.startswith("onnxruntime") and s2.runner.startswith("pytorch")
    wins = [w for w in a if w["type"] == "window"]
    # skip 1: window spans (8 - 1) * 2 + 1 = 15 frames; starts 0, 5, ..., 25 within 40 frames
    assert [(w["start_frame"], w["end_frame"]) for w in wins] == [(s, s + 14) for s in range(0, 26, 5)]
    for x, y in zip(a, b):
        px = np.array([t["score"] for t in x["top_k"]])
        py = np.array([t["score"] for t in y["top_k"]])
        assert [t["label"] for t in x["top_k"]] == [t["label"] for t in y["top_k"]]
        assert np.abs(px - py).max() < 1e-4


@needs_clip
def test_joint_checkpoint_computes_flow_on_the_fly(tmp_path):
    ckpt = make_checkpoint(tmp_path / "j.pt", "2d", "joint")
    got = []
    s = infer(CLIP, ckpt, stride=8, max_frames=30, on_result=got.append)
    wins = [w for w in got if w["type"] == "window"]
    # flow items: 29 (frames k -> k+1); windows of 8 items at 0, 8, 16; each uses frames s .. s + 8
    assert [(w["start_frame"], w["end_frame"]) for w in wins] == [(0, 8), (8, 16), (16, 24)]
    assert s.source_frames == 30 and s.verdict["segments"] == 10 and not s.notes


@pytest.mark.parametrize("bad", ["fifo", "dev_zero"])
def test_a_fifo_or_device_among_folder_frames_is_a_decode_error(tmp_path, bad):
    import cv2

    from flowprep.errors import DecodeError
    from flowprep.serve.stream import open_source

    cv2.imwrite(str(tmp_path / "000000.png"), np.zeros((16, 16, 3), np.uint8))
    os.mkfifo(tmp_path / "000001.png") if bad == "fifo" else (tmp_path / "000001.png").symlink_to("/dev/zero")
    frames = iter(open_source(tmp_path))
    assert next(frames).shape == (16, 16, 3)
    with pytest.raises(DecodeError, match="not a regular file"):  # cv2.imread on the FIFO blocked
        next(frames)


def test_folder_of_frames_shorter_than_a_window(rgb3d, tmp_path):
    import cv2

    _, onnx_path = rgb3d
    folder = tmp_path / "clip" / "rgb"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(5):
        cv2.imwrite(str(folder / f"{k:06d}.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    got = []
    s = infer(tmp_path / "clip", onnx_path, fps=10, on_result=got.append)
    assert s.windows == 1 and got[0]["start_s"] == 0.0 and got[0]["end_s"] == 0.5  # 5 frames at 10 fps
    assert got[-1]["type"] == "window"  # no conv verdict for a folder


def test_processor_follows_the_dataset_record():
    frames = [np.full((144, 176, 3), 10 * k, np.uint8) for k in range(6)]
    proc = FrameProcessor(S, True, False, DecodeInfo(short_side=96, size=None, frame_step=2))
    items = [it for i, f in enumerate(frames) if (it := proc.push(i, f)) is not None]
    assert [(it.index, it.first_src) for it in items] == [(0, 0), (1, 2), (2, 4)]
    assert items[1].rgb.shape == (S, S, 3) and int(items[1].rgb[0, 0, 0]) == 20
    # 2D inputs are the 3D ones reshaped channel-major
    b3, b2 = WindowBuffer(2, 1, "3d", ("rgb",)), WindowBuffer(2, 1, "2d", ("rgb",))
    for it in items[:2]:
        b3.push(it)
        b2.push(it)
    x3, src = b3.assemble(np.array([0, 1]))
    x2, _ = b2.assemble(np.array([0, 1]))
    assert x3["input_rgb"].shape == (1, 3, 2, S, S) and src == (0, 2)
    assert np.array_equal(x2["input_rgb"], x3["input_rgb"].reshape(1, 6, S, S))


def test_eval_crop_matches_training():
    from flowprep.loader.frames import crop_box

    for h, w in [(240, 320), (96, 117), (256, 256), (144, 176)]:
        assert center_crop_box(h, w) == crop_box(h, w, "center", None)


def test_errors_are_one_line(rgb3d, tmp_path):
    ckpt, onnx_path = rgb3d
    r = CliRunner()

    def fails(args: list[str], text: str) -> None:
        res = r.invoke(cli, ["infer", *args])
        assert res.exit_code == 1, res.output
        assert text in res.output and len(res.output.strip().splitlines()) == 1, res.output

    fails([str(tmp_path / "missing.mp4"), "--model", str(onnx_path)], "does not exist")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    fails([str(junk), "--model", str(onnx_path)], "cannot open it as a video")
    fails(["/dev/video97", "--model", str(onnx_path)], "camera /dev/video97 not found")
    # the record says flow, the ONNX file takes RGB
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.onnx").write_bytes(onnx_path.read_bytes())
    rec = json.loads((onnx_path.parent / "flowprep_model.json").read_text())
    # (a record of a flow model beside an RGB model's ONNX file: in itself consistent)
    flow_rec = {**rec, "modality": "of", "inputs": {"input_of": [2, *rec["inputs"]["input_rgb"][1:]]}}
    (bad / "flowprep_model.json").write_text(json.dumps(flow_rec))
    fails([str(junk), "--model", str(bad / "model.onnx")], "model/modality mismatch")
    # a record edited by hand so that its own fields disagree is refused naming the field
    (bad / "flowprep_model.json").write_text(json.dumps({**rec, "modality": "of"}))
    fails(
        [str(junk), "--model", str(bad / "model.onnx")],
        "flowprep_model.json is not a valid flowprep model record (inputs must be",
    )
    (bad / "flowprep_model.json").unlink()
    fails([str(junk), "--model", str(bad / "model.onnx")], "no flowprep_model.json")
    # a flow model whose training data had no flow record
    noflow = make_checkpoint(tmp_path / "of.pt", "2d", "of", record={**RECORD, "flow": None, "encoding": None})
    fails([str(junk), "--model", str(noflow)], "model/modality mismatch")
    # recorded flow parameters are data: checked before OpenCV sees them (patch_size 0 was a SIGFPE)
    bad_flow = {"name": "dis", "params": {"patch_size": 0, "patch_stride": 0}, "device": "cpu"}
    sigfpe = make_checkpoint(tmp_path / "fpe.pt", "2d", "of", record={**RECORD, "flow": bad_flow})
    fails(
        [str(junk), "--model", str(sigfpe)],
        f"{sigfpe}: the recorded flow parameters are not usable: flow backend 'dis': patch_size=0 is not allowed",
    )


@needs_clip
def test_infer_never_writes_over_its_input_or_a_users_file(rgb3d, tmp_path):
    import shutil

    _, onnx_path = rgb3d
    victim = tmp_path / "victim.mp4"
    shutil.copy(CLIP, victim)
    before = victim.read_bytes()
    mine = tmp_path / "mine.jsonl"
    mine.write_text("my notes\n")

    def run(*extra: str):
        return CliRunner().invoke(cli, ["infer", str(victim), "-m", str(onnx_path), "--max-frames", "16", *extra])

    for force in ([], ["--overwrite"]):  # the input and the model: never, not even with --overwrite
        for option, target in (("--output", victim), ("--json-out", victim), ("--json-out", onnx_path)):
            res = run(option, str(target), *force)
            assert res.exit_code == 1 and "is the command's own input" in res.output, res.output
            assert len(res.output.strip().splitlines()) == 1
    for option, target in (("--json-out", mine), ("--output", mine)):
        res = run(option, str(target))
        assert res.exit_code == 1 and "already exists" in res.output and "--overwrite" in res.output, res.output
    assert victim.read_bytes() == before and mine.read_text() == "my notes\n"
    res = run("--json-out", str(mine), "--overwrite")
    assert res.exit_code == 0 and mine.read_text().startswith('{"'), res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.jsonl", "victim.mp4"]


@needs_clip
def test_a_failed_infer_leaves_no_partial_video(rgb3d, tmp_path, monkeypatch):
    import errno

    from flowprep.errors import OutputError, writing
    from flowprep.serve import annotate

    _, onnx_path = rgb3d
    real_write = annotate.AnnotatedWriter.write

    def disk_fills_up(self, frame):
        if self.frames == 5:
            with writing(self.path):
                raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, frame)

    monkeypatch.setattr(annotate.AnnotatedWriter, "write", disk_fills_up)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="No space left"):
        infer(CLIP, onnx_path, output=out / "annotated.mp4", max_frames=30)
    assert list(out.iterdir()) == []  # neither the video nor its temporary
    monkeypatch.undo()
    s = infer(CLIP, onnx_path, output=out / "annotated.mp4", max_frames=30)
    assert s.output_frames == 30 and sorted(p.name for p in out.iterdir()) == ["annotated.mp4"]
    assert sum(1 for _ in av.open(str(out / "annotated.mp4")).decode(video=0)) == 30


def test_a_fifo_input_is_refused_not_waited_on(rgb3d, tmp_path):
    _, onnx_path = rgb3d
    os.mkfifo(tmp_path / "in.mp4")  # PyAV's open blocked forever on it
    res = CliRunner().invoke(cli, ["infer", str(tmp_path / "in.mp4"), "-m", str(onnx_path)])
    assert res.exit_code == 1 and "a FIFO, not a regular file" in res.output, res.output


def test_an_onnx_model_is_read_through_the_gate(tmp_path, monkeypatch):
    from flowprep.errors import ConfigError
    from flowprep.serve import runner

    model = tmp_path / "model.onnx"
    model.write_bytes(b"\x08\x07" * 64)
    monkeypatch.setattr(runner, "MAX_ONNX_BYTES", 100)
    with pytest.raises(ConfigError, match=r"cannot read ONNX model .*model\.onnx: 128 bytes, over the limit of 100"):
        runner.onnx_io(model)
    os.mkfifo(tmp_path / "fifo.onnx")  # before: onnx.load waited on it for ever
    with pytest.raises(ConfigError, match="a FIFO, not a regular file"):
        runner.onnx_io(tmp_path / "fifo.onnx")

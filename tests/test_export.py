"""flowprep export: ONNX parity per architecture x modality, the deploy folder's files parsed back,
TensorRT's pure parts, and CLI errors. Models are tiny (4 frames, 32x32) so exports take seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from flowprep.cli import cli  # noqa: E402
from flowprep.errors import ExportError  # noqa: E402
from flowprep.export import deploy_files, onnx_export  # noqa: E402
from flowprep.export.tensorrt import Profile, build_engine, tensorrt_status, trtexec_command  # noqa: E402
from flowprep.loader.spec import input_shapes  # noqa: E402
from flowprep.train.checkpoint import save_checkpoint  # noqa: E402
from flowprep.train.models import build_model  # noqa: E402

CLASSES = ["walk", "run", "push"]
RECORD = {
    "format": "flowprep-dataset",
    "modality": "both",
    "decode": {"short_side": None, "size": None, "frame_step": 1},
    "rgb": {"image_format": "png", "jpeg_quality": None},
    "flow": {"name": "dis", "params": {}, "device": "cpu"},
    "encoding": {"mode": "fixed", "bound": 20.0, "image_format": "jpg", "jpeg_quality": 95},
}


def make_checkpoint(
    path: Path, arch: str, modality: str, frames: int = 4, size: int = 32, sample_rate: int = 1, seed: int = 0
) -> Path:
    torch.manual_seed(seed)
    model = build_model(arch, modality, len(CLASSES), frames=frames)
    return save_checkpoint(
        path,
        {
            "arch": arch,
            "modality": modality,
            "frames": frames,
            "sample_rate": sample_rate,
            "input_size": size,
            "classes": CLASSES,
            "state_dict": model.state_dict(),
            "dataset_record": RECORD,
            "epoch": 3,
            "best_acc": 0.5,
        },
    )


# 2D RGB and flow stay in `make test-fast`; 3D and joint exports take several seconds each
@pytest.mark.parametrize("arch", ["2d", pytest.param("3d", marks=pytest.mark.slow)])
@pytest.mark.parametrize("modality", ["rgb", "of", pytest.param("joint", marks=pytest.mark.slow)])
def test_export_parity_and_configs(tmp_path, arch, modality):
    ckpt = make_checkpoint(tmp_path / "best.pt", arch, modality)
    out = tmp_path / "deploy"
    res = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(out), "--engine", "--max-batch", "6"])
    assert res.exit_code == 0, res.output
    shapes = input_shapes(arch, modality, 4, 32)

    # ONNX interface: names, opset 17, dynamic batch only
    model = onnx.load(str(out / "model.onnx"))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    ins = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert ins == {n: ["batch", *s] for n, s in shapes.items()}
    assert [o.name for o in model.graph.output] == ["fc_pred"]

    # parity recorded and within tolerance; reported on the console
    rec = json.loads((out / "flowprep_model.json").read_text())
    par = rec["onnx"]["parity"]["fp32"]
    assert par["max_abs_diff"] <= 1e-4 and par["max_rel_diff"] <= par["tolerance"] == 1e-4 and par["batch"] == 2
    assert "max abs diff" in res.output and f"relative {par['max_rel_diff']:.3g} (tolerance 0.0001) ok" in res.output
    assert rec["arch"] == arch and rec["modality"] == modality and rec["frames"] == 4 and rec["input_size"] == 32
    assert rec["inputs"] == {n: list(s) for n, s in shapes.items()}
    assert rec["normalization"]["scale"] == pytest.approx(1 / 127.5) and rec["normalization"]["offset"] == 127.5
    assert rec["flow"]["name"] == "dis" and rec["encoding"] == RECORD["encoding"]
    assert (out / "labels.txt").read_text().splitlines() == CLASSES

    # Triton
    tri = deploy_files.parse_pbtxt((out / "config.pbtxt").read_text())
    assert tri["platform"] == "onnxruntime_onnx" and tri["max_batch_size"] == 6 and tri["name"] == "deploy"
    assert {i["name"]: tuple(i["dims"]) for i in tri["input"]} == shapes
    assert [(o["name"], o["dims"]) for o in tri["output"]] == [("fc_pred", [3])]
    assert all(i["data_type"] == "TYPE_FP32" for i in tri["input"])

    # TensorRT: not here, so the command is printed and the export still succeeds
    if not tensorrt_status()[0]:
        assert "trtexec --onnx=model.onnx" in res.output and not (out / "model.engine").exists()
    assert "--minShapes=" in (out / "build_engine.sh").read_text()

    # DeepStream: RGB only
    pre, inf = out / f"config_preprocess_{arch}_custom.txt", out / f"config_infer_primary_{arch}_action.txt"
    if modality != "rgb":
        assert not pre.exists() and not inf.exists()
        assert "DeepStream" in res.output and "flow" in rec["deepstream"]["note"]
        return
    p = deploy_files.parse_ini(pre.read_text())
    want = "4;12;32;32" if arch == "2d" else "4;3;4;32;32"
    assert p["property"]["network-input-shape"] == want
    assert [int(x) for x in want.split(";")[1:]] == list(shapes["input_rgb"])
    assert p["property"]["tensor-name"] == "input_rgb" and p["property"]["network-color-format"] == "0"
    assert p["property"]["processing-width"] == "32" == p["property"]["processing-height"]
    scales = [float(x) for x in p["user-configs"]["channel-scale-factors"].split(";")]
    assert scales == pytest.approx([1 / 127.5] * 3, rel=1e-6)
    assert p["user-configs"]["channel-mean-offsets"] == "127.5;127.5;127.5"
    i = deploy_files.parse_ini(inf.read_text())["property"]
    assert (out / i["onnx-file"]).is_file() and i["network-type"] == "1" and i["batch-size"] == "4"
    assert (out / i["labelfile-path"]).read_text().strip() == ";".join(CLASSES)
    app = deploy_files.parse_ini((out / "deepstream_action_recognition_config.txt").read_text())["action-recognition"]
    assert app["preprocess-config"] == pre.name and app["infer-config"] == inf.name


@pytest.mark.slow
def test_fp16_variant(tmp_path):
    ckpt = make_checkpoint(tmp_path / "best.pt", "2d", "rgb")
    res = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(tmp_path / "d"), "--fp16"])
    assert res.exit_code == 0, res.output
    half = onnx.load(str(tmp_path / "d" / "model_fp16.onnx"))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in half.graph.initializer)
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 I/O kept
    rec = json.loads((tmp_path / "d" / "flowprep_model.json").read_text())
    assert rec["onnx"]["parity"]["fp16"]["max_rel_diff"] <= rec["onnx"]["parity"]["fp16"]["tolerance"] == 0.02
    assert "network-mode=2" in (tmp_path / "d" / "config_infer_primary_2d_action.txt").read_text()


def test_parity_failure_fails_export(tmp_path, monkeypatch):
    ckpt = make_checkpoint(tmp_path / "best.pt", "2d", "rgb")
    monkeypatch.setattr(onnx_export, "FP32_TOL", -1.0)
    res = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(tmp_path / "d")])
    assert res.exit_code == 1
    assert "differs from PyTorch" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "model.onnx").exists()


@pytest.mark.parametrize(
    ("logits", "error", "ok"),
    [
        (3e15, 1.34e9, True),  # a short-trained model's logits: relative 4e-7
        (300.0, 0.003, True),  # relative 1e-5
        (0.5, 0.003, False),  # small logits: judged against 1, so 3e-3 is too much
        (300.0, 0.5, False),
    ],
)
def test_parity_is_judged_relative_to_the_logits(tmp_path, monkeypatch, logits, error, ok):
    ref = np.array([[logits, -logits / 3], [logits / 2, 0.0]], np.float32)
    got = ref + np.float32(error)
    monkeypatch.setattr(onnx_export, "random_inputs", lambda shapes, batch, seed: {})
    monkeypatch.setattr(onnx_export, "torch_logits", lambda model, inputs: ref)
    monkeypatch.setattr(onnx_export, "ort_logits", lambda path, inputs: got)
    if ok:
        par = onnx_export.check_parity(None, tmp_path / "m.onnx", {})
        assert par["max_rel_diff"] == pytest.approx(par["max_abs_diff"] / max(1.0, logits), rel=1e-6)
        assert par["max_rel_diff"] <= par["tolerance"] and par["scale"] == max(1.0, float(np.abs(ref).max()))
    else:
        with pytest.raises(ExportError, match=r"of the logits' scale .* more than the relative tolerance 0.0001"):
            onnx_export.check_parity(None, tmp_path / "m.onnx", {})
    # a model whose own output is not finite has nothing to compare against
    monkeypatch.setattr(onnx_export, "torch_logits", lambda model, inputs: np.full_like(ref, np.inf))
    with pytest.raises(ExportError, match="PyTorch model's output is not finite"):
        onnx_export.check_parity(None, tmp_path / "m.onnx", {})


def test_export_errors(tmp_path):
    r = CliRunner()
    res = r.invoke(cli, ["export", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "d")])
    assert res.exit_code == 1 and "does not exist" in res.output
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    res = r.invoke(cli, ["export", str(bad), "--out", str(tmp_path / "d")])
    assert res.exit_code == 1 and "not a flowprep checkpoint" in res.output
    ckpt = make_checkpoint(tmp_path / "best.pt", "2d", "rgb")
    res = r.invoke(cli, ["export", str(ckpt), "--out", str(tmp_path / "d"), "--min-batch", "4", "--opt-batch", "2"])
    assert res.exit_code == 1 and "min <= opt <= max" in res.output


def test_tensorrt_profile_and_command():
    shapes = input_shapes("3d", "rgb", 32, 224)
    prof = Profile(1, 4, 16)
    assert prof.shapes(shapes) == {"input_rgb": ((1, 3, 32, 224, 224), (4, 3, 32, 224, 224), (16, 3, 32, 224, 224))}
    cmd = trtexec_command(Path("m.onnx"), Path("m.engine"), shapes, prof, fp16=True, trt_major=10)
    assert cmd[:5] == [
        "trtexec",
        "--onnx=m.onnx",
        "--minShapes=input_rgb:1x3x32x224x224",
        "--optShapes=input_rgb:4x3x32x224x224",
        "--maxShapes=input_rgb:16x3x32x224x224",
    ]
    assert "--saveEngine=m.engine" in cmd and cmd[-1] == "--fp16"
    # TensorRT 11 removed --fp16: precision comes from the (fp16) ONNX graph
    assert "--fp16" not in trtexec_command(Path("m_fp16.onnx"), Path("m.engine"), shapes, prof, True, trt_major=11)
    joint = trtexec_command(Path("m.onnx"), Path("e"), input_shapes("2d", "joint", 32, 224), Profile(1, 1, 2))
    assert "--maxShapes=input_rgb:2x96x224x224,input_of:2x64x224x224" in joint
    with pytest.raises(ExportError):
        Profile(2, 1, 4)


def _fake_cuda_driver(monkeypatch, count: int) -> None:
    """Put a stand-in ``cuda.bindings.driver`` (the real names: cuInit, cuDeviceGetCount, CUresult) in sys.modules."""
    import sys
    import types

    ok = "CUDA_SUCCESS"
    driver = types.SimpleNamespace(
        CUresult=types.SimpleNamespace(CUDA_SUCCESS=ok),
        cuInit=lambda flags: (ok,),
        cuDeviceGetCount=lambda: (ok, count),
    )
    bindings = types.ModuleType("cuda.bindings")
    bindings.driver = driver  # type: ignore[attr-defined]
    cuda = types.ModuleType("cuda")
    cuda.bindings = bindings  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.driver", driver)


def test_cpu_only_torch_does_not_hide_the_gpu(monkeypatch):
    # a CPU torch wheel says "no CUDA" even beside a GPU; the driver is asked instead
    from flowprep.export import tensorrt

    _fake_cuda_driver(monkeypatch, 2)
    monkeypatch.setattr(torch.version, "cuda", None)
    assert tensorrt._cuda_device_count() == 2
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert tensorrt._cuda_device_count() == 0  # a CUDA build of torch that sees no GPU is believed


def test_build_engine_without_tensorrt_says_why(tmp_path):
    if tensorrt_status()[0]:
        pytest.skip("TensorRT and a GPU are present; the engine build is exercised by the gpu test")
    from flowprep.errors import FlowprepError

    with pytest.raises(FlowprepError, match="TensorRT engine"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", {"input_rgb": (3, 4, 32, 32)}, Profile())


@pytest.mark.gpu
def test_build_engine_on_gpu(tmp_path):
    if not tensorrt_status()[0]:
        pytest.skip(f"needs TensorRT and an NVIDIA GPU: {tensorrt_status()[1]}")
    ckpt = make_checkpoint(tmp_path / "best.pt", "3d", "rgb")
    res = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(tmp_path / "d"), "--engine", "--fp16"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "d" / "model.engine").stat().st_size > 0


def test_pbtxt_parser_handles_repeated_blocks():
    text = 'name: "x"\ninput { name: "a" dims: [ 1, 2 ] }\ninput { name: "b" dims: [3] }\n# c\nmax_batch_size: 4\n'
    d = deploy_files.parse_pbtxt(text)
    assert d["name"] == "x" and d["max_batch_size"] == 4
    assert [i["name"] for i in d["input"]] == ["a", "b"] and d["input"][0]["dims"] == [1, 2]
    assert np.isclose(
        float(deploy_files.deepstream_preprocess("3d", 32, 224, 4).split("channel-scale-factors=")[1].split(";")[0]),
        0.007843137,
    )


@pytest.mark.slow
def test_reexport_into_the_same_folder_leaves_no_stale_files(tmp_path):
    out = tmp_path / "deploy"
    (out).mkdir()
    (out / "README.mine").write_text("keep me")
    rgb = make_checkpoint(tmp_path / "rgb.pt", "2d", "rgb")
    assert CliRunner().invoke(cli, ["export", str(rgb), "--out", str(out), "--fp16"]).exit_code == 0
    assert (out / "model_fp16.onnx").is_file() and (out / "config_preprocess_2d_custom.txt").is_file()
    of = make_checkpoint(tmp_path / "of.pt", "3d", "of")
    res = CliRunner().invoke(cli, ["export", str(of), "--out", str(out)])
    assert res.exit_code == 0, res.output
    left = sorted(p.name for p in out.iterdir())
    assert "model_fp16.onnx" not in left and not any(n.startswith("config_preprocess") for n in left)
    assert "labels_nvinfer.txt" not in left and "README.mine" in left
    assert json.loads((out / "flowprep_model.json").read_text())["modality"] == "of"


def test_export_refuses_out_inside_a_datasets_side(tmp_path):
    ds = tmp_path / "ds"
    (ds / "train" / "walk").mkdir(parents=True)
    (ds / "flowprep.json").write_text("{}")
    ckpt = make_checkpoint(tmp_path / "rgb.pt", "2d", "rgb")
    res = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(ds / "train" / "deploy")])
    assert res.exit_code != 0 and "inside the dataset's train/" in res.output, res.output
    assert sorted(p.name for p in (ds / "train").iterdir()) == ["walk"]


def test_a_refused_reexport_removes_nothing(tmp_path):
    out, victim = tmp_path / "deploy", tmp_path / "victim"
    ckpt = make_checkpoint(tmp_path / "rgb.pt", "2d", "rgb")
    assert CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(out)]).exit_code == 0
    before = sorted(p.name for p in out.iterdir())
    victim.write_text("precious")
    (out / "model.onnx").unlink()
    (out / "model.onnx").symlink_to(victim)  # sorts after build_engine.sh, config*, labels*
    res = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(out)])
    assert res.exit_code == 1 and "symlink" in res.output, res.output
    assert sorted(p.name for p in out.iterdir()) == before and victim.read_text() == "precious"


def test_export_never_replaces_a_users_files(tmp_path):
    out = tmp_path / "deploy"
    out.mkdir()
    mine = {"model.onnx": b"my model", "labels.txt": b"my labels", "config.pbtxt": b"my config"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    ckpt = make_checkpoint(tmp_path / "rgb.pt", "2d", "rgb")
    res = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(out)])
    assert res.exit_code == 1 and "not written by flowprep export" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert {n: (out / n).read_bytes() for n in mine} == mine and sorted(p.name for p in out.iterdir()) == sorted(mine)
    # Its own earlier export it does replace, listed in its manifest.
    fresh = tmp_path / "fresh"
    assert CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(fresh)]).exit_code == 0
    listed = json.loads((fresh / ".flowprep-export.json").read_text())["entries"]
    assert "model.onnx" in listed and "model.engine" not in listed
    assert CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(fresh)]).exit_code == 0


def test_an_export_that_fails_after_the_onnx_step_leaves_nothing_deployable(tmp_path, monkeypatch):
    ckpt = make_checkpoint(tmp_path / "rgb.pt", "2d", "rgb")
    out = tmp_path / "deploy"

    def dies(*args, **kwargs):
        raise ExportError("killed after the ONNX step")

    monkeypatch.setattr(deploy_files, "triton_config", dies)
    res = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(out)])
    assert res.exit_code == 1 and "killed after the ONNX step" in res.output, res.output
    assert list(out.iterdir()) == []  # no model.onnx or labels.txt without their record
    monkeypatch.undo()
    assert CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(out)]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(deploy_files, "triton_config", dies)
    res = CliRunner().invoke(cli, ["export", str(make_checkpoint(tmp_path / "of.pt", "2d", "of")), "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier export, whole


def test_two_exports_into_one_folder_at_once_are_refused(tmp_path):
    from flowprep.export.api import LOCK
    from flowprep.fsio.lock import FolderLock

    out = tmp_path / "deploy"
    out.mkdir()
    ckpt = make_checkpoint(tmp_path / "rgb.pt", "2d", "rgb")
    with FolderLock(out, LOCK, "export"):  # another export, running now
        res = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(out)])
    assert res.exit_code == 1 and "another export (pid" in res.output, res.output
    assert sorted(p.name for p in out.iterdir()) == []

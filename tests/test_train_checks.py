"""Consistency checks of `flowprep train --resume` and `flowprep evaluate`: the dataset's recipe
against the checkpoint's, the side of a side folder, and one-line errors for non-PyTorch files."""

from __future__ import annotations

import argparse
import json
import shutil
import types
import zipfile

import pytest

torch = pytest.importorskip("torch")

from flowprep.errors import CheckpointError, ConfigError, FlowprepError  # noqa: E402
from flowprep.layout.dataset_record import record_from_dict  # noqa: E402
from flowprep.layout.fields import Fields  # noqa: E402
from flowprep.layout.sections import recipe_from  # noqa: E402
from flowprep.train.checkpoint import (  # noqa: E402
    load_checkpoint,
    recipe_differences,
    save_checkpoint,
)
from flowprep.train.config import resolve_side  # noqa: E402
from flowprep.train.evaluate import evaluate  # noqa: E402
from flowprep.train.models import build_model, init_from_imagenet  # noqa: E402
from flowprep.train.synthdata import make_tao_dataset  # noqa: E402
from helpers import run_cli  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--frames", "2", "--input-size", "32", "--batch-size", "4", "--workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("checks") / "ds"
    make_tao_dataset(root, train_per_class=1, val_per_class=1, frames=4, height=32, width=32)
    return root


def _variant(ds, dst, **changes):
    """A copy of ``ds`` whose record differs by ``changes`` (dotted field -> value)."""
    shutil.copytree(ds, dst)
    rec = json.loads((dst / "flowprep.json").read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = rec
        for p in parents:
            node = node[p]
        node[last] = value
    (dst / "flowprep.json").write_text(json.dumps(rec))
    return dst


@pytest.fixture(scope="module")
def run(ds, tmp_path_factory):
    """A 2D flow run of one epoch on ``ds``."""
    out = tmp_path_factory.mktemp("checks") / "run"
    res = run_cli("train", ds, "--modality", "of", "--epochs", "1", "--out", out, *TINY)
    assert res.exit_code == 0, res.output
    return out


def _ck(modality, record):
    """What :func:`recipe_differences` reads of a checkpoint: its modality and its data's recipe."""
    return types.SimpleNamespace(modality=modality, recipe=recipe_from(Fields(record)))


def _rec(data):
    return record_from_dict(data)


def test_recipe_differences_per_stream(ds):
    rec = json.loads((ds / "flowprep.json").read_text())
    assert recipe_differences(_ck("joint", rec), _rec(rec)) == []
    other = json.loads(json.dumps(rec))
    other["flow"] = {"name": "farneback", "params": {"levels": 3}, "device": "cpu"}
    other["encoding"]["mode"] = "maxrad"
    other["decode"]["frame_step"] = 2
    other["rgb"]["image_format"] = "jpg"
    diffs = recipe_differences(_ck("of", rec), _rec(other))
    assert diffs == [
        "decode.frame_step: 1 != 2",
        "flow.name: 'synthetic-truth' != 'farneback'",
        "flow.params (another backend)",
        "encoding.mode: 'fixed' != 'maxrad'",
    ]
    # an RGB model reads neither flow nor encoding, but the RGB format
    assert recipe_differences(_ck("rgb", rec), _rec(other)) == [
        "decode.frame_step: 1 != 2",
        "rgb.image_format: 'png' != 'jpg'",
    ]
    # the same backend with other parameters names the parameter; the device does not count
    same = json.loads(json.dumps(rec))
    same["flow"]["params"]["noise"] = 0.5
    same["flow"]["device"] = "cuda"
    assert recipe_differences(_ck("of", rec), _rec(same)) == ["flow.params.noise: 0.3 != 0.5"]
    # sections the checkpoint's record lacks are not compared
    assert recipe_differences(_ck("joint", {"encoding": rec["encoding"]}), _rec(other)) == [
        "encoding.mode: 'fixed' != 'maxrad'"
    ]


def test_resume_refuses_another_recipe(ds, run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    other = _variant(ds, tmp_path / "maxrad", **{"encoding.mode": "maxrad", "decode.size": [64, 48]})
    res = run_cli("train", other, "--modality", "of", "--epochs", "2", "--resume", "--out", copy, *TINY)
    assert res.exit_code == 1
    msg = res.output.strip()
    assert len(msg.splitlines()) == 1 and "--resume" in msg
    assert "encoding.mode: 'fixed' != 'maxrad'" in msg and "decode.size: [32, 32] != [64, 48]" in msg
    # nothing was written: the recorded recipe and the log stay the training data's
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before
    # an RGB-only difference does not matter to a flow model: the resume goes ahead
    rgb_fmt = _variant(ds, tmp_path / "rgbjpg", **{"rgb.image_format": "jpg"})
    res = run_cli("train", rgb_fmt, "--modality", "of", "--epochs", "2", "--resume", "--out", copy, *TINY)
    assert res.exit_code == 0, res.output
    assert load_checkpoint(copy / "last.pt").recipe.encoding.mode == "fixed"


def test_resume_refuses_other_sampling_options(ds, run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    tiny64 = [("64" if a == "32" else a) for a in TINY]
    res = run_cli("train", ds, "--modality", "of", "--epochs", "2", "--resume", "--out", copy, *tiny64)
    assert res.exit_code == 1 and "--input-size 32 -> 64" in res.output


def test_evaluate_refuses_another_recipe_unless_allowed(ds, run, tmp_path, caplog):
    other = _variant(ds, tmp_path / "farneback", **{"flow.name": "farneback", "flow.params": {"levels": 3}})
    res = run_cli("evaluate", run / "best.pt", other, "--out", tmp_path / "ev", "--no-progress")
    assert res.exit_code == 1
    msg = res.output.strip()
    assert len(msg.splitlines()) == 1 and "flow.name: 'synthetic-truth' != 'farneback'" in msg
    assert "--allow-recipe-mismatch" in msg and not (tmp_path / "ev").exists()
    with caplog.at_level("WARNING", logger="flowprep.train.evaluate"):
        res = run_cli(
            "evaluate", run / "best.pt", other, "--out", tmp_path / "ev", "--allow-recipe-mismatch", "--no-progress"
        )
    assert res.exit_code == 0, res.output
    assert "built differently" in caplog.text and "flow.name" in caplog.text
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["recipe_mismatch"][0].startswith("flow.name") and report["modes"]["center"]["clips"] == 5
    # the class check still applies with the flag
    rec = json.loads((ds / "flowprep.json").read_text())
    extra = _variant(ds, tmp_path / "extra", classes=rec["classes"] + ["zz_new"])
    res = run_cli("evaluate", run / "best.pt", extra, "--allow-recipe-mismatch", "--no-progress")
    assert res.exit_code == 1 and "not trained on" in res.output


def test_evaluate_side_of_a_side_folder(ds, run, tmp_path):
    assert resolve_side(ds, None) == "val" and resolve_side(ds, "train") == "train"
    assert resolve_side(ds / "train", None) == "train" and resolve_side(ds / "val", "val") == "val"
    with pytest.raises(ConfigError, match="val side"):
        resolve_side(ds / "val", "train")
    with pytest.raises(ConfigError, match="val side"):
        evaluate(run / "best.pt", ds / "val", side="train", progress=False)
    res = run_cli("evaluate", run / "best.pt", ds / "val", "--side", "train", "--no-progress")
    assert res.exit_code == 2 and "--side" in res.output and "val side" in res.output
    res = run_cli("evaluate", run / "best.pt", ds / "train", "--out", tmp_path / "ev", "--no-progress")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["side"] == "train" and all(
        p["id"].startswith("train/") for p in report["modes"]["center"]["predictions"]
    )
    # default report folder is named after the folder's side
    res = run_cli("evaluate", run / "best.pt", ds / "val", "--side", "val", "--no-progress")
    assert res.exit_code == 0 and (run / "eval-val" / "report.json").is_file()


def _bad_files(tmp_path):
    (tmp_path / "plain.txt").write_text("hi\n")
    (tmp_path / "log.jsonl").write_text('{"epoch": 1, "lr": 0.01}\n')
    torch.save(argparse.Namespace(a=1), tmp_path / "object.pt")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "not torch")
    return {
        "plain.txt": "is not a PyTorch file (not a zip/pickle checkpoint)",
        "log.jsonl": "is not a PyTorch file (not a zip/pickle checkpoint)",
        "object.pt": "holds Python objects other than tensors",
        "other.zip": "is a damaged or foreign zip archive, not a loadable PyTorch file",
    }


def _clean_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    # pickle's "invalid load key ... (105)" must not leak; the temp path may itself hold "105" (pytest-105)
    assert (
        "(105)" not in lines[0]
        and "load key" not in lines[0]
        and "weights_only` argument" not in lines[0]
        and "PyTorch 2.6" not in lines[0]
    )
    return lines[0]


def test_non_pytorch_files_give_one_clean_line(ds, tmp_path):
    for name, expected in _bad_files(tmp_path).items():
        res = run_cli("evaluate", tmp_path / name, ds, "--no-progress")
        assert res.exit_code == 1
        line = _clean_line(res.output)
        assert f"{tmp_path / name} {expected}" in line and "not a flowprep checkpoint" in line
        with pytest.raises(FlowprepError, match="ResNet-18|PyTorch|objects") as err:
            init_from_imagenet(build_model("2d", "rgb", 2, frames=2), tmp_path / name)
        assert expected in str(err.value) and "\n" not in str(err.value)
    res = run_cli(
        "train",
        ds,
        "--modality",
        "of",
        "--epochs",
        "1",
        "--out",
        tmp_path / "r",
        "--imagenet",
        tmp_path / "plain.txt",
        *TINY,
    )
    assert res.exit_code == 1
    assert _clean_line(res.output) == (
        f"flowprep: error: {tmp_path / 'plain.txt'} is not a PyTorch file (not a zip/pickle checkpoint)"
    )


def test_legacy_pickle_checkpoint_still_loads(tmp_path):
    model = build_model("2d", "of", 2, frames=2)
    ck = {
        "arch": "2d",
        "modality": "of",
        "frames": 2,
        "sample_rate": 1,
        "input_size": 32,
        "classes": ["a", "b"],
        "state_dict": model.state_dict(),
        "format": "flowprep-checkpoint",
        "version": 1,
    }
    torch.save(ck, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert load_checkpoint(tmp_path / "legacy.pt").classes == ("a", "b")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    assert save_checkpoint(tmp_path / "new.pt", ck).read_bytes()[:4] == b"PK\x03\x04"


def test_imagenet_fifo_is_refused_not_waited_on(ds, tmp_path):
    import os

    os.mkfifo(tmp_path / "r18.pth")  # torch.load on it blocked forever, waiting for a writer
    with pytest.raises(ConfigError, match="a FIFO, not a regular file"):
        init_from_imagenet(build_model("2d", "rgb", 2, frames=2), tmp_path / "r18.pth")
    res = run_cli("train", ds, "--epochs", "1", "--out", tmp_path / "r", "--imagenet", tmp_path / "r18.pth", *TINY)
    assert res.exit_code == 1 and "a FIFO, not a regular file" in _clean_line(res.output), res.output

"""Checkpoints (flowprep.train.checkpoint, checkpoint_meta, torchfile): one typed reader with training's
limits, a size and zip-ratio check before torch.load, and resume state checked against the run."""

from __future__ import annotations

import io
import json
import os
import random
import zipfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from flowprep.errors import CheckpointError  # noqa: E402
from flowprep.layout.fields import FieldError  # noqa: E402
from flowprep.train import torchfile  # noqa: E402
from flowprep.train.checkpoint import (  # noqa: E402
    check_state_fits,
    load_checkpoint,
    save_checkpoint,
)
from flowprep.train.checkpoint_meta import checkpoint_from_dict  # noqa: E402
from flowprep.train.models import build_model  # noqa: E402
from helpers import mutate, run_cli  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--frames", "2", "--input-size", "32", "--batch-size", "4", "--workers", "0", "--no-progress"]
RECIPE = {
    "format": "flowprep-dataset",
    "modality": "both",
    "decode": {"short_side": None, "size": [32, 32], "frame_step": 1},
    "rgb": {"image_format": "png", "jpeg_quality": None},
    "flow": {"name": "dis", "params": {}, "device": "cpu"},
    "encoding": {"mode": "fixed", "bound": 20.0, "image_format": "png", "jpeg_quality": 95},
}


def _fields(**changes: object) -> dict:
    """A checkpoint dict with a stand-in state_dict (the reader does not build the model)."""
    fields = {
        "format": "flowprep-checkpoint",
        "version": 1,
        "arch": "2d",
        "modality": "of",
        "frames": 2,
        "sample_rate": 1,
        "input_size": 32,
        "classes": ["run", "walk"],
        "state_dict": {"fc.weight": torch.zeros(2, 3)},
        "dataset_record": RECIPE,
        "epoch": 1,
        "best_acc": 0.5,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "params": [0]}]},
        "scheduler": {"last_epoch": 1, "milestones": {15: 1}, "_last_lr": [0.01]},
        "scaler": None,
        "rng_state": {"torch": torch.zeros(4, dtype=torch.uint8)},
        "args": {"lr": 0.01},
    }
    fields.update(changes)
    return fields


def test_reader_gives_typed_fields():
    ck = checkpoint_from_dict(_fields(), "x.pt")
    assert (ck.arch, ck.modality, ck.frames, ck.classes, ck.epoch, ck.where) == (
        "2d",
        "of",
        2,
        ("run", "walk"),
        1,
        "x.pt",
    )
    assert ck.recipe.flow.name == "dis" and ck.recipe.decode.size == (32, 32) and ck.recipe.encoding.bound == 20.0
    assert checkpoint_from_dict(_fields(dataset_record=None, epoch=0)).recipe.flow is None


BAD = {
    "frames a string": ({"frames": "x"}, "frames must be a whole number in [1, 4096], got 'x'"),
    "classes numbers": ({"classes": [1, 2]}, "classes[0] must be a usable name (not a string but int), got 1"),
    "class with a line break": ({"classes": ["le\nft", "b"]}, "classes[0] must be a usable name (a control character"),
    "class with ;": ({"classes": ["a;b", "c"]}, "classes[0] must be a usable name (a ';' in the name"),
    "dataset_record a string": ({"dataset_record": "hello"}, "dataset_record must be an object, got 'hello'"),
    "epoch a string": ({"epoch": "x"}, "epoch must be a whole number in [0, 100000], got 'x'"),
    "best_acc a string": ({"best_acc": "x"}, "best_acc must be a number in [-1, 1], got 'x'"),
    "optimizer a list": ({"optimizer": [1]}, "optimizer must be an object or null, got [1]"),
    "optimizer holds bytes": ({"optimizer": {"state": {0: {"m": b"x"}}}}, "optimizer.state.0.m must be"),
    "too big to run": ({"frames": 4096, "input_size": 1024}, "over the limit of 67,108,864"),
    "too long a span": ({"frames": 64, "sample_rate": 1000, "input_size": 224}, "a smaller sample rate"),
    "recipe damaged": ({"dataset_record": {**RECIPE, "decode": {"frame_step": 0}}}, "decode.frame_step must be"),
    "weights not tensors": ({"state_dict": {"w": [1.0]}}, "state_dict.w must be a tensor"),
}


@pytest.mark.parametrize(("change", "message"), BAD.values(), ids=BAD.keys())
def test_a_bad_checkpoint_is_one_line_naming_file_and_field(tmp_path, change, message):
    path = tmp_path / "bad.pt"
    torch.save(_fields(**change), path)
    for args in (["export", path, "--out", tmp_path / "d"], ["infer", tmp_path, "--model", path]):
        res = run_cli(*args)
        assert res.exit_code == 1 and "Traceback" not in res.output, res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and f"{path}: " in lines[0] and message in lines[0], lines
    assert not (tmp_path / "d").exists()


def test_save_refuses_what_load_would_refuse(tmp_path):
    with pytest.raises(CheckpointError, match=r"refusing to write .*classes\[0\] must be a usable name"):
        save_checkpoint(tmp_path / "a.pt", _fields(classes=["le\nft", "b"]))
    assert not (tmp_path / "a.pt").exists()
    ck = load_checkpoint(save_checkpoint(tmp_path / "b.pt", _fields()))
    assert ck.classes == ("run", "walk") and save_checkpoint(tmp_path / "c.pt", ck).is_file()


def test_a_zip_bomb_is_refused_before_torch_sees_it(tmp_path, monkeypatch):
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb/data.pkl", b"\0" * (64 << 20))  # 64 MiB of zeros in about 64 KiB
    assert path.stat().st_size < 1 << 20

    def no_load(*args, **kwargs):
        raise AssertionError("torch.load must not see this file")

    monkeypatch.setattr(torch, "load", no_load)
    with pytest.raises(CheckpointError, match=r"inflates .* the limit is 100:1\); refused"):
        load_checkpoint(path)
    res = run_cli("export", path, "--out", tmp_path / "d")
    assert res.exit_code == 1 and "refused" in res.output and len(res.output.strip().splitlines()) == 1


def test_a_checkpoint_over_the_size_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(torchfile, "MAX_TORCH_BYTES", 1000)
    path = save_checkpoint(tmp_path / "a.pt", _fields())
    with pytest.raises(CheckpointError, match="over the limit of 1000"):
        load_checkpoint(path)


def test_a_fifo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "ck.pt"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="a FIFO, not a regular file"):
        load_checkpoint(fifo)


def test_optimizer_and_scheduler_state_must_fit_the_run():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2], gamma=0.1)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    good = opt.state_dict()
    check_state_fits(opt, good, "opt")
    check_state_fits(sched, sched.state_dict(), "sched")
    cases = [
        ({**good, "param_groups": [{**good["param_groups"][0], "lr": "x"}]}, "opt.param_groups[0].lr does not fit"),
        ({**good, "param_groups": []}, "opt.param_groups does not fit this run: [] where 1 parameter group"),
        ({**good, "state": {0: {"momentum_buffer": torch.zeros(5)}}}, "opt.state.0.momentum_buffer does not fit"),
        ({**good, "state": {7: {}}}, "no parameter 7 here"),
        ({"state": {}}, "it lacks ['param_groups']"),
    ]
    for loaded, message in cases:
        with pytest.raises(CheckpointError) as err:
            check_state_fits(opt, loaded, "opt")
        assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match=r"it would replace \['optimizer'\]"):
        check_state_fits(sched, {**sched.state_dict(), "optimizer": "x"}, "sched")
    with pytest.raises(CheckpointError, match="sched.last_epoch does not fit"):
        check_state_fits(sched, {**sched.state_dict(), "last_epoch": "x"}, "sched")
    with pytest.raises(CheckpointError, match="sched.milestones does not fit"):
        check_state_fits(sched, {**sched.state_dict(), "milestones": {"a": "b"}}, "sched")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    from flowprep.train.synthdata import make_tao_dataset

    root = tmp_path_factory.mktemp("ckpt")
    make_tao_dataset(root / "ds", {"run": (1.0, 0.0), "walk": (-1.0, 0.0)}, 2, 1, frames=3, height=32, width=32)
    res = run_cli("train", root / "ds", "--modality", "of", "--epochs", "1", "--out", root / "run", *TINY)
    assert res.exit_code == 0, res.output
    return root


def _tampered(run: Path, tmp_path: Path, change) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    data = torch.load(run / "run" / "last.pt", weights_only=True)
    change(data)
    torch.save(data, out / "last.pt")
    return out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["optimizer"]["param_groups"][0].__setitem__("lr", "x"),
            "optimizer.param_groups[0].lr does not fit",
        ),
        (lambda d: d["optimizer"].__setitem__("state", {0: {"momentum_buffer": torch.zeros(3)}}), "momentum_buffer"),
        (lambda d: d["scheduler"].__setitem__("optimizer", None), "it would replace ['optimizer']"),
        (lambda d: d.__setitem__("optimizer", None), "holds no training state"),
        (lambda d: d.__setitem__("epoch", "x"), "epoch must be a whole number"),
        (lambda d: d.__setitem__("best_acc", [0.5]), "best_acc must be a number in [-1, 1]"),
    ],
)
def test_resume_with_damaged_state_is_one_line(run, tmp_path, change, message):
    out = _tampered(run, tmp_path, change)
    before = (out / "last.pt").read_bytes()
    res = run_cli("train", run / "ds", "--modality", "of", "--epochs", "2", "--resume", "--out", out, *TINY)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and str(out / "last.pt") in lines[0] and message in lines[0], lines
    assert (out / "last.pt").read_bytes() == before


def test_a_trained_checkpoint_round_trips(run):
    ck = load_checkpoint(run / "run" / "last.pt")
    assert ck.epoch == 1 and 0 <= ck.best_acc <= 1 and ck.classes == ("run", "walk")
    assert ck.dataset_record["clip_count"] == 6 and "clips" not in ck.dataset_record
    assert ck.recipe.flow.name == "synthetic-truth" and ck.args["modality"] == "of"
    assert checkpoint_from_dict(ck.to_dict(), ck.path) == ck


def test_mutated_checkpoints_raise_only_field_errors():
    base = _fields()
    rng = random.Random(16)
    values = [*json.loads(json.dumps([None, 1, "x", [], {}])), torch.zeros(2), object(), b"bytes", 10**400, -0.0]
    from helpers import ADVERSARIAL

    refused = 0
    for _ in range(3000):
        data = mutate(base, rng, [*ADVERSARIAL, *values])
        try:
            checkpoint_from_dict(data)
        except FieldError:
            refused += 1
    assert refused > 1000


def test_property_checkpoint_reader_raises_only_field_errors():
    hypothesis = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=4)
    values = st.recursive(
        scalars | st.builds(torch.zeros, st.integers(0, 3)),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6) | st.integers(), inner, max_size=4)
        ),
        max_leaves=20,
    )
    keys = st.sampled_from(list(_fields()))

    @hypothesis.settings(max_examples=400, deadline=None)
    @hypothesis.given(st.dictionaries(keys, values, max_size=8))
    def check(changes: dict) -> None:
        try:
            checkpoint_from_dict(_fields(**changes))
        except FieldError:
            pass

    check()


def test_legacy_and_zip_files_load_through_memory(tmp_path):
    model = build_model("2d", "of", 2, frames=2)
    data = _fields(state_dict=model.state_dict())
    buf = io.BytesIO()
    torch.save(data, buf, _use_new_zipfile_serialization=False)
    (tmp_path / "legacy.pt").write_bytes(buf.getvalue())
    assert load_checkpoint(tmp_path / "legacy.pt").frames == 2
    assert Path(save_checkpoint(tmp_path / "zip.pt", data)).read_bytes()[:4] == b"PK\x03\x04"


def test_torch_reads_the_file_that_was_checked_not_what_the_name_leads_to_later(tmp_path, monkeypatch):
    # before: the checks opened the name, then torch.load opened it again: a file swapped in
    # between (after the size and zip-ratio checks) was loaded unchecked
    checked, swapped = tmp_path / "last.pt", tmp_path / "other.pt"
    save_checkpoint(checked, _fields(epoch=1))
    save_checkpoint(swapped, _fields(epoch=7))
    real = torchfile.check_zip_ratio

    def check_then_swap(*args, **kwargs):
        total = real(*args, **kwargs)
        os.replace(swapped, checked)
        return total

    monkeypatch.setattr(torchfile, "check_zip_ratio", check_then_swap)
    assert load_checkpoint(checked).epoch == 1

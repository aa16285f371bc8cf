"""The exported model record, flowprep_model.json (flowprep.train.model_record): one typed reader with
training's limits, used by infer and doctor; what export writes is what it reads."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from flowprep.errors import ConfigError
from flowprep.layout.fields import FieldError
from flowprep.layout.sections import DecodeInfo, FlowInfo, Recipe, RgbInfo
from flowprep.train.model_record import ModelRecord, model_record_from_dict, read_model_record
from helpers import json_values, mutate, run_cli


def _record(**changes: object) -> ModelRecord:
    fields = dict(
        arch="3d",
        modality="joint",
        frames=8,
        sample_rate=2,
        input_size=64,
        classes=("run", "walk", "push"),
        recipe=Recipe("both", DecodeInfo(96, None, 1), RgbInfo("png"), FlowInfo("dis", {"preset": "fast"}, "cpu")),
        epoch=3,
        best_acc=0.75,
        deploy={"onnx": {"file": "model.onnx", "parity": {"fp32": {"max_rel_diff": 1e-7}}}, "triton": {"name": "m"}},
    )
    fields.update(changes)
    return ModelRecord(**fields)  # type: ignore[arg-type]


def test_round_trip():
    rec = _record()
    data = json.loads(json.dumps(rec.to_dict()))
    assert data["num_classes"] == 3 and data["inputs"] == {"input_rgb": [3, 8, 64, 64], "input_of": [2, 8, 64, 64]}
    assert data["dataset_modality"] == "both" and data["checkpoint"] == {"epoch": 3, "best_acc": 0.75}
    assert model_record_from_dict(data) == rec


def _write(folder: Path, data: dict) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "model.onnx").write_bytes(b"not read: the record is refused first")
    (folder / "flowprep_model.json").write_text(json.dumps(data))
    return folder / "model.onnx"


def _changed(**changes: object) -> dict:
    return {**_record().to_dict(), **changes}


BAD = {
    # 4096 frames at 1024 px are each in training's range: together they made infer reach 12.7 GB
    "4096 frames at 1024 px": (
        _changed(frames=4096, input_size=1024, inputs=None),
        "frames, sample_rate and input_size must be a model that fits in memory (4096 frames of 1024x1024",
    ),
    "frames a string": (_changed(frames="x"), "frames must be a whole number in [1, 4096], got 'x'"),
    "input size 4": (_changed(input_size=4), "input_size must be a whole number in [32, 1024], got 4"),
    "sample rate 0": (_changed(sample_rate=0), "sample_rate must be a whole number in [1, 1000], got 0"),
    "class with a line break": (_changed(classes=["le\nft", "b", "c"]), "classes[0] must be a usable name"),
    "class with ;": (_changed(classes=["a;b", "c", "d"]), "a ';' in the name"),
    "classes numbers": (_changed(classes=[1, 2, 3]), "classes[0] must be a usable name (not a string but int)"),
    "num_classes off": (_changed(num_classes=4), "num_classes must be 3 (the number of classes), got 4"),
    "unknown arch": (_changed(arch="5d"), "arch must be one of ('2d', '3d'), got '5d'"),
    "flow params a list": (_changed(flow={"name": "dis", "params": [1]}), "flow.params must be an object"),
    "encoding damaged": (_changed(encoding={"mode": "fixed", "bound": "x"}), "encoding.bound must be a number"),
    "onnx a string": (_changed(onnx="x"), "onnx must be an object or null, got 'x'"),
    "not a model record": (_changed(format="flowprep-dataset"), "format must be 'flowprep-model'"),
    "newer version": (_changed(version=2), "version must be at most 1"),
}


@pytest.mark.parametrize(("data", "message"), BAD.values(), ids=BAD.keys())
def test_a_bad_model_record_is_one_line_naming_file_and_field(tmp_path, data, message):
    if data.get("inputs", "") is None:
        del data["inputs"]
    model = _write(tmp_path / "deploy", data)
    res = run_cli("infer", tmp_path, "--model", model)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and str(model.parent / "flowprep_model.json") in lines[0] and message in lines[0], lines


def test_oversized_and_deep_records_are_refused(tmp_path):
    path = tmp_path / "flowprep_model.json"
    path.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match="nested deeper than 64 levels"):
        read_model_record(path)
    path.write_text(json.dumps(_changed(pad="x" * (17 << 20))))
    with pytest.raises(ConfigError, match="over the limit"):
        read_model_record(path)


def test_mutated_model_records_raise_only_field_errors():
    base = _record().to_dict()
    rng = random.Random(16)
    refused = 0
    for _ in range(3000):
        try:
            model_record_from_dict(mutate(base, rng))
        except FieldError:
            refused += 1
    assert refused > 1000


def test_property_model_record_reader_raises_only_field_errors():
    hypothesis = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")
    values = json_values(st)
    keys = st.sampled_from(list(_record().to_dict()))

    @hypothesis.settings(max_examples=400, deadline=None)
    @hypothesis.given(st.dictionaries(keys, values, max_size=8))
    def check(changes: dict) -> None:
        try:
            model_record_from_dict(_changed(**changes))
        except FieldError:
            pass

    check()

"""The whole product in CI: build -> train -> evaluate -> export (parity) -> infer on real footage."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(*args):
    r = run_cli(*args)
    assert r.exit_code == 0, r.output
    return r


@pytest.mark.slow
def test_build_train_evaluate_export_infer(tiny_release, shared_data, tmp_path):
    data = tmp_path / "hmdb5"
    run(
        "build-hmdb5",
        "--archive",
        tiny_release,
        "--out",
        data,
        "--flow",
        "dis",
        "--size",
        "48x40",
        "-j",
        "2",
        "--no-progress",
    )
    run("verify", data)
    runs = tmp_path / "runs" / "of2d"
    run(
        "train",
        data,
        "--modality",
        "of",
        "--arch",
        "2d",
        "--frames",
        "4",
        "--input-size",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--hflip",
        "0",
        "--optimizer",
        "adamw",
        "--lr",
        "0.001",
        "--out",
        runs,
        "--no-progress",
    )
    assert (runs / "best.pt").is_file() and (runs / "last.pt").is_file()
    assert len((runs / "log.jsonl").read_text().splitlines()) == 2
    ev = run("evaluate", runs / "best.pt", data / "val", "--mode", "all", "--out", tmp_path / "eval")
    assert "conv" in ev.output and "center" in ev.output
    deploy = tmp_path / "deploy"
    ex = run("export", runs / "best.pt", "--out", deploy)
    assert "max abs diff" in ex.output.lower() or "parity" in ex.output.lower()
    meta = json.loads((deploy / "flowprep_model.json").read_text())
    assert meta["modality"] == "of" and meta["encoding"]["mode"] == "fixed"
    assert (deploy / "labels.txt").read_text().split() == ["push", "fall_floor", "walk", "run", "ride_bike"]
    out_json = tmp_path / "windows.jsonl"
    run(
        "infer",
        shared_data / "carphone_pristine.mp4",
        "--model",
        deploy / "model.onnx",
        "--stride",
        "16",
        "--json-out",
        out_json,
    )
    lines = [json.loads(line) for line in out_json.read_text().splitlines()]
    windows = [x for x in lines if x["type"] == "window"]
    assert windows and windows[0]["start_frame"] == 0
    assert lines[-1]["type"] == "clip" and lines[-1]["top_k"][0]["label"] in meta["classes"]

"""``flowprep doctor``: the framework, the run here (everything skipped, exit 0), and its NVOF and
build checks against the stand-in NVIDIA driver (tests/gpu_stub)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from flowprep.cli import cli
from flowprep.doctor.checks import CHECKS, deploy, training
from flowprep.doctor.checks.flow import NVOF_MAX_EPE
from flowprep.doctor.framework import (
    Check,
    CheckFailed,
    CheckResult,
    DoctorContext,
    Skip,
    format_table,
    run_checks,
)
from gpu_stub import harness
from gpu_stub.harness import A100, T4, StubRun, any_major

stub_libdir = harness.stub_libdir  # the session fixture that builds the stand-in driver


def _ok(ctx):
    return "fine", {"n": 1}


def _skip(ctx):
    raise Skip("not here")


def _fail(ctx):
    raise CheckFailed("EPE too high", {"epe": 9.0})


def _crash(ctx):
    raise ValueError("boom")


def test_runner_statuses_and_exit_code(tmp_path):
    checks = [Check("a", _ok, 5, ""), Check("b", _skip, 5, ""), Check("c", _fail, 5, ""), Check("d", _crash, 5, "")]
    summary = run_checks(checks, workdir=tmp_path)
    assert [(r.name, r.status) for r in summary.results] == [
        ("a", "pass"),
        ("b", "skipped"),
        ("c", "fail"),
        ("d", "fail"),
    ]
    assert summary.results[2].numbers == {"epe": 9.0} and summary.results[3].detail == "ValueError: boom"
    assert summary.exit_code == 1
    assert run_checks(checks[:2], workdir=tmp_path).exit_code == 0
    assert "1 passed, 2 failed, 1 skipped" in format_table(summary)


def test_a_reused_workdir_gets_a_fresh_run_folder(tmp_path):
    """Reusing --workdir must not let a check pass on the files of an earlier run (a resumed build
    builds nothing), nor touch the user's files there."""
    seen = []

    def records(ctx):
        seen.append(ctx.workdir)
        assert not any(ctx.workdir.iterdir())
        (ctx.workdir / "made").write_text("x")
        return "ok", {}

    (tmp_path / "mine.txt").write_text("keep")
    for _ in range(2):
        assert run_checks([Check("a", records, 5, "")], workdir=tmp_path).exit_code == 0
    assert seen == [tmp_path / "run-001", tmp_path / "run-002"]
    assert (tmp_path / "mine.txt").read_text() == "keep"


def test_total_budget_skips_the_rest(tmp_path):
    summary = run_checks([Check("a", _ok, 5, "")], workdir=tmp_path, total_budget_s=-1)
    assert summary.results[0].status == "skipped" and "budget" in summary.results[0].detail
    assert CheckResult("x", "pass", "", seconds=2.0, budget_s=1.0).over_budget


def test_checks_are_data():
    names = [c.name for c in CHECKS]
    assert len(set(names)) == len(names) and names[:4] == ["driver", "gpus", "nvof-engine", "nvof-accuracy"]
    assert all(c.budget_s > 0 and callable(c.fn) for c in CHECKS)
    assert sum(c.budget_s for c in CHECKS) <= 900


def test_doctor_here_skips_with_reasons_and_exits_0(tmp_path, monkeypatch):
    """On a machine without the NVIDIA driver every check is skipped, says why, and the exit status is 0."""
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    out = tmp_path / "doctor.json"
    res = CliRunner().invoke(cli, ["doctor", "--quick", "--json-out", str(out)])
    report = json.loads(out.read_text())
    if report["counts"]["pass"]:  # a machine with a GPU: nothing to assert about skips
        return
    assert res.exit_code == 0, res.output
    assert len(report["results"]) == len(CHECKS) and report["counts"]["fail"] == 0
    assert all(r["status"] == "skipped" and r["detail"] for r in report["results"])
    assert "no NVIDIA driver here" in report["results"][0]["detail"]
    assert "skipped in" in res.output


def test_unwritable_report_fails_before_any_check(tmp_path):
    """On a GPU node the checks take minutes: a report path that cannot be written fails first."""
    (tmp_path / "file").write_text("x")
    res = CliRunner().invoke(cli, ["doctor", "--quick", "--json-out", str(tmp_path / "file" / "d.json")])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and "file" in res.output, res.output  # no check ran
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_doctor_nvof_checks_against_the_stand_in(stub_libdir, tmp_path):
    stub = StubRun(stub_libdir, any_major(), tmp_path / "stub.log")
    out = tmp_path / "doctor.json"
    res = stub.flowprep("doctor", "--quick", "--json-out", str(out), gpus=f"{A100};{T4}")
    report = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("driver", "gpus", "nvof-engine", "nvof-accuracy", "nvof-speed", "build"):
        assert report[name]["status"] == "pass", report[name]
    engine = report["nvof-engine"]["numbers"]
    assert engine["gpu0"]["grids"] == [1, 2, 4] and engine["gpu1"]["grids"] == [4]  # Ampere vs Turing
    acc = report["nvof-accuracy"]["numbers"]
    assert acc["sign_ok"] and all(acc[f"grid{g}-slow"]["epe"] <= NVOF_MAX_EPE for g in (1, 2, 4))
    assert report["build"]["numbers"]["gpus"] == 2
    assert report["train-cuda"]["status"] == "skipped"  # the CPU torch sees no CUDA
    assert stub.misuse() == []


def test_infer_provider_is_read_from_the_summary_line():
    line = "64 frames, 3 windows, 2.1 ms/window (onnxruntime (CUDAExecutionProvider, CPUExecutionProvider)), 1.0 s"
    assert deploy._infer_provider("warning: x\n" + line) == "CUDAExecutionProvider"
    assert deploy._infer_provider("64 frames (onnxruntime (CPUExecutionProvider)), 1 s") == "CPUExecutionProvider"
    assert deploy._infer_provider("no summary") == ""


def _fake_infer(monkeypatch, tmp_path, stdout, provider):
    stderr = f"64 frames, 1 windows, 1.0 ms/window (onnxruntime ({provider}, CPUExecutionProvider)), 1.0 s\n"
    monkeypatch.setattr(deploy, "_ort_cuda", lambda: None)
    monkeypatch.setattr(
        deploy, "run_cli", lambda *a, **k: subprocess.CompletedProcess(list(a), 0, stdout=stdout, stderr=stderr)
    )
    return DoctorContext(tmp_path, deploy=tmp_path)


def test_infer_cuda_fails_on_a_silent_cpu_fallback(monkeypatch, tmp_path):
    # onnxruntime-gpu without its CUDA libraries runs on the CPU and exits 0: that must not pass
    ctx = _fake_infer(monkeypatch, tmp_path, '{"window": 0}\n', "CPUExecutionProvider")
    with pytest.raises(CheckFailed, match="not CUDA"):
        deploy.check_infer_cuda(ctx)


def test_infer_cuda_needs_json_lines(monkeypatch, tmp_path):
    ctx = _fake_infer(monkeypatch, tmp_path, "", "CUDAExecutionProvider")
    with pytest.raises(CheckFailed, match="no JSON lines"):
        deploy.check_infer_cuda(ctx)
    ctx = _fake_infer(monkeypatch, tmp_path, '{"window": 0}\n{"window": 1}\n', "CUDAExecutionProvider")
    detail, numbers = deploy.check_infer_cuda(ctx)
    assert numbers == {"json_lines": 2, "provider": "CUDAExecutionProvider"}


def test_ddp_launch_parses_with_torchrun():
    run = pytest.importorskip("torch.distributed.run")
    args = run.get_args_parser().parse_args([*training.DDP_LAUNCH[2:], "train", "ds", "--out", "o"])
    assert (args.standalone, args.nproc_per_node, args.module, args.training_script) == (True, "2", True, "flowprep")
    assert args.training_script_args == ["train", "ds", "--out", "o"]


def test_ddp_check_reads_the_world_size_from_the_log(tmp_path):
    log = tmp_path / "log.jsonl"
    assert training._logged_world_size(log) == 0
    log.write_text('{"epoch": 1, "world_size": 1}\n')
    assert training._logged_world_size(log) == 1  # two lone processes, not DDP: the check fails on this
    log.write_text('{"epoch": 1, "world_size": 2}\n')
    assert training._logged_world_size(log) == 2


def test_ort_parity_turns_tf32_off_where_onnxruntime_can():
    assert deploy._ort_cuda_provider("1.17.3") == "CUDAExecutionProvider"  # no use_tf32 option yet
    assert deploy._ort_cuda_provider("1.18.0") == ("CUDAExecutionProvider", {"use_tf32": "0"})
    assert deploy._ort_cuda_provider("1.32.0")[1] == {"use_tf32": "0"}


def test_ort_cuda_check_with_a_stand_in_session(monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    runs = []

    def fake_run(path, providers, inputs):
        runs.append(providers)
        used = ["CPUExecutionProvider"] if fallback else [p if isinstance(p, str) else p[0] for p in providers]
        return used, np.array([[1.0, 2.0, 3.0]], np.float32)

    monkeypatch.setattr(deploy, "_ort_cuda", lambda: None)
    monkeypatch.setattr(deploy, "_deploy", lambda ctx: tmp_path)
    monkeypatch.setattr(deploy, "_random_inputs", lambda deploy: {})
    monkeypatch.setattr(deploy, "_ort_run", fake_run)
    fallback = False
    detail, numbers = deploy.check_ort_cuda(DoctorContext(tmp_path))
    assert numbers["max_prob_diff"] == 0.0 and runs[0] == ["CPUExecutionProvider"]
    assert runs[1][0] == deploy._ort_cuda_provider(__import__("onnxruntime").__version__)
    fallback = True
    with pytest.raises(CheckFailed, match="fell back"):
        deploy.check_ort_cuda(DoctorContext(tmp_path))

"""flowprep.env: torchrun's, CUDA's and Slurm's variables parsed in one place, with one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowprep.env import DistEnv, GpuEnv, dist_env, gpu_env
from flowprep.errors import ConfigError
from helpers import run_cli

TORCHRUN = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "node1", "MASTER_PORT": "29500"}


def test_one_process_without_torchrun():
    assert dist_env({}) == DistEnv() and not dist_env({}).distributed
    # a stray RANK in a login shell does not matter without WORLD_SIZE > 1
    assert dist_env({"WORLD_SIZE": "1", "RANK": "junk", "LOCAL_RANK": "x"}) == DistEnv()
    assert dist_env({"WORLD_SIZE": ""}) == DistEnv()


def test_torchrun_environment():
    d = dist_env(TORCHRUN)
    assert d == DistEnv(2, 1, 1, 2, "node1", 29500) and d.distributed
    assert dist_env({**TORCHRUN, "WORLD_SIZE": "8", "RANK": "5", "LOCAL_WORLD_SIZE": "4", "LOCAL_RANK": "3"}).rank == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' must be a whole number in [1, 65536]"),
        ({"WORLD_SIZE": "0"}, "WORLD_SIZE='0' must be a whole number"),
        ({"WORLD_SIZE": "-2"}, "WORLD_SIZE='-2' must be a whole number"),
        ({"WORLD_SIZE": "1" + "0" * 30}, "WORLD_SIZE='1000"),
        ({"WORLD_SIZE": "２"}, "WORLD_SIZE='２' must be a whole number"),  # a full-width digit: int() takes it
        ({"RANK": None}, "RANK='' is not set, but WORLD_SIZE > 1 needs it"),
        ({"RANK": "2"}, "RANK='2' must be a whole number in [0, 1]"),
        ({"LOCAL_RANK": "x"}, "LOCAL_RANK='x' must be a whole number in [0, 1]"),
        ({"LOCAL_WORLD_SIZE": "1"}, "LOCAL_RANK='1' must be a whole number in [0, 0]"),
        ({"MASTER_ADDR": None}, "MASTER_ADDR='' is not set"),
        ({"MASTER_ADDR": "a b"}, "MASTER_ADDR='a b' must be a host name or address"),
        ({"MASTER_PORT": "70000"}, "MASTER_PORT='70000' must be a whole number in [1, 65535]"),
        ({"MASTER_PORT": None}, "MASTER_PORT='' is not set"),
    ],
)
def test_malformed_torchrun_variables(change, message):
    env = {k: v for k, v in {**TORCHRUN, **change}.items() if v is not None}
    with pytest.raises(ConfigError) as err:
        dist_env(env)
    text = str(err.value)
    assert message in text and "\n" not in text and "unset it to train in one process" in text


def test_gpu_variables():
    assert gpu_env({}) is None
    assert gpu_env({"CUDA_VISIBLE_DEVICES": "2, GPU-ab,,3"}) == GpuEnv("CUDA_VISIBLE_DEVICES", ("2", "GPU-ab", "3"))
    # CUDA stops at the first invalid entry; -1 hides every device
    assert gpu_env({"CUDA_VISIBLE_DEVICES": "0,-1,1"}).idents == ("0",)
    assert gpu_env({"CUDA_VISIBLE_DEVICES": "", "SLURM_JOB_GPUS": "4"}).idents == ()
    assert gpu_env({"SLURM_STEP_GPUS": " ", "SLURM_JOB_GPUS": "4,5"}) == GpuEnv("SLURM_JOB_GPUS", ("4", "5"))
    assert gpu_env({"SLURM_STEP_GPUS": "1", "SLURM_JOB_GPUS": "4,5"}).source == "SLURM_STEP_GPUS"


def test_only_env_module_reads_the_environment():
    package = Path(__file__).resolve().parents[1] / "flowprep"
    readers = [
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if p.name != "env.py" and ("os.environ" in p.read_text() or "getenv(" in p.read_text())
    ]
    assert readers == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' must be a whole number"),
        ({"WORLD_SIZE": "2"}, "RANK='' is not set, but WORLD_SIZE > 1 needs it"),
        ({**TORCHRUN, "LOCAL_RANK": "x"}, "LOCAL_RANK='x' must be a whole number"),
    ],
)
def test_train_refuses_a_malformed_environment_in_one_line(tmp_path, monkeypatch, env, message):
    pytest.importorskip("torch")
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "ds").mkdir()
    res = run_cli("train", tmp_path / "ds", "--out", tmp_path / "run", "--device", "cpu")
    assert res.exit_code == 1, res.output
    assert message in res.output and len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--seed", "-1"), "Invalid value for '--seed': -1 is not in the range 0<=x<=4294967295"),
        (("--seed", str(10**23)), "Invalid value for '--seed'"),
    ],
)
def test_train_seed_range(tmp_path, args, message):
    (tmp_path / "ds").mkdir()
    res = run_cli("train", tmp_path / "ds", "--out", tmp_path / "run", *args)
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


@pytest.mark.parametrize(
    ("option", "value"), [("--max-clip-bytes", str(10**23)), ("--seed", "-1"), ("--seed", str(10**23))]
)
def test_build_number_ranges(tmp_path, option, value):
    (tmp_path / "src").mkdir()
    res = run_cli("build", tmp_path / "src", "--out", tmp_path / "out", option, value)
    assert res.exit_code == 2 and f"Invalid value for '{option}'" in res.output
    assert "Traceback" not in res.output


def test_library_callers_get_the_same_limits(tmp_path):
    from flowprep.builder.config import BuildConfig
    from flowprep.train.config import TrainConfig

    with pytest.raises(ConfigError, match=r"--seed must be a whole number in \[0, 4294967295\], got -1"):
        TrainConfig(tmp_path / "ds", tmp_path / "run", seed=-1)
    with pytest.raises(ConfigError, match="--max-clip-bytes must be a whole number"):
        BuildConfig(tmp_path, tmp_path / "out", max_clip_bytes=10**23)
    with pytest.raises(ConfigError, match=r"--seed must be a whole number in \[0, 4294967295\], got 10"):
        BuildConfig(tmp_path, tmp_path / "out", seed=10**23)


def test_ddp_setup_errors_are_one_line(monkeypatch):
    torch = pytest.importorskip("torch")
    import torch.distributed as dist

    from flowprep.train import loop

    denv = DistEnv(4, 3, 3, 4, "node1", 29500)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match="LOCAL_RANK=3 names CUDA device 3, but torch sees 2"):
        loop._dist_setup("cuda", denv)

    def refuse(backend):
        raise RuntimeError("The client socket has timed out after 1800s\nmore detail")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", refuse)
    with pytest.raises(ConfigError) as err:
        loop._dist_setup("cpu", denv)
    assert str(err.value) == (
        "cannot join the process group at node1:29500 (rank 3 of 4): The client socket has timed out after 1800s"
    )

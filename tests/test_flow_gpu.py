"""GPU discovery and worker -> GPU assignment (pure, CPU only)."""

from __future__ import annotations

import pytest

from flowprep.errors import ConfigError
from flowprep.flow.gpus import GpuInfo, assign, discover_gpus, gpu_for_worker, parse_gpus, parse_nvidia_smi_list

SMI = """GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaa)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-bbbb)
  MIG 3g.20gb     Device  0: (UUID: MIG-cccc)
GPU 2: NVIDIA H100 80GB HBM3 (UUID: GPU-dddd)
"""


def no_smi():
    return None


def test_parse_nvidia_smi_list():
    gpus = parse_nvidia_smi_list(SMI)
    assert [g.index for g in gpus] == [0, 1, 2]
    assert gpus[2].name == "NVIDIA H100 80GB HBM3" and gpus[0].ident == "GPU-aaaa"


def test_cuda_visible_devices_renumbers():
    gpus = discover_gpus({"CUDA_VISIBLE_DEVICES": "2,0"}, lambda: SMI)
    assert [g.index for g in gpus] == [0, 1]
    assert [g.ident for g in gpus] == ["2", "0"]
    assert gpus[0].name.startswith("NVIDIA H100") and gpus[0].source == "CUDA_VISIBLE_DEVICES"


@pytest.mark.parametrize("value", ["", "-1", "-1,0"])
def test_cuda_visible_devices_hiding_all(value):
    assert discover_gpus({"CUDA_VISIBLE_DEVICES": value}, lambda: SMI) == []


def test_uuid_entries():
    gpus = discover_gpus({"CUDA_VISIBLE_DEVICES": "GPU-bbbb"}, lambda: SMI)
    assert [(g.index, g.ident) for g in gpus] == [(0, "GPU-bbbb")] and "A100" in gpus[0].name


def test_slurm_step_before_job():
    env = {"SLURM_STEP_GPUS": "3,5", "SLURM_JOB_GPUS": "1,3,5,7"}
    gpus = discover_gpus(env, no_smi)
    assert [(g.index, g.ident, g.source) for g in gpus] == [(0, "3", "SLURM_STEP_GPUS"), (1, "5", "SLURM_STEP_GPUS")]
    gpus = discover_gpus({"SLURM_JOB_GPUS": "1,3,5,7"}, no_smi)
    assert len(gpus) == 4 and gpus[0].source == "SLURM_JOB_GPUS"


def test_nvidia_smi_fallback_and_nothing():
    assert [g.index for g in discover_gpus({}, lambda: SMI)] == [0, 1, 2]
    assert discover_gpus({}, no_smi) == []


VISIBLE = [GpuInfo(i, "A100", str(i), "nvidia-smi") for i in range(4)]


def test_parse_gpus():
    assert parse_gpus("all", VISIBLE) == [0, 1, 2, 3]
    assert parse_gpus("0,2", VISIBLE) == [0, 2]
    assert parse_gpus(" 3 , 1 ", VISIBLE) == [3, 1]
    assert parse_gpus([1, 2], VISIBLE) == [1, 2]
    assert parse_gpus(None, VISIBLE) == [0]
    # nothing discovered: explicit ids are trusted
    assert parse_gpus("0,1", []) == [0, 1]


@pytest.mark.parametrize("spec, match", [("all", "no GPU is visible"), ("0,x", "comma-separated"), ("", "empty"),
                                         ("1,1", "twice"), ("-1", ">= 0")])
def test_parse_gpus_errors_without_devices(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_gpus(spec, [])


def test_parse_gpus_not_visible():
    with pytest.raises(ConfigError, match=r"\[5\] not visible"):
        parse_gpus("0,5", VISIBLE)


def test_round_robin_assignment():
    assert [gpu_for_worker(k, [0, 1, 2, 3]) for k in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert assign(5, [2, 5]) == [2, 5, 2, 5, 2]
    assert gpu_for_worker(7, [1]) == 1
    with pytest.raises(ConfigError):
        gpu_for_worker(0, [])
    with pytest.raises(ValueError):
        gpu_for_worker(-1, [0])

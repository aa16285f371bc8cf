"""GPU code paths checked on the CPU: discovery, worker -> GPU assignment, and the GPU-review defects (issue 10)."""

from __future__ import annotations

import contextlib
import sys
import types
from enum import Enum
from pathlib import Path

import numpy as np
import pytest

from flowprep.errors import (
    BackendNotInstalledError,
    BackendUnavailableError,
    ConfigError,
)
from flowprep.flow import nvof, nvof_api, nvof_session, vpi
from flowprep.flow.gpus import (
    GpuInfo,
    assign,
    discover_gpus,
    gpu_for_worker,
    parse_gpus,
    parse_nvidia_smi_list,
)

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


@pytest.mark.parametrize(
    "spec, match",
    [("all", "no GPU is visible"), ("0,x", "comma-separated"), ("", "empty"), ("1,1", "twice"), ("-1", ">= 0")],
)
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


# ------------------------------------------------------------------ defect 1: context order on failure


class _Result(Enum):
    CUDA_SUCCESS = 0


class _FakeDriver:
    """Records the context calls of a session whose set-up fails."""

    CUresult = _Result

    def __init__(self):
        self.calls = []

    def cuDeviceGet(self, gpu):
        return _Result.CUDA_SUCCESS, gpu

    def cuDevicePrimaryCtxRetain(self, dev):
        self.calls.append("retain")
        return _Result.CUDA_SUCCESS, 1234

    def cuCtxPushCurrent(self, ctx):
        self.calls.append("push")
        return (_Result.CUDA_SUCCESS,)

    def cuCtxPopCurrent(self):
        self.calls.append("pop")
        return _Result.CUDA_SUCCESS, 1234

    def cuDevicePrimaryCtxRelease(self, dev):
        self.calls.append("release")
        return (_Result.CUDA_SUCCESS,)


def test_failed_session_setup_pops_before_release(monkeypatch):
    def fail(lib):
        raise BackendUnavailableError("nvOFInit failed")

    monkeypatch.setattr(nvof_api, "bind_entry_points", fail)
    d = _FakeDriver()
    with pytest.raises(BackendUnavailableError):
        nvof_session.Session(d, None, 0, 64, 48, "slow", 1)
    # balanced, and the primary context is released only after it has left the stack
    assert d.calls.count("push") == d.calls.count("pop") and d.calls[-1] == "release", d.calls
    assert d.calls.count("retain") == d.calls.count("release") == 1


# ------------------------------------------------------------------ defect 3: OpenCV's real grid


def test_opencv_path_records_and_upsamples_the_hardware_grid(monkeypatch):
    """OpenCV on Turing: grid 1 asked, engine runs on 4, OpenCV fills grid 1 by nearest neighbour."""
    h, w = 24, 32
    hw = np.arange(6 * 8 * 2, dtype=np.int16).reshape(6, 8, 2) * 8  # hardware 4x4-grid vectors, S10.5

    class FakeCv:
        @classmethod
        def create(cls, size, **kw):
            assert kw["outputGridSize"] == 1
            return cls()

        def calc(self, prev, nxt, flow):
            return np.repeat(np.repeat(hw, 4, 0), 4, 1)[:h, :w]  # what OpenCV's FlowUpsample returns

    monkeypatch.setattr(nvof, "_opencv_nvof", lambda: FakeCv)
    monkeypatch.setattr(nvof, "_opencv_compute_capability", lambda gpu: (7, 5))
    backend = nvof.NvofBackend(grid=1, path="opencv")
    flow = backend.calc(np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8))
    assert backend.describe()["hardware_grid"] == 4 and backend.params()["grid"] == 1
    np.testing.assert_allclose(flow, nvof.upsample_grid_flow(nvof.s10_5_to_float(hw), 4, h, w))
    assert nvof.expected_hardware_grid(1, (8, 0)) == 1 and nvof.expected_hardware_grid(2, (7, 5)) == 4


def test_nvof_params_recreate_the_backend():
    """Build workers call ``type(b)(**b.params())``: params() must hold constructor arguments only."""
    import inspect

    accepted = set(inspect.signature(nvof.NvofBackend.__init__).parameters)
    backend = object.__new__(nvof.NvofBackend)
    backend.preset, backend.grid, backend._path, backend._hw_grid = "slow", 1, "ctypes", 4
    assert set(backend.params()) <= accepted


# ------------------------------------------------------------------ defect 4: install ranges


def _extras():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    return tomllib.loads(text)["project"]["optional-dependencies"]


def test_extras_resolve_on_every_supported_python():
    from packaging.specifiers import SpecifierSet

    (nvof_spec,) = _extras()["nvof"]
    spec = SpecifierSet(nvof_spec.removeprefix("cuda-bindings"))
    assert "12.8.0" in spec and "12.9.10" in spec and "13.5.0" in spec  # 12.x for Python 3.10, 13.x for 3.11+
    assert "12.0.0" not in spec and "14.0.0" not in spec  # 12.0-12.7 were never published
    torch_spec = SpecifierSet(next(r for r in _extras()["train"] if r.startswith("torch")).removeprefix("torch"))
    assert "2.2.2" not in torch_spec and "2.3.0" in torch_spec  # torch.amp.GradScaler("cuda") is 2.3+


# ------------------------------------------------------------------ defect 5: VPI engines


class _Img:
    def __init__(self, sync_error=None):
        self.sync_error = sync_error

    def convert(self, fmt, backend):
        return self

    def rlock_cpu(self):
        if self.sync_error:  # VPI reports an error of the submitted work when it syncs
            raise RuntimeError(self.sync_error)
        return contextlib.nullcontext(np.zeros((16, 16, 2), np.int16))


def _fake_vpi(version, backends, optflow=None):
    names = {n: n for n in backends}
    return types.SimpleNamespace(
        __version__=version,
        optflow_dense=optflow or (lambda *a, **k: _Img()),
        Backend=types.SimpleNamespace(**names),
        OptFlowQuality=types.SimpleNamespace(LOW="LOW"),
        Format=types.SimpleNamespace(Y8_ER="Y8_ER", Y8_ER_BL="Y8_ER_BL", NV12_ER="NV12_ER", NV12_ER_BL="NV12_ER_BL"),
        asimage=lambda a: _Img(),
    )


XAVIER, ORIN = "NVIDIA Jetson AGX Xavier", "NVIDIA Jetson AGX Orin Developer Kit"


@pytest.mark.parametrize("version, backends", [("3.2.4", ["CUDA", "VIC", "OFA"]), ("2.4.8", ["CUDA", "VIC"])])
def test_vpi_xavier_needs_vpi2_with_nvenc(monkeypatch, version, backends):
    monkeypatch.setitem(sys.modules, "vpi", _fake_vpi(version, backends))
    with pytest.raises(BackendUnavailableError, match="python3-vpi2"):
        vpi.check_environment(machine="aarch64", model=XAVIER)


def test_vpi_xavier_with_vpi2(monkeypatch):
    monkeypatch.setitem(sys.modules, "vpi", _fake_vpi("2.4.8", ["CUDA", "VIC", "NVENC"]))
    assert vpi.check_environment(machine="aarch64", model=XAVIER)[1] == "nvenc"
    monkeypatch.setitem(sys.modules, "vpi", None)
    with pytest.raises(BackendNotInstalledError, match="python3-vpi2"):
        vpi.check_environment(machine="aarch64", model=XAVIER)


def test_vpi_orin_ofa_detected_at_run_time(monkeypatch):
    monkeypatch.setitem(sys.modules, "vpi", _fake_vpi("3.2.4", ["CUDA", "VIC", "OFA"]))
    assert vpi.check_environment(machine="aarch64", model=ORIN)[1] == "ofa"

    def no_ofa(*a, **k):
        raise RuntimeError("VPI_ERROR_NOT_IMPLEMENTED")

    monkeypatch.setitem(sys.modules, "vpi", _fake_vpi("3.2.4", ["CUDA", "VIC", "OFA"], no_ofa))
    with pytest.raises(BackendUnavailableError, match="OFA engine cannot run dense optical flow here"):
        vpi.check_environment(machine="aarch64", model="NVIDIA Jetson Orin Nano")


def test_vpi_ofa_probe_waits_for_the_result(monkeypatch):
    # the submit succeeds; the failure only shows when the output is locked (a stream sync)
    fails_later = _fake_vpi("3.2.4", ["CUDA", "VIC", "OFA"], lambda *a, **k: _Img("VPI_ERROR_INVALID_OPERATION"))
    monkeypatch.setitem(sys.modules, "vpi", fails_later)
    with pytest.raises(BackendUnavailableError, match="VPI_ERROR_INVALID_OPERATION"):
        vpi.check_environment(machine="aarch64", model="NVIDIA Jetson Orin Nano")


# ------------------------------------------------------------------ defect 6: NCCL order


def test_ddp_binds_the_device_before_the_process_group(monkeypatch):
    torch = pytest.importorskip("torch")
    import torch.distributed as dist

    from flowprep.train import loop

    order = []
    for var, value in (
        ("WORLD_SIZE", "2"),
        ("RANK", "1"),
        ("LOCAL_RANK", "1"),
        ("MASTER_ADDR", "h"),
        ("MASTER_PORT", "1"),
    ):
        monkeypatch.setenv(var, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: order.append(("set_device", i)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: order.append(("init", backend)))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    rank, world, device = loop._dist_setup("cuda")
    assert order == [("set_device", 1), ("init", "nccl")] and (rank, world, str(device)) == (1, 2, "cuda:1")


# ------------------------------------------------------------------ defect 7: TensorRT status


def test_tensorrt_status_without_torch_is_not_ok(monkeypatch):
    from flowprep.export import tensorrt

    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "cuda", None)
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    ok, why = tensorrt.tensorrt_status()
    assert not ok and "cannot tell whether a CUDA GPU is present" in why


def test_tensorrt_fp16_typing_by_version():
    from flowprep.export.tensorrt import strongly_typed_fp16

    assert not strongly_typed_fp16("10.11.0", True) and not strongly_typed_fp16("10.12.0", False)
    assert strongly_typed_fp16("10.12.0.36", True) and strongly_typed_fp16("11.0.0", True)

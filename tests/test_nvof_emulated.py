"""The nvof backend against the stand-in NVIDIA driver (tests/gpu_stub), with cuda-bindings 12.x and 13.x.

Each test runs flowprep in a subprocess whose ``LD_LIBRARY_PATH`` puts the stand-in
``libcuda.so.1`` / ``libnvidia-opticalflow.so.1`` first; the backend code is the shipped one. Skips
(with the reason) without a C compiler or without the cuda-bindings folders of ``make cuda-bindings``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from gpu_stub import harness
from gpu_stub.harness import A100, T4, StubRun, any_major

stub_libdir = harness.stub_libdir  # the session fixture that builds the stand-in driver

MAJORS = ["12", "13"]


def _stub(stub_libdir, tmp_path, major: str) -> StubRun:
    why = harness.missing_bindings(major)
    if why and os.environ.get("CI"):
        pytest.fail(f"CI must run the emulated nvof tests with both cuda-bindings majors: {why}")
    if why:
        pytest.skip(why)
    return StubRun(stub_libdir, major, tmp_path / "stub.log")


@pytest.fixture(params=MAJORS, ids=lambda m: f"cuda-bindings-{m}")
def stub(request, stub_libdir, tmp_path) -> StubRun:
    """The stand-in driver with each cuda-bindings major."""
    return _stub(stub_libdir, tmp_path, request.param)


@pytest.fixture()
def stub13(stub_libdir, tmp_path) -> StubRun:
    """One major is enough for tests of flowprep's own logic (13.x, else 12.x)."""
    return _stub(stub_libdir, tmp_path, any_major())


FLOW_SCRIPT = """
import json, sys
import numpy as np
from flowprep.synth import texture, translate
from flowprep.flow.nvof import NvofBackend
cases = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {cases!r}
out = []
for grid, dx, dy, h, w in cases:
    a = texture(h, w, 7)[..., 1].copy()
    b = translate(a, dx, dy)
    be = NvofBackend(grid=grid, path="ctypes")
    fwd, bwd = be.calc(a, b), be.calc(b, a)
    m = 8  # interior: content near the borders wraps around in translate()
    out.append(dict(grid=grid, params=be.params(), hw=be.describe()["hardware_grid"], device=be.device(),
                    fwd=np.median(fwd[m:-m, m:-m].reshape(-1, 2), 0).tolist(),
                    bwd=np.median(bwd[m:-m, m:-m].reshape(-1, 2), 0).tolist(),
                    exact=float((np.abs(fwd[m:-m, m:-m] - [dx, dy]) < 1e-6).all(-1).mean())))
    be.close()
print(json.dumps(out))
"""


def _flow(stub: StubRun, cases, **env) -> list[dict]:
    res = stub.python(FLOW_SCRIPT.format(cases=cases), **env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_backends_lists_nvof_available(stub):
    res = stub.flowprep("backends", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["nvof"]["available"], rows["nvof"]
    assert "A100" in json.dumps(rows["nvof"])


def test_known_shifts_sign_and_reverse(stub):
    results = _flow(stub, [(1, 3, -2, 48, 64), (2, -5, 4, 48, 64), (4, 6, 1, 48, 64)])
    for r, (dx, dy) in zip(results, [(3, -2), (-5, 4), (6, 1)]):
        assert r["fwd"] == [dx, dy] and r["bwd"] == [-dx, -dy], r
        assert r["exact"] > 0.9, r
        assert r["hw"] == r["grid"] and "A100" in r["device"]
    stub.assert_balanced()


def test_turing_falls_back_to_grid_4(stub13):
    (r,) = _flow(stub13, [(1, 2, 3, 48, 64)], gpus=T4)
    assert r["params"]["grid"] == 1 and r["hw"] == 4, r
    assert r["fwd"] == [2, 3] and "T4" in r["device"] and "sm_75" in r["device"]
    assert any("grid=4" in line for line in stub13.lines() if "nvof-init" in line)
    stub13.assert_balanced()


def test_frame_size_change_reopens_the_session(stub13):
    code = """
from flowprep.synth import texture, translate
from flowprep.flow.nvof import NvofBackend
be = NvofBackend(grid=4, path="ctypes")
for h, w in [(48, 64), (48, 64), (64, 80)]:
    a = texture(h, w, 1)[..., 1].copy()
    be.calc(a, translate(a, 1, 1))
be.close()
"""
    res = stub13.python(code)
    assert res.returncode == 0, res.stderr
    inits = [line.split(" ", 3)[3] for line in stub13.lines() if " nvof-init " in line]
    assert inits == ["64x48 grid=4 perf=5", "80x64 grid=4 perf=5"], stub13.lines()
    assert sum(" nvof-destroy " in line for line in stub13.lines()) == 2
    stub13.assert_balanced()


BENCH = ("bench-flow", "--flow", "nvof", "--size", "64x48", "--magnitudes", "3", "--pairs-per-magnitude", "1")


@pytest.mark.parametrize("api", ["20", "40"])
def test_older_interfaces_from_2_0_work(stub13, api):
    res = stub13.flowprep(*BENCH, FLOWPREP_STUB_NVOF_API=api)
    assert res.returncode == 0, res.stderr
    stub13.assert_balanced()


def _one_line_error(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 1, (res.returncode, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("flowprep: error: "), res.stderr
    return lines[0]


def test_interface_1_0_is_refused_in_one_line(stub13):
    line = _one_line_error(stub13.flowprep(*BENCH, FLOWPREP_STUB_NVOF_API="10"))
    assert "interface 1.0" in line and "update the driver" in line
    stub13.assert_balanced()


NVOF_CALLS = [
    "NvOFAPICreateInstanceCuda",
    "nvCreateOpticalFlowCuda",
    "nvOFGetCaps",
    "nvOFInit",
    "nvOFSetIOCudaStreams",
    "nvOFCreateGPUBufferCuda",
    "nvOFGPUBufferGetStrideInfo",
    "nvOFExecute",
]
CUDA_CALLS = ["cuInit", "cuDevicePrimaryCtxRetain", "cuCtxPushCurrent", "cuMemcpy2D", "cuCtxSynchronize"]


@pytest.mark.parametrize("call", NVOF_CALLS + CUDA_CALLS)
def test_injected_failure_gives_one_line_and_balanced_state(stub13, call):
    var = "FLOWPREP_STUB_NVOF_FAIL" if call in NVOF_CALLS else "FLOWPREP_STUB_CUDA_FAIL"
    line = _one_line_error(stub13.flowprep(*BENCH, **{var: call}))
    assert call in line and ("NV_OF_ERR_GENERIC" in line or "CUDA_ERROR_UNKNOWN" in line), line
    stub13.assert_balanced()


OLD_BUG = """
from flowprep.flow import nvof, nvof_api, nvof_session

class OldSession(nvof_session.Session):
    # the set-up failure path before the fix: release inside close() while the context pushed at the
    # start of set-up is still on the stack, then pop the destroyed context
    def __init__(self, driver, oflib, gpu, width, height, preset, grid):
        self.driver, self.width, self.height, self.fn = driver, width, height, None
        self._handle, self._buffers = nvof_api.NvOFHandle(), []
        self._dev = nvof_session.cuda_result(driver, driver.cuDeviceGet(gpu), "get")
        self._ctx = nvof_session.cuda_result(driver, driver.cuDevicePrimaryCtxRetain(self._dev), "retain")
        nvof_session.cuda_result(driver, driver.cuCtxPushCurrent(self._ctx), "push")
        try:
            self._open(oflib, width, height, preset, grid)
        except BaseException:
            self.close()
            raise
        finally:
            driver.cuCtxPopCurrent()

nvof.Session = OldSession
from flowprep.cli import main
main({args!r})
"""


def test_stand_in_catches_the_old_context_bug(stub13):
    res = stub13.python(OLD_BUG.format(args=list(BENCH)), FLOWPREP_STUB_NVOF_FAIL="nvOFInit")
    assert res.returncode == 1
    misuse = stub13.misuse()
    assert any("destroyed while on this thread's context stack" in m for m in misuse), stub13.lines()
    assert any("pop of a destroyed context" in m for m in misuse), stub13.lines()
    with pytest.raises(AssertionError):
        stub13.assert_balanced()


def test_multi_gpu_build_each_worker_its_own_device(stub13, tmp_path):
    code = f"""
import shutil
from pathlib import Path
from flowprep.archive.rar4 import make_hmdb51_rars
from flowprep.synth import DEMO_CLASSES, make_release_folder
root = Path({str(tmp_path)!r})
make_release_folder(root / "unpacked", DEMO_CLASSES, sources_per_class=2, clips_per_source=1, frames=5,
                    height=48, width=64, seed=3)
make_hmdb51_rars(root / "unpacked", root / "release")
"""
    res = stub13.python(code)
    assert res.returncode == 0, res.stderr
    rel, out = tmp_path / "release", tmp_path / "hmdb5"
    res = stub13.flowprep(
        "build-hmdb5",
        "--archive",
        str(rel / "hmdb51_org.rar"),
        "--splits",
        str(rel / "test_train_splits.rar"),
        "--out",
        str(out),
        "--flow",
        "nvof",
        "--flow-param",
        "grid=4",
        "-j",
        "2",
        "--gpus",
        "all",
        gpus=f"{A100};{A100}",
    )  # found by `--gpus all` through (stand-in) nvidia-smi
    assert res.returncode == 0, res.stderr
    res = stub13.flowprep("verify", str(out), gpus=f"{A100};{A100}")
    assert res.returncode == 0, res.stdout + res.stderr
    sessions: dict[str, set[str]] = {}
    for line in stub13.lines():
        m = re.match(r"(\d+) nvof-session device=(\d+)", line)
        if m:
            sessions.setdefault(m.group(1), set()).add(m.group(2))
    assert len(sessions) >= 2, stub13.lines()
    assert all(len(devices) == 1 for devices in sessions.values()), sessions
    assert set().union(*sessions.values()) == {"0", "1"}, sessions
    assert stub13.misuse() == []

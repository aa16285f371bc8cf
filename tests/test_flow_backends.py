"""Flow backends: contract of every backend that runs here, auto selection, NVOF/VPI pure parts and errors."""

from __future__ import annotations

import ctypes
import json
import logging
import types

import numpy as np
import pytest
from click.testing import CliRunner

from flowprep.cli import cli
from flowprep.errors import (
    BackendNotInstalledError,
    BackendUnavailableError,
    ConfigError,
    FrameSizeError,
)
from flowprep.flow import nvof, nvof_session, registry, vpi
from flowprep.flow import nvof_api as api
from flowprep.flow.base import FlowBackend
from flowprep.flow.registry import BACKENDS, backend_status, create_backend, resolve_auto
from flowprep.synth import texture, translate
from helpers import invoke_checked

RUNNABLE = [n for n in BACKENDS if backend_status(n)["available"]]
# tiny frames for TV-L1 (slow); (dx, dy) is a sub-pixel shift well inside every backend's range
H, W = 64, 80
SHIFT = (2.5, -1.5)
#: mean end-point error allowed on the shifted texture, px (measured: tvl1 ~0.05, dis ~0.1, farneback ~0.1)
MAX_EPE = {"tvl1": 0.3, "tvl1-fast": 0.3, "dis": 0.5, "dis-fine": 0.5, "farneback": 0.5, "nvof": 0.5, "vpi": 0.75}


@pytest.fixture(scope="module")
def frames():
    import cv2

    rgb = texture(H, W, seed=3)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return gray, cv2.cvtColor(translate(rgb, *SHIFT), cv2.COLOR_RGB2GRAY)


def test_cpu_backends_available_here():
    assert {"tvl1", "tvl1-fast", "dis", "dis-fine", "farneback"} <= set(RUNNABLE)


#: every backend that can run here with its defaults, and the settings that add a stage of their own
CONTRACT_CASES = [pytest.param(n, {}, id=n) for n in RUNNABLE] + [
    pytest.param("dis-fine", {"consistency_px": 1.0}, id="dis-fine-backward-check"),
]


@pytest.mark.parametrize(("name", "params"), CONTRACT_CASES)
def test_contract_zero_flow_and_known_shift(name, params, frames):
    prev, nxt = frames
    backend = create_backend(name, **params)
    try:
        zero = backend.calc(prev, prev)
        assert zero.shape == (H, W, 2) and zero.dtype == np.float32
        assert np.abs(zero).mean() < 0.05
        flow = backend.calc(prev, nxt)
        inner = flow[8:-8, 8:-8]  # the texture wraps in at the border
        err = np.sqrt(((inner - np.float32(SHIFT)) ** 2).sum(-1)).mean()
        assert err < MAX_EPE[name], f"{name}: mean EPE {err:.3f}"
        desc = backend.describe()
        assert desc["name"] == name and json.dumps(desc)
    finally:
        backend.close()
        backend.close()


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"finest_scale": 2, "refine_iterations": 2, "use_spatial_propagation": 0},
        {"presmooth_sigma": 1.2, "refine_iterations": 1, "refine_gamma": 5.0, "refine_sor_iterations": 2},
        {"start_patch_size": 5, "start_patch_stride": 2, "start_refinement_iterations": 0},
    ],
)
def test_dis_fine_recorded_params_make_the_same_backend(params, frames):
    prev, nxt = frames
    backend = create_backend("dis-fine", **params)
    again = create_backend("dis-fine", **json.loads(json.dumps(backend.params())))
    assert backend.params() == again.params() and set(backend.params()) == set(type(backend).DEFAULTS)
    np.testing.assert_array_equal(backend.calc(prev, nxt), again.calc(prev, nxt))


def test_dis_fine_refinement_and_presmoothing_have_their_own_parameters(frames):
    prev, nxt = frames
    base = dict(refine_iterations=2, variational_refinement_iterations=0)
    flow = create_backend("dis-fine", **base).calc(prev, nxt)
    # the full-resolution pass has its own weights (DIS's per-level ones are unused here: 0 iterations)
    assert not np.array_equal(flow, create_backend("dis-fine", **base, refine_alpha=5.0).calc(prev, nxt))
    np.testing.assert_array_equal(
        flow, create_backend("dis-fine", **base, variational_refinement_alpha=5.0).calc(prev, nxt)
    )
    assert not np.array_equal(flow, create_backend("dis-fine", **base, presmooth_sigma=1.0).calc(prev, nxt))


def test_bad_input_rejected():
    backend = create_backend("dis")
    with pytest.raises(ValueError):
        backend.calc(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32))


# ------------------------------------------------------------------------------ auto selection


def _fake_probe(available):
    def probe(name):
        if name in available:
            return f"dev-{name}"
        if name == "vpi":
            raise BackendNotInstalledError("vpi: not installed")
        raise BackendUnavailableError(f"{name}: no device")

    return probe


@pytest.mark.parametrize(
    "available, expected", [({"nvof", "vpi", "tvl1"}, "nvof"), ({"vpi", "tvl1"}, "vpi"), ({"tvl1"}, "tvl1")]
)
def test_resolve_auto_priority(monkeypatch, caplog, available, expected):
    monkeypatch.setattr(registry, "probe", _fake_probe(available))
    with caplog.at_level(logging.INFO, logger="flowprep.flow.registry"):
        assert resolve_auto() == expected
    if expected == "tvl1":
        assert "skipping nvof: nvof: no device" in caplog.text
        assert "skipping vpi: vpi: not installed" in caplog.text


def test_resolve_auto_nothing(monkeypatch):
    monkeypatch.setattr(registry, "probe", _fake_probe(set()))
    with pytest.raises(BackendUnavailableError, match="no flow backend can run here"):
        resolve_auto()


def test_named_backend_that_cannot_run_is_one_line_error():

    res = CliRunner().invoke(cli, ["bench-flow", "--flow", "nvof", "--magnitudes", "2", "--pairs-per-magnitude", "1"])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowprep: error:") and "libcuda.so.1" in lines[0]


def test_unknown_backend_and_bad_param():
    with pytest.raises(ConfigError, match="unknown flow backend"):
        create_backend("raft")
    with pytest.raises(ConfigError):
        create_backend("farneback", nonsense=1)


CPU_BACKENDS = ["tvl1", "tvl1-fast", "dis", "dis-fine", "farneback"]


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_unknown_parameter_names_the_known_ones(name):
    cls = registry.load_backend_class(name)
    known = registry.backend_parameters(cls)
    assert known and known == sorted(known)
    want = f"flow backend {name!r}: unknown parameter 'foo'; known: {', '.join(known)}"
    with pytest.raises(ConfigError) as err:
        create_backend(name, foo=1)
    assert str(err.value) == want
    with pytest.raises(ConfigError, match=r"unknown parameters 'bar', 'foo'; known: "):
        create_backend(name, foo=1, bar=2)
    backend = create_backend(name, **{known[0]: cls().params()[known[0]]})  # a known one is accepted
    backend.close()


def test_parameter_names_from_defaults_or_signature():
    dis = registry.backend_parameters(registry.load_backend_class("dis"))
    assert dis == ["finest_scale", "patch_size", "patch_stride", "preset", "variational_refinement_iterations"]
    assert registry.backend_parameters(registry.load_backend_class("farneback"))[:2] == ["flags", "iterations"]
    assert registry.backend_parameters(nvof.NvofBackend) == ["gpu", "grid", "path", "preset"]

    class Opaque(FlowBackend):
        def __init__(self, **params):
            pass

        def calc(self, prev, nxt):
            return np.zeros((*prev.shape, 2), np.float32)

    assert registry.backend_parameters(Opaque) is None  # the constructor checks for itself


def test_unknown_flow_param_in_build_is_one_line(tmp_path):

    res = CliRunner().invoke(
        cli, ["build", str(tmp_path), "--out", str(tmp_path / "out"), "--flow", "dis", "--flow-param", "foo=1"]
    )
    assert res.exit_code == 2  # a usage error: checked while parsing, before anything is written
    assert res.output.strip().splitlines()[-1] == (
        "Error: Invalid value for '--flow-param': flow backend 'dis': unknown parameter 'foo'; known: "
        "finest_scale, patch_size, patch_stride, preset, variational_refinement_iterations"
    )
    assert not (tmp_path / "out").exists()


def test_backends_command():

    res = CliRunner().invoke(cli, ["backends"])
    assert res.exit_code == 0, res.output
    assert "tvl1-fast  yes" in res.output and "nvof       no" in res.output
    res = CliRunner().invoke(cli, ["backends", "--json"])
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["dis"]["available"] and rows["dis"]["device"] == "cpu"
    assert not rows["nvof"]["available"] and "libcuda.so.1" in rows["nvof"]["why"]
    assert not rows["vpi"]["available"] and "no dense flow on x86" in rows["vpi"]["why"]


# ------------------------------------------------------------------------------------- NVOF


def test_s10_5_conversion():
    v = np.array([[[32, -32], [1, -1]], [[32767, -32768], [16, 48]]], np.int16)
    f = nvof.s10_5_to_float(v)
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f[0, 0], [1.0, -1.0])
    np.testing.assert_array_equal(f[0, 1], [1 / 32, -1 / 32])
    np.testing.assert_allclose(f[1, 0], [1023.96875, -1024.0])
    with pytest.raises(ValueError):
        nvof.s10_5_to_float(v.astype(np.int32))


@pytest.mark.parametrize("grid", [1, 2, 4])
def test_upsampling_keeps_pixel_units(grid):
    h, w = 30, 43  # not multiples of the grid
    gh, gw = api.output_grid_shape(w, h, grid)
    const = np.full((gh, gw, 2), (3.25, -7.5), np.float32)
    up = nvof.upsample_grid_flow(const, grid, h, w)
    assert up.shape == (h, w, 2)
    np.testing.assert_allclose(up, np.broadcast_to(np.float32([3.25, -7.5]), (h, w, 2)), atol=1e-5)
    # a field linear in x, sampled at block centres, comes back linear at every pixel (away from edges)
    cx = (np.arange(gw, dtype=np.float32) + 0.5) * grid - 0.5
    ramp = np.zeros((gh, gw, 2), np.float32)
    ramp[..., 0] = 0.1 * cx[None, :]
    up = nvof.upsample_grid_flow(ramp, grid, h, w)
    xs = np.arange(w, dtype=np.float32)
    inner = slice(grid, w - 2 * grid)
    np.testing.assert_allclose(up[5, inner, 0], 0.1 * xs[inner], atol=1e-4)


def test_upsampling_shape_mismatch():
    with pytest.raises(ValueError):
        nvof.upsample_grid_flow(np.zeros((3, 3, 2), np.float32), 4, 30, 43)


def test_struct_layouts():
    ptr = ctypes.sizeof(ctypes.c_void_p)
    assert ptr == 8
    assert ctypes.sizeof(api.NV_OF_FLOW_VECTOR) == 4
    assert ctypes.sizeof(api.NV_OF_BUFFER_DESCRIPTOR) == 16
    assert ctypes.sizeof(api.NV_OF_CUDA_BUFFER_STRIDE_INFO) == 28
    assert api.NV_OF_INIT_PARAMS.hPrivData.offset == 32
    assert api.NV_OF_INIT_PARAMS.inputBufferFormat.offset == 56
    assert ctypes.sizeof(api.NV_OF_INIT_PARAMS) in (60, 64)
    assert api.NV_OF_EXECUTE_INPUT_PARAMS.disableTemporalHints.offset == 24
    assert api.NV_OF_EXECUTE_INPUT_PARAMS.hPrivData.offset == 32
    assert api.NV_OF_EXECUTE_INPUT_PARAMS.numRois.offset == 44
    assert ctypes.sizeof(api.NV_OF_EXECUTE_INPUT_PARAMS) == 56
    assert ctypes.sizeof(api.NV_OF_EXECUTE_OUTPUT_PARAMS) == 6 * ptr
    assert ctypes.sizeof(api.NV_OF_CUDA_API_FUNCTION_LIST) == 12 * ptr
    assert [f[0] for f in api.NV_OF_CUDA_API_FUNCTION_LIST._fields_][-3:] == [
        "nvOFDestroy",
        "nvOFGetLastError",
        "nvOFGetCaps",
    ]
    assert api.api_version(5, 0) == 0x50 and api.PERF_LEVELS == {"slow": 5, "medium": 10, "fast": 20}
    assert api.output_grid_shape(320, 240, 4) == (60, 80) and api.output_grid_shape(322, 241, 4) == (61, 81)


def test_choose_grid():
    assert nvof_session.choose_grid(1, [1, 2, 4]) == 1
    assert nvof_session.choose_grid(1, [4]) == 4  # Turing
    assert nvof_session.choose_grid(2, [1, 4]) == 4


def _libs(missing):
    def load(name):
        if name in missing:
            raise OSError(f"{name}: cannot open shared object file")
        return object()

    return load


class FakeDriver:
    """Just enough of cuda.bindings.driver for the device checks."""

    class CUresult:
        CUDA_SUCCESS = 0

    class CUdevice_attribute:
        CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = "major"
        CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = "minor"

    def __init__(self, name, cc, count=1):
        self.name, self.cc, self.count = name, cc, count

    def cuInit(self, flags):
        return (0,)

    def cuDeviceGetCount(self):
        return (0, self.count)

    def cuDeviceGet(self, i):
        return (0, i)

    def cuDeviceGetName(self, n, dev):
        return (0, self.name.encode() + b"\0" * 8)

    def cuDeviceGetAttribute(self, attr, dev):
        return (0, self.cc[0] if attr == "major" else self.cc[1])


def test_nvof_no_driver(monkeypatch):
    monkeypatch.setattr(nvof, "_load_library", _libs({"libcuda.so.1", "libnvidia-opticalflow.so.1"}))
    with pytest.raises(BackendUnavailableError, match="no NVIDIA driver"):
        nvof.NvofBackend.probe()


def test_nvof_library_not_mounted(monkeypatch):
    monkeypatch.setattr(nvof, "_load_library", _libs({"libnvidia-opticalflow.so.1"}))
    with pytest.raises(BackendUnavailableError, match="NVIDIA_DRIVER_CAPABILITIES=compute,utility,video"):
        nvof.NvofBackend.probe()


def test_nvof_cuda_bindings_missing(monkeypatch):
    monkeypatch.setattr(nvof, "_load_library", _libs(set()))
    monkeypatch.setattr(nvof, "_opencv_nvof", lambda: None)
    monkeypatch.setitem(__import__("sys").modules, "cuda", None)  # makes `import cuda...` fail
    with pytest.raises(BackendNotInstalledError, match=r"pip install 'flowprep\[nvof\]'"):
        nvof.NvofBackend.probe()


@pytest.mark.parametrize(
    "name, cc, match",
    [
        ("Tesla V100-SXM2-16GB", (7, 0), "Turing or newer"),
        ("NVIDIA GeForce GTX 1650", (7, 5), "TU117"),
        ("NVIDIA T1000", (7, 5), "TU117"),
    ],
)
def test_nvof_gpu_without_engine(monkeypatch, name, cc, match):
    monkeypatch.setattr(nvof, "_load_library", _libs(set()))
    monkeypatch.setattr(nvof, "import_cuda_driver", lambda: FakeDriver(name, cc))
    with pytest.raises(BackendUnavailableError, match=match):
        nvof.NvofBackend.probe()


def test_nvof_good_gpu_probe(monkeypatch):
    monkeypatch.setattr(nvof, "_load_library", _libs(set()))
    monkeypatch.setattr(nvof, "import_cuda_driver", lambda: FakeDriver("NVIDIA A100-SXM4-40GB", (8, 0), count=2))
    assert nvof.NvofBackend.probe() == "cuda:0 (NVIDIA A100-SXM4-40GB, sm_80)"
    assert nvof.NvofBackend.probe(gpu=1).startswith("cuda:1")
    with pytest.raises(BackendUnavailableError, match="GPU 2 does not exist"):
        nvof.NvofBackend.probe(gpu=2)
    assert not nvof.is_tu117("NVIDIA GeForce GTX 1650 SUPER")


def test_nvof_option_validation():
    with pytest.raises(ConfigError, match="preset"):
        nvof.NvofBackend(preset="turbo")
    with pytest.raises(ConfigError, match="grid"):
        nvof.NvofBackend(grid=3)


@pytest.mark.gpu
def test_nvof_on_hardware(frames):
    try:
        backend = create_backend("nvof")
    except (BackendUnavailableError, BackendNotInstalledError) as exc:
        pytest.skip(f"needs an NVIDIA GPU with the optical-flow engine: {exc}")
    flow = backend.calc(*frames)
    assert np.sqrt(((flow[8:-8, 8:-8] - np.float32(SHIFT)) ** 2).sum(-1)).mean() < MAX_EPE["nvof"]


# -------------------------------------------------------------------------------------- VPI


def test_vpi_refuses_x86():
    with pytest.raises(BackendUnavailableError, match="no dense flow on x86"):
        vpi.check_environment(machine="x86_64", model="")


def test_vpi_engine_choice():
    assert vpi.engine_for_model("NVIDIA Jetson AGX Orin Developer Kit") == "ofa"
    assert vpi.engine_for_model("NVIDIA Jetson Xavier NX Developer Kit") == "nvenc"
    assert vpi.engine_for_model("Jetson-AGX") == "nvenc"
    assert vpi.engine_for_model("NVIDIA Jetson Nano Developer Kit") is None
    with pytest.raises(BackendUnavailableError, match="Xavier .NVENC. or Orin .OFA."):
        vpi.check_environment(machine="aarch64", model="NVIDIA Jetson Nano Developer Kit")
    assert vpi.INPUT_CONVERSIONS["nvenc"][-1] == ("NV12_ER_BL", "VIC")
    assert vpi.INPUT_CONVERSIONS["ofa"][0][0] == "Y8_ER"


def test_vpi_pypi_impostor(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "vpi", types.ModuleType("vpi"))
    with pytest.raises(BackendNotInstalledError, match="unrelated PyPI package"):
        vpi.check_environment(machine="aarch64", model="NVIDIA Jetson AGX Orin")
    monkeypatch.setitem(__import__("sys").modules, "vpi", None)
    with pytest.raises(BackendNotInstalledError, match="python3-vpi3"):
        vpi.check_environment(machine="aarch64", model="NVIDIA Jetson AGX Orin")


def test_vpi_padding_and_vectors():
    assert vpi.padded_size(322, 241, "nvenc") == (336, 244)
    assert vpi.padded_size(320, 240, "ofa") == (320, 240)
    f = np.arange(6, dtype=np.uint8).reshape(2, 3)
    p = vpi.pad_frame(f, 5, 4)
    assert p.shape == (4, 5) and p[3, 4] == 5 and p[0, 3] == 2
    vec = np.full((61, 84, 2), 64, np.int16)  # 2 px everywhere, padded 336x244 on the 4x4 grid
    flow = vpi.vectors_to_flow(vec, 241, 322)
    assert flow.shape == (241, 322, 2)
    np.testing.assert_allclose(flow, 2.0)


class _FakeImage:
    def __init__(self, arr, fmt="U8", log=None):
        self.arr, self.fmt, self.log = arr, fmt, log if log is not None else []

    def convert(self, fmt, backend):
        self.log.append((fmt, backend))
        return _FakeImage(self.arr, fmt, self.log)


def test_vpi_backend_with_fake_module(monkeypatch):
    """The whole calc path against a stand-in for JetPack's vpi: conversions, call, S10.5, upsampling."""
    calls = []

    class Lock:
        def __init__(self, data):
            self.data = data

        def __enter__(self):
            return self.data

        def __exit__(self, *a):
            return False

    fake = types.SimpleNamespace(
        Format=types.SimpleNamespace(NV12_ER="NV12_ER", NV12_ER_BL="NV12_ER_BL", Y8_ER="Y8_ER", Y8_ER_BL="Y8_ER_BL"),
        Backend=types.SimpleNamespace(CUDA="CUDA", VIC="VIC", OFA="OFA", NVENC="NVENC"),
        OptFlowQuality=types.SimpleNamespace(LOW="LOW", MEDIUM="MEDIUM", HIGH="HIGH"),
        asimage=lambda arr: _FakeImage(arr, log=calls),
    )

    def optflow_dense(a, b, backend, quality):
        calls.append(("optflow", backend, quality, a.arr.shape))
        h, w = a.arr.shape
        return types.SimpleNamespace(rlock_cpu=lambda: Lock(np.full((h // 4, w // 4, 2), -48, np.int16)))

    fake.optflow_dense = optflow_dense
    monkeypatch.setattr(vpi, "check_environment", lambda: (fake, "ofa", "NVIDIA Jetson AGX Orin"))
    backend = create_backend("vpi", quality="medium")
    flow = backend.calc(np.zeros((30, 42), np.uint8), np.zeros((30, 42), np.uint8))
    assert flow.shape == (30, 42, 2)
    np.testing.assert_allclose(flow, -1.5)
    assert ("optflow", "OFA", "MEDIUM", (32, 44)) in calls
    assert ("Y8_ER", "CUDA") in calls and ("Y8_ER_BL", "VIC") in calls
    desc = backend.describe()
    # params are the constructor's arguments only (build workers re-create the backend from them)
    assert desc["params"] == {"quality": "medium"} and desc["engine"] == "ofa" and desc["grid"] == 4
    assert type(backend)(**desc["params"]).params() == desc["params"]


def test_dis_result_does_not_depend_on_earlier_frame_sizes():
    """OpenCV's DIS lowers its finest scale for small frames and keeps it: our backend resets it."""
    import cv2

    from flowprep.flow.registry import create_backend
    from flowprep.synth import moving_frames

    pair = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in moving_frames(2, 64, 80, (2.0, 0.0), seed=1)]
    small = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in moving_frames(2, 32, 32, (1.0, 1.0), seed=2)]
    for name in ("dis", "tvl1-fast"):
        fresh = create_backend(name).calc(*pair)
        used = create_backend(name)
        used.calc(*small)
        assert np.array_equal(used.calc(*pair), fresh), name


def test_dis_refuses_frames_it_would_crash_on():
    from flowprep.flow.registry import create_backend

    dis = create_backend("dis")
    for h, w in ((1, 1), (4, 4), (12, 40)):  # OpenCV's DIS segfaults on 12x40
        with pytest.raises(FrameSizeError):
            dis.calc(np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8))


@pytest.mark.parametrize("side", [1, 4])
def test_tiny_frames_with_dis(side, tiny_models, tmp_path):
    import cv2

    from flowprep.flow.flo import write_flo

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        cv2.imwrite(str(frames / f"{i:04d}.png"), rng.integers(0, 255, (side, side, 3), dtype=np.uint8))
    write_flo(tmp_path / "gt.flo", np.zeros((side, side, 2), np.float32))
    out = invoke_checked("infer", frames, "--model", tiny_models["of"], "--fps", "10", "--flow", "dis", code=1)
    assert "too small for the dis backend" in out
    out = invoke_checked(
        "bench-flow",
        "--flow",
        "dis",
        "--pairs-per-magnitude",
        "0",
        "--pair",
        frames / "0000.png",
        frames / "0001.png",
        tmp_path / "gt.flo",
        code=1,
    )
    assert "too small for the dis backend" in out

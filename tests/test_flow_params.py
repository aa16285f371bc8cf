"""Backend parameters (flowprep/flow/params.py and each backend's PARAMS): every declared bound at both
edges on tiny frames, the checks at every door (CLI, BuildConfig, records read back), the NaN guard,
the table in docs/flow.md."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from flowprep.cli import cli
from flowprep.errors import ConfigError, FlowResultError, FrameSizeError
from flowprep.flow import registry
from flowprep.flow.base import FlowBackend, check_finite_flow
from flowprep.flow.opencv_cpu import DIS_PRESET_VALUES, DISBackend, dis_coarsest_scale, dis_levels
from flowprep.flow.params import markdown_table
from flowprep.synth import texture, translate

ROOT = Path(__file__).resolve().parents[1]
CPU = ["tvl1", "tvl1-fast", "dis", "dis-fine", "farneback"]
H, W = 32, 40  # tiny: TV-L1 at its iteration limits stays under a few seconds
#: other parameters an edge value needs to satisfy the backend's rules
#: (finest_scale 0: on frames this small OpenCV would otherwise replace the patch size with its own)
COMPANION = {
    ("dis", "patch_size", "lo"): {"patch_stride": 1},
    ("dis", "patch_size", "hi"): {"finest_scale": 0},
    ("dis", "patch_stride", "hi"): {"patch_size": 16, "finest_scale": 0},
    ("dis-fine", "patch_size", "lo"): {"patch_stride": 2},
    ("dis-fine", "patch_size", "hi"): {"finest_scale": 0},
    ("dis-fine", "patch_stride", "hi"): {"patch_size": 16, "finest_scale": 0},
    ("dis-fine", "start_patch_stride", "hi"): {"start_patch_size": 16},
}


def _edges():
    """``(backend, params, side)`` for the allowed value at each declared edge and each allowed choice."""
    out = []
    for name in CPU:
        params, _ = registry.declared_params(name)
        for p in params:
            if p.choices is not None:
                out += [(name, {p.name: c}, "choice") for c in p.choices]
                continue
            for side in ("lo", "hi"):
                bound = getattr(p, side)
                if bound is None:
                    continue
                if p.kind is int:
                    value: float = int(bound)
                elif getattr(p, f"{side}_open"):
                    value = float(np.nextafter(bound, math.inf if side == "lo" else -math.inf))
                else:
                    value = float(bound)
                out.append((name, {p.name: value, **COMPANION.get((name, p.name, side), {})}, side))
    return out


def _outside():
    """``(backend, name, value)`` just outside each declared edge, and a value of each wrong kind."""
    out = []
    for name in CPU:
        params, _ = registry.declared_params(name)
        for p in params:
            if p.choices is not None:
                out.append((name, p.name, "nonsense" if p.kind is str else max(p.choices) + 1))
                continue
            for side, away in (("lo", -math.inf), ("hi", math.inf)):
                bound = getattr(p, side)
                if bound is None:
                    continue
                if p.kind is int:
                    out.append((name, p.name, int(bound) + (1 if away > 0 else -1)))
                else:
                    out.append(
                        (name, p.name, bound if getattr(p, f"{side}_open") else float(np.nextafter(bound, away)))
                    )
            out += [(name, p.name, bad) for bad in ("x", True, math.nan, math.inf, 10**30)]
    return out


@pytest.fixture(scope="module")
def pair():
    import cv2

    rgb = texture(H, W, seed=3)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.cvtColor(translate(rgb, 2.5, -1.5), cv2.COLOR_RGB2GRAY)


@pytest.mark.parametrize("name, params, side", _edges(), ids=lambda v: str(v))
def test_every_edge_computes_finite_nonzero_flow(name, params, side, pair):
    backend = registry.create_backend(name, **params)
    flow = backend.calc(*pair)  # the NaN guard is in calc: a non-finite result raises
    assert flow.shape == (H, W, 2) and np.abs(flow).mean() > 0.1, (name, params)  # the shift is 2.9 px
    # the recorded parameters re-create the same backend (build workers and infer do this)
    assert type(backend)(**backend.params()).params() == backend.params()


@pytest.mark.parametrize("name, param, value", _outside(), ids=lambda v: str(v)[:30])
def test_just_outside_every_edge_is_refused(name, param, value):
    with pytest.raises(ConfigError) as err:
        registry.check_params(name, {param: value})
    text = str(err.value)
    assert text.startswith(f"flow backend {name!r}: {param}=") and f"{param} takes " in text, text
    with pytest.raises(ConfigError):  # the same gate guards construction, whoever constructs
        registry.load_backend_class(name)(**{param: value})


def test_messages_name_backend_parameter_value_and_range():
    with pytest.raises(ConfigError) as err:
        registry.check_params("farneback", {"winsize": 0})
    assert str(err.value) == "flow backend 'farneback': winsize=0 is not allowed; winsize takes an integer in [1, 255]"
    with pytest.raises(ConfigError, match=r"tau takes a number in \(0, 0.25\]"):
        registry.check_params("tvl1", {"tau": 1})
    with pytest.raises(ConfigError, match=r"an integer of 16610 bits"):  # no repr at all for such an int
        registry.check_params("dis", {"patch_size": 10**5000})
    with pytest.raises(ConfigError, match="must be a mapping"):
        registry.check_params("dis", ["patch_size"])
    with pytest.raises(ConfigError, match="unknown parameter 'foo'"):
        registry.check_params("dis", {"foo": 1})
    with pytest.raises(TypeError, match="keyword arguments only"):
        DISBackend("fast")


def test_dis_stride_may_not_exceed_the_patch_from_either_side():
    with pytest.raises(ConfigError, match=r"patch_stride=9 is larger than patch_size=8 \(preset 'medium'\)"):
        registry.check_params("dis", {"patch_stride": 9})
    with pytest.raises(ConfigError, match=r"patch_stride=4 \(preset 'fast'\) is larger than patch_size=2"):
        registry.check_params("dis", {"preset": "fast", "patch_size": 2})
    assert registry.check_params("dis", {"patch_size": 4, "patch_stride": 4})["patch_stride"] == 4


def test_dis_preset_values_are_opencvs():
    import cv2

    for preset, values in DIS_PRESET_VALUES.items():
        alg = cv2.DISOpticalFlow.create({"ultrafast": 0, "fast": 1, "medium": 2}[preset])
        got = dict(
            finest_scale=alg.getFinestScale(),
            variational_refinement_iterations=alg.getVariationalRefinementIterations(),
            patch_size=alg.getPatchSize(),
            patch_stride=alg.getPatchStride(),
        )
        assert got == values, preset


def test_dis_frames_needing_more_pyramid_levels_than_opencv_has_fail_the_clip():
    # OpenCV's DIS indexes past its 10 refinement instances (SIGSEGV, probed) for 4096x4096 with patch 1
    assert dis_coarsest_scale(4096, 4096, 1) == 10 and dis_coarsest_scale(4096, 4096, 2) == 9
    assert dis_coarsest_scale(8192, 8192, 2) == 10 and dis_coarsest_scale(8192, 8192, 3) == 9
    assert dis_coarsest_scale(320, 240, 8) == 3 and dis_coarsest_scale(16, 16, 17) is None
    big = np.zeros((4096, 4096), np.uint8)
    with pytest.raises(FrameSizeError, match=r"too large for the dis backend with patch_size=1 .* use patch_size >= 2"):
        DISBackend(patch_size=1, patch_stride=1).calc(big, big)


@pytest.mark.parametrize(
    "params, width, height, text",
    [
        # OpenCV switches small frames to patch 8 and keeps the stride: heap corruption (valgrind)
        ({"patch_size": 16, "patch_stride": 16}, 40, 32, "switches frames this small to patch_size 8"),
        # its pyramid chosen from the width alone ends below a patch: SIGSEGV (probed)
        ({"finest_scale": 3}, 64, 16, "the coarsest (32x8) is smaller than its 12-px patch"),
        ({"preset": "ultrafast"}, 320, 16, "the coarsest (20x1) is smaller than its 8-px patch"),
    ],
)
def test_dis_frames_opencv_cannot_compute_fail_the_clip(params, width, height, text):
    frame = np.zeros((height, width), np.uint8)
    with pytest.raises(FrameSizeError, match=re.escape(text)):
        DISBackend(**params).calc(frame, frame)


def test_dis_levels_are_opencvs_own_choice():
    """dis_levels predicts the patch size and finest level OpenCV picks, for every frame the backend
    lets through (and those never crash: a crash here fails the whole run)."""
    import cv2

    rng = np.random.default_rng(0)
    checked = chosen = 0
    for w, h in [(16, 16), (40, 32), (80, 64), (320, 240), (320, 16), (1000, 20), (17, 300), (100, 100)]:
        a = (rng.random((h, w)) * 255).astype(np.uint8)
        for patch in (1, 4, 8, 12, 16):
            for finest in range(10):
                backend = DISBackend(finest_scale=finest, patch_size=patch, patch_stride=1)
                try:
                    backend.calc(a, np.roll(a, 1, 1))
                except (FrameSizeError, cv2.error):
                    continue
                levels = dis_levels(w, h, patch, finest)
                assert levels is not None
                alg = backend._alg  # what OpenCV kept after the call
                assert (alg.getPatchSize(), alg.getFinestScale()) == (levels[0], levels[2]), (w, h, patch, finest)
                checked += 1
                chosen += levels[0] != patch
    assert checked > 250 and chosen > 20


def test_one_dis_instance_gives_the_same_flow_whatever_it_saw_before(pair):
    import cv2

    small = np.zeros((16, 64), np.uint8)
    fresh = DISBackend(patch_size=4, patch_stride=2)
    used = DISBackend(patch_size=4, patch_stride=2)
    used.calc(small, small)  # OpenCV switches this instance to patch 8 and finest level 0
    big = cv2.resize(pair[0], (320, 256)), cv2.resize(pair[1], (320, 256))
    assert np.array_equal(used.calc(*big), fresh.calc(*big))


# ---- the NaN guard ---------------------------------------------------------------------------------


class _NaNFlow(FlowBackend):
    name = "nan-test"

    def calc(self, prev, nxt):
        flow = np.zeros((*prev.shape, 2), np.float32)
        flow[1, 2, 0] = np.nan
        flow[3, 4, 1] = np.inf
        return flow


def test_non_finite_flow_is_an_error_not_zero_motion():
    frame = np.zeros((8, 10), np.uint8)
    with pytest.raises(FlowResultError, match="flow backend nan-test returned 2 NaN/inf values of 160 on a 10x8 pair"):
        _NaNFlow().calc(frame, frame)
    check_finite_flow(np.full((2, 2, 2), 3e38, np.float32))  # huge but finite: a float32 sum would overflow
    assert issubclass(FlowResultError, ValueError)  # the builder turns ValueErrors of calc into failed clips


def test_a_clip_whose_flow_is_nan_fails_with_the_reason(tiny_release, tmp_path, monkeypatch):
    from flowprep.builder import job

    monkeypatch.setattr(job, "_backend", lambda settings: _NaNFlow())
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli, ["build", str(tiny_release), "--out", str(out), "--flow", "farneback", "-j", "1", "--no-progress"]
    )
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "returned 2 NaN/inf values" in res.output
    report = json.loads((out / "build_report.json").read_text())
    assert report["failed"] and all("returned 2 NaN/inf values" in f["error"] for f in report["failed"])
    assert report["built"] == 0 and not any(out.glob("train/*/*"))  # nothing encoded as zero motion


# ---- every door: CLI, library, records read back -----------------------------------------------------


@pytest.mark.parametrize("param", ["patch_size=0", "patch_stride=0"])
def test_dis_values_that_crashed_the_build_are_usage_errors(tiny_release, tmp_path, param):
    # a subprocess: these values killed the build with SIGFPE (exit 136), leaving a lock and .flowprep-tmp
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "flowprep", "build", str(tiny_release), "--out", str(out), "--flow", "dis"]
        + ["--flow-param", param, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    name = param.split("=")[0]
    assert res.stderr.strip().splitlines()[-1] == (
        f"Error: Invalid value for '--flow-param': flow backend 'dis': {param} is not allowed; "
        f"{name} takes an integer in [1, 16] or null (the preset's value)"
    )
    assert "Traceback" not in res.stderr and not out.exists()  # no lock, no .flowprep-tmp


@pytest.mark.parametrize(
    "flow, param, shown",
    [
        (
            "farneback",
            "winsize=0",
            "flow backend 'farneback': winsize=0 is not allowed; winsize takes an integer in [1, 255]",
        ),
        ("farneback", "levels=99999999999999999999999", "levels=99999999999999999999999 is not allowed"),
        ("tvl1", "tau=abc", "flow backend 'tvl1': tau='abc' is not allowed; tau takes a number in (0, 0.25]"),
        ("tvl1", "scales=2.0", "scales=2.0 is not allowed; scales takes an integer in [1, 10]"),
        ("tvl1", "tau=1e999", "tau=1e999: not a finite number"),
        ("tvl1", "tau=nan", "tau=nan: not a finite number"),
    ],
)
def test_cli_refuses_bad_values_before_anything_runs(tiny_release, tmp_path, flow, param, shown):
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli, ["build", str(tiny_release), "--out", str(out), "--flow", flow, "--flow-param", param, "--no-progress"]
    )
    assert res.exit_code == 2, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and shown in errors[0], res.output
    assert "Traceback" not in res.output and not out.exists()


def test_auto_is_checked_once_resolved(tiny_release, tmp_path):
    res = CliRunner().invoke(
        cli, ["build", str(tiny_release), "--out", str(tmp_path / "o"), "--flow", "auto", "--flow-param", "tau=0"]
    )
    assert res.exit_code == 1 and res.output.strip().splitlines() == [
        "flowprep: error: flow backend 'tvl1': tau=0 is not allowed; tau takes a number in (0, 0.25]"
    ]


def test_build_config_checks_flow_params(tmp_path):
    from flowprep.builder.config import BuildConfig

    with pytest.raises(ConfigError, match="flow backend 'dis': patch_size=0 is not allowed"):
        BuildConfig(source=tmp_path, out=tmp_path / "o", flow="dis", flow_params={"patch_size": 0})
    with pytest.raises(ConfigError, match="flow_params must be a dict"):
        BuildConfig(source=tmp_path, out=tmp_path / "o", flow="dis", flow_params=[("patch_size", 8)])  # type: ignore[arg-type]
    BuildConfig(source=tmp_path, out=tmp_path / "o", flow="dis", flow_params={"patch_size": 12})


def test_recorded_params_read_back_are_checked():
    # what a dataset record's or a model record's reader calls (flow.params of the record)
    recorded = {"preset": "medium", "finest_scale": 1, "variational_refinement_iterations": 5}
    assert registry.check_params("dis", {**recorded, "patch_size": 8, "patch_stride": 3})["patch_size"] == 8
    with pytest.raises(ConfigError, match="patch_size=0"):
        registry.check_params("dis", {**recorded, "patch_size": 0, "patch_stride": 0})


# ---- the table -----------------------------------------------------------------------------------


def test_backends_params_lists_every_declaration():
    res = CliRunner().invoke(cli, ["backends", "--params", "dis", "farneback"])
    assert res.exit_code == 0, res.output
    assert "patch_size" in res.output and "an integer in [1, 16]" in res.output
    assert "rule: patch_stride <= patch_size" in res.output and "tvl1:" not in res.output
    data = json.loads(CliRunner().invoke(cli, ["backends", "--params", "--json"]).output)
    assert set(data) == set(registry.BACKENDS)
    assert {"name": "winsize", "type": "int", "lo": 1, "hi": 255}.items() <= data["farneback"]["params"][2].items()
    bad = CliRunner().invoke(cli, ["backends", "--params", "raft"])
    assert bad.exit_code == 2 and "unknown flow backend 'raft'" in bad.output


def test_every_backend_declares_its_parameters():
    for name in registry.BACKENDS:
        cls = registry.load_backend_class(name)
        assert cls.PARAMS, f"{name} declares no PARAMS (flowprep/flow/params.py)"
        assert all(p.meaning for p in cls.PARAMS)


def test_docs_table_is_the_declarations():
    """docs/flow.md carries `flowprep backends --params --markdown` between the markers."""
    text = (ROOT / "docs" / "flow.md").read_text()
    begin, end = "<!-- flow-params:begin -->\n", "<!-- flow-params:end -->"
    assert begin in text and end in text
    table = text.split(begin, 1)[1].split(end, 1)[0]
    declared = [(name, *registry.declared_params(name)) for name in registry.BACKENDS]
    assert table == markdown_table(declared), "regenerate with `flowprep backends --params --markdown`"


# --- records made before a parameter existed ------------------------------------------------------


def test_every_absent_value_is_an_allowed_value():
    from flowprep.flow.params import SAME_AS_DEFAULT

    for name in registry.BACKENDS:
        for p in registry.declared_params(name)[0]:
            if p.absent is not SAME_AS_DEFAULT:
                assert p.problem(p.absent) is None, (name, p.name)


def test_a_record_older_than_a_stage_recreates_the_flow_it_was_made_with():
    from flowprep.flow.params import with_absent

    # a dis-fine record from before the fill, the median and the mismatch confidence existed
    old = {"finest_scale": 0, "patch_size": 8, "patch_stride": 4, "refine_iterations": 5}
    params = registry.recorded_params("dis-fine", old)
    assert params["fill_occlusions"] == 0 and params["median_size"] == 0 and params["match_sigma"] == 0.0
    assert params["patch_stride"] == 4  # what the record says stands
    assert params["refine_alpha"] == registry.load_backend_class("dis-fine").DEFAULTS["refine_alpha"]
    # a record that has them keeps its values; a backend without absent values only gets defaults later
    full = registry.recorded_params("dis-fine", {"median_size": 5, "match_sigma": 10.0, "fill_occlusions": 1})
    assert (full["median_size"], full["match_sigma"], full["fill_occlusions"]) == (5, 10.0, 1)
    assert with_absent(registry.declared_params("dis")[0], {"patch_size": 8}) == {"patch_size": 8}
    # still the gate: a bad recorded value is refused in one line
    with pytest.raises(ConfigError, match="match_sigma=-1"):
        registry.recorded_params("dis-fine", {"match_sigma": -1})


def test_infer_recreates_a_recorded_backend_with_the_parameters_the_record_predates():
    import types

    from flowprep.layout.sections import FlowInfo
    from flowprep.serve.infer import _flow_backend

    recipe = types.SimpleNamespace(flow=FlowInfo("dis-fine", {"patch_stride": 4}, "cpu"), encoding="fixed")
    spec = types.SimpleNamespace(recipe=recipe, source="model.onnx", modality="of")
    backend = _flow_backend(spec, None)  # type: ignore[arg-type]
    got = backend.params()
    assert got["patch_stride"] == 4 and got["median_size"] == 0 and got["match_sigma"] == 0.0
    assert got["fill_occlusions"] == 0

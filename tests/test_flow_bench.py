"""bench-flow: .flo files, colour wheel, synthetic warps with known flow, metrics, the stage and its CLI."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from flowprep.errors import DatasetError, DecodeError
from flowprep.flow.bench import bench_flow
from flowprep.flow.bench_measure import encoding_error, epe
from flowprep.flow.bench_report import BenchResult, format_table
from flowprep.flow.encoding import FlowEncoding
from flowprep.flow.flo import UNKNOWN_FLOW, read_flo, valid_mask, write_flo
from flowprep.flow.pairs import load_frames, smooth_field, synthetic_pairs, warp_pair
from flowprep.flow.visualize import color_wheel, flow_to_color
from flowprep.synth import texture


@pytest.fixture(scope="module")
def gray():
    return cv2.cvtColor(texture(72, 96, seed=5), cv2.COLOR_RGB2GRAY)


def test_flo_round_trip(tmp_path):
    flow = np.random.default_rng(0).normal(size=(7, 5, 2)).astype(np.float32)
    flow[0, 0] = UNKNOWN_FLOW
    write_flo(tmp_path / "a.flo", flow)
    raw = (tmp_path / "a.flo").read_bytes()
    assert raw[:4] == b"PIEH" and len(raw) == 12 + 7 * 5 * 8
    back = read_flo(tmp_path / "a.flo")
    np.testing.assert_array_equal(back, flow)
    mask = valid_mask(back)
    assert not mask[0, 0] and mask.sum() == 34


def test_flo_errors(tmp_path):
    (tmp_path / "bad.flo").write_bytes(b"nope" + bytes(8))
    with pytest.raises(DatasetError, match="not a Middlebury"):
        read_flo(tmp_path / "bad.flo")
    write_flo(tmp_path / "t.flo", np.zeros((4, 4, 2), np.float32))
    (tmp_path / "t.flo").write_bytes((tmp_path / "t.flo").read_bytes()[:-8])
    with pytest.raises(DatasetError, match="truncated"):
        read_flo(tmp_path / "t.flo")
    with pytest.raises(DatasetError, match="cannot read"):
        read_flo(tmp_path / "missing.flo")


def test_colour_wheel():
    wheel = color_wheel()
    assert wheel.shape == (55, 3) and wheel.min() >= 0 and wheel.max() <= 255
    flow = np.zeros((3, 3, 2), np.float32)
    flow[1, 1] = (2, 0)  # right, full speed
    flow[0, 0] = np.nan
    img = flow_to_color(flow)
    assert img.shape == (3, 3, 3) and img.dtype == np.uint8
    assert tuple(img[2, 2]) == (255, 255, 255)  # no motion is white
    assert img[1, 1, 0] > 200 and img[1, 1, 1] < 60  # rightwards is red
    assert tuple(img[0, 0]) == (0, 0, 0)


def test_smooth_field_magnitude():
    f = smooth_field(48, 64, 12.0, np.random.default_rng(1))
    assert f.shape == (48, 64, 2) and f.dtype == np.float32
    assert np.sqrt((f**2).sum(-1)).max() == pytest.approx(12.0, rel=1e-4)
    # smooth: neighbouring vectors differ far less than a pixel
    assert np.abs(np.diff(f, axis=1)).max() < 0.5


def test_warp_constant_field(gray):
    field = np.zeros(gray.shape + (2,), np.float32)
    field[...] = (3.0, -2.0)
    f2, flow, valid = warp_pair(gray, field)
    np.testing.assert_allclose(flow, field, atol=1e-5)
    # frame2(y) = frame1(y - (3, -2)): content moved right by 3 and up by 2
    np.testing.assert_array_equal(f2[5:-5, 5:-5], gray[7:-3, 2:-8])
    assert not valid[:, -3:].any() and valid[10:-10, 10:-10].all()


def test_warp_forward_flow_is_consistent(gray):
    field = smooth_field(*gray.shape, 8.0, np.random.default_rng(2))
    f2, flow, valid = warp_pair(gray, field)
    h, w = gray.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    # the defining property of the true forward flow: frame1(x) == frame2(x + F(x))
    back = cv2.remap(f2.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR)
    err = np.abs(back - gray.astype(np.float32))[valid]
    assert valid.mean() > 0.7 and err.mean() < 3.0  # two bilinear resamplings of a textured image
    # using the field itself as the flow (the common mistake) is measurably worse
    wrong = cv2.remap(f2.astype(np.float32), gx + field[..., 0], gy + field[..., 1], cv2.INTER_LINEAR)
    assert np.abs(wrong - gray.astype(np.float32))[valid].mean() > err.mean()


def test_dis_recovers_synthetic_flow():
    pairs, source = synthetic_pairs((96, 72), magnitudes=(4.0,), per_magnitude=1, video=None)
    assert source == "flowprep.synth.texture" and pairs[0].magnitude == 4.0
    p = pairs[0]
    est = cv2.DISOpticalFlow_create(2).calc(p.prev, p.nxt, None)
    assert epe(est, p.flow, p.valid).mean() < 1.0


def test_load_frames_from_video_and_fallback(tmp_path):
    from flowprep.synth import moving_frames, write_video

    write_video(tmp_path / "v.avi", moving_frames(25, 48, 64, (1.0, 0.0), seed=0), codec="ffv1")
    frames, src = load_frames(tmp_path / "v.avi", 3, (32, 24))
    assert src.endswith("v.avi") and len(frames) == 3 and frames[0].shape == (24, 32) and frames[0].dtype == np.uint8
    frames, src = load_frames(None, 2, (32, 24))
    assert src == "flowprep.synth.texture" and len(frames) == 2
    with pytest.raises(DecodeError, match="missing.mp4: cannot decode it"):  # a video named must be one
        load_frames(tmp_path / "missing.mp4", 2, (32, 24))


def test_encoding_error_rows():
    pairs, _ = synthetic_pairs((64, 48), magnitudes=(3.0, 30.0), per_magnitude=1, video=None)
    png = encoding_error(pairs, FlowEncoding("maxrad", image_format="png"))
    assert png.epe_mean < 0.15 and png.frac_over_1px == 0
    fixed = encoding_error(pairs, FlowEncoding("fixed", 20.0, "png"))
    assert fixed.epe_by_magnitude["3"] < 0.1  # half a step of 40/255 px
    assert fixed.epe_by_magnitude["30"] > 10 * fixed.epe_by_magnitude["3"]  # clipped at 20 px
    jpg = encoding_error(pairs, FlowEncoding("fixed", 20.0, "jpg", 95))
    assert jpg.epe_by_magnitude["3"] >= fixed.epe_by_magnitude["3"] - 1e-6


def test_bench_stage(tmp_path, gray):
    # a user pair: a pure 2 px shift to the right with its .flo
    m = np.float32([[1, 0, 2], [0, 1, 0]])
    shifted = cv2.warpAffine(gray, m, (gray.shape[1], gray.shape[0]), borderMode=cv2.BORDER_REFLECT)
    cv2.imwrite(str(tmp_path / "f1.png"), gray)
    cv2.imwrite(str(tmp_path / "f2.png"), shifted)
    gt = np.zeros(gray.shape + (2,), np.float32)
    gt[..., 0] = 2
    gt[:, -2:] = UNKNOWN_FLOW
    write_flo(tmp_path / "gt.flo", gt)
    result = bench_flow(
        ["dis", "farneback"],
        size=(96, 72),
        magnitudes=(2.0, 8.0),
        per_magnitude=1,
        video=None,
        extra_pairs=[(tmp_path / "f1.png", tmp_path / "f2.png", tmp_path / "gt.flo")],
        plot=tmp_path / "plot.png",
        vis_dir=tmp_path / "vis",
    )
    assert isinstance(result, BenchResult)
    assert [b.name for b in result.backends] == ["dis", "farneback"]
    dis = result.backends[0]
    assert dis.available and dis.pairs == 3 and dis.fps > 0 and dis.epe_mean < 1.5
    assert set(dis.epe_by_magnitude) == {"2", "8", "f1.png"} and dis.epe_by_magnitude["f1.png"] < 1.0
    assert 0 <= dis.frac_over_3px <= dis.frac_over_1px <= 1
    assert (tmp_path / "plot.png").stat().st_size > 1000
    assert len(result.vis_files) == 2 and all((tmp_path / "vis").glob("flow_dis_*.png"))
    assert {e.label for e in result.encodings} == {
        "fixed bound 20 png",
        "fixed bound 20 jpg q95",
        "maxrad png",
        "maxrad jpg q95",
    }
    data = json.loads(json.dumps(result.to_dict()))
    assert data["size"] == [96, 72] and data["sizes"] == [[96, 72]]
    notes = {e["label"]: e["note"] for e in data["encodings"]}
    assert notes["maxrad png"] == notes["maxrad jpg q95"] == "per-frame scale known; not stored in the images"
    assert notes["fixed bound 20 png"] == ""
    table = format_table(result)
    assert "dis" in table and "on 3 pairs at 96x72;" in table
    maxrad_rows = [line for line in table.splitlines() if "maxrad" in line]
    assert len(maxrad_rows) == 2 and all(
        line.endswith("(per-frame scale known; not stored in the images)") for line in maxrad_rows
    )
    assert not any("scale known" in line for line in table.splitlines() if "fixed" in line)


def test_bench_header_gives_the_real_pair_sizes(tmp_path):
    from flowprep.cli import cli

    small = cv2.cvtColor(texture(48, 64, seed=2), cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(tmp_path / "a.png"), small)
    cv2.imwrite(str(tmp_path / "b.png"), small)
    write_flo(tmp_path / "gt.flo", np.zeros((48, 64, 2), np.float32))
    pair = ["--pair", str(tmp_path / "a.png"), str(tmp_path / "b.png"), str(tmp_path / "gt.flo")]
    res = CliRunner().invoke(cli, ["bench-flow", "--flow", "dis", *pair, "--pairs-per-magnitude", "0"])
    assert res.exit_code == 0, res.output
    first = res.output.splitlines()[0]
    assert first.startswith("flow backends on 1 pair at 64x48;") and "320x240" not in res.output
    res = CliRunner().invoke(cli, ["bench-flow", "--flow", "dis", *pair, "--pairs-per-magnitude", "0", "--json"])
    data = json.loads(res.output)
    assert data["size"] is None and data["sizes"] == [[64, 48]]
    res = CliRunner().invoke(
        cli,
        ["bench-flow", "--flow", "dis", *pair, "--size", "80x60", "--magnitudes", "3", "--pairs-per-magnitude", "1"],
    )
    assert res.exit_code == 0, res.output
    assert res.output.startswith("flow backends on 2 pairs at 80x60 (1 pair), 64x48 (1 pair);")


def test_bench_cli_json_and_unavailable_listed():
    from flowprep.cli import cli

    res = CliRunner().invoke(
        cli,
        ["bench-flow", "--flow", "dis", "--size", "64x48", "--magnitudes", "3", "--pairs-per-magnitude", "1", "--json"],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["size"] == [64, 48] and data["sizes"] == [[64, 48]]
    assert data["backends"][0]["name"] == "dis" and data["opencv_threads"] == 1
    res = CliRunner().invoke(cli, ["bench-flow", "--size", "64by48"])
    assert res.exit_code == 2


def test_bench_default_lists_gpu_backends_as_not_run(monkeypatch):
    from flowprep.flow import bench

    monkeypatch.setattr(
        "flowprep.flow.registry.BACKENDS",
        {
            k: v
            for k, v in __import__("flowprep.flow.registry", fromlist=["BACKENDS"]).BACKENDS.items()
            if k in ("nvof", "vpi", "dis")
        },
    )
    result = bench.bench_flow(None, size=(64, 48), magnitudes=(2.0,), per_magnitude=1, video=None)
    rows = {b.name: b for b in result.backends}
    assert rows["dis"].available and not rows["nvof"].available and "libcuda" in rows["nvof"].error
    assert "not run" in format_table(result)


def test_pair_labels_tell_equal_names_apart():
    from pathlib import Path

    from flowprep.flow.bench import pair_labels

    assert pair_labels([Path("/x/a/f.png"), Path("/x/b/g.png")]) == ["f.png", "g.png"]
    assert pair_labels([Path("/x/a/f.png"), Path("/x/b/f.png"), Path("/y/a/f.png")]) == [
        "x/a/f.png",
        "b/f.png",
        "y/a/f.png",
    ]
    assert pair_labels([Path("/x/f.png"), Path("/x/f.png")]) == ["f.png#1", "f.png#2"]


def _user_pair(folder, gray, dx):
    folder.mkdir()
    m = np.float32([[1, 0, dx], [0, 1, 0]])
    shifted = cv2.warpAffine(gray, m, (gray.shape[1], gray.shape[0]), borderMode=cv2.BORDER_REFLECT)
    cv2.imwrite(str(folder / "frame10.png"), gray)
    cv2.imwrite(str(folder / "frame11.png"), shifted)
    gt = np.zeros(gray.shape + (2,), np.float32)
    gt[..., 0] = dx
    write_flo(folder / "flow10.flo", gt)
    return [str(folder / n) for n in ("frame10.png", "frame11.png", "flow10.flo")]


def test_two_pairs_with_the_same_name_are_both_reported(tmp_path, gray):
    from flowprep.cli import cli

    a, b = _user_pair(tmp_path / "a", gray, 1.0), _user_pair(tmp_path / "b", gray, 3.0)
    res = CliRunner().invoke(
        cli, ["bench-flow", "--flow", "dis", "--pair", *a, "--pair", *b, "--pairs-per-magnitude", "0", "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [p["name"] for p in data["pairs"]] == ["a/frame10.png", "b/frame10.png"]
    assert set(data["backends"][0]["epe_by_magnitude"]) == {"a/frame10.png", "b/frame10.png"}


def test_motion_bands_repeats_hmdb5_hours_and_frontier(tmp_path):
    from flowprep.flow.bench_measure import cpu_cores
    from flowprep.flow.bench_report import HMDB5_PAIRS, frontier

    result = bench_flow(
        ["dis", "farneback"], size=(96, 72), magnitudes=(2.0, 12.0), per_magnitude=1, video=None, repeats=3
    )
    dis = result.backends[0]
    assert len(dis.fps_runs) == 3 and dis.fps == pytest.approx(float(np.median(dis.fps_runs)))
    assert dis.cpu_fps > 0  # CPU time never exceeds wall time by much on one OpenCV thread
    assert set(dis.epe_by_motion) <= {"0-3", "3-8", "8-20", ">20"} and "0-3" in dis.epe_by_motion
    assert dis.hmdb5_hours == pytest.approx(HMDB5_PAIRS / (dis.fps * cpu_cores()) / 3600)
    assert result.cores == cpu_cores() >= 1
    table = format_table(result)
    assert "HMDB5 h" in table and "EPE by true motion" in table and "frontier" in table
    front = frontier(result.backends)
    assert front and front[0].fps == max(b.fps for b in result.backends)
    assert all(x.epe_mean > y.epe_mean for x, y in zip(front, front[1:]))  # each slower one is better


def test_frontier_leaves_out_the_dominated():
    from flowprep.flow.bench_report import BackendResult, frontier

    rows = [
        BackendResult("fast-bad", True, epe_mean=2.0, fps=100),
        BackendResult("slow-bad", True, epe_mean=3.0, fps=10),
        BackendResult("slow-good", True, epe_mean=0.5, fps=5),
        BackendResult("gone", False),
    ]
    assert [b.name for b in frontier(rows)] == ["fast-bad", "slow-good"]


def test_scenes_from_the_cli_and_bad_counts():
    from flowprep.cli import cli
    from flowprep.errors import ConfigError
    from flowprep.flow.bench import BenchConfig

    res = CliRunner().invoke(
        cli,
        ["bench-flow", "--flow", "dis", "--size", "96x72", "--pairs-per-magnitude", "0", "--scenes", "1", "--json"],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [p["name"] for p in data["pairs"]] == ["scene-1-3px-0", "scene-3-8px-0", "scene-8-20px-0"]
    assert set(data["backends"][0]["epe_by_magnitude"]) == {"scene 1-3", "scene 3-8", "scene 8-20"}
    with pytest.raises(ConfigError, match="repeats"):
        BenchConfig(repeats=0)
    res = CliRunner().invoke(cli, ["bench-flow", "--repeats", "0"])
    assert res.exit_code == 2 and "Traceback" not in res.output


def _bench_script(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_bench_goal_check_is_stated_as_ratios():
    from flowprep.flow.bench_report import BackendResult, BenchResult

    script = _bench_script("bench_flow")
    rows = [
        BackendResult(
            "dis-fine",
            True,
            epe_mean=0.30,
            fps=40.0,
            cpu_fps=80.0,
            pairs=19,
            epe_by_magnitude={"scene 1-3": 0.2, "m.png": 1.2},
        ),
        BackendResult(
            "tvl1-fast",
            True,
            epe_mean=0.45,
            fps=2.0,
            cpu_fps=2.5,
            pairs=19,
            epe_by_magnitude={"scene 1-3": 0.3, "m.png": 1.5},
        ),
    ]
    result = BenchResult((320, 240), [(320, 240)], "x", 1, 2, [], rows, [])
    text = "\n".join(script.goal_lines(result))
    assert "0.67x (goal <= 0.88x): met" in text and "32.0x (goal >= 20x): met" in text
    assert "on one core on these 19 pairs (mixed sizes): 80.0 (goal >= 50): met" in text
    assert "wall clock: 40.0 vs 2.00 pairs/s (20.0x)" in text
    assert "pair m.png: EPE 1.200 vs 1.500 px: 0.800x" in text and "pair scene" not in text
    assert "pairs within the EPE goal: 1 of 1" in text
    rows[0].epe_mean, rows[0].cpu_fps = 0.5, 30.0
    text = "\n".join(script.goal_lines(result))
    assert text.count("NOT MET") == 3
    assert script.goal_lines(BenchResult(None, [], "x", 1, 2, [], rows[:1], [])) == [
        "goal check: dis-fine or tvl1-fast did not run"
    ]
    # with a run on 320x240 warps, the speed verdicts are that run's; the mixed sizes' speed is shown beside
    small_rows = [
        BackendResult("dis-fine", True, epe_mean=0.2, fps=30.0, cpu_fps=30.0, pairs=18),
        BackendResult("tvl1-fast", True, epe_mean=0.2, fps=1.5, cpu_fps=1.6, pairs=18),
    ]
    small = BenchResult((320, 240), [(320, 240)], "x", 1, 2, [], small_rows, [])
    rows[0].cpu_fps = 60.0
    text = "\n".join(script.goal_lines(result, small))
    assert "speed on the first run's 18 synthetic warps at 320x240: 30.0 vs 1.60 pairs per CPU-second: 18.8x" in text
    assert "(goal >= 20x): NOT MET" in text
    assert "speed on these 19 pairs (mixed sizes): 60.0 vs 2.50 pairs per CPU-second: 24.0x" in text
    # with speeds on real consecutive frames, the verdicts are those
    text = "\n".join(script.goal_lines(result, small, {"dis-fine": 29.0, "tvl1-fast": 1.25}))
    assert "speed on consecutive frames of the clip at 320x240: 29.0 vs 1.25 pairs per CPU-second: 23.2x" in text
    assert "23.2x (goal >= 20x): met" in text and "18.8x\n" in text + "\n"
    assert (
        "(issue 20's machine ran tvl1-fast at 2.4 pairs/s, this one at 1.25: there dis-fine would run about 56)" in text
    )


def test_footage_speed_times_each_backend_on_consecutive_frames(tmp_path):
    from flowprep.synth import moving_frames, write_video

    script = _bench_script("bench_flow")
    video = tmp_path / "clip.mp4"
    write_video(video, moving_frames(24, 48, 64, (1.0, 0.5), seed=0))
    speeds = script.footage_speed(video, ["dis", "no-such-backend"], pairs=2, size=(64, 48), repeats=1)
    assert set(speeds) == {"dis"} and speeds["dis"] > 0
    assert script.footage_speed(tmp_path / "missing.mp4", ["dis"]) == {}


def test_tuning_script_space_covers_its_grid_and_the_preset():
    from flowprep.flow.dis_fine import FineDISBackend

    script = _bench_script("tune_cpu_flow")  # importing checks that the grid lies in the space
    assert set(script.SPACE) == set(FineDISBackend.DEFAULTS)
    assert all(FineDISBackend.DEFAULTS[k] in v for k, v in script.SPACE.items())


def test_tuning_score_is_the_worst_ratio_to_tvl1_fast():
    script = _bench_script("tune_cpu_flow")
    row = {"epe": 0.5, "real_epe": {"a.png": 1.2, "b.png": 0.3}}
    # synthetic 0.5/1.0, a.png 1.2/1.5, b.png 0.3/0.2: the worst is b.png's 1.5
    assert script.score(row, {"synthetic": 1.0, "a.png": 1.5, "b.png": 0.2}) == pytest.approx(1.5)
    assert script.score(row, None) == 0.5  # no real pairs: the synthetic EPE
    assert script._score({"epe": 0.7}) == 0.7  # rows of earlier runs have no score
    # a synthetic group on its own: smooth 8-20 px at 0.3/0.12 = 2.5x although the pooled EPE is fine
    grouped = {**row, "epe_by_group": {"smooth 8-20": 0.3, "scene 1-3": 0.1}}
    ref = {
        "synthetic": 1.0,
        "a.png": 1.5,
        "b.png": 0.2,
        script.GROUP + "smooth 8-20": 0.12,
        script.GROUP + "scene 1-3": 1.0,
    }
    assert script.score(grouped, ref) == pytest.approx(2.5)


def test_descent_from_a_start_over_budget_steps_into_it(monkeypatch):
    from flowprep.flow.dis_fine import FineDISBackend

    script = _bench_script("tune_cpu_flow")
    monkeypatch.setattr(script, "dis_fine", lambda params: params)  # the fake evaluator reads the parameters

    def tune(params):  # each refinement iteration costs 0.5 and gains 0.01; nothing else matters
        n = params["refine_iterations"]
        return {"epe": 1.0, "score": 1.0 - 0.01 * n, "cost": 1.0 + 0.5 * n}

    start = {**FineDISBackend.DEFAULTS, "refine_iterations": 4}  # cost 3.0: over the budget
    best = script.descend(start, tune, 2.6, {}, lambda msg: None, rounds=5)
    # the first step goes into the budget although it is worse; from there nothing within it is better
    assert best["params"]["refine_iterations"] == 3 and best["cost"] <= 2.6


def test_real_pairs_script_writes_triplets_that_load(tmp_path):
    import cv2

    from flowprep.flow.flo import read_flo, valid_mask, write_flo
    from flowprep.flow.pairs import load_pair

    script = _bench_script("real_pairs")
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 255, (40, 60), dtype=np.uint8) for _ in range(2))
    src = tmp_path / "mb"
    src.mkdir()
    cv2.imwrite(str(src / "frame10.png"), a)
    cv2.imwrite(str(src / "frame11.png"), b)
    flow = np.dstack([np.full((40, 60), 1.5, np.float32), np.full((40, 60), -0.5, np.float32)])
    write_flo(src / "flow10.flo", flow)
    script.main(["flow", str(src), str(tmp_path / "Scene")])
    pair = load_pair(tmp_path / "Scene/Scene.png", tmp_path / "Scene/Scene_2.png", tmp_path / "Scene/Scene.flo")
    assert pair.name == "Scene.png" and np.array_equal(pair.flow, flow) and np.array_equal(pair.prev, a)

    disp = np.full((40, 60), 40, np.uint8)  # Middlebury 2003 style: value / 4 = 10 px
    disp[:, :5] = 0  # unknown
    cv2.imwrite(str(src / "disp.png"), disp)
    script.main(["stereo", str(src / "frame10.png"), str(src / "frame11.png"), str(src / "disp.png"),
                 str(tmp_path / "St"), "--disp-scale", "0.25", "--resize", "0.5"])  # fmt: skip
    st = read_flo(tmp_path / "St/St.flo")
    known = valid_mask(st)
    assert st.shape == (20, 30, 2) and not known[:, :2].any() and known[:, 3:].all()
    assert np.allclose(st[known], (-5.0, 0.0))  # left to right: -disparity, halved with the frames

    gt = np.zeros((40, 60, 3), np.uint16)  # KITTI: B valid, G v, R u, each (px * 64 + 2^15)
    gt[..., 2], gt[..., 1], gt[..., 0] = 2**15 + 64 * 3, 2**15 - 32, 1
    gt[0, 0, 0] = 0
    cv2.imwrite(str(src / "kitti.png"), gt)
    script.main(
        ["kitti", str(src / "frame10.png"), str(src / "frame11.png"), str(src / "kitti.png"), str(tmp_path / "K")]
    )
    k = read_flo(tmp_path / "K/K.flo")
    assert not valid_mask(k)[0, 0] and np.allclose(k[1:], (3.0, -0.5))

    # what `make bench REAL_PAIRS=DIR` hands bench_flow.py: the folder's triplets, the source folder skipped
    found = _bench_script("bench_flow").pairs_in(tmp_path)
    assert [t[0].name for t in found] == ["K.png", "Scene.png", "St.png"]
    with pytest.raises(SystemExit, match="no sub-folder NAME"):
        _bench_script("bench_flow").pairs_in(src)


def test_real_pairs_half_averages_frames_and_known_flow_blocks(tmp_path):
    import cv2

    from flowprep.flow.flo import UNKNOWN_FLOW, read_flo, valid_mask, write_flo

    script = _bench_script("real_pairs")
    src = tmp_path / "mb"
    src.mkdir()
    a = np.arange(41 * 60, dtype=np.uint32).reshape(41, 60).astype(np.uint8)  # an odd last row: dropped
    cv2.imwrite(str(src / "frame10.png"), a)
    cv2.imwrite(str(src / "frame11.png"), a[::-1].copy())
    flow = np.zeros((41, 60, 2), np.float32)
    flow[..., 0] = np.arange(60, dtype=np.float32)[None, :]  # u = column: a 2x2 block's mean is 2k + 0.5
    flow[..., 1] = -4.0
    flow[0, 0] = UNKNOWN_FLOW  # its block becomes unknown
    write_flo(src / "flow10.flo", flow)
    script.main(["flow", str(src), str(tmp_path / "Half"), "--half"])
    half = read_flo(tmp_path / "Half/Half.flo")
    known = valid_mask(half)
    assert half.shape == (20, 30, 2) and not known[0, 0] and known.sum() == 20 * 30 - 1
    assert np.allclose(half[known][:, 1], -2.0)  # halved with the frames
    assert np.allclose(half[5, 7], ((2 * 7 + 0.5) / 2, -2.0))
    prev = cv2.imread(str(tmp_path / "Half/Half.png"), cv2.IMREAD_GRAYSCALE)
    assert prev.shape == (20, 30) and abs(int(prev[3, 4]) - float(a[6:8, 8:10].mean())) <= 1


SMALL = ["--flow", "dis", "--size", "64x48", "--magnitudes", "3", "--pairs-per-magnitude", "1"]


def _bench(*args):
    from flowprep.cli import cli

    return CliRunner().invoke(cli, ["bench-flow", *SMALL, *[str(a) for a in args]])


def _one_line(res, code: int = 1) -> str:
    assert res.exit_code == code and len(res.output.strip().splitlines()) == 1, res.output
    return res.output


def test_bench_video_must_be_a_video(tmp_path):
    import av

    assert "missing.mp4" in _one_line(_bench("--video", tmp_path / "missing.mp4"))  # was: texture, silently
    audio = tmp_path / "tone.m4a"
    with av.open(str(audio), "w") as out:  # an audio-only file: decoding video=0 raised a traceback
        stream = out.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    assert "no video stream" in _one_line(_bench("--video", audio))


def test_bench_pair_fifo_is_refused_not_waited_on(tmp_path, gray):
    from flowprep.flow.flo import write_flo

    cv2.imwrite(str(tmp_path / "a.png"), gray[:48, :64])
    write_flo(tmp_path / "gt.flo", np.zeros((48, 64, 2), np.float32))
    os.mkfifo(tmp_path / "b.png")  # cv2.imread on it blocked forever
    out = _one_line(_bench("--pair", tmp_path / "a.png", tmp_path / "b.png", tmp_path / "gt.flo"))
    assert "a FIFO, not a regular file" in out


def test_bench_outputs_never_replace_a_users_file(tmp_path):
    plot, vis = tmp_path / "mine.png", tmp_path / "vis"
    plot.write_bytes(b"my plot")
    assert "already exists" in _one_line(_bench("--plot", plot))
    vis.mkdir()
    (vis / "flow_dis_x.png").write_bytes(b"mine")
    assert "already holds flow_dis_x.png" in _one_line(_bench("--vis-dir", vis))
    assert plot.read_bytes() == b"my plot" and (vis / "flow_dis_x.png").read_bytes() == b"mine"
    res = _bench("--plot", plot, "--vis-dir", vis, "--overwrite")
    assert res.exit_code == 0 and plot.read_bytes().startswith(b"\x89PNG"), res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.png", "vis"]  # no temporary left


def test_large_pairs_are_made_on_a_bounded_grid():
    from flowprep.flow.pairs import FIELD_GRID, _fixed_point, field_grid

    assert field_grid(240, 320) == (240, 320) and field_grid(480, 640) == (480, 640)  # as before: exact
    assert field_grid(8192, 8192) == (631, 631) and max(field_grid(8192, 16)) <= FIELD_GRID
    # above the grid: the field is upsampled and the true flow solved on the grid; the residual is
    # still checked at full size, and the flow agrees with the full-size fixed point
    h, w = 660, 700
    field = smooth_field(h, w, 30.0, np.random.default_rng(4))
    assert field.shape == (h, w, 2) and abs(float(np.sqrt((field**2).sum(-1)).max()) - 30.0) < 1e-3
    frame = cv2.cvtColor(texture(h, w, 5), cv2.COLOR_RGB2GRAY)
    _, flow, valid = warp_pair(frame, field)
    assert valid.mean() > 0.9
    assert float(np.abs(flow - _fixed_point(field, 30))[valid].max()) < 0.01


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_bench_flow_at_the_largest_size_stops_on_a_signal(sig):
    """`bench-flow --size 8192x8192` ignored Ctrl-C and SIGTERM for minutes (one Gaussian blur with
    a sigma of 1365 px); now generation is cheap, and a signal during a long C call still ends the
    process within seconds (flowprep.cli._SignalWatch)."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "flowprep", "-v", "bench-flow", "--size", "8192x8192", "--flow", "dis"]
        + ["--magnitudes", "2", "--pairs-per-magnitude", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "making 1 synthetic pairs of 8192x8192" in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(120), "".join(lines)
        time.sleep(1.0)  # inside generation (long OpenCV and numpy calls on 67-Mpixel images)
        os.kill(proc.pid, getattr(signal, sig))
        proc.wait(timeout=6)  # ~5 s asked; the watch ends a stuck main thread after 2.5 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    assert proc.returncode == (143 if sig == "SIGTERM" else 130)
    said = [line.rstrip() for line in lines if not line.startswith("INFO ")]
    assert len(said) == 1 and said[0].startswith("flowprep: interrupted"), lines


def test_from_defaults_starts_from_dis_fines_defaults():
    from flowprep.flow.dis_fine import FineDISBackend

    script = _bench_script("tune_cpu_flow")
    # consistency_px is newer than the runs' dicts: its absence there means off, the default
    assert {**FineDISBackend.DEFAULTS, **script.SEVENTH_RUN} == FineDISBackend.DEFAULTS
    assert script.RUN_STARTS["eighth"] == [script.SEVENTH_RUN]
    assert set(script.SPACE) == set(FineDISBackend.DEFAULTS) == set(script.ABBREV)


def test_a_record_of_the_fifth_preset_gets_no_aperture_weight_and_no_backward_check():
    from flowprep.flow import registry

    # what a dataset built with the fifth search's defaults recorded: every parameter of the time
    fifth = _bench_script("tune_cpu_flow").FIFTH_RUN
    params = registry.recorded_params("dis-fine", dict(fifth))
    assert params["aperture_weight"] == 0.0 and params["consistency_px"] == 0.0
    assert params["start_patch_size"] == 0  # nor the coarse first pass of the seventh choice
    assert {k: params[k] for k in fifth} == fifth

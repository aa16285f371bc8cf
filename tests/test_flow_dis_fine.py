"""dis-fine's own stages (flowprep.flow.dis_fine): the median filter of the flow and its parameter."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from flowprep.errors import ConfigError
from flowprep.flow.dis_fine import median_flow
from flowprep.flow.registry import create_backend


def _step_flow() -> np.ndarray:
    """``float32`` ``(40, 50, 2)``: u = 3 px left of column 25, -2 px right of it; v = 1 px everywhere."""
    flow = np.empty((40, 50, 2), np.float32)
    flow[:, :25, 0] = 3.0
    flow[:, 25:, 0] = -2.0
    flow[..., 1] = 1.0
    return flow


@pytest.mark.parametrize("size", [3, 5])
def test_the_median_removes_an_isolated_wrong_match_and_keeps_a_motion_edge(size):
    flow = _step_flow()
    wrong = flow.copy()
    wrong[10, 10] = (40.0, -30.0)  # one patch matched far away
    out = median_flow(wrong, size)
    assert out.dtype == np.float32 and out.shape == flow.shape
    np.testing.assert_array_equal(out, flow)  # the outlier is gone, the step edge is where it was


def test_the_median_does_not_modify_its_input():
    flow = _step_flow()
    flow[5, 5, 0] = 99.0
    before = flow.copy()
    median_flow(flow, 5)
    np.testing.assert_array_equal(flow, before)


def test_median_size_takes_only_what_opencv_filters():
    with pytest.raises(ConfigError, match="median_size"):
        create_backend("dis-fine", median_size=4)
    for size in (0, 3, 5):
        create_backend("dis-fine", median_size=size)


def test_dis_fine_with_and_without_the_median_recovers_a_shift():
    rng = np.random.default_rng(2)
    base = rng.integers(0, 255, (140, 180)).astype(np.float32)
    base = cv2.GaussianBlur(base, (0, 0), 1.5)
    prev = np.clip(base[10:130, 10:170], 0, 255).astype(np.uint8)
    nxt = np.clip(base[10:130, 7:167], 0, 255).astype(np.uint8)  # content moves 3 px right
    for size in (0, 5):
        flow = create_backend("dis-fine", median_size=size).calc(prev, nxt)
        inner = flow[20:-20, 20:-20]
        assert abs(float(np.median(inner[..., 0])) - 3.0) < 0.1
        assert abs(float(np.median(inner[..., 1]))) < 0.1


@pytest.mark.parametrize("peak", [5.0, 126.0, 400.0, 3000.0])
def test_the_fixed_point_median_is_within_half_a_step_of_the_exact_one(peak):
    rng = np.random.default_rng(3)
    flow = (rng.standard_normal((48, 64, 2)) * peak / 4).astype(np.float32)
    flow[0, 0, 0] = peak  # sets the scale
    exact = np.dstack([cv2.medianBlur(np.ascontiguousarray(flow[..., c]), 5) for c in range(2)])
    step = 1 / 256 if peak < 127 else peak / 32000
    assert np.abs(median_flow(flow, 5) - exact).max() <= step / 2 + 1e-6 * peak


def test_the_median_of_zero_flow_is_zero():
    out = median_flow(np.zeros((20, 30, 2), np.float32), 3)
    assert out.dtype == np.float32 and not out.any()


def test_match_sigma_zero_is_the_plain_occlusion_fill_and_a_positive_one_runs():
    with pytest.raises(ConfigError, match="match_sigma"):
        create_backend("dis-fine", match_sigma=-1.0)
    rng = np.random.default_rng(4)
    base = cv2.GaussianBlur(rng.integers(0, 255, (140, 180)).astype(np.float32), (0, 0), 1.5)
    prev = np.clip(base[10:130, 10:170], 0, 255).astype(np.uint8)
    nxt = np.clip(base[12:132, 7:167], 0, 255).astype(np.uint8)  # 3 px right, 2 px up
    for sigma in (0.0, 10.0):
        inner = create_backend("dis-fine", match_sigma=sigma).calc(prev, nxt)[20:-20, 20:-20]
        assert abs(float(np.median(inner[..., 0])) - 3.0) < 0.1
        assert abs(float(np.median(inner[..., 1])) + 2.0) < 0.1


def _shifted_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``uint8`` ``(120, 160)`` frames of a blurred random texture; its content moves 3 px right, 2 px up."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 255, (140, 180)).astype(np.float32), (0, 0), 1.5)
    prev = np.clip(base[10:130, 10:170], 0, 255).astype(np.uint8)
    nxt = np.clip(base[12:132, 7:167], 0, 255).astype(np.uint8)
    return prev, nxt


def test_consistency_px_needs_the_fill_and_a_number_at_least_zero():
    with pytest.raises(ConfigError, match="consistency_px=1.0 needs fill_occlusions=1"):
        create_backend("dis-fine", consistency_px=1.0, fill_occlusions=0)
    with pytest.raises(ConfigError, match="consistency_px"):
        create_backend("dis-fine", consistency_px=-1.0)
    create_backend("dis-fine", consistency_px=0.0, fill_occlusions=0)  # off needs nothing


def test_the_consistency_check_compares_with_the_backward_flow_and_keeps_a_shift(monkeypatch):
    import flowprep.flow.dis_fine as dis_fine

    prev, nxt = _shifted_pair(6)
    seen = []

    real = dis_fine.inconsistent

    def spy(flow, backward, tolerance):
        seen.append((flow.copy(), backward.copy(), tolerance))
        return real(flow, backward, tolerance)

    monkeypatch.setattr(dis_fine, "inconsistent", spy)
    inner = create_backend("dis-fine", consistency_px=1.0).calc(prev, nxt)[20:-20, 20:-20]
    assert abs(float(np.median(inner[..., 0])) - 3.0) < 0.1
    assert abs(float(np.median(inner[..., 1])) + 2.0) < 0.1
    ((forward, backward, tolerance),) = seen
    assert tolerance == 1.0
    # the backward flow is the same DIS from the second frame to the first: the opposite shift
    assert abs(float(np.median(backward[20:-20, 20:-20, 0])) + 3.0) < 0.1
    assert abs(float(np.median(backward[20:-20, 20:-20, 1])) - 2.0) < 0.1


def test_consistency_off_computes_no_backward_flow(monkeypatch):
    import flowprep.flow.dis_fine as dis_fine

    def boom(*args):
        raise AssertionError("inconsistent() called with consistency_px=0")

    monkeypatch.setattr(dis_fine, "inconsistent", boom)
    create_backend("dis-fine").calc(*_shifted_pair(7))


def _striped_panel(top: int) -> np.ndarray:
    """``uint8`` ``(160, 200)``: a static blurred random texture with a 100x110 panel of vertical stripes
    (period 7 px) whose top edge is at row ``top``: moved down, only its top and bottom edges show it."""
    rng = np.random.default_rng(1)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (160, 200)).astype(np.float32), (0, 0), 1.2)
    frame[top : top + 100, 45:155] = np.where(np.arange(110) % 7 < 3, 60.0, 200.0)[None, :]
    return np.clip(frame, 0, 255).astype(np.uint8)


def test_the_aperture_weight_carries_a_striped_panels_motion_from_its_edges():
    # the panel moves 6 px down: inside it every vertical offset matches equally well, so DIS keeps the
    # static background's flow there (measured: v 0, error 5.7 px); with the default weight (7) the
    # fill brings the edges' motion along the stripes (v 4.9, error 1.0 px)
    prev, nxt = _striped_panel(30), _striped_panel(36)
    errors = {}
    for params in ({"aperture_weight": 0.0}, {}):
        panel = create_backend("dis-fine", **params).calc(prev, nxt)[40:120, 55:145]
        errors[bool(params)] = float(np.linalg.norm(panel - np.float32([0.0, 6.0]), axis=2).mean())
    assert errors[False] < 0.5 * errors[True]
    assert errors[False] < 2.5


def test_aperture_weight_zero_computes_no_structure_tensor(monkeypatch):
    import flowprep.flow.dis_fine as dis_fine

    def boom(*args):
        raise AssertionError("aperture_confidence() called with aperture_weight=0")

    monkeypatch.setattr(dis_fine, "aperture_confidence", boom)
    inner = create_backend("dis-fine", aperture_weight=0.0).calc(*_shifted_pair(9))[20:-20, 20:-20]
    assert abs(float(np.median(inner[..., 0])) - 3.0) < 0.1
    with pytest.raises(ConfigError, match="aperture_weight"):
        create_backend("dis-fine", aperture_weight=-1.0)


def _texture_moving(dx: int) -> tuple[np.ndarray, np.ndarray]:
    """``uint8`` ``(240, 320)`` frames of a blurred random texture whose content moves ``dx`` px right."""
    rng = np.random.default_rng(5)
    base = cv2.GaussianBlur(rng.integers(0, 255, (300, 460)).astype(np.float32), (0, 0), 2.0)
    prev = np.clip(base[30:270, 70:390], 0, 255).astype(np.uint8)
    nxt = np.clip(base[30:270, 70 - dx : 390 - dx], 0, 255).astype(np.uint8)
    return prev, nxt


@pytest.mark.parametrize("dx", [20, 30])
def test_the_coarse_first_pass_recovers_motion_the_main_dis_alone_misses(dx):
    # at 320x240 OpenCV's DIS with 8-px patches starts at 1/8 size, where 20 px is 2.5 px: a
    # texture of 2-px grain gives it no slope that far out (probed: 0 % of pixels within 0.5 px)
    prev, nxt = _texture_moving(dx)
    inner = (slice(40, -40), slice(80, -80))
    alone = create_backend("dis-fine", start_patch_size=0).calc(prev, nxt)[inner]
    started = create_backend("dis-fine").calc(prev, nxt)[inner]
    assert float(np.mean(np.abs(alone[..., 0] - dx) < 0.5)) < 0.5
    assert float(np.mean(np.abs(started[..., 0] - dx) < 0.5)) > 0.99
    assert float(np.abs(started[..., 1]).max()) < 0.5


def test_the_first_pass_parameters_are_checked():
    with pytest.raises(ConfigError, match="start_patch_size=1 matches nothing"):
        create_backend("dis-fine", start_patch_size=1)
    with pytest.raises(ConfigError, match="start_patch_stride=6 is larger than start_patch_size=5"):
        create_backend("dis-fine", start_patch_size=5, start_patch_stride=6)
    with pytest.raises(ConfigError, match="start_gradient_descent_iterations"):
        create_backend("dis-fine", start_gradient_descent_iterations=0)
    create_backend("dis-fine", start_patch_size=0, start_patch_stride=16)  # no first pass: its stride is unused


@pytest.mark.parametrize("shape", [(16, 16), (16, 40), (40, 16), (24, 32), (60, 80)])
def test_small_frames_get_flow_with_the_first_pass(shape):
    # OpenCV's levels for the first pass's patch on frames near MIN_SIDE; equal frames give zero flow
    frame = np.random.default_rng(7).integers(0, 255, shape).astype(np.uint8)
    flow = create_backend("dis-fine").calc(frame, frame)
    assert flow.shape == (*shape, 2) and flow.dtype == np.float32 and not np.abs(flow).max() > 0

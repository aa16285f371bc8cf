"""Occlusions from a forward flow, and their edge-aware fill (flowprep.flow.occlusion), alone and in dis-fine."""

from __future__ import annotations

import types

import cv2
import numpy as np
import pytest

from flowprep.errors import BackendNotInstalledError
from flowprep.flow import occlusion
from flowprep.flow.occlusion import fill_occluded, match_confidence, occluded, occluded_and_mismatch
from flowprep.flow.opencv_cpu import require_contrib
from flowprep.flow.registry import create_backend

H, W = 96, 128
#: the square: rows and columns in the first frame, and its motion to the right, px
TOP, LEFT, SIDE, STEP = 30, 40, 32, 6


@pytest.fixture(scope="module")
def scene():
    """A dark textured background at rest and a bright textured square moving STEP px right over it.

    Returns ``(prev, nxt, flow, strip)``: ``uint8`` frames, the true ``float32`` ``(H, W, 2)`` flow,
    and the ``bool`` background strip right of the square that the square covers in ``nxt``."""
    rng = np.random.default_rng(5)
    background = rng.integers(0, 90, (H, W)).astype(np.uint8)
    square = rng.integers(170, 255, (SIDE, SIDE)).astype(np.uint8)
    prev, nxt = background.copy(), background.copy()
    prev[TOP : TOP + SIDE, LEFT : LEFT + SIDE] = square
    nxt[TOP : TOP + SIDE, LEFT + STEP : LEFT + STEP + SIDE] = square
    flow = np.zeros((H, W, 2), np.float32)
    flow[TOP : TOP + SIDE, LEFT : LEFT + SIDE, 0] = STEP
    strip = np.zeros((H, W), bool)
    strip[TOP : TOP + SIDE, LEFT + SIDE : LEFT + SIDE + STEP] = True
    return prev, nxt, flow, strip


def test_the_covered_background_is_found_from_the_true_flow(scene):
    prev, nxt, flow, strip = scene
    hidden = occluded(prev, nxt, flow)
    assert hidden.dtype == bool and hidden.shape == (H, W)
    assert not (hidden & ~strip).any()  # nothing else: the square and the rest of the background are seen
    assert hidden[strip].mean() > 0.95  # a background pixel equal to the square's by chance may stay


def test_no_occlusion_without_motion_and_a_margin_keeps_near_ties(scene):
    prev = scene[0]
    assert not occluded(prev, prev, np.zeros((H, W, 2), np.float32)).any()
    # the covered background differs from the square by more than 80 gray levels, never by 255
    assert np.array_equal(occluded(*scene[:3], margin=80.0), occluded(*scene[:3]))
    assert not occluded(*scene[:3], margin=255.0).any()


def test_a_non_finite_flow_value_does_not_break_the_search(scene):
    prev, nxt, flow, _ = scene
    bad = flow.copy()
    bad[5, 5] = (np.nan, np.inf)
    bad[6, 6] = (-np.inf, 1e30)
    hidden = occluded(prev, nxt, bad)
    assert hidden.shape == (H, W) and hidden.sum() <= occluded(prev, nxt, flow).sum() + 3


def test_the_fill_takes_the_flow_of_the_region_the_pixel_looks_like(scene):
    prev, _, flow, strip = scene
    smeared = flow.copy()
    smeared[strip] = (STEP, 0)  # what a patch matcher gives the hidden background: the occluder's flow
    filled = fill_occluded(smeared, strip, prev, smoothness=200.0, sigma=8.0)
    assert filled.dtype == np.float32 and filled.shape == (H, W, 2)
    assert np.array_equal(filled[~strip], smeared[~strip])  # only the mask changes
    assert np.abs(filled[strip]).max() < 1.0  # background flow (0), not the square's 6 px beside it
    assert fill_occluded(smeared, np.zeros((H, W), bool), prev, 200.0, 8.0) is smeared


def test_without_the_contrib_build_the_fill_names_the_package(scene, monkeypatch):
    prev, _, flow, strip = scene
    monkeypatch.setattr(occlusion, "_CV2", types.SimpleNamespace())
    with pytest.raises(BackendNotInstalledError, match="opencv-contrib-python-headless"):
        fill_occluded(flow, strip, prev, 200.0, 8.0)
    with pytest.raises(BackendNotInstalledError, match="cv2.ximgproc"):
        create_backend("dis-fine", fill_occlusions=1)
    create_backend("dis-fine", fill_occlusions=0)  # without the fill, no ximgproc is needed
    with pytest.raises(BackendNotInstalledError, match=r"TV-L1 needs cv2\.optflow, which only the contrib"):
        require_contrib("optflow", "TV-L1", types.SimpleNamespace())


def test_dis_fine_with_the_fill_is_closer_on_the_covered_background(scene):
    prev, nxt, flow, strip = scene

    def errors(fill: int) -> np.ndarray:
        est = create_backend("dis-fine", fill_occlusions=fill).calc(prev, nxt)
        return np.sqrt(((est - flow) ** 2).sum(-1))

    without, filled = errors(0), errors(1)
    # measured 5.73 -> 5.10 px on the strip, 0.181 -> 0.154 px on the frame: DIS's 8-px patches
    # smear the square's flow over the 6-px strip and beyond, so only about half the strip is found
    assert filled[strip].mean() < without[strip].mean() - 0.3
    assert filled.mean() < 0.9 * without.mean()


def test_a_negative_margin_is_refused(scene):
    prev, nxt, flow, _ = scene
    with pytest.raises(ValueError, match="margin must be a number >= 0"):
        occluded(prev, nxt, flow, -1.0)


def test_the_mismatch_is_zero_where_the_true_flow_explains_the_next_frame(scene):
    prev, nxt, flow, strip = scene
    hidden, mismatch = occluded_and_mismatch(prev, nxt, flow)
    assert np.array_equal(hidden, occluded(prev, nxt, flow))
    assert mismatch.dtype == np.uint8 and mismatch.shape == (H, W)
    assert not mismatch[~strip].any()  # integer motion: the warp is exact wherever the pixel is seen
    assert mismatch[strip].mean() > 50  # a dark background pixel against the bright square


def test_match_confidence_falls_with_the_mismatch_averaged_over_5x5():
    mismatch = np.zeros((30, 40), np.uint8)
    mismatch[10:20, 10:20] = 30
    conf = match_confidence(mismatch, 10.0)
    assert conf.dtype == np.float32 and conf.shape == mismatch.shape
    assert conf[0, 0] == 1.0 and conf[15, 15] == pytest.approx(np.exp(-9.0), rel=1e-5)
    single = np.zeros((30, 40), np.uint8)
    single[5, 5] = 50  # one noisy pixel: 2 gray levels over its 5x5 neighbourhood
    assert match_confidence(single, 10.0).min() == pytest.approx(np.exp(-0.04), rel=1e-5)


def test_with_confidence_a_wrong_match_outside_the_mask_leans_on_its_well_matched_look_alikes(scene):
    prev, nxt, flow, strip = scene
    wrong = flow.copy()
    patch = (slice(70, 80), slice(90, 100))  # background at rest, matched 4 px off by a bad patch
    wrong[patch] = (4.0, -3.0)
    hidden, mismatch = occluded_and_mismatch(prev, nxt, wrong)
    conf = match_confidence(mismatch, 10.0)
    assert conf[72:78, 92:98].max() < 0.2 and conf[5:20, 5:20].min() == 1.0  # the edges average in good pixels
    plain = fill_occluded(wrong, hidden, prev, 200.0, 8.0)
    blended = fill_occluded(wrong, hidden, prev, 200.0, 8.0, conf)
    # the plain fill replaces only the pixels judged hidden (some of the patch: their targets collide)
    assert np.array_equal(plain[~hidden], wrong[~hidden])
    assert np.abs(blended[patch]).mean() < 0.25 * np.abs(plain[patch]).mean()
    assert np.array_equal(blended[5:20, 5:20], wrong[5:20, 5:20])  # confidence 1: kept as it is


def _backward_of_scene(flow: np.ndarray) -> np.ndarray:
    """The scene's true backward flow: -STEP on the square where it is in the second frame, 0 elsewhere."""
    back = np.zeros_like(flow)
    back[TOP : TOP + SIDE, LEFT + STEP : LEFT + STEP + SIDE, 0] = -STEP
    return back


def test_the_backward_flow_contradicts_exactly_the_covered_background(scene):
    _, _, flow, strip = scene
    bad = occlusion.inconsistent(flow, _backward_of_scene(flow), 1.0)
    assert bad.dtype == bool and bad.shape == (H, W)
    # the covered strip keeps its zero flow but lands on the square, whose backward flow is -STEP;
    # the square itself and the uncovered background come back where they started
    assert np.array_equal(bad, strip)
    # a tolerance above the disagreement lets it pass
    assert not occlusion.inconsistent(flow, _backward_of_scene(flow), STEP + 0.5).any()


def test_a_match_one_period_off_is_caught_by_the_backward_flow():
    # a repeated texture moved 2 px, matched one 8-px period off (10 px): warping cannot tell,
    # a backward flow that found the true 2 px can
    forward = np.zeros((24, 40, 2), np.float32)
    forward[..., 0] = 10.0
    backward = np.zeros_like(forward)
    backward[..., 0] = -2.0
    assert occlusion.inconsistent(forward, backward, 1.0).all()
    backward[..., 0] = -10.0
    assert not occlusion.inconsistent(forward, backward, 1.0).any()


def test_inconsistent_refuses_a_bad_tolerance_and_mismatched_shapes():
    flow = np.zeros((8, 8, 2), np.float32)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="tolerance must be a number > 0"):
            occlusion.inconsistent(flow, flow, bad)
    with pytest.raises(ValueError, match=r"differ in shape"):
        occlusion.inconsistent(flow, np.zeros((8, 9, 2), np.float32), 1.0)


def test_aperture_confidence_is_low_on_stripes_and_one_on_texture_and_flat_areas():
    rng = np.random.default_rng(8)
    stripes = np.tile(np.where(np.arange(W) % 6 < 3, 60, 200).astype(np.uint8), (H, 1))  # vertical stripes
    texture = cv2.GaussianBlur(rng.integers(0, 255, (H, W)).astype(np.uint8), (0, 0), 1.0)
    flat = np.full((H, W), 90, np.uint8)
    inner = (slice(8, -8), slice(8, -8))
    on_stripes = occlusion.aperture_confidence(stripes, 10.0)
    assert on_stripes.dtype == np.float32 and on_stripes.shape == (H, W)
    # across the stripes the gradient is strong, along them zero: (0 + 1) / (l_max + 1) is tiny
    assert on_stripes[inner].max() < 0.05
    assert occlusion.aperture_confidence(texture, 10.0)[inner].mean() > 0.95
    assert (occlusion.aperture_confidence(flat, 10.0) == 1.0).all()
    # a larger weight spares more
    assert (occlusion.aperture_confidence(stripes, 1000.0) >= on_stripes).all()


def test_aperture_confidence_refuses_a_weight_that_is_not_positive():
    for bad in (0.0, -2.0, float("nan")):
        with pytest.raises(ValueError, match="weight must be a number > 0"):
            occlusion.aperture_confidence(np.zeros((8, 8), np.uint8), bad)

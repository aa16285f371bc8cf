"""``dis-fine``: OpenCV DIS with every knob exposed, occlusions filled, and a searched preset.

The pipeline per pair (each stage optional): a Gaussian pre-blur of both frames, a first DIS pass
with smaller patches over the coarse levels only (its pyramid reaches one level coarser), whose
flow starts DIS from the coarsest pyramid level down to ``finest_scale``, the forward-flow occlusion fill of
:mod:`flowprep.flow.occlusion` (weighted by how well each pixel's flow explains the next frame and
by how well its texture pins the flow down in both directions),
a median filter of the flow, then OpenCV's standalone
``VariationalRefinement`` at full resolution, which pulls the filled pixels and the rest towards
brightness constancy. The defaults are the preset ``bench/tune_cpu_flow.py`` chose (docs/flow.md,
"Choosing a CPU preset").
"""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np

from flowprep.flow.base import check_pair
from flowprep.flow.occlusion import (
    aperture_confidence,
    fill_occluded,
    inconsistent,
    match_confidence,
    occluded_and_mismatch,
    require_ximgproc,
)
from flowprep.flow.opencv_cpu import (
    DIS_MAX_SCALES,
    DIS_PRESET_IDS,
    DISBackend,
    dis_coarsest_scale,
    dis_levels,
    stride_over_patch,
)
from flowprep.flow.params import Param, Rule
from flowprep.limits import MIN_SIDE

#: cv2 as untyped: VariationalRefinement's stubs vary between OpenCV releases
_CV2: Any = cv2


def _consistency_needs_fill(p: dict[str, Any]) -> str | None:
    if p["consistency_px"] == 0 or p["fill_occlusions"]:
        return None
    return (
        f"consistency_px={p['consistency_px']} needs fill_occlusions=1: the pixels the backward flow "
        "contradicts are refilled by the occlusion fill"
    )


def _fine_stride_within_patch(p: dict[str, Any]) -> str | None:
    if p["patch_stride"] <= p["patch_size"]:
        return None
    return stride_over_patch(f"patch_stride={p['patch_stride']}", f"patch_size={p['patch_size']}")


def _start_patch_sane(p: dict[str, Any]) -> str | None:
    size, stride = p["start_patch_size"], p["start_patch_stride"]
    if size == 1:
        return "start_patch_size=1 matches nothing (a 1-px patch minus its mean is 0): use 0 (no first pass) or 2..16"
    if size and stride > size:
        return stride_over_patch(f"start_patch_stride={stride}", f"start_patch_size={size}")
    return None


class FineDISBackend(DISBackend):
    """OpenCV DIS with every knob exposed, occlusions refilled, and a searched preset.

    DIS (dense inverse search) matches patches from the coarsest pyramid level down to
    ``finest_scale`` (0 = full resolution), then smooths each level with a variational refinement
    (data term weights ``delta`` for brightness constancy and ``gamma`` for gradient constancy,
    smoothness weight ``alpha``). ``fill_occlusions`` = 1 then finds the pixels the flow judges
    hidden in the next frame (:func:`~flowprep.flow.occlusion.occluded`, with ``occlusion_margin``)
    and refills them from the visible pixels that look like them
    (:func:`~flowprep.flow.occlusion.fill_occluded`, with ``fill_smoothness`` and ``fill_sigma``);
    ``match_sigma`` > 0 also blends every other pixel towards that fill by how poorly its flow
    explains the next frame (:func:`~flowprep.flow.occlusion.match_confidence`): a wrong patch
    match, not only an occlusion, then takes its well-matched look-alikes' flow.
    ``aperture_weight`` > 0 does the same where the first frame's texture runs in one direction
    only (:func:`~flowprep.flow.occlusion.aperture_confidence`): along stripes a patch matches
    anywhere, and the fill brings the flow from the stripes' ends.
    ``consistency_px`` > 0 also computes the backward flow (the same DIS, second frame to first) and
    refills the pixels whose flow it does not undo (:func:`~flowprep.flow.occlusion.inconsistent`):
    for large motion and repeated texture, at about 1.4x the time.
    ``start_patch_size`` > 0 first runs DIS with those patches (``start_patch_stride``,
    ``start_gradient_descent_iterations``, ``start_refinement_iterations`` per level) from its own
    coarsest level down to the main DIS's coarsest only, and starts the main DIS from that flow:
    a smaller patch makes OpenCV's pyramid one level deeper on 320x240-class frames, where motion
    of 20-50 px otherwise falls into a wrong minimum at the coarsest level (:meth:`_start_flow`).
    ``median_size`` > 0 then median-filters the flow (:func:`median_flow`).
    ``refine_iterations`` > 0 adds OpenCV's standalone ``VariationalRefinement`` at full
    resolution last, with its own weights (``refine_*``); ``presmooth_sigma`` > 0 blurs both frames
    first (Gaussian, px). The frame-size guards are :class:`DISBackend`'s. The defaults are the
    preset chosen by ``bench/tune_cpu_flow.py`` (docs/flow.md, "Choosing a CPU preset").

    ``calc`` returns ``float32`` ``(H, W, 2)`` flow in pixels, like every backend.
    """

    name = "dis-fine"
    # Chosen by bench/tune_cpu_flow.py's sixth run (bench/results/tune_cpu_flow/aperture/):
    # coordinate descent from the fifth run's choice with the aperture weight (10), minimising the
    # worst EPE ratio to tvl1-fast over the synthetic tuning set, each of its kinds and motion
    # classes, and eight real pairs with true flow (Middlebury Motorcycle, Hydrangea, Dimetrodon,
    # Urban2, Cones, and the three flow pairs also halved to 320x240-class frames), within 20x
    # tvl1-fast's speed at 320x240: DIS at full resolution, patch 8, stride 5, 12 descent steps, the
    # fill (edges at 4 gray levels) weighted by the warp mismatch (8 gray levels) and the texture's
    # aperture (7), a 5x5 median, then 5 refinement iterations of 2 SOR steps weighted towards
    # gradient constancy (alpha 30, delta 1, gamma 20, omega 1.9). Worst ratio 0.843 (the fifth run's
    # choice on the same pairs: 0.893). The seventh run (bench/results/tune_cpu_flow/start/) started
    # from the sixth's choice with the coarse first pass (7-px patches every 3 px, 25 descent steps,
    # 5 refinement iterations per level) and one full-resolution refinement iteration fewer to pay
    # for it, and moved the refinement's brightness weight 1 -> 0.5.
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("finest_scale", int, 0, "finest pyramid level computed (0: full resolution)", 0, DIS_MAX_SCALES - 1),
        # 1-px patches and a single descent step gave zero flow in probes (a 1-px patch minus its mean is 0)
        Param("patch_size", int, 8, "side of the matched patches, px (OpenCV's border is 16 px)", 2, 16),
        Param("patch_stride", int, 5, "step between patches, px", 1, 16),
        Param("gradient_descent_iterations", int, 12, "patch gradient-descent iterations per level", 2, 500),
        Param("variational_refinement_iterations", int, 0, "DIS's refinement iterations per level (0: none)", 0, 100),
        Param(
            "variational_refinement_alpha", float, 30.0, "smoothness weight of DIS's per-level refinement", 0.1, 1000
        ),
        Param(
            "variational_refinement_delta",
            float,
            5.0,
            "brightness-constancy weight of DIS's per-level refinement",
            0.1,
            1000,
        ),
        Param(
            "variational_refinement_gamma",
            float,
            0.0,
            "gradient-constancy weight of DIS's per-level refinement",
            0,
            1000,
        ),
        Param("use_mean_normalization", int, 1, "1: patches compared after removing their mean", choices=(0, 1)),
        Param("use_spatial_propagation", int, 1, "1: patches start from their neighbours' flow", choices=(0, 1)),
        # absent: what a record made before the parameter existed computed (flowprep.flow.params.with_absent)
        Param(
            "fill_occlusions",
            int,
            1,
            "1: refill pixels the flow judges hidden in the next frame",
            choices=(0, 1),
            absent=0,
        ),
        Param(
            "occlusion_margin", float, 0.0, "gray levels a pixel must match worse than its rival to be refilled", 0, 255
        ),
        Param("fill_smoothness", float, 400.0, "reach of the edge-aware fill (the smoother's lambda)", 1, 100000),
        Param("fill_sigma", float, 4.0, "gray levels over which the fill stops at an edge", 0.5, 255),
        Param(
            "match_sigma",
            float,
            8.0,
            "gray levels of warp mismatch at which a pixel's flow yields to the fill (0: only occlusions refilled)",
            0,
            255,
            absent=0.0,
        ),
        Param(
            "aperture_weight",
            float,
            7.0,
            "how one-directional (across/along) the texture may be before a pixel's flow yields to the fill "
            "(0: not weighed)",
            0,
            1000,
            absent=0.0,
        ),
        Param(
            "consistency_px",
            float,
            0.0,
            "px by which the backward flow may fail to undo a pixel's flow before it is refilled (0: no backward flow)",
            0,
            100,
            absent=0.0,
        ),
        Param(
            "start_patch_size",
            int,
            7,
            "patch of a first DIS pass over the coarse levels whose flow starts the main DIS, px (0: no first pass)",
            0,
            16,
            absent=0,
        ),
        Param("start_patch_stride", int, 3, "step between the first pass's patches, px", 1, 16),
        Param(
            "start_gradient_descent_iterations",
            int,
            25,
            "the first pass's patch gradient-descent iterations per level",
            2,
            500,
        ),
        Param(
            "start_refinement_iterations",
            int,
            5,
            "the first pass's variational refinement iterations per level",
            0,
            100,
        ),
        # OpenCV's median of float images takes only 3 or 5
        Param(
            "median_size",
            int,
            5,
            "side of the median filter on the flow before the refinement, px (0: none)",
            choices=(0, 3, 5),
            absent=0,
        ),
        Param("refine_iterations", int, 4, "full-resolution refinement iterations after DIS (0: none)", 0, 100),
        Param("refine_alpha", float, 30.0, "smoothness weight of the full-resolution refinement", 0.1, 1000),
        Param("refine_delta", float, 0.5, "brightness-constancy weight of the full-resolution refinement", 0.1, 1000),
        Param("refine_gamma", float, 20.0, "gradient-constancy weight of the full-resolution refinement", 0, 1000),
        # SOR diverges outside (0, 2); OpenCV's default is 1.6
        Param("refine_omega", float, 1.9, "SOR relaxation factor of the full-resolution refinement", 0.1, 1.99),
        Param("refine_sor_iterations", int, 2, "inner SOR iterations of each full-resolution refinement step", 1, 100),
        Param("presmooth_sigma", float, 0.0, "Gaussian blur of both frames before DIS, px (0: none)", 0, 5),
    )
    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule("patch_stride <= patch_size", _fine_stride_within_patch),
        Rule("consistency_px > 0 needs fill_occlusions = 1", _consistency_needs_fill),
        Rule("start_patch_size is 0 or 2..16, start_patch_stride <= start_patch_size", _start_patch_sane),
    )

    def __init__(self, **params: Any) -> None:  # noqa: D107 -- the parameters are PARAMS
        self._params = {**(self.DEFAULTS or {}), **params}
        p = self._params
        alg: Any = cv2.DISOpticalFlow.create(DIS_PRESET_IDS["medium"])
        alg.setFinestScale(int(p["finest_scale"]))
        alg.setPatchSize(int(p["patch_size"]))
        alg.setPatchStride(int(p["patch_stride"]))
        alg.setGradientDescentIterations(int(p["gradient_descent_iterations"]))
        alg.setVariationalRefinementIterations(int(p["variational_refinement_iterations"]))
        alg.setVariationalRefinementAlpha(float(p["variational_refinement_alpha"]))
        alg.setVariationalRefinementDelta(float(p["variational_refinement_delta"]))
        alg.setVariationalRefinementGamma(float(p["variational_refinement_gamma"]))
        alg.setUseMeanNormalization(bool(p["use_mean_normalization"]))
        alg.setUseSpatialPropagation(bool(p["use_spatial_propagation"]))
        self._alg = alg
        if p["fill_occlusions"]:
            require_ximgproc()  # at construction: a missing contrib build fails before the first clip
        self._start: Any = None
        if int(p["start_patch_size"]) > 0:
            # OpenCV's medium preset otherwise (its refinement weights, mean normalisation, propagation)
            self._start = cv2.DISOpticalFlow.create(DIS_PRESET_IDS["medium"])
            self._start.setPatchStride(int(p["start_patch_stride"]))
            self._start.setGradientDescentIterations(int(p["start_gradient_descent_iterations"]))
            self._start.setVariationalRefinementIterations(int(p["start_refinement_iterations"]))
        self._refine: Any = None
        if int(p["refine_iterations"]) > 0:
            self._refine = _CV2.VariationalRefinement.create()
            self._refine.setFixedPointIterations(int(p["refine_iterations"]))
            self._refine.setAlpha(float(p["refine_alpha"]))
            self._refine.setDelta(float(p["refine_delta"]))
            self._refine.setGamma(float(p["refine_gamma"]))
            self._refine.setOmega(float(p["refine_omega"]))
            self._refine.setSorIterations(int(p["refine_sor_iterations"]))

    def calc(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        sigma = float(self._params["presmooth_sigma"])
        if sigma > 0:
            check_pair(prev, nxt, MIN_SIDE, self.name)  # before OpenCV's blur sees them
            prev = cv2.GaussianBlur(prev, (0, 0), sigma)
            nxt = cv2.GaussianBlur(nxt, (0, 0), sigma)
        flow = self._flow(prev, nxt)
        if self._params["fill_occlusions"]:
            # before the refinement, so that it smooths the seams between filled and kept flow
            hidden, mismatch = occluded_and_mismatch(prev, nxt, flow, float(self._params["occlusion_margin"]))
            tolerance = float(self._params["consistency_px"])
            if tolerance > 0:
                hidden |= inconsistent(flow, self._flow(nxt, prev), tolerance)  # the same DIS backwards
            match_sigma = float(self._params["match_sigma"])
            confidence = match_confidence(mismatch, match_sigma) if match_sigma > 0 else None
            aperture = float(self._params["aperture_weight"])
            if aperture > 0:
                weak = aperture_confidence(prev, aperture)
                confidence = weak if confidence is None else confidence * weak
            flow = fill_occluded(
                flow,
                hidden,
                prev,
                float(self._params["fill_smoothness"]),
                float(self._params["fill_sigma"]),
                confidence,
            )
        size = int(self._params["median_size"])
        if size:
            # TV-L1's remedy for outliers (Sun, Roth & Black 2010): isolated wrong matches of DIS's
            # patches would otherwise anchor the refinement
            flow = median_flow(flow, size)
        if self._refine is not None:
            flow = self._refine.calc(prev, nxt, flow)
        return flow

    def _flow(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """DIS from ``prev`` to ``nxt`` (``float32`` ``(H, W, 2)``, px), started by the first pass."""
        check_pair(prev, nxt, MIN_SIDE, self.name)  # before the first pass sees them
        start = self._start_flow(prev, nxt) if self._start is not None else None
        return self._dis(prev, nxt, start)  # with its frame checks and per-call scale and patch reset

    def _start_flow(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray | None:
        """The first pass: DIS with ``start_patch_size`` patches from its own coarsest level down to
        the main DIS's coarsest, ``float32`` ``(H, W, 2)`` px at full size; None where OpenCV's
        levels for it would be unsafe (frames too small for the patch: the main DIS starts from zero).

        Why: OpenCV picks the coarsest level from the frame and the patch (a 320-px-wide frame
        starts at 1/8 with 8-px patches), and motion beyond about a patch there falls into a wrong
        minimum the finer levels cannot leave. A smaller patch gives a pyramid one level coarser on
        320x240-class frames, and more descent steps, a finer stride and a per-level refinement make
        a thorough search cheap at those sizes (about 1.3 ms per 320x240 pair).
        """
        p = self._params
        height, width = prev.shape[:2]
        size = int(p["start_patch_size"])
        main = dis_levels(width, height, int(p["patch_size"]), int(p["finest_scale"]))
        own = dis_coarsest_scale(width, height, size)
        if main is None or own is None or own < 0 or own >= DIS_MAX_SCALES or min(width, height) >> own < size:
            return None
        self._start.setPatchSize(size)
        # never below its own coarsest level: OpenCV would pick its own patch and levels instead
        self._start.setFinestScale(min(main[1], own))
        return self._start.calc(prev, nxt, None)


def median_flow(flow: np.ndarray, size: int) -> np.ndarray:
    """Median-filter each flow component over ``size`` x ``size`` pixels (edges replicated).

    ``flow``: ``float32`` ``(H, W, 2)``, px; ``size``: 3 or 5. Returns a new ``float32``
    ``(H, W, 2)`` array. The median is taken in fixed point, 1/256 px steps (coarser only where the
    flow exceeds 127 px: the steps then span its largest value over 32,000), so each value is
    within half a step of the exact median: 1/512 px, a hundredth of the 8-bit storage's step.
    """
    # OpenCV's 16-bit median is about 3x faster than its float one (2.0 -> 0.7 ms at 320x240),
    # 5 % of dis-fine's time
    peak = float(np.abs(flow).max(initial=0.0))
    scale = 256.0 if peak < 127.0 else 32000.0 / peak
    fixed = np.rint(flow * np.float32(scale)).astype(np.int16)
    # cv2.medianBlur takes 1, 3 or 4 channels: the two components go separately
    out = np.dstack([cv2.medianBlur(np.ascontiguousarray(fixed[..., c]), size) for c in range(2)])
    return out.astype(np.float32) * np.float32(1.0 / scale)

"""CPU flow backends from OpenCV (``opencv-contrib-python-headless``): TV-L1, DIS, Farneback.

OpenCV's own thread pool is left as the caller set it: the build engine makes each worker process
single-threaded (``cv2.setNumThreads(1)``) because several processes beat one multi-threaded one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np

from flowprep.errors import BackendNotInstalledError
from flowprep.flow.base import FlowBackend, check_pair
from flowprep.limits import MIN_SIDE

#: cv2 as untyped: what OpenCV's stubs declare differs between releases (cv2.optflow, None arguments)
_CV2: Any = cv2


def _require_optflow() -> None:
    if not hasattr(cv2, "optflow"):
        raise BackendNotInstalledError(
            "OpenCV has no cv2.optflow (TV-L1 is in the contrib build): "
            "`pip uninstall opencv-python opencv-python-headless && pip install opencv-contrib-python-headless`"
        )


def _merge(defaults: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    # The registry checks names before construction; this covers backends made directly.
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        what = "parameter" if len(unknown) == 1 else "parameters"
        raise TypeError(f"unknown {what} {', '.join(map(repr, unknown))}; known: {', '.join(sorted(defaults))}")
    return {**defaults, **params}


def _tvl1(p: dict[str, Any], use_initial_flow: bool):
    """OpenCV's Dual TV-L1 from our parameter names (``gamma`` defaults to 0: no illumination term)."""
    # OpenCV's bundled stubs leave out the contrib module cv2.optflow in some releases, not in others:
    # reached through Any so that no `type: ignore` depends on the stub version
    return _CV2.optflow.DualTVL1OpticalFlow_create(
        tau=float(p["tau"]),
        lambda_=float(p["lambda_"]),
        theta=float(p["theta"]),
        nscales=int(p["scales"]),
        warps=int(p["warps"]),
        epsilon=float(p["epsilon"]),
        innnerIterations=int(p["inner_iterations"]),
        outerIterations=int(p["outer_iterations"]),
        scaleStep=float(p["scale_step"]),
        gamma=float(p.get("gamma", 0.0)),
        medianFiltering=int(p["median_filtering"]),
        useInitialFlow=use_initial_flow,
    )


class TVL1Backend(FlowBackend):
    """OpenCV Dual TV-L1 (Zach, Pock, Bischof 2007; Sanchez et al. 2013) with OpenCV's defaults.

    The defaults (tau 0.25, lambda 0.15, theta 0.3, 5 scales with step 0.8, 5 warps, epsilon 0.01,
    30 inner and 10 outer iterations) are what denseflow / the TSN and I3D scripts use, so flow made
    with ``tvl1`` is comparable with published pipelines. About 1 pair/s at 320x240 on one core.
    """

    name = "tvl1"
    DEFAULTS: ClassVar[dict[str, Any]] = dict(
        tau=0.25,
        lambda_=0.15,
        theta=0.3,
        scales=5,
        warps=5,
        epsilon=0.01,
        inner_iterations=30,
        outer_iterations=10,
        scale_step=0.8,
        gamma=0.0,
        median_filtering=5,
    )

    def __init__(self, **params: Any) -> None:
        _require_optflow()
        self._params = _merge(self.DEFAULTS, params)
        self._alg = _tvl1(self._params, use_initial_flow=False)

    def calc(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        check_pair(prev, nxt)
        return self._alg.calc(prev, nxt, None)

    def params(self) -> dict[str, Any]:
        return dict(self._params)


class FastTVL1Backend(FlowBackend):
    """DIS initialises a short TV-L1 refinement (``useInitialFlow``): TV-L1 quality at a fraction of its cost.

    DIS finds large displacements that a 5-level TV-L1 pyramid misses; TV-L1 then only refines on the
    finest scales, so far fewer scales and iterations are needed. Parameters are the measured preset
    (see ``flowprep bench-flow`` and the README).
    """

    name = "tvl1-fast"
    # Measured with `flowprep bench-flow` (320x240 carphone frames, motion 2..30 px, one OpenCV
    # thread; docs/flow.md): 3 scales x 3 warps x 10 inner x 2 outer iterations over DIS "medium"
    # gave mean EPE 0.21 px against tvl1's 2.3 px (tvl1 loses motion over ~15 px) at about 6x
    # tvl1's speed; 1 scale / 4 outer (the first guess) was as fast but less accurate (0.29 px);
    # 2 scales x 2 warps is 10x faster at 0.29 px.
    DEFAULTS: ClassVar[dict[str, Any]] = dict(
        dis_preset="medium",
        scales=3,
        warps=3,
        inner_iterations=10,
        outer_iterations=2,
        tau=0.25,
        lambda_=0.15,
        theta=0.3,
        epsilon=0.01,
        scale_step=0.8,
        median_filtering=5,
    )

    def __init__(self, **params: Any) -> None:
        _require_optflow()
        self._params = _merge(self.DEFAULTS, params)
        self._dis = DISBackend(preset=self._params["dis_preset"])
        self._alg = _tvl1(self._params, use_initial_flow=True)

    def calc(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        check_pair(prev, nxt)
        init = self._dis.calc(prev, nxt)
        return self._alg.calc(prev, nxt, init)

    def params(self) -> dict[str, Any]:
        return dict(self._params)


_DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


class DISBackend(FlowBackend):
    """OpenCV DIS optical flow (Kroeger et al. 2016): hundreds of pairs/s, less accurate on fine motion."""

    name = "dis"

    def __init__(
        self,
        preset: str = "medium",
        finest_scale: int | None = None,
        variational_refinement_iterations: int | None = None,
        patch_size: int | None = None,
        patch_stride: int | None = None,
    ) -> None:
        if preset not in _DIS_PRESETS:
            raise TypeError(f"preset must be one of {sorted(_DIS_PRESETS)}, got {preset!r}")
        self._alg: Any = cv2.DISOpticalFlow.create(_DIS_PRESETS[preset])
        # The preset sets every value below; explicit ones override it (params() lists all, so a
        # backend made from the recorded params is the same backend).
        if finest_scale is not None:
            self._alg.setFinestScale(int(finest_scale))
        if variational_refinement_iterations is not None:
            self._alg.setVariationalRefinementIterations(int(variational_refinement_iterations))
        if patch_size is not None:
            self._alg.setPatchSize(int(patch_size))
        if patch_stride is not None:
            self._alg.setPatchStride(int(patch_stride))
        self._params: dict[str, Any] = {
            "preset": preset,
            "finest_scale": self._alg.getFinestScale(),
            "variational_refinement_iterations": self._alg.getVariationalRefinementIterations(),
            "patch_size": self._alg.getPatchSize(),
            "patch_stride": self._alg.getPatchStride(),
        }

    def calc(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        # OpenCV 5's DIS refuses frames under 12 px and crashes the process (SIGSEGV) on some
        # under 16 rows (12x40: tests/test_safety_inputs.py), so both sides must reach MIN_SIDE
        check_pair(prev, nxt, MIN_SIDE, self.name)
        # OpenCV's DIS lowers its finest scale for small frames and keeps it lowered, so one
        # instance would give different flow for the same pair depending on what it saw before.
        self._alg.setFinestScale(int(self._params["finest_scale"]))
        return self._alg.calc(prev, nxt, None)

    def params(self) -> dict[str, Any]:
        return dict(self._params)


class FineDISBackend(FlowBackend):
    """OpenCV DIS with every knob exposed and a measured preset: ``tvl1-fast``'s accuracy at DIS speed.

    DIS (dense inverse search) matches patches from the coarsest pyramid level down to
    ``finest_scale`` (0 = full resolution), then smooths each level with a variational refinement
    (data term weights ``delta`` for brightness constancy and ``gamma`` for gradient constancy,
    smoothness weight ``alpha``). ``refine_iterations`` > 0 adds OpenCV's standalone
    ``VariationalRefinement`` at full resolution with the same weights after DIS, which recovers
    detail when DIS stops at a coarser level. The defaults are the preset chosen by
    ``bench/tune_cpu_flow.py`` (see docs/flow.md for the search and its numbers).
    """

    name = "dis-fine"
    # Chosen by bench/tune_cpu_flow.py (coarse grid, then coordinate descent within 2.4x the CPU
    # time of DIS "medium"; 18 tuning pairs from the first half of the carphone clip): against
    # "medium" it matches patches down to full resolution (finest scale 0) with a larger stride and
    # fewer descent steps, drops DIS's own per-level variational refinement and the gradient term
    # (gamma 0), and ends with 5 full-resolution refinement iterations (alpha 30). docs/flow.md has
    # the held-out figures.
    DEFAULTS: ClassVar[dict[str, Any]] = dict(
        finest_scale=0,
        patch_size=8,
        patch_stride=4,
        gradient_descent_iterations=8,
        variational_refinement_iterations=0,
        variational_refinement_alpha=30.0,
        variational_refinement_delta=5.0,
        variational_refinement_gamma=0.0,
        use_mean_normalization=True,
        use_spatial_propagation=True,
        refine_iterations=5,
    )

    def __init__(self, **params: Any) -> None:
        self._params = _merge(self.DEFAULTS, params)
        p = self._params
        alg: Any = cv2.DISOpticalFlow.create(_DIS_PRESETS["medium"])
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
        self._refine: Any = None
        if int(p["refine_iterations"]) > 0:
            self._refine = _CV2.VariationalRefinement.create()
            self._refine.setFixedPointIterations(int(p["refine_iterations"]))
            self._refine.setAlpha(float(p["variational_refinement_alpha"]))
            self._refine.setDelta(float(p["variational_refinement_delta"]))
            self._refine.setGamma(float(p["variational_refinement_gamma"]))

    def calc(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        check_pair(prev, nxt, MIN_SIDE, self.name)
        # as in DISBackend: DIS lowers its finest scale for small frames and keeps it lowered
        self._alg.setFinestScale(int(self._params["finest_scale"]))
        flow = self._alg.calc(prev, nxt, None)
        if self._refine is not None:
            flow = self._refine.calc(prev, nxt, flow)
        return flow

    def params(self) -> dict[str, Any]:
        return dict(self._params)


class FarnebackBackend(FlowBackend):
    """OpenCV Farneback (2003) dense flow with the parameters denseflow and most tutorials use."""

    name = "farneback"
    DEFAULTS: ClassVar[dict[str, Any]] = dict(
        pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0
    )

    def __init__(self, **params: Any) -> None:
        self._params = _merge(self.DEFAULTS, params)

    def calc(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        check_pair(prev, nxt)
        p = self._params
        # no initial flow (None): OpenCV's stubs disagree between releases on whether that is allowed,
        # so the call goes through Any rather than a version-dependent `type: ignore`
        return _CV2.calcOpticalFlowFarneback(
            prev,
            nxt,
            None,
            float(p["pyr_scale"]),
            int(p["levels"]),
            int(p["winsize"]),
            int(p["iterations"]),
            int(p["poly_n"]),
            float(p["poly_sigma"]),
            int(p["flags"]),
        )

    def params(self) -> dict[str, Any]:
        return dict(self._params)

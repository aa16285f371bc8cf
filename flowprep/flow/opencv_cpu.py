"""CPU flow backends from OpenCV (``opencv-contrib-python-headless``): TV-L1, DIS, Farneback.

OpenCV's own thread pool is left as the caller set it: the build engine makes each worker process
single-threaded (``cv2.setNumThreads(1)``) because several processes beat one multi-threaded one.

Parameter ranges (``PARAMS``) are what OpenCV 4.x/5.x survives, from its sources and probes on 16x16
to 320x240 frames (docs/flow.md): DIS reads its patches from a 16-pixel border, so a patch over 16
pixels or a stride over the patch size reads or writes outside its buffers (SIGSEGV, heap
corruption) and 0 divides by zero (SIGFPE); Farneback with ``winsize=0`` and TV-L1 with ``theta=0``
return NaN; ``iterations``/``warps``/``inner_iterations``/``outer_iterations`` of 0 or
``lambda_=0`` or ``poly_sigma`` under 0.2 return all-zero flow; TV-L1's median filter takes 1, 3 or
5 only. Iteration counts are capped at 10-20x the defaults so that a typo cannot make one pair take
hours. Some frames still break DIS with allowed values, because OpenCV picks its own pyramid (and
patch size) for very small and very large frames: :func:`dis_levels` predicts that choice and
:class:`DISBackend` fails such a clip with the reason before calling OpenCV.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, ClassVar

import cv2
import numpy as np

from flowprep.errors import BackendNotInstalledError, FrameSizeError
from flowprep.flow.base import FlowBackend, check_pair
from flowprep.flow.params import Param, Rule
from flowprep.limits import MIN_SIDE

#: cv2 as untyped: what OpenCV's stubs declare differs between releases (cv2.optflow, None arguments)
_CV2: Any = cv2


def require_contrib(module: str, what: str, cv: Any = cv2) -> None:
    """Raise :class:`BackendNotInstalledError` unless ``cv`` (OpenCV) has the contrib module ``module``.

    ``what`` names the feature that needs it, for the message; ``cv`` is there for tests."""
    if not hasattr(cv, module):
        raise BackendNotInstalledError(
            f"{what} needs cv2.{module}, which only the contrib build of OpenCV has: "
            "`pip uninstall opencv-python opencv-python-headless && pip install opencv-contrib-python-headless`"
        )


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


def _tvl1_params(defaults: dict[str, Any]) -> tuple[Param, ...]:
    """TV-L1's parameters with the given defaults (``gamma`` only when ``defaults`` has it)."""
    table = [
        Param("tau", float, None, "time step of the dual scheme (stable up to 0.25)", 0, 0.25, lo_open=True),
        Param("lambda_", float, None, "weight of the data term (smaller: smoother; near 0: zero flow)", 0.01, 100),
        Param("theta", float, None, "coupling of the two sub-problems (0 gives NaN)", 0.01, 100),
        Param("scales", int, None, "pyramid levels", 1, 10),
        Param("warps", int, None, "warpings per pyramid level", 1, 20),
        Param("epsilon", float, None, "stopping threshold of the inner loop (0: run every iteration)", 0, 1),
        Param("inner_iterations", int, None, "iterations of the inner loop per warping", 1, 100),
        Param("outer_iterations", int, None, "iterations of the outer loop per warping", 1, 50),
        Param("scale_step", float, None, "size ratio between pyramid levels", 0.1, 1, hi_open=True),
        Param("gamma", float, None, "weight of the illumination term (0: off; other values ran 80x slower)", 0, 10),
        Param("median_filtering", int, None, "median filter on the flow between warps (1: none)", choices=(1, 3, 5)),
    ]
    return tuple(replace(p, default=defaults[p.name]) for p in table if p.name in defaults)


class TVL1Backend(FlowBackend):
    """OpenCV Dual TV-L1 (Zach, Pock, Bischof 2007; Sanchez et al. 2013) with OpenCV's defaults.

    The defaults (tau 0.25, lambda 0.15, theta 0.3, 5 scales with step 0.8, 5 warps, epsilon 0.01,
    30 inner and 10 outer iterations) are what denseflow / the TSN and I3D scripts use, so flow made
    with ``tvl1`` is comparable with published pipelines. About 1 pair/s at 320x240 on one core.
    """

    name = "tvl1"
    PARAMS: ClassVar[tuple[Param, ...]] = _tvl1_params(
        dict(
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
    )

    def __init__(self, **params: Any) -> None:
        require_contrib("optflow", "TV-L1")
        self._params = {**(self.DEFAULTS or {}), **params}
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
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("dis_preset", str, "medium", "DIS preset of the initial flow", choices=("ultrafast", "fast", "medium")),
        *_tvl1_params(
            dict(
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
        ),
    )

    def __init__(self, **params: Any) -> None:
        require_contrib("optflow", "TV-L1")
        self._params = {**(self.DEFAULTS or {}), **params}
        self._dis = DISBackend(preset=self._params["dis_preset"])
        self._alg = _tvl1(self._params, use_initial_flow=True)

    def calc(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        check_pair(prev, nxt)
        init = self._dis.calc(prev, nxt)
        return self._alg.calc(prev, nxt, init)

    def params(self) -> dict[str, Any]:
        return dict(self._params)


DIS_PRESET_IDS = {"ultrafast": 0, "fast": 1, "medium": 2}
#: what ``cv2.DISOpticalFlow.create(preset)`` sets (OpenCV 4.x/5.x; a test compares with the library)
DIS_PRESET_VALUES: dict[str, dict[str, int]] = {
    "ultrafast": dict(finest_scale=2, variational_refinement_iterations=0, patch_size=8, patch_stride=4),
    "fast": dict(finest_scale=2, variational_refinement_iterations=5, patch_size=8, patch_stride=4),
    "medium": dict(finest_scale=1, variational_refinement_iterations=5, patch_size=8, patch_stride=3),
}
#: pyramid levels OpenCV's DIS keeps a variational-refinement instance for; one more crashes it
DIS_MAX_SCALES = 10


def _dis_resolved(p: dict[str, Any]) -> dict[str, Any]:
    """DIS parameters with each None replaced by the preset's value."""
    preset = DIS_PRESET_VALUES[p["preset"]]
    return {k: (preset[k] if v is None and k in preset else v) for k, v in p.items()}


def stride_over_patch(stride: str, size: str) -> str:
    """The refusal of a patch stride over the patch size; ``stride``/``size`` as shown (``name=value``)."""
    return (
        f"{stride} is larger than {size}; OpenCV's DIS needs patch_stride <= patch_size (a larger stride "
        "writes past its buffers)"
    )


def _stride_within_patch(p: dict[str, Any]) -> str | None:
    r = _dis_resolved(p)
    if r["patch_stride"] <= r["patch_size"]:
        return None

    def shown(k: str) -> str:
        return f"{k}={r[k]}" + (f" (preset {p['preset']!r})" if p[k] is None else "")

    return stride_over_patch(shown("patch_stride"), shown("patch_size"))


def dis_coarsest_scale(width: int, height: int, patch_size: int) -> int | None:
    """The coarsest pyramid level OpenCV's DIS computes for a frame (its ``calc``, same arithmetic).

    None when the frame is smaller than a patch (OpenCV then refuses the frame itself).
    """
    if min(width, height) // patch_size < 1:
        return None
    by_motion = int(math.log(max(width, height) / (4.0 * patch_size)) / math.log(2.0) + 0.5)
    by_patch = int(math.log(min(width, height) // patch_size) / math.log(2.0))
    return min(by_motion, by_patch)


def dis_levels(width: int, height: int, patch_size: int, finest_scale: int) -> tuple[int, int, int] | None:
    """``(patch size, coarsest level, finest level)`` OpenCV's DIS really uses for a frame, or None
    when it refuses the frame (smaller than a patch).

    When the frame has fewer levels than ``finest_scale`` asks for, OpenCV (4.6 and later) picks a
    patch size (8, or 12 for finest scale 3 or 4) and levels from the frame's width, in float32
    (``autoSelectPatchSizeAndScales`` in dis_flow.cpp), and keeps them for later frames.
    """
    coarsest = dis_coarsest_scale(width, height, patch_size)
    if coarsest is None or coarsest < 0:
        return None
    if coarsest >= finest_scale:
        return patch_size, coarsest, finest_scale
    patch = 12 if finest_scale in (3, 4) else 8
    ratio = np.float32(2.0 * width) / (np.float32(5.0) * np.float32(patch))
    coarsest = max(0, int(np.floor(np.log2(ratio))))
    return patch, coarsest, max(coarsest - {3: 4, 4: 5}.get(finest_scale, 2), 0)


class DISBackend(FlowBackend):
    """OpenCV DIS optical flow (Kroeger et al. 2016): hundreds of pairs/s, less accurate on fine motion."""

    name = "dis"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("preset", str, "medium", "OpenCV's preset, which sets the others", choices=tuple(DIS_PRESET_IDS)),
        Param("finest_scale", int, None, "finest pyramid level computed (0: full resolution)", 0, DIS_MAX_SCALES - 1),
        Param("variational_refinement_iterations", int, None, "refinement iterations per level (0: none)", 0, 100),
        Param("patch_size", int, None, "side of the matched patches, px (OpenCV's border is 16 px)", 1, 16),
        Param("patch_stride", int, None, "step between patches, px", 1, 16),
    )
    RULES: ClassVar[tuple[Rule, ...]] = (Rule("patch_stride <= patch_size", _stride_within_patch),)

    def __init__(
        self,
        *,
        preset: str = "medium",
        finest_scale: int | None = None,
        variational_refinement_iterations: int | None = None,
        patch_size: int | None = None,
        patch_stride: int | None = None,
    ) -> None:
        self._alg: Any = cv2.DISOpticalFlow.create(DIS_PRESET_IDS[preset])
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
        return self._dis(prev, nxt, None)

    def _dis(self, prev: np.ndarray, nxt: np.ndarray, initial: np.ndarray | None) -> np.ndarray:
        """DIS from ``prev`` to ``nxt``, its coarsest level started from ``initial`` (``float32``
        ``(H, W, 2)``, px, overwritten) when given, else from zero flow."""
        # OpenCV 5's DIS refuses frames under 12 px and crashes the process (SIGSEGV) on some
        # under 16 rows (12x40: tests/test_flow_backends.py), so both sides must reach MIN_SIDE
        check_pair(prev, nxt, MIN_SIDE, self.name)
        self._check_levels(prev.shape[1], prev.shape[0])
        # OpenCV's DIS picks its own finest scale and patch size for small frames and keeps them,
        # so one instance would give different flow for the same pair depending on what it saw before.
        self._alg.setFinestScale(int(self._params["finest_scale"]))
        self._alg.setPatchSize(int(self._params["patch_size"]))
        return self._alg.calc(prev, nxt, initial)

    def _check_levels(self, width: int, height: int) -> None:
        """Refuse (a failed clip) the frames on which OpenCV's DIS would write outside its buffers."""
        p = self._params
        levels = dis_levels(width, height, p["patch_size"], p["finest_scale"])
        if levels is None:
            return  # OpenCV refuses the frame itself (cv2.error: a failed clip)
        patch, coarsest, finest = levels
        if min(width, height) >> coarsest < patch:
            # after OpenCV's own choice (from the width alone) the coarsest level is smaller than a
            # patch: SIGSEGV, cv2.error or NaN flow depending on the sizes (probed)
            raise FrameSizeError(
                f"frames of {width}x{height} are too small for the dis backend with finest_scale="
                f"{p['finest_scale']}: OpenCV's DIS picks {coarsest - finest + 1} pyramid levels from the "
                f"width alone and the coarsest ({width >> coarsest}x{height >> coarsest}) is smaller than its "
                f"{patch}-px patch; use preset medium, a lower finest_scale or frames closer to square"
            )
        if patch < p["patch_stride"]:
            # OpenCV switched to its own patch size but kept the stride (heap corruption, valgrind)
            raise FrameSizeError(
                f"frames of {width}x{height} are too small for the dis backend with patch_stride="
                f"{p['patch_stride']}: OpenCV's DIS switches frames this small to patch_size {patch}, and a "
                f"stride over the patch writes outside its buffers; use patch_stride <= {patch} or larger frames"
            )
        if coarsest < DIS_MAX_SCALES:
            return

        def fits(size: int) -> bool:
            got = dis_levels(width, height, size, p["finest_scale"])
            return got is not None and got[1] < DIS_MAX_SCALES

        smallest = next((size for size in range(p["patch_size"], 17) if fits(size)), None)
        fix = f"patch_size >= {smallest} or smaller frames" if smallest else "smaller frames"
        # OpenCV keeps DIS_MAX_SCALES refinement instances and indexes past them (SIGSEGV)
        raise FrameSizeError(
            f"frames of {width}x{height} are too large for the dis backend with patch_size={p['patch_size']} "
            f"(OpenCV's DIS would need more than {DIS_MAX_SCALES} pyramid levels); use {fix} (--size/--short-side)"
        )

    def params(self) -> dict[str, Any]:
        return dict(self._params)


class FarnebackBackend(FlowBackend):
    """OpenCV Farneback (2003) dense flow with the parameters denseflow and most tutorials use."""

    name = "farneback"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("pyr_scale", float, 0.5, "size ratio between pyramid levels", 0, 1, lo_open=True, hi_open=True),
        Param("levels", int, 3, "pyramid levels (1: the frame only)", 1, 20),
        Param("winsize", int, 15, "averaging window, px (0 gives NaN)", 1, 255),
        Param("iterations", int, 3, "iterations per pyramid level (0 gives zero flow)", 1, 100),
        Param("poly_n", int, 5, "neighbourhood of the polynomial expansion, px", choices=(5, 7)),
        Param(
            "poly_sigma", float, 1.2, "Gaussian sigma of the expansion (under 0.2: zero flow; 1.1-1.5 usual)", 0.25, 10
        ),
        Param("flags", int, 0, "0, or 256: Gaussian window instead of a box", choices=(0, 256)),
    )

    def __init__(self, **params: Any) -> None:
        self._params = {**(self.DEFAULTS or {}), **params}

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

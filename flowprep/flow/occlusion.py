"""Occlusions judged from a forward flow alone, and filled from their visible neighbours.

A pixel of the first frame that is hidden in the second (covered by a closer object, the
background beside a moving person) has no true match there, so a patch matcher such as DIS gives
it the flow of whatever it happened to match, typically the occluder's. On the Motorcycle stereo
pair of docs/flow.md they are 8 % of the pixels with known flow and 37 % of dis-fine's error.
Finding them with a backward flow doubles the cost; these functions use the forward flow only:

* :func:`occluded`: where the flow sends two pixels of the first frame to the same pixel of the
  second, only one can be visible there. The one that matches the second frame worse (absolute
  gray difference after warping) is taken to be the hidden one.
* :func:`fill_occluded`: each marked pixel takes an edge-aware average of the unmarked flow
  around it, guided by the first frame, so a hidden background pixel takes the flow of the
  background it looks like, not the occluder's beside it.
* :func:`aperture_confidence`: where the first frame's texture runs in one direction only (stripes,
  a facade's siding, an edge), a patch matches equally well anywhere along it (the aperture
  problem), so DIS's flow there is a guess; it too yields to the fill, which spreads the flow from
  the ends of the stripes along them.
* :func:`inconsistent`: optional, for large motion and repeated texture: where the flow and a
  backward flow (second frame to first) disagree, at the cost of that second flow.
* :func:`match_confidence`: beyond occlusions, DIS's patches sometimes match the wrong place; the
  gray difference left after warping (:func:`occluded_and_mismatch` computes it anyway) says
  where, and :func:`fill_occluded` given that confidence blends such pixels towards the fill.

At 320x240 on one core the test and the fill take about 2 and 5 ms, the aperture confidence 2 ms
(DIS medium: about 11-15 ms).
"""

from __future__ import annotations

import functools
from typing import Any

import cv2
import numpy as np

from flowprep.flow.opencv_cpu import require_contrib

#: cv2 as untyped: cv2.ximgproc is in the contrib build only and its stubs vary between releases
_CV2: Any = cv2


def require_ximgproc() -> None:
    """Raise :class:`BackendNotInstalledError` unless OpenCV's contrib module ``ximgproc`` is there."""
    require_contrib("ximgproc", "the occlusion fill", _CV2)


def _targets(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where ``flow`` (``float32`` ``(H, W, 2)``, px) sends each pixel: ``float32`` x ``(H, W)`` and
    y ``(H, W)`` maps for ``cv2.remap``."""
    h, w = flow.shape[:2]
    xs = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
    ys = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
    return xs, ys


def occluded(prev: np.ndarray, nxt: np.ndarray, flow: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Pixels of ``prev`` that ``flow`` sends where another pixel of ``prev`` matches ``nxt`` better.

    :func:`occluded_and_mismatch`'s first result (see there)."""
    return occluded_and_mismatch(prev, nxt, flow, margin)[0]


def occluded_and_mismatch(
    prev: np.ndarray, nxt: np.ndarray, flow: np.ndarray, margin: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of ``prev`` that ``flow`` sends where another pixel of ``prev`` matches ``nxt`` better.

    Targets are rounded to whole pixels. Of the pixels sharing a target, the one with the smallest
    absolute gray difference to ``nxt`` (bilinear warp) is visible; each other one is marked when
    its difference exceeds that smallest one by more than ``margin``. Targets outside ``nxt`` count as
    the nearest border pixel.

    Args:
        prev, nxt: ``uint8`` ``(H, W)`` gray frames.
        flow: ``float32`` ``(H, W, 2)`` flow from ``prev`` to ``nxt``, pixels (x, y).
        margin: gray levels (>= 0) by which a pixel must match worse than the best one to be marked.

    Returns:
        ``bool`` ``(H, W)``, True where judged occluded; and ``uint8`` ``(H, W)``, each pixel's
        absolute gray difference to ``nxt`` warped by ``flow`` (0-255; what
        :func:`match_confidence` weighs).
    """
    if not margin >= 0:
        raise ValueError(f"margin must be a number >= 0, not {margin!r}")
    h, w = prev.shape
    xs, ys = _targets(flow)
    # targets outside the frame are clamped to its border: pixels leaving the view then compete
    # there too, and all but the best-matching one take their neighbours' flow (DIS extrapolates
    # them poorly; this cut the error on the real pair's left edge)
    # fmax/fmin rather than clip: a non-finite flow value (none from OpenCV's DIS, but the
    # function is public) must not become a wild index, and fmax turns NaN into 0
    # int32 indices (a frame has far fewer than 2**31 pixels): this function 2.4 -> 2.0 ms at 320x240
    tx = np.fmin(np.fmax(np.rint(xs), 0), w - 1).astype(np.int32)
    target = np.fmin(np.fmax(np.rint(ys), 0), h - 1).astype(np.int32)
    target *= w
    target += tx
    target = target.ravel()
    warped = cv2.remap(nxt, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    diff = cv2.absdiff(warped, prev).ravel()
    best = np.full(h * w, 255, np.uint8)
    np.minimum.at(best, target, diff)
    # a pixel alone at its target is its own best, and margin >= 0: no count of the sharers is needed
    if margin == 0:
        hidden = diff > best[target]
    else:
        hidden = diff.astype(np.float32) > best[target] + np.float32(margin)
    return hidden.reshape(h, w), diff.reshape(h, w)


def aperture_confidence(gray: np.ndarray, weight: float) -> np.ndarray:
    """How well the first frame's local texture pins the flow down in both directions.

    The structure tensor of ``gray`` (Sobel gradients in gray levels per pixel, averaged over 5x5
    pixels) has eigenvalues ``l_min <= l_max``; texture in one direction only (stripes, an edge)
    has ``l_min`` near 0 and ``l_max`` large, and there a patch matches as well one stripe on, or
    anywhere along the stripes. The confidence is ``min(1, weight * (l_min + 1) / (l_max + 1))``:
    1 where the ratio reaches ``1 / weight``, less where the texture is more one-directional than
    that (flat regions, both eigenvalues near 0, keep 1: DIS's spatial propagation fills them).

    Args:
        gray: ``uint8`` ``(H, W)`` first frame.
        weight: > 0; larger spares more of the one-directional texture (10: pixels whose texture is
            over 10x stronger across than along it start to yield).

    Returns:
        ``float32`` ``(H, W)`` in (0, 1].
    """
    if not weight > 0:
        raise ValueError(f"weight must be a number > 0, not {weight!r}")
    # Sobel's 3x3 kernels sum |weights| to 8: /8 gives gray levels per pixel, so that the +1 below
    # is one (gray level per pixel)^2 whatever the kernel
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    jxx, jyy, jxy = (cv2.boxFilter(g, -1, (5, 5)) for g in (gx * gx, gy * gy, gx * gy))
    # eigenvalues m -+ r with m the mean of the diagonal and r = |((jxx - jyy) / 2, jxy)|: no
    # cancellation, unlike sqrt(m^2 - det); with s = m + 1 the ratio is (s - r) / (s + r)
    s = cv2.addWeighted(jxx, 0.5, jyy, 0.5, 1.0)
    r = cv2.magnitude(cv2.addWeighted(jxx, 0.5, jyy, -0.5, 0.0), jxy)
    ratio = cv2.divide(s - r, s + r, scale=float(weight))
    return np.minimum(ratio, np.float32(1))


def inconsistent(flow: np.ndarray, backward: np.ndarray, tolerance: float) -> np.ndarray:
    """Pixels whose flow the backward flow does not undo: ``|f(x) + b(x + f(x))| > tolerance``.

    A pixel hidden in the next frame, or matched one period off in a repeated texture (a window
    grid, a striped facade), is sent where the backward flow points somewhere else; the forward
    test of :func:`occluded_and_mismatch` misses the second kind, since the wrong place matches as
    well as the right one. (A tolerance growing with the flow's length, 5 % of it, did slightly
    worse on the real pairs of docs/flow.md.)

    Args:
        flow: ``float32`` ``(H, W, 2)`` flow from the first frame to the second, pixels (x, y).
        backward: ``float32`` ``(H, W, 2)`` flow from the second frame to the first, pixels.
        tolerance: pixels (> 0) of disagreement allowed.

    Returns:
        ``bool`` ``(H, W)``, True where the two disagree (NaN in either flow counts as agreeing);
        targets outside the second frame read its nearest border pixel's backward flow.
    """
    if not tolerance > 0:
        raise ValueError(f"tolerance must be a number > 0, not {tolerance!r}")
    if flow.shape != backward.shape:
        raise ValueError(f"flow {flow.shape} and backward flow {backward.shape} differ in shape")
    back = cv2.remap(backward, *_targets(flow), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    back += flow  # the round trip: zero where the two flows agree
    # squared lengths: no square root per pixel
    return back[..., 0] ** 2 + back[..., 1] ** 2 > np.float32(tolerance) ** 2


def match_confidence(mismatch: np.ndarray, sigma: float) -> np.ndarray:
    """How well each pixel's flow explains the next frame: ``exp(-(m / sigma)^2)``.

    ``m`` is ``mismatch`` (``uint8`` ``(H, W)``, gray levels, :func:`occluded_and_mismatch`'s second
    result) averaged over 5x5 pixels (edges reflected), so that one noisy pixel does not condemn a
    good match and a wrong patch match, which misaligns its whole neighbourhood, is caught.
    ``sigma`` (> 0): gray levels at which the confidence has fallen to 1/e. Returns ``float32``
    ``(H, W)`` in (0, 1].
    """
    # the 5x5 sum is an integer 0..6375: a table of the 6,376 possible results instead of a float
    # blur and exp per pixel (0.5 -> 0.2 ms at 320x240)
    total = cv2.boxFilter(mismatch, cv2.CV_16U, (5, 5), normalize=False, borderType=cv2.BORDER_REFLECT_101)
    return np.take(_confidence_table(float(sigma)), total.astype(np.intp, copy=False))


@functools.lru_cache(maxsize=8)
def _confidence_table(sigma: float) -> np.ndarray:
    """``float32`` ``(6376,)``: :func:`match_confidence` of each 5x5 sum of gray differences."""
    table = np.exp(-((np.arange(_BOX * 255 + 1) / (_BOX * sigma)) ** 2)).astype(np.float32)
    table.flags.writeable = False  # shared between calls
    return table


#: pixels in match_confidence's 5x5 window
_BOX = 25


def fill_occluded(
    flow: np.ndarray,
    mask: np.ndarray,
    guide: np.ndarray,
    smoothness: float,
    sigma: float,
    confidence: np.ndarray | None = None,
) -> np.ndarray:
    """``flow`` with the pixels of ``mask`` replaced by an edge-aware average of the others.

    The normalised fast global smoother (Min et al. 2014, ``cv2.ximgproc``): ``S(flow * c) / S(c)``
    with confidence ``c`` 0 in the mask and 1 elsewhere, where ``S`` smooths along ``guide``'s
    regions (weights fall off with gray difference over ``sigma``), so the fill comes from
    neighbours that look like the pixel.

    With ``confidence`` (``float32`` ``(H, W)`` in [0, 1], e.g. :func:`match_confidence`), ``c`` is
    that outside the mask, and every pixel outside it becomes ``c * flow + (1 - c) * fill``: a
    pixel whose flow explains the next frame poorly (a wrong patch match, not only an occlusion)
    leans on its look-alike neighbours that match well.

    Args:
        flow: ``float32`` ``(H, W, 2)`` flow, pixels; not modified.
        mask: ``bool`` ``(H, W)``, True where the flow is replaced.
        guide: ``uint8`` ``(H, W)`` gray frame the flow belongs to.
        smoothness: the smoother's lambda (> 0; larger reaches farther).
        sigma: gray levels (> 0) over which the guide's edges stop the averaging.
        confidence: ``float32`` ``(H, W)`` in [0, 1] or None (see above).

    Returns:
        ``float32`` ``(H, W, 2)``: the fill inside the mask; outside it ``flow`` (no
        ``confidence``) or the blend above.
    """
    if confidence is None and not mask.any():
        return flow
    require_ximgproc()
    if confidence is None:
        conf = (~mask).astype(np.float32)
    else:
        conf = np.where(mask, np.float32(0), confidence.astype(np.float32, copy=False))
    # one pass of the smoother instead of OpenCV's default 3: the same EPE on the real pair of
    # docs/flow.md (1.143 against 1.142 px) at a third of the filtering time
    smoother = _CV2.ximgproc.createFastGlobalSmootherFilter(guide, float(smoothness), float(sigma), 0.25, 1)
    weight = np.maximum(smoother.filter(conf), np.float32(1e-6))
    filled = []
    for comp in cv2.split(flow):  # contiguous copies of u and v, ours to modify
        fill = smoother.filter(comp * conf)
        fill /= weight
        if confidence is None:
            fill = np.where(mask, fill, comp)
        else:
            # fill + c * (flow - fill): the blend, and the fill itself in the mask where c = 0
            comp -= fill
            comp *= conf
            fill += comp
        filled.append(fill)
    return cv2.merge(filled)

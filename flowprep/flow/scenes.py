"""Harder pairs with known flow: a moving object over a moving background, sensor noise, exposure change.

:func:`flowprep.flow.pairs.synthetic_pairs` warps one frame by one smooth field: every pixel stays
visible and the flow has no edge, so it flatters methods that smooth a lot. Real clips have objects
moving against the background (flow discontinuities, occluded and disoccluded pixels), sensor noise
and exposure changes. A *scene* here is made from two real frames of a video:

* the background is frame A, warped by a smooth field (:func:`~flowprep.flow.pairs.smooth_field`,
  a pan plus local motion) whose largest speed is 30..100 % of the scene's magnitude;
* the object is an irregular blob cut from frame B, moved by its own rigid motion (translation of
  50..100 % of the magnitude in another direction, rotation up to 3 degrees, scale up to 3 %), drawn
  over the background in both frames (anti-aliased edge), so it covers and uncovers background;
* each frame gets Gaussian noise (sigma 0.5..2 grey levels) and frame 2 a gain of 0.97..1.03.

Both frames are rendered from the sources (frame 1 is not an interpolated copy), so interpolation
blur does not tell the method which frame is which. The true flow on frame 1 is the object's motion
on object pixels (object mask above one half) and the background's forward flow elsewhere, also
where frame 2 shows the object instead (occluded background keeps its flow, as in Middlebury's and
Sintel's "all pixels" ground truth). Pixels whose target leaves the picture are not valid.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from flowprep.flow.pairs import FlowPair, smooth_field, warp_pair

log = logging.getLogger(__name__)

#: parts of the video (fractions of its length) that tuning takes frames from, and that held-out
#: sets (``bench-flow --scenes``) take them from: no frame is in both
TUNING_FRAMES = (0.0, 0.5)
HELD_OUT_FRAMES = (0.5, 1.0)
#: motion classes (largest speed of a scene, px) of the tuning and held-out sets
MOTION_CLASSES: tuple[tuple[float, float], ...] = ((1.0, 3.0), (3.0, 8.0), (8.0, 20.0))


def blob_mask(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float]]:
    """An irregular object mask, ``float32`` ``(h, w)`` in 0..1 with a 1-pixel soft edge, and its centre (x, y).

    An ellipse (radii 12..30 % of the image's sides, away from the border) whose edge is bent by
    blurred noise, so the outline is not a straight line nor a perfect curve.
    """
    import cv2

    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    ry, rx = rng.uniform(0.12, 0.3) * h, rng.uniform(0.12, 0.3) * w
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((gy - cy) / ry) ** 2 + ((gx - cx) / rx) ** 2)
    noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), max(h, w) / 20)
    wobble = noise * np.float32(0.25 / max(float(np.abs(noise).max()), 1e-6))
    # distance to the edge in pixels (roughly), clipped to a 1-pixel ramp: an anti-aliased outline
    edge = (1.0 + wobble - r) * min(ry, rx)
    return np.clip(edge + 0.5, 0.0, 1.0).astype(np.float32), (float(cx), float(cy))


def _rigid(centre: tuple[float, float], magnitude: float, rng: np.random.Generator) -> np.ndarray:
    """A 2x3 affine matrix (object pixel in frame 1 -> frame 2): rotation and scale about the object's
    centre (x, y), then a translation."""
    angle = np.deg2rad(rng.uniform(-3, 3))
    scale = rng.uniform(0.97, 1.03)
    direction = rng.uniform(0, 2 * np.pi)
    t = rng.uniform(0.5, 1.0) * magnitude * np.array([np.cos(direction), np.sin(direction)])
    c = np.array(centre)
    a = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([a, (c + t - a @ c)[:, None]]).astype(np.float64)


def scene_pair(
    background: np.ndarray, object_source: np.ndarray, magnitude: float, rng: np.random.Generator, name: str
) -> FlowPair:
    """One scene (see the module docstring) with the given largest speed.

    Args:
        background, object_source: ``uint8`` ``(H, W)`` gray frames (different frames of a video).
        magnitude: the scene's largest speed in pixels (background and object motion are scaled
            from it; the object may rotate a little past it).

    Returns:
        A :class:`FlowPair` whose ``magnitude`` is the largest true speed over its valid pixels.
    """
    import cv2

    h, w = background.shape
    bg_field = smooth_field(h, w, magnitude * rng.uniform(0.3, 1.0), rng)
    bg2, bg_flow, bg_valid = warp_pair(background, bg_field)
    mask1, centre = blob_mask(h, w, rng)
    affine = _rigid(centre, magnitude, rng)
    # displacement is linear in (A - I, b): shrink both so that no object pixel moves past `magnitude`
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float64)
    on_object = mask1 > 0.5
    pts = np.stack([gx[on_object], gy[on_object], np.ones(int(on_object.sum()))])
    motion = affine @ pts - pts[:2]
    top_object = float(np.sqrt((motion**2).sum(0)).max()) if motion.size else 0.0
    if top_object > magnitude:
        identity = np.hstack([np.eye(2), np.zeros((2, 1))])
        affine = identity + (affine - identity) * (magnitude / top_object)
    obj2 = cv2.warpAffine(object_source, affine, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask2 = cv2.warpAffine(mask1, affine, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    f1 = mask1 * object_source.astype(np.float32) + (1 - mask1) * background.astype(np.float32)
    f2 = mask2 * obj2.astype(np.float32) + (1 - mask2) * bg2.astype(np.float32)
    f2 *= rng.uniform(0.97, 1.03)
    frames = [
        np.clip(f + rng.normal(0.0, rng.uniform(0.5, 2.0), f.shape) + 0.5, 0, 255).astype(np.uint8) for f in (f1, f2)
    ]
    ox = affine[0, 0] * gx + affine[0, 1] * gy + affine[0, 2] - gx
    oy = affine[1, 0] * gx + affine[1, 1] * gy + affine[1, 2] - gy
    flow = np.where(on_object[..., None], np.stack([ox, oy], -1).astype(np.float32), bg_flow)
    tx, ty = gx + flow[..., 0], gy + flow[..., 1]
    inside = (tx >= 1) & (tx <= w - 2) & (ty >= 1) & (ty <= h - 2)
    valid = inside & (on_object | bg_valid)
    speed = np.sqrt((flow**2).sum(-1))
    top = float(speed[valid].max()) if valid.any() else 0.0
    return FlowPair(name, frames[0], frames[1], flow.astype(np.float32), valid, top)


def video_frames(video: Path | None, limit: int = 1000) -> tuple[list[np.ndarray], str]:
    """Every frame (up to ``limit``) of ``video`` as ``uint8`` gray at its own size, and the source.

    Without a readable video: 120 :func:`flowprep.synth.texture` images of 144x176 (the carphone
    clip's size), so the scenes still have a fixed, known source.
    """
    import cv2

    if video is not None and Path(video).is_file():
        try:
            import av

            frames = []
            with av.open(str(video)) as container:
                for frame in container.decode(video=0):
                    frames.append(frame.to_ndarray(format="gray"))
                    if len(frames) >= limit:
                        break
            if frames:
                return frames, str(video)
        except (OSError, ValueError) as exc:  # PyAV raises subclasses of these for broken files
            log.warning("cannot decode %s (%s); using synthetic texture frames", video, exc)
    from flowprep.synth import texture

    return [cv2.cvtColor(texture(144, 176, k), cv2.COLOR_RGB2GRAY) for k in range(min(limit, 120))], (
        "flowprep.synth.texture"
    )


def zoom_crop(frame: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """``frame`` enlarged (area-preserving cubic) by a random factor so it covers ``size`` ``(w, h)`` with
    10..30 % to spare, then cropped there at a random place: ``uint8`` ``(h, w)``."""
    import cv2

    w, h = size
    fh, fw = frame.shape
    zoom = max(w / fw, h / fh) * rng.uniform(1.1, 1.3)
    big = cv2.resize(frame, (round(fw * zoom), round(fh * zoom)), interpolation=cv2.INTER_CUBIC)
    y0 = int(rng.integers(0, big.shape[0] - h + 1))
    x0 = int(rng.integers(0, big.shape[1] - w + 1))
    return np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w])


def frame_pool(video: Path | None, frame_range: tuple[float, float], min_frames: int) -> tuple[list[np.ndarray], str]:
    """The frames of ``video`` (:func:`video_frames`) in its ``frame_range`` part (fractions of its
    length, so that tuning and held-out sets take disjoint frames), at least ``min_frames`` of them
    where the video has that many; and the source's description."""
    frames, source = video_frames(video)
    lo_i = int(frame_range[0] * len(frames))
    hi_i = max(lo_i + min_frames, int(frame_range[1] * len(frames)))
    return frames[lo_i:hi_i], source


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A motion magnitude (px) log-uniform in ``[lo, hi]``: small motions as often as large ones."""
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def scene_pairs(
    video: Path | None,
    size: tuple[int, int],
    per_class: int,
    seed: int,
    frame_range: tuple[float, float] = (0.0, 1.0),
    classes: Sequence[tuple[float, float]] = MOTION_CLASSES,
    layered: bool = True,
) -> tuple[list[FlowPair], str]:
    """``per_class`` scenes per motion class, their largest speeds log-uniform within each class.

    Background and object of each scene are two random frames from the ``frame_range`` part of the
    video (fractions of its length: a held-out set takes other frames than a tuning set), each
    enlarged and cropped to ``size`` ``(w, h)`` by :func:`zoom_crop`. Names are ``scene-<lo>-<hi>px-<j>``.
    With ``layered=False`` each pair is one such frame warped by one smooth field, without object,
    noise or gain (as :func:`~flowprep.flow.pairs.synthetic_pairs`), named ``smooth-<lo>-<hi>px-<j>``.
    """
    pool, source = frame_pool(video, frame_range, 2)
    rng = np.random.default_rng(seed)
    pairs = []
    for lo, hi in classes:
        for j in range(per_class):
            mag = log_uniform(rng, lo, hi)
            a, b = rng.choice(len(pool), 2, replace=False)
            bg, obj = zoom_crop(pool[a], size, rng), zoom_crop(pool[b], size, rng)
            if layered:
                pair = scene_pair(bg, obj, mag, rng, f"scene-{lo:g}-{hi:g}px-{j}")
                pair.group = f"scene {lo:g}-{hi:g}"
                pairs.append(pair)
                continue
            f2, flow, valid = warp_pair(bg, smooth_field(size[1], size[0], mag, rng))
            pairs.append(FlowPair(f"smooth-{lo:g}-{hi:g}px-{j}", bg, f2, flow, valid, mag, f"smooth {lo:g}-{hi:g}"))
    return pairs, source

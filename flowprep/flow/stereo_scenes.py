"""Stereo-like pairs with known flow: depth layers moving horizontally, occlusions, two cameras' photometry.

:mod:`flowprep.flow.scenes` moves one object over a smoothly moving background, with a 3 % gain. Real
pairs with ground truth (Middlebury's stereo pairs, KITTI) differ from that in ways that change which
flow parameters win: several depth layers, each moving by its own (horizontal) disparity, so there are
many motion edges and occlusions along them; large low-texture regions (walls, floors, sky) where
only smoothness can fill the flow in; and two cameras that do not see the same brightness (gain and
offset, slightly different focus, noise, compression). A *stereo scene* here is made from real frames:

* the background layer is a frame (enlarged to cover the picture) on a slanted plane: disparity
  10..35 % of the scene's largest, growing towards the bottom (a floor) by up to 30 % more;
* 2..4 nearer layers, irregular blobs cut from other frames (enlarged 1.0..1.6x, so some keep the
  clip's own sharpness), each on its own slanted plane, each nearer one with a larger disparity, the
  nearest reaching the scene's largest; nearer layers cover farther ones in both frames;
* any layer may be low-texture (the frame blurred with sigma 4..12 px and its contrast reduced to
  30..70 %);
* the flow is horizontal, ``(s * d, v)``: ``s`` is +1 or -1 per scene (left-to-right or
  right-to-left pair), ``v`` a constant vertical misalignment of at most 0.25 px;
* photometry: frame 2 gets a gain of 0.92..1.08 and an offset of -8..8 grey levels; one frame in two
  scenes is blurred (sigma 0.3..0.9); both get noise (sigma 0.5..3) and, in 7 scenes of 10, JPEG
  compression (quality 60..95).

Both frames are rendered from the layer textures by inverse mapping (no frame is an interpolated
copy of the other). The true flow on frame 1 is the motion of the nearest layer at each pixel (layer
mask above one half), also where frame 2 shows a nearer layer instead (occluded pixels keep their
flow, as in Middlebury's "all pixels" ground truth). Pixels whose target leaves the picture are not
valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from flowprep.flow.pairs import FlowPair
from flowprep.flow.scenes import MOTION_CLASSES, blob_mask, frame_pool, log_uniform, zoom_crop


def _texture(frame: np.ndarray, size: tuple[int, int], zoom: float, rng: np.random.Generator) -> np.ndarray:
    """``frame`` enlarged by ``zoom``, mirrored at its edges where it is smaller than ``size`` ``(w, h)``,
    cropped there at a random place: ``float32`` ``(h, w)`` in 0..255."""
    import cv2

    w, h = size
    fh, fw = frame.shape
    big = cv2.resize(frame, (round(fw * zoom), round(fh * zoom)), interpolation=cv2.INTER_CUBIC)
    pad_y, pad_x = max(0, h - big.shape[0]), max(0, w - big.shape[1])
    if pad_y or pad_x:
        big = cv2.copyMakeBorder(big, 0, pad_y, 0, pad_x, cv2.BORDER_REFLECT_101)
    y0 = int(rng.integers(0, big.shape[0] - h + 1))
    x0 = int(rng.integers(0, big.shape[1] - w + 1))
    return big[y0 : y0 + h, x0 : x0 + w].astype(np.float32)


def _low_texture(tex: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``tex`` blurred (sigma 4..12 px) with its contrast about the mean cut to 30..70 %."""
    import cv2

    soft = cv2.GaussianBlur(tex, (0, 0), rng.uniform(4.0, 12.0))
    mean = float(soft.mean())
    return (mean + (soft - mean) * rng.uniform(0.3, 0.7)).astype(np.float32)


def _plane(h: int, w: int, base: float, slope_x: float, slope_y: float) -> np.ndarray:
    """Disparity ``base + slope_x * x / w + slope_y * y / h`` on the ``(h, w)`` grid, ``float32`` px."""
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    return (base + slope_x * gx / w + slope_y * gy / h).astype(np.float32)


def stereo_pair(sources: Sequence[np.ndarray], magnitude: float, rng: np.random.Generator, name: str) -> FlowPair:
    """One stereo scene (module docstring) whose nearest layer moves by ``magnitude`` px.

    Args:
        sources: ``uint8`` ``(H, W)`` gray frames, at least 3 (one per layer; the first is the
            background); they are enlarged and cropped to ``size`` ``(w, h)`` of the first.
        magnitude: largest disparity in pixels (> 0).

    Returns:
        A :class:`FlowPair` whose ``magnitude`` is the largest true speed over its valid pixels.
    """
    import cv2

    h, w = sources[0].shape
    n_near = min(len(sources) - 1, int(rng.integers(2, 5)))
    sign = float(rng.choice([-1.0, 1.0]))
    vshift = float(rng.uniform(-0.25, 0.25))
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    # disparities from far to near; each plane's slope keeps it between its neighbours' bases
    far = magnitude * rng.uniform(0.1, 0.35)
    bases = np.sort(rng.uniform(far, magnitude, n_near))
    layers = []
    floor = magnitude * rng.uniform(0.0, 0.3)
    bg_disp = _plane(h, w, far, magnitude * rng.uniform(-0.05, 0.05), min(floor, magnitude - far))
    layers.append((np.ones((h, w), np.float32), bg_disp, sources[0]))
    for i in range(n_near):
        mask, _ = blob_mask(h, w, rng)
        top = magnitude if i == n_near - 1 else float(bases[i])
        disp = _plane(h, w, 0.0, magnitude * rng.uniform(-0.08, 0.08), magnitude * rng.uniform(-0.08, 0.08))
        on = mask > 0.5
        if on.any():
            disp += top - float(disp[on].max())  # the layer's largest disparity is its base
        layers.append((mask, disp, sources[i + 1]))
    frame1 = np.zeros((h, w), np.float32)
    frame2 = np.zeros((h, w), np.float32)
    flow = np.zeros((h, w, 2), np.float32)
    for k, (mask, disp, src) in enumerate(layers):
        zoom = max(w / src.shape[1], h / src.shape[0]) * rng.uniform(1.05, 1.2) if k == 0 else rng.uniform(1.0, 1.6)
        tex = _texture(src, (w, h), zoom, rng)
        if rng.random() < 0.3:
            tex = _low_texture(tex, rng)
        u = (sign * disp).astype(np.float32)
        # frame 2 at x' shows the layer's point x with x' = x + u(x): for a plane u = a + bx*x + by*y,
        # x = (x' - a - by*y) / (1 + bx); bx, by from two samples of the plane
        bx = float(u[0, 1] - u[0, 0]) if w > 1 else 0.0
        by = float(u[1, 0] - u[0, 0]) if h > 1 else 0.0
        map_x = ((gx - float(u[0, 0]) - by * gy) / (1.0 + bx)).astype(np.float32)
        map_y = (gy - vshift).astype(np.float32)
        border = cv2.BORDER_REFLECT_101 if k == 0 else cv2.BORDER_CONSTANT
        tex2 = cv2.remap(tex, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        mask2 = cv2.remap(mask, map_x, map_y, cv2.INTER_LINEAR, borderMode=border)
        frame1 = mask * tex + (1 - mask) * frame1
        frame2 = mask2 * tex2 + (1 - mask2) * frame2
        on = mask > 0.5
        flow[on] = np.stack([u[on], np.full(int(on.sum()), vshift, np.float32)], -1)
    # float32 times Python floats stays float32 (NumPy 2); astype only tells the type checker
    frames: list[np.ndarray] = [frame1, (frame2 * rng.uniform(0.92, 1.08) + rng.uniform(-8.0, 8.0)).astype(np.float32)]
    if rng.random() < 0.5:
        j = int(rng.integers(2))
        frames[j] = cv2.GaussianBlur(frames[j], (0, 0), rng.uniform(0.3, 0.9))
    out = []
    for f in frames:
        img: np.ndarray = np.clip(f + rng.normal(0.0, rng.uniform(0.5, 3.0), f.shape) + 0.5, 0, 255).astype(np.uint8)
        if rng.random() < 0.7:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 96))])
            decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else None
            img = img if decoded is None else decoded
        out.append(img)
    tx, ty = gx + flow[..., 0], gy + flow[..., 1]
    valid = (tx >= 1) & (tx <= w - 2) & (ty >= 1) & (ty <= h - 2)
    speed = np.sqrt((flow**2).sum(-1))
    top_speed = float(speed[valid].max()) if valid.any() else 0.0
    return FlowPair(name, out[0], out[1], flow, valid, top_speed)


def stereo_pairs(
    video: Path | None,
    size: tuple[int, int],
    per_class: int,
    seed: int,
    frame_range: tuple[float, float] = (0.0, 1.0),
    classes: Sequence[tuple[float, float]] = MOTION_CLASSES,
) -> tuple[list[FlowPair], str]:
    """``per_class`` stereo scenes per motion class (largest disparity log-uniform in the class), made
    from frames in the ``frame_range`` part of ``video`` (fractions of its length, as
    :func:`flowprep.flow.scenes.scene_pairs`: tuning and held-out sets take disjoint parts).

    Pairs are ``size`` ``(w, h)``, named ``stereo-<lo>-<hi>px-<j>``, grouped ``stereo <lo>-<hi>``.
    """
    pool, source = frame_pool(video, frame_range, 5)
    rng = np.random.default_rng(seed)
    pairs = []
    for lo, hi in classes:
        for j in range(per_class):
            mag = log_uniform(rng, lo, hi)
            picks = rng.choice(len(pool), min(5, len(pool)), replace=False)
            # the background covers the whole picture; nearer layers are placed by _texture
            base = zoom_crop(pool[picks[0]], size, rng)
            pair = stereo_pair([base, *(pool[i] for i in picks[1:])], mag, rng, f"stereo-{lo:g}-{hi:g}px-{j}")
            pair.group = f"stereo {lo:g}-{hi:g}"
            pairs.append(pair)
    return pairs, source

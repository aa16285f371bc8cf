"""Procedurally generated clips with known motion, for the demo, tests and benchmarks.

No downloads: a smooth random texture is translated by a known velocity per frame, so the true flow
of every frame pair is known (``(dx, dy)`` pixels everywhere, except where the texture wraps in at the
border). Used to make HMDB51-shaped sample releases (see :func:`make_release_folder`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from flowprep.fsio.writing import atomic_path, write_text_atomic

#: Class name -> motion direction (dx, dy) in pixels per frame for the motion-direction toy task.
DIRECTIONS: dict[str, tuple[float, float]] = {
    "walk": (2.0, 0.0),
    "run": (-2.0, 0.0),
    "ride_bike": (0.0, 2.0),
    "fall_floor": (0.0, -2.0),
    "push": (1.5, 1.5),
}
#: the demo's sample release (``make demo``, ``flowprep doctor``): HMDB5's classes plus two it does not select
DEMO_CLASSES: dict[str, tuple[float, float]] = {**DIRECTIONS, "jump": (0.0, -3.0), "wave": (1.0, -1.0)}


def texture(height: int, width: int, seed: int, sigma: float = 3.0) -> np.ndarray:
    """A smooth random RGB texture.

    Returns:
        ``uint8`` ``(height, width, 3)``, full 0..255 range, features about ``sigma`` pixels wide.
    """
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, 3), dtype=np.float32)
    # Periodic texture, so that a wrapping shift has no seam: blur a wrap-padded copy and crop.
    pad = int(4 * sigma) + 1
    padded = np.pad(noise, ((pad, pad), (pad, pad), (0, 0)), mode="wrap")
    blurred = cv2.GaussianBlur(padded, (0, 0), sigma)[pad:-pad, pad:-pad]
    lo, hi = blurred.min(), blurred.max()
    return np.clip((blurred - lo) / max(hi - lo, 1e-6) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def translate(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Shift ``img`` by ``(dx, dy)`` pixels (sub-pixel, bilinear, wrapping at the borders).

    Pixel ``(x, y)`` of the input lands at ``(x + dx, y + dy)``: the true flow is ``(dx, dy)``.
    """
    import cv2

    m = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


def moving_frames(
    n: int, height: int, width: int, velocity: tuple[float, float], seed: int, noise: float = 0.0
) -> Iterable[np.ndarray]:
    """``n`` RGB frames (``uint8`` ``(H, W, 3)``) of a texture moving at ``velocity`` px/frame."""
    base = texture(height, width, seed)
    rng = np.random.default_rng(seed + 1)
    for k in range(n):
        frame = translate(base, velocity[0] * k, velocity[1] * k)
        if noise:
            frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
        yield frame


def write_video(path: Path, frames: Iterable[np.ndarray], fps: int = 25, codec: str = "mpeg4") -> int:
    """Encode RGB frames (``uint8`` ``(H, W, 3)``, even H and W) into ``path`` with PyAV; returns the count.

    ``mpeg4`` in an ``.avi`` is what HMDB51's clips are (DivX/XviD); ``ffv1`` is lossless.
    """
    import av

    path = Path(path)
    n = 0
    with atomic_path(path) as tmp, av.open(str(tmp), "w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=fps)
                stream.width, stream.height = frame.shape[1], frame.shape[0]
                stream.pix_fmt = "yuv420p" if codec != "ffv1" else "bgr0"  # ffv1 in RGB: lossless
                if codec == "mpeg4":
                    stream.bit_rate = 2_000_000
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
            n += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return n


def hmdb_clip_name(source: str, action: str, index: int, tags: str = "u_cm_np1_fr_med") -> str:
    """An HMDB51-style clip file name: ``<source>_<action>_<body>_<camera>_<people>_<view>_<quality>_<n>.avi``."""
    return f"{source}_{action}_{tags}_{index}.avi"


_TAG_CHOICES = [
    ("f", "h", "u", "l"),
    ("cm", "nm"),
    ("np1", "np2", "np3"),
    ("fr", "ba", "le", "ri"),
    ("goo", "med", "bad"),
]


def make_release_folder(
    root: Path,
    classes: dict[str, tuple[float, float]] | None = None,
    sources_per_class: int = 4,
    clips_per_source: int = 2,
    frames: int = 12,
    height: int = 64,
    width: int = 80,
    seed: int = 0,
    codec: str = "mpeg4",
    with_splits: bool = True,
) -> dict[str, list[str]]:
    """Write an unpacked HMDB51-shaped release: ``root/<class>/<clip>.avi`` (+ split files).

    Each class moves its texture in its own direction (:data:`DIRECTIONS` by default), so a flow
    model can learn the class from motion alone. Several clips share one "source video" name, like
    HMDB51's, and names carry the HMDB tags (and some of the odd characters real names have).
    Split files go to ``root/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt`` when
    ``with_splits``.

    Returns:
        class -> list of clip file names written.
    """
    root = Path(root)
    classes = classes or DIRECTIONS
    rng = np.random.default_rng(seed)
    written: dict[str, list[str]] = {}
    odd = ["Bob's_#1", "run(fast)&more!", "A.B.C"]
    for ci, (cls, vel) in enumerate(sorted(classes.items())):
        (root / cls).mkdir(parents=True, exist_ok=True)
        names = []
        for s in range(sources_per_class):
            source = odd[s] if s < len(odd) and ci == 0 else f"{cls.title()}Video{s}"
            for c in range(clips_per_source):
                tags = "_".join(str(rng.choice(t)) for t in _TAG_CHOICES)
                name = hmdb_clip_name(source, cls, c, tags)
                speed = 0.75 + 0.5 * rng.random()
                write_video(
                    root / cls / name,
                    moving_frames(
                        frames, height, width, (vel[0] * speed, vel[1] * speed), seed=int(rng.integers(1 << 30))
                    ),
                    codec=codec,
                )
                names.append(name)
        written[cls] = names
        if with_splits:
            sdir = root / "testTrainMulti_7030_splits"
            sdir.mkdir(exist_ok=True)
            for split in (1, 2, 3):
                lines = []
                for i, name in enumerate(names):
                    code = 2 if (i // clips_per_source + split) % 3 == 0 else 1
                    lines.append(f"{name} {code} \n")
                write_text_atomic(sdir / f"{cls}_test_split{split}.txt", "".join(lines))
    return written

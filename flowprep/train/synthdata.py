"""A small TAO-layout dataset written directly from synthetic clips (no decoding, no flow backend).

For tests and benchmarks of training that must not depend on the build pipeline: each class moves
a random texture in its own direction (:data:`flowprep.synth.DIRECTIONS`), RGB frames are the
moving texture and flow images are the *known* velocity, encoded with the dataset's encoding.
The record follows the schema of :mod:`flowprep.layout.record`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowprep import __version__
from flowprep.flow.encoding import FlowEncoding
from flowprep.layout.paths import clip_dir, flow_names, rgb_name
from flowprep.layout.record import FORMAT, FORMAT_VERSION, write_record
from flowprep.loader.spec import NORM_OFFSET, NORM_SCALE
from flowprep.synth import DIRECTIONS, moving_frames


def make_tao_dataset(
    root: Path,
    classes: dict[str, tuple[float, float]] | None = None,
    train_per_class: int = 8,
    val_per_class: int = 2,
    frames: int = 12,
    height: int = 40,
    width: int = 48,
    modality: str = "both",
    encoding: FlowEncoding | None = None,
    flow_noise: float = 0.3,
    seed: int = 0,
) -> dict:
    """Write ``root/{train,val}/<class>/<clip>/{rgb,u,v}/...`` and ``root/flowprep.json``.

    Args:
        classes: class -> velocity ``(dx, dy)`` px/frame; each clip scales it by 0.75..1.25.
        frames: RGB frames per clip (flow gets ``frames - 1``).
        height, width: frame size in pixels.
        modality: ``"rgb"``, ``"flow"`` or ``"both"`` (what gets written and recorded).
        encoding: flow encoding (default: fixed, bound 20, PNG so tests see exact codes).
        flow_noise: std of Gaussian noise added to the true flow, pixels.

    Returns:
        The record written.
    """
    root = Path(root)
    classes = classes or DIRECTIONS
    enc = encoding or FlowEncoding(image_format="png")
    rng = np.random.default_rng(seed)
    names = sorted(classes)
    clips = []
    counts = {}
    for label, cls in enumerate(names):
        counts[cls] = {"train": train_per_class, "val": val_per_class}
        for side, count in (("train", train_per_class), ("val", val_per_class)):
            for i in range(count):
                name = f"{cls}_{side}_{i:03d}"
                speed = 0.75 + 0.5 * rng.random()
                vel = (classes[cls][0] * speed, classes[cls][1] * speed)
                imgs = list(moving_frames(frames, height, width, vel, seed=int(rng.integers(1 << 30))))
                _write_clip(clip_dir(root, "tao", side, cls, name), imgs, vel, modality, enc, rng, flow_noise)
                clips.append(_clip_entry(side, cls, label, name, frames))
    clips.sort(key=lambda c: str(c["id"]))
    val_ratio = val_per_class / max(1, train_per_class + val_per_class)
    record = _record(names, counts, clips, modality, enc, val_ratio, seed, (width, height), flow_noise)
    (root / "labels.txt").write_text("".join(f"{c}\n" for c in names))
    write_record(root, record)
    return record


def _record(
    names: list[str],
    counts: dict,
    clips: list[dict],
    modality: str,
    enc: FlowEncoding,
    val_ratio: float,
    seed: int,
    size: tuple[int, int],
    flow_noise: float,
) -> dict:
    """The dataset record (``flowprep.json``) of a synthetic build; ``size`` is ``(width, height)``."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "flowprep_version": __version__,
        "layout": "tao",
        "modality": modality,
        "source": {"kind": "folder", "files": []},
        "classes": names,
        "split": {
            "method": "clip",
            "val_ratio": val_ratio,
            "seed": seed,
            "official_split": None,
            "counts": counts,
        },
        "decode": {"short_side": None, "size": list(size), "frame_step": 1},
        "rgb": {"image_format": "png"},
        "flow": {"name": "synthetic-truth", "params": {"noise": flow_noise}, "device": "cpu"}
        if modality != "rgb"
        else None,
        "encoding": enc.to_dict(),
        "normalization": {"scale": NORM_SCALE, "offset": NORM_OFFSET},
        "clips": clips,
    }


def _clip_entry(side: str, cls: str, label: int, name: str, frames: int) -> dict:
    """The record's entry for one synthetic clip (``frames`` RGB frames, one flow field fewer)."""
    return {
        "id": f"{side}/{cls}/{name}",
        "side": side,
        "class": cls,
        "label": label,
        "name": name,
        "source": f"synthetic:{name}",
        "frames": frames,
        "flow_frames": frames - 1,
        "status": "ok",
    }


def _write_clip(
    cdir: Path,
    imgs: list[np.ndarray],
    vel: tuple[float, float],
    modality: str,
    enc: FlowEncoding,
    rng: np.random.Generator,
    flow_noise: float,
) -> None:
    """One clip folder: the RGB frames ``imgs`` (``uint8`` ``(H, W, 3)``) and/or the flow images of the
    true velocity ``vel`` (px/frame) plus Gaussian noise drawn from ``rng``."""
    import cv2  # lazy, as elsewhere in flowprep: OpenCV loads when a stage runs, not on import

    height, width = imgs[0].shape[:2]
    if modality in ("rgb", "both"):
        (cdir / "rgb").mkdir(parents=True, exist_ok=True)
        for k, img in enumerate(imgs):
            cv2.imwrite(str(cdir / rgb_name("tao", k)), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if modality in ("flow", "both"):
        (cdir / "u").mkdir(parents=True, exist_ok=True)
        (cdir / "v").mkdir(parents=True, exist_ok=True)
        for k in range(len(imgs) - 1):
            flow = np.empty((height, width, 2), np.float32)
            flow[..., 0], flow[..., 1] = vel
            flow += rng.normal(0, flow_noise, flow.shape).astype(np.float32)
            u, v = enc.encode(flow)
            un, vn = flow_names("tao", k, enc.image_format)
            params = [cv2.IMWRITE_JPEG_QUALITY, enc.jpeg_quality] if enc.image_format == "jpg" else []
            cv2.imwrite(str(cdir / un), u, params)
            cv2.imwrite(str(cdir / vn), v, params)

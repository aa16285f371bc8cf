"""A small TAO-layout dataset written directly from synthetic clips (no decoding, no flow backend).

For tests and benchmarks of training that must not depend on the build pipeline: each class moves
a random texture in its own direction (:data:`flowprep.synth.DIRECTIONS`), RGB frames are the
moving texture and flow images are the *known* velocity, encoded with the dataset's encoding.
The record is a :class:`~flowprep.layout.dataset_record.DatasetRecord` written by the same writer as
the builder's (:func:`~flowprep.layout.record.write_record`), so it has the same keys.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowprep import __version__
from flowprep.errors import OutputError
from flowprep.flow.encoding import FlowEncoding
from flowprep.fsio.writing import write_bytes_atomic, write_text_atomic
from flowprep.layout.dataset_record import ClipEntry, DatasetRecord, Normalization
from flowprep.layout.provenance import SideCounts, SourceInfo, SplitInfo
from flowprep.layout.record import write_record
from flowprep.layout.registry import get_layout
from flowprep.layout.sections import DecodeInfo, FlowInfo, RgbInfo
from flowprep.loader.spec import NORM_OFFSET, NORM_SCALE
from flowprep.synth import DIRECTIONS, moving_frames

#: the layout written here (the one training reads)
TAO = get_layout("tao")


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
) -> DatasetRecord:
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
        counts[cls] = SideCounts(train_per_class, val_per_class)
        for side, count in (("train", train_per_class), ("val", val_per_class)):
            for i in range(count):
                name = f"{cls}_{side}_{i:03d}"
                speed = 0.75 + 0.5 * rng.random()
                vel = (classes[cls][0] * speed, classes[cls][1] * speed)
                imgs = list(moving_frames(frames, height, width, vel, seed=int(rng.integers(1 << 30))))
                _write_clip(TAO.clip_dir(root, side, cls, name), imgs, vel, modality, enc, rng, flow_noise)
                clips.append(ClipEntry(side, cls, label, name, f"synthetic:{name}", "ok", frames, frames - 1))
    clips.sort(key=lambda c: c.id)
    val_ratio = val_per_class / max(1, train_per_class + val_per_class)
    has_rgb, has_flow = modality in ("rgb", "both"), modality in ("flow", "both")
    record = DatasetRecord(
        modality=modality,
        classes=tuple(names),
        clips=tuple(clips),
        split=SplitInfo("clip", None, val_ratio if 0 < val_ratio < 1 else None, seed, "clip", counts),
        decode=DecodeInfo(None, (width, height), 1),
        rgb=RgbInfo("png") if has_rgb else None,
        flow=FlowInfo("synthetic-truth", {"noise": flow_noise}, "cpu") if has_flow else None,
        encoding=enc if has_flow else None,
        layout="tao",
        source=SourceInfo("folder", (), len(clips)),
        normalization=Normalization(NORM_SCALE, NORM_OFFSET),
        counts=counts,
        flowprep_version=__version__,
    )
    write_text_atomic(root / "labels.txt", "".join(f"{c}\n" for c in names))
    write_record(root, record)
    return record


def _imwrite(path: Path, img: np.ndarray, params: list[int]) -> None:
    """``img`` encoded by its suffix's codec (the bytes ``cv2.imwrite`` would write), written atomically:
    ``imwrite`` reports a failed write with False only and follows a link at the name."""
    import cv2

    ok, buf = cv2.imencode(path.suffix, img, params)
    if not ok:
        raise OutputError(f"cannot encode {path}")
    write_bytes_atomic(path, buf.tobytes())


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
            _imwrite(cdir / TAO.rgb_name(k), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [])
    if modality in ("flow", "both"):
        (cdir / "u").mkdir(parents=True, exist_ok=True)
        (cdir / "v").mkdir(parents=True, exist_ok=True)
        for k in range(len(imgs) - 1):
            flow = np.empty((height, width, 2), np.float32)
            flow[..., 0], flow[..., 1] = vel
            flow += rng.normal(0, flow_noise, flow.shape).astype(np.float32)
            u, v = enc.encode(flow)
            un, vn = TAO.flow_names(k, enc.image_format)
            params = [cv2.IMWRITE_JPEG_QUALITY, enc.jpeg_quality] if enc.image_format == "jpg" else []
            _imwrite(cdir / un, u, params)
            _imwrite(cdir / vn, v, params)

"""Which clips a dataset holds and where their frames are: the record read into :class:`DatasetInfo`
and :class:`Clip` entries, and :func:`clip_files`, the one way the loader reads a clip's images.

A dataset is a folder built by ``flowprep build`` in the TAO layout (one folder per clip, one image
per frame) or its packed form (``flowprep build --pack webdataset`` or ``flowprep pack``: the same
images as members of tar shards, see :mod:`flowprep.layout.packed`). Both are read through
:class:`~flowprep.layout.packed.ClipFiles`, so everything above this module sees the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flowprep.errors import DatasetError
from flowprep.flow.encoding import FlowEncoding
from flowprep.layout.base import SIDES
from flowprep.layout.dataset_record import DatasetRecord
from flowprep.layout.packed import ClipFiles, FolderClip, PackedIndex, open_index
from flowprep.layout.record import find_root, read_record
from flowprep.layout.registry import get_layout
from flowprep.loader.spec import STREAMS


@dataclass(frozen=True)
class Clip:
    """One built clip. ``frames``: RGB frames N; ``flow_frames``: flow images (N - 1).

    ``path`` is the clip's folder, or for a packed dataset the shard file holding it.
    """

    id: str
    path: Path
    label: int
    frames: int
    flow_frames: int


@dataclass(frozen=True)
class DatasetInfo:
    """What the record says: root, classes (label = index), formats and flow encoding.

    ``packed`` is the shard index of a packed dataset (None for a folder).
    """

    root: Path
    record: DatasetRecord
    classes: list[str]
    rgb_format: str
    encoding: FlowEncoding | None
    packed: PackedIndex | None = None


def _check_modality(root: Path, record: DatasetRecord, modality: str) -> tuple[bool, bool]:
    if modality not in STREAMS:
        raise DatasetError(f"modality must be one of {STREAMS}, got {modality!r}")
    need_rgb, need_flow = modality in ("rgb", "joint"), modality in ("of", "joint")
    if (need_rgb and not record.has_rgb) or (need_flow and not record.has_flow):
        needs = "RGB frames and flow" if modality == "joint" else "RGB frames" if need_rgb else "flow"
        raise DatasetError(
            f"{root} was built with modality {record.modality!r}, but a "
            f"{modality!r} model needs {needs}; "
            "rebuild it with --modality both"
        )
    return need_rgb, need_flow


def open_info(path: Path) -> DatasetInfo:
    """The :class:`DatasetInfo` of the dataset at ``path`` (its root or its ``train``/``val`` folder).

    Raises:
        DatasetError: not a flowprep dataset, not the TAO layout, or a damaged shard index.
    """
    root = find_root(Path(path))
    record = read_record(root)  # checked: classes non-empty, a flow dataset has its encoding
    if not get_layout(record.layout).trainable:
        raise DatasetError(
            f"{root} has the {record.layout} layout; flowprep train reads the TAO layout: rebuild with --layout tao"
        )
    enc = record.encoding if record.has_flow else None
    rgb_format = record.rgb.image_format if record.rgb else "png"
    return DatasetInfo(root, record, list(record.classes), rgb_format, enc, open_index(root, record))


def list_clips(path: Path, modality: str, side: str | None = None) -> tuple[DatasetInfo, list[Clip]]:
    """The clips of one side of a dataset (folder or packed), checked against ``modality``.

    Args:
        path: the dataset root, or its ``train``/``val`` folder (then ``side`` defaults to it).
        modality: a model's input streams: ``"rgb"``, ``"of"`` or ``"joint"``.
        side: ``"train"`` or ``"val"``; default ``"val"`` for a root path.

    Returns:
        ``(info, clips)``: clips in the record's order (sorted by id), only those built and long
        enough to sample from (a one-frame clip has no flow).

    Raises:
        DatasetError: not a flowprep dataset, not the TAO layout, lacking the modality, or no clips.
    """
    path = Path(path)
    info = open_info(path)
    root, record = info.root, info.record
    if side is None:
        side = path.name if path != root and path.name in SIDES else "val"
    if side not in SIDES:
        raise DatasetError(f"side must be one of {SIDES}, got {side!r}")
    need_rgb, need_flow = _check_modality(root, record, modality)
    clips = []
    for c in record.ok_clips(side):
        if info.packed is not None:
            where = info.packed.shard_path(c.id)
        else:
            where = get_layout(record.layout).clip_dir(root, c.side, c.cls, c.name)
            if not where.is_dir():
                raise DatasetError(f"{root}: clip folder {c.id} listed in the record is missing")
        if (need_rgb and c.frames < 1) or (need_flow and c.flow_frames < 1):
            continue  # too short to sample from (one frame has no flow); the build reports these
        clips.append(Clip(c.id, where, c.label, c.frames, c.flow_frames))
    if not clips:
        raise DatasetError(f"{root} has no usable {side} clips for modality {modality!r}")
    return info, clips


def clip_files(info: DatasetInfo, clip: Clip) -> ClipFiles:
    """The images of ``clip`` by their folder-relative names (``rgb/000000.png``, ``u/000000.jpg``):
    files of its folder, or the members of its sample in a shard (read with one read)."""
    if info.packed is not None:
        return info.packed.read_clip(clip.id)
    return FolderClip(clip.path)

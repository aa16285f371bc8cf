"""``flowprep verify``: check a built dataset folder against its record."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flowprep.fsio.reading import MAX_FRAME_BYTES, try_read_bytes
from flowprep.layout.base import Layout
from flowprep.layout.dataset_record import DatasetRecord
from flowprep.layout.images import ClipSpec, decode_bytes, image_problems
from flowprep.layout.record import find_root, read_record
from flowprep.layout.registry import get_layout


@dataclass
class VerifyReport:
    """``rows``: class -> {"train", "val", "frames", "flow_frames", "failed"}; ``problems``: one line each."""

    root: Path
    layout: str
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    clips_checked: int = 0
    images_read: int = 0


def read_image(path: Path) -> tuple[np.ndarray | None, str]:
    """Decode ``path`` fully: ``(image, "")``, or ``(None, why)`` when it is unreadable, truncated or
    damaged. The image is ``(H, W)`` or ``(H, W, C)`` ``uint8`` as stored."""
    # a frame that is a symlink (flowprep writes none; one could lead outside the dataset, to
    # /dev/zero or a FIFO) or a device is a problem to report, not something to follow
    data, why = try_read_bytes(path, MAX_FRAME_BYTES, owned=True)
    if data is None:
        return None, why
    return decode_bytes(data, path.suffix.lower().lstrip("."))


def check_clip(
    folder: str,
    layout: str,
    frames: int,
    flow_frames: int,
    rgb: bool,
    flow: bool,
    rgb_ext: str,
    flow_ext: str,
    quick: bool,
) -> tuple[list[str], int]:
    """Problems of one finished clip folder, and how many images were decoded to check them."""
    import cv2

    cv2.setNumThreads(1)
    base = Path(folder)
    if not base.is_dir():
        return [f"{folder}: missing (the record says it was built)"], 0
    present, problems = get_layout(layout).clip_files(base, rgb, flow)
    spec = ClipSpec(layout, frames, flow_frames, rgb, flow, rgb_ext, flow_ext, quick)
    more, n = image_problems(folder, spec, present, lambda rel: read_image(base / rel))
    return problems + more, n


def _stray_entries(root: Path, layout: Layout, record: DatasetRecord) -> list[str]:
    """Anything under the frame folders that is not a class folder, clip folder of the record, or frame."""
    problems = []
    classes = set(record.classes)
    expected: dict[tuple[str, str], set[str]] = {}
    for c in record.clips:
        expected.setdefault((layout.side_top(c.side), c.cls), set()).add(c.name)
    for top in layout.clip_tops:
        d = root / top
        if not d.is_dir():
            continue
        for cls in sorted(os.listdir(d)):
            p = d / cls
            if cls not in classes or not p.is_dir():
                problems.append(f"{p}: not a class of this dataset")
                continue
            for clip in sorted(os.listdir(p)):
                if clip not in expected.get((top, cls), set()):
                    problems.append(f"{p / clip}: not a clip of the record (left over from another build?)")
    return problems


def verify(dataset: Path, quick: bool = False, jobs: int = 1) -> VerifyReport:
    """Check every clip of the record: present, complete (u/v = rgb - 1, names matching), readable,
    same size; no stray folders; the flow encoding recorded. Problems are collected, not raised
    (a dataset that is not a flowprep dataset at all raises :class:`~flowprep.errors.DatasetError`)."""
    from joblib import Parallel, delayed

    root = find_root(Path(dataset))
    record = read_record(root)  # the reader refuses a flow dataset without its encoding
    kind = get_layout(record.layout)
    layout = kind.name
    rgb, flow = record.has_rgb, record.has_flow
    report = VerifyReport(root=root, layout=layout)
    rgb_ext = record.rgb.image_format if record.rgb else "png"
    flow_ext = record.encoding.image_format if record.encoding else "jpg"
    for cls in record.classes:
        report.rows[cls] = {"train": 0, "val": 0, "frames": 0, "flow_frames": 0, "failed": 0}
    tasks = []
    for c in record.clips:
        row = report.rows[c.cls]
        if not c.ok:
            row["failed"] += 1
            report.problems.append(f"{c.id}: failed at build time: {c.error or '?'}")
            continue
        row[c.side] += 1
        row["frames"] += c.frames
        row["flow_frames"] += c.flow_frames
        if record.packed is not None:
            continue  # checked shard by shard below
        folder = kind.clip_dir(root, c.side, c.cls, c.name)
        if not folder.resolve().is_relative_to(root.resolve()):  # a symlinked folder leading out
            report.problems.append(f"{folder}: leads outside the dataset (a symlink?); not read")
            continue
        tasks.append((str(folder), layout, c.frames, c.flow_frames, rgb, flow, rgb_ext, flow_ext, quick))
    if record.packed is not None:
        from flowprep.layout.verify_packed import verify_packed  # it builds on this module

        verify_packed(root, record, report, ClipSpec(layout, 0, 0, rgb, flow, rgb_ext, flow_ext, quick), jobs)
        return report
    if jobs > 1 and len(tasks) > 8:
        results = Parallel(n_jobs=jobs, batch_size=4)(delayed(check_clip)(*t) for t in tasks)
    else:
        results = [check_clip(*t) for t in tasks]
    for problems, n in results:
        report.problems.extend(problems)
        report.images_read += n
    report.clips_checked = len(tasks)
    report.problems.extend(_stray_entries(root, kind, record))
    for rel in kind.required_files(record):
        if not (root / rel).is_file():
            report.problems.append(f"{root / rel}: annotation list missing")
    return report


def format_table(report: VerifyReport) -> str:
    """The per-class table printed by ``flowprep verify``."""
    width = max([5] + [len(c) for c in report.rows])
    lines = [f"{'class':<{width}}  {'train':>6}  {'val':>5}  {'frames':>8}  {'flow':>8}  {'failed':>6}"]
    tot = {"train": 0, "val": 0, "frames": 0, "flow_frames": 0, "failed": 0}
    for cls, r in report.rows.items():
        lines.append(
            f"{cls:<{width}}  {r['train']:>6}  {r['val']:>5}  {r['frames']:>8}  {r['flow_frames']:>8}  {r['failed']:>6}"
        )
        for k in tot:
            tot[k] += r[k]
    lines.append(
        f"{'total':<{width}}  {tot['train']:>6}  {tot['val']:>5}  {tot['frames']:>8}  "
        f"{tot['flow_frames']:>8}  {tot['failed']:>6}"
    )
    lines.append(f"{report.clips_checked} clip(s) checked, {report.images_read} image(s) read ({report.root})")
    return "\n".join(lines)

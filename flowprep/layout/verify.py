"""``flowprep verify``: check a built dataset folder against its record."""

from __future__ import annotations

import errno
import os
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flowprep.layout.paths import clip_dir
from flowprep.layout.record import SIDES, DatasetRecord, find_root, read_record

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: largest image file read as a frame (an 8192x8192 RGB PNG stored uncompressed is 201 MB)
MAX_IMAGE_BYTES = 512 << 20


@dataclass
class VerifyReport:
    """``rows``: class -> {"train", "val", "frames", "flow_frames", "failed"}; ``problems``: one line each."""

    root: Path
    layout: str
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    clips_checked: int = 0
    images_read: int = 0


def _expected_names(layout: str, kind: str, n: int, ext: str) -> list[str]:
    from flowprep.layout.paths import flow_names, rgb_name

    if kind == "rgb":
        return [rgb_name(layout, k, ext) for k in range(n)]
    return [flow_names(layout, k, ext)[0 if kind == "u" else 1] for k in range(n)]


def container_problem(data: bytes, ext: str) -> str | None:
    """Why the bytes of a ``.jpg``/``.png`` file are not a whole image, or None.

    Decoders forgive a lot: OpenCV returns a truncated JPEG with its missing rows grey (and a
    warning on stderr). So the file's structure is checked too, cheaply: a JPEG starts with SOI
    (``FFD8``) and ends with EOI (``FFD9``); a PNG is its signature and a chain of chunks, each
    CRC-checked, ending with ``IEND``.
    """
    if ext in ("jpg", "jpeg"):
        if not data.startswith(b"\xff\xd8"):
            return "not a JPEG file: no start marker"
        if not data.rstrip(b"\0").endswith(b"\xff\xd9"):
            return "truncated JPEG: no end-of-image marker"
        return None
    if ext == "png":
        return _png_problem(data)
    return None


def _png_problem(data: bytes) -> str | None:
    if not data.startswith(_PNG_SIGNATURE):
        return "not a PNG file: no signature"
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + 12 + length
        if end > len(data):
            break
        kind = data[pos + 4 : pos + 8]
        if zlib.crc32(data[pos + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            return f"damaged PNG: CRC mismatch in chunk {kind.decode('latin-1')!r}"
        if kind == b"IEND":
            return None
        pos = end
    return "truncated PNG: no IEND chunk"


def read_frame_bytes(path: Path, limit: int = MAX_IMAGE_BYTES) -> tuple[bytes | None, str]:
    """The bytes of frame file ``path``, ``(data, "")``, or ``(None, why)``.

    Only a regular file is read, and at most ``limit`` bytes: a frame that is a symlink (flowprep
    writes none; one could lead outside the dataset, to ``/dev/zero`` whose reading never ends, or to
    a FIFO that blocks forever) or a device is a problem, not something to follow.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, "a symbolic link (flowprep writes none; not followed)"
        return None, f"{exc.strerror or exc}"
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file"
        if st.st_size > limit:
            return None, f"{st.st_size} bytes, more than any frame ({limit} at most)"
        try:
            return fh.read(limit), ""
        except OSError as exc:
            return None, f"{exc.strerror or exc}"


def read_image(path: Path) -> tuple[np.ndarray | None, str]:
    """Decode ``path`` fully: ``(image, "")``, or ``(None, why)`` when it is unreadable, truncated or
    damaged. The image is ``(H, W)`` or ``(H, W, C)`` ``uint8`` as stored."""
    import cv2

    data, why = read_frame_bytes(path)
    if data is None:
        return None, why
    damage = container_problem(data, path.suffix.lower().lstrip("."))
    if damage:
        return None, damage
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None, "does not decode"
    return img, ""


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
    problems: list[str] = []
    wanted: list[str] = []
    if rgb:
        wanted += _expected_names(layout, "rgb", frames, rgb_ext)
    if flow:
        wanted += _expected_names(layout, "u", flow_frames, flow_ext)
        wanted += _expected_names(layout, "v", flow_frames, flow_ext)
        if rgb and flow_frames != frames - 1:
            problems.append(f"{folder}: {flow_frames} flow images for {frames} frames (expected {frames - 1})")
    if layout == "tao":
        present: set[str] = set()
        allowed = (["rgb"] if rgb else []) + (["u", "v"] if flow else [])
        for entry in sorted(os.listdir(base)):
            # a symlinked rgb/u/v folder could lead anywhere: not followed
            if entry not in allowed or (base / entry).is_symlink() or not (base / entry).is_dir():
                problems.append(f"{folder}: unexpected entry {entry!r} (TAO lists clip folders by name)")
                continue
            present.update(f"{entry}/{n}" for n in os.listdir(base / entry))
    else:
        present = set(os.listdir(base))
    missing = sorted(set(wanted) - present)
    extra = sorted(present - set(wanted))
    if missing:
        problems.append(f"{folder}: {len(missing)} file(s) missing, e.g. {missing[0]}")
    if extra:
        problems.append(f"{folder}: {len(extra)} unexpected file(s), e.g. {extra[0]}")
    to_read = [n for n in wanted if n in present]
    if quick:
        groups: dict[str, list[str]] = {}
        for n in to_read:
            groups.setdefault(n.split("/")[0] if "/" in n else n.split("_0")[0], []).append(n)
        to_read = sorted({x for g in groups.values() for x in (g[0], g[-1])})
    shape = None
    for n in to_read:
        img, why = read_image(base / n)
        if img is None:
            problems.append(f"{folder}/{n}: unreadable image ({why})")
            continue
        if shape is None:
            shape = img.shape[:2]
        elif img.shape[:2] != shape:
            problems.append(
                f"{folder}/{n}: size {img.shape[1]}x{img.shape[0]} differs from the clip's {shape[1]}x{shape[0]}"
            )
    return problems, len(to_read)


def _stray_entries(root: Path, layout: str, record: DatasetRecord) -> list[str]:
    """Anything under the frame folders that is not a class folder, clip folder of the record, or frame."""
    problems = []
    classes = set(record.classes)
    expected: dict[tuple[str, str], set[str]] = {}
    for c in record.clips:
        side = c.side if layout == "tao" else "rawframes"
        expected.setdefault((side, c.cls), set()).add(c.name)
    tops = list(SIDES) if layout == "tao" else ["rawframes"]
    for top in tops:
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
    layout = record.layout
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
        folder = clip_dir(root, layout, c.side, c.cls, c.name)
        if not folder.resolve().is_relative_to(root.resolve()):  # a symlinked folder leading out
            report.problems.append(f"{folder}: leads outside the dataset (a symlink?); not read")
            continue
        tasks.append((str(folder), layout, c.frames, c.flow_frames, rgb, flow, rgb_ext, flow_ext, quick))
    if jobs > 1 and len(tasks) > 8:
        results = Parallel(n_jobs=jobs, batch_size=4)(delayed(check_clip)(*t) for t in tasks)
    else:
        results = [check_clip(*t) for t in tasks]
    for problems, n in results:
        report.problems.extend(problems)
        report.images_read += n
    report.clips_checked = len(tasks)
    report.problems.extend(_stray_entries(root, layout, record))
    if layout == "mmaction2":
        for side in SIDES:
            lst = root / "mmaction2" / f"{side}_list_rawframes{'' if rgb else '_flow'}.txt"
            if not lst.is_file():
                report.problems.append(f"{lst}: annotation list missing")
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

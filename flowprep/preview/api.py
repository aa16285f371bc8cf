"""The preview stage's entry point, :func:`preview` (``flowprep preview``; its config and summary
are in :mod:`flowprep.preview.config`): a self-contained static folder (``index.html`` + ``media/``)
showing a built dataset: the record's summary, and per class a few clips as looping videos of RGB |
flow colour wheel | u | v, decoded with the recorded encoding. Or one clip's side-by-side video
(``video=``).
"""

from __future__ import annotations

import fnmatch
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from flowprep.errors import ConfigError, DatasetError, OutputError
from flowprep.flow.visualize import flow_to_color
from flowprep.fsio.lock import FolderLock
from flowprep.fsio.owned import Manifest, check_no_link, make_dirs, removable, remove_inside
from flowprep.fsio.reading import open_regular
from flowprep.fsio.writing import check_new_file, write_bytes_atomic, write_text_atomic
from flowprep.layout.base import SIDES
from flowprep.layout.dataset_record import ClipEntry as RecordClip
from flowprep.layout.dataset_record import DatasetRecord
from flowprep.layout.packed import SHARDS_DIR
from flowprep.layout.record import RECORD_NAME, find_root, read_record
from flowprep.layout.registry import frame_tops
from flowprep.preview.config import PreviewConfig, PreviewSummary
from flowprep.preview.media import ClipMedia, ClipReader, render_clip
from flowprep.preview.page import ClipEntry, render_page

MEDIA_DIR = "media"
LEGEND_NAME = "wheel.png"
MEDIA_GLOB = "c[0-9][0-9][0-9][0-9].mp4"
#: what a preview wrote in its folder (relative names, an ownership manifest); only those are ever
#: replaced or removed
MANIFEST_NAME = ".flowprep-preview.json"
#: held while a preview writes its page: a second preview into the same folder is refused
LOCK_NAME = ".flowprep-preview.lock"


def resolve_clip(record: DatasetRecord, ident: str) -> RecordClip:
    """The record entry of clip ``ident`` (an id like ``train/walk/<clip>``, or a clip name).

    Raises:
        ConfigError: no such clip, or a name that is on several sides/classes.
        DatasetError: the clip failed at build time (nothing to show).
    """
    found = [c for c in record.clips if c.id == ident] or [c for c in record.clips if c.name == ident]
    if not found:
        example = record.clips[0].id if record.clips else "train/<class>/<clip>"
        raise ConfigError(
            f"no clip {ident!r} in the dataset; give its id (e.g. {example!r}, see train_list.txt) or its name"
        )
    if len(found) > 1:
        raise ConfigError(f"clip name {ident!r} is ambiguous, give one of the ids: " + ", ".join(c.id for c in found))
    clip = found[0]
    if not clip.ok:
        raise DatasetError(f"clip {clip.id} failed at build time, nothing to show: {clip.error or ''}")
    return clip


def select_clips(record: DatasetRecord, per_class: int, side: str) -> list[RecordClip]:
    """Up to ``per_class`` built clips per class (label order), evenly spread over the class's clips
    sorted by name (so train and val mix), so the choice depends only on the record and spans several
    source videos."""
    sides = SIDES if side == "both" else (side,)
    out = []
    for cls in record.classes:
        pool = sorted(
            (c for c in record.clips if c.cls == cls and c.ok and c.side in sides),
            key=lambda c: (c.name, c.id),
        )
        n = min(per_class, len(pool))
        out += [pool[(i * len(pool)) // n] for i in range(n)]
    return out


def _check_outside_frames(root: Path, path: Path, option: str) -> None:
    """ConfigError when ``path`` is the dataset root or lies in its frame folders: TAO and mmaction2
    list those folders, so a stray page or video there breaks training and ``flowprep verify``."""
    resolved, base = path.resolve(), root.resolve()
    frame_dirs = [base / d for d in (*frame_tops(), SHARDS_DIR)]
    if resolved == base or any(resolved == d or d in resolved.parents for d in frame_dirs):
        raise ConfigError(
            f"{option} {path} is the dataset root or inside its frame folders (TAO and mmaction2 "
            "list those) or shards; write the preview elsewhere"
        )


def _out_dir(root: Path, out: Path | None) -> Path:
    out = Path(out) if out is not None else root.parent / f"{root.name}-preview"
    _check_outside_frames(root, out, "--out")
    return out


def _is_ours(name: str) -> bool:
    """Whether ``name`` (relative to the page's folder) is one a preview writes."""
    return name in ("index.html", f"{MEDIA_DIR}/{LEGEND_NAME}") or (
        name.startswith(f"{MEDIA_DIR}/") and fnmatch.fnmatchcase(name[len(MEDIA_DIR) + 1 :], MEDIA_GLOB)
    )


def _manifest(out: Path) -> Manifest:
    return Manifest(out, MANIFEST_NAME, _is_ours, OutputError, f"remove {out} or choose another --out")


def _previous_files(out: Path) -> set[str]:
    """Files an earlier preview wrote in ``out`` (its manifest), after checking that none of the
    names this preview writes holds a file of someone else's.

    Raises:
        OutputError: ``index.html``, the legend or a ``media/c0000.mp4`` exists in ``out`` and no
            preview manifest lists it (the user's own page: never overwritten).
        ConfigError: ``media/`` or a file of an earlier preview is a symlink.
    """
    manifest = _manifest(out)
    owned: set[str] = set()
    if os.path.lexists(manifest.path):
        owned = manifest.read()
    elif _is_old_preview(out / "index.html"):
        owned = {"index.html", f"{MEDIA_DIR}/{LEGEND_NAME}"} | {
            f"{MEDIA_DIR}/{p.name}" for p in (out / MEDIA_DIR).glob(MEDIA_GLOB)
        }
    check_no_link(out, MEDIA_DIR)  # a link there would lead every write and deletion elsewhere
    ours = ["index.html", f"{MEDIA_DIR}/{LEGEND_NAME}"] + [
        f"{MEDIA_DIR}/{p.name}" for p in (out / MEDIA_DIR).glob(MEDIA_GLOB)
    ]
    foreign = [n for n in ours if os.path.lexists(out / n) and n not in owned]
    if foreign:
        raise OutputError(
            f"{out / foreign[0]} was not written by flowprep preview (no {MANIFEST_NAME} lists it); "
            "flowprep does not overwrite it: choose another --out or remove it"
        )
    for name in owned:  # all checked before any is removed or replaced
        removable(out, name, (MEDIA_DIR, "index.html"))
    return owned


def write_legend(path: Path, size: int = 96) -> None:
    """The colour-wheel legend: a disc whose pixel at offset (dx, dy) from the centre shows flow (dx, dy)."""
    r = (size - 1) / 2
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) - np.float32(r)
    flow = np.stack([xs, ys], axis=-1)
    img = flow_to_color(flow, max_flow=r)
    img[np.hypot(xs, ys) > r] = 255  # white outside the disc
    # encoded in memory and written by Python: cv2.imwrite on a full disk prints libpng's own error
    # line on stderr and returns False without saying why
    ok, png = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"cannot encode the colour-wheel legend {path}")
    write_bytes_atomic(Path(path), png.tobytes())


def _media_name(i: int) -> str:
    # media files are numbered, not named after clips: clip names hold '#', '&', "'" ...
    return f"c{i:04d}.mp4"


def _progress(items: list[Any], enabled: bool, desc: str):
    from tqdm import (
        tqdm,  # lazy like the build's bar: only commands that draw one pay for it
    )

    return tqdm(items, desc=desc, unit="clip", disable=not enabled, dynamic_ncols=True)


def _render_page_media(
    root: Path, record: DatasetRecord, clips: list[RecordClip], media: Path, cfg: PreviewConfig
) -> tuple[list[ClipEntry], list[str]]:
    entries: list[ClipEntry] = []
    notes: list[str] = []
    for i, clip in enumerate(_progress(clips, cfg.progress, "preview")):
        reader = ClipReader(root, record, clip)
        if reader.count == 0:
            notes.append(f"{clip.id}: no frames to show")
            continue
        name = _media_name(i)
        try:
            info: ClipMedia = render_clip(reader, media / name, cfg.max_frames, cfg.height, cfg.fps)
        except DatasetError as exc:  # a damaged clip: say so on the page and show the others
            remove_inside(media.parent, f"{media.name}/{name}", (media.name,))  # listed in the manifest
            notes.append(f"{clip.id}: {exc}")
            continue
        entries.append(ClipEntry(clip=clip, media=info, src=f"{MEDIA_DIR}/{name}"))
    return entries, notes


def _is_old_preview(index: Path) -> bool:
    """A page of a preview made before the manifest existed (its own last line says so)."""
    if not index.is_file():
        return False
    try:  # the last 200 bytes only, of a regular file (not a FIFO planted there): the page may be big
        fd = open_regular(index, what="page", error=OutputError)
    except OutputError:
        return False
    try:
        tail = os.pread(fd, 200, max(0, os.fstat(fd).st_size - 200))
    except OSError:
        return False
    finally:
        os.close(fd)
    return tail.rstrip().endswith(b"preview</p></main></body></html>") and b"written by flowprep" in tail


def _clear_media(out: Path, owned: set[str]) -> None:
    """Remove the videos of an earlier preview: only those its manifest lists."""
    for p in (out / MEDIA_DIR).glob(MEDIA_GLOB):
        if f"{MEDIA_DIR}/{p.name}" in owned:
            remove_inside(out, f"{MEDIA_DIR}/{p.name}", (MEDIA_DIR,))


def _write_video(
    root: Path, record: DatasetRecord, clip: RecordClip, video: Path, cfg: PreviewConfig, t0: float
) -> PreviewSummary:
    _check_outside_frames(root, video, "--video")
    check_new_file(video, option="--video", overwrite=cfg.overwrite, inputs=[root / RECORD_NAME])
    try:
        video.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write the video {video}: {exc}") from exc
    info = render_clip(ClipReader(root, record, clip), video, cfg.max_frames, cfg.height, cfg.fps, labels=True)
    return PreviewSummary(
        out=video,
        index=None,
        clips=1,
        frames=info.shown,
        media_bytes=video.stat().st_size,
        seconds=time.perf_counter() - t0,
    )


def _write_page(
    root: Path, record: DatasetRecord, clips: list[RecordClip], cfg: PreviewConfig, t0: float
) -> PreviewSummary:
    out = _out_dir(root, cfg.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write the preview to {out}: {exc.strerror or exc}") from None
    with FolderLock(out, LOCK_NAME, "preview"):
        return _write_page_locked(root, record, clips, cfg, t0, out)


def _write_page_locked(
    root: Path, record: DatasetRecord, clips: list[RecordClip], cfg: PreviewConfig, t0: float, out: Path
) -> PreviewSummary:
    media = out / MEDIA_DIR
    legend = f"{MEDIA_DIR}/{LEGEND_NAME}" if record.has_flow else None
    owned = _previous_files(out)
    try:
        make_dirs(out, MEDIA_DIR)
        _clear_media(out, owned)
        # the manifest lists every name this run may write before any is written, so an interrupted
        # run can be redone, and no later run mistakes these files for the user's
        names = [
            "index.html",
            *([legend] if legend else []),
            *(f"{MEDIA_DIR}/{_media_name(i)}" for i in range(len(clips))),
        ]
        _manifest(out).write(names)
        if legend:
            write_legend(out / legend)
        entries, notes = _render_page_media(root, record, clips, media, cfg)
        index = out / "index.html"
        write_text_atomic(
            index,
            render_page(
                record,
                entries,
                dataset=str(root),
                legend=legend,
                chosen=bool(cfg.clips),
                side=cfg.side,
                per_class=cfg.per_class,
                notes=notes,
            ),
        )
    except OSError as exc:
        raise OutputError(f"cannot write the preview to {out}: {exc}") from exc
    size = sum(os.path.getsize(media / Path(e.src).name) for e in entries)
    return PreviewSummary(
        out=out,
        index=index,
        clips=len(entries),
        frames=sum(e.media.shown for e in entries),
        media_bytes=size,
        seconds=time.perf_counter() - t0,
        notes=notes,
    )


def preview(cfg: PreviewConfig) -> PreviewSummary:
    """Write the preview page (or, with ``cfg.video``, one clip's video).

    Raises:
        DatasetError: not a dataset, unreadable frames. ConfigError: unknown clip, bad ``--out``.
        OutputError: the page or video cannot be written.
    """
    t0 = time.perf_counter()
    root = find_root(Path(cfg.dataset))
    record = read_record(root)
    clips = [resolve_clip(record, c) for c in cfg.clips] if cfg.clips else select_clips(record, cfg.per_class, cfg.side)
    if cfg.video is not None:
        return _write_video(root, record, clips[0], Path(cfg.video), cfg, t0)
    return _write_page(root, record, clips, cfg, t0)

"""The clip job: one clip, one idempotent task.

Decode every frame once, write RGB frames, compute flow between consecutive gray frames, write u/v.
Everything is written into a fresh temporary folder under ``<out>/.flowprep-tmp/`` and renamed into
place in one step: a clip is finished exactly when its final folder exists. Re-running a finished
job is a no-op; re-running an unfinished one starts clean. Resume after Ctrl-C or ``kill -9``, retries
of dead Dask workers and job-array shards all follow from this one rule.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from flowprep.archive.bounded import MAX_CLIP_BYTES, read_member
from flowprep.builder.folder import BuildFolder
from flowprep.builder.pack import STAGED_NAME, count_staged, staged_path, write_staged
from flowprep.builder.plan import ClipJob
from flowprep.builder.workers import watch_main_process, worker_gpu
from flowprep.errors import ArchiveError, ClipError, DecodeError, OutputError
from flowprep.flow.encoding import FlowEncoding
from flowprep.flow.registry import BACKENDS, create_backend
from flowprep.layout.dataset_record import ClipEntry
from flowprep.layout.paths import TMP_DIR
from flowprep.layout.registry import get_layout
from flowprep.video.decode import iter_frames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSettings:
    """What every clip job of one build shares (picklable, sent once per worker task)."""

    out: str
    layout: str
    rgb: bool
    flow: bool
    flow_name: str | None
    flow_params: dict[str, Any]
    encoding: dict[str, Any]
    rgb_format: str = "png"
    rgb_quality: int = 95
    short_side: int | None = None
    size: tuple[int, int] | None = None
    frame_step: int = 1
    opencv_threads: int = 1
    gpus: tuple[int, ...] | None = None
    slot_scope: str = ""
    max_clip_bytes: int = MAX_CLIP_BYTES
    #: pid of the build's main process, watched by local workers (None on Dask)
    main_pid: int | None = None
    #: a packed build: the clip is committed as one staged tar (``<clip>.tar``), not a folder of files
    pack: bool = False


@dataclass
class ClipResult:
    """Outcome of one clip job. ``status``: ``"done"`` (built now), ``"exists"`` (already finished) or
    ``"failed"`` (``error`` says why). Frame counts are what is on disk."""

    id: str
    status: str
    frames: int = 0
    flow_frames: int = 0
    error: str = ""
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    worker: str = ""
    #: frames of the video FFmpeg could not decode (dropped mid-clip without an error)
    decode_errors: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_BACKENDS: dict[str, Any] = {}
_GPU: dict[tuple, int | None] = {}
_TIMED = ("read", "decode", "write_rgb", "flow", "write_flow")


def _backend(settings: JobSettings):
    """One flow backend per process and configuration (GPU backends are costly to create).

    GPU backends get ``gpu=`` the device of this worker process (:func:`flowprep.builder.workers.worker_gpu`:
    one slot per process, so two local workers never share a GPU while another idles); CPU backends
    never see GPU ids.
    """
    params = dict(settings.flow_params)
    spec = BACKENDS.get(settings.flow_name or "")
    if spec is not None and spec.gpu and "gpu" not in params:
        where = (os.getpid(), settings.gpus, settings.slot_scope)
        if where not in _GPU:  # discovery may run nvidia-smi: once per process, not per clip
            _GPU[where] = worker_gpu(settings.gpus, settings.slot_scope or "default")
        gpu = _GPU[where]
        if gpu is not None:
            params["gpu"] = gpu
    key = json.dumps([settings.flow_name, params], sort_keys=True)
    if key not in _BACKENDS:
        _BACKENDS[key] = create_backend(settings.flow_name or "", **params)  # flow jobs always name one
    return _BACKENDS[key]


def count_on_disk(final: Path, layout: str, rgb: bool) -> tuple[int, int]:
    """``(video frames, flow frames)`` of a finished clip folder, from the files in it.

    Without RGB frames (``--modality flow``) the video had one frame more than there are flow images.
    """
    frames, flows = get_layout(layout).count_frames(final)
    return (frames if rgb else flows + 1), flows


def clip_entry(job: ClipJob, frames: int, flows: int, lost: int) -> ClipEntry:
    """The record entry of a built clip (``flows`` 0 for a dataset without flow; ``lost``: frames of
    the video that could not be decoded)."""
    return ClipEntry(job.side, job.cls, job.label, job.clip, job.name, "ok", frames, flows, decode_errors=lost)


def _imwrite(path: Path, img: np.ndarray, params: list[int]) -> None:
    try:
        ok = cv2.imwrite(str(path), img, params)
    except cv2.error as exc:
        raise OutputError(f"could not write {path}: {exc}") from exc
    if not ok:
        raise OutputError(f"could not write {path} (disk full or not writable?)")


class _ClipWriter:
    """Writes one clip's frames and flow images into its temporary folder ``tmp``, timing each step.

    For a packed build the images are encoded in memory (``cv2.imencode`` gives the bytes
    ``cv2.imwrite`` writes) and kept in ``members`` for one staged tar: no file per frame.
    """

    def __init__(self, job: ClipJob, settings: JobSettings, tmp: Path) -> None:
        self.job, self.s, self.tmp = job, settings, tmp
        self.members: list[tuple[str, bytes]] | None = [] if settings.pack else None
        self.backend = _backend(settings) if settings.flow else None
        self.enc = FlowEncoding.from_dict(settings.encoding) if settings.flow else None
        self.rgb_params = (
            [cv2.IMWRITE_PNG_COMPRESSION, 1]
            if settings.rgb_format == "png"
            else [cv2.IMWRITE_JPEG_QUALITY, settings.rgb_quality]
        )
        self.flow_params = (
            [cv2.IMWRITE_PNG_COMPRESSION, 1]
            if self.enc and self.enc.image_format == "png"
            else [cv2.IMWRITE_JPEG_QUALITY, self.enc.jpeg_quality if self.enc else 95]
        )
        self.timings = dict.fromkeys(_TIMED, 0.0)
        self.prev_gray: np.ndarray | None = None
        self.decode: dict[str, int] = {}

    def frames(self, data: bytes) -> Iterator[np.ndarray]:
        """The clip's RGB frames ``(H, W, 3) uint8``, decode time counted."""
        it = iter_frames(
            data, self.s.short_side, self.s.size, self.s.frame_step, threads=1, name=self.job.name, report=self.decode
        )
        while True:
            t = time.perf_counter()
            rgb = next(it, None)
            self.timings["decode"] += time.perf_counter() - t
            if rgb is None:
                return
            yield rgb

    def _put(self, rel: str, img: np.ndarray, params: list[int]) -> None:
        if self.members is None:
            _imwrite(self.tmp / rel, img, params)
            return
        try:
            ok, buf = cv2.imencode(Path(rel).suffix, img, params)
        except cv2.error as exc:
            raise OutputError(f"could not encode {rel} of {self.job.id}: {exc}") from exc
        if not ok:
            raise OutputError(f"could not encode {rel} of {self.job.id}")
        self.members.append((rel, buf.tobytes()))

    def add(self, n: int, rgb: np.ndarray) -> None:
        """Write frame ``n`` and, from the second frame on, the flow from frame ``n - 1`` to it."""
        if self.s.rgb:
            t = time.perf_counter()
            self._put(
                get_layout(self.s.layout).rgb_name(n, self.s.rgb_format),
                cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                self.rgb_params,
            )
            self.timings["write_rgb"] += time.perf_counter() - t
        if not self.s.flow:
            return
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if self.prev_gray is not None:
            self._flow(n, self.prev_gray, gray)
        self.prev_gray = gray

    def _flow(self, n: int, prev: np.ndarray, gray: np.ndarray) -> None:
        if self.backend is None or self.enc is None:  # narrows the types: both are set whenever s.flow
            raise RuntimeError("flow requested without a backend")
        t = time.perf_counter()
        try:
            flow = self.backend.calc(prev, gray)
        except (cv2.error, ValueError) as exc:
            # e.g. DIS refuses frames under 12 px: this clip's problem, not the build's
            raise ClipError(
                f"{self.job.name}: flow failed on frames {n - 1}->{n} "
                f"({gray.shape[1]}x{gray.shape[0]}): {' '.join(str(exc).split())[-200:]}"
            ) from exc
        t2 = time.perf_counter()
        u, v = self.enc.encode(flow)
        un, vn = get_layout(self.s.layout).flow_names(n - 1, self.enc.image_format)
        self._put(un, u, self.flow_params)
        self._put(vn, v, self.flow_params)
        self.timings["flow"] += t2 - t
        self.timings["write_flow"] += time.perf_counter() - t2


def _make_tmp(out: Path, job: ClipJob, settings: JobSettings) -> Path:
    base = f"{job.cls}.{job.clip}"
    if len(base.encode("utf-8", "surrogateescape")) > 200:
        # class and clip names may each be 255 bytes: keep the folder name under NAME_MAX (255)
        base = hashlib.sha1(job.id.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    tmp = out / TMP_DIR / f"{base}.{uuid.uuid4().hex[:12]}"
    try:
        tmp.mkdir(parents=True)
        for sub in get_layout(settings.layout).subdirs(settings.rgb, settings.flow) if not settings.pack else []:
            (tmp / sub).mkdir()
    except OSError as exc:
        raise OutputError(f"cannot write into {out}: {exc}") from exc
    return tmp


def _write_clip(
    job: ClipJob, settings: JobSettings, tmp: Path, folder: BuildFolder
) -> tuple[int, dict[str, float], int]:
    """Decode the clip and write everything into ``tmp``; ``(frames, timings, frames lost)``. Frames lost to decode
    errors are noted in the build folder (before the clip is published, so a finished clip has its note)."""
    writer = _ClipWriter(job, settings, tmp)
    t = time.perf_counter()
    data = read_member(job.ref, settings.max_clip_bytes)
    writer.timings["read"] = time.perf_counter() - t
    n = 0
    for n, rgb in enumerate(writer.frames(data), start=1):
        writer.add(n - 1, rgb)
    if settings.flow and n < 2:
        raise ClipError(f"{job.name}: only {n} frame(s): flow needs at least 2")
    expected = writer.decode.get("expected", 0)
    lost = max(0, expected - writer.decode.get("decoded", expected))
    if lost:  # info: the summary warns once for all clips, as it lists failed ones
        log.info(
            "clip %s: %d of %d frames could not be decoded (corrupt data); kept %d",
            job.id,
            lost,
            expected,
            expected - lost,
        )
    folder.note_decode_errors(job.id, lost, expected)
    if writer.members is not None:
        write_staged(tmp / STAGED_NAME, writer.members)
    return n, writer.timings, lost


def _publish(tmp: Path, final: Path, folder: BuildFolder, pack: bool) -> bool:
    """Rename ``tmp`` (a packed build: its staged tar) to ``final``; False if another worker finished
    the clip first (theirs stands)."""
    src = tmp / STAGED_NAME if pack else tmp
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        if pack and final.exists():
            raise FileExistsError(final)  # rename would replace a file: theirs stands
        os.rename(src, final)
        if pack:
            folder.discard_tmp(tmp.name)
        return True
    except OSError as exc:
        # A retried Dask task or an overlapping shard finished it first: theirs stands.
        if not _finished(final, pack):
            raise OutputError(f"cannot move {src} to {final}: {exc}") from exc
        folder.discard_tmp(tmp.name)
        return False


def _finished(final: Path, pack: bool) -> bool:
    return final.is_file() if pack else final.is_dir()


def _counts(final: Path, settings: JobSettings) -> tuple[int, int]:
    if settings.pack:
        return count_staged(final, settings.rgb)
    return count_on_disk(final, settings.layout, settings.rgb)


def run_clip(job: ClipJob, settings: JobSettings) -> ClipResult:
    """Build one clip. Never raises for a bad clip: failures come back as ``status="failed"``.

    Errors of the environment (unwritable output, a flow backend that cannot start) do raise,
    since every other clip would fail the same way.
    """
    t0 = time.perf_counter()
    watch_main_process(settings.main_pid)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    out = Path(settings.out)
    folder = BuildFolder(out)
    final = get_layout(settings.layout).clip_dir(out, job.side, job.cls, job.clip)
    if settings.pack:
        final = staged_path(final)
    if _finished(final, settings.pack):
        return ClipResult(job.id, "exists", *_counts(final, settings), worker=worker)
    cv2.setNumThreads(settings.opencv_threads)
    tmp = _make_tmp(out, job, settings)
    try:
        n, timings, lost = _write_clip(job, settings, tmp, folder)
        if not _publish(tmp, final, folder, settings.pack):
            return ClipResult(job.id, "exists", *_counts(final, settings), worker=worker)
    except (DecodeError, ArchiveError, ClipError) as exc:
        # The clip's own fault: record it and go on. Anything else (output, backend) stops the build.
        folder.discard_tmp(tmp.name)
        log.info("clip %s failed: %s", job.id, exc)  # listed in the summary; the bar counts them live
        return ClipResult(job.id, "failed", error=str(exc), seconds=time.perf_counter() - t0, worker=worker)
    except BaseException:
        folder.discard_tmp(tmp.name)
        raise
    flows = max(0, n - 1) if settings.flow else 0
    return ClipResult(
        job.id, "done", n, flows, seconds=time.perf_counter() - t0, timings=timings, worker=worker, decode_errors=lost
    )

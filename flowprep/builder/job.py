"""The clip job: one clip, one idempotent task.

Decode every frame once, write RGB frames, compute flow between consecutive gray frames, write u/v.
Everything is written into a fresh temporary folder under ``<out>/.flowprep-tmp/`` and renamed into
place in one step: a clip is finished exactly when its final folder exists. Re-running a finished
job is a no-op; re-running an unfinished one starts clean. Resume after Ctrl-C or ``kill -9``, retries
of dead Dask workers and job-array shards all follow from this one rule.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flowprep.builder.plan import ClipJob
from flowprep.errors import ArchiveError, ClipError, DecodeError, OutputError
from flowprep.layout.paths import TMP_DIR, clip_dir, flow_names, rgb_name, subdirs

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_BACKENDS: dict[str, Any] = {}
_GPU: dict[tuple, int | None] = {}


def _backend(settings: JobSettings):
    """One flow backend per process and configuration (GPU backends are costly to create).

    GPU backends get ``gpu=`` the device of this worker process (:func:`flowprep.builder.cluster.worker_gpu`:
    one slot per process, so two local workers never share a GPU while another idles); CPU backends
    never see GPU ids.
    """
    from flowprep.flow.registry import BACKENDS, create_backend

    params = dict(settings.flow_params)
    spec = BACKENDS.get(settings.flow_name or "")
    if spec is not None and spec.gpu and "gpu" not in params:
        from flowprep.builder.cluster import worker_gpu

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
    if layout == "tao":
        def n(sub: str) -> int:
            d = final / sub
            return len(os.listdir(d)) if d.is_dir() else 0
        frames, flows = n("rgb"), n("u")
    else:
        names = os.listdir(final)
        frames = sum(1 for x in names if x.startswith("img_"))
        flows = sum(1 for x in names if x.startswith("flow_x_"))
    return (frames if rgb else flows + 1), flows


def _imwrite(path: Path, img, params: list[int]) -> None:
    import cv2

    try:
        ok = cv2.imwrite(str(path), img, params)
    except cv2.error as exc:
        raise OutputError(f"could not write {path}: {exc}") from exc
    if not ok:
        raise OutputError(f"could not write {path} (disk full or not writable?)")


def run_clip(job: ClipJob, settings: JobSettings) -> ClipResult:
    """Build one clip. Never raises for a bad clip: failures come back as ``status="failed"``.

    Errors of the environment (unwritable output, a flow backend that cannot start) do raise,
    since every other clip would fail the same way.
    """
    import cv2

    from flowprep.archive import read_member
    from flowprep.flow.encoding import FlowEncoding
    from flowprep.video.decode import iter_frames

    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    out = Path(settings.out)
    final = clip_dir(out, settings.layout, job.side, job.cls, job.clip)
    if final.is_dir():
        n_frames, n_flows = count_on_disk(final, settings.layout, settings.rgb)
        return ClipResult(job.id, "exists", n_frames, n_flows, worker=worker)

    cv2.setNumThreads(settings.opencv_threads)
    backend = _backend(settings) if settings.flow else None
    enc = FlowEncoding.from_dict(settings.encoding) if settings.flow else None
    tmp = out / TMP_DIR / f"{job.cls}.{job.clip}.{uuid.uuid4().hex[:12]}"
    try:
        tmp.mkdir(parents=True)
        for sub in subdirs(settings.layout, settings.rgb, settings.flow):
            (tmp / sub).mkdir()
    except OSError as exc:
        raise OutputError(f"cannot write into {out}: {exc}") from exc
    rgb_params = ([cv2.IMWRITE_PNG_COMPRESSION, 1] if settings.rgb_format == "png"
                  else [cv2.IMWRITE_JPEG_QUALITY, settings.rgb_quality])
    flow_params = ([cv2.IMWRITE_PNG_COMPRESSION, 1] if enc and enc.image_format == "png"
                   else [cv2.IMWRITE_JPEG_QUALITY, enc.jpeg_quality if enc else 95])
    timings = {"read": 0.0, "decode": 0.0, "write_rgb": 0.0, "flow": 0.0, "write_flow": 0.0}
    n = 0
    try:
        t = time.perf_counter()
        data = read_member(job.ref)
        timings["read"] = time.perf_counter() - t
        prev_gray = None
        frames = iter_frames(data, settings.short_side, settings.size, settings.frame_step, threads=1,
                             name=job.name)
        while True:
            t = time.perf_counter()
            rgb = next(frames, None)
            timings["decode"] += time.perf_counter() - t
            if rgb is None:
                break
            if settings.rgb:
                t = time.perf_counter()
                _imwrite(tmp / rgb_name(settings.layout, n, settings.rgb_format),
                         cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), rgb_params)
                timings["write_rgb"] += time.perf_counter() - t
            if backend is not None and enc is not None:  # settings.flow
                gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
                if prev_gray is not None:
                    t = time.perf_counter()
                    try:
                        flow = backend.calc(prev_gray, gray)
                    except (cv2.error, ValueError) as exc:
                        # e.g. DIS refuses frames under 12 px: this clip's problem, not the build's
                        raise ClipError(f"{job.name}: flow failed on frames {n - 1}->{n} "
                                        f"({gray.shape[1]}x{gray.shape[0]}): {' '.join(str(exc).split())[-200:]}") from exc
                    t2 = time.perf_counter()
                    u, v = enc.encode(flow)
                    un, vn = flow_names(settings.layout, n - 1, enc.image_format)
                    _imwrite(tmp / un, u, flow_params)
                    _imwrite(tmp / vn, v, flow_params)
                    timings["flow"] += t2 - t
                    timings["write_flow"] += time.perf_counter() - t2
                prev_gray = gray
            n += 1
        if settings.flow and n < 2:
            raise ClipError(f"{job.name}: only {n} frame(s): flow needs at least 2")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, final)
        except OSError as exc:
            # Another worker (a retried Dask task, an overlapping shard) finished it first: theirs stands.
            if not final.is_dir():
                raise OutputError(f"cannot move {tmp} to {final}: {exc}") from exc
            shutil.rmtree(tmp, ignore_errors=True)
            frames_, flows_ = count_on_disk(final, settings.layout, settings.rgb)
            return ClipResult(job.id, "exists", frames_, flows_, worker=worker)
    except (DecodeError, ArchiveError, ClipError) as exc:
        # The clip's own fault: record it and go on. Anything else (output, backend) stops the build.
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("clip %s failed: %s", job.id, exc)  # listed in the summary; the bar counts them live
        return ClipResult(job.id, "failed", error=str(exc), seconds=time.perf_counter() - t0, worker=worker)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    flows = max(0, n - 1) if settings.flow else 0
    return ClipResult(job.id, "done", n, flows, seconds=time.perf_counter() - t0,
                      timings=timings, worker=worker)

"""``flowprep infer``: stream a video, classify a sliding window, report JSON lines, annotate.

Positions are counted in *items*: dataset frames (RGB models) or flow images (flow and joint
models: item k is RGB frame k with the flow from frame k to k+1), after the dataset's
``frame_step``. A window is T items taken every ``step`` items (``step`` = the model's
``sample_rate``, or ``--skip-frames + 1`` as jetson-inference's actionNet); it spans
``(T - 1) * step + 1`` items. Windows start at 0, ``stride``, ``2 * stride``, ... and each is
classified as soon as its last item arrives; a stream shorter than one window gives one window that
loops over what there is (as :mod:`flowprep.loader.sampling` does).

For a file whose frame count is known, the whole-clip verdict uses the evaluation "conv" protocol
of :func:`flowprep.loader.sampling.conv_indices`: the softmax scores of one window centred on each of
10 equal segments, averaged. Those windows are classified on the fly too (the buffer always holds
the newest window span), so nothing is decoded twice.

Times are ``source frame number / fps``: window ``start_s`` is the time of its first source frame,
``end_s`` the end of its last one (``(last + 1) / fps``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from flowprep.errors import ConfigError
from flowprep.flow.base import FlowBackend
from flowprep.flow.registry import BACKENDS, create_backend, recorded_params
from flowprep.loader import sampling
from flowprep.serve.annotate import AnnotatedWriter
from flowprep.serve.config import InferConfig, InferSummary
from flowprep.serve.runner import ModelSpec, load_model, softmax, top_k
from flowprep.serve.stream import open_source
from flowprep.serve.window import FrameProcessor, WindowBuffer
from flowprep.video.overlay import draw_label

log = logging.getLogger(__name__)
__all__ = ["InferSession", "infer"]


def _flow_backend(spec: ModelSpec, flow: str | None) -> FlowBackend:
    recorded = spec.recipe.flow
    if recorded is None or spec.recipe.encoding is None:
        raise ConfigError(
            f"model/modality mismatch: {spec.source} is a {spec.modality} model, but its record "
            "has no flow backend/encoding (was it trained on an RGB-only dataset?)"
        )
    if flow and flow != recorded.name:
        backend = create_backend(flow)  # an unknown or unavailable name fails here, before the warning
        log.warning("computing flow with %s instead of the recorded %s: scores may drift", flow, recorded.name)
        return backend
    name = recorded.name
    if name not in BACKENDS:
        raise ConfigError(
            f"{spec.source} was trained on flow from {name!r}, which is not a flow backend "
            f"here; pass --flow with one of {', '.join(sorted(BACKENDS))}"
        )
    try:
        # the record is data: checked before OpenCV sees it; parameters it predates are set to
        # reproduce the flow it was trained on
        params = recorded_params(name, dict(recorded.params))
    except ConfigError as exc:
        raise ConfigError(f"{spec.source}: the recorded flow parameters are not usable: {exc}") from None
    return create_backend(name, **params)


def _conv_plan(
    spec: ModelSpec, source_frames: int | None, step: int, segments: int
) -> tuple[int, dict[int, list[np.ndarray]]]:
    """``(expected items, {trigger item: [window indices, ...]})`` for the conv protocol."""
    if not source_frames:
        return 0, {}
    fs = spec.recipe.frame_step
    n = -(-source_frames // fs) - (1 if "of" in spec.streams else 0)
    if n < 1:
        return 0, {}
    plan: dict[int, list[np.ndarray]] = {}
    for row in sampling.conv_indices(n, spec.frames, step, segments):
        plan.setdefault(int(row.max()), []).append(row)
    return n, plan


class InferSession:
    """One inference run: the model, the flow backend, the window buffer and the results so far.

    :meth:`run` streams the source through :meth:`_on_item` (sliding windows and the conv-protocol
    windows due at each item), then :meth:`_finish` (a short stream's looping window, the clip verdict).
    """

    def __init__(self, cfg: InferConfig, on_result: Callable[[dict[str, Any]], None] | None = None):
        self.t0 = time.perf_counter()
        self.cfg = cfg
        self.emit: Callable[[dict[str, Any]], None] = on_result or (lambda d: None)
        self.spec, self.runner = load_model(Path(cfg.model), cfg.providers)
        spec = self.spec
        self.step = cfg.skip_frames + 1 if cfg.skip_frames is not None else max(1, spec.sample_rate)
        use_flow = "of" in spec.streams
        self.backend = _flow_backend(spec, cfg.flow) if use_flow else None
        enc = spec.recipe.encoding if use_flow else None
        self.proc = FrameProcessor(
            spec.input_size, "rgb" in spec.streams, use_flow, spec.recipe.decode, spec.recipe.rgb, self.backend, enc
        )
        self.buf = WindowBuffer(spec.frames, self.step, spec.arch, spec.streams)
        self.stride = cfg.stride or max(1, self.buf.span // 2)
        self.conv_probs: list[np.ndarray] = []
        self.latencies: list[float] = []
        self.label_lines: list[str] = ["(filling the window)"]
        self.plan: dict[int, list[np.ndarray]] = {}
        self.expected = 0
        self.fps = 0.0
        self.summary = InferSummary(str(cfg.input), str(cfg.model), self.runner.describe(), 0.0)

    def classify(self, indices: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """Softmax scores ``float32`` ``(num_classes,)`` of the window at item ``indices``, and its
        first and last source frames."""
        inputs, src = self.buf.assemble(indices)
        t = time.perf_counter()
        probs = softmax(self.runner(inputs))[0]
        self.latencies.append(time.perf_counter() - t)
        return probs, src

    def _window_result(self, indices: np.ndarray, probs: np.ndarray, src: tuple[int, int]) -> None:
        """Report one sliding window (and show its best label on the annotated video)."""
        fps, summary = self.fps, self.summary
        top = top_k(probs, self.spec.classes, self.cfg.top)
        res = {
            "type": "window",
            "window": summary.windows,
            "start_item": int(indices[0]),
            "start_frame": src[0],
            "end_frame": src[1],
            "start_s": round(src[0] / fps, 4),
            "end_s": round((src[1] + 1) / fps, 4),
            "top_k": top,
        }
        summary.windows += 1
        self.label_lines[:] = [f"{top[0]['label']} {top[0]['score']:.2f}", f"{res['start_s']:.1f}-{res['end_s']:.1f}s"]
        self.emit(res)

    def _on_item(self, e: int) -> None:
        """Item ``e`` arrived: classify the sliding window ending here, and the conv windows due here
        (reusing the sliding window's scores when it is one of them)."""
        offsets = np.arange(self.spec.frames, dtype=np.int64) * self.step
        done: dict[tuple[int, ...], np.ndarray] = {}
        first = e - (self.buf.span - 1)
        if first >= 0 and first % self.stride == 0:
            idx = first + offsets
            probs, src = self.classify(idx)
            done[tuple(idx.tolist())] = probs
            self._window_result(idx, probs, src)
        for row in self.plan.pop(e, []):
            key = tuple(row.tolist())
            self.conv_probs.append(done[key] if key in done else self.classify(row)[0])

    def _stream(self, source: Any, writer: AnnotatedWriter | None) -> None:
        """Push every source frame through pre-processing and the window (and to the annotated video)."""
        max_frames = self.cfg.max_frames
        for i, frame in enumerate(source):
            if max_frames is not None and i >= max_frames:
                break
            self.summary.source_frames += 1
            item = self.proc.push(i, frame)
            if item is not None:
                self.buf.push(item)
                self._on_item(item.index)
            if writer is not None:
                writer.write(draw_label(frame.copy(), self.label_lines))

    def _finish(self) -> None:
        """After the last frame: a short stream's looping window, conv windows the stream never reached
        (a wrong frame count), and the clip verdict."""
        buf, spec, summary = self.buf, self.spec, self.summary
        n = buf.count
        if n and n < buf.span and summary.windows == 0:
            # shorter than one window: one window looping over what there is
            idx = sampling.window(n, 0, spec.frames, self.step)
            probs, src = self.classify(idx)
            self._window_result(idx, probs, src)
        if self.plan and n:
            summary.notes.append(
                f"{self.expected} items were expected for the clip verdict but {n} came "
                f"(the container's frame count was wrong); "
                f"{sum(map(len, self.plan.values()))} conv window(s) use the last window instead"
            )
            last = sampling.window(n, max(0, n - buf.span), spec.frames, self.step)
            last_probs = self.classify(last)[0]
            self.conv_probs.extend(last_probs for rows in self.plan.values() for _ in rows)
        if self.conv_probs:
            mean = np.mean(self.conv_probs, axis=0)
            summary.verdict = {
                "type": "clip",
                "protocol": "conv",
                "segments": len(self.conv_probs),
                "frames": summary.source_frames,
                "duration_s": round(summary.source_frames / self.fps, 4),
                "top_k": top_k(mean, spec.classes, self.cfg.top),
            }
            self.emit(summary.verdict)

    def run(self) -> InferSummary:
        """Stream the whole input; the flow backend is closed whatever happens."""
        cfg, summary = self.cfg, self.summary
        writer = None
        source = open_source(cfg.input, cfg.fps)
        info = source.info
        self.fps = summary.fps = info.fps
        count = min(info.frame_count, cfg.max_frames) if info.frame_count and cfg.max_frames else info.frame_count
        if info.kind == "file":
            self.expected, self.plan = _conv_plan(self.spec, count, self.step, cfg.segments)
        keep = False  # the annotated video is renamed into place only after a run that ended well
        try:
            with source:
                if cfg.output is not None:
                    writer = AnnotatedWriter(Path(cfg.output), info.fps)
                self._stream(source, writer)
            self._finish()
            keep = True
        except KeyboardInterrupt:
            keep = True  # Ctrl-C is how a camera run ends: the video up to here is whole
            raise
        finally:
            if writer is not None:
                writer.close(keep=keep)
                summary.output, summary.output_frames = str(writer.path), writer.frames
            if self.backend is not None:
                self.backend.close()
        if summary.source_frames and self.buf.count == 0:
            raise ConfigError(
                f"{cfg.input}: {summary.source_frames} frame(s) gave nothing to classify "
                "(a flow model needs at least 2 frames)"
            )
        summary.latency_ms = 1000.0 * float(np.mean(self.latencies)) if self.latencies else 0.0
        summary.seconds = time.perf_counter() - self.t0
        return summary


def infer(
    input: str | Path,
    model: str | Path,
    output: Path | None = None,
    stride: int | None = None,
    skip_frames: int | None = None,
    top: int = 3,
    fps: float | None = None,
    flow: str | None = None,
    segments: int = sampling.CONV_SEGMENTS,
    max_frames: int | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    providers: list[str] | None = None,
) -> InferSummary:
    """Classify a video (file, folder of frames, or camera) with a sliding window: an
    :class:`InferSession` of the :class:`~flowprep.serve.config.InferConfig` of these arguments
    (see there); ``on_result`` is called with each window's dict, then the verdict's.

    Raises:
        ConfigError / DecodeError / CheckpointError / Backend*Error: one-line problems.
    """
    cfg = InferConfig(input, model, output, stride, skip_frames, top, fps, flow, segments, max_frames, providers)
    return InferSession(cfg, on_result).run()

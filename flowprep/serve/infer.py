"""``flowprep infer``: stream a video, classify a sliding window, report JSON lines, annotate.

Positions are counted in *items*: dataset frames (RGB models) or flow images (flow and joint
models: item k is RGB frame k with the flow from frame k to k+1), after the dataset's
``frame_step``. A window is T items taken every ``step`` items (``step`` = the model's
``sample_rate``, or ``--skip-frames + 1`` as jetson-inference's actionNet); it spans
``(T - 1) * step + 1`` items. Windows start at 0, ``stride``, ``2 * stride``, ... and each is
classified as soon as its last item arrives; a stream shorter than one window gives one window that
loops over what there is (as :mod:`flowprep.train.sampling` does).

For a file whose frame count is known, the whole-clip verdict uses the evaluation "conv" protocol
of :func:`flowprep.train.sampling.conv_indices`: the softmax scores of one window centred on each of
10 equal segments, averaged. Those windows are classified on the fly too (the buffer always holds
the newest window span), so nothing is decoded twice.

Times are ``source frame number / fps``: window ``start_s`` is the time of its first source frame,
``end_s`` the end of its last one (``(last + 1) / fps``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from flowprep.errors import ConfigError
from flowprep.flow.encoding import FlowEncoding
from flowprep.limits import check_finite
from flowprep.serve.runner import ModelSpec, load_model, softmax, top_k
from flowprep.serve.stream import open_source
from flowprep.serve.window import FrameProcessor, WindowBuffer
from flowprep.train import sampling

log = logging.getLogger(__name__)


@dataclass
class InferSummary:
    """What a run did. ``latency_ms``: mean model time per window (batch 1)."""

    input: str
    model: str
    runner: str
    fps: float
    source_frames: int = 0
    windows: int = 0
    latency_ms: float = 0.0
    verdict: dict[str, Any] | None = None
    output: str | None = None
    output_frames: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _flow_backend(spec: ModelSpec, flow: str | None):
    from flowprep.flow.registry import create_backend

    if spec.flow is None or spec.encoding is None:
        raise ConfigError(f"model/modality mismatch: {spec.source} is a {spec.modality} model, but its record "
                          "has no flow backend/encoding (was it trained on an RGB-only dataset?)")
    if flow and flow != spec.flow.get("name"):
        backend = create_backend(flow)  # an unknown or unavailable name fails here, before the warning
        log.warning("computing flow with %s instead of the recorded %s: scores may drift", flow, spec.flow.get("name"))
        return backend
    from flowprep.flow.registry import BACKENDS

    name = spec.flow.get("name")
    if name not in BACKENDS:
        raise ConfigError(f"{spec.source} was trained on flow from {name!r}, which is not a flow backend "
                          f"here; pass --flow with one of {', '.join(sorted(BACKENDS))}")
    return create_backend(name, **(spec.flow.get("params") or {}))


def _conv_plan(spec: ModelSpec, source_frames: int | None, step: int, segments: int) -> tuple[int, dict[int, list[np.ndarray]]]:
    """``(expected items, {trigger item: [window indices, ...]})`` for the conv protocol."""
    if not source_frames:
        return 0, {}
    fs = int((spec.decode or {}).get("frame_step") or 1)
    n = -(-source_frames // fs) - (1 if "of" in spec.streams else 0)
    if n < 1:
        return 0, {}
    plan: dict[int, list[np.ndarray]] = {}
    for row in sampling.conv_indices(n, spec.frames, step, segments):
        plan.setdefault(int(row.max()), []).append(row)
    return n, plan


def infer(input: str | Path, model: str | Path, output: Path | None = None, stride: int | None = None,
          skip_frames: int | None = None, top: int = 3, fps: float | None = None, flow: str | None = None,
          segments: int = sampling.CONV_SEGMENTS, max_frames: int | None = None,
          on_result: Callable[[dict[str, Any]], None] | None = None,
          providers: list[str] | None = None) -> InferSummary:
    """Classify a video (file, folder of frames, or camera) with a sliding window.

    Args:
        input: see :func:`flowprep.serve.stream.open_source`.
        model: ``model.onnx`` from ``flowprep export`` or a ``.pt`` checkpoint.
        output: optional annotated video (same frames as the input, label and score drawn).
        stride: items between window starts (default half a window span, at least 1).
        skip_frames: items skipped between the frames of a window (default: the model's sample rate - 1).
        top: labels per result. fps: rate for folders/cameras (and override for files).
        flow: compute flow with this backend instead of the recorded one.
        segments: conv-protocol segments for the clip verdict.
        max_frames: stop after this many source frames (cameras, previews).
        on_result: called with each window's dict, then the verdict's (see ``docs/deploy.md``).

    Raises:
        ConfigError / DecodeError / CheckpointError / Backend*Error: one-line problems.
    """
    t0 = time.perf_counter()
    for name, v in (("--stride", stride), ("--top-k", top), ("--segments", segments), ("--max-frames", max_frames)):
        if v is not None and v < 1:
            raise ConfigError(f"{name} must be >= 1, got {v}")
    if skip_frames is not None and skip_frames < 0:
        raise ConfigError(f"--skip-frames must be >= 0, got {skip_frames}")
    if fps is not None:
        check_finite("--fps", fps, 0, 1000, lo_open=True)
    spec, runner = load_model(Path(model), providers)
    step = skip_frames + 1 if skip_frames is not None else max(1, spec.sample_rate)
    use_flow = "of" in spec.streams
    backend = _flow_backend(spec, flow) if use_flow else None
    enc = FlowEncoding.from_dict(spec.encoding) if use_flow else None
    proc = FrameProcessor(spec.input_size, "rgb" in spec.streams, use_flow, spec.decode, spec.rgb, backend, enc)
    buf = WindowBuffer(spec.frames, step, spec.arch, spec.streams)
    stride = stride or max(1, buf.span // 2)
    emit = on_result or (lambda d: None)
    writer = None
    source = open_source(input, fps)
    info = source.info
    summary = InferSummary(str(input), str(model), runner.describe(), info.fps)
    count = min(info.frame_count, max_frames) if info.frame_count and max_frames else info.frame_count
    expected, plan = _conv_plan(spec, count, step, segments) if info.kind == "file" else (0, {})
    conv_probs: list[np.ndarray] = []
    latencies: list[float] = []
    label_lines: list[str] = ["(filling the window)"]

    def classify(indices: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        inputs, src = buf.assemble(indices)
        t = time.perf_counter()
        probs = softmax(runner(inputs))[0]
        latencies.append(time.perf_counter() - t)
        return probs, src

    def window_result(indices: np.ndarray, probs: np.ndarray, src: tuple[int, int]) -> None:
        res = {"type": "window", "window": summary.windows, "start_item": int(indices[0]),
               "start_frame": src[0], "end_frame": src[1], "start_s": round(src[0] / info.fps, 4),
               "end_s": round((src[1] + 1) / info.fps, 4), "top_k": top_k(probs, spec.classes, top)}
        summary.windows += 1
        best = res["top_k"][0]
        label_lines[:] = [f"{best['label']} {best['score']:.2f}", f"{res['start_s']:.1f}-{res['end_s']:.1f}s"]
        emit(res)

    def on_item(e: int) -> None:
        offsets = np.arange(spec.frames, dtype=np.int64) * step
        done: dict[tuple[int, ...], np.ndarray] = {}
        first = e - (buf.span - 1)
        if first >= 0 and first % stride == 0:
            idx = first + offsets
            probs, src = classify(idx)
            done[tuple(idx.tolist())] = probs
            window_result(idx, probs, src)
        for row in plan.pop(e, []):
            key = tuple(row.tolist())
            conv_probs.append(done[key] if key in done else classify(row)[0])

    from flowprep.serve.annotate import AnnotatedWriter, draw_label

    try:
        with source:
            if output is not None:
                writer = AnnotatedWriter(Path(output), info.fps)
            for i, frame in enumerate(source):
                if max_frames is not None and i >= max_frames:
                    break
                summary.source_frames += 1
                item = proc.push(i, frame)
                if item is not None:
                    buf.push(item)
                    on_item(item.index)
                if writer is not None:
                    writer.write(draw_label(frame.copy(), label_lines))
        n = buf.count
        if n and n < buf.span and summary.windows == 0:
            # shorter than one window: one window looping over what there is
            idx = sampling.window(n, 0, spec.frames, step)
            probs, src = classify(idx)
            window_result(idx, probs, src)
        if plan and n:
            summary.notes.append(f"{expected} items were expected for the clip verdict but {n} came "
                                 f"(the container's frame count was wrong); "
                                 f"{sum(map(len, plan.values()))} conv window(s) use the last window instead")
            last = sampling.window(n, max(0, n - buf.span), spec.frames, step)
            last_probs = classify(last)[0]
            conv_probs.extend(last_probs for rows in plan.values() for _ in rows)
        if conv_probs:
            mean = np.mean(conv_probs, axis=0)
            summary.verdict = {"type": "clip", "protocol": "conv", "segments": len(conv_probs),
                               "frames": summary.source_frames, "duration_s": round(summary.source_frames / info.fps, 4),
                               "top_k": top_k(mean, spec.classes, top)}
            emit(summary.verdict)
    finally:
        if writer is not None:
            writer.close()
            summary.output, summary.output_frames = str(writer.path), writer.frames
        if backend is not None:
            backend.close()
    if summary.source_frames and buf.count == 0:
        raise ConfigError(f"{input}: {summary.source_frames} frame(s) gave nothing to classify "
                          "(a flow model needs at least 2 frames)")
    summary.latency_ms = 1000.0 * float(np.mean(latencies)) if latencies else 0.0
    summary.seconds = time.perf_counter() - t0
    return summary

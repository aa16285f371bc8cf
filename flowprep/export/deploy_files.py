"""The text files written beside ``model.onnx``: labels, Triton and DeepStream configs (the model
record is :mod:`flowprep.train.model_record`).

All writers are pure (values in, text out) so tests can parse the text back and compare it with
the model's shapes. DeepStream key names are those of the ``deepstream-3d-action-recognition`` sample
(``config_preprocess_3d_custom.txt``, ``config_infer_primary_3d_action.txt``,
``deepstream_action_recognition_config.txt``): its custom sequence pre-processing library
(``libnvds_custom_sequence_preprocess.so``) reads ``channel-scale-factors`` / ``channel-mean-offsets``
and computes ``(x - offset) * scale`` per channel, which with 1/127.5 and 127.5 is exactly TAO's
``(x / 255 - 0.5) / 0.5``. That sample takes one RGB tensor; flow and joint models get no DeepStream
files (see :data:`DEEPSTREAM_RGB_ONLY`).
"""

from __future__ import annotations

import re
from typing import Any

from flowprep.loader.spec import NORM_OFFSET, NORM_SCALE

DEEPSTREAM_RGB_ONLY = (
    "DeepStream's deepstream-3d-action-recognition sample feeds one RGB sequence "
    "tensor (input_rgb) built by its custom sequence pre-processing library; it "
    "does not compute optical flow, so flow and joint models get no DeepStream files"
)
DS_PREPROCESS_LIB = "/opt/nvidia/deepstream/deepstream/lib/libnvds_custom_sequence_preprocess.so"


def labels_text(classes: list[str]) -> str:
    """``labels.txt``: one class per line, line k = class index k (TAO's format). The names come from
    a checked checkpoint (:func:`~flowprep.layout.names.class_name_problem`: no line breaks or
    ``;``), so the file has exactly one line per output."""
    return "".join(f"{c}\n" for c in classes)


def nvinfer_labels_text(classes: list[str]) -> str:
    """nvinfer's classifier label file: one line per output layer, labels separated by ``;``."""
    return ";".join(classes) + "\n"


def triton_config(
    name: str,
    shapes: dict[str, tuple[int, ...]],
    num_classes: int,
    max_batch: int,
    platform: str = "onnxruntime_onnx",
    filename: str = "model.onnx",
) -> str:
    """Triton ``config.pbtxt`` for the ONNX model (``platform: "onnxruntime_onnx"``)."""
    lines = [
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {int(max_batch)}",
        f'default_model_filename: "{filename}"',
        "input [",
    ]
    items = []
    for n, s in shapes.items():
        items.append(f'  {{\n    name: "{n}"\n    data_type: TYPE_FP32\n    dims: [ {", ".join(map(str, s))} ]\n  }}')
    lines.append(",\n".join(items))
    lines += [
        "]",
        "output [",
        f'  {{\n    name: "fc_pred"\n    data_type: TYPE_FP32\n    dims: [ {int(num_classes)} ]\n  }}',
        "]",
        "dynamic_batching { }",
        "instance_group [",
        "  {",
        "    kind: KIND_AUTO",
        "    count: 1",
        "  }",
        "]",
    ]
    return "\n".join(lines) + "\n"


def _ini(sections: list[tuple[str, list[tuple[str, Any]]]], header: str) -> str:
    out = [f"# {line}" if line else "#" for line in header.splitlines()]
    for sec, items in sections:
        out += ["", f"[{sec}]"]
        for k, v in items:
            if k.startswith("#"):
                out.append(k)
            else:
                out.append(f"{k}={v}")
    return "\n".join(out) + "\n"


def deepstream_names(arch: str) -> dict[str, str]:
    """File names of the three DeepStream files (the sample's names, 2d or 3d)."""
    return {
        "preprocess": f"config_preprocess_{arch}_custom.txt",
        "infer": f"config_infer_primary_{arch}_action.txt",
        "app": "deepstream_action_recognition_config.txt",
    }


# Long on purpose: it fills one config template, kept whole so it reads like the file it writes.
def deepstream_preprocess(arch: str, frames: int, size: int, batch: int, subsample: int = 0, stride: int = 1) -> str:
    """nvdspreprocess config for the sample's custom sequence library (RGB models only).

    Args:
        arch: ``"2d"`` (shape ``B;3T;S;S``) or ``"3d"`` (``B;3;T;S;S``).
        frames: T. size: S. batch: B (sequences per inference, at most the engine's batch).
        subsample: frames skipped between two frames of a sequence (training's frame step - 1).
        stride: frames the window slides between two inferences.
    """
    shape = f"{batch};{3 * frames};{size};{size}" if arch == "2d" else f"{batch};3;{frames};{size};{size}"
    s = f"{NORM_SCALE:.9f}"
    o = f"{NORM_OFFSET:g}"
    return _ini(
        [
            (
                "property",
                [
                    ("enable", 1),
                    ("target-unique-ids", 1),
                    ("# 0=process on objects 1=process on frames", None),
                    ("process-on-frame", 1),
                    ("# batch;channel;sequence;height;width (3D) or batch;channel*sequence;height;width (2D)", None),
                    ("network-input-shape", shape),
                    ("# 0=RGB 1=BGR 2=GRAY", None),
                    ("network-color-format", 0),
                    ("# 0=NCHW 1=NHWC 2=CUSTOM (the sequence library lays out the tensor)", None),
                    ("network-input-order", 2),
                    ("# 0=FP32 (the ONNX/engine input is float32, fp16 engines included)", None),
                    ("tensor-data-type", 0),
                    ("tensor-name", "input_rgb"),
                    ("processing-width", size),
                    ("processing-height", size),
                    ("scaling-pool-memory-type", 0),
                    ("scaling-pool-compute-hw", 0),
                    ("# 1=bilinear: training frames were resized with area/bilinear filters", None),
                    ("scaling-filter", 1),
                    ("tensor-buf-pool-size", 8),
                    ("custom-lib-path", DS_PREPROCESS_LIB),
                    ("custom-tensor-preparation-function", "CustomSequenceTensorPreparation"),
                ],
            ),
            (
                "user-configs",
                [
                    ("# x_net = (x - offset) * scale = (x / 255 - 0.5) / 0.5, as in training", None),
                    ("channel-scale-factors", ";".join([s] * 3)),
                    ("channel-mean-offsets", ";".join([o] * 3)),
                    ("stride", int(stride)),
                    ("subsample", int(subsample)),
                ],
            ),
            (
                "group-0",
                [
                    ("src-ids", 0),
                    ("# 0: the whole frame (set 1 and roi-params-src-N for regions)", None),
                    ("process-on-roi", 0),
                ],
            ),
        ],
        f"flowprep: nvdspreprocess config for a {arch.upper()} RGB ActionRecognitionNet-style model\n"
        "(deepstream-3d-action-recognition sample's custom sequence pre-processing)",
    )


def deepstream_infer(onnx_file: str, labels_file: str, batch: int, fp16: bool, gpu: int = 0) -> str:
    """nvinfer config: builds the engine from the ONNX file and takes its input from nvdspreprocess."""
    mode = 2 if fp16 else 0
    prec = "fp16" if fp16 else "fp32"
    return _ini(
        [
            (
                "property",
                [
                    ("gpu-id", gpu),
                    ("onnx-file", onnx_file),
                    ("# nvinfer writes the engine it builds next to the ONNX file under this name", None),
                    ("model-engine-file", f"{onnx_file}_b{batch}_gpu{gpu}_{prec}.engine"),
                    ("labelfile-path", labels_file),
                    ("batch-size", batch),
                    ("process-mode", 1),
                    ("# the input tensor comes from nvdspreprocess's metadata", None),
                    ("input-tensor-from-meta", 1),
                    ("# 0=FP32 1=INT8 2=FP16", None),
                    ("network-mode", mode),
                    ("gie-unique-id", 1),
                    ("# 1=classifier", None),
                    ("network-type", 1),
                    ("output-blob-names", "fc_pred"),
                    ("classifier-threshold", 0.0),
                    ("# the application parses fc_pred from the tensor metadata", None),
                    ("output-tensor-meta", 1),
                    ("tensor-meta-pool-size", 8),
                ],
            )
        ],
        "flowprep: nvinfer config (deepstream-3d-action-recognition sample layout)",
    )


def deepstream_app(arch: str, uri: str = "file:///path/to/video.mp4") -> str:
    """``deepstream_action_recognition_config.txt`` for the sample app (``-c``)."""
    n = deepstream_names(arch)
    return _ini(
        [
            (
                "action-recognition",
                [
                    ("uri-list", uri),
                    ("display-sync", 1),
                    ("# 0=display 1=fakesink", None),
                    ("fakesink", 1),
                    ("preprocess-config", n["preprocess"]),
                    ("infer-config", n["infer"]),
                    ("muxer-height", 720),
                    ("muxer-width", 1280),
                    ("muxer-batch-timeout", 40000),
                    ("tiler-height", 720),
                    ("tiler-width", 1280),
                    ("debug", 0),
                    ("enable-fps", 1),
                ],
            )
        ],
        "flowprep: deepstream-3d-action-recognition app config\n"
        "run: deepstream-3d-action-recognition -c deepstream_action_recognition_config.txt\n"
        "NOTE: the sample app's C++ has its class names compiled in (kActioClasseLabels in\n"
        "deepstream_3d_action_recognition.cpp); replace them with labels.txt's and rebuild.",
    )


def parse_ini(text: str) -> dict[str, dict[str, str]]:
    """Parse a DeepStream key-file (``[section]`` / ``key=value``, ``#`` comments) into nested dicts."""
    out: dict[str, dict[str, str]] = {}
    sec = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            sec = out.setdefault(line[1:-1], {})
        elif "=" in line and sec is not None:
            k, v = line.split("=", 1)
            sec[k.strip()] = v.strip()
    return out


_TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*")|([\[\]{}:,])|([^\s\[\]{}:,"#]+))')


def parse_pbtxt(text: str) -> dict[str, Any]:
    """Parse the protobuf text format subset Triton configs use into dicts/lists.

    Repeated fields (``input [ {...}, {...} ]`` or repeated ``input { }``) become lists; a message
    is a dict; scalars stay strings without quotes (numbers as ``int``/``float`` where they parse).
    """
    toks = [
        m.group(2) or m.group(3) or m.group(4)
        for m in _TOKEN.finditer(text)
        if not m.group(1) and (m.group(2) or m.group(3) or m.group(4))
    ]
    pos = 0

    def scalar(t: str) -> Any:
        if t.startswith('"'):
            return t[1:-1]
        for cast in (int, float):
            try:
                return cast(t)
            except ValueError:
                pass
        return t

    def value() -> Any:
        nonlocal pos
        t = toks[pos]
        pos += 1
        if t == "{":
            return message("}")
        if t == "[":
            items = []
            while toks[pos] != "]":
                if toks[pos] == ",":
                    pos += 1
                    continue
                items.append(value())
            pos += 1
            return items
        return scalar(t)

    def message(end: str | None) -> dict[str, Any]:
        nonlocal pos
        msg: dict[str, Any] = {}
        while pos < len(toks) and toks[pos] != end:
            key = toks[pos]
            pos += 1
            if toks[pos] == ":":
                pos += 1
            v = value()
            if key in msg:
                prev = msg[key] if isinstance(msg[key], list) else [msg[key]]
                msg[key] = prev + (v if isinstance(v, list) else [v])
            else:
                msg[key] = v
        pos += 1
        return msg

    return message(None)

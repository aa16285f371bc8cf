"""What a flowprep model is, without torch: architectures, input streams, input names and shapes, normalisation.

Light code (the CLI, the inference runner, the export configs) imports these constants from here
instead of copying them, so that it does not import torch. :mod:`flowprep.train.models` builds the
networks that match them.

Two words that are easy to mix up:

- the *dataset's modality* (``rgb``, ``flow``, ``both``: what ``flowprep build`` wrote), see
  :data:`flowprep.layout.sections.DATASET_MODALITIES`;
- the *model's input streams* (``rgb``, ``of`` for optical flow, ``joint`` for both), :data:`STREAMS`
  here (the CLI option keeps its name ``--modality``, as does the checkpoint key ``modality``).
"""

from __future__ import annotations

from flowprep.errors import ConfigError

#: ``2d``: frames stacked on channels; ``3d``: a time axis
ARCHS = ("2d", "3d")
#: a model's input streams (``--modality`` of train/evaluate, ``modality`` of a checkpoint)
STREAMS = ("rgb", "of", "joint")
#: the input tensors of each choice of :data:`STREAMS`, in forward-argument order
STREAM_INPUTS: dict[str, tuple[str, ...]] = {"rgb": ("rgb",), "of": ("of",), "joint": ("rgb", "of")}
#: channels per frame of an input: RGB, and flow u then v
CHANNELS = {"rgb": 3, "of": 2}
#: ONNX / TAO input names
INPUT_NAMES = {"rgb": "input_rgb", "of": "input_of"}
#: ONNX / TAO output name: logits ``(B, num_classes)``
OUTPUT_NAME = "fc_pred"
#: input normalisation ``(x - NORM_OFFSET) * NORM_SCALE`` = TAO's ``(x / 255 - 0.5) / 0.5``, range [-1, 1]
NORM_SCALE = 1.0 / 127.5
NORM_OFFSET = 127.5
#: the evaluation (centre) crop's side as a fraction of the short side: 224 of 256
CROP_FRACTION = 0.875
#: training crops (validation and inference: ``center``)
CROPS = ("random", "multiscale", "center", "full")
OPTIMIZERS = ("sgd", "adamw")
DEVICES = ("auto", "cuda", "cpu")
#: evaluation protocols: T middle frames, 10 segments averaged, or both
EVAL_MODES = ("center", "conv", "all")


#: ranges of the model-shape options, for ``flowprep train`` and for every record read back
#: (checkpoint, ``flowprep_model.json``): a model none of them could have made is refused
FRAMES_RANGE = (1, 4096)
SAMPLE_RATE_RANGE = (1, 1000)
INPUT_SIZE_RANGE = (32, 1024)  # ResNet downsamples 32x
#: the most input values one stream of one sample may have, frames x size x size (2^26: e.g. 64
#: frames at 1024 px, 1024 at 256 px; the default 32 at 224 px is 1.6 M). A float32 RGB window is
#: then at most 0.8 GB; 4096 frames at 1024 px, each in range alone, would be 52 GB
MAX_WINDOW_VALUES = 1 << 26
#: the most values of the frames a window spans, ((frames - 1) x sample_rate + 1) x size x size
#: (2^28): ``flowprep infer`` keeps that many items of size x size x 5 bytes (1.3 GB at most)
MAX_SPAN_VALUES = 1 << 28


def input_budget_problem(frames: int, sample_rate: int, input_size: int) -> str | None:
    """Why a model of these options would need too much memory per sample, or None.

    Each option in its range is not enough: their product bounds what training allocates per
    sample and what inference buffers (see :data:`MAX_WINDOW_VALUES`, :data:`MAX_SPAN_VALUES`).
    """
    pixels = input_size * input_size
    if frames * pixels > MAX_WINDOW_VALUES:
        return (
            f"{frames} frames of {input_size}x{input_size} are {frames * pixels:,} values a window, over the "
            f"limit of {MAX_WINDOW_VALUES:,} (fewer frames or a smaller input size)"
        )
    span = (frames - 1) * sample_rate + 1
    if span * pixels > MAX_SPAN_VALUES:
        return (
            f"a window of {frames} frames every {sample_rate} spans {span} frames of {input_size}x{input_size}, "
            f"{span * pixels:,} values, over the limit of {MAX_SPAN_VALUES:,} (a smaller sample rate)"
        )
    return None


def check_model(arch: str, modality: str) -> None:
    """Raise :class:`ConfigError` unless ``arch`` is in :data:`ARCHS` and ``modality`` in :data:`STREAMS`."""
    if arch not in ARCHS:
        raise ConfigError(f"architecture must be one of {ARCHS}, got {arch!r}")
    if modality not in STREAMS:
        raise ConfigError(f"modality must be one of {STREAMS}, got {modality!r}")


def streams(modality: str) -> tuple[str, ...]:
    """The input streams of a model: ``("rgb",)``, ``("of",)`` or ``("rgb", "of")`` for ``joint``."""
    return STREAM_INPUTS[modality]


def stream_channels(arch: str, stream: str, frames: int) -> int:
    """Input channels of one stream (``"rgb"`` or ``"of"``): C for 3D, C*T for 2D."""
    return CHANNELS[stream] * (frames if arch == "2d" else 1)


def input_shapes(arch: str, modality: str, frames: int = 32, size: int = 224) -> dict[str, tuple[int, ...]]:
    """Input name -> shape without batch, in forward-argument order.

    e.g. ``input_shapes("2d", "of")`` -> ``{"input_of": (64, 224, 224)}`` (2D: ``(C*T, S, S)``, 3D:
    ``(C, T, S, S)``); names are TAO's.
    """
    check_model(arch, modality)
    out: dict[str, tuple[int, ...]] = {}
    for s in streams(modality):
        c = CHANNELS[s]
        out[INPUT_NAMES[s]] = (c * frames, size, size) if arch == "2d" else (c, frames, size, size)
    return out

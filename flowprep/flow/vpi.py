"""NVIDIA VPI dense optical flow on Jetson: the NVENC engine on Xavier, the OFA engine on Orin.

EXPERIMENTAL, not yet run on hardware. ``import vpi`` must be JetPack's VPI (apt): ``python3-vpi3``
on Orin (JetPack 6), ``python3-vpi2`` on Xavier (JetPack 5: VPI 3 supports Orin only and VPI 4
removed the NVENC backend); the unrelated PyPI package also called ``vpi`` is detected (it has no
``optflow_dense``) and refused. The engine is checked when the backend starts: NVENC must exist in
the installed VPI, and OFA must run a tiny dense-flow call (NVIDIA documents OFA dense flow on
Jetson AGX Orin; other Orin modules are detected rather than assumed). VPI has no dense optical flow
on x86 machines with discrete GPUs: use ``--flow nvof`` there.

Pipeline per pair: gray ``uint8`` frames are padded at the right/bottom to the engine's size
multiple, wrapped with ``vpi.asimage``, converted to the engine's input format
(:data:`INPUT_CONVERSIONS`), ``vpi.optflow_dense(prev, cur)`` gives S10.5 vectors on a 4x4 grid,
which are turned into pixels and upsampled to full resolution with the same pure functions as NVOF.
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flowprep.errors import BackendNotInstalledError, BackendUnavailableError
from flowprep.flow.base import FlowBackend, check_pair
from flowprep.flow.nvof import s10_5_to_float, upsample_grid_flow
from flowprep.flow.params import Param

log = logging.getLogger(__name__)

INSTALL_HINT = "JetPack's apt package `python3-vpi3` (`sudo apt install python3-vpi3`), never the PyPI `vpi`"
#: Xavier's dense flow runs on NVENC, which only VPI 2.x (JetPack 5) offers there
XAVIER_HINT = (
    "Xavier's NVENC dense flow needs VPI 2.x from JetPack 5 (`sudo apt install python3-vpi2`): "
    "VPI 3 supports Orin only and VPI 4 removed the NVENC backend"
)
QUALITIES = ("low", "medium", "high")
#: VPI's dense flow always outputs one vector per 4x4 block
GRID = 4
#: ``(format, conversion backend)`` steps from the gray U8 frame to what each engine takes.
#: NVENC (Xavier) wants block-linear NV12 with full range: CUDA makes pitch-linear NV12_ER, VIC lays
#: it out block-linear (no single backend does both). OFA (Orin) takes luma only; we give it Y8_ER
#: and let VIC make the block-linear copy. The OFA formats are read from VPI's documentation and
#: samples, not verified on an Orin yet.
INPUT_CONVERSIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "nvenc": (("NV12_ER", "CUDA"), ("NV12_ER_BL", "VIC")),
    "ofa": (("Y8_ER", "CUDA"), ("Y8_ER_BL", "VIC")),
}
#: input width/height multiples the engines need (NVENC works on 16-pixel-wide macroblocks)
SIZE_MULTIPLE: dict[str, tuple[int, int]] = {"nvenc": (16, 4), "ofa": (4, 4)}


def engine_for_model(model: str) -> str | None:
    """The dense-flow engine family of a Jetson board from its device-tree model string, or None.

    Only the family: whether the installed VPI can really use it is checked by :func:`check_environment`.
    """
    m = model.lower()
    if "orin" in m:
        return "ofa"
    if "xavier" in m or "jetson-agx" in m:
        return "nvenc"
    return None


def padded_size(width: int, height: int, engine: str) -> tuple[int, int]:
    """``(width, height)`` rounded up to the engine's multiples."""
    mx, my = SIZE_MULTIPLE[engine]
    return -(-width // mx) * mx, -(-height // my) * my


def pad_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Replicate the last column/row of ``uint8`` ``(h, w)`` ``frame`` up to ``(height, width)``."""
    h, w = frame.shape
    if (h, w) == (height, width):
        return np.ascontiguousarray(frame)
    return np.pad(frame, ((0, height - h), (0, width - w)), mode="edge")


def vectors_to_flow(vectors: np.ndarray, height: int, width: int) -> np.ndarray:
    """VPI's ``int16`` ``(H'/4, W'/4, 2)`` S10.5 output (padded size ``H' x W'``) to ``float32``
    ``(height, width, 2)`` pixels."""
    gh, gw = vectors.shape[:2]
    full = upsample_grid_flow(s10_5_to_float(vectors), GRID, gh * GRID, gw * GRID)
    return np.ascontiguousarray(full[:height, :width])


def _device_model() -> str:
    try:
        return Path("/proc/device-tree/model").read_text(errors="replace").strip("\0\n ")
    except OSError:
        return ""


def _import_vpi(hint: str = INSTALL_HINT) -> Any:
    """JetPack's ``vpi`` module, or :class:`BackendNotInstalledError` saying what is wrong."""
    try:
        import vpi
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"NVIDIA VPI's Python module is not installed ({exc}); on a Jetson install {hint}"
        ) from exc
    if not hasattr(vpi, "optflow_dense"):
        where = getattr(vpi, "__file__", "?")
        raise BackendNotInstalledError(
            f"the `vpi` module found at {where} is not NVIDIA VPI (it has no optflow_dense): it is probably the "
            f"unrelated PyPI package `vpi`; `pip uninstall vpi` and install {hint}"
        )
    return vpi


def to_engine_format(vpi: Any, frame: np.ndarray, engine: str) -> Any:
    """Gray ``uint8`` ``(h, w)`` frame to a VPI image in the engine's input format (:data:`INPUT_CONVERSIONS`)."""
    img = vpi.asimage(frame)  # 2-D uint8 -> U8
    for fmt, backend in INPUT_CONVERSIONS[engine]:
        img = img.convert(getattr(vpi.Format, fmt), backend=getattr(vpi.Backend, backend))
    return img


def _check_engine(vpi: Any, engine: str, model: str) -> None:
    """Raise :class:`BackendUnavailableError` unless the installed VPI can run ``engine`` here."""
    major = int(str(getattr(vpi, "__version__", "0")).split(".")[0] or 0)
    if engine == "nvenc":
        if not hasattr(vpi.Backend, "NVENC") or major >= 3:
            raise BackendUnavailableError(
                f"{model}: VPI {getattr(vpi, '__version__', '?')} has no NVENC dense flow for this board; {XAVIER_HINT}"
            )
        return
    if not hasattr(vpi.Backend, "OFA"):
        raise BackendUnavailableError("this VPI has no OFA backend (Orin needs VPI 2.3 or newer, JetPack 5.1.2+)")
    # run-time detection: a tiny dense-flow call on the OFA engine (not every Orin module is documented to have it)
    w, h = padded_size(64, 64, "ofa")
    frame = np.zeros((h, w), np.uint8)
    try:
        out = vpi.optflow_dense(
            to_engine_format(vpi, frame, "ofa"),
            to_engine_format(vpi, frame, "ofa"),
            backend=vpi.Backend.OFA,
            quality=vpi.OptFlowQuality.LOW,
        )
        # the call only submits to VPI's stream; an error while running surfaces when the result is locked
        with out.rlock_cpu():
            pass
    except Exception as exc:  # VPI raises its own error types; any failure means "no OFA dense flow here"
        raise BackendUnavailableError(
            f"{model}: VPI's OFA engine cannot run dense optical flow here ({exc}); "
            "NVIDIA documents OFA dense flow on Jetson AGX Orin"
        ) from exc


def check_environment(machine: str | None = None, model: str | None = None) -> tuple[Any, str, str]:
    """``(vpi module, engine, board model)``, or an error with the fix."""
    machine = platform.machine() if machine is None else machine
    model = _device_model() if model is None else model
    if machine not in ("aarch64", "arm64") or ("jetson" not in model.lower() and engine_for_model(model) is None):
        raise BackendUnavailableError(
            f"VPI dense optical flow runs only on Jetson Xavier/Orin (this is {machine or 'unknown'}"
            f"{', ' + model if model else ''}); VPI has no dense flow on x86 or discrete GPUs: use --flow nvof there"
        )
    engine = engine_for_model(model)
    if engine is None:
        raise BackendUnavailableError(f"{model}: VPI dense optical flow needs a Jetson Xavier (NVENC) or Orin (OFA)")
    vpi = _import_vpi(XAVIER_HINT if engine == "nvenc" else INSTALL_HINT)
    _check_engine(vpi, engine, model)
    return vpi, engine, model


class VpiBackend(FlowBackend):
    """VPI dense flow. EXPERIMENTAL: not yet run on hardware.

    Args:
        quality: ``"low"`` (fastest), ``"medium"`` or ``"high"`` (VPI's OptFlowQuality).
        gpu: accepted for uniformity with ``--gpus``; a Jetson has one integrated GPU, so only 0.
    """

    name = "vpi"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("quality", str, "high", "VPI's OptFlowQuality: low is the fastest", choices=QUALITIES),
        Param("gpu", int, 0, "accepted for --gpus; a Jetson has one GPU", choices=(0,)),
    )

    def __init__(self, *, quality: str = "high", gpu: int = 0) -> None:
        self.quality = quality
        self._vpi, self.engine, self._model = check_environment()

    @classmethod
    def probe(cls) -> str:
        _, engine, model = check_environment()
        return f"{model} ({engine.upper()})"

    def _to_engine_format(self, frame: np.ndarray) -> Any:
        return to_engine_format(self._vpi, frame, self.engine)

    def calc(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        check_pair(prev, nxt)
        vpi = self._vpi
        h, w = prev.shape
        pw, ph = padded_size(w, h, self.engine)
        a = self._to_engine_format(pad_frame(prev, pw, ph))
        b = self._to_engine_format(pad_frame(nxt, pw, ph))
        mv = vpi.optflow_dense(
            a,
            b,
            backend=getattr(vpi.Backend, self.engine.upper()),
            quality=getattr(vpi.OptFlowQuality, self.quality.upper()),
        )
        with mv.rlock_cpu() as data:
            vectors = np.array(data, dtype=np.int16, copy=True)
        return vectors_to_flow(vectors.reshape(vectors.shape[0], vectors.shape[1], 2), h, w)

    def params(self) -> dict[str, Any]:
        # constructor arguments only (the base-class contract: build workers re-create the backend
        # from them); what the hardware does is in describe()
        return {"quality": self.quality}

    def describe(self) -> dict[str, Any]:
        """The base record plus ``engine`` (nvenc or ofa) and ``grid`` (px per vector side)."""
        return {**super().describe(), "engine": self.engine, "grid": GRID}

    def device(self) -> str:
        return f"{self._model} ({self.engine.upper()})"

"""NVIDIA Optical Flow hardware engine (Turing and newer) through the driver's ``libnvidia-opticalflow.so.1``.

EXPERIMENTAL, not yet run on hardware. Two paths:

* ``path="ctypes"``: the C interface bound with ctypes (:mod:`flowprep.flow.nvof_api`), one driver
  session per frame size (:mod:`flowprep.flow.nvof_session`), CUDA context and pitched copies
  through NVIDIA's ``cuda-bindings`` (``pip install 'flowprep[nvof]'``). No custom OpenCV build
  needed; every NVIDIA driver ships the library (containers need ``NVIDIA_DRIVER_CAPABILITIES`` to
  include ``video`` for it to be mounted).
* ``path="opencv"``: ``cv2.cuda.NvidiaOpticalFlow_2_0`` when OpenCV was built with CUDA.

``path="auto"`` takes ctypes when its pieces are present, else OpenCV's. The engine returns S10.5
vectors on a 1x1, 2x2 or 4x4 grid (1 and 2 from Ampere on); they are converted to pixels
(:func:`s10_5_to_float`) and bilinearly upsampled to full resolution (:func:`upsample_grid_flow`).
The vectors are already in full-resolution pixels, so upsampling does not scale them.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any, ClassVar

import numpy as np

from flowprep.errors import BackendNotInstalledError, BackendUnavailableError
from flowprep.flow import nvof_api as api
from flowprep.flow.base import FlowBackend, check_pair
from flowprep.flow.nvof_session import Session, choose_grid, cuda_result
from flowprep.flow.params import Param

log = logging.getLogger(__name__)

INSTALL_HINT = "`pip install 'flowprep[nvof]'` (NVIDIA's cuda-bindings)"
CONTAINER_HINT = (
    "in a container, start it with NVIDIA_DRIVER_CAPABILITIES=compute,utility,video "
    "(or =all) so that the runtime mounts libnvidia-opticalflow.so.1"
)
#: GPUs built on TU117 have no optical-flow engine although they are Turing (compute 7.5)
TU117_NAMES = ("GTX 1650", "GTX 1630", "T400", "T600", "T1000", "T1200", "MX450", "MX550")
MIN_COMPUTE_CAPABILITY = (7, 5)
PATHS = ("auto", "ctypes", "opencv")


# ------------------------------------------------------------------------------ pure conversions


def s10_5_to_float(vectors: np.ndarray) -> np.ndarray:
    """S10.5 fixed point (``int16``, 5 fractional bits) to pixels: ``value / 32``.

    Args:
        vectors: ``int16`` ``(h, w, 2)`` (x then y), as ``NV_OF_FLOW_VECTOR`` or VPI's 2S16 output.

    Returns:
        ``float32`` ``(h, w, 2)`` pixels, range -1024 .. 1023.97.
    """
    if vectors.dtype != np.int16:
        raise ValueError(f"S10.5 vectors must be int16, got {vectors.dtype}")
    return vectors.astype(np.float32) * np.float32(1.0 / 32.0)


def upsample_grid_flow(flow: np.ndarray, grid: int, height: int, width: int) -> np.ndarray:
    """Flow on a ``grid x grid`` block grid to one vector per pixel.

    Vector ``(i, j)`` describes the block of pixels ``[i*grid, (i+1)*grid) x [j*grid, (j+1)*grid)``,
    i.e. it sits at the block's centre; bilinear interpolation between block centres (edge blocks
    extend to the border). Values are *not* scaled: hardware vectors are already in pixels of the
    full-resolution image.

    Args:
        flow: ``float32`` ``(ceil(height/grid), ceil(width/grid), 2)``, pixels.
        grid: 1, 2 or 4.
        height, width: full resolution.

    Returns:
        ``float32`` ``(height, width, 2)``.
    """
    import cv2

    gh, gw = flow.shape[:2]
    if (gh, gw) != api.output_grid_shape(width, height, grid):
        raise ValueError(f"grid flow {flow.shape[:2]} does not match {width}x{height} on grid {grid}")
    if grid == 1:
        return np.ascontiguousarray(flow, dtype=np.float32)
    # cv2.resize maps pixel centres to pixel centres: output pixel x samples input (x + 0.5)/grid - 0.5,
    # exactly the block-centre convention; the padded blocks past the edge are cropped off.
    up = cv2.resize(
        np.ascontiguousarray(flow, dtype=np.float32), (gw * grid, gh * grid), interpolation=cv2.INTER_LINEAR
    )
    return np.ascontiguousarray(up[:height, :width])


def is_tu117(name: str) -> bool:
    """True for GPU names of the TU117 chip (no optical-flow engine). GTX 1650 SUPER is TU116 and has one."""
    return any(n in name for n in TU117_NAMES) and "SUPER" not in name


def check_device(name: str, capability: tuple[int, int]) -> None:
    """Raise :class:`BackendUnavailableError` for a GPU without an optical-flow engine."""
    if tuple(capability) < MIN_COMPUTE_CAPABILITY:
        raise BackendUnavailableError(
            f"{name} (compute capability {capability[0]}.{capability[1]}) has no optical-flow engine: NVOF needs "
            "Turing or newer (compute 7.5+: T4, RTX 20xx+, A100, A10, L4, H100, ...); use --flow tvl1-fast on the CPU"
            + (" or --flow vpi on a Jetson" if capability == (7, 2) or capability == (8, 7) else "")
        )
    if is_tu117(name):
        raise BackendUnavailableError(
            f"{name} is a TU117 GPU, which has no optical-flow engine; use another GPU or --flow tvl1-fast"
        )


# -------------------------------------------------------------------------------- environment


def _load_library(name: str) -> ctypes.CDLL:
    """``ctypes.CDLL(name)``; a seam for tests."""
    return ctypes.CDLL(name)


def import_cuda_driver() -> Any:
    """NVIDIA's cuda-bindings driver module: ``cuda.bindings.driver`` (12.6+) or the older ``cuda.cuda``."""
    try:
        from cuda.bindings import driver
    except ImportError:
        try:
            from cuda import cuda as driver  # cuda-python < 12.6
        except ImportError as exc:
            raise BackendNotInstalledError(
                f"nvof needs NVIDIA's cuda-bindings for the CUDA context and copies ({exc}); install {INSTALL_HINT}"
            ) from exc
    return driver


def _opencv_nvof() -> Any | None:
    """``cv2.cuda.NvidiaOpticalFlow_2_0`` when OpenCV has CUDA and sees a device, else None."""
    try:
        import cv2

        if cv2.cuda.getCudaEnabledDeviceCount() > 0 and hasattr(cv2.cuda, "NvidiaOpticalFlow_2_0"):
            return cv2.cuda.NvidiaOpticalFlow_2_0
    except (ImportError, AttributeError, Exception):  # cv2.error when the CUDA runtime is broken
        return None
    return None


def _opencv_compute_capability(gpu: int) -> tuple[int, int]:
    """``(major, minor)`` of CUDA device ``gpu`` as OpenCV sees it; ``(0, 0)`` when unknown."""
    try:
        import cv2
    except ImportError:
        return 0, 0
    try:
        info = cv2.cuda.DeviceInfo(gpu)
        return int(info.majorVersion()), int(info.minorVersion())
    except (AttributeError, cv2.error):  # no CUDA in this OpenCV build, or no such device
        return 0, 0


def expected_hardware_grid(grid: int, capability: tuple[int, int]) -> int:
    """The grid the engine runs on for a requested ``grid``, from the GPU generation.

    Both the ctypes path and OpenCV's ``NvidiaOpticalFlow_2_0`` take the finest supported grid
    coarser than an unsupported request (:func:`choose_grid`); Turing (compute 7.x) supports only 4,
    Ampere and newer 1, 2 and 4. The ctypes path replaces this by the engine's caps once a session
    opens; OpenCV does not expose its choice, so this is what it records. Unknown capability
    ``(0, 0)`` is taken as Turing, the conservative guess.
    """
    return choose_grid(grid, [4] if tuple(capability) < (8, 0) else [1, 2, 4])


def opencv_vectors_to_hardware_grid(vectors: np.ndarray, grid: int, hw_grid: int) -> np.ndarray:
    """Undo OpenCV's nearest-neighbour fill of the requested grid: the hardware-grid vectors.

    OpenCV replicates each hardware vector over ``hw_grid / grid`` cells per side, so every
    ``s``-th cell is the hardware vector; from there the flow is upsampled exactly like the ctypes
    path (bilinear between block centres), so both paths give the same flow.

    Args:
        vectors: ``int16`` ``(ceil(h/grid), ceil(w/grid), 2)`` as ``calc`` returned them.
    Returns:
        ``int16`` ``(ceil(h/hw_grid), ceil(w/hw_grid), 2)``.
    """
    step = hw_grid // grid
    return np.ascontiguousarray(vectors[::step, ::step]) if step > 1 else vectors


def device_info(driver: Any, gpu: int) -> tuple[Any, str, tuple[int, int]]:
    """``(CUdevice, name, (major, minor))`` for ordinal ``gpu``."""
    cuda_result(driver, driver.cuInit(0), "cuInit")
    count = cuda_result(driver, driver.cuDeviceGetCount(), "cuDeviceGetCount")
    if count == 0:
        raise BackendUnavailableError(
            "the NVIDIA driver sees no GPU (check CUDA_VISIBLE_DEVICES / the container's --gpus)"
        )
    if not 0 <= gpu < count:
        raise BackendUnavailableError(f"GPU {gpu} does not exist: {count} visible (ordinals 0..{count - 1})")
    dev = cuda_result(driver, driver.cuDeviceGet(gpu), "cuDeviceGet")
    raw = cuda_result(driver, driver.cuDeviceGetName(256, dev), "cuDeviceGetName")
    name = raw.split(b"\0", 1)[0].decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    attr = driver.CUdevice_attribute
    major = cuda_result(
        driver, driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "attr"
    )
    minor = cuda_result(
        driver, driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "attr"
    )
    return dev, name, (int(major), int(minor))


def check_environment(gpu: int = 0) -> tuple[Any, ctypes.CDLL, str, tuple[int, int]]:
    """The ordered checks behind :meth:`NvofBackend.probe` for the ctypes path.

    Returns:
        ``(cuda driver module, optical-flow library, GPU name, compute capability)``.
    """
    try:
        _load_library(api.CUDA_DRIVER_LIBRARY)
    except OSError as exc:
        raise BackendUnavailableError(
            f"no NVIDIA driver here ({api.CUDA_DRIVER_LIBRARY} not found: {exc}); nvof needs an NVIDIA GPU and driver"
        ) from exc
    try:
        oflib = _load_library(api.LIBRARY)
    except OSError as exc:
        raise BackendUnavailableError(
            f"the NVIDIA driver is present but {api.LIBRARY} is not ({exc}); {CONTAINER_HINT}; "
            "outside containers install the full driver (e.g. the libnvidia-compute/-encode packages)"
        ) from exc
    driver = import_cuda_driver()
    _, name, cc = device_info(driver, gpu)
    check_device(name, cc)
    return driver, oflib, name, cc


# ------------------------------------------------------------------------------------- backend


class NvofBackend(FlowBackend):
    """NVIDIA Optical Flow engine. EXPERIMENTAL: not yet run on hardware.

    Args:
        preset: ``"slow"`` (best), ``"medium"`` or ``"fast"`` (NV_OF_PERF_LEVEL).
        grid: output grid 1, 2 or 4 (pixels per vector side); 1 and 2 need Ampere or newer. If the
            GPU lacks the grid asked for, the finest supported coarser one is used and recorded.
        gpu: CUDA device ordinal (after ``CUDA_VISIBLE_DEVICES``); the build gives each worker one.
        path: ``"auto"``, ``"ctypes"`` or ``"opencv"`` (see the module docstring).
    """

    name = "nvof"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("preset", str, "slow", "NV_OF_PERF_LEVEL: slow is the most accurate", choices=tuple(api.PERF_LEVELS)),
        Param("grid", int, 1, "px per vector side; the GPU may use a coarser one", choices=tuple(api.GRID_SIZES)),
        Param("gpu", int, 0, "CUDA device ordinal (the build sets it per worker from --gpus)", 0, 1023),
        Param("path", str, "auto", "ctypes (the driver's C API), opencv (cv2.cuda) or auto", choices=PATHS),
    )

    def __init__(self, *, preset: str = "slow", grid: int = 1, gpu: int = 0, path: str = "auto") -> None:
        self.preset, self.grid, self.gpu = preset, int(grid), int(gpu)
        self._path = self._choose_path(path)
        self._session: Session | None = None
        self._cv: Any = None  # OpenCV's NvidiaOpticalFlow_2_0 instance (path "opencv")
        self._cv_cls: Any = _opencv_nvof() if self._path == "opencv" else None
        self._shape: tuple[int, int] | None = None
        if self._path == "ctypes":
            self._driver, self._oflib, self._gpu_name, self._cc = check_environment(self.gpu)
        else:
            self._gpu_name, self._cc = "", _opencv_compute_capability(self.gpu)
        self._hw_grid = expected_hardware_grid(self.grid, self._cc)

    def _choose_path(self, path: str) -> str:
        if path == "opencv":
            if _opencv_nvof() is None:
                raise BackendUnavailableError(
                    "OpenCV here has no CUDA device or no cv2.cuda.NvidiaOpticalFlow_2_0; "
                    "use path=ctypes with " + INSTALL_HINT
                )
            return "opencv"
        if path == "ctypes":
            return "ctypes"
        try:
            check_environment(self.gpu)
            return "ctypes"
        except BackendNotInstalledError:
            if _opencv_nvof() is not None:
                log.info("nvof: cuda-bindings missing, using OpenCV's NvidiaOpticalFlow_2_0")
                return "opencv"
            raise

    @classmethod
    def probe(cls, gpu: int = 0) -> str:
        """Cheap check that NVOF can run here; returns the device description or raises with the fix."""
        try:
            _, _, name, cc = check_environment(gpu)
        except BackendNotInstalledError:
            if _opencv_nvof() is not None:
                return f"cuda:{gpu} (via OpenCV NvidiaOpticalFlow_2_0)"
            raise
        return f"cuda:{gpu} ({name}, sm_{cc[0]}{cc[1]})"

    def calc(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        check_pair(prev, nxt)
        h, w = prev.shape
        if self._shape != (h, w):
            self.close()
            self._shape = (h, w)
            if self._path == "ctypes":
                session = Session(self._driver, self._oflib, self.gpu, w, h, self.preset, self.grid)
                self._session, self._hw_grid = session, session.grid
            else:
                self._cv = self._cv_cls.create(
                    (w, h),
                    perfPreset=api.PERF_LEVELS[self.preset],
                    outputGridSize=self.grid,
                    hintGridSize=self.grid,
                    enableTemporalHints=False,
                    enableExternalHints=False,
                    enableCostBuffer=False,
                    gpuId=self.gpu,
                )
                self._hw_grid = expected_hardware_grid(self.grid, self._cc)
        if self._session is not None:  # the ctypes path (opened above)
            vectors = self._session.run(prev, nxt)
        else:
            out = self._cv.calc(prev, nxt, None)
            vectors = (
                np.asarray(out[0] if isinstance(out, tuple) else out)
                .reshape(*api.output_grid_shape(w, h, self.grid), 2)
                .astype(np.int16, copy=False)
            )
            vectors = opencv_vectors_to_hardware_grid(vectors, self.grid, self._hw_grid)
        return upsample_grid_flow(s10_5_to_float(vectors), self._hw_grid, h, w)

    def params(self) -> dict[str, Any]:
        # constructor arguments only (the base-class contract: build workers re-create the backend
        # from them); the grid the engine really runs on is in describe()
        return {"preset": self.preset, "grid": self.grid, "path": self._path}

    def describe(self) -> dict[str, Any]:
        """The base record plus ``hardware_grid``: the grid the engine computes on (see
        :func:`expected_hardware_grid`)."""
        return {**super().describe(), "hardware_grid": self._hw_grid}

    @property
    def supported_grids(self) -> list[int] | None:
        """Output grids the engine reports (ctypes path, once a session is open), else None."""
        return list(self._session.supported_grids) if self._session is not None else None

    @property
    def hardware_grid(self) -> int:
        """The grid the engine computes on: from the GPU generation until a session opens, then from its caps."""
        return self._hw_grid

    def device(self) -> str:
        extra = f" ({self._gpu_name}, sm_{self._cc[0]}{self._cc[1]})" if self._gpu_name else ""
        return f"cuda:{self.gpu}{extra}"

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._cv is not None:
            collect = getattr(self._cv, "collectGarbage", None)
            if collect is not None:
                collect()
            self._cv = None
        self._shape = None

"""The ctypes side of the NVIDIA Optical Flow backend: one driver session per frame size.

:class:`Session` owns a CUDA primary context, an NVOF instance bound through
:mod:`flowprep.flow.nvof_api`, two pitched input buffers and one output buffer, and runs one frame
pair at a time; :func:`cuda_result` unpacks NVIDIA's cuda-bindings results. The backend that users pick
(``--flow nvof``), its environment checks and the OpenCV path stay in :mod:`flowprep.flow.nvof`,
which uses these names.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

import numpy as np

from flowprep.errors import BackendUnavailableError
from flowprep.flow import nvof_api as api

# The backend's logger: these messages are the nvof backend's, whichever module emits them.
log = logging.getLogger("flowprep.flow.nvof")


def cuda_result(driver: Any, result: Any, what: str) -> Any:
    """Unpack a cuda-bindings ``(CUresult, value...)`` tuple, raising on error."""
    if not isinstance(result, tuple):
        result = (result,)
    err, vals = result[0], result[1:]
    if err != driver.CUresult.CUDA_SUCCESS:
        name = getattr(err, "name", str(err))
        if name in ("CUDA_ERROR_NO_DEVICE", "CUDA_ERROR_INVALID_DEVICE"):
            raise BackendUnavailableError(
                f"CUDA {what}: {name}: no usable NVIDIA GPU here (check CUDA_VISIBLE_DEVICES)"
            )
        raise BackendUnavailableError(f"CUDA {what} failed: {name}")
    return vals[0] if len(vals) == 1 else vals


def choose_grid(wanted: int, supported: list[int]) -> int:
    """The grid to ask the hardware for: ``wanted`` if supported, else the finest supported coarser one
    (else the coarsest available). Turing supports only 4; Ampere and newer 1, 2 and 4."""
    if wanted in supported:
        return wanted
    coarser = [g for g in sorted(supported) if g > wanted]
    grid = coarser[0] if coarser else max(supported)
    log.info("nvof: grid %d not supported by this GPU (supports %s); using %d and upsampling", wanted, supported, grid)
    return grid


class Session:
    """One NVOF session for a frame size: context, two input buffers, one output buffer."""

    def __init__(
        self, driver: Any, oflib: ctypes.CDLL, gpu: int, width: int, height: int, preset: str, grid: int
    ) -> None:
        self.driver, self.width, self.height = driver, width, height
        self._handle = api.NvOFHandle()
        self._buffers: list[api.NvOFGPUBufferHandle] = []
        self.fn: Any = None
        dev = cuda_result(driver, driver.cuDeviceGet(gpu), "cuDeviceGet")
        self._dev = dev
        self._ctx = cuda_result(driver, driver.cuDevicePrimaryCtxRetain(dev), "cuDevicePrimaryCtxRetain")
        try:
            cuda_result(driver, driver.cuCtxPushCurrent(self._ctx), "cuCtxPushCurrent")
        except BaseException:
            self._release()
            raise
        try:
            self._open(oflib, width, height, preset, grid)
        except BaseException:
            # Order matters: the objects go while the context is current, then the context leaves
            # the stack, and only then is the primary context released (which may destroy it).
            self._destroy_objects()
            driver.cuCtxPopCurrent()
            self._release()
            raise
        driver.cuCtxPopCurrent()

    def _open(self, oflib: ctypes.CDLL, width: int, height: int, preset: str, grid: int) -> None:
        """Create the NVOF instance, session and buffers; the session's context must be current."""
        create, max_version = api.bind_entry_points(oflib)
        version = api.api_version(api.API_MAJOR, api.API_MINOR)
        if max_version is not None:
            supported = ctypes.c_uint32()
            if max_version(ctypes.byref(supported)) == api.NV_OF_SUCCESS:
                if supported.value >> 4 < api.MIN_API_MAJOR:
                    raise BackendUnavailableError(
                        f"the NVIDIA driver offers optical-flow interface "
                        f"{supported.value >> 4}.{supported.value & 15}; "
                        f"{api.MIN_API_MAJOR}.0 or newer is needed: update the driver"
                    )
                version = min(version, supported.value)
        self.fn = api.NV_OF_CUDA_API_FUNCTION_LIST()
        self._check(create(version, ctypes.byref(self.fn)), "NvOFAPICreateInstanceCuda")
        self._check(
            self.fn.nvCreateOpticalFlowCuda(ctypes.c_void_p(int(self._ctx)), ctypes.byref(self._handle)),
            "nvCreateOpticalFlowCuda",
        )
        self.grid = self._pick_grid(grid)
        init = api.NV_OF_INIT_PARAMS(
            width=width,
            height=height,
            outGridSize=self.grid,
            hintGridSize=0,
            mode=api.NV_OF_MODE_OPTICALFLOW,
            perfLevel=api.PERF_LEVELS[preset],
            enableExternalHints=api.NV_OF_FALSE,
            enableOutputCost=api.NV_OF_FALSE,
            predDirection=api.NV_OF_PRED_DIRECTION_FORWARD,
            inputBufferFormat=api.NV_OF_BUFFER_FORMAT_GRAYSCALE8,
        )
        self._check(self.fn.nvOFInit(self._handle, ctypes.byref(init)), "nvOFInit")
        self._check(self.fn.nvOFSetIOCudaStreams(self._handle, None, None), "nvOFSetIOCudaStreams")
        self.out_h, self.out_w = api.output_grid_shape(width, height, self.grid)
        self.inputs = [
            self._buffer(width, height, api.NV_OF_BUFFER_USAGE_INPUT, api.NV_OF_BUFFER_FORMAT_GRAYSCALE8)
            for _ in range(2)
        ]
        self.output = self._buffer(
            self.out_w, self.out_h, api.NV_OF_BUFFER_USAGE_OUTPUT, api.NV_OF_BUFFER_FORMAT_SHORT2
        )

    def _check(self, status: int, what: str) -> None:
        if status == api.NV_OF_SUCCESS:
            return
        detail = ""
        if self._handle and self.fn is not None and self.fn.nvOFGetLastError:
            buf = ctypes.create_string_buffer(api.MIN_ERROR_STRING_SIZE * 4)
            size = ctypes.c_uint32(len(buf))
            if self.fn.nvOFGetLastError(self._handle, buf, ctypes.byref(size)) == api.NV_OF_SUCCESS:
                detail = ": " + buf.value.decode(errors="replace")
        if status in api.NO_ENGINE_STATUSES:
            raise BackendUnavailableError(
                f"{what}: {api.status_name(status)}{detail}: this GPU has no usable "
                "optical-flow engine (needs Turing or newer, not TU117)"
            )
        if status == api.NV_OF_ERR_INVALID_VERSION:
            detail += (
                f"; the driver's optical-flow interface is older than {api.API_MAJOR}.{api.API_MINOR}: "
                "update the driver"
            )
        raise BackendUnavailableError(f"{what} failed: {api.status_name(status)}{detail}")

    def _pick_grid(self, wanted: int) -> int:
        size = ctypes.c_uint32()
        fn = self.fn.nvOFGetCaps
        self._check(
            fn(self._handle, api.NV_OF_CAPS_SUPPORTED_OUTPUT_GRID_SIZES, None, ctypes.byref(size)), "nvOFGetCaps"
        )
        values = (ctypes.c_uint32 * max(1, size.value))()
        self._check(
            fn(self._handle, api.NV_OF_CAPS_SUPPORTED_OUTPUT_GRID_SIZES, values, ctypes.byref(size)), "nvOFGetCaps"
        )
        self.supported_grids = sorted(int(v) for v in values[: size.value]) or [4]
        return choose_grid(wanted, self.supported_grids)

    def _buffer(self, width: int, height: int, usage: int, fmt: int) -> tuple[Any, int, int]:
        desc = api.NV_OF_BUFFER_DESCRIPTOR(width=width, height=height, bufferUsage=usage, bufferFormat=fmt)
        handle = api.NvOFGPUBufferHandle()
        self._check(
            self.fn.nvOFCreateGPUBufferCuda(
                self._handle, ctypes.byref(desc), api.NV_OF_CUDA_BUFFER_TYPE_CUDEVICEPTR, ctypes.byref(handle)
            ),
            "nvOFCreateGPUBufferCuda",
        )
        self._buffers.append(handle)
        stride = api.NV_OF_CUDA_BUFFER_STRIDE_INFO()
        self._check(self.fn.nvOFGPUBufferGetStrideInfo(handle, ctypes.byref(stride)), "nvOFGPUBufferGetStrideInfo")
        ptr = int(self.fn.nvOFGPUBufferGetCUdeviceptr(handle))
        return handle, ptr, int(stride.strideInfo[0].strideXInBytes)

    def _copy(self, host: np.ndarray, dev_ptr: int, dev_pitch: int, to_device: bool) -> None:
        d = self.driver
        m = d.CUDA_MEMCPY2D()
        host_type, dev_type = d.CUmemorytype.CU_MEMORYTYPE_HOST, d.CUmemorytype.CU_MEMORYTYPE_DEVICE
        if to_device:
            m.srcMemoryType, m.srcHost, m.srcPitch = host_type, host.ctypes.data, host.strides[0]
            m.dstMemoryType, m.dstDevice, m.dstPitch = dev_type, d.CUdeviceptr(dev_ptr), dev_pitch
        else:
            m.srcMemoryType, m.srcDevice, m.srcPitch = dev_type, d.CUdeviceptr(dev_ptr), dev_pitch
            m.dstMemoryType, m.dstHost, m.dstPitch = host_type, host.ctypes.data, host.strides[0]
        m.WidthInBytes = host.shape[1] * host.itemsize * (host.shape[2] if host.ndim == 3 else 1)
        m.Height = host.shape[0]
        cuda_result(d, d.cuMemcpy2D(m), "cuMemcpy2D")

    def run(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """S10.5 vectors ``int16`` ``(out_h, out_w, 2)`` from ``prev`` to ``nxt``."""
        d = self.driver
        cuda_result(d, d.cuCtxPushCurrent(self._ctx), "cuCtxPushCurrent")
        try:
            # With NV_OF_PRED_DIRECTION_FORWARD the SDK header documents the vectors as pointing from
            # each pixel of inputFrame to its match in referenceFrame, so input = frame k and
            # reference = frame k+1 give the forward flow k -> k+1 (OpenCV's calc(frame0, frame1) too).
            for (_, ptr, pitch), frame in zip(self.inputs, (prev, nxt)):
                self._copy(np.ascontiguousarray(frame), ptr, pitch, to_device=True)
            inp = api.NV_OF_EXECUTE_INPUT_PARAMS(
                inputFrame=self.inputs[0][0], referenceFrame=self.inputs[1][0], disableTemporalHints=api.NV_OF_TRUE
            )
            out = api.NV_OF_EXECUTE_OUTPUT_PARAMS(outputBuffer=self.output[0])
            self._check(self.fn.nvOFExecute(self._handle, ctypes.byref(inp), ctypes.byref(out)), "nvOFExecute")
            cuda_result(d, d.cuCtxSynchronize(), "cuCtxSynchronize")
            vectors = np.empty((self.out_h, self.out_w, 2), np.int16)
            self._copy(vectors, self.output[1], self.output[2], to_device=False)
            return vectors
        finally:
            d.cuCtxPopCurrent()

    def _destroy_objects(self) -> None:
        """Destroy the buffers and the NVOF session; the session's context must be current."""
        fn = getattr(self, "fn", None)
        if fn is None:
            return
        for handle in self._buffers:
            fn.nvOFDestroyGPUBufferCuda(handle)
        self._buffers = []
        if self._handle:
            fn.nvOFDestroy(self._handle)
            self._handle = api.NvOFHandle()

    def _release(self) -> None:
        """Release the primary context (the driver destroys it at reference count 0); it must not be on the stack."""
        self.driver.cuDevicePrimaryCtxRelease(self._dev)
        self._ctx = None

    def close(self) -> None:
        if getattr(self, "_ctx", None) is None:
            return
        d = self.driver
        d.cuCtxPushCurrent(self._ctx)
        try:
            self._destroy_objects()
        finally:
            d.cuCtxPopCurrent()
            self._release()

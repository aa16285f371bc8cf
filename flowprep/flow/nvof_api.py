"""ctypes mirror of NVIDIA's Optical Flow SDK interface (``nvOpticalFlowCommon.h`` / ``nvOpticalFlowCuda.h``).

Written from the public SDK headers' documentation (interface versions 1.0 to 5.0). The structures
only grow at the end between versions, so the 5.0 layout below is passed whatever version the
driver is asked for: a driver implementing an older version reads the prefix it knows.

Layout caveats (not yet checked on hardware, see docs/flow.md):

* The headers say they pack structures to one byte; every structure here has its members at the
  same offsets whether packed or naturally aligned on 64-bit Linux (the SDK adds explicit
  ``padding`` members where it matters), only the trailing size differs (60 vs 64 bytes for
  ``NV_OF_INIT_PARAMS``), which is harmless for a structure passed by pointer. We use natural
  alignment.
* The members after ``hPrivData`` in ``NV_OF_INIT_PARAMS`` (disparity range, ROI, prediction
  direction, global flow, input buffer format) are from the 2.x-5.x headers; their order is as in
  the 5.0 header.

Only what the flow backend needs is declared: the CUDA entry point and function list, the init,
buffer, execute and caps structures, and the enums they take.
"""

from __future__ import annotations

import ctypes
from ctypes import CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_int16, c_uint32, c_uint64, c_void_p

LIBRARY = "libnvidia-opticalflow.so.1"
CUDA_DRIVER_LIBRARY = "libcuda.so.1"

#: the newest interface whose structure layout this module mirrors
API_MAJOR, API_MINOR = 5, 0
#: grids 1 and 2 (Ampere and newer) need interface 2.0 or later
MIN_API_MAJOR = 2


def api_version(major: int, minor: int) -> int:
    """``NV_OF_API_VERSION``: ``(major << 4) | minor``."""
    return (major << 4) | minor


# NV_OF_STATUS
NV_OF_SUCCESS = 0
STATUS_NAMES = {
    0: "NV_OF_SUCCESS",
    1: "NV_OF_ERR_OF_NOT_AVAILABLE",
    2: "NV_OF_ERR_UNSUPPORTED_DEVICE",
    3: "NV_OF_ERR_DEVICE_DOES_NOT_EXIST",
    4: "NV_OF_ERR_INVALID_PTR",
    5: "NV_OF_ERR_INVALID_PARAM",
    6: "NV_OF_ERR_INVALID_CALL",
    7: "NV_OF_ERR_INVALID_VERSION",
    8: "NV_OF_ERR_OUT_OF_MEMORY",
    9: "NV_OF_ERR_NOT_INITIALIZED",
    10: "NV_OF_ERR_UNSUPPORTED_FEATURE",
    11: "NV_OF_ERR_GENERIC",
}
NV_OF_ERR_INVALID_VERSION = 7
#: statuses that mean "this GPU has no usable optical-flow engine"
NO_ENGINE_STATUSES = {1, 2}

# NV_OF_BOOL
NV_OF_FALSE, NV_OF_TRUE = 0, 1
# NV_OF_CAPS (first member; the rest are not used here)
NV_OF_CAPS_SUPPORTED_OUTPUT_GRID_SIZES = 0
# NV_OF_PERF_LEVEL
PERF_LEVELS = {"slow": 5, "medium": 10, "fast": 20}
# NV_OF_OUTPUT_VECTOR_GRID_SIZE: the value is the grid's side in pixels
GRID_SIZES = (1, 2, 4)
# NV_OF_MODE
NV_OF_MODE_OPTICALFLOW = 1
# NV_OF_BUFFER_USAGE
NV_OF_BUFFER_USAGE_INPUT, NV_OF_BUFFER_USAGE_OUTPUT = 1, 2
# NV_OF_BUFFER_FORMAT
NV_OF_BUFFER_FORMAT_GRAYSCALE8, NV_OF_BUFFER_FORMAT_NV12, NV_OF_BUFFER_FORMAT_ABGR8 = 1, 2, 3
NV_OF_BUFFER_FORMAT_SHORT2 = 5
# NV_OF_CUDA_BUFFER_TYPE
NV_OF_CUDA_BUFFER_TYPE_CUARRAY, NV_OF_CUDA_BUFFER_TYPE_CUDEVICEPTR = 1, 2
# NV_OF_PRED_DIRECTION
NV_OF_PRED_DIRECTION_FORWARD = 0

MAX_NUM_PLANES = 3
MIN_ERROR_STRING_SIZE = 80

NvOFHandle = c_void_p
NvOFGPUBufferHandle = c_void_p
NvOFPrivDataHandle = c_void_p
CUcontext = c_void_p
CUstream = c_void_p
CUdeviceptr = c_uint64


class NV_OF_FLOW_VECTOR(Structure):
    """One output vector: S10.5 fixed point (divide by 32 for pixels)."""

    _fields_ = [("flowx", c_int16), ("flowy", c_int16)]


class NV_OF_INIT_PARAMS(Structure):
    _fields_ = [
        ("width", c_uint32),
        ("height", c_uint32),
        ("outGridSize", c_int),  # NV_OF_OUTPUT_VECTOR_GRID_SIZE
        ("hintGridSize", c_int),  # NV_OF_HINT_VECTOR_GRID_SIZE
        ("mode", c_int),  # NV_OF_MODE
        ("perfLevel", c_int),  # NV_OF_PERF_LEVEL
        ("enableExternalHints", c_int),  # NV_OF_BOOL
        ("enableOutputCost", c_int),
        ("hPrivData", NvOFPrivDataHandle),
        # interface 2.0+
        ("disparityRange", c_int),
        ("enableRoi", c_int),
        ("predDirection", c_int),
        ("enableGlobalFlow", c_int),
        ("inputBufferFormat", c_int),  # NV_OF_BUFFER_FORMAT
    ]


class NV_OF_BUFFER_DESCRIPTOR(Structure):
    """Output buffers take width/height in grid cells, input buffers in pixels."""

    _fields_ = [("width", c_uint32), ("height", c_uint32), ("bufferUsage", c_int), ("bufferFormat", c_int)]


class NV_OF_BUFFER_STRIDE(Structure):
    _fields_ = [("strideXInBytes", c_uint32), ("strideYInBytes", c_uint32)]


class NV_OF_CUDA_BUFFER_STRIDE_INFO(Structure):
    _fields_ = [("strideInfo", NV_OF_BUFFER_STRIDE * MAX_NUM_PLANES), ("numPlanes", c_uint32)]


class NV_OF_EXECUTE_INPUT_PARAMS(Structure):
    _fields_ = [
        ("inputFrame", NvOFGPUBufferHandle),
        ("referenceFrame", NvOFGPUBufferHandle),
        ("externalHints", NvOFGPUBufferHandle),
        ("disableTemporalHints", c_int),  # NV_OF_BOOL
        ("padding", c_uint32),
        ("hPrivData", NvOFPrivDataHandle),
        # interface 2.0+
        ("padding2", c_uint32),
        ("numRois", c_uint32),
        ("roiData", c_void_p),  # NV_OF_ROI_RECT*
    ]


class NV_OF_EXECUTE_OUTPUT_PARAMS(Structure):
    _fields_ = [
        ("outputBuffer", NvOFGPUBufferHandle),
        ("outputCostBuffer", NvOFGPUBufferHandle),
        ("hPrivData", NvOFPrivDataHandle),
        # interface 2.0+ (bidirectional flow, global flow)
        ("bwdOutputBuffer", NvOFGPUBufferHandle),
        ("bwdOutputCostBuffer", NvOFGPUBufferHandle),
        ("globalFlowBuffer", NvOFGPUBufferHandle),
    ]


# Function prototypes (NVOFAPI is the default C calling convention on Linux).
PFNNVCREATEOPTICALFLOWCUDA = CFUNCTYPE(c_int, CUcontext, POINTER(NvOFHandle))
PFNNVOFINIT = CFUNCTYPE(c_int, NvOFHandle, POINTER(NV_OF_INIT_PARAMS))
PFNNVOFCREATEGPUBUFFERCUDA = CFUNCTYPE(
    c_int, NvOFHandle, POINTER(NV_OF_BUFFER_DESCRIPTOR), c_int, POINTER(NvOFGPUBufferHandle)
)
PFNNVOFGPUBUFFERGETCUARRAY = CFUNCTYPE(c_void_p, NvOFGPUBufferHandle)
PFNNVOFGPUBUFFERGETCUDEVICEPTR = CFUNCTYPE(CUdeviceptr, NvOFGPUBufferHandle)
PFNVOFGPUBUFFERGETSTRIDEINFO = CFUNCTYPE(c_int, NvOFGPUBufferHandle, POINTER(NV_OF_CUDA_BUFFER_STRIDE_INFO))
PFNNVOFSETIOCUDASTREAMS = CFUNCTYPE(c_int, NvOFHandle, CUstream, CUstream)
PFNNVOFEXECUTE = CFUNCTYPE(c_int, NvOFHandle, POINTER(NV_OF_EXECUTE_INPUT_PARAMS), POINTER(NV_OF_EXECUTE_OUTPUT_PARAMS))
PFNNVOFDESTROYGPUBUFFERCUDA = CFUNCTYPE(c_int, NvOFGPUBufferHandle)
PFNNVOFDESTROY = CFUNCTYPE(c_int, NvOFHandle)
PFNNVOFGETLASTERROR = CFUNCTYPE(c_int, NvOFHandle, c_char_p, POINTER(c_uint32))
PFNNVOFGETCAPS = CFUNCTYPE(c_int, NvOFHandle, c_int, POINTER(c_uint32), POINTER(c_uint32))


class NV_OF_CUDA_API_FUNCTION_LIST(Structure):
    """Filled by ``NvOFAPICreateInstanceCuda``; members in the header's order."""

    _fields_ = [
        ("nvCreateOpticalFlowCuda", PFNNVCREATEOPTICALFLOWCUDA),
        ("nvOFInit", PFNNVOFINIT),
        ("nvOFCreateGPUBufferCuda", PFNNVOFCREATEGPUBUFFERCUDA),
        ("nvOFGPUBufferGetCUarray", PFNNVOFGPUBUFFERGETCUARRAY),
        ("nvOFGPUBufferGetCUdeviceptr", PFNNVOFGPUBUFFERGETCUDEVICEPTR),
        ("nvOFGPUBufferGetStrideInfo", PFNVOFGPUBUFFERGETSTRIDEINFO),
        ("nvOFSetIOCudaStreams", PFNNVOFSETIOCUDASTREAMS),
        ("nvOFExecute", PFNNVOFEXECUTE),
        ("nvOFDestroyGPUBufferCuda", PFNNVOFDESTROYGPUBUFFERCUDA),
        ("nvOFDestroy", PFNNVOFDESTROY),
        ("nvOFGetLastError", PFNNVOFGETLASTERROR),
        ("nvOFGetCaps", PFNNVOFGETCAPS),
    ]


def bind_entry_points(lib: ctypes.CDLL) -> tuple:
    """``(NvOFAPICreateInstanceCuda, NvOFGetMaxSupportedApiVersion or None)`` from the loaded library."""
    create = lib.NvOFAPICreateInstanceCuda
    create.argtypes = [c_uint32, POINTER(NV_OF_CUDA_API_FUNCTION_LIST)]
    create.restype = c_int
    max_version = getattr(lib, "NvOFGetMaxSupportedApiVersion", None)  # exported since interface 2.0
    if max_version is not None:
        max_version.argtypes = [POINTER(c_uint32)]
        max_version.restype = c_int
    return create, max_version


def status_name(status: int) -> str:
    return STATUS_NAMES.get(int(status), f"NV_OF_STATUS {int(status)}")


def output_grid_shape(width: int, height: int, grid: int) -> tuple[int, int]:
    """``(out_height, out_width)`` of the output buffer for a ``width x height`` input on ``grid``."""
    return (height + grid - 1) // grid, (width + grid - 1) // grid

/* Stand-in for the driver's libnvidia-opticalflow.so.1 (NVIDIA Optical Flow interface 5.0, CUDA
 * flavour), for tests only. Built against the stand-in libcuda.so.1 (tests/gpu_stub/libcuda.c).
 *
 * What it emulates, from the SDK headers' documentation (nvOpticalFlowCommon.h, nvOpticalFlowCuda.h):
 *   - NvOFAPICreateInstanceCuda filling the 5.0 function list; NvOFGetMaxSupportedApiVersion
 *     returning FLOWPREP_STUB_NVOF_API (hex, default 50 = 5.0); a newer version asked -> INVALID_VERSION;
 *   - caps: output grid sizes by GPU generation (compute 7.x Turing: 4 only; 8.0+: 1, 2, 4);
 *   - nvOFInit parameter checks, pitched buffers (pitch != width), buffer/handle validation;
 *   - nvOFExecute: forward flow (NV_OF_PRED_DIRECTION_FORWARD): the vector at a pixel of the input
 *     frame points to the matching pixel of the reference frame, found by block matching (8x8
 *     window, integer shifts within +-FLOWPREP_STUB_NVOF_RANGE, default 8), stored as S10.5;
 *   - FLOWPREP_STUB_NVOF_FAIL=name[,name] makes those calls fail with NV_OF_ERR_GENERIC;
 *   - misuse (a call without the session's context current, unknown handles) goes to the log.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int NV_OF_STATUS;
typedef void *CUcontext;
typedef void *CUstream;
typedef uint64_t CUdeviceptr;

enum { NV_OF_SUCCESS, NV_OF_ERR_OF_NOT_AVAILABLE, NV_OF_ERR_UNSUPPORTED_DEVICE, NV_OF_ERR_DEVICE_DOES_NOT_EXIST,
       NV_OF_ERR_INVALID_PTR, NV_OF_ERR_INVALID_PARAM, NV_OF_ERR_INVALID_CALL, NV_OF_ERR_INVALID_VERSION,
       NV_OF_ERR_OUT_OF_MEMORY, NV_OF_ERR_NOT_INITIALIZED, NV_OF_ERR_UNSUPPORTED_FEATURE, NV_OF_ERR_GENERIC };
enum { USAGE_INPUT = 1, USAGE_OUTPUT = 2, FORMAT_GRAYSCALE8 = 1, FORMAT_SHORT2 = 5, BUFFER_CUDEVICEPTR = 2,
       MODE_OPTICALFLOW = 1, DIRECTION_FORWARD = 0 };

typedef struct {
    uint32_t width, height;
    int outGridSize, hintGridSize, mode, perfLevel, enableExternalHints, enableOutputCost;
    void *hPrivData;
    int disparityRange, enableRoi, predDirection, enableGlobalFlow, inputBufferFormat;
} NV_OF_INIT_PARAMS;
typedef struct { uint32_t width, height; int bufferUsage, bufferFormat; } NV_OF_BUFFER_DESCRIPTOR;
typedef struct { uint32_t strideXInBytes, strideYInBytes; } NV_OF_BUFFER_STRIDE;
typedef struct { NV_OF_BUFFER_STRIDE strideInfo[3]; uint32_t numPlanes; } NV_OF_CUDA_BUFFER_STRIDE_INFO;
typedef struct Buffer *NvOFGPUBufferHandle;
typedef struct Session *NvOFHandle;
typedef struct {
    NvOFGPUBufferHandle inputFrame, referenceFrame, externalHints;
    int disableTemporalHints; uint32_t padding; void *hPrivData;
    uint32_t padding2, numRois; void *roiData;
} NV_OF_EXECUTE_INPUT_PARAMS;
typedef struct {
    NvOFGPUBufferHandle outputBuffer, outputCostBuffer; void *hPrivData;
    NvOFGPUBufferHandle bwdOutputBuffer, bwdOutputCostBuffer, globalFlowBuffer;
} NV_OF_EXECUTE_OUTPUT_PARAMS;

/* from the stand-in libcuda */
extern void stubLog(const char *fmt, ...);
extern int stubShouldFail(const char *var, const char *fn);
extern int stubContextDevice(CUcontext c);
extern int stubDeviceMajor(int dev);
extern int cuCtxGetCurrent(CUcontext *c);
extern int cuMemAlloc_v2(CUdeviceptr *p, size_t size);
extern int cuMemFree_v2(CUdeviceptr p);

#define SESSION_MAGIC 0x4f465353
#define BUFFER_MAGIC 0x4f464246
struct Session { int magic, alive, device, initialised; CUcontext ctx; NV_OF_INIT_PARAMS init; char error[256]; };
struct Buffer { int magic, alive; struct Session *s; NV_OF_BUFFER_DESCRIPTOR desc; uint32_t pitch; CUdeviceptr ptr; };

static unsigned max_api(void) {
    const char *v = getenv("FLOWPREP_STUB_NVOF_API");
    return v ? (unsigned)strtoul(v, NULL, 16) : 0x50;
}

static NV_OF_STATUS fail(struct Session *s, NV_OF_STATUS st, const char *msg) {
    if (s) snprintf(s->error, sizeof s->error, "%s", msg);
    stubLog("nvof-error %d %s", st, msg);
    return st;
}

/* Common entry checks: valid live session, injected failure, the session's context current. */
static NV_OF_STATUS enter(struct Session *s, const char *fn) {
    CUcontext cur = NULL;
    if (!s || s->magic != SESSION_MAGIC || !s->alive) {
        stubLog("MISUSE %s with an invalid or destroyed NvOFHandle", fn);
        return NV_OF_ERR_INVALID_PTR;
    }
    if (stubShouldFail("FLOWPREP_STUB_NVOF_FAIL", fn)) return fail(s, NV_OF_ERR_GENERIC, "injected failure");
    cuCtxGetCurrent(&cur);
    if (cur != s->ctx) stubLog("MISUSE %s without the session's context current", fn);
    return NV_OF_SUCCESS;
}

static int valid_buffer(struct Buffer *b) { return b && b->magic == BUFFER_MAGIC && b->alive; }

NV_OF_STATUS NvOFGetMaxSupportedApiVersion(uint32_t *version) {
    if (!version) return NV_OF_ERR_INVALID_PTR;
    *version = max_api();
    return NV_OF_SUCCESS;
}

NV_OF_STATUS nvCreateOpticalFlowCuda(CUcontext ctx, NvOFHandle *handle) {
    int dev = stubContextDevice(ctx);
    if (stubShouldFail("FLOWPREP_STUB_NVOF_FAIL", "nvCreateOpticalFlowCuda")) return fail(NULL, NV_OF_ERR_GENERIC, "injected");
    if (!handle) return NV_OF_ERR_INVALID_PTR;
    if (dev < 0) { stubLog("MISUSE nvCreateOpticalFlowCuda with a dead or invalid context"); return NV_OF_ERR_INVALID_PTR; }
    if (stubDeviceMajor(dev) < 7) return fail(NULL, NV_OF_ERR_UNSUPPORTED_DEVICE, "pre-Turing GPU");
    struct Session *s = calloc(1, sizeof *s);
    s->magic = SESSION_MAGIC; s->alive = 1; s->device = dev; s->ctx = ctx;
    stubLog("nvof-session device=%d", dev);
    *handle = s;
    return NV_OF_SUCCESS;
}

static uint32_t grids(int device, uint32_t *out) {
    if (stubDeviceMajor(device) < 8) { out[0] = 4; return 1; }  /* Turing: 4x4 only */
    out[0] = 1; out[1] = 2; out[2] = 4;
    return 3;
}

NV_OF_STATUS nvOFGetCaps(NvOFHandle s, int param, uint32_t *caps, uint32_t *size) {
    uint32_t vals[3], n;
    NV_OF_STATUS st = enter(s, "nvOFGetCaps");
    if (st) return st;
    if (param != 0 || !size) return fail(s, NV_OF_ERR_INVALID_PARAM, "only NV_OF_CAPS_SUPPORTED_OUTPUT_GRID_SIZES");
    n = grids(s->device, vals);
    if (caps) {
        if (*size < n) return fail(s, NV_OF_ERR_INVALID_PARAM, "caps array too small");
        memcpy(caps, vals, n * sizeof *vals);
    }
    *size = n;
    return NV_OF_SUCCESS;
}

NV_OF_STATUS nvOFInit(NvOFHandle s, const NV_OF_INIT_PARAMS *p) {
    uint32_t vals[3], n, ok = 0;
    NV_OF_STATUS st = enter(s, "nvOFInit");
    if (st) return st;
    if (s->initialised) return fail(s, NV_OF_ERR_INVALID_CALL, "nvOFInit called twice");
    n = grids(s->device, vals);
    for (uint32_t i = 0; i < n; i++) ok |= vals[i] == (uint32_t)p->outGridSize;
    if (!ok) return fail(s, NV_OF_ERR_UNSUPPORTED_FEATURE, "output grid size not supported by this GPU");
    if (p->width < 32 || p->height < 32 || p->width > 8192 || p->height > 8192)
        return fail(s, NV_OF_ERR_INVALID_PARAM, "frame size outside 32x32 .. 8192x8192");
    if (p->mode != MODE_OPTICALFLOW || p->predDirection != DIRECTION_FORWARD || p->inputBufferFormat != FORMAT_GRAYSCALE8
        || (p->perfLevel != 5 && p->perfLevel != 10 && p->perfLevel != 20) || p->enableExternalHints || p->enableOutputCost
        || p->enableRoi || p->enableGlobalFlow)
        return fail(s, NV_OF_ERR_INVALID_PARAM, "init parameters outside what the stand-in emulates");
    s->init = *p;
    s->initialised = 1;
    stubLog("nvof-init device=%d %ux%u grid=%d perf=%d", s->device, p->width, p->height, p->outGridSize, p->perfLevel);
    return NV_OF_SUCCESS;
}

NV_OF_STATUS nvOFSetIOCudaStreams(NvOFHandle s, CUstream in, CUstream out) {
    (void)in; (void)out;
    return enter(s, "nvOFSetIOCudaStreams");
}

NV_OF_STATUS nvOFCreateGPUBufferCuda(NvOFHandle s, const NV_OF_BUFFER_DESCRIPTOR *d, int type, NvOFGPUBufferHandle *out) {
    NV_OF_STATUS st = enter(s, "nvOFCreateGPUBufferCuda");
    uint32_t g, bpp, w, h;
    if (st) return st;
    if (!s->initialised) return fail(s, NV_OF_ERR_NOT_INITIALIZED, "buffer before nvOFInit");
    if (type != BUFFER_CUDEVICEPTR) return fail(s, NV_OF_ERR_UNSUPPORTED_FEATURE, "only CUdeviceptr buffers emulated");
    g = (uint32_t)s->init.outGridSize;
    if (d->bufferUsage == USAGE_INPUT) { w = s->init.width; h = s->init.height; bpp = 1; }
    else if (d->bufferUsage == USAGE_OUTPUT) { w = (s->init.width + g - 1) / g; h = (s->init.height + g - 1) / g; bpp = 4; }
    else return fail(s, NV_OF_ERR_INVALID_PARAM, "buffer usage");
    if (d->width != w || d->height != h || d->bufferFormat != (bpp == 1 ? FORMAT_GRAYSCALE8 : FORMAT_SHORT2))
        return fail(s, NV_OF_ERR_INVALID_PARAM, "buffer size or format does not match the session");
    struct Buffer *b = calloc(1, sizeof *b);
    b->magic = BUFFER_MAGIC; b->alive = 1; b->s = s; b->desc = *d;
    b->pitch = (w * bpp + 255) / 256 * 256 + 256;  /* always wider than a row, as on hardware */
    if (cuMemAlloc_v2(&b->ptr, (size_t)b->pitch * h) != 0) { free(b); return fail(s, NV_OF_ERR_OUT_OF_MEMORY, "cuMemAlloc"); }
    *out = b;
    return NV_OF_SUCCESS;
}

CUdeviceptr nvOFGPUBufferGetCUdeviceptr(NvOFGPUBufferHandle b) {
    if (!valid_buffer(b)) { stubLog("MISUSE nvOFGPUBufferGetCUdeviceptr of an invalid buffer"); return 0; }
    return b->ptr;
}

void *nvOFGPUBufferGetCUarray(NvOFGPUBufferHandle b) { (void)b; return NULL; }

NV_OF_STATUS nvOFGPUBufferGetStrideInfo(NvOFGPUBufferHandle b, NV_OF_CUDA_BUFFER_STRIDE_INFO *info) {
    if (!valid_buffer(b)) { stubLog("MISUSE nvOFGPUBufferGetStrideInfo of an invalid buffer"); return NV_OF_ERR_INVALID_PTR; }
    if (stubShouldFail("FLOWPREP_STUB_NVOF_FAIL", "nvOFGPUBufferGetStrideInfo")) return fail(b->s, NV_OF_ERR_GENERIC, "injected failure");
    memset(info, 0, sizeof *info);
    info->strideInfo[0].strideXInBytes = b->pitch;
    info->strideInfo[0].strideYInBytes = b->desc.height;
    info->numPlanes = 1;
    return NV_OF_SUCCESS;
}

/* Mean absolute difference of the 8x8 window around each grid cell for one shift, via integral images. */
static void match_shift(const uint8_t *in, const uint8_t *ref, uint32_t pitch, int w, int h, int g, int dx, int dy,
                        double *sum, int *cnt, double *best, int *bx, int *by, int gw, int gh) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int rx = x + dx, ry = y + dy, v = rx >= 0 && ry >= 0 && rx < w && ry < h;
            double d = v ? fabs((double)in[y * pitch + x] - ref[ry * pitch + rx]) : 0.0;
            sum[(y + 1) * (w + 1) + x + 1] = d + sum[y * (w + 1) + x + 1] + sum[(y + 1) * (w + 1) + x] - sum[y * (w + 1) + x];
            cnt[(y + 1) * (w + 1) + x + 1] = v + cnt[y * (w + 1) + x + 1] + cnt[(y + 1) * (w + 1) + x] - cnt[y * (w + 1) + x];
        }
    for (int cy = 0; cy < gh; cy++)
        for (int cx = 0; cx < gw; cx++) {
            int x0 = cx * g + g / 2 - 4, y0 = cy * g + g / 2 - 4, x1 = x0 + 8, y1 = y0 + 8;
            x0 = x0 < 0 ? 0 : x0; y0 = y0 < 0 ? 0 : y0; x1 = x1 > w ? w : x1; y1 = y1 > h ? h : y1;
            int n = cnt[y1 * (w + 1) + x1] - cnt[y0 * (w + 1) + x1] - cnt[y1 * (w + 1) + x0] + cnt[y0 * (w + 1) + x0];
            if (2 * n < (x1 - x0) * (y1 - y0)) continue;  /* mostly outside the reference frame */
            double c = (sum[y1 * (w + 1) + x1] - sum[y0 * (w + 1) + x1] - sum[y1 * (w + 1) + x0] + sum[y0 * (w + 1) + x0]) / n;
            int k = cy * gw + cx, mag = abs(dx) + abs(dy);
            if (c < best[k] - 1e-9 || (c <= best[k] + 1e-9 && mag < abs(bx[k]) + abs(by[k]))) { best[k] = c; bx[k] = dx; by[k] = dy; }
        }
}

static void block_match(struct Session *s, struct Buffer *in, struct Buffer *ref, struct Buffer *out) {
    int w = (int)s->init.width, h = (int)s->init.height, g = s->init.outGridSize;
    int gw = (int)out->desc.width, gh = (int)out->desc.height;
    const char *r = getenv("FLOWPREP_STUB_NVOF_RANGE");
    int range = r ? atoi(r) : 8;
    double *sum = calloc((size_t)(w + 1) * (h + 1), sizeof *sum), *best = malloc(sizeof(double) * gw * gh);
    int *cnt = calloc((size_t)(w + 1) * (h + 1), sizeof *cnt), *bx = calloc(gw * gh, sizeof *bx), *by = calloc(gw * gh, sizeof *by);
    for (int k = 0; k < gw * gh; k++) best[k] = INFINITY;
    for (int dy = -range; dy <= range; dy++)
        for (int dx = -range; dx <= range; dx++)
            match_shift((const uint8_t *)(uintptr_t)in->ptr, (const uint8_t *)(uintptr_t)ref->ptr, in->pitch, w, h, g,
                        dx, dy, sum, cnt, best, bx, by, gw, gh);
    for (int cy = 0; cy < gh; cy++) {
        int16_t *row = (int16_t *)(uintptr_t)(out->ptr + (CUdeviceptr)cy * out->pitch);
        for (int cx = 0; cx < gw; cx++) { row[2 * cx] = (int16_t)(bx[cy * gw + cx] * 32); row[2 * cx + 1] = (int16_t)(by[cy * gw + cx] * 32); }
    }
    free(sum); free(cnt); free(best); free(bx); free(by);
}

NV_OF_STATUS nvOFExecute(NvOFHandle s, const NV_OF_EXECUTE_INPUT_PARAMS *ip, NV_OF_EXECUTE_OUTPUT_PARAMS *op) {
    NV_OF_STATUS st = enter(s, "nvOFExecute");
    if (st) return st;
    if (!s->initialised) return fail(s, NV_OF_ERR_NOT_INITIALIZED, "nvOFExecute before nvOFInit");
    struct Buffer *in = ip->inputFrame, *ref = ip->referenceFrame, *out = op->outputBuffer;
    if (!valid_buffer(in) || !valid_buffer(ref) || !valid_buffer(out) || in->s != s || ref->s != s || out->s != s) {
        stubLog("MISUSE nvOFExecute with a buffer that is not a live buffer of this session");
        return fail(s, NV_OF_ERR_INVALID_PTR, "invalid buffer");
    }
    if (in->desc.bufferUsage != USAGE_INPUT || ref->desc.bufferUsage != USAGE_INPUT || out->desc.bufferUsage != USAGE_OUTPUT)
        return fail(s, NV_OF_ERR_INVALID_PARAM, "buffer usage does not fit its role");
    block_match(s, in, ref, out);
    return NV_OF_SUCCESS;
}

NV_OF_STATUS nvOFDestroyGPUBufferCuda(NvOFGPUBufferHandle b) {
    CUcontext cur = NULL;
    if (!valid_buffer(b)) { stubLog("MISUSE nvOFDestroyGPUBufferCuda of an invalid or destroyed buffer"); return NV_OF_ERR_INVALID_PTR; }
    cuCtxGetCurrent(&cur);
    if (cur != b->s->ctx) stubLog("MISUSE nvOFDestroyGPUBufferCuda without the session's context current");
    cuMemFree_v2(b->ptr);
    b->alive = 0;
    return NV_OF_SUCCESS;
}

NV_OF_STATUS nvOFDestroy(NvOFHandle s) {
    NV_OF_STATUS st = enter(s, "nvOFDestroy");
    if (st == NV_OF_ERR_INVALID_PTR) return st;
    s->alive = 0;
    stubLog("nvof-destroy device=%d", s->device);
    return NV_OF_SUCCESS;
}

NV_OF_STATUS nvOFGetLastError(NvOFHandle s, char *msg, uint32_t *size) {
    if (!s || s->magic != SESSION_MAGIC || !msg || !size || *size == 0) return NV_OF_ERR_INVALID_PTR;
    snprintf(msg, *size, "%s", s->error);
    *size = (uint32_t)strlen(msg);
    return NV_OF_SUCCESS;
}

typedef struct {
    void *fns[12];
} NV_OF_CUDA_API_FUNCTION_LIST;

NV_OF_STATUS NvOFAPICreateInstanceCuda(uint32_t version, NV_OF_CUDA_API_FUNCTION_LIST *list) {
    if (stubShouldFail("FLOWPREP_STUB_NVOF_FAIL", "NvOFAPICreateInstanceCuda")) return fail(NULL, NV_OF_ERR_GENERIC, "injected");
    if (!list) return NV_OF_ERR_INVALID_PTR;
    if (version > max_api() || (version >> 4) < 1) {
        stubLog("nvof-create-instance refused version %x (driver offers %x)", version, max_api());
        return NV_OF_ERR_INVALID_VERSION;
    }
    void *fns[12] = {(void *)nvCreateOpticalFlowCuda, (void *)nvOFInit, (void *)nvOFCreateGPUBufferCuda,
                     (void *)nvOFGPUBufferGetCUarray, (void *)nvOFGPUBufferGetCUdeviceptr, (void *)nvOFGPUBufferGetStrideInfo,
                     (void *)nvOFSetIOCudaStreams, (void *)nvOFExecute, (void *)nvOFDestroyGPUBufferCuda,
                     (void *)nvOFDestroy, (void *)nvOFGetLastError, (void *)nvOFGetCaps};
    memcpy(list->fns, fns, sizeof fns);
    return NV_OF_SUCCESS;
}

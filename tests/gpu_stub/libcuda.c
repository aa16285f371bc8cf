/* Stand-in for the NVIDIA driver's libcuda.so.1, for tests only (never shipped, never a backend).
 *
 * It implements the part of the CUDA driver API that flowprep's nvof backend and NVIDIA's
 * cuda-bindings use, through cuGetProcAddress(_v2) exactly as cuda-bindings resolves symbols:
 *   - devices from FLOWPREP_STUB_GPUS ("name:major.minor;name:major.minor"), CUDA_VISIBLE_DEVICES honoured;
 *   - primary contexts with reference counts (a context destroyed at count 0 is never reused, so a
 *     stale handle is recognisable), a per-thread context stack;
 *   - host memory standing in for device memory, bounds checks on every 2-D copy;
 *   - failure injection: FLOWPREP_STUB_CUDA_FAIL=name makes that entry point return CUDA_ERROR_UNKNOWN;
 *   - a log (file named by FLOWPREP_STUB_LOG, one line per event, "<pid> <event> ...") recording
 *     which device each process used, every misuse ("MISUSE ..."), and the state at exit.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <fcntl.h>
#include <unistd.h>

typedef int CUresult;
typedef int CUdevice;
typedef uint64_t CUdeviceptr;
typedef struct StubCtx *CUcontext;

enum { CUDA_SUCCESS = 0, CUDA_ERROR_INVALID_VALUE = 1, CUDA_ERROR_OUT_OF_MEMORY = 2,
       CUDA_ERROR_NOT_INITIALIZED = 3, CUDA_ERROR_NO_DEVICE = 100, CUDA_ERROR_INVALID_DEVICE = 101,
       CUDA_ERROR_INVALID_CONTEXT = 201, CUDA_ERROR_NOT_FOUND = 500, CUDA_ERROR_UNKNOWN = 999 };
enum { CU_MEMORYTYPE_HOST = 1, CU_MEMORYTYPE_DEVICE = 2 };
enum { ATTR_CC_MAJOR = 75, ATTR_CC_MINOR = 76 };

struct StubCtx { int magic; int device; int alive; };
#define CTX_MAGIC 0x43747821

#define MAX_DEV 16
#define MAX_ALLOC 4096
#define MAX_STACK 64

static int n_dev = -1, initialised;
static char dev_name[MAX_DEV][96];
static int dev_major[MAX_DEV], dev_minor[MAX_DEV], dev_physical[MAX_DEV];
static CUcontext primary[MAX_DEV];
static int refcount[MAX_DEV];
static __thread CUcontext stack[MAX_STACK];
static __thread int depth;
static struct { char *base; size_t size; CUcontext ctx; int alive; } allocs[MAX_ALLOC];
static int n_allocs;

/* ------------------------------------------------------------------ log, failure injection */

void stubLog(const char *fmt, ...) {
    const char *path = getenv("FLOWPREP_STUB_LOG");
    char line[512];
    int n;
    va_list ap;
    if (!path || !*path) return;
    n = snprintf(line, sizeof line, "%d ", (int)getpid());
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2) n = sizeof line - 2;
    line[n++] = '\n';
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);  /* O_APPEND: one write per line, */
    if (fd >= 0) { ssize_t w = write(fd, line, n); (void)w; close(fd); }  /* safe across processes */
}

/* True when the comma-separated list in env var `var` names `fn`. */
int stubShouldFail(const char *var, const char *fn) {
    const char *list = getenv(var);
    size_t len = strlen(fn);
    if (!list) return 0;
    for (const char *p = list; (p = strstr(p, fn)) != NULL; p += len)
        if ((p == list || p[-1] == ',') && (p[len] == '\0' || p[len] == ',')) return 1;
    return 0;
}
#define INJECT(fn) do { if (stubShouldFail("FLOWPREP_STUB_CUDA_FAIL", fn)) { \
    stubLog("injected %s", fn); return CUDA_ERROR_UNKNOWN; } } while (0)

/* ------------------------------------------------------------------ devices */

static void load_devices(void) {
    const char *spec = getenv("FLOWPREP_STUB_GPUS");
    char buf[1024], *save = NULL, *item;
    int all = 0;
    static char all_name[MAX_DEV][96];
    static int all_major[MAX_DEV], all_minor[MAX_DEV];
    if (n_dev >= 0) return;
    snprintf(buf, sizeof buf, "%s", spec ? spec : "NVIDIA A100-SXM4-40GB:8.0");
    for (item = strtok_r(buf, ";", &save); item && all < MAX_DEV; item = strtok_r(NULL, ";", &save)) {
        char *colon = strrchr(item, ':');
        int major = 8, minor = 0;
        if (colon) { *colon = '\0'; sscanf(colon + 1, "%d.%d", &major, &minor); }
        snprintf(all_name[all], 96, "%s", item);
        all_major[all] = major; all_minor[all] = minor; all++;
    }
    n_dev = 0;
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    if (!vis) {
        for (int i = 0; i < all; i++) dev_physical[n_dev++] = i;
    } else {  /* like CUDA: indices only here, stop at the first invalid entry */
        char vbuf[256], *vs = NULL;
        snprintf(vbuf, sizeof vbuf, "%s", vis);
        for (item = strtok_r(vbuf, ",", &vs); item; item = strtok_r(NULL, ",", &vs)) {
            char *end; long k = strtol(item, &end, 10);
            if (*end || k < 0 || k >= all) break;
            dev_physical[n_dev++] = (int)k;
        }
    }
    for (int i = 0; i < n_dev; i++) {
        int p = dev_physical[i];
        snprintf(dev_name[i], 96, "%s", all_name[p]);
        dev_major[i] = all_major[p]; dev_minor[i] = all_minor[p];
    }
}

#define NEED_INIT() do { if (!initialised) return CUDA_ERROR_NOT_INITIALIZED; } while (0)
#define NEED_DEV(d) do { if ((d) < 0 || (d) >= n_dev) return CUDA_ERROR_INVALID_DEVICE; } while (0)

CUresult cuInit(unsigned flags) {
    INJECT("cuInit");
    if (flags) return CUDA_ERROR_INVALID_VALUE;
    load_devices();
    initialised = 1;
    return CUDA_SUCCESS;
}

CUresult cuDriverGetVersion(int *v) {
    const char *s = getenv("FLOWPREP_STUB_CUDA_VERSION");
    if (!v) return CUDA_ERROR_INVALID_VALUE;
    *v = s ? atoi(s) : 13000;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int *count) {
    INJECT("cuDeviceGetCount");
    NEED_INIT();
    *count = n_dev;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice *dev, int ordinal) {
    NEED_INIT();
    NEED_DEV(ordinal);
    *dev = ordinal;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice dev) {
    NEED_INIT();
    NEED_DEV(dev);
    if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    snprintf(name, (size_t)len, "%s", dev_name[dev]);
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetAttribute(int *value, int attr, CUdevice dev) {
    NEED_INIT();
    NEED_DEV(dev);
    if (attr == ATTR_CC_MAJOR) *value = dev_major[dev];
    else if (attr == ATTR_CC_MINOR) *value = dev_minor[dev];
    else *value = 0;
    return CUDA_SUCCESS;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
    NEED_INIT();
    NEED_DEV(dev);
    *bytes = (size_t)40 << 30;
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------ contexts */

static int on_stack(CUcontext c) {
    for (int i = 0; i < depth; i++) if (stack[i] == c) return 1;
    return 0;
}

static int valid_handle(CUcontext c) { return c && c->magic == CTX_MAGIC; }

CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev) {
    INJECT("cuDevicePrimaryCtxRetain");
    NEED_INIT();
    NEED_DEV(dev);
    if (!primary[dev] || !primary[dev]->alive) {  /* a fresh object: stale handles stay detectable */
        primary[dev] = calloc(1, sizeof(struct StubCtx));
        primary[dev]->magic = CTX_MAGIC; primary[dev]->device = dev; primary[dev]->alive = 1;
        stubLog("create-context device=%d physical=%d name=%s", dev, dev_physical[dev], dev_name[dev]);
    }
    refcount[dev]++;
    stubLog("retain device=%d physical=%d refcount=%d", dev, dev_physical[dev], refcount[dev]);
    *pctx = primary[dev];
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
    NEED_INIT();
    NEED_DEV(dev);
    if (refcount[dev] <= 0) {
        stubLog("MISUSE release of device %d's primary context, which is not retained", dev);
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    refcount[dev]--;
    stubLog("release device=%d refcount=%d", dev, refcount[dev]);
    if (refcount[dev] == 0) {
        CUcontext c = primary[dev];
        if (on_stack(c))
            stubLog("MISUSE device %d's primary context destroyed while on this thread's context stack", dev);
        for (int i = 0; i < n_allocs; i++)
            if (allocs[i].alive && allocs[i].ctx == c) { allocs[i].alive = 0; free(allocs[i].base); }
        c->alive = 0;
    }
    return CUDA_SUCCESS;
}
CUresult cuDevicePrimaryCtxRelease(CUdevice dev) { return cuDevicePrimaryCtxRelease_v2(dev); }

CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned *flags, int *active) {
    NEED_INIT();
    NEED_DEV(dev);
    *flags = 0;
    *active = refcount[dev] > 0;
    return CUDA_SUCCESS;
}

CUresult cuCtxPushCurrent_v2(CUcontext c) {
    INJECT("cuCtxPushCurrent");
    if (!valid_handle(c)) { stubLog("MISUSE push of an invalid context handle"); return CUDA_ERROR_INVALID_CONTEXT; }
    if (!c->alive) { stubLog("MISUSE push of a destroyed context"); return CUDA_ERROR_INVALID_CONTEXT; }
    if (depth == MAX_STACK) return CUDA_ERROR_UNKNOWN;
    stack[depth++] = c;
    return CUDA_SUCCESS;
}

CUresult cuCtxPopCurrent_v2(CUcontext *pctx) {
    if (depth == 0) { stubLog("MISUSE pop of an empty context stack"); return CUDA_ERROR_INVALID_CONTEXT; }
    CUcontext c = stack[--depth];
    if (pctx) *pctx = c;
    if (!c->alive) { stubLog("MISUSE pop of a destroyed context"); return CUDA_ERROR_INVALID_CONTEXT; }
    return CUDA_SUCCESS;
}

CUresult cuCtxGetCurrent(CUcontext *pctx) {
    *pctx = depth ? stack[depth - 1] : NULL;
    return CUDA_SUCCESS;
}

CUresult cuCtxSetCurrent(CUcontext c) {
    if (c && !c->alive) { stubLog("MISUSE set-current of a destroyed context"); return CUDA_ERROR_INVALID_CONTEXT; }
    if (!c) { if (depth) depth--; return CUDA_SUCCESS; }
    if (depth == 0) stack[depth++] = c; else stack[depth - 1] = c;
    return CUDA_SUCCESS;
}

/* The current context, or NULL after logging a misuse named `what`. */
static CUcontext current(const char *what) {
    if (depth == 0) { stubLog("MISUSE %s without a current context", what); return NULL; }
    if (!stack[depth - 1]->alive) { stubLog("MISUSE %s with a destroyed context current", what); return NULL; }
    return stack[depth - 1];
}

CUresult cuCtxGetDevice(CUdevice *dev) {
    CUcontext c = current("cuCtxGetDevice");
    if (!c) return CUDA_ERROR_INVALID_CONTEXT;
    *dev = c->device;
    return CUDA_SUCCESS;
}

CUresult cuCtxSynchronize(void) {
    INJECT("cuCtxSynchronize");
    return current("cuCtxSynchronize") ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}

/* For the optical-flow stand-in: is `c` a live context, and on which device? (-1 if not) */
int stubContextDevice(CUcontext c) { return valid_handle(c) && c->alive ? c->device : -1; }
int stubDeviceMajor(int dev) { return dev >= 0 && dev < n_dev ? dev_major[dev] : 0; }

/* ------------------------------------------------------------------ memory */

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t size) {
    INJECT("cuMemAlloc");
    CUcontext c = current("cuMemAlloc");
    if (!c) return CUDA_ERROR_INVALID_CONTEXT;
    if (!size || n_allocs == MAX_ALLOC) return CUDA_ERROR_OUT_OF_MEMORY;
    char *p = calloc(1, size);
    if (!p) return CUDA_ERROR_OUT_OF_MEMORY;
    allocs[n_allocs].base = p; allocs[n_allocs].size = size; allocs[n_allocs].ctx = c;
    allocs[n_allocs++].alive = 1;
    *dptr = (CUdeviceptr)(uintptr_t)p;
    return CUDA_SUCCESS;
}

CUresult cuMemFree_v2(CUdeviceptr dptr) {
    if (!current("cuMemFree")) return CUDA_ERROR_INVALID_CONTEXT;
    for (int i = 0; i < n_allocs; i++)
        if (allocs[i].alive && (CUdeviceptr)(uintptr_t)allocs[i].base == dptr) {
            allocs[i].alive = 0; free(allocs[i].base); return CUDA_SUCCESS;
        }
    stubLog("MISUSE cuMemFree of 0x%llx, which is not a live allocation", (unsigned long long)dptr);
    return CUDA_ERROR_INVALID_VALUE;
}

/* Is [first, last) inside one live allocation? */
static int in_bounds(CUdeviceptr first, CUdeviceptr last) {
    for (int i = 0; i < n_allocs; i++) {
        CUdeviceptr b = (CUdeviceptr)(uintptr_t)allocs[i].base;
        if (allocs[i].alive && first >= b && last <= b + allocs[i].size) return 1;
    }
    return 0;
}

typedef struct {
    size_t srcXInBytes, srcY; int srcMemoryType; const void *srcHost; CUdeviceptr srcDevice;
    void *srcArray; size_t srcPitch;
    size_t dstXInBytes, dstY; int dstMemoryType; void *dstHost; CUdeviceptr dstDevice;
    void *dstArray; size_t dstPitch;
    size_t WidthInBytes, Height;
} CUDA_MEMCPY2D;

static char *side(int type, const void *host, CUdeviceptr dev, size_t x, size_t y, size_t pitch,
                  size_t width, size_t height, const char *which) {
    size_t off = y * pitch + x;
    if (type == CU_MEMORYTYPE_HOST) return host ? (char *)host + off : NULL;
    if (type != CU_MEMORYTYPE_DEVICE) { stubLog("MISUSE cuMemcpy2D %s memory type %d unsupported", which, type); return NULL; }
    if (pitch < width) { stubLog("MISUSE cuMemcpy2D %s pitch %zu < width %zu bytes", which, pitch, width); return NULL; }
    if (!in_bounds(dev + off, dev + off + (height - 1) * pitch + width)) {
        stubLog("MISUSE cuMemcpy2D %s out of bounds (0x%llx, pitch %zu, %zux%zu bytes)", which,
                (unsigned long long)dev, pitch, width, height);
        return NULL;
    }
    return (char *)(uintptr_t)(dev + off);
}

CUresult cuMemcpy2D_v2(const CUDA_MEMCPY2D *m) {
    INJECT("cuMemcpy2D");
    if (!current("cuMemcpy2D")) return CUDA_ERROR_INVALID_CONTEXT;
    if (!m->Height || !m->WidthInBytes) return CUDA_SUCCESS;
    char *src = side(m->srcMemoryType, m->srcHost, m->srcDevice, m->srcXInBytes, m->srcY, m->srcPitch,
                     m->WidthInBytes, m->Height, "source");
    char *dst = side(m->dstMemoryType, m->dstHost, m->dstDevice, m->dstXInBytes, m->dstY, m->dstPitch,
                     m->WidthInBytes, m->Height, "destination");
    if (!src || !dst) return CUDA_ERROR_INVALID_VALUE;
    for (size_t r = 0; r < m->Height; r++) memcpy(dst + r * m->dstPitch, src + r * m->srcPitch, m->WidthInBytes);
    return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------ errors, symbol table */

static const char *error_name(CUresult e) {
    switch (e) {
    case CUDA_SUCCESS: return "CUDA_SUCCESS";
    case CUDA_ERROR_INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
    case CUDA_ERROR_OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
    case CUDA_ERROR_NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
    case CUDA_ERROR_NO_DEVICE: return "CUDA_ERROR_NO_DEVICE";
    case CUDA_ERROR_INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
    case CUDA_ERROR_INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
    case CUDA_ERROR_NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
    default: return NULL;
    }
}

CUresult cuGetErrorName(CUresult e, const char **s) {
    *s = error_name(e) ? error_name(e) : "CUDA_ERROR_UNKNOWN";
    return error_name(e) || e == CUDA_ERROR_UNKNOWN ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
CUresult cuGetErrorString(CUresult e, const char **s) { return cuGetErrorName(e, s); }

static const struct { const char *name; void *fn; } SYMBOLS[] = {
    {"cuInit", (void *)cuInit}, {"cuDriverGetVersion", (void *)cuDriverGetVersion},
    {"cuDeviceGetCount", (void *)cuDeviceGetCount}, {"cuDeviceGet", (void *)cuDeviceGet},
    {"cuDeviceGetName", (void *)cuDeviceGetName}, {"cuDeviceGetAttribute", (void *)cuDeviceGetAttribute},
    {"cuDeviceTotalMem", (void *)cuDeviceTotalMem_v2},
    {"cuDevicePrimaryCtxRetain", (void *)cuDevicePrimaryCtxRetain},
    {"cuDevicePrimaryCtxRelease", (void *)cuDevicePrimaryCtxRelease_v2},
    {"cuDevicePrimaryCtxGetState", (void *)cuDevicePrimaryCtxGetState},
    {"cuCtxPushCurrent", (void *)cuCtxPushCurrent_v2}, {"cuCtxPopCurrent", (void *)cuCtxPopCurrent_v2},
    {"cuCtxGetCurrent", (void *)cuCtxGetCurrent}, {"cuCtxSetCurrent", (void *)cuCtxSetCurrent},
    {"cuCtxGetDevice", (void *)cuCtxGetDevice}, {"cuCtxSynchronize", (void *)cuCtxSynchronize},
    {"cuMemAlloc", (void *)cuMemAlloc_v2}, {"cuMemFree", (void *)cuMemFree_v2},
    {"cuMemcpy2D", (void *)cuMemcpy2D_v2},
    {"cuGetErrorName", (void *)cuGetErrorName}, {"cuGetErrorString", (void *)cuGetErrorString},
};

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int version, uint64_t flags, int *status) {
    (void)version; (void)flags;  /* one implementation per name: the newest signature of each */
    for (size_t i = 0; i < sizeof SYMBOLS / sizeof SYMBOLS[0]; i++)
        if (strcmp(symbol, SYMBOLS[i].name) == 0) {
            *pfn = SYMBOLS[i].fn;
            if (status) *status = 0;
            return CUDA_SUCCESS;
        }
    *pfn = NULL;
    if (status) *status = 1;  /* CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND */
    return CUDA_ERROR_NOT_FOUND;
}

CUresult cuGetProcAddress(const char *symbol, void **pfn, int version, uint64_t flags) {
    return cuGetProcAddress_v2(symbol, pfn, version, flags, NULL);
}

/* At exit: the state tests check for balance (reference counts and this thread's stack depth). */
__attribute__((destructor)) static void report_exit(void) {
    char counts[256] = "";
    size_t n = 0;
    int live = 0;
    for (int d = 0; d < n_dev && n < sizeof counts - 16; d++)
        n += (size_t)snprintf(counts + n, sizeof counts - n, "%s%d", d ? "," : "", refcount[d]);
    for (int i = 0; i < n_allocs; i++) live += allocs[i].alive;
    stubLog("exit refcounts=%s stack_depth=%d live_allocations=%d", counts, depth, live);
}

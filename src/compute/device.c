/* device.c: --device parsing and the auto choice between the CPU and a CUDA GPU (device.h). */
#include "cinder/device.h"
#include "cinder/backend.h"
#include "cinder/backend_cuda.h"
#include "cinder/log.h"
#include "cinder/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_GPUS 64

const char *device_kind_name(enum device_kind k)
{
    return k == DEVICE_CPU ? "cpu" : k == DEVICE_CUDA ? "cuda" : "auto";
}

int device_parse(const char *s, struct device_spec *out, char *err)
{
    out->kind = DEVICE_AUTO;
    out->index = -1;
    if (!s || !strcasecmp(s, "auto"))
        return 0;
    if (!strcasecmp(s, "cpu")) {
        out->kind = DEVICE_CPU;
        return 0;
    }
    if (!strncasecmp(s, "cuda", 4)) {
        out->kind = DEVICE_CUDA;
        if (s[4] == 0)
            return 0;
        if (s[4] == ':' && s[5] >= '0' && s[5] <= '9') {
            char *end = NULL;
            long v = strtol(s + 5, &end, 10);
            if (*end == 0 && v >= 0 && v < 1024) {
                out->index = (int)v;
                return 0;
            }
        }
    }
    err_set(err, "bad device '%s' (auto, cpu, cuda, cuda:N)", s);
    return CND_EINVAL;
}

static double gib(size_t b)
{
    return (double)b / 1073741824.0;
}

int device_choose(const struct device_spec *spec, bool cuda_built, const struct device_gpu *gpus,
                  int n_gpus, size_t need_bytes, struct device_choice *out, char *err)
{
    out->kind = DEVICE_CPU;
    out->index = -1;
    out->reason[0] = 0;
    const size_t need = need_bytes + DEVICE_VRAM_HEADROOM;
    if (spec->kind == DEVICE_CPU) {
        snprintf(out->reason, sizeof(out->reason), "--device cpu");
        return 0;
    }
    if (spec->kind == DEVICE_CUDA) {
        if (!cuda_built) {
            err_set(err, "--device cuda: this binary was built without CUDA");
            return CND_EUNSUPPORTED;
        }
        if (n_gpus == 0) {
            err_set(err, "--device cuda: no CUDA device visible (check the driver and "
                         "CUDA_VISIBLE_DEVICES)");
            return CND_ENOTFOUND;
        }
        int i = spec->index < 0 ? 0 : spec->index;
        if (i >= n_gpus) {
            err_set(err, "--device cuda:%d: only %d CUDA device%s visible", i, n_gpus,
                    n_gpus == 1 ? "" : "s");
            return CND_ENOTFOUND;
        }
        out->kind = DEVICE_CUDA;
        out->index = i;
        snprintf(out->reason, sizeof(out->reason), "--device cuda:%d: %s, %.1f GiB free%s", i,
                 gpus[i].name, gib(gpus[i].free_bytes),
                 gpus[i].free_bytes < need ? " (may be too little for the weights)" : "");
        return 0;
    }
    /* auto */
    if (!cuda_built) {
        snprintf(out->reason, sizeof(out->reason), "auto: running on the CPU: built without CUDA");
        return 0;
    }
    if (n_gpus == 0) {
        snprintf(out->reason, sizeof(out->reason),
                 "auto: running on the CPU: no CUDA device visible");
        return 0;
    }
    int best = 0;
    for (int i = 1; i < n_gpus; i++)
        if (gpus[i].free_bytes > gpus[best].free_bytes)
            best = i;
    if (gpus[best].free_bytes < need) {
        snprintf(out->reason, sizeof(out->reason),
                 "auto: running on the CPU: %s (cuda:%d) has %.1f GiB free, the weights need "
                 "%.1f GiB + %.1f GiB headroom",
                 gpus[best].name, best, gib(gpus[best].free_bytes), gib(need_bytes),
                 gib(DEVICE_VRAM_HEADROOM));
        return 0;
    }
    out->kind = DEVICE_CUDA;
    out->index = best;
    snprintf(out->reason, sizeof(out->reason),
             "auto: using %s (cuda:%d), %.1f GiB free for %.1f GiB of weights", gpus[best].name,
             best, gib(gpus[best].free_bytes), gib(need_bytes));
    return 0;
}

int device_select(const struct device_spec *spec, size_t need_bytes, struct device_choice *out,
                  char *err)
{
    struct device_gpu gpus[MAX_GPUS];
    int n = 0;
#ifdef CND_HAVE_CUDA
    const bool built = true;
    if (spec->kind != DEVICE_CPU) {
        int count = backend_cuda_device_count();
        for (int i = 0; i < count && n < MAX_GPUS; i++) {
            struct backend_cuda_device_info di;
            char e2[CND_ERR_LEN];
            if (backend_cuda_device_info(i, &di, e2) != 0) {
                log_warn("device: skipping cuda:%d: %s", i, e2);
                memset(&gpus[n], 0, sizeof(gpus[n]));
                snprintf(gpus[n].name, sizeof(gpus[n].name), "unusable device");
                n++;
                continue;
            }
            memcpy(gpus[n].name, di.name, sizeof(gpus[n].name));
            gpus[n].free_bytes = di.free_bytes;
            gpus[n].total_bytes = di.total_bytes;
            n++;
        }
    }
#else
    const bool built = false;
#endif
    int rc = device_choose(spec, built, gpus, n, need_bytes, out, err);
    if (rc == 0)
        log_info("device: %s", out->reason);
    return rc;
}

struct backend *device_create_backend(const struct device_choice *ch, int n_threads, char *err)
{
    if (ch->kind == DEVICE_CUDA) {
        struct backend_cuda_params p = {.device = ch->index < 0 ? 0 : ch->index};
        return backend_cuda_create(&p, err);
    }
    struct backend_cpu_params p = {.n_threads = n_threads};
    return backend_cpu_create(&p, err);
}

/* device.h: --device auto|cpu|cuda|cuda:N. Parsing, the choice (a pure function over a list of
 * visible GPUs, so it is unit-tested with fake lists), and creating the chosen backend. "auto"
 * takes the visible GPU with the most free memory when the weights fit in it, else runs on the
 * CPU and logs why (no GPU, built without CUDA, not enough memory), as Ollama does.
 * CUDA_VISIBLE_DEVICES is honoured by the CUDA runtime: indexes are among visible devices. */
#ifndef CINDER_DEVICE_H
#define CINDER_DEVICE_H

#include "cinder/common.h"

struct backend;

enum device_kind { DEVICE_AUTO = 0, DEVICE_CPU = 1, DEVICE_CUDA = 2 };

struct device_spec {
    enum device_kind kind;
    int index; /* cuda:N; -1 = not given */
};

struct device_gpu {
    char name[128];
    size_t free_bytes, total_bytes;
};

struct device_choice {
    enum device_kind kind; /* DEVICE_CPU or DEVICE_CUDA */
    int index;             /* CUDA device, or -1 */
    char reason[256];      /* one line: why this device */
};

/* VRAM needed beyond the weights for the KV cache, scratch and cuBLAS (auto's margin). */
#define DEVICE_VRAM_HEADROOM ((size_t)1 << 30)

/* "auto", "cpu", "cuda", "cuda:N" (case-insensitive). 0 or CND_EINVAL + err. */
int device_parse(const char *s, struct device_spec *out, char *err);
const char *device_kind_name(enum device_kind k);

/* Decide from a list of visible GPUs. cuda_built: the binary has the CUDA backend. need_bytes:
 * the weights' size. An explicit cuda or cuda:N that cannot be honoured (no such device, built
 * without CUDA) is an error; auto never fails. */
int device_choose(const struct device_spec *spec, bool cuda_built, const struct device_gpu *gpus,
                  int n_gpus, size_t need_bytes, struct device_choice *out, char *err);

/* Query the visible devices, decide, and log the decision with its reason. */
int device_select(const struct device_spec *spec, size_t need_bytes, struct device_choice *out,
                  char *err);

/* Create the backend of a choice (n_threads for the CPU backend). NULL + err. */
struct backend *device_create_backend(const struct device_choice *ch, int n_threads, char *err);

#endif

/* status.h: error codes (negative, libuv style), their names, and the caller-given
 * message buffer every fallible constructor fills (redis `char *err`). */
#ifndef CINDER_STATUS_H
#define CINDER_STATUS_H

#include "cinder/common.h"

#define CND_ERR_LEN 256

enum cnd_status {
    CND_OK = 0,
    CND_EINVAL = -1,       /* bad argument or request */
    CND_ENOMEM = -2,       /* a large allocation failed */
    CND_EIO = -3,          /* open/read/mmap failed */
    CND_EFORMAT = -4,      /* a file is malformed */
    CND_ENOSPC = -5,       /* out of KV blocks or queue room */
    CND_EUNSUPPORTED = -6, /* valid, but not implemented */
    CND_EDEVICE = -7,      /* accelerator failure */
    CND_ECANCELLED = -8,   /* the request was cancelled */
    CND_EOVERLOAD = -9,    /* queue full: try again later */
    CND_ENOTFOUND = -10,   /* no such thing */
    CND_ERANGE = -11,      /* value out of range (e.g. context exceeded) */
    CND_EINTERNAL = -12,   /* our own bug */
};

/* Name of a status ("CND_EFORMAT"); never NULL. */
const char *cnd_status_str(int status);

/* printf into err (CND_ERR_LEN bytes). err may be NULL. */
void err_set(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Invariants that stay on in release builds: log file:line and abort. */
void cnd_panic(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
#define CND_PANIC(...) cnd_panic(__FILE__, __LINE__, __VA_ARGS__)
#define CND_ASSERT(x)                                                                              \
    do {                                                                                           \
        if (unlikely(!(x)))                                                                        \
            cnd_panic(__FILE__, __LINE__, "assertion failed: %s", #x);                             \
    } while (0)

#endif

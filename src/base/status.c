/* status.c: names for enum cnd_status, err_set() and the release-mode assert. */
#include "cinder/status.h"
#include "cinder/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const char *cnd_status_str(int status)
{
    switch (status) {
    case CND_OK: return "CND_OK";
    case CND_EINVAL: return "CND_EINVAL";
    case CND_ENOMEM: return "CND_ENOMEM";
    case CND_EIO: return "CND_EIO";
    case CND_EFORMAT: return "CND_EFORMAT";
    case CND_ENOSPC: return "CND_ENOSPC";
    case CND_EUNSUPPORTED: return "CND_EUNSUPPORTED";
    case CND_EDEVICE: return "CND_EDEVICE";
    case CND_ECANCELLED: return "CND_ECANCELLED";
    case CND_EOVERLOAD: return "CND_EOVERLOAD";
    case CND_ENOTFOUND: return "CND_ENOTFOUND";
    case CND_ERANGE: return "CND_ERANGE";
    case CND_EINTERNAL: return "CND_EINTERNAL";
    }
    return "CND_E?";
}

void err_set(char *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, CND_ERR_LEN, fmt, ap);
    va_end(ap);
}

void cnd_panic(const char *file, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_write(LL_ERROR, file, line, "PANIC: %s", msg);
    abort();
}

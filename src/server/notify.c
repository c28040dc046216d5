/* notify.c: sd_notify written out, so the daemon needs no libsystemd.
 *
 * The protocol is one AF_UNIX datagram of newline-separated VAR=value lines to the socket in
 * $NOTIFY_SOCKET; a leading '@' means the abstract namespace (first byte of sun_path is NUL,
 * and the address length counts only the bytes used). We open a socket per message: messages
 * are rare (ready, stopping, a watchdog ping every few seconds) and it keeps every call
 * thread-safe and free of state to clean up. */
#include "cinder/notify.h"
#include "cinder/status.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_send(const char *state, char *err)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path)) {
        err_set(err, "NOTIFY_SOCKET '%s': not an absolute path or @abstract name", path);
        return CND_EINVAL;
    }
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = 0;
    socklen_t sa_len =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err_set(err, "notify: socket: %s", strerror(errno));
        return CND_EIO;
    }
    ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, sa_len);
    int saved = errno;
    close(fd);
    if (n < 0) {
        err_set(err, "notify: sendto %s: %s", path, strerror(saved));
        return CND_EIO;
    }
    return 0;
}

int notify_ready(void)
{
    return notify_send("READY=1", NULL);
}

int notify_stopping(void)
{
    return notify_send("STOPPING=1", NULL);
}

int notify_watchdog(void)
{
    return notify_send("WATCHDOG=1", NULL);
}

int notify_status(const char *fmt, ...)
{
    char msg[512];
    int off = snprintf(msg, sizeof(msg), "STATUS=");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + off, sizeof(msg) - (size_t)off, fmt, ap);
    va_end(ap);
    /* a newline would start a new VAR=value line that we did not mean to send */
    for (char *p = msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
    return notify_send(msg, NULL);
}

uint64_t notify_watchdog_usec(void)
{
    const char *us = getenv("WATCHDOG_USEC");
    if (!us || !*us)
        return 0;
    const char *pid = getenv("WATCHDOG_PID");
    if (pid && *pid) {
        char *end;
        long p = strtol(pid, &end, 10);
        if (*end || p != (long)getpid())
            return 0;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(us, &end, 10);
    if (errno || *end || us[0] == '-')
        return 0;
    return (uint64_t)v;
}

/* notify.h: the systemd notify protocol (sd_notify) without libsystemd: datagrams to the
 * socket named by $NOTIFY_SOCKET ("@name" = Linux abstract namespace). When the variable is
 * unset (not started by systemd with Type=notify) every call does nothing and returns 0.
 * Thread-safe: each call opens, sends on, and closes its own socket. */
#ifndef CINDER_NOTIFY_H
#define CINDER_NOTIFY_H

#include "cinder/common.h"

/* Send a raw state string, e.g. "READY=1\nSTATUS=serving". Returns 0 (also when there is no
 * socket) or CND_EIO / CND_EINVAL with the reason in err (may be NULL). */
int notify_send(const char *state, char *err);
int notify_ready(void);    /* READY=1: start-up done, the port is open */
int notify_stopping(void); /* STOPPING=1: shutdown began */
int notify_watchdog(void); /* WATCHDOG=1: still alive (feed it every notify_watchdog_usec()/2) */
int notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* STATUS=... */

/* The watchdog interval in microseconds from $WATCHDOG_USEC, or 0 when no watchdog is asked
 * for us: unset, unparsable, or $WATCHDOG_PID names another process. */
uint64_t notify_watchdog_usec(void);

#endif

/* log.c: the one logging module. Lines are assembled in a stack buffer and written with a
 * single write(2) so lines from different threads never interleave. */
#include "cinder/log.h"
#include "cinder/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum log_level log_level_current = LL_INFO;
static log_sink_fn log_sink;
static void *log_sink_ud;
static _Thread_local char log_thread_name[16] = "main";

void log_set_level(enum log_level level)
{
    log_level_current = level;
}

int log_level_parse(const char *s, enum log_level *out)
{
    static const char *names[] = {"debug", "info", "warn", "error", "none"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return CND_EINVAL;
}

void log_set_thread_name(const char *name)
{
    snprintf(log_thread_name, sizeof(log_thread_name), "%s", name);
}

void log_set_sink(log_sink_fn sink, void *ud)
{
    log_sink = sink;
    log_sink_ud = ud;
}

void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
{
    static const char letters[] = "DIWE";
    char buf[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    int n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %c [%s] %s:%d ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, letters[level < LL_NONE ? level : 3], log_thread_name,
                     base, line);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(buf))
        n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(buf) - 1)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    buf[n] = 0;
    if (log_sink) {
        log_sink(level, buf, log_sink_ud);
        return;
    }
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    CND_UNUSED(w);
}

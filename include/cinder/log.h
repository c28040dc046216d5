/* log.h: leveled logging; the level is checked in the macro so nothing is formatted below it.
 * One write(2) per line: "2025-01-01T12:00:00.123Z I [thread] file.c:42 message". Thread-safe. */
#ifndef CINDER_LOG_H
#define CINDER_LOG_H

#include "cinder/common.h"

enum log_level { LL_DEBUG = 0, LL_INFO = 1, LL_WARN = 2, LL_ERROR = 3, LL_NONE = 4 };

extern enum log_level log_level_current;

typedef void (*log_sink_fn)(enum log_level level, const char *line, void *ud);

void log_set_level(enum log_level level);
/* Parse "debug|info|warn|error|none"; returns -CND_EINVAL on anything else. */
int log_level_parse(const char *s, enum log_level *out);
/* Name of the calling thread in log lines (at most 15 chars kept). */
void log_set_thread_name(const char *name);
/* Route lines to sink instead of stderr (NULL restores stderr). For tests. */
void log_set_sink(log_sink_fn sink, void *ud);
void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define CND_LOG(level, ...)                                                                        \
    do {                                                                                           \
        if ((level) >= log_level_current)                                                          \
            log_write((level), __FILE__, __LINE__, __VA_ARGS__);                                   \
    } while (0)
#define log_debug(...) CND_LOG(LL_DEBUG, __VA_ARGS__)
#define log_info(...)  CND_LOG(LL_INFO, __VA_ARGS__)
#define log_warn(...)  CND_LOG(LL_WARN, __VA_ARGS__)
#define log_error(...) CND_LOG(LL_ERROR, __VA_ARGS__)

#endif

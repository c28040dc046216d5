/* common.h: feature macros and tiny helpers every module includes first. */
#ifndef CINDER_COMMON_H
#define CINDER_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* madvise, pthread_setname_np, memmem */
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define CND_UNUSED(x) ((void)(x))
/* a static function some builds do not call (e.g. one shape of a generated kernel family) */
#define CND_MAYBE_UNUSED __attribute__((unused))
#define ARRAY_SIZE(a)    (sizeof(a) / sizeof((a)[0]))
#define CND_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define CND_MAX(a, b)    ((a) > (b) ? (a) : (b))
#define likely(x)        __builtin_expect(!!(x), 1)
#define unlikely(x)      __builtin_expect(!!(x), 0)

#endif

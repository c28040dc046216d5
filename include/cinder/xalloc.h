/* xalloc.h: small allocations that abort on failure (redis zmalloc). Large ones (weights, KV,
 * device memory) go through calls that return -CND_ENOMEM instead. */
#ifndef CINDER_XALLOC_H
#define CINDER_XALLOC_H

#include "cinder/common.h"

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Grow *items (of *cap elements of size elem) to hold at least need elements. */
void xgrow(void **items, size_t *cap, size_t need, size_t elem);

#endif

/* mapped_file.h: a whole file mapped read-only (weights are used in place from here). */
#ifndef CINDER_MAPPED_FILE_H
#define CINDER_MAPPED_FILE_H

#include "cinder/common.h"

struct mapped_file {
    const uint8_t *data; /* NULL for an empty file */
    size_t size;
    char *path;  /* owned copy */
    bool mapped; /* false when wrapping caller memory */
};

/* Map path read-only. Returns 0 or -CND_EIO with a message naming the file. */
int mapped_file_init(struct mapped_file *mf, const char *path, char *err);
/* Wrap a memory buffer (not owned) so parsers can run on bytes that never were a file. */
void mapped_file_init_memory(struct mapped_file *mf, const void *data, size_t size,
                             const char *name);
void mapped_file_deinit(struct mapped_file *mf);
/* Ask for transparent huge pages on the mapping (a hint; errors ignored). */
void mapped_file_advise_hugepages(const struct mapped_file *mf);

#endif

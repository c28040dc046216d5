/* mapped_file.c: read-only mmap of model files. The mapping is private and never written, so
 * many processes share the page cache and start-up costs no copy. */
#include "cinder/mapped_file.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int mapped_file_init(struct mapped_file *mf, const char *path, char *err)
{
    memset(mf, 0, sizeof(*mf));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return CND_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err_set(err, "%s: not a regular file", path);
        close(fd);
        return CND_EIO;
    }
    mf->size = (size_t)st.st_size;
    if (mf->size > 0) {
        void *p = mmap(NULL, mf->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            err_set(err, "%s: mmap failed: %s", path, strerror(errno));
            close(fd);
            return CND_EIO;
        }
        mf->data = p;
        mf->mapped = true;
    }
    close(fd);
    mf->path = xstrdup(path);
    return 0;
}

void mapped_file_init_memory(struct mapped_file *mf, const void *data, size_t size,
                             const char *name)
{
    mf->data = data;
    mf->size = size;
    mf->path = xstrdup(name);
    mf->mapped = false;
}

void mapped_file_deinit(struct mapped_file *mf)
{
    if (mf->mapped && mf->data)
        munmap((void *)(uintptr_t)mf->data, mf->size);
    free(mf->path);
    memset(mf, 0, sizeof(*mf));
}

void mapped_file_advise_hugepages(const struct mapped_file *mf)
{
    if (!mf->mapped || !mf->data)
        return;
#ifdef MADV_HUGEPAGE
    madvise((void *)(uintptr_t)mf->data, mf->size, MADV_HUGEPAGE);
#endif
    madvise((void *)(uintptr_t)mf->data, mf->size, MADV_WILLNEED);
}

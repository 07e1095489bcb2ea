/* bufpool: reused page-aligned I/O buffers (see bufpool.h). */
#include "bufpool.h"

#include <stdint.h>
#include <stdlib.h>

#define MIN_SHIFT 12                 /* 4 KiB */
#define MAX_SHIFT 20                 /* 1 MiB: NB_MAX_DATA */
#define CLASSES (MAX_SHIFT - MIN_SHIFT + 1)

/* A kept buffer links to the next through its first bytes. */
struct kept {
    struct kept *next;
};

static struct kept *classes[CLASSES];
static size_t kept_bytes;

/* The class of len, or -1 when it is too big to keep. */
static int class_of(size_t len)
{
    int c = 0;
    while (c < CLASSES && ((size_t)1 << (MIN_SHIFT + c)) < len)
        c++;
    return c < CLASSES ? c : -1;
}

void *nb_buf_get(size_t len)
{
    int c = class_of(len);
    if (c >= 0 && classes[c]) {
        struct kept *k = classes[c];
        classes[c] = k->next;
        kept_bytes -= (size_t)1 << (MIN_SHIFT + c);
        return k;
    }
    void *p;
    size_t size = c >= 0 ? (size_t)1 << (MIN_SHIFT + c) : len;
    return posix_memalign(&p, (size_t)1 << MIN_SHIFT, size) == 0 ? p : NULL;
}

void nb_buf_put(void *buf, size_t len)
{
    if (!buf)
        return;
    int c = class_of(len);
    size_t size = c >= 0 ? (size_t)1 << (MIN_SHIFT + c) : 0;
    if (c < 0 || kept_bytes + size > NB_BUFPOOL_KEEP) {
        free(buf);
        return;
    }
    struct kept *k = buf;
    k->next = classes[c];
    classes[c] = k;
    kept_bytes += size;
}

void nb_buf_trim(void)
{
    for (int c = 0; c < CLASSES; c++)
        while (classes[c]) {
            struct kept *k = classes[c];
            classes[c] = k->next;
            free(k);
        }
    kept_bytes = 0;
}

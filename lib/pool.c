/* Emitting keeps an event and its deliveries until they are delivered, so a context that
 * nobody drives yet grows on every emit. From malloc, that growth touches fresh pages one at
 * a time, each a page fault on the emitting thread (tens of microseconds each in a virtual
 * machine, against about one for a page faulted in with the rest of its mapping). The pool
 * takes memory in chunks mapped with MAP_POPULATE, the first ones at wh_new, and keeps blocks
 * given back on free lists by size, so that emits reuse memory faulted in already. Chunks go
 * back to the system only with the context: the pool holds the most that was ever pending.
 * Under AddressSanitizer it is plain malloc, so that the sanitizer still sees every block. */
#include "pool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define GRAIN 16                 /* block sizes are multiples of it, as malloc's */
#define N_CLASSES 256            /* up to GRAIN * N_CLASSES bytes; larger from the heap */
#define CHUNK ((size_t)2 << 20) /* faulted in at once; a huge page when the kernel has one */

#if defined(__SANITIZE_ADDRESS__)
#define POOL_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_OFF 1
#endif
#endif

typedef struct chunk {
    struct chunk *next;
    size_t len;
} chunk;

/* Before every block: where it goes back to (NULL: the heap). 16 bytes keep the block's
 * alignment. */
typedef struct header {
    wh__pool *pool;
    size_t cls;
} header;

typedef struct free_block {
    struct free_block *next;
} free_block;

struct wh__pool {
    pthread_mutex_t mu; /* events are given back from any thread, without the context lock */
    free_block *free[N_CLASSES];
    char *at, *end; /* the unused rest of the newest chunk */
    chunk *chunks;  /* every chunk blocks were cut from */
    chunk *spare;   /* mapped while another thread mapped one too, linked by next */
};

/* A chunk of at least len bytes, faulted in; NULL when out of memory. Chunks are aligned to
 * their size, so that the kernel may back each with one huge page. No lock: it may take
 * milliseconds, and the others allocate and free meanwhile. */
static chunk *map_chunk(size_t len)
{
    len = (len + CHUNK - 1) / CHUNK * CHUNK;
    char *m = mmap(NULL, len + CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    char *a = (char *)(((uintptr_t)m + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
    if (a > m)
        munmap(m, (size_t)(a - m));
    if (a + len < m + len + CHUNK)
        munmap(a + len, (size_t)(m + len + CHUNK - (a + len)));
    madvise(a, len, MADV_HUGEPAGE); /* a hint: without it, 4 kB pages */
    /* every page's first touch traps (in a virtual machine, twice: tens of microseconds):
     * taken now, all at once, rather than one page every few emits */
    for (size_t off = 0; off < len; off += 4096)
        a[off] = 0;
    chunk *c = (chunk *)a;
    c->len = len;
    return c;
}

/* Under mu: blocks are cut from c from now on (the rest of the previous chunk, less than a
 * block, stays unused). */
static void use_chunk(wh__pool *p, chunk *c)
{
    c->next = p->chunks;
    p->chunks = c;
    p->at = (char *)c + sizeof(header) * ((sizeof *c + sizeof(header) - 1) / sizeof(header));
    p->end = (char *)c + c->len;
}

wh__pool *wh__pool_new(size_t reserve)
{
    wh__pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
#ifndef POOL_OFF
    chunk *c = reserve ? map_chunk(reserve) : NULL;
    if (reserve && !c) {
        wh__pool_destroy(p);
        return NULL;
    }
    if (c)
        use_chunk(p, c);
#else
    (void)reserve;
#endif
    return p;
}

void wh__pool_destroy(wh__pool *p)
{
    if (!p)
        return;
    for (int list = 0; list < 2; list++)
        for (chunk *c = list ? p->spare : p->chunks, *next; c; c = next) {
            next = c->next;
            munmap(c, c->len);
        }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void *wh__pool_alloc(wh__pool *p, size_t n)
{
    size_t cls = (n + sizeof(header) + GRAIN - 1) / GRAIN - 1;
#ifdef POOL_OFF
    p = NULL;
#endif
    header *h = NULL;
    if (p && cls < N_CLASSES) {
        size_t size = (cls + 1) * GRAIN;
        pthread_mutex_lock(&p->mu);
        for (;;) {
            if (p->free[cls]) {
                h = (header *)p->free[cls];
                p->free[cls] = p->free[cls]->next;
            } else if ((size_t)(p->end - p->at) >= size) {
                h = (header *)p->at;
                p->at += size;
            } else if (p->spare) {
                chunk *c = p->spare;
                p->spare = c->next;
                use_chunk(p, c);
                continue;
            } else {
                pthread_mutex_unlock(&p->mu);
                chunk *c = map_chunk(CHUNK);
                pthread_mutex_lock(&p->mu);
                if (!c)
                    break;
                /* another thread's new chunk came first: this one is next */
                if (p->spare || (size_t)(p->end - p->at) >= size)
                    c->next = p->spare, p->spare = c;
                else
                    use_chunk(p, c);
                continue;
            }
            break;
        }
        pthread_mutex_unlock(&p->mu);
        if (!h)
            return NULL;
    } else {
        if (n > SIZE_MAX - sizeof(header) || !(h = malloc(sizeof(header) + n)))
            return NULL;
        p = NULL;
    }
    h->pool = p;
    h->cls = cls;
    return h + 1;
}

void wh__pool_free(void *block)
{
    if (!block)
        return;
    header *h = (header *)block - 1;
    wh__pool *p = h->pool;
    if (!p) {
        free(h);
        return;
    }
    size_t cls = h->cls;
    free_block *f = (free_block *)h;
    pthread_mutex_lock(&p->mu);
    f->next = p->free[cls];
    p->free[cls] = f;
    pthread_mutex_unlock(&p->mu);
}

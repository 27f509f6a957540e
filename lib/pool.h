/* A context's pool for what every emit keeps until delivery: its event and its deliveries. */
#ifndef WH_POOL_H
#define WH_POOL_H

#include <stddef.h>

typedef struct wh__pool wh__pool;

/* A pool with `reserve` bytes mapped and faulted in already; NULL when out of memory. */
wh__pool *wh__pool_new(size_t reserve);
/* Unmaps everything: every block from it must have been given back (or be dead). */
void wh__pool_destroy(wh__pool *p);
/* A block of n bytes aligned to 16 (from the heap when p is NULL or n is large); NULL when
 * out of memory. */
void *wh__pool_alloc(wh__pool *p, size_t n);
/* Gives back a block of wh__pool_alloc (to whichever pool it came from); NULL is ignored. */
void wh__pool_free(void *block);

#endif

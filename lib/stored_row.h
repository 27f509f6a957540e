/* Private to libwebhook: An endpoint's row as the store has it after a change (others'
 * changes included), copied out of the store's transaction and applied once it has
 * committed. */
#ifndef WH_STORED_ROW_H
#define WH_STORED_ROW_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

typedef struct wh__stored_row {
    wh__endpoint_row row;
    char *block; /* the row's strings; NULL: no row was given */
    size_t size;
    bool oom;
} wh__stored_row;

/* The store's row callback: ud is a wh__stored_row, zeroed before the first call. */
void wh__stored_row_copy(void *ud, const wh__endpoint_row *row);
/* Wipes (the row holds secrets) and frees the copy. */
void wh__stored_row_free(wh__stored_row *c);

#endif

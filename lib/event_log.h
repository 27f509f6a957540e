/* Private to libwebhook: an engine's log of emits, an append-only file beside a SQLite store.
 *
 * An emit written here is as safe as one committed to the store with store.sync=normal: it
 * is in the kernel's page cache when the append returns, so it outlives the process (not a
 * power cut, which a commit without fsync does not outlive either). The engine folds its log
 * into the store in batches; the engine that takes over a dead one folds what it left.
 *
 * A record is: magic, payload length, log sequence number, payload, and the first 16 bytes
 * of the SHA-256 of the rest; a reader stops at the first record that is short or does not
 * match, which only a write cut short by the process's death can leave (an append that fails
 * is cut off again before the next). The owner holds an exclusive flock(2) on the file for as
 * long as it is open, so a reader that gets the lock knows its writer is gone. */
#ifndef WH_EVENT_LOG_H
#define WH_EVENT_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wh__event_log wh__event_log;

/* One event as logged; the reader's strings are NUL-terminated and live for its callback. */
typedef struct wh__log_record {
    int64_t lsn; /* set by append: 1, 2, ... on from the number the log was opened with */
    int64_t created_ms;
    int sendable;
    const char *id, *type, *targets /* the SQLite store's form, see add_event */;
    const char *body;
    size_t body_len;
} wh__log_record;

/* Opens `path` (created, mode 0600, when `create`) and locks it. When another process (or
 * another open in this one) holds the lock: WH_ERR_STATE if `must_lock`, else it is opened
 * unlocked, to be read only. WH_ERR_NOTFOUND: there is no such file. Appends number records
 * from `next_lsn` on. */
int wh__event_log_open(const char *path, bool create, bool must_lock, int64_t next_lsn,
                       wh__event_log **out, char *errstr, size_t errlen);
/* Whether this open holds the lock (its writer, or a reader whose writer is gone). */
bool wh__event_log_locked(const wh__event_log *l);
/* Closes it; `remove` deletes the file first when it holds the lock (so no one reads it
 * half gone, and a writer that still lives keeps its file). */
void wh__event_log_close(wh__event_log *l, bool remove);

/* Writes the records, numbering them: copied through the mapping when they fit in it, else
 * with one write(2); all or none, also for a reader after
 * the process died in the middle. WH_ERR_STATE: not written, and the log takes no more (an
 * earlier append could not be undone, or a record would be over 64 MiB): commit instead. */
int wh__event_log_append(wh__event_log *l, wh__log_record *r, size_t n);
/* Calls cb for each whole record numbered after `after_lsn`, in order; a non-zero return
 * stops it and is returned. */
int wh__event_log_read(wh__event_log *l, int64_t after_lsn,
                       int (*cb)(void *ud, const wh__log_record *r), void *ud);
/* Where a reading ended: the number of the file's first record, the last one read, and the
 * end of the last whole append (all 0 for none). */
typedef struct wh__log_mark {
    int64_t first_lsn, last_lsn, end;
} wh__log_mark;
/* What the last wh__event_log_read of this open saw. */
wh__log_mark wh__event_log_mark(const wh__event_log *l);
/* Whether the file holds nothing that `m` does not: no record after its end, and the same
 * first record (a log written again from its start has a new one). Two small reads, where
 * the file's size and time would not do: a writer that stores through a mapping changes
 * neither. */
bool wh__event_log_unchanged(wh__event_log *l, const wh__log_mark *m);
/* Empties the file when its last record is `upto_lsn` (all of it is in the store now), and
 * says whether it did; numbering goes on. */
bool wh__event_log_clear(wh__event_log *l, int64_t upto_lsn);
/* The number the last append gave (0: none yet). */
int64_t wh__event_log_last_lsn(wh__event_log *l);

#endif

/* Private to the SQLite store: checkpoints on a thread of their own.
 *
 * A passive checkpoint copies the WAL into the database file and syncs it; done on the
 * driver's connection it holds that connection (and so every emit and commit) for the whole
 * copy. On a second connection it runs beside the writer: WAL mode lets a checkpoint and
 * one writer work at once. The thread starts at the first checkpoint asked of it, so that a
 * store nobody writes to (a tool's) never has one.
 *
 * A checkpoint beside a busy writer never ends with the whole WAL copied (frames keep coming),
 * and SQLite starts the WAL over from its beginning only when it is: so each pass on the
 * thread is followed by a short one on the writer's own connection, which copies what was
 * written during the pass and lets the next write start the WAL over (see upkeep). */
#ifndef WH_SQLITE_CHECKPOINTER_H
#define WH_SQLITE_CHECKPOINTER_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include <sqlite3.h>

/* What the WAL file is cut back to after a checkpoint. Each interval between checkpoints
 * fills it from its start; cut below what an interval writes, the file is extended again
 * (blocks allocated) and cut (blocks freed) every time: 16 MB under a sustained 6,000 events/s
 * did that, and 128 MB took 1.11-1.20x the events/s. */
#define WH__SQ_WAL_LIMIT (128 << 20)

typedef struct wh__sq_checkpointer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sqlite3 *db; /* the thread's own connection */
    bool started, due, running, stop;
    pid_t pid; /* the process that started the thread: a forked child has none */
} wh__sq_checkpointer;

void wh__sq_checkpointer_init(wh__sq_checkpointer *k);
/* Asks for a checkpoint of the database at `path` (the thread and its connection are made
 * on the first call) and returns at once. false: no thread could be made; the caller
 * checkpoints on its own connection. */
bool wh__sq_checkpointer_ask(wh__sq_checkpointer *k, const char *path, bool sync_full);
/* Whether the pass asked for last is over (or none was asked). */
bool wh__sq_checkpointer_idle(wh__sq_checkpointer *k);
/* Stops the thread (a checkpoint under way finishes first) and closes its connection. */
void wh__sq_checkpointer_stop(wh__sq_checkpointer *k);

#endif

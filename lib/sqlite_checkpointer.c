/* Checkpoints of a SQLite store on a thread with its own connection (see the header). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sqlite_checkpointer.h"

void wh__sq_checkpointer_init(wh__sq_checkpointer *k)
{
    memset(k, 0, sizeof *k);
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
}

static void *checkpoint_main(void *arg)
{
    wh__sq_checkpointer *k = arg;
    pthread_mutex_lock(&k->mu);
    for (;;) {
        while (!k->due && !k->stop)
            pthread_cond_wait(&k->cv, &k->mu);
        if (k->stop)
            break;
        k->due = false;
        k->running = true;
        pthread_mutex_unlock(&k->mu);
        /* PASSIVE: never waits for readers or the writer; what it cannot copy now waits for
         * the next one. A failure is the next one's to retry, as on the driver's connection. */
        sqlite3_wal_checkpoint_v2(k->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_lock(&k->mu);
        k->running = false;
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

static bool start(wh__sq_checkpointer *k, const char *path, bool sync_full)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return false;
    }
    /* the checkpoint syncs as the store's own connection would, and cuts the WAL back to
     * the same limit */
    char pragmas[128];
    snprintf(pragmas, sizeof pragmas, "PRAGMA synchronous=%s; PRAGMA journal_size_limit=%d;",
             sync_full ? "FULL" : "NORMAL", WH__SQ_WAL_LIMIT);
    if (sqlite3_exec(db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return false;
    }
    k->db = db;
    k->pid = getpid();
    if (pthread_create(&k->thread, NULL, checkpoint_main, k) != 0) {
        sqlite3_close(db);
        k->db = NULL;
        return false;
    }
    k->started = true;
    return true;
}

bool wh__sq_checkpointer_ask(wh__sq_checkpointer *k, const char *path, bool sync_full)
{
    pthread_mutex_lock(&k->mu);
    bool ok = k->started ? k->pid == getpid() : start(k, path, sync_full);
    if (ok) {
        k->due = true;
        pthread_cond_signal(&k->cv);
    }
    pthread_mutex_unlock(&k->mu);
    return ok;
}

bool wh__sq_checkpointer_idle(wh__sq_checkpointer *k)
{
    pthread_mutex_lock(&k->mu);
    bool idle = !k->due && !k->running;
    pthread_mutex_unlock(&k->mu);
    return idle;
}

void wh__sq_checkpointer_stop(wh__sq_checkpointer *k)
{
    /* a forked child has a copy of the state but not the thread: nothing to join */
    if (k->started && k->pid == getpid()) {
        pthread_mutex_lock(&k->mu);
        k->stop = true;
        pthread_cond_signal(&k->cv);
        pthread_mutex_unlock(&k->mu);
        pthread_join(k->thread, NULL);
        sqlite3_close(k->db);
    }
    k->started = false;
    k->db = NULL;
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
}

/* The committer thread: one per context on a durable store (see committer.h). */
#include "committer.h"

#include "ctx.h"
#include "error.h"

static void *committer_main(void *arg)
{
    wh_ctx *ctx = arg;
    wh__committer *c = &ctx->committer;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->asked && !c->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->stop)
            break;
        c->asked = false;
        pthread_mutex_unlock(&c->mu);
        /* a failure keeps the outcomes queued and says when to try again: the driver asks */
        wh__commit_results(ctx);
        wh__wake(ctx);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int wh__committer_start(wh_ctx *ctx)
{
    wh__committer *c = &ctx->committer;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (pthread_create(&c->thread, NULL, committer_main, ctx) != 0) {
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "store.commit_thread: could not start a thread");
    }
    c->running = true;
    return WH_OK;
}

bool wh__committer_running(const wh_ctx *ctx) { return ctx->committer.running; }

void wh__committer_ask(wh_ctx *ctx)
{
    wh__committer *c = &ctx->committer;
    pthread_mutex_lock(&c->mu);
    c->asked = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void wh__committer_stop(wh_ctx *ctx)
{
    wh__committer *c = &ctx->committer;
    if (!c->running)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    c->running = false;
}

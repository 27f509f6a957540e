/* libwebhook inside a libuv loop, through the header-only adapter <webhook/adapters/libuv.h>.
 *
 *   loop_libuv --url http://127.0.0.1:PORT/hooks --secret whsec_... [--events N]
 *
 * The host's own work is a timer that emits one event every 20 ms; the adapter drives delivery
 * in the same loop. When the last event has finished, the host detaches the adapter and stops
 * its timer, the loop has nothing left to watch, and uv_run returns. (See example.h.) */
#include <uv.h>

#include "example.h"
#include "webhook/adapters/libuv.h"

typedef struct host {
    example ex;
    uv_timer_t tick, give_up;
    wh_libuv *adapter;
    int emitted;
} host;

static void on_closed(uv_handle_t *h) { (void)h; }

static void stop(host *h)
{
    wh_libuv_detach(h->adapter);
    h->adapter = NULL;
    uv_close((uv_handle_t *)&h->tick, on_closed);
    uv_close((uv_handle_t *)&h->give_up, on_closed);
}

/* From the log sink, inside the adapter's wh_poll: detaching there is allowed. */
static void on_done(example *ex) { stop(ex->host); }

static void on_give_up(uv_timer_t *t)
{
    fprintf(stderr, "loop_libuv: gave up waiting\n");
    stop(t->data);
}

static void on_tick(uv_timer_t *t)
{
    host *h = t->data;
    if (h->emitted < h->ex.events && example_emit(&h->ex, h->emitted++) < 0)
        stop(h);
    else if (h->emitted == h->ex.events)
        uv_timer_stop(t);
}

int main(int argc, char **argv)
{
    host h = {0};
    example_init(&h.ex, argc, argv);
    h.ex.on_done = on_done;
    h.ex.host = &h;
    uv_loop_t *loop = uv_default_loop();
    int rc = wh_libuv_attach(h.ex.ctx, loop, &h.adapter);
    if (rc != WH_OK) {
        fprintf(stderr, "loop_libuv: wh_libuv_attach: %s\n", wh_strerror(rc));
        return 1;
    }
    uv_timer_init(loop, &h.tick);
    h.tick.data = &h;
    uv_timer_start(&h.tick, on_tick, 0, 20);
    uv_timer_init(loop, &h.give_up);
    h.give_up.data = &h;
    uv_timer_start(&h.give_up, on_give_up, GIVE_UP_MS, 0);
    uv_run(loop, UV_RUN_DEFAULT); /* returns once nothing is left to watch */
    uv_loop_close(loop);
    return example_finish(&h.ex);
}

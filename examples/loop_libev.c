/* libwebhook inside a libev loop, through the header-only adapter <webhook/adapters/libev.h>.
 *
 *   loop_libev --url http://127.0.0.1:PORT/hooks --secret whsec_... [--events N]
 *
 * The host's own work is a timer that emits one event every 20 ms; the adapter drives delivery
 * in the same loop. When the last event has finished, the host detaches the adapter and stops
 * its timers, and ev_run returns. (See example.h.) */
#include <ev.h>

#include "example.h"
#include "webhook/adapters/libev.h"

typedef struct host {
    example ex;
    struct ev_loop *loop;
    ev_timer tick, give_up;
    wh_libev *adapter;
    int emitted;
} host;

static void stop(host *h)
{
    wh_libev_detach(h->adapter);
    h->adapter = NULL;
    ev_timer_stop(h->loop, &h->tick);
    ev_timer_stop(h->loop, &h->give_up);
}

/* From the log sink, inside the adapter's wh_poll: detaching there is allowed. */
static void on_done(example *ex) { stop(ex->host); }

static void on_give_up(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    fprintf(stderr, "loop_libev: gave up waiting\n");
    stop(w->data);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    host *h = w->data;
    (void)revents;
    if (h->emitted < h->ex.events && example_emit(&h->ex, h->emitted++) < 0)
        stop(h);
    else if (h->emitted == h->ex.events)
        ev_timer_stop(loop, w);
}

int main(int argc, char **argv)
{
    host h = {0};
    example_init(&h.ex, argc, argv);
    h.ex.on_done = on_done;
    h.ex.host = &h;
    h.loop = ev_default_loop(0);
    int rc = wh_libev_attach(h.ex.ctx, h.loop, &h.adapter);
    if (rc != WH_OK) {
        fprintf(stderr, "loop_libev: wh_libev_attach: %s\n", wh_strerror(rc));
        return 1;
    }
    ev_timer_init(&h.tick, on_tick, 0., 0.020);
    h.tick.data = &h;
    ev_timer_start(h.loop, &h.tick);
    ev_timer_init(&h.give_up, on_give_up, GIVE_UP_MS / 1000.0, 0.);
    h.give_up.data = &h;
    ev_timer_start(h.loop, &h.give_up);
    ev_run(h.loop, 0); /* returns once no watcher is left */
    ev_loop_destroy(h.loop);
    return example_finish(&h.ex);
}

/* libwebhook inside a libevent loop, through the header-only adapter
 * <webhook/adapters/libevent.h>.
 *
 *   loop_libevent --url http://127.0.0.1:PORT/hooks --secret whsec_... [--events N]
 *
 * The host's own work is a timer that emits one event every 20 ms; the adapter drives delivery
 * in the same loop. When the last event has finished, the host detaches the adapter and
 * removes its timers, and event_base_dispatch returns. (See example.h.) */
#include <event2/event.h>

#include "example.h"
#include "webhook/adapters/libevent.h"

typedef struct host {
    example ex;
    struct event *tick, *give_up;
    wh_libevent *adapter;
    int emitted;
} host;

static void stop(host *h)
{
    wh_libevent_detach(h->adapter);
    h->adapter = NULL;
    event_del(h->tick);
    event_del(h->give_up);
}

/* From the log sink, inside the adapter's wh_poll: detaching there is allowed. */
static void on_done(example *ex) { stop(ex->host); }

static void on_give_up(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    fprintf(stderr, "loop_libevent: gave up waiting\n");
    stop(ud);
}

static void on_tick(evutil_socket_t fd, short what, void *ud)
{
    host *h = ud;
    (void)fd;
    (void)what;
    if (h->emitted < h->ex.events && example_emit(&h->ex, h->emitted++) < 0)
        stop(h);
    else if (h->emitted == h->ex.events)
        event_del(h->tick);
}

int main(int argc, char **argv)
{
    host h = {0};
    example_init(&h.ex, argc, argv);
    h.ex.on_done = on_done;
    h.ex.host = &h;
    struct event_base *base = event_base_new();
    if (!base)
        return 1;
    int rc = wh_libevent_attach(h.ex.ctx, base, &h.adapter);
    if (rc != WH_OK) {
        fprintf(stderr, "loop_libevent: wh_libevent_attach: %s\n", wh_strerror(rc));
        return 1;
    }
    h.tick = event_new(base, -1, EV_PERSIST, on_tick, &h);
    h.give_up = evtimer_new(base, on_give_up, &h);
    event_add(h.tick, &(struct timeval){0, 20000});
    event_add(h.give_up, &(struct timeval){GIVE_UP_MS / 1000, 0});
    event_base_dispatch(base); /* returns once no event is left */
    event_free(h.tick);
    event_free(h.give_up);
    event_base_free(base);
    return example_finish(&h.ex);
}

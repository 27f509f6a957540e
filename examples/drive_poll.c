/* Driving delivery with wh_poll on a thread of the host's: the host's "engine" (here, main)
 * emits from its own thread while one driver thread calls wh_poll in a loop. wh_emit may be
 * called from any thread; only one thread at a time drives.
 *
 *   drive_poll --url http://127.0.0.1:PORT/hooks --secret whsec_... [--events N]
 *
 * (See example.h.) */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "example.h"

static atomic_bool stopping;

static void *driver(void *ud)
{
    example *ex = ud;
    /* wh_poll returns as soon as something finished, else after at most 100 ms, so the
     * thread sees `stopping` quickly */
    while (!atomic_load(&stopping))
        if (wh_poll(ex->ctx, 100) < 0) {
            fprintf(stderr, "drive_poll: wh_poll: %s\n", wh_last_error());
            break;
        }
    return NULL;
}

int main(int argc, char **argv)
{
    example ex = {0};
    example_init(&ex, argc, argv);
    pthread_t t;
    if (pthread_create(&t, NULL, driver, &ex) != 0)
        return 1;
    for (int i = 0; i < ex.events; i++) {
        example_emit(&ex, i);
        usleep(20 * 1000); /* the engine's own work between steps */
    }
    long long give_up = example_now_ms() + GIVE_UP_MS;
    while (!example_done(&ex) && example_now_ms() < give_up)
        usleep(10 * 1000);
    atomic_store(&stopping, true);
    pthread_join(t, NULL);
    return example_finish(&ex);
}

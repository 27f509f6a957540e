/* Driving delivery on a thread the library owns: wh_start, emit from anywhere, wh_stop. Log
 * sinks (here the one in example.h) then run on that thread.
 *
 *   drive_thread --url http://127.0.0.1:PORT/hooks --secret whsec_... [--events N]
 *
 * wh_stop(ctx, ms) first drives until nothing is in flight or due, for at most ms; a retry
 * scheduled for later stays pending (in the store, with a sqlite: store). So the example waits
 * until every event has finished before it stops. (See example.h.) */
#include <unistd.h>

#include "example.h"

int main(int argc, char **argv)
{
    example ex = {0};
    example_init(&ex, argc, argv);
    int rc = wh_start(ex.ctx);
    if (rc != WH_OK) {
        fprintf(stderr, "drive_thread: wh_start: %s\n", wh_last_error());
        return 1;
    }
    for (int i = 0; i < ex.events; i++) {
        example_emit(&ex, i);
        usleep(20 * 1000); /* the engine's own work between steps */
    }
    long long give_up = example_now_ms() + GIVE_UP_MS;
    while (!example_done(&ex) && example_now_ms() < give_up)
        usleep(10 * 1000);
    rc = wh_stop(ex.ctx, 5000);
    if (rc != WH_OK)
        fprintf(stderr, "drive_thread: wh_stop: %s\n", wh_strerror(rc));
    return example_finish(&ex);
}

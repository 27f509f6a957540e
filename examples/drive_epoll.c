/* Driving delivery from the host's own epoll loop with wh_fd and wh_timeout_ms: the loop
 * watches the host's descriptors (here a timerfd that "runs a workflow step", emitting one
 * event every 20 ms) and wh_fd(ctx) side by side, waits at most wh_timeout_ms(ctx), and calls
 * wh_poll(ctx, 0) when wh_fd is readable or the wait timed out. Nothing blocks but epoll_wait.
 *
 *   drive_epoll --url http://127.0.0.1:PORT/hooks --secret whsec_... [--events N]
 *
 * (See example.h.) */
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "example.h"

enum { WEBHOOKS, STEP_TIMER };

int main(int argc, char **argv)
{
    example ex = {0};
    example_init(&ex, argc, argv);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    int step = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int whfd = wh_fd(ex.ctx);
    if (ep < 0 || step < 0 || whfd < 0) {
        fprintf(stderr, "drive_epoll: setting up the loop failed\n");
        return 1;
    }
    struct itimerspec every_20ms = {.it_interval = {0, 20000000}, .it_value = {0, 20000000}};
    timerfd_settime(step, 0, &every_20ms, NULL);
    struct epoll_event in = {.events = EPOLLIN, .data.u32 = WEBHOOKS};
    epoll_ctl(ep, EPOLL_CTL_ADD, whfd, &in); /* level-triggered: never read wh_fd yourself */
    in.data.u32 = STEP_TIMER;
    epoll_ctl(ep, EPOLL_CTL_ADD, step, &in);

    int emitted = 0;
    long long give_up = example_now_ms() + GIVE_UP_MS;
    while (!example_done(&ex)) {
        long long left = give_up - example_now_ms();
        if (left <= 0) {
            fprintf(stderr, "drive_epoll: gave up waiting\n");
            break;
        }
        int wait = wh_timeout_ms(ex.ctx); /* -1: only wh_fd will say when */
        if (wait < 0 || wait > left)
            wait = (int)left;
        struct epoll_event evs[4];
        int n = epoll_wait(ep, evs, 4, wait);
        bool drive = n == 0; /* timed out: something is due */
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u32 == WEBHOOKS) {
                drive = true;
            } else {
                uint64_t ticks;
                if (read(step, &ticks, sizeof ticks) == sizeof ticks && emitted < ex.events)
                    example_emit(&ex, emitted++);
                if (emitted == ex.events)
                    timerfd_settime(step, 0, &(struct itimerspec){0}, NULL);
            }
        }
        if (drive && wh_poll(ex.ctx, 0) < 0)
            fprintf(stderr, "drive_epoll: wh_poll: %s\n", wh_last_error());
    }
    close(step);
    close(ep);
    return example_finish(&ex);
}

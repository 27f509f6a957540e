/* A mock transport and a fake clock, for the scheduler's logic. */
#ifndef WH_TEST_MOCK_H
#define WH_TEST_MOCK_H
#include <stddef.h>
#include <stdint.h>

#include "webhook/webhook.h"

typedef struct mock_req {
    char url[256];
    char id[128], timestamp[32], signature[1024];
    char *body;
    size_t body_len;
    void *token;
    int answered;
} mock_req;

typedef struct mock {
    mock_req reqs[4096];
    size_t n;
    /* answered but not yet reported by perform */
    struct {
        size_t req;
        int status;
        char retry_after[64];
        char error[128];
    } done[4096];
    size_t ndone;
    int destroyed;
} mock;

/* A wh_transport that records every request; the test answers them. */
wh_transport mock_transport(mock *m);
/* Answer request i (in submit order) with an HTTP status (0 + error: no response). */
void mock_answer(mock *m, size_t i, int status, const char *retry_after, const char *error);
size_t mock_in_flight(const mock *m);
void mock_free(mock *m);

typedef struct fake_clock {
    int64_t now_ms;
} fake_clock;
int64_t fake_clock_now(void *ud);

#endif

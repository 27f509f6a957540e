/* Token buckets: refilled continuously at the endpoint's rate, never above one second's
 * worth; a delivery goes when it holds a whole token. */
#include "ratelimit.h"

/* Without libm: x >= 0. */
static int64_t ceil_pos(double x)
{
    int64_t c = (int64_t)x;
    return (double)c < x ? c + 1 : c;
}

double wh__rate_burst(double rate_per_s) { return rate_per_s < 1 ? 1 : rate_per_s; }

double wh__rate_shared_burst(double rate_per_s)
{
    double b = wh__rate_burst(rate_per_s) - (double)wh__rate_grant_size(rate_per_s, SIZE_MAX);
    return b < 1 ? 1 : b;
}

int wh__bucket_take(double *tokens, int64_t *at_ms, double rate_per_s, double burst, int want,
                    int64_t now_ms, int64_t *wait_ms)
{
    if (*at_ms <= 0) {
        *tokens = burst;
        *at_ms = now_ms;
    } else if (now_ms > *at_ms) {
        *tokens += (double)(now_ms - *at_ms) * rate_per_s / 1000.0;
        *at_ms = now_ms;
    }
    if (*tokens > burst)
        *tokens = burst;
    if (*tokens < 0)
        *tokens = 0;
    int granted = 0;
    while (granted < want && *tokens >= 1.0) {
        *tokens -= 1.0;
        granted++;
    }
    *wait_ms = *tokens >= 1.0 ? 0 : ceil_pos((1.0 - *tokens) * 1000.0 / rate_per_s);
    return granted;
}

int wh__rate_grant_size(double rate_per_s, size_t waiting)
{
    int64_t share = ceil_pos(rate_per_s * WH__RATE_GRANT_MS / 1000.0);
    size_t most = share < 1 ? 1 : (size_t)share;
    return (int)(waiting < most ? waiting : most);
}

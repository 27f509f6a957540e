/* Serving the library's metrics to Prometheus: GET /metrics answers with wh_metrics_write's
 * text, from a libmicrohttpd server of the host's own, while the library's thread (wh_start)
 * delivers.
 *
 *   metrics_http --url http://127.0.0.1:PORT/hooks --secret whsec_... [--events N]
 *                [--metrics-port 9464]
 *
 * It emits N events, then serves until SIGINT or SIGTERM, and exits 0 if all N were
 * delivered. Scrape it with Prometheus (a job whose target is 127.0.0.1:9464), or by hand:
 *   curl -s http://127.0.0.1:9464/metrics | promtool check metrics
 * (See example.h for the rest; examples/run_metrics_example.sh runs it.) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <microhttpd.h>

#include "example.h"

/* The Prometheus text exposition format, version 0.0.4. */
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *type,
                              char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version, (void)upload_data, (void)upload_size, (void)con_cls;
    wh_ctx *ctx = cls;
    if (strcmp(url, "/metrics") != 0)
        return answer(c, MHD_HTTP_NOT_FOUND, "text/plain", strdup("not found\n"), 10);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return answer(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", strdup("GET only\n"), 9);
    /* wh_metrics_write takes a FILE: a memory stream makes the body of the answer. It may be
     * called from any thread, here MHD's, while the library's thread delivers. */
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    if (!f)
        return MHD_NO;
    int rc = wh_metrics_write(ctx, f);
    fclose(f);
    if (rc != WH_OK) {
        fprintf(stderr, "metrics_http: wh_metrics_write: %s\n", wh_last_error());
        free(body);
        return answer(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", strdup("error\n"), 6);
    }
    return answer(c, MHD_HTTP_OK, METRICS_TYPE, body, len);
}

int main(int argc, char **argv)
{
    /* the stop signals are waited for below: blocked before any thread starts, so that every
     * thread (the library's, MHD's) inherits the mask */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    example ex = {0};
    long port = 9464;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--metrics-port") == 0) {
            char *end;
            port = strtol(argv[i + 1], &end, 10);
            if (*end || port < 0 || port > 65535) {
                fprintf(stderr, "metrics_http: --metrics-port: not a port: %s\n", argv[i + 1]);
                return 2;
            }
        }
    example_init(&ex, argc, argv);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, on_request, ex.ctx,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "metrics_http: cannot listen on 127.0.0.1:%ld\n", port);
        wh_destroy(ex.ctx);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("metrics on http://127.0.0.1:%u/metrics\n", info ? (unsigned)info->port : (unsigned)port);
    fflush(stdout);

    if (wh_start(ex.ctx) != WH_OK) {
        fprintf(stderr, "metrics_http: wh_start: %s\n", wh_last_error());
        MHD_stop_daemon(d);
        wh_destroy(ex.ctx);
        return 1;
    }
    for (int i = 0; i < ex.events; i++)
        example_emit(&ex, i);

    int sig = 0;
    sigwait(&stop, &sig);
    int rc = wh_stop(ex.ctx, 5000);
    if (rc != WH_OK)
        fprintf(stderr, "metrics_http: wh_stop: %s\n", wh_strerror(rc));
    MHD_stop_daemon(d); /* no scrape may run once the context is gone */
    return example_finish(&ex);
}

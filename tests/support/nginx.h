/* nginx as a real HTTPS receiver that speaks HTTP/2 (for what libmicrohttpd cannot do, such
 * as answering before the request body has arrived). Started in the foreground as the
 * calling user, in a temp dir of its own, on a free 127.0.0.1 port; it dies with the process
 * that started it even if that process never calls nginx_stop. */
#ifndef WH_TEST_NGINX_H
#define WH_TEST_NGINX_H
#include <stddef.h>

typedef struct nginx nginx;

/* One server: `listen 127.0.0.1:PORT ssl http2` with the given certificate and key (PEM),
 * whose block ends with `locations` (nginx configuration text, as is). Each request is
 * logged as a line "$server_protocol $status $uri", e.g. "HTTP/2.0 204 /early".
 * NULL on failure, with why in err. */
nginx *nginx_start(const char *cert_pem, const char *key_pem, const char *locations, char *err,
                   size_t errlen);
int nginx_port(const nginx *n);
/* How many access log lines are exactly `line`. */
size_t nginx_log_count(const nginx *n, const char *line);
/* Stops nginx and removes its dir. NULL is fine. */
void nginx_stop(nginx *n);

#endif

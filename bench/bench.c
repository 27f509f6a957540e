/* make bench: libwebhook measured side by side with the wire's limit and the naive way.
 *
 *   build/bench/bench [--dir bench] [--only NAME,...] [--no-baseline] [--no-json] [--events N]
 *
 * Runs every scenario of issue 5 in one go on 127.0.0.1, each with its baseline in the same
 * command, prints one table and writes the same numbers to DIR/results.json. NAME is one of
 * throughput, naive, durable, engines, pg_throughput, http2, fanout, slow, isolation, scaleout,
 * latency, durable_emit, memory, registry, batched (durable, pg_throughput and naive compare with the
 * throughput run, which --only runs for them too unless --no-baseline). --no-baseline skips
 * the wrk runs and --events N changes the 200,000 events of throughput and durable (and a
 * quarter of it, those of engines, pg_throughput and http2): both are for a profiler
 * (bench/profile.sh), and such
 * runs, like --only ones, write no results.json. bench/run.sh installs nginx and wrk and
 * runs this; see BENCHMARKS.md.
 *
 * The receiver for throughput, durable, engines, fan-out and isolation is nginx (one worker, 204
 * to every POST, keep-alive) started here from DIR/nginx.conf.in, which logs the webhook id of
 * each request to /counted/ so that engines can count duplicates; it also listens with TLS, on
 * one port offering HTTP/2 and HTTP/1.1 by ALPN and on another HTTP/1.1 only, for the
 * http2 scenario (a certificate from a CA made here); the baseline load generator
 * is wrk (DIR/wrk_post.lua) with one thread and the same body, headers and connection count.
 * The slow receiver is libmicrohttpd, thread per connection, sleeping 50 ms per request.
 * Memory and emit latency run in a fresh process (this program, exec'd with --child) so that
 * nothing else lives in their heap. The engines and scale-out scenarios fork their engine
 * processes.
 *
 * The PostgreSQL rows (pg_throughput, scaleout, and durable_emit's) run on a throwaway cluster
 * started here the way the tests start theirs (tests/support/pg.c: initdb into a temp dir, as
 * the postgres user when run as root, on a free 127.0.0.1 port), reached over TCP on loopback,
 * each run in a schema of its own (store.schema); it is stopped and removed at the end, on a
 * failure and on SIGINT/SIGTERM too.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "bare_curl.h"
#include "pg.h"
#include "pki.h"
#include "webhook/webhook.h"

/* ---- sizes of each scenario ------------------------------------------------------------- */

#define THROUGHPUT_EVENTS_DEFAULT 200000L
#define NAIVE_EVENTS 20000L
#define BARE_REQUESTS 100000L /* per bare libcurl run; two runs around the throughput one */
#define BARE_CONNECTIONS 16  /* what the throughput run uses: endpoint.max_in_flight */
#define FANOUT_EVENTS 100L
#define FANOUT_ENDPOINTS 1000
#define SLOW_ENDPOINTS 200
#define SLOW_DELIVERIES 20000L
#define SLOW_DELAY_MS 50
#define ISO_HEALTHY 10
#define ISO_EVENTS 6000L
#define LAT_MEMORY_EMITS 100000L /* per configuration, split over the threads */
#define LAT_SQLITE_EMITS 20000L
#define DURABLE_EMITS 50000
#define ENGINES_EVENTS (THROUGHPUT_EVENTS / 4) /* per run, split over the engines */
#define ENGINES_BACKLOG 1000L /* events already in the store when the engines start */
#define ENGINES_ROUNDS 3 /* runs of one engine and of two, interleaved */
#define PG_EMITS 20000L  /* durable emits on PostgreSQL per run, split over the threads */
#define EMIT_ROUNDS 3    /* durable emit: runs of each store and thread count, interleaved */
#define SCALE_EVENTS 8000L  /* scale-out: events per run, split over the engines */
#define SCALE_DELAY_MS 20   /* scale-out: the receiver answers after this */
#define SCALE_CONNECTIONS 32 /* scale-out: http.max_connections of each engine */
#define SCALE_ROUNDS 3      /* scale-out: runs of 1, 2 and 4 engines, interleaved */
#define SCALE_MAX_ENGINES 4
#define MEM_DELIVERIES 1000000L
#define REG_ENDPOINTS 10000
#define REG_ROUNDS 7
#define REG_BLOCK 20000L
#define WRK_SECONDS 4
#define TLS_ROUNDS 2 /* runs of each HTTP version, interleaved */
#define NAIVE_SLOW_DELAY_MS 5 /* vs naive again, with a receiver that takes this long */
#define NAIVE_SLOW_EVENTS 300L
#define BATCH 64             /* events per wh_emit_batch in the batched scenario */
#define BATCH_MAX BATCH
#define WINDOW 1024L         /* deliveries emitted ahead of those finished (see BENCHMARKS.md) */
#define DRIVE_TIMEOUT_S 90   /* one delivery run gives up after this */

#define TEST_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" /* 24 bytes, any will do */

/* ---- the run ------------------------------------------------------------------------------ */

static struct {
    const char *dir; /* bench/: the templates and results.json */
    char tmp[256];   /* this run's temp dir */
    pid_t nginx_pid;
    int nginx_port;
    int h2_port, h1_tls_port; /* nginx with TLS: HTTP/2 offered, HTTP/1.1 only */
    char ca_file[600];        /* the CA of nginx's TLS certificate */
    bool no_baseline, no_json;
    const char *only;
    char self[4096]; /* this program, for --child runs */
    cJSON *json;     /* scenarios */
    int missed, errors;
    double throughput_evps; /* the memory run, the baseline of durable and naive */
    double throughput_cpu_us;
    pg_cluster pg;          /* the throwaway PostgreSQL server, once a scenario needs it */
    bool pg_tried;
    bool pg_external; /* WH_BENCH_PG_URI: someone else's server */
    pid_t pg_postmaster;
    long throughput_events; /* --events N, for profiling */
} B = {.dir = "bench", .throughput_events = THROUGHPUT_EVENTS_DEFAULT};
#define THROUGHPUT_EVENTS B.throughput_events

typedef struct {
    char scenario[32], result[96], baseline[96], ratio[24], target[32], verdict[12];
} row;
static row rows[32];
static size_t n_rows;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double since_s(int64_t t0) { return (double)(mono_ns() - t0) / 1e9; }

/* CPU seconds (user + system) of RUSAGE_SELF or RUSAGE_CHILDREN so far. */
static double cpu_secs(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* "12,345" */
static const char *grouped(double v, char *buf, size_t len)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%.0f", v);
    size_t n = strlen(raw), o = 0;
    for (size_t i = 0; i < n && o + 2 < len; i++) {
        buf[o++] = raw[i];
        size_t left = n - i - 1;
        if (left && left % 3 == 0 && raw[i] != '-')
            buf[o++] = ',';
    }
    buf[o] = '\0';
    return buf;
}

static bool wanted(const char *name)
{
    if (!B.only)
        return true;
    size_t n = strlen(name);
    for (const char *p = B.only; *p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p += len + (c ? 1 : 0);
    }
    return false;
}

/* One line of the table; verdict is "met", "MISSED", "-" (no target) or "ERROR". */
static void add_row(const char *scenario, const char *result, const char *baseline,
                    const char *ratio, const char *target, const char *verdict)
{
    if (n_rows == sizeof rows / sizeof rows[0])
        return;
    row *r = &rows[n_rows++];
    snprintf(r->scenario, sizeof r->scenario, "%s", scenario);
    snprintf(r->result, sizeof r->result, "%s", result);
    snprintf(r->baseline, sizeof r->baseline, "%s", baseline);
    snprintf(r->ratio, sizeof r->ratio, "%s", ratio);
    snprintf(r->target, sizeof r->target, "%s", target);
    snprintf(r->verdict, sizeof r->verdict, "%s", verdict);
    B.missed += strcmp(verdict, "MISSED") == 0;
    B.errors += strcmp(verdict, "ERROR") == 0;
}

static void error_row(const char *scenario, const char *why)
{
    add_row(scenario, why, "-", "-", "-", "ERROR");
    cJSON *o = cJSON_AddObjectToObject(B.json, scenario);
    if (o)
        cJSON_AddStringToObject(o, "error", why);
}

static const char *verdict(bool met) { return met ? "met" : "MISSED"; }

/* ---- temp dir, ports, processes ------------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void stop_nginx(void)
{
    if (B.nginx_pid <= 0)
        return;
    kill(B.nginx_pid, SIGQUIT);
    for (int i = 0; i < 50; i++) {
        if (waitpid(B.nginx_pid, NULL, WNOHANG) == B.nginx_pid) {
            B.nginx_pid = 0;
            return;
        }
        usleep(100000);
    }
    kill(B.nginx_pid, SIGKILL);
    waitpid(B.nginx_pid, NULL, 0);
    B.nginx_pid = 0;
}

static void cleanup(void)
{
    stop_nginx();
    pg_cluster_stop(&B.pg); /* nothing when it never started; safe twice */
    if (B.tmp[0])
        nftw(B.tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    B.tmp[0] = '\0';
}

static void on_signal(int sig)
{
    if (B.nginx_pid > 0)
        kill(B.nginx_pid, SIGKILL);
    if (B.pg_postmaster > 0) {
        /* SIGQUIT: the server's immediate shutdown; then its folder goes (only async-signal-
         * safe calls here: the postmaster is not our child, so poll for it to be gone) */
        kill(B.pg_postmaster, SIGQUIT);
        for (int i = 0; i < 50 && kill(B.pg_postmaster, 0) == 0; i++) {
            struct timespec d = {0, 100000000};
            nanosleep(&d, NULL);
        }
        pid_t p = fork();
        if (p == 0) {
            execl("/bin/rm", "rm", "-rf", B.pg.dir, (char *)NULL);
            _exit(127);
        }
        if (p > 0)
            waitpid(p, NULL, 0);
    }
    _exit(128 + sig);
}

/* A loopback port nobody listens on right now. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static bool port_answers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* A socket that listens and never accepts: connections complete, requests go unanswered. */
static int stuck_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while (m && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    if (m)
        fclose(m);
    return buf;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* s with every `from` replaced by `to`; malloc'd. */
static char *replace_all(const char *s, const char *from, const char *to)
{
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    if (!m)
        return NULL;
    size_t fl = strlen(from);
    for (const char *p = s; *p;) {
        const char *hit = strstr(p, from);
        if (!hit) {
            fputs(p, m);
            break;
        }
        fwrite(p, 1, (size_t)(hit - p), m);
        fputs(to, m);
        p = hit + fl;
    }
    fclose(m);
    return out;
}

/* A CA (its certificate in B.ca_file, for tls.ca_file) and nginx's certificate for
 * 127.0.0.1 in dir/cert.pem and dir/key.pem. */
static int write_tls_files(const char *dir)
{
    pki_cred ca, server;
    if (pki_make(&ca, "libwebhook bench CA", NULL, NULL) != 0)
        return -1;
    if (pki_make(&server, "localhost", &ca, "DNS:localhost,IP:127.0.0.1") != 0) {
        pki_free(&ca);
        return -1;
    }
    char *ca_pem = pki_cert_pem(&ca), *cert = pki_cert_pem(&server), *key = pki_key_pem(&server);
    char cert_path[600], key_path[600];
    snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
    snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
    int rc = ca_pem && cert && key && pki_write_file(B.ca_file, ca_pem) == 0 &&
                     pki_write_file(cert_path, cert) == 0 && pki_write_file(key_path, key) == 0
                 ? 0
                 : -1;
    free(ca_pem);
    free(cert);
    free(key);
    pki_free(&ca);
    pki_free(&server);
    return rc;
}

static int start_nginx(void)
{
    char dir[512], conf_in[512], conf[600], errlog[600], port[16], h2_port[16], h1_port[16];
    snprintf(dir, sizeof dir, "%s/nginx", B.tmp);
    snprintf(conf_in, sizeof conf_in, "%s/nginx.conf.in", B.dir);
    snprintf(conf, sizeof conf, "%s/nginx.conf", dir);
    snprintf(errlog, sizeof errlog, "%s/error.log", dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return -1;
    B.nginx_port = free_port();
    B.h2_port = free_port();
    B.h1_tls_port = free_port();
    snprintf(port, sizeof port, "%d", B.nginx_port);
    snprintf(h2_port, sizeof h2_port, "%d", B.h2_port);
    snprintf(h1_port, sizeof h1_port, "%d", B.h1_tls_port);
    snprintf(B.ca_file, sizeof B.ca_file, "%s/ca.pem", B.tmp);
    if (write_tls_files(dir) != 0) {
        say("could not make the TLS certificate");
        return -1;
    }
    char *tpl = read_file(conf_in);
    if (!tpl) {
        say("cannot read %s", conf_in);
        return -1;
    }
    char *a = replace_all(tpl, "@DIR@", dir), *b = a ? replace_all(a, "@PORT@", port) : NULL,
         *c = b ? replace_all(b, "@H2PORT@", h2_port) : NULL,
         *text = c ? replace_all(c, "@H1TLSPORT@", h1_port) : NULL;
    free(tpl);
    free(a);
    free(b);
    free(c);
    if (!text || write_file(conf, text) != 0) {
        free(text);
        return -1;
    }
    free(text);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(errlog, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("nginx", "nginx", "-p", dir, "-c", conf, "-e", errlog, (char *)NULL);
        execl("/usr/sbin/nginx", "nginx", "-p", dir, "-c", conf, "-e", errlog, (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    B.nginx_pid = pid;
    for (int i = 0; i < 100; i++) {
        if (port_answers(B.nginx_port) && port_answers(B.h2_port) && port_answers(B.h1_tls_port))
            return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            B.nginx_pid = 0;
            char *log = read_file(errlog);
            say("nginx exited at start: %s", log ? log : "(no log)");
            free(log);
            return -1;
        }
        usleep(50000);
    }
    say("nginx did not listen on 127.0.0.1:%d within 5 s", B.nginx_port);
    return -1;
}

/* ---- events ----------------------------------------------------------------------------------- */

/* The 1 KB-class event: run_id, task_id and status of 255 bytes each (the most the library
 * takes), numbered so that every event differs. */
typedef struct {
    char run_id[256], task_id[256], status[256];
} big_event;

static void pad(char *dst, const char *head, char fill)
{
    size_t n = strlen(head);
    memcpy(dst, head, n);
    memset(dst + n, fill, 255 - n);
    dst[255] = '\0';
}

static void big_fill(big_event *b, long i)
{
    char head[64];
    snprintf(head, sizeof head, "run_%09ld_", i);
    pad(b->run_id, head, 'r');
    snprintf(head, sizeof head, "task_%09ld_", i);
    pad(b->task_id, head, 't');
    pad(b->status, "completed_", 's');
}

static int emit_big(wh_ctx *h, long i)
{
    big_event b;
    big_fill(&b, i);
    return wh_emit(h, &(wh_event){.event_type = "task_run.completed", .run_id = b.run_id,
                                  .task_id = b.task_id, .status = b.status},
                   NULL);
}

/* A typical event: short ids, as a workflow engine has them. */
static int emit_small(wh_ctx *h, long i, const char *type)
{
    char run[32], task[32];
    snprintf(run, sizeof run, "run_%ld", i / 10);
    snprintf(task, sizeof task, "task_%ld", i % 10);
    bool wf = strncmp(type, "workflow_run.", 13) == 0;
    return wh_emit(h, &(wh_event){.event_type = type, .run_id = run, .task_id = wf ? NULL : task,
                                  .status = "completed"},
                   NULL);
}

/* The body libwebhook builds for big event i, built the same way (cJSON, same fields). */
static char *body_like_libwebhook(long i, const char *id)
{
    big_event b;
    big_fill(&b, i);
    char when[40];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "event_type", "task_run.completed");
    cJSON_AddStringToObject(o, "run_id", b.run_id);
    cJSON_AddStringToObject(o, "task_id", b.task_id);
    cJSON_AddStringToObject(o, "status", b.status);
    cJSON_AddStringToObject(o, "timestamp", when);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return body;
}

/* An id of the library's shape: "evt_" and 26 base32 characters of 128 random bits. */
static void new_event_id(char out[WH_ID_MAX])
{
    static const char abc[] = "0123456789abcdefghjkmnpqrstvwxyz";
    unsigned char rnd[17] = {0};
    RAND_bytes(rnd, 16);
    memcpy(out, "evt_", 4);
    unsigned acc = 0, bits = 0;
    size_t k = 0;
    for (int i = 0; i < 26; i++) {
        if (bits < 5) {
            acc = (acc << 8) | rnd[k++];
            bits += 8;
        }
        out[4 + i] = abc[(acc >> (bits - 5)) & 31];
        bits -= 5;
    }
    out[30] = '\0';
}

static size_t g_body_len; /* of the big event, for the table */

/* body.json and headers.txt for wrk: what libwebhook sends for one big event. */
static int write_wrk_request(void)
{
    char id[WH_ID_MAX];
    new_event_id(id);
    char *body = body_like_libwebhook(0, id);
    if (!body)
        return -1;
    g_body_len = strlen(body);
    int64_t ts = time(NULL);
    char sig[WH_SIGNATURE_MAX];
    if (wh_sign(TEST_SECRET, id, ts, body, g_body_len, sig, sizeof sig) != WH_OK) {
        free(body);
        return -1;
    }
    char path[600], headers[1024];
    snprintf(headers, sizeof headers,
             "Content-Type: application/json\nUser-Agent: libwebhook/%s\nwebhook-id: %s\n"
             "webhook-timestamp: %lld\nwebhook-signature: %s\n",
             wh_version(), id, (long long)ts, sig);
    snprintf(path, sizeof path, "%s/body.json", B.tmp);
    int rc = write_file(path, body);
    snprintf(path, sizeof path, "%s/headers.txt", B.tmp);
    rc |= write_file(path, headers);
    free(body);
    return rc;
}

/* CPU seconds (user + system) that nginx's worker has used so far; -1 when unknown. */
static double nginx_cpu_secs(void)
{
    char path[128];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)B.nginx_pid, (int)B.nginx_pid);
    FILE *f = B.nginx_pid > 0 ? fopen(path, "r") : NULL;
    if (!f)
        return -1;
    double total = 0;
    int pid;
    while (fscanf(f, "%d", &pid) == 1) {
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        char *stat = read_file(path), *p = stat ? strrchr(stat, ')') : NULL;
        unsigned long long ut = 0, st = 0;
        /* after "pid (comm)": state is field 3, utime and stime are fields 14 and 15 */
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                        &st) == 2)
            total += (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
        free(stat);
    }
    fclose(f);
    return total;
}

typedef struct {
    double rps;          /* requests per second */
    double cpu_us;       /* wrk's CPU per request */
    double nginx_cpu_us; /* nginx's CPU per request */
} wrk_result;

/* wrk with one thread and `conns` connections; paths > 0 posts to /ep/0 .. /ep/paths-1 in
 * turn. False when it failed. */
static bool run_wrk(int conns, int paths, wrk_result *out)
{
    char cmd[1400], n[16];
    snprintf(n, sizeof n, "%d", paths);
    setenv("WH_BENCH_DIR", B.tmp, 1);
    setenv("WH_BENCH_PATHS", n, 1);
    snprintf(cmd, sizeof cmd, "wrk -t1 -c%d -d%ds -s '%s/wrk_post.lua' http://127.0.0.1:%d/ 2>&1",
             conns, WRK_SECONDS, B.dir, B.nginx_port);
    double cpu0 = cpu_secs(RUSAGE_CHILDREN), ng0 = nginx_cpu_secs();
    FILE *p = popen(cmd, "r");
    if (!p)
        return false;
    char line[512];
    double rps = -1, requests = 0;
    long non2xx = 0;
    bool socket_errors = false;
    while (fgets(line, sizeof line, p)) {
        char *r = strstr(line, " requests in ");
        if (strncmp(line, "Requests/sec:", 13) == 0)
            rps = strtod(line + 13, NULL);
        else if (r)
            requests = strtod(line, NULL);
        else if (strstr(line, "Non-2xx or 3xx responses:"))
            non2xx = strtol(strchr(line, ':') + 1, NULL, 10);
        else if (strstr(line, "Socket errors:"))
            socket_errors = true;
    }
    int st = pclose(p);
    double cpu = cpu_secs(RUSAGE_CHILDREN) - cpu0, ng = nginx_cpu_secs() - ng0;
    if (st != 0 || rps <= 0 || requests <= 0) {
        say("wrk failed (status %d): %s", st, cmd);
        return false;
    }
    if (non2xx || socket_errors)
        say("wrk: %ld non-2xx responses%s", non2xx, socket_errors ? ", socket errors" : "");
    out->rps = rps;
    out->cpu_us = cpu / requests * 1e6;
    out->nginx_cpu_us = ng0 >= 0 ? ng / requests * 1e6 : -1;
    say("wrk -c%d%s: %.0f requests/s; CPU per request: wrk %.1f us, nginx %.1f us", conns,
        paths ? " (many paths)" : "", rps, out->cpu_us, out->nginx_cpu_us);
    return true;
}

/* ---- libwebhook contexts ------------------------------------------------------------------------ */

/* A context with the bench's settings; pairs of key, value end with NULL. */
static wh_ctx *make_ctx(const char *first_key, ...)
{
    char err[256];
    wh_conf *c = wh_conf_new();
    if (!c)
        return NULL;
    /* loopback: the SSRF guard refuses it unless told (an unknown key is ignored) */
    if (wh_conf_set(c, "security.allow_private", "true", err, sizeof err) != WH_OK)
        say("security.allow_private: %s (going on without it)", err);
    va_list ap;
    va_start(ap, first_key);
    for (const char *k = first_key; k; k = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        if (wh_conf_set(c, k, v, err, sizeof err) != WH_OK) {
            say("conf %s=%s: %s", k, v, err);
            va_end(ap);
            wh_conf_destroy(c);
            return NULL;
        }
    }
    va_end(ap);
    wh_ctx *h = wh_new(c, err, sizeof err);
    if (!h) {
        say("wh_new: %s", err);
        wh_conf_destroy(c);
    }
    return h;
}

static int add_endpoint(wh_ctx *h, const char *url, const char *const *types)
{
    char id[WH_ID_MAX];
    int rc = wh_endpoint_add(h, &(wh_endpoint_spec){.url = url, .event_types = types,
                                                    .secret = TEST_SECRET},
                             id);
    if (rc != WH_OK)
        say("wh_endpoint_add %s: %s (%s)", url, wh_strerror(rc), wh_last_error());
    return rc;
}

static int add_endpoints(wh_ctx *h, int port, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        char url[128];
        if (prefix)
            snprintf(url, sizeof url, "http://127.0.0.1:%d%s%d", port, prefix, i);
        else
            snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
        if (add_endpoint(h, url, NULL) != WH_OK)
            return -1;
    }
    return 0;
}

typedef struct {
    long events;   /* to emit */
    long per_event; /* deliveries each event makes that are expected to be delivered */
    bool big;      /* the 1 KB-class event, else the small one */
    int batch;     /* > 1: big events emitted this many at a time with wh_emit_batch */
} drive_spec;

/* Big events from..from+n-1 in one wh_emit_batch. */
static int emit_big_batch(wh_ctx *h, long from, int n)
{
    big_event b[BATCH_MAX];
    wh_event evs[BATCH_MAX];
    for (int i = 0; i < n; i++) {
        big_fill(&b[i], from + i);
        evs[i] = (wh_event){.event_type = "task_run.completed", .run_id = b[i].run_id,
                            .task_id = b[i].task_id, .status = b[i].status};
    }
    return wh_emit_batch(h, evs, (size_t)n, NULL, NULL);
}

typedef struct {
    double secs, cpu_secs; /* wall, and this process's user + system */
    wh_stats_info st;
} drive_result;

/* Emits (keeping at most WINDOW deliveries ahead of those finished) and drives delivery on
 * this thread until events * per_event deliveries are delivered. 0, or -1 with why. */
static int drive(wh_ctx *h, const drive_spec *s, drive_result *r, char *why, size_t why_len)
{
    const long expected = s->events * s->per_event;
    long emitted = 0, finished = 0;
    int64_t t0 = mono_ns(), deadline = t0 + (int64_t)DRIVE_TIMEOUT_S * 1000000000;
    memset(r, 0, sizeof *r);
    double cpu0 = cpu_secs(RUSAGE_SELF);
    for (;;) {
        while (emitted < s->events && emitted * s->per_event - finished < WINDOW) {
            int k = s->batch > 1 ? (int)(s->events - emitted < s->batch ? s->events - emitted : s->batch) : 1;
            int n = s->batch > 1 ? emit_big_batch(h, emitted, k)
                    : s->big     ? emit_big(h, emitted)
                                 : emit_small(h, emitted, "task_run.completed");
            if (n < 0) {
                snprintf(why, why_len, "wh_emit: %s (%s)", wh_strerror(n), wh_last_error());
                return -1;
            }
            emitted += k;
        }
        if (finished >= expected) {
            wh_stats(h, &r->st);
            if (r->st.delivered >= (uint64_t)expected)
                break;
        }
        int rc = wh_poll(h, 50);
        if (rc < 0) {
            snprintf(why, why_len, "wh_poll: %s (%s)", wh_strerror(rc), wh_last_error());
            return -1;
        }
        finished += rc;
        if (mono_ns() > deadline) {
            wh_stats(h, &r->st);
            snprintf(why, why_len,
                     "gave up after %d s: %" PRIu64 " of %ld delivered, %" PRIu64 " failed",
                     DRIVE_TIMEOUT_S, r->st.delivered, expected, r->st.failed);
            return -1;
        }
    }
    r->secs = since_s(t0);
    r->cpu_secs = cpu_secs(RUSAGE_SELF) - cpu0;
    if (r->st.failed || r->st.attempts != r->st.delivered + r->st.failed) {
        snprintf(why, why_len, "%" PRIu64 " attempts for %" PRIu64 " deliveries (%" PRIu64
                               " failed): the receiver refused some",
                 r->st.attempts, r->st.delivered, r->st.failed);
        return -1;
    }
    return 0;
}

/* ---- throughput, durable, vs naive ------------------------------------------------------------- */

typedef struct {
    double evps;         /* events (= deliveries) per second */
    double cpu_us;       /* this process's CPU per event */
    double nginx_cpu_us; /* nginx's CPU per event */
    double write_bytes;  /* bytes this process wrote (the store) per event */
    double pg_cpu_us;    /* the PostgreSQL server's CPU per event (-1: not on PostgreSQL) */
} run_result;

/* Bytes this process has written with write(2) and friends so far. */
static double written_bytes(void)
{
    char *io = read_file("/proc/self/io"), *w = io ? strstr(io, "wchar:") : NULL;
    double v = w ? strtod(w + 6, NULL) : 0;
    free(io);
    return v;
}

/* CPU seconds (user + system) of a process, and of its children it has reaped; -1 when
 * unknown. */
static double proc_cpu_secs(pid_t pid, double *reaped)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char *stat = read_file(path), *p = stat ? strrchr(stat, ')') : NULL;
    unsigned long long ut = 0, st = 0, cut = 0, cst = 0;
    /* after "pid (comm)": state is field 3, utime, stime, cutime, cstime fields 14 to 17 */
    int got = p ? sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
                         &ut, &st, &cut, &cst)
                : 0;
    free(stat);
    double tick = (double)sysconf(_SC_CLK_TCK);
    if (reaped)
        *reaped = got == 4 ? (double)(cut + cst) / tick : 0;
    return got == 4 ? (double)(ut + st) / tick : -1;
}

/* CPU seconds the PostgreSQL server has used so far: the postmaster, the backends that have
 * ended (reaped by it) and those that run; -1 when unknown. */
static double pg_cpu_secs(void)
{
    if (B.pg_postmaster <= 0)
        return -1;
    double reaped = 0, total = proc_cpu_secs(B.pg_postmaster, &reaped);
    if (total < 0)
        return -1;
    total += reaped;
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)B.pg_postmaster,
             (int)B.pg_postmaster);
    FILE *f = fopen(path, "r");
    int pid;
    while (f && fscanf(f, "%d", &pid) == 1) {
        double c = proc_cpu_secs(pid, NULL);
        total += c > 0 ? c : 0;
    }
    if (f)
        fclose(f);
    return total;
}

/* `events` big events to one endpoint on nginx; store "memory", "sqlite:..." or a PostgreSQL
 * connection string (then in `schema`, a fresh one). */
static bool delivery_run_batched(const char *store, const char *schema, long events, int batch,
                                 const char *label, run_result *out, char *why, size_t why_len)
{
    wh_ctx *h = make_ctx("store", store, "store.sync", "normal", "store.schema",
                         schema ? schema : "webhook", NULL);
    if (!h) {
        snprintf(why, why_len, "could not make the context");
        return false;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", B.nginx_port);
    if (add_endpoint(h, url, NULL) != WH_OK) {
        wh_destroy(h);
        snprintf(why, why_len, "could not add the endpoint");
        return false;
    }
    drive_result r;
    double ng0 = nginx_cpu_secs(), w0 = written_bytes(), pg0 = pg_cpu_secs();
    int rc = drive(h, &(drive_spec){.events = events, .per_event = 1, .big = true, .batch = batch},
                   &r, why, why_len);
    double ng = nginx_cpu_secs() - ng0, written = written_bytes() - w0, pg = pg_cpu_secs() - pg0;
    wh_destroy(h);
    if (rc != 0)
        return false;
    double n = (double)events;
    *out = (run_result){.evps = n / r.secs,
                        .cpu_us = r.cpu_secs / n * 1e6,
                        .nginx_cpu_us = ng0 >= 0 ? ng / n * 1e6 : -1,
                        .write_bytes = written / n,
                        .pg_cpu_us = schema && pg0 >= 0 ? pg / n * 1e6 : -1};
    say("%s: %ld events in %.2f s = %.0f events/s; CPU per event: libwebhook %.1f us (%.0f%% of "
        "a core), nginx %.1f us; %.0f bytes written per event",
        label, events, r.secs, out->evps, out->cpu_us, 100 * r.cpu_secs / r.secs,
        out->nginx_cpu_us, out->write_bytes);
    return true;
}

static bool delivery_run(const char *store, const char *schema, long events, const char *label,
                         run_result *out, char *why, size_t why_len)
{
    return delivery_run_batched(store, schema, events, 1, label, out, why, why_len);
}

/* new_event_id's shape for the bare loop, whose ids are plain char buffers */
static void bare_new_id(char *out) { new_event_id(out); }

static char *bare_body(long i, const char *id) { return body_like_libwebhook(i, id); }

static bool bare_run(bare_curl_result *out, char *why, size_t why_len)
{
    unsigned char key[64];
    int key_len = EVP_DecodeBlock(key, (const unsigned char *)TEST_SECRET + 6,
                                  (int)strlen(TEST_SECRET) - 6);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", B.nginx_port);
    bare_curl_spec spec = {.body = bare_body,
                           .new_id = bare_new_id,
                           .key = key,
                           .key_len = key_len == 24 ? 24 : 0,
                           .url = url,
                           .user_agent = "libwebhook/" WH_VERSION_STRING,
                           .connections = BARE_CONNECTIONS,
                           .requests = BARE_REQUESTS};
    if (bare_curl_run(&spec, out, why, why_len) != 0)
        return false;
    say("bare libcurl: %ld requests, %d connections: %.0f requests/s, %.1f us CPU each",
        BARE_REQUESTS, BARE_CONNECTIONS, out->rps, out->cpu_us);
    return true;
}

static bare_curl_result g_bare; /* the throughput run's other baseline, for the vs bare row */

static wrk_result g_wrk16; /* the throughput baseline, for the notes of vs naive */

static void sc_throughput(void)
{
    char why[256], a[96], b[96], ratio[24], n1[32], n2[32];
    wrk_result w1 = {0}, w2 = {0};
    /* wrk before and after, so that drift of a shared machine hits both sides alike */
    if (!B.no_baseline && !run_wrk(16, 0, &w1)) {
        error_row("throughput", "wrk failed");
        return;
    }
    bare_curl_result c1 = {0}, c2 = {0};
    if (!B.no_baseline && !bare_run(&c1, why, sizeof why)) {
        error_row("vs bare libcurl", why);
        c1.rps = -1;
    }
    run_result r;
    if (!delivery_run("memory", NULL, THROUGHPUT_EVENTS, "throughput", &r, why, sizeof why)) {
        error_row("throughput", why);
        return;
    }
    B.throughput_evps = r.evps;
    B.throughput_cpu_us = r.cpu_us;
    if (!B.no_baseline && c1.rps > 0 && bare_run(&c2, why, sizeof why))
        g_bare = (bare_curl_result){(c1.rps + c2.rps) / 2, (c1.cpu_us + c2.cpu_us) / 2};
    else if (!B.no_baseline && c1.rps > 0)
        error_row("vs bare libcurl", why);
    cJSON *o = cJSON_AddObjectToObject(B.json, "throughput");
    cJSON_AddNumberToObject(o, "events", THROUGHPUT_EVENTS);
    cJSON_AddNumberToObject(o, "body_bytes", (double)g_body_len);
    cJSON_AddNumberToObject(o, "events_per_s", round(r.evps));
    cJSON_AddNumberToObject(o, "cpu_us_per_event", round(r.cpu_us * 10) / 10);
    cJSON_AddNumberToObject(o, "nginx_cpu_us_per_event", round(r.nginx_cpu_us * 10) / 10);
    snprintf(a, sizeof a, "%s events/s, %.0f us CPU each", grouped(r.evps, n1, sizeof n1), r.cpu_us);
    if (B.no_baseline) {
        add_row("throughput", a, "(skipped)", "-", ">= 0.5x wrk", "-");
        return;
    }
    if (!run_wrk(16, 0, &w2)) {
        error_row("throughput", "wrk failed");
        return;
    }
    wrk_result w = {(w1.rps + w2.rps) / 2, (w1.cpu_us + w2.cpu_us) / 2,
                    (w1.nginx_cpu_us + w2.nginx_cpu_us) / 2};
    g_wrk16 = w;
    double x = r.evps / w.rps;
    cJSON_AddNumberToObject(o, "wrk_requests_per_s", round(w.rps));
    cJSON *runs = cJSON_AddArrayToObject(o, "wrk_runs_requests_per_s");
    cJSON_AddItemToArray(runs, cJSON_CreateNumber(round(w1.rps)));
    cJSON_AddItemToArray(runs, cJSON_CreateNumber(round(w2.rps)));
    cJSON_AddNumberToObject(o, "wrk_connections", 16);
    cJSON_AddNumberToObject(o, "wrk_cpu_us_per_request", round(w.cpu_us * 10) / 10);
    cJSON_AddNumberToObject(o, "wrk_nginx_cpu_us_per_request", round(w.nginx_cpu_us * 10) / 10);
    cJSON_AddNumberToObject(o, "ratio", round(x * 1000) / 1000);
    cJSON_AddNumberToObject(o, "target", 0.5);
    cJSON_AddBoolToObject(o, "met", x >= 0.5);
    snprintf(b, sizeof b, "wrk %s req/s, 16 conns, %.0f us CPU each", grouped(w.rps, n2, sizeof n2),
             w.cpu_us);
    snprintf(ratio, sizeof ratio, "%.2fx", x);
    add_row("throughput", a, b, ratio, ">= 0.5x (aim 0.7)", verdict(x >= 0.5));
}

static void sc_durable(void)
{
    char why[256], a[96], b[96], ratio[24], n1[32], n2[32], store[600];
    snprintf(store, sizeof store, "sqlite:%s/durable.db", B.tmp);
    run_result r;
    if (!delivery_run(store, NULL, THROUGHPUT_EVENTS, "durable", &r, why, sizeof why)) {
        error_row("durable", why);
        return;
    }
    cJSON *o = cJSON_AddObjectToObject(B.json, "durable");
    cJSON_AddNumberToObject(o, "events", THROUGHPUT_EVENTS);
    cJSON_AddNumberToObject(o, "events_per_s", round(r.evps));
    cJSON_AddNumberToObject(o, "cpu_us_per_event", round(r.cpu_us * 10) / 10);
    cJSON_AddNumberToObject(o, "bytes_written_per_event", round(r.write_bytes));
    snprintf(a, sizeof a, "%s events/s, %.0f us CPU, %.0f kB written each",
             grouped(r.evps, n1, sizeof n1), r.cpu_us, r.write_bytes / 1024);
    if (B.throughput_evps <= 0) {
        add_row("durable", a, "(skipped)", "-", ">= 0.7x memory", "-");
        return;
    }
    double x = r.evps / B.throughput_evps;
    cJSON_AddNumberToObject(o, "memory_events_per_s", round(B.throughput_evps));
    cJSON_AddNumberToObject(o, "ratio", round(x * 1000) / 1000);
    cJSON_AddNumberToObject(o, "target", 0.7);
    cJSON_AddBoolToObject(o, "met", x >= 0.7);
    snprintf(b, sizeof b, "memory store %s events/s", grouped(B.throughput_evps, n2, sizeof n2));
    snprintf(ratio, sizeof ratio, "%.2fx", x);
    add_row("durable", a, b, ratio, ">= 0.7x", verdict(x >= 0.7));
}

/* ---- two engines on one SQLite file ------------------------------------------------------------ */

/* What the engine processes of one run share with the bench (an anonymous shared mapping). */
typedef struct {
    long delivered[2];  /* each engine's wh_stats().delivered, published after every poll */
    int64_t start_ns[2]; /* CLOCK_MONOTONIC is one clock for every process */
    int64_t done_ns;     /* when the deliveries of all engines first added up to the total */
    double cpu_secs[2];  /* each engine's user + system from its start to its end */
    uint64_t attempts[2], failed[2];
    int ok[2];
    char why[2][200];
} engines_shared;

typedef struct {
    double evps, cpu_us;   /* all engines together */
    long requests, distinct; /* what nginx logged for this run's path */
} engines_result;

/* One engine process: opens the shared store, says it is ready, waits for the go (EOF on
 * go_fd), emits its share of `emits` big events (keeping WINDOW ahead, as drive() does) and
 * drives until the engines' deliveries add up to `total` (the backlog found in the store
 * too). Never returns. */
static void engine_child(const char *store, int me, int n, long emits, long total,
                         engines_shared *sh, int ready_fd, int go_fd)
{
    char *why = sh->why[me];
    const size_t why_len = sizeof sh->why[me];
    wh_ctx *h = make_ctx("store", store, "store.sync", "normal", NULL);
    if (!h) {
        snprintf(why, why_len, "engine %d: could not make the context", me);
        _exit(1);
    }
    char c = 'r';
    if (write(ready_fd, &c, 1) != 1 || read(go_fd, &c, 1) != 0) {
        snprintf(why, why_len, "engine %d: the start signal failed", me);
        _exit(1);
    }
    const long share = emits / n + (me < emits % n), base = me * (emits / n);
    long emitted = 0, finished = 0;
    double cpu0 = cpu_secs(RUSAGE_SELF);
    int64_t t0 = mono_ns(), deadline = t0 + (int64_t)DRIVE_TIMEOUT_S * 1000000000;
    sh->start_ns[me] = t0;
    wh_stats_info st = {0};
    for (;;) {
        while (emitted < share && emitted - finished < WINDOW) {
            int rc = emit_big(h, base + emitted);
            if (rc < 0) {
                snprintf(why, why_len, "engine %d: wh_emit: %s (%s)", me, wh_strerror(rc),
                         wh_last_error());
                _exit(1);
            }
            emitted++;
        }
        int rc = wh_poll(h, 50);
        if (rc < 0) {
            snprintf(why, why_len, "engine %d: wh_poll: %s (%s)", me, wh_strerror(rc),
                     wh_last_error());
            _exit(1);
        }
        finished += rc;
        wh_stats(h, &st);
        __atomic_store_n(&sh->delivered[me], (long)st.delivered, __ATOMIC_SEQ_CST);
        long sum = 0;
        for (int i = 0; i < n; i++)
            sum += __atomic_load_n(&sh->delivered[i], __ATOMIC_SEQ_CST);
        if (sum >= total) {
            int64_t zero = 0, now = mono_ns();
            __atomic_compare_exchange_n(&sh->done_ns, &zero, now, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST);
            /* an engine may hold work of the other's (claimed from it): it stays until that
             * is done too */
            if (emitted == share && st.pending == 0 && st.in_flight == 0)
                break;
        }
        if (mono_ns() > deadline) {
            snprintf(why, why_len, "engine %d: gave up after %d s: %ld of %ld delivered in all",
                     me, DRIVE_TIMEOUT_S, sum, total);
            _exit(1);
        }
    }
    sh->cpu_secs[me] = cpu_secs(RUSAGE_SELF) - cpu0;
    sh->attempts[me] = st.attempts;
    sh->failed[me] = st.failed;
    wh_destroy(h);
    sh->ok[me] = 1;
    _exit(0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The requests nginx logged (access log "URI webhook-id") for `path` since byte `from`:
 * how many, and how many distinct webhook ids. False when the log cannot be read. */

static bool count_logged(const char *log, long from, const char *path, long *requests,
                         long *distinct)
{
    FILE *f = fopen(log, "r");
    if (!f || fseek(f, from, SEEK_SET) != 0) {
        if (f)
            fclose(f);
        return false;
    }
    size_t cap = 1024, n = 0, plen = strlen(path);
    char **ids = malloc(cap * sizeof *ids), line[512];
    while (ids && fgets(line, sizeof line, f)) {
        if (strncmp(line, path, plen) != 0 || line[plen] != ' ')
            continue;
        line[strcspn(line, "\n")] = '\0';
        if (n == cap) {
            char **more = realloc(ids, 2 * cap * sizeof *ids);
            if (!more)
                break;
            ids = more, cap *= 2;
        }
        ids[n++] = strdup(line + plen + 1);
    }
    fclose(f);
    if (!ids)
        return false;
    qsort(ids, n, sizeof *ids, cmp_str);
    long d = 0;
    for (size_t i = 0; i < n; i++)
        d += i == 0 || strcmp(ids[i], ids[i - 1]) != 0;
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    *requests = (long)n;
    *distinct = d;
    return true;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* n engine processes start on a fresh SQLite file that holds ENGINES_BACKLOG pending events
 * (what a rolling deploy finds), emit ENGINES_EVENTS more between them and deliver them all
 * to /counted/RUN/ on nginx (the one path whose requests nginx logs). */
static bool engines_run(int n, int run, engines_result *out, char *why, size_t why_len)
{
    char store[600], url[96], path[32], log[600];
    snprintf(store, sizeof store, "sqlite:%s/engines-%d.db", B.tmp, run);
    snprintf(path, sizeof path, "/counted/%d/", run);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", B.nginx_port, path);
    snprintf(log, sizeof log, "%s/nginx/counted.log", B.tmp);
    /* the endpoint and the backlog: emitted, never driven, left pending by wh_destroy */
    const long total = ENGINES_EVENTS + ENGINES_BACKLOG;
    wh_ctx *h = make_ctx("store", store, NULL);
    bool set = h && add_endpoint(h, url, NULL) == WH_OK;
    for (long i = 0; set && i < ENGINES_BACKLOG; i++)
        set = emit_big(h, ENGINES_EVENTS + i) == 1;
    wh_destroy(h);
    if (!set) {
        snprintf(why, why_len, "could not set up the store");
        return false;
    }
    engines_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                              -1, 0);
    int ready[2], go[2];
    if (sh == MAP_FAILED || pipe(ready) != 0 || pipe(go) != 0) {
        snprintf(why, why_len, "mmap or pipe: %s", strerror(errno));
        return false;
    }
    memset(sh, 0, sizeof *sh);
    long log_from = file_size(log);
    fflush(NULL); /* nothing buffered here is written twice by a child */
    pid_t pids[2] = {-1, -1};
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            close(ready[0]);
            close(go[1]);
            engine_child(store, i, n, ENGINES_EVENTS, total, sh, ready[1], go[0]);
        }
    }
    close(ready[1]);
    close(go[0]);
    /* every engine registered in the store before any starts; an engine that fails to open
     * never says so, hence the bound */
    int got = 0;
    int64_t until = mono_ns() + 30 * (int64_t)1000000000;
    while (got < n && mono_ns() < until) {
        struct pollfd pfd = {.fd = ready[0], .events = POLLIN};
        char c;
        if (poll(&pfd, 1, 100) == 1 && read(ready[0], &c, 1) == 1)
            got++;
        else if (pfd.revents & POLLHUP)
            break;
    }
    close(ready[0]);
    bool ok = got == n;
    if (!ok) {
        snprintf(why, why_len, "an engine did not start");
        for (int i = 0; i < n; i++)
            if (pids[i] > 0)
                kill(pids[i], SIGKILL);
    }
    close(go[1]); /* go */
    for (int i = 0; i < n; i++) {
        int status;
        if (pids[i] < 0 || waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0 || !sh->ok[i]) {
            if (ok)
                snprintf(why, why_len, "%s", sh->why[i][0] ? sh->why[i] : "an engine failed");
            ok = false;
        }
    }
    double cpu = 0;
    uint64_t attempts = 0, delivered = 0, failed = 0;
    int64_t start = sh->start_ns[0];
    for (int i = 0; i < n; i++) {
        cpu += sh->cpu_secs[i];
        attempts += sh->attempts[i];
        delivered += (uint64_t)sh->delivered[i];
        failed += sh->failed[i];
        if (sh->start_ns[i] < start)
            start = sh->start_ns[i];
    }
    double secs = (double)(sh->done_ns - start) / 1e9;
    munmap(sh, sizeof *sh);
    if (!ok)
        return false;
    if (failed || attempts != delivered || secs <= 0) {
        snprintf(why, why_len, "%" PRIu64 " attempts for %" PRIu64 " deliveries (%" PRIu64
                               " failed): the receiver refused some",
                 attempts, delivered, failed);
        return false;
    }
    /* nginx writes its log line just after the answer: give the last ones a moment */
    out->requests = out->distinct = 0;
    for (int i = 0; i < 20; i++) {
        if (!count_logged(log, log_from, path, &out->requests, &out->distinct)) {
            snprintf(why, why_len, "cannot read nginx's log counted.log");
            return false;
        }
        if (out->requests >= (long)delivered)
            break;
        usleep(50000);
    }
    out->evps = (double)total / secs;
    out->cpu_us = cpu / (double)total * 1e6;
    say("%d engine%s on one sqlite file: %ld events (%ld of them waiting at the start) in %.2f s "
        "= %.0f events/s, %.1f us CPU each; nginx got %ld requests, %ld distinct webhook ids",
        n, n > 1 ? "s" : "", total, ENGINES_BACKLOG, secs, out->evps, out->cpu_us, out->requests,
        out->distinct);
    return true;
}

static int cmp_double(const void *a, const void *b);

static void sc_engines(void)
{
    const char *name = "2 engines, 1 sqlite file";
    char why[256] = "", a[96], b[96], ratio[24], n1[32], n2[32];
    /* one, two, one, two, one, two: medians of three, so that drift hits both alike */
    engines_result one[ENGINES_ROUNDS], two[ENGINES_ROUNDS];
    double one_evps[ENGINES_ROUNDS], two_evps[ENGINES_ROUNDS], cpu_one = 0, cpu_two = 0;
    long requests = 0, duplicates = 0, missing = 0;
    for (int i = 0; i < 2 * ENGINES_ROUNDS; i++) {
        int n = 1 + i % 2;
        engines_result *r = n == 1 ? &one[i / 2] : &two[i / 2];
        if (!engines_run(n, i, r, why, sizeof why)) {
            error_row(name, why);
            return;
        }
        requests += r->requests;
        duplicates += r->requests - r->distinct;
        missing += ENGINES_EVENTS + ENGINES_BACKLOG - r->distinct;
        (n == 1 ? one_evps : two_evps)[i / 2] = r->evps;
        *(n == 1 ? &cpu_one : &cpu_two) += r->cpu_us / ENGINES_ROUNDS;
    }
    qsort(one_evps, ENGINES_ROUNDS, sizeof one_evps[0], cmp_double);
    qsort(two_evps, ENGINES_ROUNDS, sizeof two_evps[0], cmp_double);
    double o1 = one_evps[ENGINES_ROUNDS / 2], o2 = two_evps[ENGINES_ROUNDS / 2], x = o2 / o1;
    long emitted = 2L * ENGINES_ROUNDS * (ENGINES_EVENTS + ENGINES_BACKLOG);
    bool met = duplicates == 0 && missing == 0;
    cJSON *o = cJSON_AddObjectToObject(B.json, "two_engines");
    cJSON_AddNumberToObject(o, "events_per_run", ENGINES_EVENTS + ENGINES_BACKLOG);
    cJSON_AddNumberToObject(o, "of_them_waiting_at_start", ENGINES_BACKLOG);
    cJSON_AddNumberToObject(o, "runs_each", ENGINES_ROUNDS);
    cJSON_AddNumberToObject(o, "events_per_s", round(o2));
    cJSON_AddNumberToObject(o, "cpu_us_per_event", round(cpu_two * 10) / 10);
    cJSON_AddNumberToObject(o, "one_engine_events_per_s", round(o1));
    cJSON_AddNumberToObject(o, "one_engine_cpu_us_per_event", round(cpu_one * 10) / 10);
    cJSON *runs = cJSON_AddArrayToObject(o, "runs_events_per_s");
    for (int i = 0; i < ENGINES_ROUNDS; i++)
        cJSON_AddItemToArray(runs, cJSON_CreateNumber(round(two[i].evps)));
    runs = cJSON_AddArrayToObject(o, "one_engine_runs_events_per_s");
    for (int i = 0; i < ENGINES_ROUNDS; i++)
        cJSON_AddItemToArray(runs, cJSON_CreateNumber(round(one[i].evps)));
    cJSON_AddNumberToObject(o, "events_emitted", (double)emitted);
    cJSON_AddNumberToObject(o, "requests_received", (double)requests);
    cJSON_AddNumberToObject(o, "duplicates", (double)duplicates);
    cJSON_AddNumberToObject(o, "missing", (double)missing);
    cJSON_AddNumberToObject(o, "ratio", round(x * 1000) / 1000);
    cJSON_AddBoolToObject(o, "met", met);
    snprintf(a, sizeof a, "%s events/s, %.0f us CPU each; %ld dup%s, %ld missing",
             grouped(o2, n1, sizeof n1), cpu_two, duplicates, duplicates == 1 ? "" : "s", missing);
    snprintf(b, sizeof b, "1 engine %s events/s, %.0f us CPU (medians of %d)",
             grouped(o1, n2, sizeof n2), cpu_one, ENGINES_ROUNDS);
    snprintf(ratio, sizeof ratio, "%.2fx", x);
    say("%s: nginx got %ld requests for %ld events emitted: %ld duplicates, %ld missing", name,
        requests, emitted, duplicates, missing);
    add_row(name, a, b, ratio, "0 duplicates", verdict(met));
}

/* ---- PostgreSQL: the server, throughput ------------------------------------------------------ */

/* Starts the throwaway cluster the first time a scenario needs it; false when it cannot. */
static bool pg_ready(void)
{
    if (B.pg_tried)
        return B.pg.running || B.pg_external;
    B.pg_tried = true;
    const char *mine = getenv("WH_BENCH_PG_URI");
    if (mine && *mine) {
        /* a server of one's own (say, with pg_stat_statements), for a closer look: used as it
         * is, never stopped; the bench makes schemas in it and leaves them */
        snprintf(B.pg.uri, sizeof B.pg.uri, "%s", mine);
        snprintf(B.pg.conninfo, sizeof B.pg.conninfo, "%s", mine);
        if (pg_sql(&B.pg, "SELECT 1", NULL, 0) != 0)
            return false;
        B.pg_external = true;
        say("PostgreSQL of WH_BENCH_PG_URI (its CPU is not counted)");
        return true;
    }
    int64_t t0 = mono_ns();
    if (pg_cluster_start(&B.pg) != 0) {
        say("could not start PostgreSQL (make deps installs postgresql)");
        return false;
    }
    char path[128], version[64] = "?";
    snprintf(path, sizeof path, "%s/data/postmaster.pid", B.pg.dir);
    char *pid = read_file(path);
    B.pg_postmaster = pid ? (pid_t)atol(pid) : 0;
    free(pid);
    pg_sql(&B.pg, "SHOW server_version", version, sizeof version);
    say("PostgreSQL %s on 127.0.0.1:%d (postmaster pid %d, in %s), started in %.1f s", version,
        B.pg.port, (int)B.pg_postmaster, B.pg.dir, since_s(t0));
    return true;
}

/* The throughput run with the store on PostgreSQL, against the memory store's. */
static void sc_pg_throughput(void)
{
    const char *name = "throughput pg";
    char why[256], a[96], b[96], ratio[24], n1[32], n2[32];
    if (!pg_ready()) {
        error_row(name, "could not start PostgreSQL");
        return;
    }
    run_result r;
    /* a quarter of the events: at the rate of the memory store's run the whole would take
     * minutes; the rate holds steady over the run */
    long events = THROUGHPUT_EVENTS / 4;
    if (!delivery_run(B.pg.uri, "throughput", events, name, &r, why, sizeof why)) {
        error_row(name, why);
        return;
    }
    say("%s: the PostgreSQL server used %.1f us of CPU per event", name, r.pg_cpu_us);
    cJSON *o = cJSON_AddObjectToObject(B.json, "pg_throughput");
    cJSON_AddNumberToObject(o, "events", (double)events);
    cJSON_AddNumberToObject(o, "events_per_s", round(r.evps));
    cJSON_AddNumberToObject(o, "cpu_us_per_event", round(r.cpu_us * 10) / 10);
    cJSON_AddNumberToObject(o, "pg_server_cpu_us_per_event", round(r.pg_cpu_us * 10) / 10);
    snprintf(a, sizeof a, "%s events/s, %.0f us CPU + %.0f us server CPU each",
             grouped(r.evps, n1, sizeof n1), r.cpu_us, r.pg_cpu_us);
    if (B.throughput_evps <= 0) {
        add_row(name, a, "(skipped)", "-", ">= 0.5x memory", "-");
        return;
    }
    double x = r.evps / B.throughput_evps;
    cJSON_AddNumberToObject(o, "memory_events_per_s", round(B.throughput_evps));
    cJSON_AddNumberToObject(o, "ratio", round(x * 1000) / 1000);
    cJSON_AddNumberToObject(o, "target", 0.5);
    cJSON_AddBoolToObject(o, "met", x >= 0.5);
    snprintf(b, sizeof b, "memory store %s events/s", grouped(B.throughput_evps, n2, sizeof n2));
    snprintf(ratio, sizeof ratio, "%.2fx", x);
    add_row(name, a, b, ratio, ">= 0.5x", verdict(x >= 0.5));
}

/* ---- batches: the throughput runs with events emitted BATCH at a time --------------------- */

/* One row of the batched scenario: `r` against the memory store's batched run `base`. */
static void batched_row(const char *name, const char *key, const run_result *r,
                        const run_result *base, double target)
{
    char a[128], b[96], ratio[24], tgt[24], n1[32], n2[32];
    cJSON *o = cJSON_AddObjectToObject(B.json, key);
    cJSON_AddNumberToObject(o, "batch", BATCH);
    cJSON_AddNumberToObject(o, "events_per_s", round(r->evps));
    cJSON_AddNumberToObject(o, "cpu_us_per_event", round(r->cpu_us * 10) / 10);
    if (r->pg_cpu_us >= 0) {
        cJSON_AddNumberToObject(o, "pg_server_cpu_us_per_event", round(r->pg_cpu_us * 10) / 10);
        snprintf(a, sizeof a, "%s events/s, %.0f us CPU + %.0f us server CPU each",
                 grouped(r->evps, n1, sizeof n1), r->cpu_us, r->pg_cpu_us);
    } else {
        snprintf(a, sizeof a, "%s events/s, %.0f us CPU each", grouped(r->evps, n1, sizeof n1),
                 r->cpu_us);
    }
    if (!base) {
        add_row(name, a, "-", "-", "-", "-");
        return;
    }
    double x = r->evps / base->evps;
    cJSON_AddNumberToObject(o, "memory_events_per_s", round(base->evps));
    cJSON_AddNumberToObject(o, "ratio", round(x * 1000) / 1000);
    cJSON_AddNumberToObject(o, "target", target);
    cJSON_AddBoolToObject(o, "met", x >= target);
    snprintf(b, sizeof b, "memory store, batches of %d: %s events/s", BATCH,
             grouped(base->evps, n2, sizeof n2));
    snprintf(ratio, sizeof ratio, "%.2fx", x);
    snprintf(tgt, sizeof tgt, ">= %.1fx", target);
    add_row(name, a, b, ratio, tgt, verdict(x >= target));
}

/* The host that has its events in hand several at a time: the memory store, SQLite and
 * PostgreSQL (a quarter of the events, as throughput pg) each emit them BATCH per
 * wh_emit_batch, so that a durable store commits once per batch. */
static void sc_batched(void)
{
    char why[256], store[600], name[64];
    run_result mem, lite, pg;
    snprintf(name, sizeof name, "throughput, batches of %d", BATCH);
    if (!delivery_run_batched("memory", NULL, THROUGHPUT_EVENTS, BATCH, name, &mem, why, sizeof why)) {
        error_row(name, why);
        return;
    }
    batched_row(name, "batched_throughput", &mem, NULL, 0);
    snprintf(name, sizeof name, "durable, batches of %d", BATCH);
    snprintf(store, sizeof store, "sqlite:%s/batched.db", B.tmp);
    if (delivery_run_batched(store, NULL, THROUGHPUT_EVENTS, BATCH, name, &lite, why, sizeof why))
        batched_row(name, "batched_durable", &lite, &mem, 0.7);
    else
        error_row(name, why);
    snprintf(name, sizeof name, "throughput pg, batches of %d", BATCH);
    if (!pg_ready()) {
        error_row(name, "could not start PostgreSQL");
        return;
    }
    if (delivery_run_batched(B.pg.uri, "batched", THROUGHPUT_EVENTS / 4, BATCH, name, &pg, why,
                             sizeof why))
        batched_row(name, "batched_pg_throughput", &pg, &mem, 0.5);
    else
        error_row(name, why);
}

/* ---- HTTP/2 over TLS ------------------------------------------------------------------------ */

/* THROUGHPUT_EVENTS / 4 big events to one https endpoint on nginx (which answers 204 before
 * reading the body: see lib/transport_curl.c). */
static bool tls_run(int port, const char *label, run_result *out, char *why, size_t why_len)
{
    long events = THROUGHPUT_EVENTS / 4;
    wh_ctx *h = make_ctx("tls.ca_file", B.ca_file, NULL);
    if (!h) {
        snprintf(why, why_len, "could not make the context");
        return false;
    }
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", port);
    if (add_endpoint(h, url, NULL) != WH_OK) {
        wh_destroy(h);
        snprintf(why, why_len, "could not add the endpoint");
        return false;
    }
    drive_result r;
    double ng0 = nginx_cpu_secs();
    int rc = drive(h, &(drive_spec){.events = events, .per_event = 1, .big = true},
                   &r, why, why_len);
    double ng = nginx_cpu_secs() - ng0;
    wh_destroy(h);
    if (rc != 0)
        return false;
    *out = (run_result){.evps = (double)events / r.secs,
                        .cpu_us = r.cpu_secs / (double)events * 1e6,
                        .nginx_cpu_us = ng0 >= 0 ? ng / (double)events * 1e6 : -1};
    say("%s: %ld events in %.2f s = %.0f events/s; CPU per event: libwebhook %.1f us, nginx "
        "%.1f us", label, events, r.secs, out->evps, out->cpu_us, out->nginx_cpu_us);
    return true;
}

/* HTTP/2 (nginx offers h2 by ALPN and libcurl takes it) against the same with HTTP/1.1 (the
 * other port offers only that), interleaved, means of TLS_ROUNDS runs each. */
static void sc_http2(void)
{
    char why[256], a[96], b[96], ratio[24], n1[32], n2[32];
    run_result h2 = {0}, h1 = {0};
    for (int i = 0; i < TLS_ROUNDS; i++) {
        run_result r2, r1;
        if (!tls_run(B.h2_port, "https, HTTP/2", &r2, why, sizeof why) ||
            !tls_run(B.h1_tls_port, "https, HTTP/1.1", &r1, why, sizeof why)) {
            error_row("HTTP/2 over TLS", why);
            return;
        }
        h2.evps += r2.evps / TLS_ROUNDS;
        h2.cpu_us += r2.cpu_us / TLS_ROUNDS;
        h2.nginx_cpu_us += r2.nginx_cpu_us / TLS_ROUNDS;
        h1.evps += r1.evps / TLS_ROUNDS;
        h1.cpu_us += r1.cpu_us / TLS_ROUNDS;
        h1.nginx_cpu_us += r1.nginx_cpu_us / TLS_ROUNDS;
    }
    double x = h2.evps / h1.evps;
    cJSON *o = cJSON_AddObjectToObject(B.json, "http2");
    cJSON_AddNumberToObject(o, "events", (double)(THROUGHPUT_EVENTS / 4));
    cJSON_AddNumberToObject(o, "runs_each", TLS_ROUNDS);
    cJSON_AddNumberToObject(o, "events_per_s", round(h2.evps));
    cJSON_AddNumberToObject(o, "cpu_us_per_event", round(h2.cpu_us * 10) / 10);
    cJSON_AddNumberToObject(o, "nginx_cpu_us_per_event", round(h2.nginx_cpu_us * 10) / 10);
    cJSON_AddNumberToObject(o, "http1_events_per_s", round(h1.evps));
    cJSON_AddNumberToObject(o, "http1_cpu_us_per_event", round(h1.cpu_us * 10) / 10);
    cJSON_AddNumberToObject(o, "http1_nginx_cpu_us_per_event", round(h1.nginx_cpu_us * 10) / 10);
    cJSON_AddNumberToObject(o, "ratio", round(x * 1000) / 1000);
    snprintf(a, sizeof a, "%s events/s, %.0f us CPU each", grouped(h2.evps, n1, sizeof n1),
             h2.cpu_us);
    snprintf(b, sizeof b, "HTTP/1.1 over TLS %s events/s, %.0f us CPU", grouped(h1.evps, n2, sizeof n2),
             h1.cpu_us);
    snprintf(ratio, sizeof ratio, "%.2fx", x);
    add_row("HTTP/2 over TLS", a, b, ratio, "-", "-");
}

/* The loop an engine would hand-write: build JSON, HMAC, curl_easy_perform one at a time. */
static double naive_run(int port, long n, char *why, size_t why_len)
{
    unsigned char key[64];
    /* the secret's base64 is 32 characters without padding: 24 bytes */
    int key_len = EVP_DecodeBlock(key, (const unsigned char *)TEST_SECRET + 6,
                                  (int)strlen(TEST_SECRET) - 6);
    CURL *e = curl_easy_init();
    if (key_len != 24 || !e) {
        snprintf(why, why_len, "could not set up the naive loop");
        curl_easy_cleanup(e);
        return -1;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    int64_t t0 = mono_ns();
    long ok = 0;
    for (long i = 0; i < n; i++) {
        char id[WH_ID_MAX];
        new_event_id(id);
        char *body = body_like_libwebhook(i, id);
        size_t body_len = strlen(body);
        long long ts = (long long)time(NULL);
        char prefix[96];
        int pl = snprintf(prefix, sizeof prefix, "%s.%lld.", id, ts);
        char *msg = malloc((size_t)pl + body_len);
        memcpy(msg, prefix, (size_t)pl);
        memcpy(msg + pl, body, body_len);
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned mac_len = 0;
        HMAC(EVP_sha256(), key, key_len, (unsigned char *)msg, (size_t)pl + body_len, mac, &mac_len);
        free(msg);
        char b64[96], h_id[96], h_ts[64], h_sig[128];
        EVP_EncodeBlock((unsigned char *)b64, mac, (int)mac_len);
        snprintf(h_id, sizeof h_id, "webhook-id: %s", id);
        snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %lld", ts);
        snprintf(h_sig, sizeof h_sig, "webhook-signature: v1,%s", b64);
        struct curl_slist *hs = curl_slist_append(NULL, "Content-Type: application/json");
        hs = curl_slist_append(hs, "User-Agent: libwebhook/" WH_VERSION_STRING);
        hs = curl_slist_append(hs, h_id);
        hs = curl_slist_append(hs, h_ts);
        hs = curl_slist_append(hs, h_sig);
        hs = curl_slist_append(hs, "Expect:");
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hs);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 15000L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        CURLcode rc = curl_easy_perform(e);
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        ok += rc == CURLE_OK && status >= 200 && status < 300;
        curl_slist_free_all(hs);
        free(body);
    }
    double secs = since_s(t0);
    curl_easy_cleanup(e);
    if (ok != n) {
        snprintf(why, why_len, "%ld of %ld requests failed", n - ok, n);
        return -1;
    }
    return (double)n / secs;
}

static void sc_naive(void)
{
    char why[256], a[96], b[96], ratio[24], n1[32], n2[32];
    double evps = naive_run(B.nginx_port, NAIVE_EVENTS, why, sizeof why);
    if (evps < 0) {
        error_row("vs naive", why);
        return;
    }
    say("naive: %ld events, %.0f events/s", NAIVE_EVENTS, evps);
    cJSON *o = cJSON_AddObjectToObject(B.json, "naive");
    cJSON_AddNumberToObject(o, "events", NAIVE_EVENTS);
    cJSON_AddNumberToObject(o, "naive_events_per_s", round(evps));
    snprintf(b, sizeof b, "naive loop %s events/s", grouped(evps, n2, sizeof n2));
    if (B.throughput_evps <= 0) {
        add_row("vs naive", "(throughput skipped)", b, "-", ">= 5x", "-");
        return;
    }
    double x = B.throughput_evps / evps;
    cJSON_AddNumberToObject(o, "libwebhook_events_per_s", round(B.throughput_evps));
    cJSON_AddNumberToObject(o, "ratio", round(x * 1000) / 1000);
    if (g_wrk16.rps > 0) /* what any client could reach over naive on this machine */
        cJSON_AddNumberToObject(o, "wrk_over_naive", round(g_wrk16.rps / evps * 1000) / 1000);
    cJSON_AddNumberToObject(o, "target", 5);
    cJSON_AddBoolToObject(o, "met", x >= 5);
    snprintf(a, sizeof a, "libwebhook %s events/s", grouped(B.throughput_evps, n1, sizeof n1));
    if (g_wrk16.rps > 0)
        snprintf(b + strlen(b), sizeof b - strlen(b), " (wrk: %.1fx)", g_wrk16.rps / evps);
    snprintf(ratio, sizeof ratio, "%.2fx", x);
    add_row("vs naive", a, b, ratio, ">= 5x", verdict(x >= 5));
}

/* libwebhook against the HTTP library under it, both measured around the same minutes. */
static void sc_bare(void)
{
    char a[96], b[96], ratio[24], n1[32], n2[32];
    if (B.throughput_evps <= 0 || g_bare.rps <= 0)
        return; /* the throughput run or a bare run failed, and said so */
    double x = B.throughput_evps / g_bare.rps;
    cJSON *o = cJSON_AddObjectToObject(B.json, "bare_libcurl");
    cJSON_AddNumberToObject(o, "requests", BARE_REQUESTS);
    cJSON_AddNumberToObject(o, "connections", BARE_CONNECTIONS);
    cJSON_AddNumberToObject(o, "bare_requests_per_s", round(g_bare.rps));
    cJSON_AddNumberToObject(o, "bare_cpu_us_per_request", round(g_bare.cpu_us * 10) / 10);
    cJSON_AddNumberToObject(o, "libwebhook_events_per_s", round(B.throughput_evps));
    cJSON_AddNumberToObject(o, "libwebhook_cpu_us_per_event", round(B.throughput_cpu_us * 10) / 10);
    cJSON_AddNumberToObject(o, "ratio", round(x * 1000) / 1000);
    if (g_wrk16.rps > 0)
        cJSON_AddNumberToObject(o, "bare_over_wrk", round(g_bare.rps / g_wrk16.rps * 1000) / 1000);
    cJSON_AddNumberToObject(o, "target", 0.9);
    cJSON_AddBoolToObject(o, "met", x >= 0.9);
    snprintf(a, sizeof a, "libwebhook %s events/s, %.0f us CPU each",
             grouped(B.throughput_evps, n1, sizeof n1), B.throughput_cpu_us);
    snprintf(b, sizeof b, "bare libcurl %s req/s, %.0f us CPU each", grouped(g_bare.rps, n2, sizeof n2),
             g_bare.cpu_us);
    snprintf(ratio, sizeof ratio, "%.2fx", x);
    add_row("vs bare libcurl", a, b, ratio, ">= 0.9x", verdict(x >= 0.9));
}

/* ---- fan-out ---------------------------------------------------------------------------------------- */

static void sc_fanout(void)
{
    char why[256] = "", a[96], b[96], ratio[24], n1[32], n2[32];
    wh_ctx *h = make_ctx(NULL);
    if (!h || add_endpoints(h, B.nginx_port, "/ep/", FANOUT_ENDPOINTS) != 0) {
        wh_destroy(h);
        error_row("fan-out", "could not set up the endpoints");
        return;
    }
    drive_result r;
    int rc = drive(h, &(drive_spec){.events = FANOUT_EVENTS, .per_event = FANOUT_ENDPOINTS, .big = true},
                   &r, why, sizeof why);
    wh_destroy(h);
    if (rc != 0) {
        error_row("fan-out", why);
        return;
    }
    double dps = (double)(FANOUT_EVENTS * FANOUT_ENDPOINTS) / r.secs;
    say("fan-out: %ld deliveries in %.2f s = %.0f deliveries/s", FANOUT_EVENTS * FANOUT_ENDPOINTS,
        r.secs, dps);
    cJSON *o = cJSON_AddObjectToObject(B.json, "fanout");
    cJSON_AddNumberToObject(o, "events", FANOUT_EVENTS);
    cJSON_AddNumberToObject(o, "endpoints", FANOUT_ENDPOINTS);
    cJSON_AddNumberToObject(o, "deliveries_per_s", round(dps));
    snprintf(a, sizeof a, "%s deliveries/s", grouped(dps, n1, sizeof n1));
    if (B.no_baseline) {
        add_row("fan-out", a, "(skipped)", "-", ">= 0.5x wrk", "-");
        return;
    }
    /* libwebhook uses up to http.max_connections (256) here: 1,000 endpoints x 16 > 256 */
    wrk_result w;
    if (!run_wrk(256, FANOUT_ENDPOINTS, &w)) {
        error_row("fan-out", "wrk failed");
        return;
    }
    double wrk = w.rps, x = dps / wrk;
    cJSON_AddNumberToObject(o, "wrk_requests_per_s", round(wrk));
    cJSON_AddNumberToObject(o, "wrk_connections", 256);
    cJSON_AddNumberToObject(o, "ratio", round(x * 1000) / 1000);
    cJSON_AddNumberToObject(o, "target", 0.5);
    cJSON_AddBoolToObject(o, "met", x >= 0.5);
    snprintf(b, sizeof b, "wrk %s req/s (256 conns, 1,000 paths)", grouped(wrk, n2, sizeof n2));
    snprintf(ratio, sizeof ratio, "%.2fx", x);
    add_row("fan-out", a, b, ratio, ">= 0.5x", verdict(x >= 0.5));
}

/* ---- slow receivers ------------------------------------------------------------------------------------ */

/* libmicrohttpd, a thread per connection, answering 204 to every request after *cls ms. */
static enum MHD_Result slow_answer(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *data,
                                   size_t *data_size, void **state)
{
    (void)url, (void)method, (void)version, (void)data;
    if (!*state) { /* headers only so far */
        *state = cls;
        return MHD_YES;
    }
    if (*data_size) { /* body: read and dropped */
        *data_size = 0;
        return MHD_YES;
    }
    int ms = *(const int *)cls;
    struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&d, &d) != 0 && errno == EINTR) {
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_NO_CONTENT, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Requests the slow receiver answered in full (scale-out checks that none went twice). */
static long g_slow_answered;

static void slow_completed(void *cls, struct MHD_Connection *c, void **state,
                           enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c;
    if (*state && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        __atomic_add_fetch(&g_slow_answered, 1, __ATOMIC_RELAXED);
}

static struct MHD_Daemon *start_slow_receiver(const int *delay_ms, int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD, 0, NULL, NULL, slow_answer,
        (void *)delay_ms, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)4096, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)256 * 1024, MHD_OPTION_NOTIFY_COMPLETED,
        slow_completed, NULL, MHD_OPTION_END);
    const union MHD_DaemonInfo *info = d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    *port = info ? info->port : 0;
    if (d && !*port) {
        MHD_stop_daemon(d);
        d = NULL;
    }
    return d;
}

/* vs naive where concurrency matters: the receiver takes NAIVE_SLOW_DELAY_MS per request. */
static void sc_naive_slow(void)
{
    static const int delay = NAIVE_SLOW_DELAY_MS;
    char why[256] = "", a[96], b[96], ratio[24], n1[32], n2[32], name[48];
    snprintf(name, sizeof name, "vs naive, %d ms receiver", delay);
    int port;
    struct MHD_Daemon *d = start_slow_receiver(&delay, &port);
    if (!d) {
        error_row(name, "could not start the libmicrohttpd receiver");
        return;
    }
    double naive = naive_run(port, NAIVE_SLOW_EVENTS, why, sizeof why);
    wh_ctx *h = naive > 0 ? make_ctx(NULL) : NULL;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    drive_result r;
    long events = NAIVE_SLOW_EVENTS * 10;
    int rc = h && add_endpoint(h, url, NULL) == WH_OK
                 ? drive(h, &(drive_spec){.events = events, .per_event = 1, .big = true}, &r, why,
                         sizeof why)
                 : -1;
    wh_destroy(h);
    MHD_stop_daemon(d);
    if (naive <= 0 || rc != 0) {
        error_row(name, why[0] ? why : "could not set up");
        return;
    }
    double evps = (double)events / r.secs, x = evps / naive;
    say("%s: libwebhook %.0f events/s, naive %.0f events/s", name, evps, naive);
    cJSON *o = cJSON_AddObjectToObject(B.json, "naive_slow_receiver");
    cJSON_AddNumberToObject(o, "delay_ms", delay);
    cJSON_AddNumberToObject(o, "libwebhook_events", (double)events);
    cJSON_AddNumberToObject(o, "libwebhook_events_per_s", round(evps));
    cJSON_AddNumberToObject(o, "naive_events", NAIVE_SLOW_EVENTS);
    cJSON_AddNumberToObject(o, "naive_events_per_s", round(naive));
    cJSON_AddNumberToObject(o, "ratio", round(x * 1000) / 1000);
    cJSON_AddNumberToObject(o, "target", 5);
    cJSON_AddBoolToObject(o, "met", x >= 5);
    snprintf(a, sizeof a, "libwebhook %s events/s", grouped(evps, n1, sizeof n1));
    snprintf(b, sizeof b, "naive loop %s events/s", grouped(naive, n2, sizeof n2));
    snprintf(ratio, sizeof ratio, "%.2fx", x);
    add_row(name, a, b, ratio, ">= 5x", verdict(x >= 5));
}

static void sc_slow(void)
{
    static const int delay = SLOW_DELAY_MS;
    char why[256] = "", a[96], b[96], ratio[24], n1[32], n2[32];
    int port;
    struct MHD_Daemon *d = start_slow_receiver(&delay, &port);
    if (!d) {
        error_row("slow receivers", "could not start the libmicrohttpd receiver");
        return;
    }
    wh_ctx *h = make_ctx(NULL);
    long per_ep = 0, max_conn = 0;
    if (h) {
        /* the limits in force, read back from a conf with the defaults */
        wh_conf *c = wh_conf_new();
        per_ep = strtol(wh_conf_get(c, "endpoint.max_in_flight"), NULL, 10);
        max_conn = strtol(wh_conf_get(c, "http.max_connections"), NULL, 10);
        wh_conf_destroy(c);
    }
    if (!h || add_endpoints(h, port, "/slow/", SLOW_ENDPOINTS) != 0) {
        wh_destroy(h);
        MHD_stop_daemon(d);
        error_row("slow receivers", "could not set up the endpoints");
        return;
    }
    long events = SLOW_DELIVERIES / SLOW_ENDPOINTS;
    drive_result r;
    int rc = drive(h, &(drive_spec){.events = events, .per_event = SLOW_ENDPOINTS, .big = true},
                   &r, why, sizeof why);
    wh_destroy(h);
    MHD_stop_daemon(d);
    if (rc != 0) {
        error_row("slow receivers", why);
        return;
    }
    double dps = (double)SLOW_DELIVERIES / r.secs;
    long limit = per_ep * SLOW_ENDPOINTS;
    if (max_conn < limit)
        limit = max_conn;
    double ideal = (double)limit / (SLOW_DELAY_MS / 1000.0);
    double x = dps / ideal;
    say("slow: %ld deliveries in %.2f s = %.0f/s, ideal %.0f/s", SLOW_DELIVERIES, r.secs, dps, ideal);
    cJSON *o = cJSON_AddObjectToObject(B.json, "slow");
    cJSON_AddNumberToObject(o, "deliveries", SLOW_DELIVERIES);
    cJSON_AddNumberToObject(o, "endpoints", SLOW_ENDPOINTS);
    cJSON_AddNumberToObject(o, "delay_ms", SLOW_DELAY_MS);
    cJSON_AddNumberToObject(o, "deliveries_per_s", round(dps));
    cJSON_AddNumberToObject(o, "in_flight_limit", (double)limit);
    cJSON_AddNumberToObject(o, "ideal_per_s", round(ideal));
    cJSON_AddNumberToObject(o, "ratio", round(x * 1000) / 1000);
    cJSON_AddNumberToObject(o, "target", 0.8);
    cJSON_AddBoolToObject(o, "met", x >= 0.8);
    snprintf(a, sizeof a, "%s deliveries/s", grouped(dps, n1, sizeof n1));
    snprintf(b, sizeof b, "ideal %s/s (%ld in flight / %d ms)", grouped(ideal, n2, sizeof n2), limit,
             SLOW_DELAY_MS);
    snprintf(ratio, sizeof ratio, "%.2fx", x);
    add_row("slow receivers", a, b, ratio, ">= 0.8x", verdict(x >= 0.8));
}

/* ---- isolation ---------------------------------------------------------------------------------------- */

/* Healthy deliveries/s to ISO_HEALTHY endpoints on nginx, with or without one stuck endpoint. */
static double iso_run(int stuck_port, uint64_t *stuck_in_flight, double *cpu_us, char *why,
                      size_t why_len)
{
    wh_ctx *h = make_ctx(NULL);
    if (!h || add_endpoints(h, B.nginx_port, "/h/", ISO_HEALTHY) != 0) {
        wh_destroy(h);
        snprintf(why, why_len, "could not set up the endpoints");
        return -1;
    }
    if (stuck_port > 0) {
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/stuck", stuck_port);
        if (add_endpoint(h, url, NULL) != WH_OK) {
            wh_destroy(h);
            snprintf(why, why_len, "could not add the stuck endpoint");
            return -1;
        }
    }
    drive_result r;
    int rc = drive(h, &(drive_spec){.events = ISO_EVENTS, .per_event = ISO_HEALTHY, .big = true},
                   &r, why, why_len);
    if (stuck_in_flight) /* what the stuck endpoint holds when the healthy ones are done */
        *stuck_in_flight = r.st.in_flight;
    *cpu_us = r.cpu_secs / (double)(ISO_EVENTS * ISO_HEALTHY) * 1e6;
    wh_destroy(h); /* the stuck endpoint's deliveries are logged FAILED "destroyed" */
    return rc == 0 ? (double)(ISO_EVENTS * ISO_HEALTHY) / r.secs : -1;
}

static int cmp_double(const void *a, const void *b);

static void sc_isolation(void)
{
    char why[256] = "", a[96], b[96], ratio[24], n1[32], n2[32];
    int port = 0, fd = stuck_listener(&port);
    if (fd < 0) {
        error_row("isolation", "could not open the stuck listener");
        return;
    }
    /* alone, with, alone, with, alone, with: each side is the median of its three runs, so
     * that drift and bursts of other work on a shared machine hit both alike */
    uint64_t stuck = 0;
    double alone_runs[3] = {0}, with_runs[3] = {0}, cpu_alone = 0, cpu_with = 0;
    bool ok = true;
    for (int i = 0; ok && i < 6; i++) {
        double cpu = 0;
        double v = iso_run(i % 2 ? port : 0, i % 2 ? &stuck : NULL, &cpu, why, sizeof why);
        ok = v > 0;
        if (i % 2)
            with_runs[i / 2] = v, cpu_with += cpu / 3;
        else
            alone_runs[i / 2] = v, cpu_alone += cpu / 3;
    }
    close(fd);
    if (!ok) {
        error_row("isolation", why);
        return;
    }
    say("isolation: 10 healthy alone %.0f, %.0f, %.0f/s (%.1f us CPU each); with a stuck endpoint "
        "%.0f, %.0f, %.0f/s (%.1f us CPU each; %" PRIu64 " requests stuck in flight at the end)",
        alone_runs[0], alone_runs[1], alone_runs[2], cpu_alone, with_runs[0], with_runs[1],
        with_runs[2], cpu_with, stuck);
    qsort(alone_runs, 3, sizeof alone_runs[0], cmp_double);
    qsort(with_runs, 3, sizeof with_runs[0], cmp_double);
    double alone = alone_runs[1], with = with_runs[1], x = with / alone;
    cJSON *o = cJSON_AddObjectToObject(B.json, "isolation");
    cJSON_AddNumberToObject(o, "healthy_endpoints", ISO_HEALTHY);
    cJSON_AddNumberToObject(o, "deliveries", ISO_EVENTS * ISO_HEALTHY);
    cJSON_AddNumberToObject(o, "with_stuck_per_s", round(with));
    cJSON_AddNumberToObject(o, "stuck_in_flight", (double)stuck);
    cJSON_AddNumberToObject(o, "cpu_us_per_delivery_alone", round(cpu_alone * 10) / 10);
    cJSON_AddNumberToObject(o, "cpu_us_per_delivery_with_stuck", round(cpu_with * 10) / 10);
    cJSON_AddNumberToObject(o, "alone_per_s", round(alone));
    cJSON *runs = cJSON_AddArrayToObject(o, "alone_runs_per_s");
    for (int i = 0; i < 3; i++)
        cJSON_AddItemToArray(runs, cJSON_CreateNumber(round(alone_runs[i])));
    runs = cJSON_AddArrayToObject(o, "with_stuck_runs_per_s");
    for (int i = 0; i < 3; i++)
        cJSON_AddItemToArray(runs, cJSON_CreateNumber(round(with_runs[i])));
    cJSON_AddNumberToObject(o, "ratio", round(x * 1000) / 1000);
    cJSON_AddNumberToObject(o, "target", 0.95);
    cJSON_AddBoolToObject(o, "met", x >= 0.95);
    snprintf(a, sizeof a, "%s healthy deliveries/s, 1 stuck", grouped(with, n1, sizeof n1));
    snprintf(b, sizeof b, "10 healthy alone %s/s (medians of 3)", grouped(alone, n2, sizeof n2));
    snprintf(ratio, sizeof ratio, "%.2fx", x);
    add_row("isolation", a, b, ratio, ">= 0.95x", verdict(x >= 0.95));
}

/* ---- scale-out: engine processes on one PostgreSQL database ------------------------------------- */

/* What the engine processes of one run share with the bench (an anonymous shared mapping). */
typedef struct {
    long delivered[SCALE_MAX_ENGINES]; /* each engine's wh_stats().delivered, after every poll */
    int64_t start_ns[SCALE_MAX_ENGINES]; /* CLOCK_MONOTONIC is one clock for every process */
    int64_t done_ns; /* when the deliveries of all engines first added up to the total */
    double cpu_secs[SCALE_MAX_ENGINES];
    uint64_t attempts[SCALE_MAX_ENGINES], failed[SCALE_MAX_ENGINES];
    int ok[SCALE_MAX_ENGINES];
    char why[SCALE_MAX_ENGINES][200];
} scale_shared;

typedef struct {
    double evps, cpu_us, pg_cpu_us; /* all engines together; the server's CPU per event */
    long answered;                  /* requests the receiver answered */
    int64_t delivered_rows;         /* deliveries the database holds as delivered */
} scale_result;

/* One engine process: opens the database, says it is ready, waits for the go (EOF on go_fd),
 * emits its share of SCALE_EVENTS big events and drives delivery on this thread (as drive()
 * does, WINDOW ahead) until the deliveries of all engines add up to the total. Never returns. */
static void scale_engine(const char *schema, int me, int n, scale_shared *sh, int ready_fd,
                         int go_fd)
{
    signal(SIGINT, SIG_DFL); /* the bench cleans up, not its engines */
    signal(SIGTERM, SIG_DFL);
    char *why = sh->why[me], conns[16];
    const size_t why_len = sizeof sh->why[me];
    snprintf(conns, sizeof conns, "%d", SCALE_CONNECTIONS);
    /* endpoint.max_in_flight as high as the connections: the one endpoint may use them all */
    wh_ctx *h = make_ctx("store", B.pg.uri, "store.schema", schema, "http.max_connections", conns,
                         "endpoint.max_in_flight", conns, NULL);
    if (!h) {
        snprintf(why, why_len, "engine %d: could not make the context", me);
        _exit(1);
    }
    char c = 'r';
    if (write(ready_fd, &c, 1) != 1 || read(go_fd, &c, 1) != 0) {
        snprintf(why, why_len, "engine %d: the start signal failed", me);
        _exit(1);
    }
    const long total = SCALE_EVENTS, share = total / n + (me < total % n);
    const long base = me * (total / n) + (me < total % n ? me : total % n);
    long emitted = 0, finished = 0;
    double cpu0 = cpu_secs(RUSAGE_SELF);
    int64_t t0 = mono_ns(), deadline = t0 + (int64_t)DRIVE_TIMEOUT_S * 1000000000;
    sh->start_ns[me] = t0;
    wh_stats_info st = {0};
    for (;;) {
        while (emitted < share && emitted - finished < WINDOW) {
            int rc = emit_big(h, base + emitted);
            if (rc < 0) {
                snprintf(why, why_len, "engine %d: wh_emit: %s (%s)", me, wh_strerror(rc),
                         wh_last_error());
                _exit(1);
            }
            emitted++;
        }
        int rc = wh_poll(h, 50);
        if (rc < 0) {
            snprintf(why, why_len, "engine %d: wh_poll: %s (%s)", me, wh_strerror(rc),
                     wh_last_error());
            _exit(1);
        }
        finished += rc;
        wh_stats(h, &st);
        __atomic_store_n(&sh->delivered[me], (long)st.delivered, __ATOMIC_SEQ_CST);
        long sum = 0;
        for (int i = 0; i < n; i++)
            sum += __atomic_load_n(&sh->delivered[i], __ATOMIC_SEQ_CST);
        if (sum >= total) {
            int64_t zero = 0, now = mono_ns();
            __atomic_compare_exchange_n(&sh->done_ns, &zero, now, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST);
            /* work taken over from another engine would be finished here too */
            if (emitted == share && st.pending == 0 && st.in_flight == 0)
                break;
        }
        if (mono_ns() > deadline) {
            snprintf(why, why_len, "engine %d: gave up after %d s: %ld of %ld delivered in all",
                     me, DRIVE_TIMEOUT_S, sum, total);
            _exit(1);
        }
    }
    sh->cpu_secs[me] = cpu_secs(RUSAGE_SELF) - cpu0;
    sh->attempts[me] = st.attempts;
    sh->failed[me] = st.failed;
    wh_destroy(h); /* the last outcomes committed */
    sh->ok[me] = 1;
    _exit(0);
}

/* n engines, each emitting its share of SCALE_EVENTS into a fresh schema and delivering to the
 * slow receiver at url; run numbers the schema. */
static bool scale_run(int n, int run, const char *url, scale_result *out, char *why,
                      size_t why_len)
{
    char schema[32];
    snprintf(schema, sizeof schema, "scale_%d", run);
    wh_ctx *h = make_ctx("store", B.pg.uri, "store.schema", schema, NULL);
    bool set = h && add_endpoint(h, url, NULL) == WH_OK;
    wh_destroy(h);
    if (!set) {
        snprintf(why, why_len, "could not set up the schema");
        return false;
    }
    scale_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                            -1, 0);
    int ready[2], go[2];
    if (sh == MAP_FAILED || pipe(ready) != 0 || pipe(go) != 0) {
        snprintf(why, why_len, "mmap or pipe: %s", strerror(errno));
        return false;
    }
    memset(sh, 0, sizeof *sh);
    long answered0 = __atomic_load_n(&g_slow_answered, __ATOMIC_RELAXED);
    fflush(NULL); /* nothing buffered here is written twice by a child */
    pid_t pids[SCALE_MAX_ENGINES];
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            close(ready[0]);
            close(go[1]);
            scale_engine(schema, i, n, sh, ready[1], go[0]);
        }
    }
    close(ready[1]);
    close(go[0]);
    /* every engine connected and registered before any starts (bounded: one that fails to
     * open never says so) */
    int got = 0;
    int64_t until = mono_ns() + 30 * (int64_t)1000000000;
    while (got < n && mono_ns() < until) {
        struct pollfd pfd = {.fd = ready[0], .events = POLLIN};
        char c;
        if (poll(&pfd, 1, 100) == 1 && read(ready[0], &c, 1) == 1)
            got++;
        else if (pfd.revents & POLLHUP)
            break;
    }
    close(ready[0]);
    bool ok = got == n;
    if (!ok) {
        snprintf(why, why_len, "an engine did not start");
        for (int i = 0; i < n; i++)
            if (pids[i] > 0)
                kill(pids[i], SIGKILL);
    }
    double pg0 = pg_cpu_secs();
    close(go[1]); /* go */
    for (int i = 0; i < n; i++) {
        int status;
        if (pids[i] < 0 || waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0 || !sh->ok[i]) {
            if (ok)
                snprintf(why, why_len, "%s", sh->why[i][0] ? sh->why[i] : "an engine failed");
            ok = false;
        }
    }
    double pg = pg_cpu_secs() - pg0, cpu = 0;
    uint64_t attempts = 0, delivered = 0, failed = 0;
    int64_t start = sh->start_ns[0];
    for (int i = 0; i < n; i++) {
        cpu += sh->cpu_secs[i];
        attempts += sh->attempts[i];
        delivered += (uint64_t)sh->delivered[i];
        failed += sh->failed[i];
        if (sh->start_ns[i] < start)
            start = sh->start_ns[i];
    }
    double secs = (double)(sh->done_ns - start) / 1e9;
    munmap(sh, sizeof *sh);
    if (!ok)
        return false;
    if (failed || attempts != delivered || secs <= 0) {
        snprintf(why, why_len, "%" PRIu64 " attempts for %" PRIu64 " deliveries (%" PRIu64
                               " failed): the receiver refused some",
                 attempts, delivered, failed);
        return false;
    }
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.deliveries WHERE state = 1", schema);
    out->delivered_rows = pg_sql_int(&B.pg, sql);
    out->answered = __atomic_load_n(&g_slow_answered, __ATOMIC_RELAXED) - answered0;
    out->evps = (double)SCALE_EVENTS / secs;
    out->cpu_us = cpu / (double)SCALE_EVENTS * 1e6;
    out->pg_cpu_us = pg0 >= 0 ? pg / (double)SCALE_EVENTS * 1e6 : -1;
    say("scale-out, %d engine%s: %ld events in %.2f s = %.0f events/s; CPU per event: engines "
        "%.1f us, PostgreSQL %.1f us; the receiver answered %ld requests, the database holds %" PRId64
        " delivered",
        n, n > 1 ? "s" : "", SCALE_EVENTS, secs, out->evps, out->cpu_us, out->pg_cpu_us,
        out->answered, out->delivered_rows);
    if (out->answered != SCALE_EVENTS || out->delivered_rows != SCALE_EVENTS) {
        snprintf(why, why_len, "%ld requests answered and %" PRId64 " deliveries recorded for %ld events",
                 out->answered, out->delivered_rows, SCALE_EVENTS);
        return false;
    }
    return true;
}

/* 1, 2 and 4 engine processes on one database, the receiver answering after 20 ms, each
 * engine with SCALE_CONNECTIONS connections: runs interleaved, medians of SCALE_ROUNDS. */
static void sc_scaleout(void)
{
    static const int delay = SCALE_DELAY_MS, engines[] = {1, 2, 4};
    enum { K = sizeof engines / sizeof engines[0] };
    char why[256] = "", url[64];
    if (!pg_ready()) {
        error_row("scale-out", "could not start PostgreSQL");
        return;
    }
    int port;
    struct MHD_Daemon *d = start_slow_receiver(&delay, &port);
    if (!d) {
        error_row("scale-out", "could not start the libmicrohttpd receiver");
        return;
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%d/scale", port);
    scale_result res[K][SCALE_ROUNDS];
    bool ok = true;
    for (int r = 0; ok && r < SCALE_ROUNDS; r++)
        for (int k = 0; ok && k < K; k++)
            ok = scale_run(engines[k], r * K + k, url, &res[k][r], why, sizeof why);
    MHD_stop_daemon(d);
    if (!ok) {
        error_row("scale-out", why);
        return;
    }
    double med[K], cpu[K], pgcpu[K];
    cJSON *o = cJSON_AddObjectToObject(B.json, "pg_scaleout");
    cJSON_AddNumberToObject(o, "events_per_run", SCALE_EVENTS);
    cJSON_AddNumberToObject(o, "receiver_delay_ms", SCALE_DELAY_MS);
    cJSON_AddNumberToObject(o, "max_connections_per_engine", SCALE_CONNECTIONS);
    cJSON_AddNumberToObject(o, "runs_each", SCALE_ROUNDS);
    cJSON *arr = cJSON_AddArrayToObject(o, "engines");
    for (int k = 0; k < K; k++) {
        double v[SCALE_ROUNDS];
        cpu[k] = pgcpu[k] = 0;
        cJSON *e = cJSON_CreateObject(), *runs = cJSON_CreateArray();
        for (int r = 0; r < SCALE_ROUNDS; r++) {
            v[r] = res[k][r].evps;
            cpu[k] += res[k][r].cpu_us / SCALE_ROUNDS;
            pgcpu[k] += res[k][r].pg_cpu_us / SCALE_ROUNDS;
            cJSON_AddItemToArray(runs, cJSON_CreateNumber(round(v[r])));
        }
        qsort(v, SCALE_ROUNDS, sizeof v[0], cmp_double);
        med[k] = v[SCALE_ROUNDS / 2];
        cJSON_AddNumberToObject(e, "engines", engines[k]);
        cJSON_AddNumberToObject(e, "events_per_s", round(med[k]));
        cJSON_AddItemToObject(e, "runs_events_per_s", runs);
        cJSON_AddNumberToObject(e, "cpu_us_per_event", round(cpu[k] * 10) / 10);
        cJSON_AddNumberToObject(e, "pg_server_cpu_us_per_event", round(pgcpu[k] * 10) / 10);
        cJSON_AddNumberToObject(e, "ideal_events_per_s",
                                engines[k] * SCALE_CONNECTIONS * 1000.0 / SCALE_DELAY_MS);
        if (k > 0)
            cJSON_AddNumberToObject(e, "ratio_to_one", round(med[k] / med[0] * 1000) / 1000);
        cJSON_AddItemToArray(arr, e);
    }
    double x2 = med[1] / med[0], x4 = med[2] / med[0];
    cJSON_AddNumberToObject(o, "ratio_2_to_1", round(x2 * 1000) / 1000);
    cJSON_AddNumberToObject(o, "ratio_4_to_1", round(x4 * 1000) / 1000);
    cJSON_AddNumberToObject(o, "target_2_to_1", 1.8);
    cJSON_AddBoolToObject(o, "met", x2 >= 1.8);
    for (int k = 0; k < K; k++) {
        char name[48], a[96], b[96], ratio[24], n1[32], n2[32];
        snprintf(name, sizeof name, "scale-out pg, %d engine%s", engines[k], k ? "s" : "");
        snprintf(a, sizeof a, "%s events/s, %.0f us CPU + %.0f us server CPU each",
                 grouped(med[k], n1, sizeof n1), cpu[k], pgcpu[k]);
        if (k == 0) {
            snprintf(b, sizeof b, "ideal %s/s (%d conns / %d ms; medians of %d)",
                     grouped(SCALE_CONNECTIONS * 1000.0 / SCALE_DELAY_MS, n2, sizeof n2),
                     SCALE_CONNECTIONS, SCALE_DELAY_MS, SCALE_ROUNDS);
            snprintf(ratio, sizeof ratio, "%.2fx", med[0] / (SCALE_CONNECTIONS * 1000.0 / SCALE_DELAY_MS));
            add_row(name, a, b, ratio, "-", "-");
        } else {
            snprintf(b, sizeof b, "1 engine %s events/s (same run)", grouped(med[0], n2, sizeof n2));
            snprintf(ratio, sizeof ratio, "%.2fx", med[k] / med[0]);
            bool two = engines[k] == 2;
            add_row(name, a, b, ratio, two ? ">= 1.8x" : "-", two ? verdict(x2 >= 1.8) : "-");
        }
    }
}

/* ---- child processes: emit latency, memory -------------------------------------------------------------- */

typedef struct {
    wh_ctx *h;
    long n;
    int64_t *ns;
    pthread_barrier_t *go;
    int errors;
    size_t warm_mb; /* memory to fault in and give back to this thread's heap first */
    int64_t *noise; /* n / 4 timings of a fixed piece of work of about 4 us: the noise floor */
    long spin;      /* its loop count */
} lat_thread;

/* A fixed piece of CPU work that takes no lock and allocates nothing. */
static void spin(long k)
{
    volatile uint64_t x = 0;
    for (long i = 0; i < k; i++)
        x = x + (uint64_t)i * 2654435761u;
}

/* Grows this thread's malloc heap by mb MB of touched pages and frees them again (kept, since
 * the trim threshold is raised), so that the emits after it take no page faults: the state of
 * a heap that deliveries have already used and given back. */
static void warm_heap(size_t mb)
{
    void *chunks[1024];
    size_t n = mb < 1024 ? mb : 1024;
    for (size_t i = 0; i < n; i++)
        if ((chunks[i] = malloc(1 << 20)))
            memset(chunks[i], 1, 1 << 20);
    for (size_t i = 0; i < n; i++)
        free(chunks[i]);
}

static void *lat_main(void *arg)
{
    lat_thread *t = arg;
    if (t->warm_mb)
        warm_heap(t->warm_mb);
    pthread_barrier_wait(t->go);
    for (long i = 0; i < t->n / 4; i++) { /* the machine's own tail, same threads, same run */
        int64_t t0 = mono_ns();
        spin(t->spin);
        t->noise[i] = mono_ns() - t0;
    }
    big_event b;
    for (long i = 0; i < t->n; i++) {
        big_fill(&b, i); /* outside the clock: only wh_emit is timed */
        wh_event ev = {.event_type = "task_run.completed", .run_id = b.run_id,
                       .task_id = b.task_id, .status = b.status};
        int64_t t0 = mono_ns();
        int rc = wh_emit(t->h, &ev, NULL);
        t->ns[i] = mono_ns() - t0;
        t->errors += rc != 1;
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Child: prints "p50 p99 p999 mean minflt noise_p50 noise_p99" (µs; page faults per emit;
 * the noise floor: a fixed 4 µs of CPU work timed the same way on the same threads just
 * before) for `threads` threads emitting `total` big events; warm: into heaps grown
 * beforehand (see warm_heap). */
static int child_latency(const char *store, int threads, long total, bool warm)
{
    if (warm) { /* 1 MB chunks come from the heap, and freed memory stays there */
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, INT_MAX);
        mallopt(M_TOP_PAD, 64 << 20); /* a thread's heaps are never unmapped either */
    }
    int port = free_port(); /* closed: nobody answers, and nobody drives delivery anyway */
    wh_ctx *h = make_ctx("store", store, "store.sync", "normal", NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    if (!h || add_endpoint(h, url, NULL) != WH_OK)
        return 1;
    for (long i = 0; i < 1000; i++) /* warm-up, not measured */
        emit_big(h, i);
    long per = total / threads;
    int64_t *ns = calloc((size_t)(per * threads), sizeof *ns);
    int64_t *noise = calloc((size_t)(per / 4 * threads), sizeof *noise);
    int64_t c0 = mono_ns();
    spin(100000);
    long spin_4us = (long)(100000.0 * 4000.0 / (double)(mono_ns() - c0 > 0 ? mono_ns() - c0 : 1));
    lat_thread t[16];
    pthread_t tid[16];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)threads);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    for (int i = 0; i < threads; i++) {
        /* what per emits keep (body, event, delivery: about 1.5 kB each), and a margin */
        size_t warm_mb = warm ? (size_t)per * 2048 / (1 << 20) + 16 : 0;
        t[i] = (lat_thread){.h = h, .n = per, .ns = ns + i * per, .go = &go, .warm_mb = warm_mb,
                            .noise = noise + i * (per / 4), .spin = spin_4us};
        pthread_create(&tid[i], NULL, lat_main, &t[i]);
    }
    int errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        errors += t[i].errors;
    }
    getrusage(RUSAGE_SELF, &ru1);
    if (errors) {
        fprintf(stderr, "latency: %d emits failed\n", errors);
        return 1;
    }
    size_t n = (size_t)(per * threads);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)ns[i];
    qsort(ns, n, sizeof *ns, cmp_i64);
    /* the faults of warm_heap are counted too: subtract what it touched */
    double warm_faults = 0;
    for (int i = 0; i < threads; i++)
        warm_faults += (double)t[i].warm_mb * (1 << 20) / 4096;
    double faults = ((double)(ru1.ru_minflt - ru0.ru_minflt) - warm_faults) / (double)n;
    size_t nn = (size_t)(per / 4 * threads);
    qsort(noise, nn, sizeof *noise, cmp_i64);
    printf("%.2f %.2f %.2f %.2f %.3f %.2f %.2f\n", (double)ns[n / 2] / 1e3,
           (double)ns[(size_t)(n * 0.99)] / 1e3, (double)ns[(size_t)(n * 0.999)] / 1e3,
           sum / (double)n / 1e3, faults < 0 ? 0 : faults, (double)noise[nn / 2] / 1e3,
           (double)noise[(size_t)(nn * 0.99)] / 1e3);
    fflush(stdout);
    _exit(0); /* the pending deliveries die with the process */
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* Child: prints "rss_before_kb rss_after_kb pending body_bytes" for `deliveries` pending
 * deliveries made of small events, `per_event` endpoints each, receiver down, never polled. */
static int child_memory(long deliveries, int per_event)
{
    int port = free_port();
    wh_ctx *h = make_ctx(NULL);
    if (!h)
        return 1;
    for (int i = 0; i < per_event; i++) {
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/down/%d", port, i);
        if (add_endpoint(h, url, NULL) != WH_OK)
            return 1;
    }
    long before = rss_kb();
    long events = deliveries / per_event;
    for (long i = 0; i < events; i++) {
        int rc = emit_small(h, i, "task_run.completed");
        if (rc != per_event) {
            fprintf(stderr, "memory: wh_emit %ld: %s (%s)\n", i, wh_strerror(rc), wh_last_error());
            return 1;
        }
    }
    long after = rss_kb();
    wh_stats_info st;
    wh_stats(h, &st);
    /* the small body, as built by the library: {"id":..,"event_type":..,...} */
    char id[WH_ID_MAX];
    new_event_id(id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "event_type", "task_run.completed");
    cJSON_AddStringToObject(o, "run_id", "run_99999");
    cJSON_AddStringToObject(o, "task_id", "task_9");
    cJSON_AddStringToObject(o, "status", "completed");
    cJSON_AddStringToObject(o, "timestamp", "2026-01-01T00:00:00.000Z");
    char *body = cJSON_PrintUnformatted(o);
    printf("%ld %ld %" PRIu64 " %zu\n", before, after, st.pending, strlen(body));
    fflush(stdout);
    _exit(0);
}

/* Runs this program with --child ARGS and reads its one line of output. */
static int run_child(char *out, size_t out_len, const char *const *args)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        const char *argv[16] = {B.self, "--dir", B.dir, "--child"};
        size_t n = 4;
        for (; *args && n < 15; args++)
            argv[n++] = *args;
        argv[n] = NULL;
        execv(B.self, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return -1;
    }
    size_t got = 0;
    ssize_t r;
    while (got + 1 < out_len && (r = read(fds[0], out + got, out_len - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 && got ? 0 : -1;
}

static void sc_latency(void)
{
    static const struct {
        const char *store;
        int threads;
        long total;
        bool warm;
    } cfg[] = {{"memory", 1, LAT_MEMORY_EMITS, false}, {"memory", 4, LAT_MEMORY_EMITS, false},
               {"memory", 1, LAT_MEMORY_EMITS, true},  {"memory", 4, LAT_MEMORY_EMITS, true},
               {"sqlite", 1, LAT_SQLITE_EMITS, false}, {"sqlite", 4, LAT_SQLITE_EMITS, false}};
    cJSON *o = cJSON_AddObjectToObject(B.json, "emit_latency");
    cJSON *arr = cJSON_AddArrayToObject(o, "runs");
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        char store[600], threads[8], total[16], out[256], name[48];
        if (strcmp(cfg[i].store, "sqlite") == 0)
            snprintf(store, sizeof store, "sqlite:%s/latency%zu.db", B.tmp, i);
        else
            snprintf(store, sizeof store, "memory");
        snprintf(threads, sizeof threads, "%d", cfg[i].threads);
        snprintf(total, sizeof total, "%ld", cfg[i].total);
        snprintf(name, sizeof name, "emit %s, %d thr%s%s", cfg[i].store, cfg[i].threads,
                 cfg[i].threads > 1 ? "s" : "", cfg[i].warm ? ", warm heap" : "");
        const char *args[] = {"latency", store, threads, total, cfg[i].warm ? "warm" : "cold", NULL};
        double p50, p99, p999, mean, faults, n50, n99;
        if (run_child(out, sizeof out, args) != 0 ||
            sscanf(out, "%lf %lf %lf %lf %lf %lf %lf", &p50, &p99, &p999, &mean, &faults, &n50,
                   &n99) != 7) {
            error_row(name, "the child process failed");
            continue;
        }
        say("%s: p50 %.2f p99 %.2f p999 %.2f mean %.2f us; %.2f page faults per emit; noise "
            "floor (4 us of work) p50 %.2f p99 %.2f us",
            name, p50, p99, p999, mean, faults, n50, n99);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "store", cfg[i].store);
        cJSON_AddNumberToObject(r, "threads", cfg[i].threads);
        cJSON_AddBoolToObject(r, "warm_heap", cfg[i].warm);
        cJSON_AddNumberToObject(r, "emits", cfg[i].total);
        cJSON_AddNumberToObject(r, "p50_us", p50);
        cJSON_AddNumberToObject(r, "p99_us", p99);
        cJSON_AddNumberToObject(r, "p999_us", p999);
        cJSON_AddNumberToObject(r, "mean_us", mean);
        cJSON_AddNumberToObject(r, "page_faults_per_emit", faults);
        cJSON_AddNumberToObject(r, "noise_floor_4us_work_p50_us", n50);
        cJSON_AddNumberToObject(r, "noise_floor_4us_work_p99_us", n99);
        bool memory = strcmp(cfg[i].store, "memory") == 0;
        if (memory) {
            cJSON_AddNumberToObject(r, "target_p99_us", 10);
            cJSON_AddBoolToObject(r, "met", p99 <= 10);
        }
        cJSON_AddItemToArray(arr, r);
        char a[96], b[96];
        snprintf(a, sizeof a, "p50 %.1f / p99 %.1f / p999 %.1f us", p50, p99, p999);
        snprintf(b, sizeof b, "4 us of work: p99 %.1f us; %.2f faults/emit", n99, faults);
        add_row(name, a, b, "-", memory ? "p99 <= 10 us" : "-", memory ? verdict(p99 <= 10) : "-");
    }
}

typedef struct {
    wh_ctx *h;
    long from, n;
    pthread_barrier_t *go;
    int errors;
} emit_thread;

static void *emit_main(void *arg)
{
    emit_thread *t = arg;
    pthread_barrier_wait(t->go);
    for (long i = t->from; i < t->from + t->n; i++)
        t->errors += emit_small(t->h, i, "task_run.completed") != 1;
    return NULL;
}

/* Issue 4's figure (and issue 10's): durable emits a second from `threads` threads, typical
 * events (short ids), store.sync=normal, nobody driving delivery; schema: the PostgreSQL
 * store's. Prints "events seconds cpu_seconds". */
static int child_durable_emit(const char *store, const char *schema, long n, int threads)
{
    int port = free_port();
    wh_ctx *h = make_ctx("store", store, "store.sync", "normal", "store.schema", schema, NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    if (!h || add_endpoint(h, url, NULL) != WH_OK || threads < 1 || threads > 16)
        return 1;
    for (long i = 0; i < 1000; i++) /* warm-up, not measured */
        if (emit_small(h, i, "task_run.completed") != 1)
            return 1;
    emit_thread t[16];
    pthread_t tid[16];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
    long per = n / threads;
    for (int i = 0; i < threads; i++) {
        t[i] = (emit_thread){.h = h, .from = 1000 + i * per, .n = per, .go = &go};
        pthread_create(&tid[i], NULL, emit_main, &t[i]);
    }
    double cpu0 = cpu_secs(RUSAGE_SELF);
    int64_t t0 = mono_ns();
    pthread_barrier_wait(&go);
    int errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        errors += t[i].errors;
    }
    double secs = since_s(t0), cpu = cpu_secs(RUSAGE_SELF) - cpu0;
    if (errors) {
        fprintf(stderr, "durable emit: %d emits failed: %s\n", errors, wh_last_error());
        return 1;
    }
    printf("%ld %.6f %.6f\n", per * threads, secs, cpu);
    fflush(stdout);
    _exit(0);
}

typedef struct {
    double rate[EMIT_ROUNDS], cpu_us[EMIT_ROUNDS], pg_cpu_us[EMIT_ROUNDS];
    double median, lo, hi, cpu, pg_cpu; /* over the rounds; CPU: means */
    long events;
} emit_runs;

static void emit_summary(emit_runs *r)
{
    double v[EMIT_ROUNDS];
    r->cpu = r->pg_cpu = 0;
    for (int i = 0; i < EMIT_ROUNDS; i++) {
        v[i] = r->rate[i];
        r->cpu += r->cpu_us[i] / EMIT_ROUNDS;
        r->pg_cpu += r->pg_cpu_us[i] / EMIT_ROUNDS;
    }
    qsort(v, EMIT_ROUNDS, sizeof v[0], cmp_double);
    r->median = v[EMIT_ROUNDS / 2], r->lo = v[0], r->hi = v[EMIT_ROUNDS - 1];
}

static cJSON *emit_json(const emit_runs *r, int threads)
{
    cJSON *o = cJSON_CreateObject(), *runs = cJSON_CreateArray();
    cJSON_AddNumberToObject(o, "threads", threads);
    cJSON_AddNumberToObject(o, "events", (double)r->events);
    cJSON_AddNumberToObject(o, "events_per_s", round(r->median));
    for (int i = 0; i < EMIT_ROUNDS; i++)
        cJSON_AddItemToArray(runs, cJSON_CreateNumber(round(r->rate[i])));
    cJSON_AddItemToObject(o, "runs_events_per_s", runs);
    cJSON_AddNumberToObject(o, "cpu_us_per_event", round(r->cpu * 10) / 10);
    if (r->pg_cpu > 0)
        cJSON_AddNumberToObject(o, "pg_server_cpu_us_per_event", round(r->pg_cpu * 10) / 10);
    return o;
}

/* Durable emits on SQLite and on PostgreSQL, 1 and 4 threads, each configuration
 * EMIT_ROUNDS times in turn (a fresh store each), medians. */
static void sc_durable_emit(void)
{
    static const struct {
        bool pg;
        int threads;
    } cfg[] = {{false, 1}, {true, 1}, {false, 4}, {true, 4}};
    enum { K = sizeof cfg / sizeof cfg[0] };
    emit_runs runs[K];
    memset(runs, 0, sizeof runs);
    bool pg = pg_ready(), failed[K] = {false};
    for (int r = 0; r < EMIT_ROUNDS; r++) {
        for (int k = 0; k < K; k++) {
            if (failed[k] || (cfg[k].pg && !pg)) {
                failed[k] = true;
                continue;
            }
            char store[600], schema[32], total[16], threads[8], out[256];
            snprintf(schema, sizeof schema, "emit_%d_%d", cfg[k].threads, r);
            if (cfg[k].pg)
                snprintf(store, sizeof store, "%s", B.pg.uri);
            else
                snprintf(store, sizeof store, "sqlite:%s/durable-emit-%d-%d.db", B.tmp,
                         cfg[k].threads, r);
            snprintf(total, sizeof total, "%ld", cfg[k].pg ? PG_EMITS : (long)DURABLE_EMITS);
            snprintf(threads, sizeof threads, "%d", cfg[k].threads);
            const char *args[] = {"durable-emit", store, schema, total, threads, NULL};
            long n;
            double secs, cpu, pg0 = cfg[k].pg ? pg_cpu_secs() : -1;
            if (run_child(out, sizeof out, args) != 0 ||
                sscanf(out, "%ld %lf %lf", &n, &secs, &cpu) != 3 || secs <= 0 || n <= 0) {
                failed[k] = true;
                continue;
            }
            double pgc = pg0 >= 0 ? pg_cpu_secs() - pg0 : -1;
            runs[k].events = n;
            runs[k].rate[r] = (double)n / secs;
            runs[k].cpu_us[r] = cpu / (double)n * 1e6;
            /* the server's CPU of the whole child: its 1,000 warm-up emits and set-up too */
            runs[k].pg_cpu_us[r] = pgc >= 0 ? pgc / (double)(n + 1000) * 1e6 : 0;
            say("durable emit, %s, %d thread%s: %ld typical events in %.2f s = %.0f events/s; "
                "CPU per emit: %.1f us here, %.1f us in the PostgreSQL server",
                cfg[k].pg ? "postgresql" : "sqlite", cfg[k].threads, cfg[k].threads > 1 ? "s" : "",
                n, secs, runs[k].rate[r], runs[k].cpu_us[r], runs[k].pg_cpu_us[r]);
        }
    }
    cJSON *o = NULL, *pgo = NULL;
    for (int k = 0; k < K; k++) {
        int th = cfg[k].threads;
        char name[48], a[96], b[96], ratio[24], n1[32], n2[32], n3[32];
        snprintf(name, sizeof name, "durable emit%s, %d thr%s", cfg[k].pg ? " pg" : "", th,
                 th > 1 ? "s" : "");
        if (failed[k]) {
            error_row(name, cfg[k].pg && !pg ? "could not start PostgreSQL"
                                             : "the child process failed");
            continue;
        }
        emit_runs *r = &runs[k];
        emit_summary(r);
        snprintf(a, sizeof a, "%s events/s (%s-%s), %.0f us CPU", grouped(r->median, n1, sizeof n1),
                 grouped(r->lo, n2, sizeof n2), grouped(r->hi, n3, sizeof n3), r->cpu);
        if (!cfg[k].pg) {
            /* sqlite: issue 4's row (1 thread) and the baseline of the PostgreSQL rows */
            if (!o) {
                o = cJSON_AddObjectToObject(B.json, "durable_emit");
                cJSON_AddArrayToObject(o, "runs");
            }
            cJSON_AddItemToArray(cJSON_GetObjectItem(o, "runs"), emit_json(r, th));
            if (th == 1) {
                cJSON_AddNumberToObject(o, "events", (double)r->events);
                cJSON_AddNumberToObject(o, "events_per_s", round(r->median));
                cJSON_AddNumberToObject(o, "target_events_per_s", 20000);
                cJSON_AddBoolToObject(o, "met", r->median >= 20000);
            }
            snprintf(b, sizeof b, "sqlite, sync=normal, typical event, medians of %d", EMIT_ROUNDS);
            add_row(name, a, b, "-", th == 1 ? ">= 20,000/s" : "-",
                    th == 1 ? verdict(r->median >= 20000) : "-");
            continue;
        }
        snprintf(a + strlen(a), sizeof a - strlen(a), " + %.0f us server", r->pg_cpu);
        if (!pgo) {
            pgo = cJSON_AddObjectToObject(B.json, "durable_emit_pg");
            cJSON_AddArrayToObject(pgo, "runs");
        }
        cJSON *j = emit_json(r, th);
        const emit_runs *base = &runs[k - 1]; /* sqlite, same threads, same rounds */
        bool have_base = !failed[k - 1];
        if (have_base) {
            cJSON_AddNumberToObject(j, "sqlite_events_per_s", round(base->median));
            cJSON_AddNumberToObject(j, "ratio_to_sqlite", round(r->median / base->median * 1000) / 1000);
            snprintf(b, sizeof b, "sqlite %d thr%s %s events/s", th, th > 1 ? "s" : "",
                     grouped(base->median, n1, sizeof n1));
            snprintf(ratio, sizeof ratio, "%.2fx", r->median / base->median);
        } else {
            snprintf(b, sizeof b, "(sqlite failed)");
            snprintf(ratio, sizeof ratio, "-");
        }
        if (th == 4) {
            cJSON_AddNumberToObject(j, "target_events_per_s", 10000);
            cJSON_AddBoolToObject(j, "met", r->median >= 10000);
        }
        cJSON_AddItemToArray(cJSON_GetObjectItem(pgo, "runs"), j);
        add_row(name, a, b, ratio, th == 4 ? ">= 10,000/s" : "-",
                th == 4 ? verdict(r->median >= 10000) : "-");
    }
}

static void sc_memory(void)
{
    static const struct {
        long deliveries;
        int per_event;
    } cfg[] = {{MEM_DELIVERIES, 1}, {MEM_DELIVERIES, 10}};
    cJSON *o = cJSON_AddObjectToObject(B.json, "memory");
    cJSON *arr = cJSON_AddArrayToObject(o, "runs");
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        char n[16], k[8], out[256], name[48];
        snprintf(n, sizeof n, "%ld", cfg[i].deliveries);
        snprintf(k, sizeof k, "%d", cfg[i].per_event);
        snprintf(name, sizeof name, cfg[i].per_event == 1 ? "memory" : "memory, %d eps/event",
                 cfg[i].per_event);
        const char *args[] = {"memory", n, k, NULL};
        long before, after;
        unsigned long long pending;
        size_t body;
        int64_t t0 = mono_ns();
        if (run_child(out, sizeof out, args) != 0 ||
            sscanf(out, "%ld %ld %llu %zu", &before, &after, &pending, &body) != 4) {
            error_row(name, "the child process failed");
            continue;
        }
        double per = (double)(after - before) * 1024.0 / (double)cfg[i].deliveries;
        say("%s: RSS %ld -> %ld kB for %llu pending (%.1f s): %.0f bytes each", name, before, after,
            pending, since_s(t0), per);
        bool met = per <= 512 && pending == (unsigned long long)cfg[i].deliveries;
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "pending", (double)pending);
        cJSON_AddNumberToObject(r, "endpoints_per_event", cfg[i].per_event);
        cJSON_AddNumberToObject(r, "body_bytes", (double)body);
        cJSON_AddNumberToObject(r, "rss_before_kb", (double)before);
        cJSON_AddNumberToObject(r, "rss_after_kb", (double)after);
        cJSON_AddNumberToObject(r, "bytes_per_pending", round(per));
        cJSON_AddNumberToObject(r, "target", 512);
        cJSON_AddBoolToObject(r, "met", met);
        cJSON_AddItemToArray(arr, r);
        char a[96], b[96], ratio[24], n1[32];
        snprintf(a, sizeof a, "%.0f bytes/pending (%s pending, body %zu B)", per,
                 grouped((double)pending, n1, sizeof n1), body);
        snprintf(b, sizeof b, "RSS %.0f MB before, %.0f MB after", before / 1024.0, after / 1024.0);
        snprintf(ratio, sizeof ratio, "%.2fx", per / 512);
        add_row(name, a, b, ratio, "<= 512 B", verdict(met));
    }
}

/* ---- scale of registry -------------------------------------------------------------------------------- */

static double emit_block_ns(wh_ctx *h, long n, long *errors)
{
    int64_t t0 = mono_ns();
    for (long i = 0; i < n; i++)
        *errors += emit_small(h, i, "task_run.completed") != 0;
    return (double)(mono_ns() - t0) / (double)n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void sc_registry(void)
{
    static const char *const types[] = {"workflow_run.*", NULL}; /* nobody takes task_run.* */
    int port = free_port();
    char url[96];
    wh_ctx *one = make_ctx(NULL), *many = make_ctx(NULL);
    bool ok = one && many;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/reg", port);
    ok = ok && add_endpoint(one, url, types) == WH_OK;
    for (int i = 0; ok && i < REG_ENDPOINTS; i++) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d/reg/%d", port, i);
        ok = add_endpoint(many, url, types) == WH_OK;
    }
    if (!ok) {
        wh_destroy(one);
        wh_destroy(many);
        error_row("registry scale", "could not set up the endpoints");
        return;
    }
    long errors = 0;
    emit_block_ns(one, 2000, &errors); /* warm-up */
    emit_block_ns(many, 2000, &errors);
    double a1[REG_ROUNDS], an[REG_ROUNDS];
    for (int r = 0; r < REG_ROUNDS; r++) { /* interleaved, so that drift hits both */
        a1[r] = emit_block_ns(one, REG_BLOCK, &errors);
        an[r] = emit_block_ns(many, REG_BLOCK, &errors);
    }
    wh_destroy(one);
    wh_destroy(many);
    if (errors) {
        error_row("registry scale", "an emit failed or was delivered somewhere");
        return;
    }
    qsort(a1, REG_ROUNDS, sizeof a1[0], cmp_double);
    qsort(an, REG_ROUNDS, sizeof an[0], cmp_double);
    double m1 = a1[REG_ROUNDS / 2] / 1e3, mn = an[REG_ROUNDS / 2] / 1e3, x = mn / m1;
    say("registry: unsubscribed emit %.2f us with 1 endpoint, %.2f us with %d", m1, mn, REG_ENDPOINTS);
    cJSON *o = cJSON_AddObjectToObject(B.json, "registry_scale");
    cJSON_AddNumberToObject(o, "endpoints", REG_ENDPOINTS);
    cJSON_AddNumberToObject(o, "emit_us", round(mn * 1000) / 1000);
    cJSON_AddNumberToObject(o, "emit_us_one_endpoint", round(m1 * 1000) / 1000);
    cJSON_AddNumberToObject(o, "ratio", round(x * 1000) / 1000);
    cJSON_AddNumberToObject(o, "target", 1.2);
    cJSON_AddBoolToObject(o, "met", x <= 1.2);
    char a[96], b[96], ratio[24];
    snprintf(a, sizeof a, "%.2f us/emit, 10,000 endpoints", mn);
    snprintf(b, sizeof b, "%.2f us/emit, 1 endpoint", m1);
    snprintf(ratio, sizeof ratio, "%.2fx", x);
    add_row("registry scale", a, b, ratio, "<= 1.2x", verdict(x <= 1.2));
}

/* ---- the report ---------------------------------------------------------------------------------------- */

static void machine(char *model, size_t len, long *cpus)
{
    *cpus = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(model, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *v = strchr(line, ':');
            if (v) {
                v += 1 + (v[1] == ' ');
                v[strcspn(v, "\n")] = '\0';
                snprintf(model, len, "%s", v);
            }
            break;
        }
    }
    if (f)
        fclose(f);
}

/* The 1-minute load average: how busy the machine was with other work too. */
static double loadavg(void)
{
    char *t = read_file("/proc/loadavg");
    double v = t ? strtod(t, NULL) : -1;
    free(t);
    return v;
}

static double g_load_start;

static void print_table(const char *model, long cpus, double secs)
{
    size_t w[6] = {8, 6, 8, 5, 6, 7};
    for (size_t i = 0; i < n_rows; i++) {
        const char *c[6] = {rows[i].scenario, rows[i].result, rows[i].baseline,
                            rows[i].ratio, rows[i].target, rows[i].verdict};
        for (size_t k = 0; k < 6; k++)
            if (strlen(c[k]) > w[k])
                w[k] = strlen(c[k]);
    }
    printf("\nlibwebhook %s benchmarks: %ld CPUs, %s; %.0f s; loopback; load average %.2f at the "
           "start, %.2f at the end\n\n",
           wh_version(), cpus, model, secs, g_load_start, loadavg());
    const char *head[6] = {"scenario", "result", "baseline (same run)", "ratio", "target", "verdict"};
    for (size_t k = 0; k < 6; k++)
        if (strlen(head[k]) > w[k])
            w[k] = strlen(head[k]);
    printf("| %-*s | %-*s | %-*s | %*s | %-*s | %-*s |\n", (int)w[0], head[0], (int)w[1], head[1],
           (int)w[2], head[2], (int)w[3], head[3], (int)w[4], head[4], (int)w[5], head[5]);
    printf("|");
    for (size_t k = 0; k < 6; k++) {
        for (size_t j = 0; j < w[k] + 2; j++)
            putchar(k == 3 && j == w[k] + 1 ? ':' : '-');
        printf("|");
    }
    printf("\n");
    for (size_t i = 0; i < n_rows; i++)
        printf("| %-*s | %-*s | %-*s | %*s | %-*s | %-*s |\n", (int)w[0], rows[i].scenario,
               (int)w[1], rows[i].result, (int)w[2], rows[i].baseline, (int)w[3], rows[i].ratio,
               (int)w[4], rows[i].target, (int)w[5], rows[i].verdict);
    printf("\n%d target%s missed, %d error%s\n", B.missed, B.missed == 1 ? "" : "s", B.errors,
           B.errors == 1 ? "" : "s");
}

static int usage(void)
{
    fprintf(stderr, "usage: bench [--dir DIR] [--only NAME,...] [--no-baseline] [--no-json] "
                    "[--events N]\n"
                    "NAME: throughput naive durable engines pg_throughput http2 fanout slow isolation "
                    "scaleout latency durable_emit memory registry batched\n");
    return 2;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            B.dir = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            B.only = argv[++i];
        else if (strcmp(argv[i], "--no-baseline") == 0)
            B.no_baseline = true;
        else if (strcmp(argv[i], "--no-json") == 0)
            B.no_json = true;
        else if (strcmp(argv[i], "--events") == 0 && i + 1 < argc && atol(argv[i + 1]) > 0)
            B.throughput_events = atol(argv[++i]);
        else if (strcmp(argv[i], "--child") == 0 && i + 1 < argc) {
            const char *what = argv[++i];
            if (strcmp(what, "latency") == 0 && i + 4 < argc)
                return child_latency(argv[i + 1], atoi(argv[i + 2]), atol(argv[i + 3]),
                                     strcmp(argv[i + 4], "warm") == 0);
            if (strcmp(what, "durable-emit") == 0 && i + 4 < argc)
                return child_durable_emit(argv[i + 1], argv[i + 2], atol(argv[i + 3]),
                                          atoi(argv[i + 4]));
            if (strcmp(what, "memory") == 0 && i + 2 < argc)
                return child_memory(atol(argv[i + 1]), atoi(argv[i + 2]));
            return usage();
        } else
            return usage();
    }
    ssize_t sl = readlink("/proc/self/exe", B.self, sizeof B.self - 1);
    if (sl <= 0)
        return 1;
    B.self[sl] = '\0';
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    snprintf(B.tmp, sizeof B.tmp, "%s/webhook-bench.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(B.tmp)) {
        perror("bench: mkdtemp");
        return 1;
    }
    atexit(cleanup);
    B.json = cJSON_CreateObject();
    int64_t t0 = mono_ns();
    g_load_start = loadavg();
    curl_global_init(CURL_GLOBAL_DEFAULT);

    bool need_nginx = wanted("throughput") || wanted("naive") || wanted("durable") ||
                      wanted("engines") || wanted("pg_throughput") || wanted("batched") ||
                      wanted("http2") ||
                      wanted("fanout") || wanted("isolation");
    if (need_nginx && (start_nginx() != 0 || write_wrk_request() != 0)) {
        say("could not start nginx (install it: apt-get install -y nginx-light wrk)");
        return 1;
    }
    if (need_nginx)
        say("nginx on 127.0.0.1:%d, pid %d; body %zu bytes", B.nginx_port, (int)B.nginx_pid,
            g_body_len);
    if (wanted("throughput") ||
        ((wanted("naive") || wanted("durable") || wanted("pg_throughput")) && !B.no_baseline))
        sc_throughput();
    if (wanted("throughput") && !B.no_baseline)
        sc_bare();
    if (wanted("naive"))
        sc_naive();
    if (wanted("naive"))
        sc_naive_slow();
    if (wanted("durable"))
        sc_durable();
    if (wanted("engines"))
        sc_engines();
    if (wanted("pg_throughput"))
        sc_pg_throughput();
    if (wanted("batched"))
        sc_batched();
    if (wanted("http2"))
        sc_http2();
    if (wanted("fanout"))
        sc_fanout();
    if (wanted("slow"))
        sc_slow();
    if (wanted("isolation"))
        sc_isolation();
    if (wanted("scaleout"))
        sc_scaleout();
    stop_nginx();
    if (wanted("latency"))
        sc_latency();
    if (wanted("durable_emit"))
        sc_durable_emit();
    if (wanted("memory"))
        sc_memory();
    if (wanted("registry"))
        sc_registry();

    char model[256];
    long cpus;
    machine(model, sizeof model, &cpus);
    double secs = since_s(t0);
    print_table(model, cpus, secs);

    if (!B.no_json && !B.only && !B.no_baseline &&
        B.throughput_events == THROUGHPUT_EVENTS_DEFAULT) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "libwebhook", wh_version());
        char when[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        cJSON_AddStringToObject(root, "date", when);
        cJSON *m = cJSON_AddObjectToObject(root, "machine");
        cJSON_AddNumberToObject(m, "cpus", (double)cpus);
        cJSON_AddStringToObject(m, "model", model);
        cJSON_AddNumberToObject(root, "seconds", round(secs));
        cJSON_AddNumberToObject(root, "load_average_start", g_load_start);
        cJSON_AddNumberToObject(root, "load_average_end", loadavg());
        cJSON_AddNumberToObject(root, "targets_missed", B.missed);
        cJSON_AddNumberToObject(root, "errors", B.errors);
        cJSON_AddItemToObject(root, "scenarios", B.json);
        B.json = NULL;
        char *text = cJSON_Print(root);
        char path[600];
        snprintf(path, sizeof path, "%s/results.json", B.dir);
        FILE *f = fopen(path, "w");
        if (!f || fprintf(f, "%s\n", text) < 0 || fclose(f) != 0)
            say("could not write %s", path);
        else
            say("wrote %s", path);
        free(text);
        cJSON_Delete(root);
    }
    cJSON_Delete(B.json);
    curl_global_cleanup();
    return B.errors ? 1 : 0;
}

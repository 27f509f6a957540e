/* webhookctl against a real store file: each command, the attempts made by a real engine
 * in this process, and changes made while an engine runs in another process. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "support.h"
#include "webhook/webhook.h"

#define CTL_TIMEOUT_MS 30000

static const char *secret_a = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
static const char *secret_b = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
static const char *secret_c = "whsec_dGhpcyBpcyBhIHRoaXJkIHRlc3Qgc2VjcmV0IQ==";

static char dir[256], store[512], out_path[512], err_path[512], in_path[512], ctl[1024];

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "%s/whctl.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(store, sizeof store, "%s/webhooks.db", dir);
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    snprintf(err_path, sizeof err_path, "%s/err", dir);
    snprintf(in_path, sizeof in_path, "%s/in", dir);
    const char *bin = getenv("WH_WEBHOOKCTL");
    const char *root = getenv("WH_TEST_ROOT");
    if (bin && *bin)
        snprintf(ctl, sizeof ctl, "%s", bin);
    else
        snprintf(ctl, sizeof ctl, "%s/build/bin/webhookctl", root && *root ? root : ".");
    ck_assert_msg(access(ctl, X_OK) == 0, "%s is missing: build it with make build/bin/webhookctl", ctl);
    unsetenv("WEBHOOK_STORE");
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

/* ---- running webhookctl ------------------------------------------------------------ */

typedef struct {
    int status; /* exit status; -1 when it did not exit normally */
    char *out, *err;
} result;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void result_free(result *r)
{
    free(r->out);
    free(r->err);
}

/* Runs webhookctl ARGS (with "-s STORE" first when with_store) with input on stdin. */
static result run_argv(bool with_store, const char *input, const char *const *args)
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = "webhookctl";
    if (with_store) {
        argv[n++] = "-s";
        argv[n++] = store;
    }
    for (const char *const *a = args; *a && n < 63; a++)
        argv[n++] = *a;
    argv[n] = NULL;
    FILE *in = fopen(in_path, "wb");
    ck_assert_ptr_nonnull(in);
    if (input)
        fputs(input, in);
    fclose(in);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int i = open(in_path, O_RDONLY), o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600),
            e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (i < 0 || o < 0 || e < 0 || dup2(i, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        execv(ctl, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    int64_t deadline = wall_ms() + CTL_TIMEOUT_MS;
    pid_t w;
    while ((w = waitpid(pid, &st, WNOHANG)) == 0 && wall_ms() < deadline)
        sleep_ms(2);
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        ck_abort_msg("webhookctl %s did not finish within %d ms", args[0], CTL_TIMEOUT_MS);
    }
    result r = {.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1};
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    return r;
}

#define CTL(...) run_argv(true, NULL, (const char *[]){__VA_ARGS__, NULL})
#define CTL_IN(input, ...) run_argv(true, input, (const char *[]){__VA_ARGS__, NULL})

/* Runs a command that must succeed; returns its stdout (caller frees). */
#define CTL_OK(...) ctl_ok(run_argv(true, NULL, (const char *[]){__VA_ARGS__, NULL}))
static char *ctl_ok(result r)
{
    ck_assert_msg(r.status == 0, "webhookctl exited %d: %s", r.status, r.err);
    ck_assert_str_eq(r.err, "");
    free(r.err);
    return r.out;
}

/* Expects exit status `status` and a message on stderr containing `want`. */
static void expect_fail(result r, int status, const char *want)
{
    ck_assert_msg(r.status == status, "exit %d (wanted %d); stderr: %s", r.status, status, r.err);
    ck_assert_msg(strncmp(r.err, "webhookctl: ", 12) == 0, "stderr: %s", r.err);
    ck_assert_msg(strstr(r.err, want), "stderr lacks \"%s\": %s", want, r.err);
    result_free(&r);
}

/* endpoint add URL [more args]: the new id. */
static void add_endpoint(rcv *r, const char *path, char id[WH_ID_MAX], const char *const *more)
{
    char url[256];
    if (r)
        rcv_url(r, path, url, sizeof url);
    else
        snprintf(url, sizeof url, "http://127.0.0.1:1%s", path);
    const char *args[16] = {"endpoint", "add", url};
    size_t n = 3;
    for (; more && *more && n < 15; more++)
        args[n++] = *more;
    args[n] = NULL;
    char *out = ctl_ok(run_argv(true, NULL, args));
    ck_assert_msg(strncmp(out, "ep_", 3) == 0 && strlen(out) < WH_ID_MAX && out[strlen(out) - 1] == '\n',
                  "endpoint add printed: %s", out);
    out[strlen(out) - 1] = '\0';
    snprintf(id, WH_ID_MAX, "%s", out);
    free(out);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* The line of a table that starts with key (a copy), or NULL. */
static char *line_of(const char *text, const char *key)
{
    for (const char *p = text; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (strncmp(p, key, strlen(key)) == 0)
            return strndup(p, len);
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

static size_t count_lines_with(const char *text, const char *a, const char *b)
{
    size_t n = 0;
    for (const char *p = text; p && *p;) {
        const char *end = strchr(p, '\n');
        char *line = strndup(p, end ? (size_t)(end - p) : strlen(p));
        n += strstr(line, a) && (!b || strstr(line, b));
        free(line);
        p = end ? end + 1 : NULL;
    }
    return n;
}

/* The n-th (from 1) whitespace-separated field of line, as awk sees it (a copy), or NULL. */
static char *field(const char *line, int n)
{
    const char *p = line;
    for (int i = 1;; i++) {
        p += strspn(p, " ");
        if (!*p || *p == '\n')
            return NULL;
        size_t len = strcspn(p, " \n");
        if (i == n)
            return strndup(p, len);
        p += len;
    }
}

static int field_count(const char *line)
{
    int n = 0;
    for (char *f; (f = field(line, n + 1)); n++)
        free(f);
    return n;
}

/* Every line of a table has at least `cols` fields, and the header exactly `cols`: no header
 * and no cell but the last holds a space, and no cell is empty. */
static void assert_awk_friendly(const char *table, int cols)
{
    bool first = true;
    for (const char *p = table; *p;) {
        const char *end = strchr(p, '\n');
        char *line = strndup(p, end ? (size_t)(end - p) : strlen(p));
        int n = field_count(line);
        ck_assert_msg(first ? n == cols : n >= cols, "%d fields (want %d) in: %s", n, cols, line);
        first = false;
        free(line);
        p = end ? end + 1 : p + strlen(p);
    }
}

/* ---- an engine on the same store -------------------------------------------------- */

static wh_ctx *engine(const char *schedule, const char *extra_types)
{
    wh_conf *c = wh_conf_new();
    char spec[600], err[256];
    snprintf(spec, sizeof spec, "sqlite:%s", store);
    const char *settings[][2] = {
        {"store", spec},
        {"retry.schedule", schedule ? schedule : "100ms"},
        {"retry.jitter", "0"},
        {"http.timeout_ms", "5000"},
        {"event_types.extra", extra_types ? extra_types : ""},
        /* the receivers live on loopback, which the address guard refuses by default */
        {"security.allow_cidrs", "127.0.0.1/32"},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        ck_assert_msg(wh_conf_set(c, settings[i][0], settings[i][1], err, sizeof err) == WH_OK, "%s", err);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static void emit(wh_ctx *ctx, char id[WH_ID_MAX])
{
    int n = wh_emit(ctx, &(wh_event){.event_type = "task_run.completed", .run_id = "run_1",
                                     .task_id = "task_1", .status = "completed"}, id);
    ck_assert_msg(n >= 0, "wh_emit: %s", wh_last_error());
}

/* Drives ctx until path has n requests (then until nothing is in flight); false on timeout. */
static bool drive_until(wh_ctx *ctx, rcv *r, const char *path, size_t n, int timeout_ms)
{
    int64_t deadline = wall_ms() + timeout_ms;
    while (rcv_count(r, path) < n && wall_ms() < deadline)
        wh_poll(ctx, 20);
    bool ok = rcv_count(r, path) >= n;
    wh_flush(ctx, 5000);
    return ok;
}

/* Drives ctx for ms milliseconds. */
static void drive_for(wh_ctx *ctx, int ms)
{
    int64_t deadline = wall_ms() + ms;
    while (wall_ms() < deadline)
        wh_poll(ctx, 20);
}

static void get_enabled_cb(void *ud, const wh_endpoint_info *ep) { *(int *)ud = ep->enabled; }

/* Whether the i-th request received verifies with secret. */
static bool request_verifies(rcv *r, size_t i, const char *secret)
{
    rcv_request q;
    ck_assert_int_eq(rcv_get(r, i, &q), 0);
    bool ok = wh_verify(secret, q.webhook_id, q.webhook_timestamp, q.webhook_signature, q.body,
                        q.body_len, 0, 0) == WH_OK;
    rcv_request_free(&q);
    return ok;
}

/* ---- endpoints ------------------------------------------------------------------------ */

START_TEST(endpoint_add_validates_like_the_library)
{
    char id[WH_ID_MAX];
    char *out = CTL_OK("endpoint", "add", "http://127.0.0.1:1/hook", "--events", "task_run.*, workflow_run.failed");
    ck_assert_msg(strncmp(out, "ep_", 3) == 0 && count_lines(out) == 1, "%s", out);
    snprintf(id, sizeof id, "%.*s", (int)strlen(out) - 1, out);
    free(out);

    expect_fail(CTL("endpoint", "add", "ftp://x"), 1, "webhookctl: url: \"ftp://x\" must start with http:// or https://");
    expect_fail(CTL("endpoint", "add", "http://user:pw@example.com/"), 1, "url:");
    expect_fail(CTL("endpoint", "add", "http://127.0.0.1:1/", "--events", "nope.happened"), 1, "\"nope.happened\" is not a known event type");
    expect_fail(CTL("endpoint", "add", "http://127.0.0.1:1/", "--events", ","), 1, "events: is empty");
    expect_fail(CTL("endpoint", "add", "http://127.0.0.1:1/", "--secret", "whsec_short"), 1, "secret:");
    expect_fail(CTL("endpoint", "add", "http://127.0.0.1:1/", "--description", "a\tb"), 1, "description:");
    expect_fail(CTL("endpoint", "add"), 2, "missing argument");
    expect_fail(CTL("endpoint", "add", "http://127.0.0.1:1/", "--grace", "1h"), 2, "no option --grace");
    expect_fail(CTL("endpoint", "add", "http://127.0.0.1:1/", "--bogus"), 2, "unknown option --bogus");
    expect_fail(CTL("endpoint", "frob"), 2, "unknown command");
    expect_fail(CTL("frob"), 2, "unknown command");

    /* only the valid one is there, and the engine reads it as written */
    out = CTL_OK("endpoint", "list");
    ck_assert_uint_eq(count_lines(out), 2);
    ck_assert_ptr_nonnull(strstr(out, id));
    ck_assert_ptr_nonnull(strstr(out, "task_run.*,workflow_run.failed"));
    free(out);
    wh_ctx *ctx = engine(NULL, NULL);
    int enabled = -1;
    ck_assert_int_eq(wh_endpoint_get(ctx, id, get_enabled_cb, &enabled), WH_OK);
    ck_assert_int_eq(enabled, 1);
    wh_destroy(ctx);

    /* the types come from the engine's list in the store: an extra type is accepted */
    expect_fail(CTL("endpoint", "add", "http://127.0.0.1:1/", "--events", "deploy.finished"), 1, "deploy.finished");
    wh_destroy(engine(NULL, "deploy.finished"));
    free(CTL_OK("endpoint", "add", "http://127.0.0.1:1/d", "--events", "deploy.finished", "--disabled"));
    out = CTL_OK("endpoint", "list");
    ck_assert_uint_eq(count_lines_with(out, "deploy.finished", "  no  "), 1);
    free(out);
}
END_TEST

START_TEST(store_from_flag_or_environment)
{
    expect_fail(run_argv(false, NULL, (const char *[]){"endpoint", "list", NULL}), 2, "WEBHOOK_STORE");
    /* reading never creates a store; adding may */
    expect_fail(CTL("endpoint", "list"), 1, "No such file");
    ck_assert_int_ne(access(store, F_OK), 0);
    free(CTL_OK("endpoint", "add", "http://127.0.0.1:1/a"));
    struct stat st;
    ck_assert_int_eq(stat(store, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    setenv("WEBHOOK_STORE", store, 1);
    result r = run_argv(false, NULL, (const char *[]){"endpoint", "list", NULL});
    ck_assert_int_eq(r.status, 0);
    ck_assert_uint_eq(count_lines(r.out), 2);
    result_free(&r);
    char spec[600];
    snprintf(spec, sizeof spec, "sqlite:%s", store);
    setenv("WEBHOOK_STORE", spec, 1);
    r = run_argv(false, NULL, (const char *[]){"stats", NULL});
    ck_assert_int_eq(r.status, 0);
    result_free(&r);
    r = run_argv(false, NULL, (const char *[]){"--help", NULL});
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "usage: webhookctl"));
    result_free(&r);
    const char *versions[][2] = {{"-V", NULL}, {"--version", NULL}, {"version", NULL}};
    for (size_t i = 0; i < 3; i++) {
        r = run_argv(false, NULL, versions[i]);
        ck_assert_msg(r.status == 0, "%s: %d %s", versions[i][0], r.status, r.err);
        ck_assert_str_eq(r.out, "webhookctl (libwebhook) " WH_VERSION_STRING "\n");
        result_free(&r);
    }
}
END_TEST

START_TEST(list_and_show_never_print_secrets_unless_asked)
{
    char *out = CTL_OK("endpoint", "add", "http://127.0.0.1:1/pay", "--secret", secret_a,
                       "--description", "payments team");
    char id[WH_ID_MAX];
    snprintf(id, sizeof id, "%.*s", (int)strlen(out) - 1, out);
    ck_assert_ptr_null(strstr(out, "whsec_"));
    free(out);
    free(CTL_OK("endpoint", "add", "http://127.0.0.1:1/other"));

    out = CTL_OK("endpoint", "list");
    ck_assert_uint_eq(count_lines(out), 3);
    ck_assert_ptr_nonnull(strstr(out, "ID"));
    ck_assert_ptr_nonnull(strstr(out, "DESCRIPTION"));
    char *line = line_of(out, id);
    ck_assert_ptr_nonnull(line);
    ck_assert_ptr_nonnull(strstr(line, "http://127.0.0.1:1/pay"));
    ck_assert_ptr_nonnull(strstr(line, "payments team"));
    ck_assert_ptr_nonnull(strstr(line, "yes"));
    free(line);
    ck_assert_ptr_null(strstr(out, "whsec_"));

    /* awk: $5 is the key and $6 the description, "-" for the other endpoint, which has
     * neither */
    assert_awk_friendly(out, 6);
    line = line_of(out, id);
    char *desc = field(line, 6);
    ck_assert_str_eq(desc, "payments");
    free(desc);
    free(line);
    const char *other = strstr(out, "http://127.0.0.1:1/other");
    ck_assert_ptr_nonnull(other);
    while (other > out && other[-1] != '\n')
        other--;
    desc = field(other, 6);
    ck_assert_str_eq(desc, "-");
    free(desc);
    desc = field(other, 5);
    ck_assert_str_eq(desc, "-");
    free(desc);
    free(out);

    /* --json: one object per endpoint, no secret */
    out = CTL_OK("endpoint", "list", "--json");
    ck_assert_uint_eq(count_lines(out), 2);
    ck_assert_ptr_null(strstr(out, "whsec_"));
    cJSON *o = cJSON_Parse(strtok(out, "\n"));
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "id")->valuestring, id);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "url")->valuestring, "http://127.0.0.1:1/pay");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "description")->valuestring, "payments team");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(o, "enabled")));
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "event_types"), 0)->valuestring, "*");
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "secret"));
    cJSON_Delete(o);
    free(out);

    out = CTL_OK("endpoint", "show", id, "--json");
    o = cJSON_Parse(out);
    ck_assert_msg(o != NULL && count_lines(out) == 1, "%s", out);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "id")->valuestring, id);
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "secret"));
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(o, "created")));
    cJSON_Delete(o);
    free(out);
    out = CTL_OK("endpoint", "show", id, "--json", "--reveal-secret");
    o = cJSON_Parse(out);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "secret")->valuestring, secret_a);
    cJSON_Delete(o);
    free(out);

    out = CTL_OK("endpoint", "show", id);
    ck_assert_ptr_nonnull(strstr(out, "whsec_\u2026(hidden)"));
    ck_assert_ptr_null(strstr(out, secret_a));
    ck_assert_ptr_nonnull(strstr(out, "payments team"));
    free(out);
    out = CTL_OK("endpoint", "show", id, "--reveal-secret");
    ck_assert_ptr_nonnull(strstr(out, secret_a));
    free(out);
    expect_fail(CTL("endpoint", "show", "ep_nope"), 1, "webhookctl: no endpoint \"ep_nope\"");
}
END_TEST

START_TEST(enable_disable_rm)
{
    char id[WH_ID_MAX], other[WH_ID_MAX];
    add_endpoint(NULL, "/x", id, NULL);
    add_endpoint(NULL, "/y", other, NULL);

    char *out = CTL_OK("endpoint", "disable", id);
    ck_assert_ptr_nonnull(strstr(out, id));
    free(out);
    out = CTL_OK("endpoint", "list");
    char *line = line_of(out, id);
    ck_assert_msg(line && strstr(line, "  no  "), "%s", out);
    free(line);
    line = line_of(out, other);
    ck_assert_msg(line && strstr(line, "  yes  "), "%s", out);
    free(line);
    free(out);
    out = CTL_OK("endpoint", "show", id);
    ck_assert_ptr_nonnull(strstr(out, "enabled:       no"));
    free(out);
    /* an engine opened now sees it disabled */
    wh_ctx *ctx = engine(NULL, NULL);
    int enabled = -1;
    ck_assert_int_eq(wh_endpoint_get(ctx, id, get_enabled_cb, &enabled), WH_OK);
    ck_assert_int_eq(enabled, 0);
    wh_destroy(ctx);

    free(CTL_OK("endpoint", "enable", id));
    out = CTL_OK("endpoint", "list");
    line = line_of(out, id);
    ck_assert_msg(line && strstr(line, "  yes  "), "%s", out);
    free(line);
    free(out);

    out = CTL_OK("endpoint", "rm", id);
    ck_assert_ptr_nonnull(strstr(out, id));
    free(out);
    out = CTL_OK("endpoint", "list");
    ck_assert_ptr_null(strstr(out, id));
    ck_assert_ptr_nonnull(strstr(out, other));
    free(out);
    ctx = engine(NULL, NULL);
    ck_assert_int_eq(wh_endpoint_get(ctx, id, get_enabled_cb, &enabled), WH_ERR_NOTFOUND);
    wh_destroy(ctx);

    expect_fail(CTL("endpoint", "rm", id), 1, "no endpoint \"");
    expect_fail(CTL("endpoint", "enable", "ep_nope"), 1, "webhookctl: no endpoint \"ep_nope\"");
    expect_fail(CTL("endpoint", "disable", "ep_nope"), 1, "no endpoint \"ep_nope\"");
    expect_fail(CTL("endpoint", "disable"), 2, "missing argument");
    expect_fail(CTL("endpoint", "disable", id, other), 2, "unexpected argument");
}
END_TEST

START_TEST(rotate_secret_keeps_the_old_one_signing_for_the_grace)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    char id[WH_ID_MAX];
    add_endpoint(r, "/rot", id, (const char *[]){"--secret", secret_a, NULL});

    char *out = CTL_OK("endpoint", "rotate-secret", id, "--secret", secret_b, "--grace", "1h");
    ck_assert_ptr_null(strstr(out, "whsec_"));
    ck_assert_ptr_nonnull(strstr(out, id));
    free(out);
    out = CTL_OK("endpoint", "show", id);
    ck_assert_ptr_nonnull(strstr(out, "old secret:"));
    ck_assert_ptr_null(strstr(out, secret_a));
    ck_assert_ptr_null(strstr(out, secret_b));
    free(out);

    /* an engine signs with both while the grace lasts */
    wh_ctx *ctx = engine(NULL, NULL);
    emit(ctx, NULL);
    ck_assert(drive_until(ctx, r, "/rot", 1, 10000));
    ck_assert(request_verifies(r, 0, secret_b));
    ck_assert(request_verifies(r, 0, secret_a));
    wh_destroy(ctx);

    /* 0 means what grace_s = 0 means in wh_endpoint_rotate_secret: the default 24 h */
    out = CTL_OK("endpoint", "rotate-secret", id, "--secret", secret_c, "--grace", "0", "--reveal-secret");
    ck_assert_ptr_nonnull(strstr(out, secret_c));
    ck_assert_ptr_null(strstr(out, secret_b));
    ck_assert_ptr_nonnull(strstr(out, "keeps signing until"));
    free(out);
    ctx = engine(NULL, NULL);
    emit(ctx, NULL);
    ck_assert(drive_until(ctx, r, "/rot", 2, 10000));
    ck_assert(request_verifies(r, 1, secret_c));
    ck_assert(request_verifies(r, 1, secret_b));
    wh_destroy(ctx);

    /* -1 (as grace_s = -1) or "none": no grace, only the new one signs */
    const char *no_grace[] = {"-1", "none"};
    const char *next[] = {secret_a, secret_b};
    for (int k = 0; k < 2; k++) {
        out = CTL_OK("endpoint", "rotate-secret", id, "--secret", next[k], "--grace", no_grace[k]);
        ck_assert_ptr_nonnull(strstr(out, "the old one no longer signs"));
        free(out);
        ctx = engine(NULL, NULL);
        emit(ctx, NULL);
        ck_assert(drive_until(ctx, r, "/rot", (size_t)(3 + k), 10000));
        ck_assert(request_verifies(r, (size_t)(2 + k), next[k]));
        ck_assert(!request_verifies(r, (size_t)(2 + k), k ? secret_a : secret_c));
        wh_destroy(ctx);
    }

    /* a generated secret is never shown unless asked */
    out = CTL_OK("endpoint", "rotate-secret", id);
    ck_assert_ptr_null(strstr(out, "whsec_"));
    free(out);
    expect_fail(CTL("endpoint", "rotate-secret", id, "--secret", "nope"), 1, "secret:");
    expect_fail(CTL("endpoint", "rotate-secret", "ep_nope"), 1, "no endpoint \"ep_nope\"");
    expect_fail(CTL("endpoint", "rotate-secret", id, "--grace", "soon"), 2, "--grace");
    expect_fail(CTL("endpoint", "rotate-secret", id, "--grace", "-2"), 2, "--grace");
    rcv_stop(r);
}
END_TEST

/* A rotation made by webhookctl while an engine runs, inside the grace of one the engine
 * made: the engine keeps signing with both old secrets, each until its own grace ends. */
START_TEST(rotations_from_engine_and_webhookctl_keep_every_old_secret)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    char id[WH_ID_MAX];
    add_endpoint(r, "/two", id, (const char *[]){"--secret", secret_a, NULL});
    wh_ctx *ctx = engine(NULL, NULL);
    ck_assert_int_eq(wh_endpoint_rotate_secret(ctx, id, secret_b, 3600), WH_OK);
    free(CTL_OK("endpoint", "rotate-secret", id, "--secret", secret_c, "--grace", "1h"));
    drive_for(ctx, 1500); /* the engine takes the store's change */
    emit(ctx, NULL);
    ck_assert(drive_until(ctx, r, "/two", 1, 10000));
    ck_assert(request_verifies(r, 0, secret_c));
    ck_assert(request_verifies(r, 0, secret_b));
    ck_assert(request_verifies(r, 0, secret_a));
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

/* An engine whose clock runs offset_ms ahead of the wall clock. */
static int64_t ahead_now(void *ud) { return wall_ms() + *(const int64_t *)ud; }

static wh_ctx *engine_ahead(const int64_t *offset_ms)
{
    wh_conf *c = wh_conf_new();
    char spec[600], err[256];
    snprintf(spec, sizeof spec, "sqlite:%s", store);
    ck_assert_int_eq(wh_conf_set(c, "store", spec, err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err), WH_OK);
    ck_assert_int_eq(wh_conf_set_clock(c, ahead_now, (void *)offset_ms), WH_OK);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

/* Whether the i-th request verifies with secret at its own timestamp (a clock ahead of the
 * wall clock signs ahead of it). */
static bool request_verifies_as_sent(rcv *r, size_t i, const char *secret)
{
    rcv_request q;
    ck_assert_int_eq(rcv_get(r, i, &q), 0);
    bool ok = wh_verify(secret, q.webhook_id, q.webhook_timestamp, q.webhook_signature, q.body,
                        q.body_len, atoll(q.webhook_timestamp), 0) == WH_OK;
    rcv_request_free(&q);
    return ok;
}

/* Rotated twice within the grace, once by an engine and once by webhookctl in another
 * process: the store keeps both old secrets, so an engine started afterwards signs with all
 * three, and each old one stops when its own grace ends. */
START_TEST(every_old_secret_is_stored_and_signs_after_a_restart)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    char id[WH_ID_MAX];
    add_endpoint(r, "/kept", id, (const char *[]){"--secret", secret_a, NULL});
    wh_ctx *ctx = engine(NULL, NULL);
    ck_assert_int_eq(wh_endpoint_rotate_secret(ctx, id, secret_b, 60), WH_OK); /* a: 1 min */
    free(CTL_OK("endpoint", "rotate-secret", id, "--secret", secret_c, "--grace", "1h"));
    wh_destroy(ctx);

    /* webhookctl shows each old secret with the end of its grace, newest first */
    char *out = CTL_OK("endpoint", "show", id);
    ck_assert_msg(count_lines_with(out, "old secret:", "signs until") == 2, "%s", out);
    ck_assert_ptr_null(strstr(out, secret_a));
    ck_assert_ptr_null(strstr(out, secret_b));
    free(out);
    out = CTL_OK("endpoint", "show", id, "--reveal-secret");
    const char *b_at = strstr(out, secret_b), *a_at = strstr(out, secret_a);
    ck_assert_msg(b_at && a_at && b_at < a_at, "%s", out);
    free(out);
    out = CTL_OK("endpoint", "show", id, "--json");
    cJSON *o = cJSON_Parse(out), *old = cJSON_GetObjectItem(o, "old_secrets");
    ck_assert_msg(cJSON_GetArraySize(old) == 2, "%s", out);
    for (int i = 0; i < 2; i++) {
        ck_assert(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetArrayItem(old, i), "until")));
        ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetArrayItem(old, i), "secret"));
    }
    cJSON_Delete(o);
    free(out);
    out = CTL_OK("endpoint", "show", id, "--json", "--reveal-secret");
    o = cJSON_Parse(out);
    old = cJSON_GetObjectItem(o, "old_secrets");
    ck_assert_msg(cJSON_GetArraySize(old) == 2, "%s", out);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(old, 0), "secret")->valuestring, secret_b);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(old, 1), "secret")->valuestring, secret_a);
    /* RFC 3339 times in UTC compare as text: b's grace (1 h) ends after a's (1 min) */
    ck_assert_int_gt(strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(old, 0), "until")->valuestring,
                            cJSON_GetObjectItem(cJSON_GetArrayItem(old, 1), "until")->valuestring), 0);
    cJSON_Delete(o);
    free(out);

    /* a restarted engine: every request carries all three signatures */
    ctx = engine(NULL, NULL);
    emit(ctx, NULL);
    ck_assert(drive_until(ctx, r, "/kept", 1, 10000));
    ck_assert(request_verifies(r, 0, secret_c));
    ck_assert(request_verifies(r, 0, secret_b));
    ck_assert(request_verifies(r, 0, secret_a));
    wh_destroy(ctx);

    /* two minutes on, a's grace has ended and b's has not */
    static const int64_t later = 120000;
    ctx = engine_ahead(&later);
    emit(ctx, NULL);
    ck_assert(drive_until(ctx, r, "/kept", 2, 10000));
    ck_assert(request_verifies_as_sent(r, 1, secret_c));
    ck_assert(request_verifies_as_sent(r, 1, secret_b));
    ck_assert(!request_verifies_as_sent(r, 1, secret_a));
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

/* ---- the attempt log and stats ----------------------------------------------------------- */

typedef struct {
    rcv *r;
    char flaky[WH_ID_MAX], gone[WH_ID_MAX], dead[WH_ID_MAX];
    char event[WH_ID_MAX];
} history;

/* One event to three endpoints: /flaky answers 500 then 200, /gone 410, and a refused port
 * that stays pending (its next retry is an hour away). */
static void make_history(history *h)
{
    h->r = rcv_start();
    ck_assert_ptr_nonnull(h->r);
    rcv_script(h->r, "/flaky", (rcv_rule[]){{.status = 500}}, 1, (rcv_rule){.status = 200});
    rcv_script(h->r, "/gone", NULL, 0, (rcv_rule){.status = 410});
    add_endpoint(h->r, "/flaky", h->flaky, NULL);
    add_endpoint(h->r, "/gone", h->gone, NULL);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/dead", closed_port());
    char *out = CTL_OK("endpoint", "add", url);
    snprintf(h->dead, sizeof h->dead, "%.*s", (int)strlen(out) - 1, out);
    free(out);
    wh_ctx *ctx = engine("100ms,1h", NULL);
    emit(ctx, h->event);
    int64_t deadline = wall_ms() + 10000;
    wh_stats_info st = {0};
    while (wall_ms() < deadline && (wh_stats(ctx, &st), st.attempts < 5))
        wh_poll(ctx, 20);
    ck_assert_uint_eq(st.attempts, 5);
    wh_flush(ctx, 5000);
    wh_destroy(ctx);
}

START_TEST(log_table_json_filters_and_stats)
{
    history h;
    make_history(&h);

    char *out = CTL_OK("log");
    ck_assert_msg(count_lines(out) == 6, "%s", out);
    char *header = line_of(out, "TIME");
    ck_assert_ptr_nonnull(header);
    const char *cols[] = {"TIME", "EVENT_TYPE", "EVENT_ID", "ENDPOINT", "ATTEMPT", "REDELIVERY",
                          "OUTCOME", "HTTP", "LATENCY", "RUN", "TASK", "ERROR"};
    for (int i = 0; i < 12; i++) {
        char *f = field(header, i + 1);
        ck_assert_msg(f && strcmp(f, cols[i]) == 0, "column %d is %s, not %s: %s", i + 1, f, cols[i], header);
        free(f);
    }
    free(header);
    /* awk: $7 is the outcome of every row, $6 says none of these is a redelivery, and the
     * delivered attempt's empty error is "-" */
    assert_awk_friendly(out, 12);
    int outcomes[4] = {0};
    for (char *save = NULL, *copy = strdup(out), *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "TIME", 4) == 0)
            continue;
        char *outcome = field(line, 7), *redelivery = field(line, 6), *error = field(line, 12);
        for (int k = 0; k < 4; k++)
            outcomes[k] += strcmp(outcome, wh_outcome_name((wh_outcome)k)) == 0;
        ck_assert_str_eq(redelivery, "no");
        if (strcmp(outcome, "delivered") == 0)
            ck_assert_str_eq(error, "-");
        /* the event's run and task, from the stored attempt */
        char *run = field(line, 10), *task = field(line, 11);
        ck_assert_str_eq(run, "run_1");
        ck_assert_str_eq(task, "task_1");
        free(run), free(task);
        free(outcome), free(redelivery), free(error);
        if (!save || !*save)
            free(copy);
    }
    ck_assert_int_eq(outcomes[WH_OUTCOME_DELIVERED], 1);
    ck_assert_int_eq(outcomes[WH_OUTCOME_RETRYING], 3);
    ck_assert_int_eq(outcomes[WH_OUTCOME_FAILED], 1);
    ck_assert_uint_eq(count_lines_with(out, h.event, "task_run.completed"), 5);
    ck_assert_uint_eq(count_lines_with(out, h.flaky, " retrying "), 1);
    ck_assert_uint_eq(count_lines_with(out, h.flaky, " 500 "), 1);
    ck_assert_uint_eq(count_lines_with(out, h.flaky, " delivered "), 1);
    ck_assert_uint_eq(count_lines_with(out, h.flaky, " 200 "), 1);
    ck_assert_uint_eq(count_lines_with(out, h.gone, " failed "), 1);
    ck_assert_uint_eq(count_lines_with(out, h.gone, " 410 "), 1);
    ck_assert_uint_eq(count_lines_with(out, h.dead, " retrying "), 2);
    /* newest first: the second /flaky attempt comes before the first */
    char *first = strstr(out, " delivered "), *second = strstr(out, " 500 ");
    ck_assert(first && second && first < second);
    free(out);

    /* --failed: given up only; a retrying attempt may still be delivered */
    out = CTL_OK("log", "--failed");
    ck_assert_msg(count_lines(out) == 2, "%s", out);
    ck_assert_uint_eq(count_lines_with(out, h.gone, "410"), 1);
    free(out);
    out = CTL_OK("log", "--outcome", "failed");
    ck_assert_msg(count_lines(out) == 2, "%s", out);
    free(out);
    out = CTL_OK("log", "--outcome", "retrying,failed", "--json");
    ck_assert_msg(count_lines(out) == 4, "%s", out);
    ck_assert_ptr_null(strstr(out, "\"delivered\""));
    free(out);
    out = CTL_OK("log", "--outcome", "delivered,retrying,failed,skipped", "--json");
    ck_assert_msg(count_lines(out) == 5, "%s", out);
    free(out);
    out = CTL_OK("log", "--outcome", "skipped");
    ck_assert_msg(count_lines(out) == 1, "%s", out); /* the header */
    free(out);
    expect_fail(CTL("log", "--outcome", "delivered,gone"), 2, "\"gone\" is not an outcome");
    expect_fail(CTL("log", "--outcome", ""), 2, "--outcome");
    expect_fail(CTL("log", "--outcome", "failed", "--failed"), 2, "--failed");
    /* a type nobody knows is an error, not an empty log; a known one with no attempts is empty */
    expect_fail(CTL("log", "--type", "nope.x"), 1, "\"nope.x\" is not an event type");

    out = CTL_OK("log", "--json");
    ck_assert_uint_eq(count_lines(out), 5);
    int delivered = 0, failed = 0, retrying = 0;
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(line);
        ck_assert_msg(o != NULL, "not JSON: %s", line);
        ck_assert_str_eq(cJSON_GetObjectItem(o, "event_id")->valuestring, h.event);
        ck_assert_str_eq(cJSON_GetObjectItem(o, "run_id")->valuestring, "run_1");
        ck_assert_str_eq(cJSON_GetObjectItem(o, "task_id")->valuestring, "task_1");
        const char *outcome = cJSON_GetObjectItem(o, "outcome")->valuestring;
        int status = cJSON_GetObjectItem(o, "http_status")->valueint;
        const char *ep = cJSON_GetObjectItem(o, "endpoint_id")->valuestring;
        if (strcmp(outcome, "delivered") == 0) {
            delivered++;
            ck_assert_int_eq(status, 200);
            ck_assert_str_eq(ep, h.flaky);
        } else if (strcmp(outcome, "failed") == 0) {
            failed++;
            ck_assert_int_eq(status, 410);
        } else if (strcmp(outcome, "retrying") == 0) {
            retrying++;
        }
        cJSON_Delete(o);
    }
    ck_assert_int_eq(delivered, 1);
    ck_assert_int_eq(failed, 1);
    ck_assert_int_eq(retrying, 3);
    free(out);

    out = CTL_OK("log", "--json", "--endpoint", h.flaky);
    ck_assert_uint_eq(count_lines(out), 2);
    free(out);
    out = CTL_OK("log", "--json", "--event", h.event, "--since", "1h");
    ck_assert_uint_eq(count_lines(out), 5);
    free(out);
    out = CTL_OK("log", "--json", "--event", "evt_nope");
    ck_assert_str_eq(out, "");
    free(out);
    out = CTL_OK("log", "--json", "--limit", "1");
    ck_assert_uint_eq(count_lines(out), 1);
    free(out);
    out = CTL_OK("log", "--json", "--type", "workflow_run.started");
    ck_assert_str_eq(out, "");
    free(out);
    /* a delivery still waiting for its retry is not queued twice */
    out = CTL_OK("redeliver", h.event, h.dead);
    ck_assert_msg(strstr(out, "queued nothing"), "%s", out);
    free(out);
    expect_fail(CTL("log", "--since", "yesterday"), 2, "--since");
    expect_fail(CTL("log", "--limit", "lots"), 2, "--limit");

    /* stats: delivered, failed, skipped, pending, last success, success rate */
    out = CTL_OK("stats");
    ck_assert_uint_eq(count_lines(out), 4);
    assert_awk_friendly(out, 9);
    ck_assert_ptr_nonnull(strstr(out, "LAST_SUCCESS"));
    ck_assert_ptr_nonnull(strstr(out, "SUCCESS_RATE"));
    struct {
        const char *id;
        long long d, f, s, p;
        const char *rate;
        bool success;
    } want[] = {{h.flaky, 1, 0, 0, 0, "100.0%", true},
                {h.gone, 0, 1, 0, 0, "0.0%", false},
                {h.dead, 0, 0, 0, 1, "-", false}};
    for (size_t i = 0; i < 3; i++) {
        char *line = line_of(out, want[i].id);
        ck_assert_msg(line != NULL, "no stats line for %s:\n%s", want[i].id, out);
        char id[80], enabled[8], last[40], rate[16];
        long long d, f, s, p;
        ck_assert_int_eq(sscanf(line, "%79s %7s %lld %lld %lld %lld %39s %15s", id, enabled, &d, &f, &s, &p, last, rate), 8);
        ck_assert_msg(d == want[i].d && f == want[i].f && s == want[i].s && p == want[i].p,
                      "%s: %lld %lld %lld %lld", line, d, f, s, p);
        ck_assert_str_eq(rate, want[i].rate);
        ck_assert_int_eq(strcmp(last, "-") != 0, want[i].success);
        free(line);
    }
    free(out);
    out = CTL_OK("stats", "--json");
    ck_assert_uint_eq(count_lines(out), 3);
    int seen = 0;
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(line);
        ck_assert_msg(o != NULL, "not JSON: %s", line);
        const char *id = cJSON_GetObjectItem(o, "endpoint_id")->valuestring;
        for (size_t i = 0; i < 3; i++) {
            if (strcmp(id, want[i].id) != 0)
                continue;
            seen++;
            ck_assert_int_eq(cJSON_GetObjectItem(o, "delivered")->valueint, want[i].d);
            ck_assert_int_eq(cJSON_GetObjectItem(o, "failed")->valueint, want[i].f);
            ck_assert_int_eq(cJSON_GetObjectItem(o, "skipped")->valueint, want[i].s);
            ck_assert_int_eq(cJSON_GetObjectItem(o, "pending")->valueint, want[i].p);
            ck_assert_int_eq(cJSON_IsString(cJSON_GetObjectItem(o, "last_success")), want[i].success);
            cJSON *rate = cJSON_GetObjectItem(o, "success_rate");
            if (strcmp(want[i].rate, "-") == 0)
                ck_assert(cJSON_IsNull(rate));
            else
                ck_assert_double_eq_tol(rate->valuedouble * 100, atof(want[i].rate), 0.05);
            ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(o, "enabled")) || i == 1);
        }
        cJSON_Delete(o);
    }
    ck_assert_int_eq(seen, 3);
    free(out);
    rcv_stop(h.r);
}
END_TEST

/* ---- redelivery and recovery, with an engine running in this process ----------------------- */

START_TEST(redeliver_reaches_a_running_engine)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    char a[WH_ID_MAX], b[WH_ID_MAX], c[WH_ID_MAX], ev[WH_ID_MAX];
    add_endpoint(r, "/a", a, NULL);
    add_endpoint(r, "/b", b, NULL);
    wh_ctx *ctx = engine(NULL, NULL);
    emit(ctx, ev);
    ck_assert(drive_until(ctx, r, "/a", 1, 10000));
    ck_assert(drive_until(ctx, r, "/b", 1, 10000));
    rcv_request first;
    ck_assert_int_eq(rcv_get(r, 0, &first), 0);

    char *out = CTL_OK("redeliver", ev);
    ck_assert_ptr_nonnull(strstr(out, "queued 2 deliveries"));
    free(out);
    ck_assert_msg(drive_until(ctx, r, "/a", 2, 5000), "the engine did not pick up the redelivery");
    ck_assert(drive_until(ctx, r, "/b", 2, 5000));
    for (size_t i = 2; i < 4; i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(r, i, &q), 0);
        ck_assert_str_eq(q.webhook_id, ev);
        ck_assert_str_eq(q.body, first.body);
        rcv_request_free(&q);
    }

    out = CTL_OK("redeliver", ev, b);
    ck_assert_ptr_nonnull(strstr(out, "queued 1 delivery"));
    free(out);
    ck_assert(drive_until(ctx, r, "/b", 3, 5000));
    drive_for(ctx, 300);
    ck_assert_uint_eq(rcv_count(r, "/a"), 2);
    rcv_request q;
    ck_assert_int_eq(rcv_get(r, 4, &q), 0);
    ck_assert_str_eq(q.webhook_id, ev);
    ck_assert_str_eq(q.path, "/b");
    rcv_request_free(&q);

    add_endpoint(r, "/c", c, NULL);
    expect_fail(CTL("redeliver", "evt_nope"), 1, "no event \"evt_nope\"");
    expect_fail(CTL("redeliver", ev, "ep_nope"), 1, "no endpoint \"ep_nope\"");
    expect_fail(CTL("redeliver", ev, c), 1, "never went to");
    expect_fail(CTL("redeliver"), 2, "missing argument");
    drive_for(ctx, 300);
    ck_assert_uint_eq(rcv_count(r, "/c"), 0);

    /* the log shows the redeliveries as attempts of the same event, marked as such */
    out = CTL_OK("log", "--json", "--event", ev);
    ck_assert_uint_eq(count_lines(out), 5);
    int redeliveries = 0;
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(line);
        ck_assert_ptr_nonnull(o);
        ck_assert(cJSON_IsBool(cJSON_GetObjectItem(o, "redelivery")));
        redeliveries += cJSON_IsTrue(cJSON_GetObjectItem(o, "redelivery"));
        cJSON_Delete(o);
    }
    ck_assert_int_eq(redeliveries, 3);
    free(out);
    out = CTL_OK("log", "--event", ev);
    ck_assert_uint_eq(count_lines_with(out, ev, " yes "), 3);
    ck_assert_uint_eq(count_lines_with(out, ev, " no "), 2);
    free(out);
    /* one queued again by the engine itself is marked too */
    ck_assert_int_eq(wh_redeliver(ctx, ev, a), 1);
    ck_assert(drive_until(ctx, r, "/a", 3, 5000));
    out = CTL_OK("log", "--json", "--event", ev, "--endpoint", a, "--limit", "1");
    ck_assert_msg(strstr(out, "\"redelivery\":true"), "%s", out);
    free(out);
    rcv_request_free(&first);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

START_TEST(recover_requeues_failed_and_skipped)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    rcv_script(r, "/gone", NULL, 0, (rcv_rule){.status = 410});
    char g[WH_ID_MAX], ok[WH_ID_MAX], e1[WH_ID_MAX], e2[WH_ID_MAX];
    add_endpoint(r, "/gone", g, NULL);
    add_endpoint(r, "/ok", ok, NULL);
    wh_ctx *ctx = engine(NULL, NULL);
    emit(ctx, e1);
    ck_assert(drive_until(ctx, r, "/gone", 1, 10000));
    /* 410 disabled it: the next one is skipped */
    emit(ctx, e2);
    ck_assert(drive_until(ctx, r, "/ok", 2, 10000));
    ck_assert_uint_eq(rcv_count(r, "/gone"), 1);
    char *out = CTL_OK("log", "--endpoint", g);
    ck_assert_uint_eq(count_lines_with(out, e1, " failed "), 1);
    ck_assert_uint_eq(count_lines_with(out, e2, " skipped "), 1);
    free(out);

    /* the receiver is back: enable it and recover what it missed */
    rcv_script(r, "/gone", NULL, 0, (rcv_rule){.status = 204});
    free(CTL_OK("endpoint", "enable", g));
    out = CTL_OK("recover", g, "--since", "1h");
    ck_assert_msg(strstr(out, "queued 2 deliveries"), "%s", out);
    free(out);
    ck_assert_msg(drive_until(ctx, r, "/gone", 3, 5000), "the engine did not pick up the recovery");
    out = CTL_OK("log", "--endpoint", g, "--outcome", "delivered");
    ck_assert_msg(count_lines_with(out, g, " yes ") == 2 && count_lines(out) == 3, "%s", out);
    free(out);
    bool seen1 = false, seen2 = false;
    for (size_t i = 0; i < rcv_count(r, NULL); i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(r, i, &q), 0);
        if (strcmp(q.path, "/gone") == 0 && q.status_sent == 204) {
            seen1 |= strcmp(q.webhook_id, e1) == 0;
            seen2 |= strcmp(q.webhook_id, e2) == 0;
        }
        rcv_request_free(&q);
    }
    ck_assert(seen1 && seen2);
    ck_assert_uint_eq(rcv_count(r, "/ok"), 2);

    /* what was recovered since is not sent again */
    out = CTL_OK("recover", g, "--since", "1h");
    ck_assert_msg(strstr(out, "queued 0 deliveries"), "%s", out);
    free(out);
    expect_fail(CTL("recover", "ep_nope", "--since", "1h"), 1, "no endpoint \"ep_nope\"");
    expect_fail(CTL("recover", g), 2, "--since");
    out = CTL_OK("stats");
    char *line = line_of(out, g);
    ck_assert_ptr_nonnull(line);
    long long d, f, s, p;
    char id[80], en[8];
    ck_assert_int_eq(sscanf(line, "%79s %7s %lld %lld %lld %lld", id, en, &d, &f, &s, &p), 6);
    /* one delivery per (event, endpoint): both are delivered now */
    ck_assert_msg(d == 2 && f == 0 && s == 0 && p == 0, "%s", line);
    free(line);
    free(out);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

/* ---- verify ------------------------------------------------------------------------------- */

START_TEST(verify_checks_a_signature_by_hand)
{
    const char *body = "{\"id\":\"msg_1\",\"event_type\":\"task_run.completed\"}";
    char ts[32], sig[WH_SIGNATURE_MAX], old_ts[32], old_sig[WH_SIGNATURE_MAX];
    int64_t now = (int64_t)time(NULL);
    snprintf(ts, sizeof ts, "%lld", (long long)now);
    snprintf(old_ts, sizeof old_ts, "%lld", (long long)(now - 3600));
    ck_assert_int_eq(wh_sign(secret_a, "msg_1", now, body, strlen(body), sig, sizeof sig), WH_OK);
    ck_assert_int_eq(wh_sign(secret_a, "msg_1", now - 3600, body, strlen(body), old_sig, sizeof old_sig), WH_OK);

    result r = CTL_IN(body, "verify", "--secret", secret_a, "--id", "msg_1", "--timestamp", ts, "--signature", sig);
    ck_assert_msg(r.status == 0, "%s", r.err);
    ck_assert_str_eq(r.out, "valid\n");
    result_free(&r);
    /* a rotation header with another signature first */
    char both[2 * WH_SIGNATURE_MAX + 2];
    snprintf(both, sizeof both, "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= %s", sig);
    r = CTL_IN(body, "verify", "--secret", secret_a, "--id", "msg_1", "--timestamp", ts, "--signature", both);
    ck_assert_int_eq(r.status, 0);
    result_free(&r);

    expect_fail(CTL_IN("{\"id\":\"msg_2\"}", "verify", "--secret", secret_a, "--id", "msg_1", "--timestamp", ts, "--signature", sig), 1, "signature");
    expect_fail(CTL_IN(body, "verify", "--secret", secret_b, "--id", "msg_1", "--timestamp", ts, "--signature", sig), 1, "signature");
    expect_fail(CTL_IN(body, "verify", "--secret", secret_a, "--id", "msg_2", "--timestamp", ts, "--signature", sig), 1, "signature");
    expect_fail(CTL_IN(body, "verify", "--secret", secret_a, "--id", "msg_1", "--timestamp", old_ts, "--signature", old_sig), 1, "timestamp");
    r = CTL_IN(body, "verify", "--secret", secret_a, "--id", "msg_1", "--timestamp", old_ts, "--signature", old_sig, "--tolerance", "2h");
    ck_assert_int_eq(r.status, 0);
    result_free(&r);
    expect_fail(CTL_IN(body, "verify", "--secret", "nope", "--id", "msg_1", "--timestamp", ts, "--signature", sig), 1, "secret:");
    expect_fail(CTL_IN(body, "verify", "--secret", secret_a, "--id", "msg_1", "--timestamp", ts), 2, "--signature");
}
END_TEST

/* ---- a change made while an engine process runs ------------------------------------------------ */

/* The engine in a child process: one event every 100 ms, driving in between, until the
 * marker file appears or 15 s pass. Exits 0 when it ran normally. */
static void engine_child(const char *marker)
{
    wh_conf *c = wh_conf_new();
    char spec[600], err[256];
    snprintf(spec, sizeof spec, "sqlite:%s", store);
    if (wh_conf_set(c, "store", spec, err, sizeof err) != WH_OK ||
        wh_conf_set(c, "retry.schedule", "100ms", err, sizeof err) != WH_OK ||
        wh_conf_set(c, "security.allow_cidrs", "127.0.0.1/32", err, sizeof err) != WH_OK)
        _exit(3);
    wh_ctx *ctx = wh_new(c, err, sizeof err);
    if (!ctx)
        _exit(4);
    int64_t end = wall_ms() + 15000, next_emit = 0;
    int rc = 0;
    while (wall_ms() < end && access(marker, F_OK) != 0) {
        if (wall_ms() >= next_emit) {
            next_emit = wall_ms() + 100;
            if (wh_emit(ctx, &(wh_event){.event_type = "workflow_run.started", .run_id = "run_live",
                                        .status = "running"}, NULL) < 0)
                rc = 5;
        }
        wh_poll(ctx, 20);
    }
    wh_destroy(ctx);
    _exit(rc);
}

START_TEST(changes_reach_a_running_engine_process)
{
    rcv *r = rcv_start();
    ck_assert_ptr_nonnull(r);
    char old[WH_ID_MAX], fresh[WH_ID_MAX], marker[600];
    snprintf(marker, sizeof marker, "%s/stop", dir);
    add_endpoint(r, "/old", old, NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        engine_child(marker);

    ck_assert_msg(rcv_wait(r, "/old", 3, 10000), "the engine process sent nothing to /old");
    add_endpoint(r, "/new", fresh, NULL);
    int64_t t_add = wall_ms();
    free(CTL_OK("endpoint", "disable", old));
    int64_t t_disable = wall_ms();

    bool started = rcv_wait(r, "/new", 3, 4000);
    /* quiet at /old from two seconds after the disable */
    int64_t quiet_from = t_disable + 2000;
    while (wall_ms() < quiet_from)
        sleep_ms(20);
    size_t old_count = rcv_count(r, "/old"), new_count = rcv_count(r, "/new");
    sleep_ms(1000);
    size_t old_after = rcv_count(r, "/old"), new_after = rcv_count(r, "/new");

    int fd = open(marker, O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    int st = 0;
    int64_t deadline = wall_ms() + 10000;
    pid_t w;
    while ((w = waitpid(pid, &st, WNOHANG)) == 0 && wall_ms() < deadline)
        sleep_ms(10);
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }

    int64_t first_new = 0, last_old = 0;
    for (size_t i = 0; i < rcv_count(r, NULL); i++) {
        rcv_request q;
        ck_assert_int_eq(rcv_get(r, i, &q), 0);
        if (strcmp(q.path, "/new") == 0 && !first_new)
            first_new = q.received_ms;
        if (strcmp(q.path, "/old") == 0)
            last_old = q.received_ms;
        rcv_request_free(&q);
    }
    ck_assert_msg(w == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "engine process: status %d", st);
    ck_assert_msg(started, "the new endpoint got %zu requests", rcv_count(r, "/new"));
    ck_assert_msg(first_new - t_add <= 2000, "the first request at /new came %lld ms after the add",
                  (long long)(first_new - t_add));
    ck_assert_msg(last_old - t_disable <= 2000, "/old got a request %lld ms after the disable",
                  (long long)(last_old - t_disable));
    ck_assert_uint_eq(old_after, old_count);
    ck_assert_msg(new_after > new_count, "/new stopped getting requests (%zu)", new_after);
    rcv_stop(r);
}
END_TEST


/* ---- per-endpoint settings ------------------------------------------------------------------ */

START_TEST(endpoint_set_unset_and_show_with_header_values_hidden)
{
    char id[WH_ID_MAX];
    add_endpoint(NULL, "/s", id, NULL);
    char *out = CTL_OK("endpoint", "set", id, "rate_limit", "600/m");
    ck_assert_ptr_nonnull(strstr(out, "rate_limit"));
    free(out);
    out = CTL_OK("endpoint", "set", id, "header.Authorization", "Bearer s3cr3t-ctl");
    ck_assert_ptr_nonnull(strstr(out, "header.Authorization"));
    ck_assert_ptr_null(strstr(out, "s3cr3t"));
    free(out);
    free(CTL_OK("endpoint", "set", id, "ordering", "run"));

    out = CTL_OK("endpoint", "show", id);
    ck_assert_msg(strstr(out, "setting:       rate_limit=600/m\n"), "%s", out);
    ck_assert_msg(strstr(out, "setting:       header.Authorization=(hidden)\n"), "%s", out);
    ck_assert_msg(strstr(out, "setting:       ordering=run\n"), "%s", out);
    ck_assert_msg(!strstr(out, "s3cr3t"), "%s", out);
    free(out);
    const char *const json_cmds[][5] = {{"endpoint", "show", id, "--json"},
                                        {"endpoint", "list", "--json", NULL}};
    for (size_t i = 0; i < 2; i++) {
        out = ctl_ok(run_argv(true, NULL, json_cmds[i]));
        ck_assert_msg(!strstr(out, "s3cr3t"), "%s", out);
        cJSON *o = cJSON_Parse(out);
        ck_assert_ptr_nonnull(o);
        cJSON *set = cJSON_GetObjectItemCaseSensitive(o, "settings");
        ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(set, "rate_limit")->valuestring, "600/m");
        ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(set, "header.Authorization")->valuestring,
                         "(hidden)");
        cJSON_Delete(o);
        free(out);
    }
    /* asked for, as the secret is */
    out = CTL_OK("endpoint", "show", id, "--reveal-secret");
    ck_assert_msg(strstr(out, "header.Authorization=Bearer s3cr3t-ctl\n"), "%s", out);
    free(out);
    out = CTL_OK("endpoint", "show", id, "--json", "--reveal-secret");
    ck_assert_msg(strstr(out, "\"header.Authorization\":\"Bearer s3cr3t-ctl\""), "%s", out);
    free(out);

    /* refused, with the key named and never the value */
    expect_fail(CTL("endpoint", "set", id, "header.Content-Type", "s3cr3t-x"), 1,
                "header.Content-Type: is reserved");
    result r = CTL("endpoint", "set", id, "header.X-Token", "s3cr3t-y\r\nX-Evil: 1");
    ck_assert_msg(!strstr(r.err, "s3cr3t") && !strstr(r.out, "s3cr3t"), "%s", r.err);
    expect_fail(r, 1, "header.X-Token: the value contains CR or LF");
    expect_fail(CTL("endpoint", "set", id, "header.webhook-id", "x"), 1, "reserved");
    expect_fail(CTL("endpoint", "set", id, "rate_limit", "fast"), 1, "rate_limit: invalid value");
    expect_fail(CTL("endpoint", "set", id, "retry.schedule", "1s,,2s"), 1, "retry.schedule:");
    expect_fail(CTL("endpoint", "set", id, "colour", "blue"), 1, "unknown endpoint setting");
    expect_fail(CTL("endpoint", "set", "ep_nope", "rate_limit", "1"), 1, "no endpoint \"ep_nope\"");
    expect_fail(CTL("endpoint", "set", id, "rate_limit"), 2, "missing argument");
    expect_fail(CTL("endpoint", "unset", id), 2, "missing argument");

    /* back to the default */
    free(CTL_OK("endpoint", "unset", id, "rate_limit"));
    free(CTL_OK("endpoint", "unset", id, "header.authorization"));
    out = CTL_OK("endpoint", "show", id);
    ck_assert_msg(!strstr(out, "rate_limit") && !strstr(out, "Authorization"), "%s", out);
    ck_assert_msg(strstr(out, "setting:       ordering=run\n"), "%s", out);
    free(out);
}
END_TEST

typedef struct {
    char text[1024];
} settings_text;

static void get_settings_cb(void *ud, const wh_endpoint_info *ep)
{
    settings_text *t = ud;
    t->text[0] = '\0';
    for (const char *const *s = ep->settings; *s; s++) {
        size_t len = strlen(t->text);
        snprintf(t->text + len, sizeof t->text - len, "%s;", *s);
    }
}

/* Drives ctx until endpoint id's settings (as "k=v;k=v;") have `want` in them (has) or not. */
static bool drive_until_setting(wh_ctx *ctx, const char *id, const char *want, bool has)
{
    int64_t deadline = wall_ms() + 5000;
    settings_text t;
    for (;;) {
        ck_assert_int_eq(wh_endpoint_get(ctx, id, get_settings_cb, &t), WH_OK);
        if ((strstr(t.text, want) != NULL) == has || wall_ms() >= deadline)
            return (strstr(t.text, want) != NULL) == has;
        wh_poll(ctx, 20);
    }
}

static void nth_headers(rcv *r, const char *path, size_t nth, char out[4096])
{
    size_t seen = 0;
    rcv_request q;
    out[0] = '\0';
    for (size_t i = 0; rcv_get(r, i, &q) == 0; i++) {
        if (strcmp(q.path, path) == 0 && seen++ == nth)
            snprintf(out, 4096, "%s", q.headers);
        rcv_request_free(&q);
    }
}

START_TEST(settings_from_webhookctl_reach_a_running_engine)
{
    rcv *r = rcv_start();
    char id[WH_ID_MAX], h[4096];
    add_endpoint(r, "/live", id, NULL);
    wh_ctx *ctx = engine("1h", NULL);
    /* one key set by the engine, others by webhookctl while it runs: each keeps the others */
    ck_assert_int_eq(wh_endpoint_set(ctx, id, "header.X-From-Engine", "s3cr3t-e1"), WH_OK);
    free(CTL_OK("endpoint", "set", id, "header.X-From-Ctl", "s3cr3t-c1"));
    free(CTL_OK("endpoint", "set", id, "http.timeout_ms", "200"));
    ck_assert(drive_until_setting(ctx, id, "http.timeout_ms=200;", true));
    ck_assert(drive_until_setting(ctx, id, "header.X-From-Ctl=(hidden);", true));
    ck_assert(drive_until_setting(ctx, id, "header.X-From-Engine=(hidden);", true));

    /* the engine sends what webhookctl set, and times out as it said */
    rcv_script(r, "/live", (rcv_rule[]){{.status = 204, .delay_ms = 1500}}, 1,
               (rcv_rule){.status = 204});
    emit(ctx, NULL);
    ck_assert(drive_until(ctx, r, "/live", 1, 10000));
    nth_headers(r, "/live", 0, h);
    ck_assert_msg(strstr(h, "X-From-Ctl: s3cr3t-c1\n") && strstr(h, "X-From-Engine: s3cr3t-e1\n"), "%s", h);
    result log = CTL("log", "--endpoint", id);
    ck_assert_msg(log.status == 0 && strstr(log.out, "timed out"), "%s", log.out);
    ck_assert_msg(!strstr(log.out, "s3cr3t"), "%s", log.out);
    result_free(&log);

    /* unset by webhookctl: the engine sends it no more */
    free(CTL_OK("endpoint", "unset", id, "header.X-From-Ctl"));
    ck_assert(drive_until_setting(ctx, id, "header.X-From-Ctl", false));
    free(CTL_OK("endpoint", "unset", id, "http.timeout_ms"));
    ck_assert(drive_until_setting(ctx, id, "http.timeout_ms", false));
    emit(ctx, NULL);
    ck_assert(drive_until(ctx, r, "/live", 2, 10000));
    nth_headers(r, "/live", 1, h);
    ck_assert_msg(!strstr(h, "X-From-Ctl") && strstr(h, "X-From-Engine: s3cr3t-e1\n"), "%s", h);
    wh_destroy(ctx);
    rcv_stop(r);
}
END_TEST

/* ---- what only looks at a store never changes it ----------------------------------------- */

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

START_TEST(reads_never_wait_for_writers_nor_create_or_change_anything)
{
    rcv *r = rcv_start();
    char id[WH_ID_MAX];
    add_endpoint(r, "/ro", id, NULL);
    /* another process holds the write lock (an engine's long commit, a tool's change) */
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(store, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "BEGIN IMMEDIATE; UPDATE endpoints SET description = 'x'", NULL, NULL, NULL), SQLITE_OK);
    free(CTL_OK("log"));
    free(CTL_OK("stats"));
    free(CTL_OK("metrics"));
    free(CTL_OK("endpoint", "list"));
    free(CTL_OK("endpoint", "show", id));
    ck_assert_int_eq(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    /* a read of a store that is not there creates none; nor does a failed first command */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none.db", dir);
    const char *reads[][3] = {{"log", NULL}, {"stats", NULL}, {"metrics", NULL}, {"endpoint", "list"}};
    for (size_t i = 0; i < 4; i++) {
        result res = run_argv(false, NULL, (const char *[]){"-s", missing, reads[i][0], reads[i][1], NULL});
        ck_assert_int_eq(res.status, 1);
        result_free(&res);
        ck_assert_msg(!exists(missing), "%s created the store", reads[i][0]);
    }
    result res = run_argv(false, NULL, (const char *[]){"-s", missing, "endpoint", "enable", "ep_x", NULL});
    ck_assert_int_eq(res.status, 1);
    result_free(&res);
    res = run_argv(false, NULL, (const char *[]){"-s", missing, "endpoint", "add", "ftp://nope", NULL});
    ck_assert_int_eq(res.status, 1);
    result_free(&res);
    ck_assert(!exists(missing));
    char wal[700];
    snprintf(wal, sizeof wal, "%s-wal", missing);
    ck_assert(!exists(wal));

    /* read permission only: log, stats, metrics and endpoint list work; changes are refused */
    if (getuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0) {
        ck_assert_int_eq(chmod(dir, 0755), 0);
        ck_assert_int_eq(chmod(store, 0644), 0);
        const char *as_nobody[][11] = {
            {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ctl, "-s", store, "log", NULL},
            {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ctl, "-s", store, "stats", NULL},
            {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ctl, "-s", store, "metrics", NULL},
            {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ctl, "-s", store, "endpoint", "list", NULL},
            {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ctl, "-s", store, "endpoint", "disable", id},
        };
        for (size_t i = 0; i < 5; i++) {
            pid_t pid = fork();
            ck_assert_int_ge(pid, 0);
            if (pid == 0) {
                int devnull = open("/dev/null", O_WRONLY);
                dup2(devnull, 1);
                dup2(devnull, 2);
                execv(as_nobody[i][0], (char *const *)as_nobody[i]);
                _exit(127);
            }
            int st;
            ck_assert_int_eq(waitpid(pid, &st, 0), pid);
            ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == (i < 4 ? 0 : 1),
                          "as nobody, %s: status %d", as_nobody[i][7], st);
        }
        ck_assert_int_eq(chmod(dir, 0700), 0);
    }
    rcv_stop(r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("webhookctl");
    TCase *tc = tcase_create("webhookctl");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, endpoint_add_validates_like_the_library);
    tcase_add_test(tc, store_from_flag_or_environment);
    tcase_add_test(tc, list_and_show_never_print_secrets_unless_asked);
    tcase_add_test(tc, enable_disable_rm);
    tcase_add_test(tc, rotate_secret_keeps_the_old_one_signing_for_the_grace);
    tcase_add_test(tc, rotations_from_engine_and_webhookctl_keep_every_old_secret);
    tcase_add_test(tc, every_old_secret_is_stored_and_signs_after_a_restart);
    tcase_add_test(tc, log_table_json_filters_and_stats);
    tcase_add_test(tc, redeliver_reaches_a_running_engine);
    tcase_add_test(tc, recover_requeues_failed_and_skipped);
    tcase_add_test(tc, verify_checks_a_signature_by_hand);
    tcase_add_test(tc, changes_reach_a_running_engine_process);
    tcase_add_test(tc, endpoint_set_unset_and_show_with_header_values_hidden);
    tcase_add_test(tc, settings_from_webhookctl_reach_a_running_engine);
    tcase_add_test(tc, reads_never_wait_for_writers_nor_create_or_change_anything);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }

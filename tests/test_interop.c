/* Interoperability with an independent Standard Webhooks implementation: the
 * `standardwebhooks` npm package, driven through tests/interop/interop.js.
 * libwebhook signs and node verifies; node signs and libwebhook verifies.
 *
 * Needs node on PATH and `npm ci` done in tests/interop (`make deps` does both). When either
 * is missing the tests fail, saying so: they never skip. WH_TEST_ROOT is the repository root
 * (the Makefile sets it); "." when unset. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "internal.h"
#include "support.h"

#define OUT_MAX 4096

typedef struct node_result {
    int status; /* the exit code; 128 + n when killed by signal n; -1 when it could not start */
    char out[OUT_MAX], err[OUT_MAX];
} node_result;

static const char *root_dir(void)
{
    const char *r = getenv("WH_TEST_ROOT");
    return r && *r ? r : ".";
}

static void script_path(char *buf, size_t len)
{
    snprintf(buf, len, "%s/tests/interop/interop.js", root_dir());
}

/* Appends what fd has to say to buf (keeping at most cap - 1 bytes); false at EOF. */
static bool drain(int fd, char *buf, size_t *used, size_t cap)
{
    char tmp[1024];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n < 0 && errno == EINTR)
        return true;
    if (n <= 0)
        return false;
    size_t take = (size_t)n;
    if (take > cap - 1 - *used)
        take = cap - 1 - *used;
    memcpy(buf + *used, tmp, take);
    *used += take;
    buf[*used] = '\0';
    return true;
}

/* Runs node with argv (argv[0] is ignored and replaced by "node"), without a shell, and
 * collects its stdout and stderr. */
static void run_node(const char *const *argv, node_result *res)
{
    memset(res, 0, sizeof *res);
    res->status = -1;
    int po[2], pe[2];
    ck_assert_int_eq(pipe(po), 0);
    ck_assert_int_eq(pipe(pe), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(po[1], STDOUT_FILENO);
        dup2(pe[1], STDERR_FILENO);
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            close(devnull);
        }
        size_t n = 0;
        while (argv[n])
            n++;
        char **av = calloc(n + 1, sizeof *av);
        if (!av)
            _exit(126);
        av[0] = (char *)"node";
        for (size_t i = 1; i < n; i++)
            av[i] = (char *)argv[i];
        execvp("node", av);
        fprintf(stderr, "cannot run node: %s\n", strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    size_t no = 0, ne = 0;
    bool open_o = true, open_e = true;
    while (open_o || open_e) {
        struct pollfd fds[2] = {{.fd = open_o ? po[0] : -1, .events = POLLIN},
                                {.fd = open_e ? pe[0] : -1, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (open_o && fds[0].revents)
            open_o = drain(po[0], res->out, &no, sizeof res->out);
        if (open_e && fds[1].revents)
            open_e = drain(pe[0], res->err, &ne, sizeof res->err);
    }
    close(po[0]);
    close(pe[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st))
        res->status = WEXITSTATUS(st);
    else if (WIFSIGNALED(st))
        res->status = 128 + WTERMSIG(st);
}

/* Fails the test, with a message that says what to do, unless node and the package are there. */
static void require_node(void)
{
    char script[4096], pkg[4096];
    script_path(script, sizeof script);
    ck_assert_msg(access(script, R_OK) == 0,
                  "interop: %s not found (set WH_TEST_ROOT to the repository root)", script);
    snprintf(pkg, sizeof pkg, "%s/tests/interop/node_modules/standardwebhooks/package.json",
             root_dir());
    ck_assert_msg(access(pkg, R_OK) == 0,
                  "interop: the standardwebhooks npm package is not installed (%s missing): "
                  "run `make deps`, or `npm ci` in tests/interop",
                  pkg);
    node_result r;
    const char *argv[] = {"node", "--version", NULL};
    run_node(argv, &r);
    ck_assert_msg(r.status == 0,
                  "interop: node is not runnable (exit %d: %s): install Node.js (`make deps`)",
                  r.status, r.err);
}

/* A temporary file holding body; path into buf. */
static void write_body(const void *body, size_t len, char *path, size_t path_len)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(path, path_len, "%s/wh-interop-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    ck_assert_msg(fd >= 0, "mkstemp %s: %s", path, strerror(errno));
    const char *p = body;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        ck_assert_msg(n > 0, "write %s: %s", path, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    ck_assert_int_eq(close(fd), 0);
}

/* node verify: the exit status (0 accepted, 1 rejected); r gets the output. */
static int node_verify(const char *secret, const char *id, const char *ts, const char *sig,
                       const void *body, size_t len, node_result *r)
{
    char script[4096], path[4096];
    script_path(script, sizeof script);
    write_body(body, len, path, sizeof path);
    const char *argv[] = {"node", script, "verify", secret, id, ts, sig, path, NULL};
    run_node(argv, r);
    unlink(path);
    ck_assert_msg(r->status == 0 || r->status == 1, "node verify failed to run (exit %d): %s",
                  r->status, r->err);
    return r->status;
}

/* node sign: the signature into sig. */
static void node_sign(const char *secret, const char *id, int64_t ts, const void *body,
                      size_t len, char *sig, size_t sig_len)
{
    char script[4096], path[4096], tsbuf[32];
    script_path(script, sizeof script);
    snprintf(tsbuf, sizeof tsbuf, "%lld", (long long)ts);
    write_body(body, len, path, sizeof path);
    node_result r;
    const char *argv[] = {"node", script, "sign", secret, id, tsbuf, path, NULL};
    run_node(argv, &r);
    unlink(path);
    ck_assert_msg(r.status == 0, "node sign failed (exit %d): %s", r.status, r.err);
    size_t n = strcspn(r.out, "\r\n");
    ck_assert_msg(n > 0 && n < sig_len, "node sign printed \"%s\"", r.out);
    memcpy(sig, r.out, n);
    sig[n] = '\0';
}

/* "whsec_" + base64 of n random bytes. */
static void random_secret(size_t n, char *out, size_t out_len)
{
    unsigned char raw[64];
    ck_assert_uint_le(n, sizeof raw);
    ck_assert_uint_ge(out_len, 6 + (n + 2) / 3 * 4 + 1);
    ck_assert_int_eq(RAND_bytes(raw, (int)n), 1);
    memcpy(out, "whsec_", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, raw, (int)n);
}

/* ---- the messages ------------------------------------------------------- */

typedef struct message {
    const char *id;
    const char *body;
    size_t len; /* 0: strlen(body) */
} message;

static const message MESSAGES[] = {
    {"msg_2lOtXBs7sQ3zAvbpA4ZPP9mLhaW", "{\"type\":\"task_run.completed\",\"data\":{}}", 0},
    /* quotes, backslashes, escapes and a newline */
    {"msg_quotes", "{\"say\":\"\\\"hi\\\" it's \\\\ fine\",\n \"s\":\"a'b\\\"c\"}\n", 0},
    /* non-ASCII UTF-8: Latin, CJK, an emoji (4 bytes), RTL text, a combining mark */
    {"msg_utf8", "{\"name\":\"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
                 "\xf0\x9f\x98\x80 \xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d e\xcc\x81\"}",
     0},
    /* an empty body */
    {"msg_empty", "", 0},
    /* not JSON at all, with shell metacharacters */
    {"msg_shell", "$(touch /tmp/nope) `id` ; | & > < * ? ! ~ %s %n", 0},
    /* an id with dots and dashes */
    {"evt_1.2-3_abc", "[1,2,3]", 0},
};
#define N_MESSAGES (sizeof MESSAGES / sizeof MESSAGES[0])

static size_t msg_len(const message *m)
{
    return m->len ? m->len : strlen(m->body);
}

/* Three secrets: a published one, a generated one (32 bytes), and a 64-byte one. */
static void secrets(char s[3][128])
{
    snprintf(s[0], 128, "%s", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    ck_assert_int_eq(wh__secret_generate(s[1], 128), WH_OK);
    random_secret(64, s[2], 128);
}

/* A body of n bytes of varied UTF-8 JSON. */
static char *big_body(size_t n)
{
    static const char chunk[] = "{\"k\":\"\xc3\xa9\\\"\xe2\x82\xac\"},";
    char *b = malloc(n + 1);
    ck_assert_ptr_nonnull(b);
    size_t used = 0;
    b[used++] = '[';
    while (used + sizeof chunk + 2 < n) {
        memcpy(b + used, chunk, sizeof chunk - 1);
        used += sizeof chunk - 1;
    }
    b[used++] = '1';
    b[used++] = ']';
    b[used] = '\0';
    return b;
}

/* ---- tests ---------------------------------------------------------------- */

START_TEST(test_node_reproduces_vectors)
{
    require_node();
    /* The harness itself: node gives the published vectors. */
    char sig[WH_SIGNATURE_MAX];
    node_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
              1614265330, "{\"test\": 2432232314}", 20, sig, sizeof sig);
    ck_assert_str_eq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    const char *b2 = "{\"email\":\"test@example.com\",\"username\":\"test_user\"}";
    node_sign("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
              1649367553, b2, strlen(b2), sig, sizeof sig);
    ck_assert_str_eq(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
}
END_TEST

START_TEST(test_c_signs_node_verifies)
{
    require_node();
    char sec[3][128];
    secrets(sec);
    for (size_t s = 0; s < 3; s++) {
        for (size_t i = 0; i < N_MESSAGES; i++) {
            const message *m = &MESSAGES[i];
            int64_t now = (int64_t)time(NULL);
            char sig[WH_SIGNATURE_MAX], ts[32];
            snprintf(ts, sizeof ts, "%lld", (long long)now);
            ck_assert_int_eq(wh_sign(sec[s], m->id, now, m->body, msg_len(m), sig, sizeof sig),
                             WH_OK);
            node_result r;
            ck_assert_msg(node_verify(sec[s], m->id, ts, sig, m->body, msg_len(m), &r) == 0,
                          "node rejected libwebhook's signature for %s with secret %zu: %s",
                          m->id, s, r.err);
        }
    }
    /* a large body */
    char *b = big_body(200000);
    int64_t now = (int64_t)time(NULL);
    char sig[WH_SIGNATURE_MAX], ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)now);
    ck_assert_int_eq(wh_sign(sec[1], "msg_big", now, b, strlen(b), sig, sizeof sig), WH_OK);
    node_result r;
    ck_assert_msg(node_verify(sec[1], "msg_big", ts, sig, b, strlen(b), &r) == 0,
                  "node rejected the large body: %s", r.err);
    free(b);
}
END_TEST

START_TEST(test_node_rejects_tampered)
{
    require_node();
    char sec[3][128];
    secrets(sec);
    const message *m = &MESSAGES[2]; /* the UTF-8 one */
    size_t len = msg_len(m);
    int64_t now = (int64_t)time(NULL);
    char sig[WH_SIGNATURE_MAX], ts[32], ts_other[32];
    snprintf(ts, sizeof ts, "%lld", (long long)now);
    snprintf(ts_other, sizeof ts_other, "%lld", (long long)now - 1);
    ck_assert_int_eq(wh_sign(sec[1], m->id, now, m->body, len, sig, sizeof sig), WH_OK);
    node_result r;
    /* untouched, it is accepted: the rejections below are about the tampering */
    ck_assert_int_eq(node_verify(sec[1], m->id, ts, sig, m->body, len, &r), 0);

    char *body = malloc(len + 1);
    ck_assert_ptr_nonnull(body);
    memcpy(body, m->body, len + 1);
    body[len / 2] ^= 0x01;
    ck_assert_int_eq(node_verify(sec[1], m->id, ts, sig, body, len, &r), 1);
    ck_assert_ptr_nonnull(strstr(r.err, "No matching signature"));
    free(body);
    ck_assert_int_eq(node_verify(sec[1], m->id, ts, sig, m->body, len - 1, &r), 1);
    ck_assert_int_eq(node_verify(sec[1], "msg_other", ts, sig, m->body, len, &r), 1);
    ck_assert_int_eq(node_verify(sec[1], m->id, ts_other, sig, m->body, len, &r), 1);
    ck_assert_int_eq(node_verify(sec[2], m->id, ts, sig, m->body, len, &r), 1);
    ck_assert_ptr_nonnull(strstr(r.err, "No matching signature"));

    /* signed correctly, but 400 s ago: node refuses the timestamp */
    snprintf(ts_other, sizeof ts_other, "%lld", (long long)now - 400);
    ck_assert_int_eq(wh_sign(sec[1], m->id, now - 400, m->body, len, sig, sizeof sig), WH_OK);
    ck_assert_int_eq(node_verify(sec[1], m->id, ts_other, sig, m->body, len, &r), 1);
    ck_assert_ptr_nonnull(strstr(r.err, "too old"));
}
END_TEST

START_TEST(test_node_signs_c_verifies)
{
    require_node();
    char sec[3][128];
    secrets(sec);
    for (size_t s = 0; s < 3; s++) {
        for (size_t i = 0; i < N_MESSAGES; i++) {
            const message *m = &MESSAGES[i];
            size_t len = msg_len(m);
            int64_t now = (int64_t)time(NULL);
            char sig[WH_SIGNATURE_MAX], ours[WH_SIGNATURE_MAX], ts[32];
            snprintf(ts, sizeof ts, "%lld", (long long)now);
            node_sign(sec[s], m->id, now, m->body, len, sig, sizeof sig);
            int rc = wh_verify(sec[s], m->id, ts, sig, m->body, len, 0, 0);
            ck_assert_msg(rc == WH_OK, "wh_verify rejected node's signature for %s (%s): %s",
                          m->id, sig, wh_last_error());
            /* and the two implementations agree byte for byte */
            ck_assert_int_eq(wh_sign(sec[s], m->id, now, m->body, len, ours, sizeof ours),
                             WH_OK);
            ck_assert_str_eq(ours, sig);
        }
    }
    char *b = big_body(200000);
    int64_t now = (int64_t)time(NULL);
    char sig[WH_SIGNATURE_MAX], ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)now);
    node_sign(sec[2], "msg_big", now, b, strlen(b), sig, sizeof sig);
    ck_assert_int_eq(wh_verify(sec[2], "msg_big", ts, sig, b, strlen(b), 0, 0), WH_OK);
    free(b);
}
END_TEST

START_TEST(test_c_rejects_tampered_node_signature)
{
    require_node();
    char sec[3][128];
    secrets(sec);
    const message *m = &MESSAGES[1]; /* quotes */
    size_t len = msg_len(m);
    int64_t now = (int64_t)time(NULL);
    char sig[WH_SIGNATURE_MAX], ts[32], ts_other[32];
    snprintf(ts, sizeof ts, "%lld", (long long)now);
    snprintf(ts_other, sizeof ts_other, "%lld", (long long)now + 1);
    node_sign(sec[0], m->id, now, m->body, len, sig, sizeof sig);
    ck_assert_int_eq(wh_verify(sec[0], m->id, ts, sig, m->body, len, 0, 0), WH_OK);

    char *body = strdup(m->body);
    ck_assert_ptr_nonnull(body);
    body[3] ^= 0x20;
    ck_assert_int_eq(wh_verify(sec[0], m->id, ts, sig, body, len, 0, 0), WH_ERR_SIGNATURE);
    free(body);
    ck_assert_int_eq(wh_verify(sec[0], m->id, ts, sig, m->body, len - 1, 0, 0),
                     WH_ERR_SIGNATURE);
    ck_assert_int_eq(wh_verify(sec[0], "msg_other", ts, sig, m->body, len, 0, 0),
                     WH_ERR_SIGNATURE);
    ck_assert_int_eq(wh_verify(sec[0], m->id, ts_other, sig, m->body, len, 0, 0),
                     WH_ERR_SIGNATURE);
    ck_assert_int_eq(wh_verify(sec[1], m->id, ts, sig, m->body, len, 0, 0), WH_ERR_SIGNATURE);

    /* node's signature among decoys is still found */
    char header[2 * WH_SIGNATURE_MAX + 32];
    snprintf(header, sizeof header, "v1,AAAA v2,%s %s v1a,x", sig + 3, sig);
    ck_assert_int_eq(wh_verify(sec[0], m->id, ts, header, m->body, len, 0, 0), WH_OK);

    /* node signs with a timestamp 400 s old: the signature is right, the time is not */
    snprintf(ts_other, sizeof ts_other, "%lld", (long long)now - 400);
    node_sign(sec[0], m->id, now - 400, m->body, len, sig, sizeof sig);
    ck_assert_int_eq(wh_verify(sec[0], m->id, ts_other, sig, m->body, len, 0, 0),
                     WH_ERR_TIMESTAMP);
    ck_assert_int_eq(wh_verify(sec[0], m->id, ts_other, sig, m->body, len, now - 400, 0),
                     WH_OK);
}
END_TEST

static Suite *interop_suite(void)
{
    Suite *s = suite_create("interop");
    TCase *t = tcase_create("standardwebhooks-npm");
    tcase_set_timeout(t, 120); /* each case starts node a few dozen times */
    tcase_add_test(t, test_node_reproduces_vectors);
    tcase_add_test(t, test_c_signs_node_verifies);
    tcase_add_test(t, test_node_rejects_tampered);
    tcase_add_test(t, test_node_signs_c_verifies);
    tcase_add_test(t, test_c_rejects_tampered_node_signature);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    return support_run_suite(interop_suite());
}

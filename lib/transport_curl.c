/* The default transport: libcurl multi driven by curl_multi_socket_action on
 * an epoll set of its own; that epoll fd is what the context polls. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "conf.h"
#include "error.h"
#include "netguard.h"
#include "transport.h"
#include "util.h"

typedef struct curl_transport curl_transport;

typedef struct xfer {
    CURL *easy;
    curl_transport *owner;
    void *token;
    struct curl_slist *headers;
    char *resp;
    size_t resp_len, resp_max;
    char retry_after[128];
    size_t body_len;    /* of the request */
    bool answered;      /* a final 2xx header block has ended (counted in owner->answered) */
    int64_t start_us;
    char errbuf[CURL_ERROR_SIZE];
    char blocked[160]; /* why the guard refused an address, "" when it refused none */
    int reached;       /* the guard allowed at least one address of this attempt */
    const wh__netguard *guard;
    struct xfer *next_free;
    struct xfer *prev_active, *next_active;
} xfer;

/* What the epoll set holds for one descriptor. */
typedef struct {
    uint32_t events; /* registered with these, when in_epoll */
    bool in_epoll;
    bool ours;   /* a connection socket this transport opened and has not yet closed */
    bool parked; /* ours, idle in libcurl's pool: left in the set (see on_socket) */
} fd_state;

struct curl_transport {
    CURLM *multi;
    int epfd;
    fd_state *fds; /* indexed by descriptor */
    size_t n_fds;
    int64_t timer_deadline_us; /* -1: no curl timer */
    char *ca_file;
    wh__netguard *guard;
    xfer *free_list; /* finished transfers kept with their easy handle for reuse */
    xfer *active;    /* on the wire */
    size_t running;
    size_t answered; /* active transfers with x->answered */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;
static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* The state of descriptor s, the table grown to hold it; NULL when out of memory. */
static fd_state *fd_at(curl_transport *t, curl_socket_t s)
{
    if (s < 0)
        return NULL;
    if ((size_t)s >= t->n_fds) {
        size_t n = t->n_fds ? t->n_fds : 64;
        while (n <= (size_t)s)
            n *= 2;
        fd_state *v = realloc(t->fds, n * sizeof *v);
        if (!v)
            return NULL;
        memset(v + t->n_fds, 0, (n - t->n_fds) * sizeof *v);
        t->fds = v, t->n_fds = n;
    }
    return &t->fds[s];
}

static void fd_unregister(curl_transport *t, curl_socket_t s, fd_state *f)
{
    if (f->in_epoll)
        epoll_ctl(t->epfd, EPOLL_CTL_DEL, s, NULL);
    f->in_epoll = f->parked = false;
}

/* A kept-alive connection goes back to libcurl's pool after each transfer (CURL_POLL_REMOVE)
 * and out of it for the next (the same interest again): two epoll_ctl calls per delivery.
 * The sockets this transport opened and closes itself (on_open_socket, on_close_socket) stay
 * in the set while pooled instead, "parked"; tr_perform drops one if it ever reports
 * something (the server closed it), and on_close_socket before the descriptor goes away.
 * Other descriptors libcurl watches (a resolver's) are added and removed as it says. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy, (void)socketp;
    curl_transport *t = userp;
    fd_state none = {0}, *f = fd_at(t, s);
    if (!f)
        f = &none; /* no table: as if unknown, so every change is made */
    if (what == CURL_POLL_REMOVE) {
        if (f->ours && f->in_epoll)
            f->parked = true;
        else
            fd_unregister(t, s, f);
        return 0;
    }
    struct epoll_event ev = {.data.fd = s};
    if (what & CURL_POLL_IN)
        ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        ev.events |= EPOLLOUT;
    f->parked = false;
    if (f->ours && f->in_epoll && f->events == ev.events)
        return 0;
    int rc = epoll_ctl(t->epfd, f->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev);
    if (rc != 0 && errno == EEXIST)
        rc = epoll_ctl(t->epfd, EPOLL_CTL_MOD, s, &ev);
    else if (rc != 0 && errno == ENOENT)
        rc = epoll_ctl(t->epfd, EPOLL_CTL_ADD, s, &ev);
    f->in_epoll = rc == 0;
    f->events = ev.events;
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    curl_transport *t = userp;
    t->timer_deadline_us = timeout_ms < 0 ? -1 : wh__mono_us() + (int64_t)timeout_ms * 1000;
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    size_t room = x->resp_max - x->resp_len;
    size_t keep = n < room ? n : room;
    if (keep) {
        if (!x->resp) {
            x->resp = malloc(x->resp_max + 1);
            if (!x->resp)
                return n; /* the log loses the body, the delivery goes on */
        }
        memcpy(x->resp + x->resp_len, data, keep);
        x->resp_len += keep;
    }
    return n; /* the rest is read and dropped, never buffered */
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if ((n == 2 && data[0] == '\r') || (n == 1 && data[0] == '\n')) {
        long status = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300 && !x->answered) {
            x->answered = true;
            x->owner->answered++;
        }
        return n;
    }
    if (n > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        size_t vlen = n - (sizeof name - 1);
        if (vlen >= sizeof x->retry_after)
            vlen = sizeof x->retry_after - 1;
        memcpy(x->retry_after, data + sizeof name - 1, vlen);
        x->retry_after[vlen] = '\0';
        for (char *e = x->retry_after + vlen; e > x->retry_after && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '); e--)
            e[-1] = '\0';
    }
    return n;
}

/* Called with the address curl is about to connect to, after DNS: the guard's last word. */
static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *addr)
{
    xfer *x = ud;
    (void)purpose;
    char why[sizeof x->blocked];
    if (!wh__netguard_allows(x->guard, &addr->addr, why, sizeof why)) {
        memcpy(x->blocked, why, sizeof why);
        return CURL_SOCKET_BAD;
    }
    /* once an address was allowed, a failure is the network's whatever the order curl
     * tried the name's addresses in: only an attempt refused on every address is blocked */
    x->reached = 1;
    curl_socket_t s = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    fd_state *f = fd_at(x->owner, s);
    if (f) /* a new socket: whatever had this number before is gone from the set */
        *f = (fd_state){.ours = true};
    return s;
}

static int on_close_socket(void *ud, curl_socket_t s)
{
    curl_transport *t = ud;
    fd_state *f = fd_at(t, s);
    if (f) {
        fd_unregister(t, s, f);
        f->ours = false;
    }
    return close(s);
}

/* Options that are the same for every request this handle will make. */
static void set_fixed_options(curl_transport *t, xfer *x)
{
    CURL *e = x->easy;
    x->owner = t;
    x->guard = t->guard;
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* no proxy from the environment: the address guard must see the endpoint itself */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (t->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
    /* libcurl allocates its receive buffer when a transfer starts and frees it when it ends.
     * At the default 16 kB that chunk is too big for malloc's per-thread cache: freed next
     * to the top of the heap it made glibc give memory back (brk, with a TLB flush) and
     * take it again a few transfers later, a tenth of the CPU of a delivery. At 1 kB it
     * stays cached; answers are small, and what goes past log.response_max is dropped. */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 1024L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, t);
}

static int tr_submit(void *ud, const wh_request *req, void *token)
{
    curl_transport *t = ud;
    xfer *x = t->free_list;
    if (x) {
        /* a finished transfer's handle keeps its fixed options: only the request's change */
        t->free_list = x->next_free;
    } else {
        x = calloc(1, sizeof *x);
        if (!x || !(x->easy = curl_easy_init())) {
            free(x);
            return WH_ERR_NOMEM;
        }
        set_fixed_options(t, x);
    }
    x->token = token;
    x->resp_len = 0;
    x->resp_max = req->response_max;
    x->retry_after[0] = '\0';
    x->body_len = req->body_len;
    x->answered = false;
    x->errbuf[0] = '\0';
    x->blocked[0] = '\0';
    x->reached = 0;
    x->headers = NULL;
    for (const char *const *h = req->headers; h && *h; h++) {
        struct curl_slist *n = curl_slist_append(x->headers, *h);
        if (!n)
            goto fail;
        x->headers = n;
    }
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
    x->start_us = wh__mono_us();
    if (curl_multi_add_handle(t->multi, e) != CURLM_OK)
        goto fail;
    t->running++;
    x->prev_active = NULL;
    x->next_active = t->active;
    if (t->active)
        t->active->prev_active = x;
    t->active = x;
    return WH_OK;
fail:
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    x->next_free = t->free_list;
    t->free_list = x;
    return WH_ERR_TRANSPORT;
}

/* RFC 9113 section 8.1: an HTTP/2 server may send its complete response before it has read
 * the whole request, and then reset the stream with NO_ERROR; the client must not discard
 * that response. nginx's `return 204` does this, and libcurl 7.88 then reports the request
 * as failed: CURLE_HTTP2_STREAM when the reset cuts the upload short (later versions say
 * CURLE_SEND_ERROR), CURLE_PARTIAL_FILE when a GOAWAY follows; a transfer whose upload
 * ended just after the answer can wait for its timeout, and now and then the answer never
 * reaches the header callback at all. libcurl names the reset's code only in its message,
 * so the response decides: a 2xx whose header block ended and whose body arrived in full,
 * as its content-length says (0 for a 204), is the receiver's answer. A reset with an error
 * code before the answer leaves no 2xx, one in the middle of the body leaves fewer bytes
 * than announced: both stay failures, and so does a body of unknown length, which cannot
 * be told complete. */
static bool complete_2xx_over_http2(const xfer *x)
{
    long version = 0;
    curl_off_t announced = -1, received = -1;
    curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &version);
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
    curl_easy_getinfo(x->easy, CURLINFO_SIZE_DOWNLOAD_T, &received);
    return x->answered && version == CURL_HTTP_VERSION_2_0 && announced >= 0 &&
           received == announced;
}

/* The status to record when libcurl failed a transfer whose answer had come in full; 0 when
 * the failure stands. */
static long answer_before_failure(const xfer *x, CURLcode rc, long status)
{
    if (rc != CURLE_HTTP2_STREAM && rc != CURLE_HTTP2 && rc != CURLE_SEND_ERROR &&
        rc != CURLE_PARTIAL_FILE)
        return 0;
    if (status)
        return complete_2xx_over_http2(x) ? status : 0;
    /* The answer libcurl kept to itself: its HTTP/2 :status is all that is left of it, and
     * that is the whole answer only for a 204, which has no content. libcurl clears these
     * headers when a transfer starts, so this one is the request's own. */
    struct curl_header *h;
    if (curl_easy_header(x->easy, ":status", 0, CURLH_PSEUDO, -1, &h) == CURLHE_OK &&
        strcmp(h->value, "204") == 0)
        return 204;
    return 0;
}

/* The whole request went out and the whole 2xx answer came back: nothing is left to wait for. */
static bool exchange_complete(const xfer *x)
{
    curl_off_t sent = -1;
    curl_easy_getinfo(x->easy, CURLINFO_SIZE_UPLOAD_T, &sent);
    return sent == (curl_off_t)x->body_len && complete_2xx_over_http2(x);
}

static void finish(curl_transport *t, xfer *x, CURLcode rc, wh_transport_done_fn done, void *done_ud)
{
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    long answer = rc == CURLE_OK ? 0 : answer_before_failure(x, rc, status);
    if (answer) {
        rc = CURLE_OK;
        status = answer;
    }
    if (x->answered) {
        x->answered = false;
        t->answered--;
    }
    wh_response r = {
        .http_status = (int)status,
        .body = x->resp,
        .body_len = x->resp_len,
        .retry_after = x->retry_after[0] ? x->retry_after : NULL,
        .duration_us = wh__mono_us() - x->start_us,
    };
    char error[CURL_ERROR_SIZE + 64];
    if (rc != CURLE_OK && x->blocked[0] && !x->reached) {
        snprintf(error, sizeof error, "%s", x->blocked);
        r.error = error;
        r.blocked = 1;
    } else if (rc != CURLE_OK) {
        snprintf(error, sizeof error, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
        r.error = error;
        /* the exchange did not complete (timeout, reset mid-body, malformed reply): a
         * status line that came before the failure is not an answer */
        r.http_status = 0;
    }
    curl_multi_remove_handle(t->multi, x->easy);
    t->running--;
    if (x->prev_active)
        x->prev_active->next_active = x->next_active;
    else
        t->active = x->next_active;
    if (x->next_active)
        x->next_active->prev_active = x->prev_active;
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    void *token = x->token;
    x->next_free = t->free_list;
    t->free_list = x;
    done(done_ud, token, &r);
}

static int tr_perform(void *ud, wh_transport_done_fn done, void *done_ud)
{
    curl_transport *t = ud;
    struct epoll_event evs[64];
    int still;
    int n = epoll_wait(t->epfd, evs, 64, 0);
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (fd >= 0 && (size_t)fd < t->n_fds && t->fds[fd].parked) {
            /* idle in the pool: libcurl finds out for itself when it takes it again */
            fd_unregister(t, fd, &t->fds[fd]);
            continue;
        }
        int flags = 0;
        if (evs[i].events & (EPOLLIN | EPOLLHUP))
            flags |= CURL_CSELECT_IN;
        if (evs[i].events & EPOLLOUT)
            flags |= CURL_CSELECT_OUT;
        if (evs[i].events & EPOLLERR)
            flags |= CURL_CSELECT_ERR;
        curl_multi_socket_action(t->multi, evs[i].data.fd, flags, &still);
    }
    if (t->timer_deadline_us >= 0 && wh__mono_us() >= t->timer_deadline_us) {
        t->timer_deadline_us = -1;
        curl_multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &still);
    }
    int finished = 0;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(t->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        xfer *x;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        finish(t, x, m->data.result, done, done_ud);
        finished++;
    }
    /* answered transfers that libcurl did not end: see complete_2xx_over_http2 */
    for (xfer *x = t->active, *next; x && t->answered; x = next) {
        next = x->next_active;
        if (x->answered && exchange_complete(x)) {
            finish(t, x, CURLE_OK, done, done_ud);
            finished++;
        }
    }
    return finished;
}

static int tr_fd(void *ud) { return ((curl_transport *)ud)->epfd; }

static int tr_timeout_ms(void *ud)
{
    curl_transport *t = ud;
    if (t->timer_deadline_us < 0)
        return -1;
    int64_t left = (t->timer_deadline_us - wh__mono_us() + 999) / 1000;
    return left < 0 ? 0 : left > 1000000 ? 1000000 : (int)left;
}

static void tr_destroy(void *ud)
{
    curl_transport *t = ud;
    if (!t)
        return;
    /* requests still on the wire are abandoned; their owner reports them */
    while (t->active) {
        xfer *x = t->active;
        t->active = x->next_active;
        curl_multi_remove_handle(t->multi, x->easy);
        curl_easy_cleanup(x->easy);
        curl_slist_free_all(x->headers);
        free(x->resp);
        free(x);
    }
    while (t->free_list) {
        xfer *x = t->free_list;
        t->free_list = x->next_free;
        curl_easy_cleanup(x->easy);
        free(x->resp);
        free(x);
    }
    if (t->multi)
        curl_multi_cleanup(t->multi);
    if (t->epfd >= 0)
        close(t->epfd);
    free(t->fds);
    free(t->ca_file);
    wh__netguard_free(t->guard);
    free(t);
}

int wh__transport_curl_new(const wh_conf *c, wh_transport *out, char *errstr, size_t errlen)
{
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return wh__fail(errstr, errlen, WH_ERR_TRANSPORT, "transport: curl_global_init failed");
    curl_transport *t = calloc(1, sizeof *t);
    if (!t)
        return wh__fail(errstr, errlen, WH_ERR_NOMEM, "transport: out of memory");
    t->timer_deadline_us = -1;
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    t->multi = curl_multi_init();
    if (c->tls_ca_file)
        t->ca_file = wh__strdup(c->tls_ca_file);
    t->guard = wh__netguard_new(c->allow_private, c->allow_cidrs, errstr, errlen);
    if (t->epfd < 0 || !t->multi || (c->tls_ca_file && !t->ca_file) || !t->guard) {
        tr_destroy(t);
        return wh__fail(errstr, errlen, WH_ERR_TRANSPORT, "transport: could not start libcurl");
    }
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
    curl_multi_setopt(t->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)c->max_connections);
    curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)c->max_connections);
    *out = (wh_transport){
        .ud = t,
        .submit = tr_submit,
        .perform = tr_perform,
        .fd = tr_fd,
        .timeout_ms = tr_timeout_ms,
        .destroy = tr_destroy,
    };
    return WH_OK;
}

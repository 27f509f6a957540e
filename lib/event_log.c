/* An engine's log of emits (see event_log.h): the file, its records, and its lock. */
#include "event_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "error.h"
#include "util.h"

/* An append's records all carry MORE but the last, which carries LAST: a reader takes the
 * records of an append only once it has its last one, so that an append cut short by the
 * process's death (a write is cut between pages) gives none of its events, as a commit
 * would not (wh_emit_batch is all or none). */
#define MAGIC_MORE 0x31454857u /* "WHE1" */
#define MAGIC_LAST 0x32454857u /* "WHE2" */
#define HEAD 16                /* magic, payload length, lsn */
#define CHECK 16          /* bytes of SHA-256 kept */
#define MAX_PAYLOAD (64u << 20)
/* The writer's file starts with this much allocated on disk and mapped: an append that fits
 * is copied into the page cache through the mapping, without a system call (a write(2) of a
 * 1 kB record cost several µs here). The blocks are allocated before the file is mapped, and
 * only on file systems that write a block in place (a copy-on-write one needs a new block for
 * each write, and a full disk would fault a store through the mapping, SIGBUS, where write(2)
 * fails with ENOSPC); the file is never cut below them while mapped. Where they cannot be
 * allocated, and for appends beyond them, records are written with pwrite(2). */
#define MAPPED_BYTES ((size_t)4 << 20)

struct wh__event_log {
    int fd;
    pthread_mutex_t mu; /* appends, and emptying the file */
    off_t size;         /* where the next record goes */
    int64_t last_lsn;
    char *path;
    unsigned char *map; /* the writer's first MAPPED_BYTES, or NULL */
    EVP_MD_CTX *md;     /* the appends' SHA-256, under mu */
    EVP_MD *sha256;
    wh__log_mark read_mark; /* what the last read saw */
    unsigned fork_generation; /* wh__fork_generation() at the open */
    bool locked;
    bool broken; /* an append failed and could not be cut off again: no more appends */
};

bool wh__event_log_locked(const wh__event_log *l) { return l->locked; }

/* ext2/3/4, XFS and tmpfs overwrite allocated blocks in place */
static bool in_place(int fd)
{
    struct statfs f;
    if (fstatfs(fd, &f) != 0)
        return false;
    switch ((unsigned long)f.f_type) {
    case 0xEF53UL:     /* ext2, ext3, ext4 */
    case 0x58465342UL: /* XFS */
    case 0x01021994UL: /* tmpfs */
        return true;
    default:
        return false;
    }
}

/* A child made by fork() has none of the mapping (MADV_DONTFORK) and shares the file with
 * its parent: it neither appends nor removes. */
static bool forked(const wh__event_log *l) { return l->fork_generation != wh__fork_generation(); }

int wh__event_log_open(const char *path, bool create, bool must_lock, int64_t next_lsn,
                       wh__event_log **out, char *errstr, size_t errlen)
{
    /* an engine's id is new each time: its log is never there already */
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT | O_EXCL : 0), 0600);
    if (fd < 0)
        return errno == ENOENT && !create
                   ? WH_ERR_NOTFOUND
                   : wh__fail(errstr, errlen, WH_ERR_IO, "store: emit log \"%.200s\": %s", path,
                              strerror(errno));
    bool locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
    if (!locked && (must_lock || errno != EWOULDBLOCK)) {
        int e = errno;
        close(fd);
        return e == EWOULDBLOCK ? WH_ERR_STATE
                                : wh__fail(errstr, errlen, WH_ERR_IO,
                                           "store: emit log \"%.200s\": flock: %s", path, strerror(e));
    }
    struct stat st;
    wh__event_log *l = calloc(1, sizeof *l);
    char *p = l ? strdup(path) : NULL;
    int e = !p ? ENOMEM : fstat(fd, &st) != 0 ? errno : 0;
    if (e) {
        free(p);
        free(l);
        close(fd);
        return wh__fail(errstr, errlen, e == ENOMEM ? WH_ERR_NOMEM : WH_ERR_IO,
                        "store: emit log \"%.200s\": %s", path, strerror(e));
    }
    l->fd = fd;
    l->locked = locked;
    l->size = st.st_size;
    l->last_lsn = next_lsn - 1;
    l->path = p;
    pthread_mutex_init(&l->mu, NULL);
    l->fork_generation = wh__fork_generation();
    if (create && in_place(fd) && posix_fallocate(fd, 0, (off_t)MAPPED_BYTES) == 0) {
        void *m = mmap(NULL, MAPPED_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m != MAP_FAILED) {
            l->map = m;
            /* a child made by fork() does not write into its parent's log */
            madvise(m, MAPPED_BYTES, MADV_DONTFORK);
        }
    }
    *out = l;
    return WH_OK;
}

void wh__event_log_close(wh__event_log *l, bool remove)
{
    if (!l)
        return;
    bool child = forked(l);
    if (remove && l->locked && !child)
        unlink(l->path);
    if (l->map && !child)
        munmap(l->map, MAPPED_BYTES);
    close(l->fd); /* and so the lock */
    EVP_MD_CTX_free(l->md);
    EVP_MD_free(l->sha256);
    if (!child) /* a fork may have copied it held */
        pthread_mutex_destroy(&l->mu);
    free(l->path);
    free(l);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static bool check_of(const unsigned char *rec, size_t len, unsigned char out[CHECK])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(rec, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < CHECK)
        return false;
    memcpy(out, md, CHECK);
    return true;
}

/* The same, with the log's own context: the digest is fetched once, not on every record. */
static bool append_check(wh__event_log *l, const unsigned char *rec, size_t len,
                         unsigned char out[CHECK])
{
    if (!l->sha256 && !(l->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)))
        return false;
    if (!l->md && !(l->md = EVP_MD_CTX_new()))
        return false;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_DigestInit_ex2(l->md, l->sha256, NULL) != 1 || EVP_DigestUpdate(l->md, rec, len) != 1 ||
        EVP_DigestFinal_ex(l->md, md, &mdlen) != 1 || mdlen < CHECK)
        return false;
    memcpy(out, md, CHECK);
    return true;
}

/* payload: created_ms, sendable, then id, type, targets and body, each length-prefixed */
static size_t payload_len(const wh__log_record *r)
{
    return 8 + 4 + 4 * 4 + strlen(r->id) + strlen(r->type) + strlen(r->targets) + r->body_len;
}

static unsigned char *put_text(unsigned char *p, const char *s, size_t len)
{
    put32(p, (uint32_t)len);
    memcpy(p + 4, s, len);
    return p + 4 + len;
}

/* The records, numbered on from the log's last, into `p` (`total` bytes); under l->mu. */
static bool encode(wh__event_log *l, unsigned char *p, wh__log_record *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char *rec = p;
        size_t pl = payload_len(&r[i]);
        r[i].lsn = l->last_lsn + 1 + (int64_t)i;
        put32(p, i + 1 == n ? MAGIC_LAST : MAGIC_MORE);
        put32(p + 4, (uint32_t)pl);
        put64(p + 8, (uint64_t)r[i].lsn);
        p += HEAD;
        put64(p, (uint64_t)r[i].created_ms);
        put32(p + 8, (uint32_t)r[i].sendable);
        p += 12;
        p = put_text(p, r[i].id, strlen(r[i].id));
        p = put_text(p, r[i].type, strlen(r[i].type));
        p = put_text(p, r[i].targets, strlen(r[i].targets));
        p = put_text(p, r[i].body, r[i].body_len);
        if (!append_check(l, rec, (size_t)(p - rec), p))
            return false;
        p += CHECK;
    }
    return true;
}

static int write_all(wh__event_log *l, const unsigned char *buf, size_t total)
{
    size_t done = 0;
    int err = 0;
    while (done < total) {
        ssize_t w = pwrite(l->fd, buf + done, total - done, l->size + (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err = w < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)w;
    }
    /* nothing half written stays in front of the next record; what cannot be cut off could
     * be read as whole records of an emit that failed: no more appends then */
    off_t keep = l->map && l->size < (off_t)MAPPED_BYTES ? (off_t)MAPPED_BYTES : l->size;
    if (err && done && ftruncate(l->fd, keep) != 0)
        l->broken = true;
    return err;
}

int wh__event_log_append(wh__event_log *l, wh__log_record *r, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t pl = payload_len(&r[i]);
        if (pl > MAX_PAYLOAD)
            return WH_ERR_STATE; /* committed to the store instead */
        total += HEAD + pl + CHECK;
    }
    /* checked before the lock: a fork may have copied it held by another thread */
    if (forked(l))
        return WH_ERR_STATE;
    pthread_mutex_lock(&l->mu);
    if (l->broken) {
        pthread_mutex_unlock(&l->mu);
        return WH_ERR_STATE;
    }
    /* a process that dies in the middle of the copy leaves a record cut short, as a write
     * would: its check does not match */
    bool mapped = l->map && (size_t)l->size + total <= MAPPED_BYTES;
    unsigned char *buf = mapped ? l->map + l->size : malloc(total ? total : 1);
    int err = !buf ? ENOMEM : !encode(l, buf, r, n) ? EPROTO : mapped ? 0 : write_all(l, buf, total);
    if (!err) {
        l->size += (off_t)total;
        l->last_lsn += (int64_t)n;
    }
    pthread_mutex_unlock(&l->mu);
    if (!mapped)
        free(buf);
    if (err == ENOMEM)
        return wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
    if (err == EPROTO)
        return wh__fail(NULL, 0, WH_ERR_IO, "store: emit log: SHA-256 failed");
    return err ? wh__fail(NULL, 0, WH_ERR_STORE, "store: emit log \"%.200s\": %s", l->path,
                          strerror(err))
               : WH_OK;
}

static const unsigned char *get_text(const unsigned char *p, const unsigned char *end,
                                     char **dst, const char **out, size_t *len)
{
    if (end - p < 4)
        return NULL;
    uint32_t n = get32(p);
    if ((size_t)(end - p - 4) < n)
        return NULL;
    memcpy(*dst, p + 4, n);
    (*dst)[n] = '\0';
    *out = *dst;
    *dst += n + 1;
    if (len)
        *len = n;
    return p + 4 + n;
}

/* A payload's fields, copied into `text` (len + 4 bytes: a NUL after each). */
static bool parse(const unsigned char *p, size_t len, char *text, wh__log_record *r)
{
    const unsigned char *end = p + len, *q = p + 12;
    if (len < 12)
        return false;
    r->created_ms = (int64_t)get64(p);
    r->sendable = (int)get32(p + 8);
    return (q = get_text(q, end, &text, &r->id, NULL)) &&
           (q = get_text(q, end, &text, &r->type, NULL)) &&
           (q = get_text(q, end, &text, &r->targets, NULL)) &&
           (q = get_text(q, end, &text, &r->body, &r->body_len)) && q == end;
}

/* A reading's bytes from the start of the file, read as far as the records need: a log
 * allocated ahead (MAPPED_BYTES) is mostly zeros after them. */
typedef struct {
    wh__event_log *l;
    unsigned char *buf;
    size_t got, cap, size;
    int rc;
} reading;

#define READ_CHUNK ((size_t)64 << 10)

/* Whether the first `need` bytes are in r->buf; false past the file's end, or on an error
 * (in r->rc). */
static bool have(reading *r, size_t need)
{
    if (need <= r->got)
        return true;
    if (need > r->size || r->rc != WH_OK)
        return false;
    size_t want = need - r->got < READ_CHUNK ? r->got + READ_CHUNK : need;
    if (want > r->size)
        want = r->size;
    if (want > r->cap) {
        unsigned char *b = realloc(r->buf, want);
        if (!b) {
            r->rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
            return false;
        }
        r->buf = b, r->cap = want;
    }
    while (r->got < want) {
        ssize_t n = pread(r->l->fd, r->buf + r->got, want - r->got, (off_t)r->got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) /* not the end: what follows may hold stored emits' successors */
            r->rc = wh__fail(NULL, 0, WH_ERR_IO, "store: emit log \"%.200s\": %s", r->l->path,
                             strerror(errno));
        if (n <= 0)
            break;
        r->got += (size_t)n;
    }
    return need <= r->got;
}

int wh__event_log_read(wh__event_log *l, int64_t after_lsn,
                       int (*cb)(void *ud, const wh__log_record *r), void *ud)
{
    pthread_mutex_lock(&l->mu);
    reading rd = {.l = l, .size = (size_t)l->size, .rc = WH_OK};
    l->read_mark = (wh__log_mark){0, 0, 0};
    char *text = NULL;
    size_t at = 0, append_at = 0; /* where the append being read began */
    int64_t prev_lsn = 0, first_lsn = 0;
    int rc = WH_OK;
    while (rc == WH_OK && have(&rd, at + HEAD + CHECK)) {
        size_t pl = get32(rd.buf + at + 4);
        if (pl > MAX_PAYLOAD || !have(&rd, at + HEAD + pl + CHECK))
            break;
        const unsigned char *rec = rd.buf + at;
        uint32_t magic = get32(rec);
        int64_t lsn = (int64_t)get64(rec + 8);
        unsigned char check[CHECK];
        /* numbers follow each other from the start of the file: a record left behind by an
         * earlier round (see KEEP_BYTES) has a smaller one, and ends the reading too */
        if ((magic != MAGIC_MORE && magic != MAGIC_LAST) || (at && lsn != prev_lsn + 1) ||
            !check_of(rec, HEAD + pl, check) || memcmp(check, rec + HEAD + pl, CHECK) != 0)
            break; /* the end of what was written whole */
        if (!at)
            first_lsn = lsn;
        prev_lsn = lsn;
        at += HEAD + pl + CHECK;
        if (magic == MAGIC_MORE)
            continue;
        /* the append is whole: its records, in order */
        for (size_t k = append_at; rc == WH_OK && k < at;) {
            const unsigned char *one = rd.buf + k;
            size_t len = get32(one + 4);
            wh__log_record r = {.lsn = (int64_t)get64(one + 8)};
            char *t = realloc(text, len + 4);
            if (!t) {
                rc = wh__fail(NULL, 0, WH_ERR_NOMEM, "store: out of memory");
                break;
            }
            text = t;
            if (!parse(one + HEAD, len, text, &r)) {
                rd.size = at = rd.got; /* checked whole yet not ours: read no further */
                break;
            }
            if (r.lsn > after_lsn)
                rc = cb(ud, &r);
            k += HEAD + len + CHECK;
        }
        append_at = at;
        /* only whole appends count: one being written now is read again when whole */
        l->read_mark = (wh__log_mark){first_lsn, lsn, (int64_t)at};
    }
    pthread_mutex_unlock(&l->mu);
    free(text);
    free(rd.buf);
    return rc != WH_OK ? rc : rd.rc;
}

wh__log_mark wh__event_log_mark(const wh__event_log *l) { return l->read_mark; }

/* The number of the record whose head is at `at`, or 0 when there is none there. */
static int64_t lsn_at(wh__event_log *l, int64_t at)
{
    unsigned char head[HEAD];
    ssize_t r;
    do
        r = pread(l->fd, head, sizeof head, (off_t)at);
    while (r < 0 && errno == EINTR);
    uint32_t magic = r == HEAD ? get32(head) : 0;
    return magic == MAGIC_MORE || magic == MAGIC_LAST ? (int64_t)get64(head + 8) : 0;
}

bool wh__event_log_unchanged(wh__event_log *l, const wh__log_mark *m)
{
    if (lsn_at(l, 0) != m->first_lsn)
        return false;
    int64_t next = lsn_at(l, m->end);
    return !(next && next == m->last_lsn + 1);
}

/* Below this the file is not cut back but written again from its start: a record left
 * behind the new ones has a number already stored, out of sequence with theirs, and ends the
 * reading (as does one the new ones cut in two). */
#define KEEP_BYTES (1 << 20)

bool wh__event_log_clear(wh__event_log *l, int64_t upto_lsn)
{
    if (forked(l))
        return false;
    pthread_mutex_lock(&l->mu);
    bool all = l->last_lsn == upto_lsn && !l->broken;
    /* a file that cannot be cut back is written again from its start all the same; the
     * mapped part stays (a store through the mapping past the file's end would fault) */
    off_t keep = l->map ? (off_t)MAPPED_BYTES : 0;
    int cut = all && l->size > KEEP_BYTES && l->size > keep ? ftruncate(l->fd, keep) : 0;
    (void)cut;
    if (all)
        l->size = 0;
    pthread_mutex_unlock(&l->mu);
    return all;
}

int64_t wh__event_log_last_lsn(wh__event_log *l)
{
    if (forked(l))
        return l->last_lsn; /* the child's one thread: no append runs */
    pthread_mutex_lock(&l->mu);
    int64_t v = l->last_lsn;
    pthread_mutex_unlock(&l->mu);
    return v;
}

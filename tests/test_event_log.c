/* The log of emits (lib/event_log.c) on a real file: what a reader finds after the writer
 * copied records through its mapping, past the mapped part, after a rewind, in a forked
 * child, and after an append that the file system refused half way. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "event_log.h"
#include "scratch.h"
#include "support.h"
#include "webhook/webhook.h"

static char dir[64], path[128];
static char body[1000];

static void setup(void)
{
    scratch_dir_make(dir, sizeof dir, "wh-evlog");
    snprintf(path, sizeof path, "%s/db-emits-eng_1", dir);
    memset(body, 'x', sizeof body);
}

static void teardown(void) { scratch_dir_remove(dir); }

/* Whether the scratch folder's file system is one the writer maps (event_log.c): the
 * tests of the mapping say so and test the write(2) path only where it is not. */
static bool mapped_here(void)
{
    struct statfs f;
    ck_assert_int_eq(statfs(dir, &f), 0);
    unsigned long t = (unsigned long)f.f_type;
    bool yes = t == 0xEF53UL || t == 0x58465342UL || t == 0x01021994UL;
    if (!yes)
        fprintf(stderr, "test_event_log: %s is not on ext4, XFS or tmpfs: no mapping to test\n", dir);
    return yes;
}

static wh__log_record record(const char *id, size_t body_len)
{
    return (wh__log_record){.created_ms = 1, .sendable = 1, .id = id, .type = "task_run.completed",
                            .targets = "ep_1", .body = body, .body_len = body_len};
}

static int append(wh__event_log *l, size_t n, size_t body_len)
{
    wh__log_record r[8];
    ck_assert_uint_le(n, 8);
    for (size_t i = 0; i < n; i++)
        r[i] = record("evt_1", body_len);
    return wh__event_log_append(l, r, n);
}

static int count(void *ud, const wh__log_record *r)
{
    (void)r;
    (*(int *)ud)++;
    return 0;
}

/* What another open of the file (a reader: the writer holds the lock) reads after `after`. */
static int records_read(int64_t after, wh__log_mark *mark)
{
    wh__event_log *r;
    ck_assert_int_eq(wh__event_log_open(path, false, false, 1, &r, NULL, 0), WH_OK);
    ck_assert(!wh__event_log_locked(r));
    int n = 0;
    ck_assert_int_eq(wh__event_log_read(r, after, count, &n), WH_OK);
    if (mark)
        *mark = wh__event_log_mark(r);
    wh__event_log_close(r, false);
    return n;
}

static bool unchanged(const wh__log_mark *m)
{
    wh__event_log *r;
    ck_assert_int_eq(wh__event_log_open(path, false, false, 1, &r, NULL, 0), WH_OK);
    bool same = wh__event_log_unchanged(r, m);
    wh__event_log_close(r, false);
    return same;
}

/* 5,000 records of about 1 kB: the first 4 MiB go through the mapping, the rest with
 * write(2); a reader finds them all, in chunks, and none of the zeros allocated after them. */
START_TEST(records_through_the_mapping_and_past_it_are_all_read)
{
    mapped_here(); /* without one, the same records all go through write(2) */
    wh__event_log *w;
    ck_assert_int_eq(wh__event_log_open(path, true, true, 1, &w, NULL, 0), WH_OK);
    ck_assert_int_eq(records_read(0, NULL), 0);
    for (int i = 0; i < 5000; i++)
        ck_assert_int_eq(append(w, 1, sizeof body), WH_OK);
    ck_assert_int_eq(wh__event_log_last_lsn(w), 5000);
    wh__log_mark m;
    ck_assert_int_eq(records_read(0, &m), 5000);
    ck_assert_int_eq(m.last_lsn, 5000);
    ck_assert_int_eq(records_read(4990, NULL), 10);
    wh__event_log_close(w, true);
    ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

/* The file is written again from its start once all of it is stored: the reader finds only
 * the new records, and a mark taken before says the file changed. */
START_TEST(a_rewound_log_gives_only_its_new_records)
{
    wh__event_log *w;
    ck_assert_int_eq(wh__event_log_open(path, true, true, 1, &w, NULL, 0), WH_OK);
    ck_assert_int_eq(append(w, 3, 100), WH_OK);
    wh__log_mark m;
    ck_assert_int_eq(records_read(0, &m), 3);
    ck_assert(unchanged(&m));
    ck_assert(wh__event_log_clear(w, 3));
    ck_assert_int_eq(append(w, 1, 10), WH_OK); /* shorter: the old ones' bytes follow it */
    ck_assert(!unchanged(&m));
    ck_assert_int_eq(records_read(3, &m), 1);
    ck_assert_int_eq(m.first_lsn, 4);
    ck_assert_int_eq(m.last_lsn, 4);
    ck_assert(unchanged(&m));
    ck_assert_int_eq(append(w, 2, 10), WH_OK);
    ck_assert(!unchanged(&m));
    wh__event_log_close(w, true);
}
END_TEST

/* A reader that came while an append was being copied (its last record not whole yet) takes
 * no mark of it: once the append is whole, and more come, the log is not "unchanged". */
START_TEST(a_mark_taken_during_an_append_does_not_hide_what_follows)
{
    wh__event_log *w;
    ck_assert_int_eq(wh__event_log_open(path, true, true, 1, &w, NULL, 0), WH_OK);
    ck_assert_int_eq(append(w, 1, 10), WH_OK);
    ck_assert(wh__event_log_clear(w, 1)); /* numbers now start past 1 at the file's start */
    ck_assert_int_eq(append(w, 2, 10), WH_OK);
    /* the batch's last byte not written yet: its check does not match */
    wh__log_mark all;
    ck_assert_int_eq(records_read(0, &all), 2);
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    char last;
    off_t at = (off_t)all.end - 1;
    ck_assert_int_eq(pread(fd, &last, 1, at), 1);
    char other = (char)(last ^ 0x5a);
    ck_assert_int_eq(pwrite(fd, &other, 1, at), 1);
    wh__log_mark during;
    ck_assert_int_eq(records_read(0, &during), 0);
    ck_assert_int_eq(pwrite(fd, &last, 1, at), 1);
    close(fd);
    ck_assert(!unchanged(&during)); /* the batch is whole now */
    ck_assert_int_eq(append(w, 3, 10), WH_OK);
    ck_assert(!unchanged(&during));
    ck_assert_int_eq(records_read(0, NULL), 5);
    wh__event_log_close(w, true);
}
END_TEST

/* A child made by fork() without exec has none of the mapping: it neither appends (the emit
 * is committed instead) nor removes its parent's file, and does not crash. */
START_TEST(a_forked_child_neither_appends_nor_removes)
{
    wh__event_log *w;
    ck_assert_int_eq(wh__event_log_open(path, true, true, 1, &w, NULL, 0), WH_OK);
    ck_assert_int_eq(append(w, 1, 100), WH_OK);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int rc = append(w, 1, 100);
        wh__event_log_close(w, true);
        _exit(rc == WH_ERR_STATE ? 0 : 10 + rc);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    ck_assert_int_eq(access(path, F_OK), 0);
    ck_assert_int_eq(append(w, 1, 100), WH_OK);
    ck_assert_int_eq(records_read(0, NULL), 2);
    wh__event_log_close(w, true);
}
END_TEST

/* An append past the mapped part that the file system refuses half way is cut off again,
 * but never below the mapping: the next appends through it still work (a file cut under its
 * mapping faults the process, SIGBUS). Run in a child, with a file size limit. */
START_TEST(an_append_refused_past_the_mapping_leaves_the_mapping_usable)
{
    if (!mapped_here())
        return;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        wh__event_log *w;
        if (wh__event_log_open(path, true, true, 1, &w, NULL, 0) != WH_OK)
            _exit(2);
        /* records up to 6-7 kB short of the mapping's end */
        const size_t one = 16 + 12 + 16 + 5 + 18 + 4 + sizeof body + 16;
        size_t used = 0;
        while (used + one + 6000 <= ((size_t)4 << 20)) {
            if (append(w, 1, sizeof body) != WH_OK)
                _exit(3);
            used += one;
        }
        struct rlimit lim = {(rlim_t)4 << 20, (rlim_t)4 << 20};
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            _exit(4);
        if (append(w, 8, sizeof body) == WH_OK) /* past 4 MiB: refused half way */
            _exit(5);
        /* five more still fit before the mapping's end, and reach a page past where the
         * refused one began: copied through the mapping */
        for (int i = 0; i < 5; i++)
            if (append(w, 1, sizeof body) != WH_OK)
                _exit(6);
        if (!wh__event_log_clear(w, wh__event_log_last_lsn(w)))
            _exit(7);
        for (int i = 0; i < 200; i++) /* 200 kB through the mapping, from its start */
            if (append(w, 1, sizeof body) != WH_OK)
                _exit(8);
        wh__event_log_close(w, true);
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d (signal %d)",
                  status, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("event_log");
    TCase *tc = tcase_create("event_log");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, records_through_the_mapping_and_past_it_are_all_read);
    tcase_add_test(tc, a_rewound_log_gives_only_its_new_records);
    tcase_add_test(tc, a_mark_taken_during_an_append_does_not_hide_what_follows);
    tcase_add_test(tc, a_forked_child_neither_appends_nor_removes);
    tcase_add_test(tc, an_append_refused_past_the_mapping_leaves_the_mapping_usable);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return support_run_suite(suite()); }

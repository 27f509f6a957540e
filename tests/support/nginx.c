#include "nginx.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pki.h"

struct nginx {
    pid_t pid;
    int port;
    char dir[64];
};

static void say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

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

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The last line of the error log, for a person. */
static void last_log_line(const nginx *n, char *out, size_t len)
{
    char path[96], line[512];
    snprintf(path, sizeof path, "%s/error.log", n->dir);
    snprintf(out, len, "(no error log)");
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0])
            snprintf(out, len, "%s", line);
    }
    fclose(f);
}

static int write_conf(const nginx *n, const char *locations)
{
    char path[96];
    snprintf(path, sizeof path, "%s/nginx.conf", n->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    const char *d = n->dir;
    /* master_process off: one process, no workers to outlive it, run as whoever starts it */
    fprintf(f,
            "daemon off;\n"
            "master_process off;\n"
            "pid %s/nginx.pid;\n"
            "error_log %s/error.log warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "    log_format wh '$server_protocol $status $uri';\n"
            "    access_log %s/access.log wh;\n"
            "    client_body_temp_path %s/body;\n"
            "    proxy_temp_path %s/proxy;\n"
            "    fastcgi_temp_path %s/fastcgi;\n"
            "    uwsgi_temp_path %s/uwsgi;\n"
            "    scgi_temp_path %s/scgi;\n"
            "    server {\n"
            "        listen 127.0.0.1:%d ssl http2;\n"
            "        ssl_certificate %s/cert.pem;\n"
            "        ssl_certificate_key %s/key.pem;\n"
            "%s\n"
            "    }\n"
            "}\n",
            d, d, d, d, d, d, d, d, n->port, d, d, locations);
    return fclose(f) == 0 ? 0 : -1;
}

static pid_t spawn(const nginx *n)
{
    char conf[96], errlog[96];
    snprintf(conf, sizeof conf, "%s/nginx.conf", n->dir);
    snprintf(errlog, sizeof errlog, "%s/error.log", n->dir);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* killed with its parent, so that a test that dies leaves no receiver behind */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
    FILE *out = freopen(errlog, "a", stdout);
    if (out)
        dup2(fileno(out), 2);
    execlp("nginx", "nginx", "-p", n->dir, "-c", conf, "-e", errlog, (char *)NULL);
    execl("/usr/sbin/nginx", "nginx", "-p", n->dir, "-c", conf, "-e", errlog, (char *)NULL);
    fprintf(stderr, "nginx not found: make deps installs it (Debian package nginx-light)\n");
    _exit(127);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void nginx_stop(nginx *n)
{
    if (!n)
        return;
    if (n->pid > 0) {
        kill(n->pid, SIGTERM);
        int i = 0;
        while (waitpid(n->pid, NULL, WNOHANG) == 0 && i++ < 500) /* 5 s */
            sleep_ms(10);
        if (i > 500) {
            kill(n->pid, SIGKILL);
            waitpid(n->pid, NULL, 0);
        }
    }
    if (n->dir[0])
        nftw(n->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(n);
}

nginx *nginx_start(const char *cert_pem, const char *key_pem, const char *locations, char *err,
                   size_t errlen)
{
    nginx *n = calloc(1, sizeof *n);
    if (!n) {
        say(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(n->dir, sizeof n->dir, "/tmp/wh-nginx-XXXXXX");
    if (!mkdtemp(n->dir)) {
        say(err, errlen, "mkdtemp: %s", strerror(errno));
        n->dir[0] = '\0';
        nginx_stop(n);
        return NULL;
    }
    char cert[96], key[96];
    snprintf(cert, sizeof cert, "%s/cert.pem", n->dir);
    snprintf(key, sizeof key, "%s/key.pem", n->dir);
    if (pki_write_file(cert, cert_pem) != 0 || pki_write_file(key, key_pem) != 0) {
        say(err, errlen, "cannot write the certificate into %s", n->dir);
        nginx_stop(n);
        return NULL;
    }
    /* the free port may be taken before nginx binds it: then another one */
    for (int attempt = 0; attempt < 5; attempt++) {
        n->port = free_port();
        if (n->port <= 0 || write_conf(n, locations) != 0) {
            say(err, errlen, "cannot prepare %s", n->dir);
            break;
        }
        n->pid = spawn(n);
        if (n->pid < 0) {
            say(err, errlen, "fork: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < 1000; i++) { /* 10 s */
            int status;
            if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
                n->pid = 0;
                break;
            }
            if (port_answers(n->port))
                return n;
            sleep_ms(10);
        }
        char why[512];
        last_log_line(n, why, sizeof why);
        say(err, errlen, "nginx did not start on 127.0.0.1:%d: %s", n->port, why);
        if (n->pid > 0 || !strstr(why, "in use"))
            break;
    }
    nginx_stop(n);
    return NULL;
}

int nginx_port(const nginx *n) { return n->port; }

size_t nginx_log_count(const nginx *n, const char *line)
{
    char path[96], buf[512];
    snprintf(path, sizeof path, "%s/access.log", n->dir);
    FILE *f = fopen(path, "r");
    size_t count = 0;
    while (f && fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        count += strcmp(buf, line) == 0;
    }
    if (f)
        fclose(f);
    return count;
}

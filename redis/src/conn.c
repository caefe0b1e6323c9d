/*
 * conn.c: parsing the url and making one synchronous hiredis connection.
 * See conn.h. Nothing here keeps state between calls.
 */
#include "conn.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copies s[0..n) undoing %XX escapes; NULL with *err set on a bad escape. */
static char *decode(const char *s, size_t n, int *err)
{
    char *d = malloc(n + 1), *o = d;
    if (!d) return *err = ENOMEM, NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
            free(d);
            return *err = EINVAL, NULL;
        }
        *o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
        i += 2;
    }
    *o = '\0';
    return d;
}

/* Parses digits only into [lo, hi]; -1 when s[0..n) is not such a number. */
static long number(const char *s, size_t n, long lo, long hi)
{
    if (n == 0 || n > 10) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v >= lo && v <= hi ? v : -1;
}

static int printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] == 0x7f) return 0;
    return 1;
}

int wp__redis_url_parse(const char *url, struct wp__redis_url *u)
{
    memset(u, 0, sizeof *u);
    if (url == NULL) url = "redis://127.0.0.1:6379";
    int err = EINVAL;
    if (strncmp(url, "unix://", 7) == 0) {
        const char *p = url + 7;
        size_t n = strlen(p);
        /* sun_path holds 108 bytes with the NUL */
        if (n < 2 || p[0] != '/' || n > 107 || !printable(p, n)) return EINVAL;
        if (!(u->path = dup_n(p, n))) return ENOMEM;
        snprintf(u->addr, sizeof u->addr, "unix://%s", p);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) return EINVAL;
    const char *p = url + 8, *at = strrchr(p, '@');
    if (at) { /* [user]:password@ */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon) return EINVAL;
        if (colon > p && !(u->user = decode(p, (size_t)(colon - p), &err))) goto fail;
        if (!(u->pass = decode(colon + 1, (size_t)(at - colon - 1), &err))) goto fail;
        p = at + 1;
    }
    const char *h = p, *he;
    if (*p == '[') { /* [IPv6] */
        he = strchr(p, ']');
        if (!he || he == p + 1) goto bad;
        h = p + 1;
        p = he + 1;
    } else {
        he = p + strcspn(p, ":/");
        p = he;
    }
    if (he == h || !printable(h, (size_t)(he - h)) || memchr(h, '?', (size_t)(he - h))) goto bad;
    u->port = 6379;
    if (*p == ':') {
        size_t n = strcspn(p + 1, "/");
        long port = number(p + 1, n, 1, 65535);
        if (port < 0) goto bad;
        u->port = (int)port;
        p += 1 + n;
    }
    if (*p == '/') {
        size_t n = strlen(p + 1);
        if (n > 0 && (u->db = number(p + 1, n, 0, 2147483647L)) < 0) goto bad;
        p += 1 + n;
    }
    if (*p != '\0') goto bad;
    if (!(u->host = dup_n(h, (size_t)(he - h)))) {
        err = ENOMEM;
        goto fail;
    }
    snprintf(u->addr, sizeof u->addr,
             strchr(u->host, ':') ? "redis://[%s]:%d/%ld" : "redis://%s:%d/%ld", u->host, u->port,
             u->db);
    return 0;
bad:
    err = EINVAL;
fail:
    wp__redis_url_free(u);
    return err;
}

void wp__redis_url_free(struct wp__redis_url *u)
{
    free(u->host);
    free(u->path);
    free(u->user);
    if (u->pass) {
        memset(u->pass, 0, strlen(u->pass)); /* the secret does not linger in freed memory */
        free(u->pass);
    }
    memset(u, 0, sizeof *u);
}

int wp__redis_ctx_errno(const redisContext *c)
{
    int e = errno; /* hiredis leaves the failing call's errno in place */
    switch (c->err) {
    case REDIS_ERR_IO:
        if (e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS || e == ETIMEDOUT) return ETIMEDOUT;
        if (e == ENETUNREACH || e == EHOSTUNREACH || e == EHOSTDOWN || e == ENETDOWN)
            return EHOSTUNREACH;
        if (e == ECONNREFUSED || e == ENOENT) return ECONNREFUSED; /* ENOENT: no unix socket */
        if (e == ENOMEM) return ENOMEM;
        return ECONNRESET;
    case REDIS_ERR_EOF:
        return ECONNRESET;
    case REDIS_ERR_OOM:
        return ENOMEM;
    case REDIS_ERR_PROTOCOL:
        return EPROTO;
    default: /* REDIS_ERR_OTHER: name resolution, a socket call */
        return strstr(c->errstr, "resolve") || strstr(c->errstr, "known") ||
                       strstr(c->errstr, "name")
                   ? EHOSTUNREACH
                   : ECONNREFUSED;
    }
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int wp__redis_reply_errno(const redisReply *r)
{
    const char *s = r->str ? r->str : "";
    if (starts(s, "NOAUTH") || starts(s, "WRONGPASS") || starts(s, "NOPERM") ||
        strstr(s, "invalid password") || strstr(s, "without any password"))
        return EACCES;
    if (starts(s, "LOADING") || starts(s, "BUSY ") || starts(s, "TRYAGAIN") ||
        starts(s, "MASTERDOWN"))
        return EAGAIN; /* the server will answer again soon: retried like a lost connection */
    return EPROTO;
}

int wp__redis_conn_lost(int err)
{
    return err == ECONNREFUSED || err == ECONNRESET || err == ETIMEDOUT || err == EHOSTUNREACH ||
           err == EAGAIN;
}

int wp__redis_cmd(redisContext *c, int argc, const char **argv, const size_t *argvlen,
                  redisReply **out)
{
    *out = NULL;
    if (c->err) return wp__redis_ctx_errno(c);
    void *r = redisCommandArgv(c, argc, argv, argvlen);
    if (r == NULL) return wp__redis_ctx_errno(c);
    *out = r;
    return 0;
}

/* One command whose error reply becomes an errno (AUTH: always EACCES). */
static int simple(redisContext *c, int argc, const char **argv, int auth)
{
    redisReply *r;
    int rc = wp__redis_cmd(c, argc, argv, NULL, &r);
    if (rc == 0 && r->type == REDIS_REPLY_ERROR) rc = auth ? EACCES : wp__redis_reply_errno(r);
    if (r) freeReplyObject(r);
    return rc;
}

int wp__redis_connect(const struct wp__redis_url *u, uint64_t timeout_ns, redisContext **out)
{
    struct timeval tv = {(time_t)(timeout_ns / 1000000000u),
                         (suseconds_t)(timeout_ns % 1000000000u / 1000u)};
    if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1;
    errno = 0;
    redisContext *c = u->path ? redisConnectUnixWithTimeout(u->path, tv)
                              : redisConnectWithTimeout(u->host, u->port, tv);
    if (c == NULL) return ENOMEM;
    int rc = 0;
    if (c->err)
        rc = wp__redis_ctx_errno(c);
    else if (redisSetTimeout(c, tv) != REDIS_OK)
        rc = wp__redis_ctx_errno(c);
    if (rc == 0 && u->pass) {
        const char *argv[3] = {"AUTH", u->user ? u->user : u->pass, u->pass};
        rc = simple(c, u->user ? 3 : 2, argv, 1);
    }
    if (rc == 0 && u->db != 0) {
        char db[24];
        snprintf(db, sizeof db, "%ld", u->db);
        const char *argv[2] = {"SELECT", db};
        rc = simple(c, 2, argv, 0);
    }
    if (rc != 0) {
        redisFree(c);
        return rc;
    }
    *out = c;
    return 0;
}

void wp__sigpipe_block(struct wp__sigpipe *g)
{
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old);
}

void wp__sigpipe_unblock(struct wp__sigpipe *g)
{
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

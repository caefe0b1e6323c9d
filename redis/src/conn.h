/*
 * conn.h: the server's address and one hiredis connection to it (internal
 * to libwpool-redis and its CLI; nothing here is installed).
 *
 * wp__redis_url_parse turns a url into host/port/db/password or a unix path,
 * and a printable address without the password. wp__redis_connect makes a
 * synchronous hiredis context with the timeout on both the connect and every
 * command, then AUTH and SELECT. Errors map to errno values as documented in
 * wpool_redis.h; no function here prints anything.
 */
#ifndef WPOOL_REDIS_CONN_H
#define WPOOL_REDIS_CONN_H

#include <hiredis.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define WP__REDIS_ADDR_MAX 320

struct wp__redis_url {
    char *host;                    /* NULL for a unix socket */
    char *path;                    /* the unix socket's path, or NULL */
    char *user;                    /* ACL user name, or NULL */
    char *pass;                    /* password, or NULL (never printed) */
    int port;                      /* 1..65535 */
    long db;                       /* SELECT index; 0 is not sent */
    char addr[WP__REDIS_ADDR_MAX]; /* "redis://host:port/db" or "unix:///path" */
};

/* Parses url (NULL: redis://127.0.0.1:6379). EINVAL: malformed; ENOMEM.
   On error *u holds nothing to free. */
int wp__redis_url_parse(const char *url, struct wp__redis_url *u);
void wp__redis_url_free(struct wp__redis_url *u);

/* Connects, sets the command timeout, AUTHs and SELECTs. *out is set only on
   success. ECONNREFUSED, EHOSTUNREACH, ETIMEDOUT, ECONNRESET, EACCES,
   EPROTO (SELECT refused), ENOMEM. */
int wp__redis_connect(const struct wp__redis_url *u, uint64_t timeout_ns, redisContext **out);

/* The errno value for a context in error (c->err set), and for an error
   reply (REDIS_REPLY_ERROR): EACCES for NOAUTH / WRONGPASS / invalid
   password, EPROTO for anything else. */
int wp__redis_ctx_errno(const redisContext *c);
int wp__redis_reply_errno(const redisReply *r);

/* Runs one command (argv) and returns its reply in *out (may be an error
   reply: the caller decides). A connection error returns its errno and
   *out is NULL. */
int wp__redis_cmd(redisContext *c, int argc, const char **argv, const size_t *argvlen,
                  redisReply **out);

/* hiredis writes with write(2): on a connection the server closed, that
   raises SIGPIPE, whose default action kills the process. Every call that
   may write blocks SIGPIPE on its own thread in between, and takes back a
   SIGPIPE it caused (one already pending before is left alone), so the
   application's disposition is never changed. */
struct wp__sigpipe {
    sigset_t old;
    int was_pending;
};
void wp__sigpipe_block(struct wp__sigpipe *g);
void wp__sigpipe_unblock(struct wp__sigpipe *g);

/* 1 when a connection error means the connection is gone (reconnect). */
int wp__redis_conn_lost(int err);

#endif

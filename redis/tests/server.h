/*
 * server.h: a private redis-server for a test program.
 *
 * server_start runs `redis-server` on a free 127.0.0.1 port, in a fresh
 * temporary directory (on /dev/shm where it can), with AOF on (appendfsync always), and waits until
 * it answers PING (bounded: 10 s). Every server started is stopped by its pid: by server_stop, at
 * exit (atexit), when the test is killed by its alarm or a signal (handlers), and by the kernel if
 * the test dies any other way (PR_SET_PDEATHSIG in the server's process). Where redis-server is not
 * installed, server_available() is 0 and the program skips (exit 77).
 */
#ifndef WPOOL_REDIS_TEST_SERVER_H
#define WPOOL_REDIS_TEST_SERVER_H

#include <hiredis.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SKIP_CODE 77

struct server {
    pid_t pid;
    int port;
    char dir[256];
    char url[160];
    char pass[64]; /* requirepass, or "" */
};

static struct server *servers_live[8];

static int server_available(void)
{
    const char *path = getenv("PATH");
    char buf[1024];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/redis-server", (int)n, path);
        if (access(buf, X_OK) == 0) return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

/* A port nothing listens on now (the kernel's pick for a bound socket). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static void server_stop(struct server *s);

/* atexit: every server still running is stopped and its directory removed
   (a case that failed before its server_stop). */
static void servers_kill_all(void)
{
    for (int i = 0; i < 8; i++)
        if (servers_live[i]) server_stop(servers_live[i]);
}

static void servers_on_signal(int sig)
{
    (void)sig;
    for (int i = 0; i < 8; i++)
        if (servers_live[i] && servers_live[i]->pid > 0) kill(servers_live[i]->pid, SIGKILL);
    _exit(2);
}

/* A connection to s (AUTH done), or NULL. */
static redisContext *server_connect(const struct server *s)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
    if (!c || c->err) {
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (s->pass[0]) {
        redisReply *r = redisCommand(c, "AUTH %s", s->pass);
        if (r) freeReplyObject(r);
    }
    return c;
}

static int server_spawn(struct server *s)
{
    char port[16], logf[300];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(logf, sizeof logf, "%s/log", s->dir);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return errno;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with the test, whatever kills it */
        if (getppid() != parent) _exit(127);
        const char *argv[] = {"redis-server",
                              "--port",
                              port,
                              "--bind",
                              "127.0.0.1",
                              "--dir",
                              s->dir,
                              "--appendonly",
                              "yes",
                              "--appendfsync",
                              "always",
                              "--save",
                              "",
                              "--daemonize",
                              "no",
                              "--logfile",
                              logf,
                              "--protected-mode",
                              "no",
                              s->pass[0] ? "--requirepass" : NULL,
                              s->pass,
                              NULL};
        execvp("redis-server", (char **)argv);
        _exit(127);
    }
    s->pid = pid;
    for (int i = 0; i < 1000; i++) { /* up to 10 s */
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            s->pid = 0;
            return ECONNREFUSED; /* exited: the port was taken meanwhile? */
        }
        redisContext *c = server_connect(s);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;
            if (r) freeReplyObject(r);
            redisFree(c);
            if (ok) return 0;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    s->pid = 0;
    return ETIMEDOUT;
}

/* Starts s (pass: requirepass, or NULL). 0, or an errno. */
static int server_start(struct server *s, const char *pass)
{
    static int hooked;
    if (!hooked) {
        hooked = 1;
        atexit(servers_kill_all);
        signal(SIGALRM, servers_on_signal);
        signal(SIGTERM, servers_on_signal);
        signal(SIGINT, servers_on_signal);
    }
    memset(s, 0, sizeof *s);
    snprintf(s->pass, sizeof s->pass, "%s", pass ? pass : "");
    /* tmpfs where there is one: fsync per write (appendfsync always) costs
       nothing there, and a killed server still finds its AOF */
    const char *tmp = getenv("TMPDIR");
    if (access("/dev/shm", W_OK) == 0) tmp = "/dev/shm";
    snprintf(s->dir, sizeof s->dir, "%s/wpool-redis-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir)) return errno;
    for (int i = 0; i < 8; i++)
        if (!servers_live[i]) {
            servers_live[i] = s;
            break;
        }
    int rc = EADDRINUSE;
    for (int attempt = 0; attempt < 5 && rc; attempt++) {
        s->port = free_port();
        rc = server_spawn(s);
    }
    if (s->pass[0])
        snprintf(s->url, sizeof s->url, "redis://:%s@127.0.0.1:%d/0", s->pass, s->port);
    else
        snprintf(s->url, sizeof s->url, "redis://127.0.0.1:%d/0", s->port);
    return rc;
}

/* Kills s (SIGKILL: no goodbye, as a crash) and starts it again on the same
   port and directory: what it had acknowledged is in its AOF. */
static int server_restart(struct server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    int rc = EADDRINUSE;
    for (int attempt = 0; attempt < 50 && rc; attempt++) rc = server_spawn(s);
    return rc;
}

static void server_stop(struct server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
    for (int i = 0; i < 8; i++)
        if (servers_live[i] == s) servers_live[i] = NULL;
    if (s->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", s->dir);
        s->dir[0] = '\0';
    }
}

#endif

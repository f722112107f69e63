/* harness.h -- real servers for the integration tests: nats-server and
 * PostgreSQL on free loopback ports, every file in one temporary directory,
 * every process it starts stopped again when the test ends.
 *
 * Guarantees:
 *   - one directory per harness, "$TMPDIR/seashore-<name>-XXXXXX"; each
 *     process started through it logs stdout+stderr to <dir>/<name>.log;
 *   - every child is tracked and stopped by harness_free(), at exit, and on
 *     SIGINT/SIGTERM/SIGABRT; each child also has PR_SET_PDEATHSIG=SIGKILL,
 *     so a test killed outright (SIGKILL, ctest timeout) leaves nothing
 *     running either (the signal follows the thread that spawned it: spawn
 *     from the main thread);
 *   - the directory is removed unless SEASHORE_KEEP_TMP=1 or the test
 *     aborted (SIGABRT: the logs are kept and the path printed).
 *
 * Not thread-safe: one test thread drives a harness. Functions returning int
 * return 0 on success and -1 on failure (with a line on stderr). */
#ifndef SEASHORE_HARNESS_H
#define SEASHORE_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct harness harness;

/* Creates the temporary directory; registers the exit and signal cleanup. */
harness *harness_new(const char *test_name);
const char *harness_dir(const harness *h);
/* Stops every tracked process (SIGTERM, SIGKILL after 3 s; PostgreSQL gets
 * SIGINT), removes the directory unless SEASHORE_KEEP_TMP=1. NULL is ok. */
void harness_free(harness *h);

/* A port that was free a moment ago: bind 127.0.0.1:0, read it, close. */
int harness_free_port(void);

/* Starts argv[0] (PATH lookup when it has no '/') with env (a full
 * NULL-terminated "K=V" list, or NULL to inherit); stdout and stderr are
 * appended to <dir>/<name>.log, stdin is /dev/null. Returns the pid, or -1
 * (also when the exec fails). */
pid_t harness_spawn(harness *h, const char *name, char *const argv[], char *const env[]);
/* Signals a tracked process; -1 if pid is not one of ours. */
int harness_signal(harness *h, pid_t pid, int sig);
/* Signals a tracked process and every descendant of it (PostgreSQL's
 * postmaster and its backends, say): the root first, so it forks nothing
 * new meanwhile, except for SIGCONT, where the root goes last. Returns how
 * many processes got the signal, or -1 (the root did not, or the process
 * table could not be read: then SIGCONT still reaches the root). */
#define HARNESS_MAX_TREE 256
int harness_signal_tree(harness *h, pid_t pid, int sig);
/* 0 once pid exited (reaped and untracked; *status as from waitpid, status
 * may be NULL), -1 on timeout or if pid is not one of ours. */
int harness_wait_exit(harness *h, pid_t pid, int timeout_ms, int *status);
/* SIGTERM, up to 5 s, then SIGKILL; 0 once the process is gone. */
int harness_stop(harness *h, pid_t pid);

/* Polls until a TCP connect to 127.0.0.1:port succeeds. */
int harness_wait_port(int port, int timeout_ms);
/* The whole file, NUL-terminated; *len (may be NULL) without the NUL.
 * NULL on error. Caller frees. */
char *harness_read_file(const char *path, size_t *len);
/* GET with libcurl, 5 s timeout. 0 when an HTTP answer came (any status);
 * *body (NUL-terminated, caller frees) and len may be NULL. */
int harness_http_get(const char *url, long *status, char **body, size_t *len);
/* Polls url every 100 ms until it answers `want`. */
int harness_wait_http_status(const char *url, long want, int timeout_ms);

typedef struct {
    int port;      /* client port on 127.0.0.1 */
    char url[64];  /* nats://127.0.0.1:<port> */
    pid_t pid;     /* 0 while stopped */
    char dir[512]; /* JetStream store directory, kept across restarts */
} harness_nats;

/* Writes <dir>/nats-<port>.conf (JetStream on, max_payload 8MB), starts
 * nats-server with it and waits for the port. */
int harness_nats_start(harness *h, harness_nats *n);
int harness_nats_stop(harness *h, harness_nats *n);
/* Same port, same store. */
int harness_nats_restart(harness *h, harness_nats *n);

typedef struct {
    int port;          /* on 127.0.0.1; the socket is in harness_dir() */
    char url[256];     /* postgresql://seashore@127.0.0.1:<port>/seashore */
    pid_t pid;         /* the postmaster, 0 while stopped */
    char datadir[512]; /* <dir>/pg-<port> */
} harness_pg;

/* initdb (trust auth, superuser "seashore"), postgres in the foreground as a
 * tracked child (as the OS user "postgres" when running as root), waits
 * until it accepts connections, creates the database "seashore". */
int harness_pg_start(harness *h, harness_pg *pg);
/* Fast shutdown (SIGINT) and wait. */
int harness_pg_stop(harness *h, harness_pg *pg);
/* Same port, same data. */
int harness_pg_restart(harness *h, harness_pg *pg);
/* Runs sql (tests only: text as is) on pg->url. If out_first_value is not
 * NULL it receives the first column of the first row (NULL when there is no
 * row or the value is SQL NULL); caller frees. */
int harness_pg_exec(const harness_pg *pg, const char *sql, char **out_first_value);

/* $SEASHORE_BUILD_DIR/rel and $SEASHORE_SOURCE_DIR/rel; NULL (and a line on
 * stderr) when the variable is unset. Caller frees. */
char *harness_build_path(const char *rel);
char *harness_source_path(const char *rel);

#endif

/* harness.c -- real servers for the tests (see harness.h).
 *
 * Processes: fork + exec, stdout/stderr to a log file in the harness's
 * directory, PR_SET_PDEATHSIG so nothing outlives the test, and a table of
 * pids per harness that the exit and signal handlers walk. The cleanup path
 * (stop_all, rm_tree_at) uses system calls only, because it also runs
 * inside a signal handler. */
#include "harness.h"

#include <curl/curl.h>
#include <libpq-fe.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS           128  /* tracked children per harness */
#define MAX_HARNESSES       8    /* live harnesses per test process */
#define FREE_GRACE_MS       3000 /* harness_free: stop signal, then SIGKILL */
#define STOP_GRACE_MS       5000 /* harness_stop: SIGTERM, then SIGKILL */
#define PG_STOP_GRACE_MS    15000
#define PG_START_TIMEOUT_MS 60000
#define NATS_START_MS       15000
#define HTTP_TIMEOUT_MS     5000
#define HTTP_MAX_BODY       (64u << 20)
#define RM_MAX_DEPTH        32

typedef struct {
    pid_t pid;    /* 0: free slot */
    int stop_sig; /* asks it to stop: SIGTERM; SIGINT (fast shutdown) for PostgreSQL */
} proc;

struct harness {
    char dir[400];         /* the temporary directory (short: PostgreSQL puts its socket there) */
    pid_t owner;           /* the test process; forked copies of it clean nothing */
    bool keep;             /* SEASHORE_KEEP_TMP=1: leave the directory */
    proc procs[MAX_PROCS]; /* also read by the signal handler */
};

/* Who a child runs as: the `postgres` OS user when the test runs as root. */
typedef struct {
    bool drop; /* setgid/setuid in the child */
    uid_t uid;
    gid_t gid;
} run_as;

/* Every live harness, for the exit and signal handlers. Written by the test's
 * main thread only (harness_new, harness_free). */
static harness *volatile live[MAX_HARNESSES];

/* ---- time ---- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- cleanup: system calls only (runs in a signal handler) ---- */

static void reap_finished(harness *h)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        pid_t pid = h->procs[i].pid;
        if (pid > 0 && waitpid(pid, NULL, WNOHANG) != 0)
            h->procs[i].pid = 0; /* reaped, or not our child any more */
    }
}

static bool any_running(const harness *h)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (h->procs[i].pid > 0)
            return true;
    return false;
}

/* Every tracked process: its stop signal, FREE_GRACE_MS, then SIGKILL. */
static void stop_all(harness *h)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (h->procs[i].pid > 0)
            kill(h->procs[i].pid, h->procs[i].stop_sig);
    long long deadline = now_ms() + FREE_GRACE_MS;
    for (reap_finished(h); any_running(h) && now_ms() < deadline; reap_finished(h))
        sleep_ms(10);
    for (int i = 0; i < MAX_PROCS; i++) {
        pid_t pid = h->procs[i].pid;
        if (pid > 0) {
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
            h->procs[i].pid = 0;
        }
    }
}

static bool is_dot(const char *name)
{
    return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* Removes parent/name and everything below it. */
static void rm_tree_at(int parent, const char *name, int depth)
{
    if (unlinkat(parent, name, 0) == 0 || errno != EISDIR || depth > RM_MAX_DEPTH)
        return;
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    /* Entries not yet returned survive our deletions; a second pass catches
     * anything a dying process created meanwhile. */
    for (int pass = 0; pass < 3 && unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno == ENOTEMPTY;
         pass++) {
        char buf[4096];
        ssize_t n;
        lseek(fd, 0, SEEK_SET);
        while ((n = getdents64(fd, buf, sizeof buf)) > 0) {
            for (ssize_t off = 0; off < n;) {
                struct dirent64 *d = (struct dirent64 *)(void *)(buf + off);
                off += d->d_reclen;
                if (!is_dot(d->d_name))
                    rm_tree_at(fd, d->d_name, depth + 1);
            }
        }
    }
    close(fd);
}

static void cleanup(harness *h)
{
    stop_all(h);
    if (!h->keep)
        rm_tree_at(AT_FDCWD, h->dir, 0);
}

/* write(2) for the signal handler; nothing to do if it fails. */
static void say(const char *s)
{
    ssize_t n = write(STDERR_FILENO, s, strlen(s));
    (void)n;
}

/* A crash (SIGABRT) keeps the directory: its logs say what happened. */
static void on_fatal_signal(int sig)
{
    int saved = errno;
    for (int i = 0; i < MAX_HARNESSES; i++) {
        harness *h = live[i];
        if (!h || h->owner != getpid())
            continue;
        if (sig == SIGABRT && !h->keep) {
            h->keep = true;
            say("harness: aborted, logs kept in ");
            say(h->dir);
            say("\n");
        }
        cleanup(h);
    }
    errno = saved;
    raise(sig); /* SA_RESETHAND: the default action, once we return */
}

static void on_exit_cleanup(void)
{
    for (int i = 0; i < MAX_HARNESSES; i++)
        if (live[i] && live[i]->owner == getpid())
            harness_free(live[i]);
}

/* Once per process: atexit, and the signals that the test has not claimed. */
static void install_handlers(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGABRT};
    struct sigaction sa = {.sa_handler = on_fatal_signal, .sa_flags = SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    if (atexit(on_exit_cleanup) != 0)
        fprintf(stderr, "harness: atexit failed\n");
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
            !(old.sa_flags & SA_SIGINFO))
            sigaction(sigs[i], &sa, NULL);
    }
}

static int register_live(harness *h)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (pthread_once(&once, install_handlers) != 0)
        return -1;
    for (int i = 0; i < MAX_HARNESSES; i++) {
        if (!live[i]) {
            live[i] = h;
            return 0;
        }
    }
    fprintf(stderr, "harness: more than %d live harnesses\n", MAX_HARNESSES);
    return -1;
}

static void unregister_live(const harness *h)
{
    for (int i = 0; i < MAX_HARNESSES; i++)
        if (live[i] == h)
            live[i] = NULL;
}

/* ---- the harness ---- */

harness *harness_new(const char *test_name)
{
    const char *tmp = getenv("TMPDIR");
    harness *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (!tmp || !*tmp)
        tmp = "/tmp";
    int n = snprintf(h->dir, sizeof h->dir, "%s/seashore-%s-XXXXXX", tmp, test_name);
    if (n < 0 || (size_t)n >= sizeof h->dir || !mkdtemp(h->dir)) {
        fprintf(stderr, "harness: cannot create a directory under %s: %s\n", tmp, strerror(errno));
        free(h);
        return NULL;
    }
    const char *keep = getenv("SEASHORE_KEEP_TMP");
    h->keep = keep && strcmp(keep, "1") == 0;
    h->owner = getpid();
    if (register_live(h) != 0) {
        rmdir(h->dir);
        free(h);
        return NULL;
    }
    return h;
}

const char *harness_dir(const harness *h)
{
    return h->dir;
}

void harness_free(harness *h)
{
    if (!h)
        return;
    unregister_live(h);
    cleanup(h);
    if (h->keep)
        fprintf(stderr, "harness: kept %s\n", h->dir);
    free(h);
}

int harness_free_port(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int port = -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto out;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        goto out;
    port = ntohs(addr.sin_port);
out:
    if (port < 0)
        fprintf(stderr, "harness: no free port: %s\n", strerror(errno));
    if (fd >= 0)
        close(fd);
    return port;
}

/* ---- processes ---- */

static proc *find_proc(harness *h, pid_t pid)
{
    for (int i = 0; pid > 0 && i < MAX_PROCS; i++)
        if (h->procs[i].pid == pid)
            return &h->procs[i];
    fprintf(stderr, "harness: pid %d is not a running process of this harness\n", (int)pid);
    return NULL;
}

/* In the child, between fork and exec: async-signal-safe calls only. On
 * failure the errno goes up errfd, which exec closes on success. */
static void child_exec(char *const argv[], char *const env[], const run_as *as, const char *cwd,
                       pid_t parent, int logfd, int nullfd, int errfd)
{
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0 || signal(SIGPIPE, SIG_DFL) == SIG_ERR ||
        signal(SIGINT, SIG_DFL) == SIG_ERR || signal(SIGTERM, SIG_DFL) == SIG_ERR)
        goto fail;
    if (dup2(nullfd, STDIN_FILENO) < 0 || dup2(logfd, STDOUT_FILENO) < 0 ||
        dup2(logfd, STDERR_FILENO) < 0)
        goto fail;
    if (as && as->drop && (setgroups(0, NULL) != 0 || setgid(as->gid) != 0 || setuid(as->uid) != 0))
        goto fail;
    if (cwd && chdir(cwd) != 0)
        goto fail;
    /* After setuid, which clears it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        goto fail;
    if (getppid() != parent)
        _exit(127); /* the test died before prctl */
    if (env)
        execvpe(argv[0], argv, env);
    else
        execvp(argv[0], argv);
fail:;
    int err = errno;
    if (write(errfd, &err, sizeof err) < 0)
        _exit(126);
    _exit(127);
}

/* 0 when the child exec'd, -1 (child reaped) when it reported an errno. */
static int check_exec(pid_t pid, int errfd, const char *what)
{
    int err = 0;
    ssize_t n;
    while ((n = read(errfd, &err, sizeof err)) < 0 && errno == EINTR)
        ;
    if (n == 0)
        return 0;
    fprintf(stderr, "harness: cannot start %s: %s\n", what, n > 0 ? strerror(err) : "?");
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return -1;
}

static pid_t spawn_as(harness *h, const char *name, char *const argv[], char *const env[],
                      const run_as *as, const char *cwd, int stop_sig)
{
    char log[1024];
    int logfd = -1, nullfd = -1, errpipe[2] = {-1, -1};
    pid_t pid = -1;
    proc *slot = NULL;
    for (int i = 0; !slot && i < MAX_PROCS; i++)
        if (h->procs[i].pid == 0)
            slot = &h->procs[i];
    if (!slot || !argv || !argv[0]) {
        fprintf(stderr, "harness: cannot spawn %s: %s\n", name, slot ? "no argv[0]" : "table full");
        return -1;
    }
    snprintf(log, sizeof log, "%s/%s.log", h->dir, name);
    logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (logfd < 0 || nullfd < 0 || pipe2(errpipe, O_CLOEXEC) != 0) {
        fprintf(stderr, "harness: cannot spawn %s: %s\n", name, strerror(errno));
        goto out;
    }
    pid_t parent = getpid();
    pid = fork();
    if (pid == 0)
        child_exec(argv, env, as, cwd, parent, logfd, nullfd, errpipe[1]);
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        goto out;
    }
    close(errpipe[1]);
    errpipe[1] = -1;
    if (check_exec(pid, errpipe[0], argv[0]) != 0) {
        pid = -1;
        goto out;
    }
    slot->pid = pid;
    slot->stop_sig = stop_sig;
out:
    for (int i = 0; i < 2; i++)
        if (errpipe[i] >= 0)
            close(errpipe[i]);
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    return pid;
}

pid_t harness_spawn(harness *h, const char *name, char *const argv[], char *const env[])
{
    return spawn_as(h, name, argv, env, NULL, NULL, SIGTERM);
}

int harness_signal(harness *h, pid_t pid, int sig)
{
    if (!find_proc(h, pid))
        return -1;
    if (kill(pid, sig) != 0) {
        fprintf(stderr, "harness: kill %d: %s\n", (int)pid, strerror(errno));
        return -1;
    }
    return 0;
}

/* The parent of pid from /proc/<pid>/stat, or -1 (gone, or unreadable). */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *end = strrchr(buf, ')'); /* the name may hold spaces and ')' */
    int ppid = -1;
    if (!end || sscanf(end + 1, " %*c %d", &ppid) != 1)
        return -1;
    return ppid;
}

/* Every descendant of root, at most max of them, parents before children.
 * The kernel here has no /proc/<pid>/task/<tid>/children, so the process
 * table is read whole: every pid with its parent. */
static int descendants(pid_t root, pid_t *out, int max)
{
    enum { TABLE = 8192 };
    pid_t pids[TABLE], parents[TABLE];
    int all = 0, n = 0;
    DIR *d = opendir("/proc");
    if (!d) {
        fprintf(stderr, "harness: opendir /proc: %s\n", strerror(errno));
        return -1;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char *endp;
        long pid = strtol(e->d_name, &endp, 10);
        pid_t ppid = *endp == '\0' && pid > 0 ? parent_of((pid_t)pid) : -1;
        if (ppid <= 0)
            continue;
        if (all == TABLE) {
            fprintf(stderr, "harness: more than %d processes\n", TABLE);
            closedir(d);
            return -1;
        }
        pids[all] = (pid_t)pid;
        parents[all++] = ppid;
    }
    closedir(d);
    /* breadth first: out[i]'s children are appended after it */
    for (int i = -1; i < n; i++) {
        pid_t parent = i < 0 ? root : out[i];
        for (int k = 0; k < all; k++)
            if (parents[k] == parent) {
                if (n == max) {
                    fprintf(stderr, "harness: process %d has more than %d descendants\n", (int)root,
                            max);
                    return -1;
                }
                out[n++] = pids[k];
            }
    }
    return n;
}

int harness_signal_tree(harness *h, pid_t pid, int sig)
{
    pid_t kids[HARNESS_MAX_TREE];
    int n, signalled = 1;
    if (!find_proc(h, pid))
        return -1;
    if (sig != SIGCONT && harness_signal(h, pid, sig) != 0)
        return -1;
    if ((n = descendants(pid, kids, HARNESS_MAX_TREE)) < 0)
        goto root_last;
    for (int i = 0; i < n; i++) {
        int k = sig == SIGCONT ? n - 1 - i : i; /* children first when resuming */
        if (kill(kids[k], sig) == 0)
            signalled++;
        else if (errno != ESRCH) /* ESRCH: it exited meanwhile */
            fprintf(stderr, "harness: kill %d: %s\n", (int)kids[k], strerror(errno));
    }
root_last:
    if (sig == SIGCONT && harness_signal(h, pid, sig) != 0)
        return -1;
    return n < 0 ? -1 : signalled;
}

int harness_wait_exit(harness *h, pid_t pid, int timeout_ms, int *status)
{
    proc *p = find_proc(h, pid);
    long long deadline = now_ms() + timeout_ms;
    int st = 0;
    if (!p)
        return -1;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            p->pid = 0;
            if (status)
                *status = st;
            return 0;
        }
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "harness: waitpid %d: %s\n", (int)pid, strerror(errno));
            p->pid = 0;
            return -1;
        }
        if (now_ms() >= deadline)
            return -1;
        sleep_ms(10);
    }
}

/* sig, up to grace_ms, then SIGKILL. */
static int stop_with(harness *h, pid_t pid, int sig, int grace_ms)
{
    if (harness_signal(h, pid, sig) != 0)
        return -1;
    if (harness_wait_exit(h, pid, grace_ms, NULL) == 0)
        return 0;
    fprintf(stderr, "harness: pid %d still running after %d ms, SIGKILL\n", (int)pid, grace_ms);
    if (harness_signal(h, pid, SIGKILL) != 0)
        return -1;
    return harness_wait_exit(h, pid, 10000, NULL);
}

int harness_stop(harness *h, pid_t pid)
{
    return stop_with(h, pid, SIGTERM, STOP_GRACE_MS);
}

/* ---- network and files ---- */

static bool port_accepts(int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    close(fd);
    return ok;
}

int harness_wait_port(int port, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    while (!port_accepts(port)) {
        if (now_ms() >= deadline) {
            fprintf(stderr, "harness: nothing listens on 127.0.0.1:%d after %d ms\n", port,
                    timeout_ms);
            return -1;
        }
        sleep_ms(50);
    }
    return 0;
}

char *harness_read_file(const char *path, size_t *len)
{
    size_t size = 0, cap = 4096;
    char *buf = malloc(cap);
    FILE *f = fopen(path, "rb");
    if (!buf || !f)
        goto fail;
    for (;;) {
        size += fread(buf + size, 1, cap - size - 1, f);
        if (size < cap - 1)
            break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger)
            goto fail;
        buf = bigger;
        cap *= 2;
    }
    if (ferror(f))
        goto fail;
    fclose(f);
    buf[size] = '\0';
    if (len)
        *len = size;
    return buf;
fail:
    fprintf(stderr, "harness: cannot read %s: %s\n", path, strerror(errno));
    if (f)
        fclose(f);
    free(buf);
    return NULL;
}

/* ---- HTTP ---- */

typedef struct {
    char *data;
    size_t len;
} http_body;

static size_t http_collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    http_body *b = userdata;
    size_t n = size * nmemb;
    if (n > HTTP_MAX_BODY - b->len)
        return 0; /* curl fails the transfer */
    char *bigger = realloc(b->data, b->len + n + 1);
    if (!bigger)
        return 0;
    memcpy(bigger + b->len, ptr, n);
    b->data = bigger;
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static void curl_init_once(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        fprintf(stderr, "harness: curl_global_init failed\n");
}

/* Quiet on transport errors: callers poll with it. */
int harness_http_get(const char *url, long *status, char **body, size_t *len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    http_body b = {NULL, 0};
    int rc = -1;
    CURL *c = NULL;
    if (pthread_once(&once, curl_init_once) != 0 || !(c = curl_easy_init()))
        goto out;
    if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_collect) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)HTTP_TIMEOUT_MS) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK)
        goto out;
    if (curl_easy_perform(c) != CURLE_OK ||
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status) != CURLE_OK)
        goto out;
    if (body && !b.data && !(b.data = calloc(1, 1)))
        goto out;
    if (body) {
        *body = b.data;
        b.data = NULL;
    }
    if (len)
        *len = b.len;
    rc = 0;
out:
    free(b.data);
    curl_easy_cleanup(c);
    return rc;
}

int harness_wait_http_status(const char *url, long want, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    long status = 0;
    for (;;) {
        if (harness_http_get(url, &status, NULL, NULL) != 0)
            status = 0;
        if (status == want)
            return 0;
        if (now_ms() >= deadline)
            break;
        sleep_ms(100);
    }
    fprintf(stderr, "harness: %s answered %ld, not %ld, for %d ms\n", url, status, want,
            timeout_ms);
    return -1;
}

/* ---- nats-server ---- */

static int nats_write_conf(const harness *h, const harness_nats *n, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "harness: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f,
            "# written by tests/harness for %s\n"
            "listen: \"127.0.0.1:%d\"\n"
            "max_payload: 8MB\n"
            "jetstream {\n"
            "  store_dir: \"%s\"\n"
            "  max_memory_store: 256MB\n"
            "  max_file_store: 4GB\n"
            "}\n",
            h->dir, n->port, n->dir);
    return fclose(f) == 0 ? 0 : -1;
}

static int nats_launch(harness *h, harness_nats *n)
{
    char conf[1024], name[64];
    snprintf(conf, sizeof conf, "%s/nats-%d.conf", h->dir, n->port);
    snprintf(name, sizeof name, "nats-%d", n->port);
    char *argv[] = {"nats-server", "-c", conf, NULL};
    n->pid = harness_spawn(h, name, argv, NULL);
    if (n->pid <= 0) {
        n->pid = 0;
        return -1;
    }
    return harness_wait_port(n->port, NATS_START_MS);
}

int harness_nats_start(harness *h, harness_nats *n)
{
    char conf[1024];
    memset(n, 0, sizeof *n);
    if ((n->port = harness_free_port()) < 0)
        return -1;
    snprintf(n->url, sizeof n->url, "nats://127.0.0.1:%d", n->port);
    snprintf(n->dir, sizeof n->dir, "%s/nats-%d", h->dir, n->port);
    snprintf(conf, sizeof conf, "%s/nats-%d.conf", h->dir, n->port);
    if (nats_write_conf(h, n, conf) != 0)
        return -1;
    return nats_launch(h, n);
}

int harness_nats_stop(harness *h, harness_nats *n)
{
    int rc = harness_stop(h, n->pid);
    n->pid = 0;
    return rc;
}

int harness_nats_restart(harness *h, harness_nats *n)
{
    if (n->pid > 0 && harness_nats_stop(h, n) != 0)
        return -1;
    return nats_launch(h, n);
}

/* ---- PostgreSQL ---- */

/* "<dir>/<prog>" if it is executable. */
static bool exe_in(const char *dir, const char *prog, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/%s", dir, prog);
    return n > 0 && (size_t)n < size && access(out, X_OK) == 0;
}

/* initdb's directory: the newest /usr/lib/postgresql/<v>/bin, else PATH. */
static int pg_bindir(char *out, size_t size)
{
    glob_t g;
    long best = -1;
    if (glob("/usr/lib/postgresql/*/bin", GLOB_ONLYDIR, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            long v = strtol(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"), NULL, 10);
            char exe[1024];
            if (v > best && exe_in(g.gl_pathv[i], "initdb", exe, sizeof exe)) {
                best = v;
                snprintf(out, size, "%s", g.gl_pathv[i]);
            }
        }
        globfree(&g);
    }
    if (best >= 0)
        return 0;
    const char *path = getenv("PATH");
    char *copy = strdup(path ? path : ""), *save = NULL, exe[1024];
    int rc = -1;
    for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
        if (exe_in(d, "initdb", exe, sizeof exe)) {
            snprintf(out, size, "%s", d);
            rc = 0;
            break;
        }
    }
    free(copy);
    if (rc != 0)
        fprintf(stderr, "harness: initdb not found in /usr/lib/postgresql/*/bin nor PATH\n");
    return rc;
}

/* As root, PostgreSQL runs as `postgres` (it refuses root); else as us. */
static int pg_run_as(run_as *as)
{
    memset(as, 0, sizeof *as);
    if (geteuid() != 0)
        return 0;
    struct passwd *pw = getpwnam("postgres");
    if (!pw) {
        fprintf(stderr, "harness: running as root and there is no `postgres` user\n");
        return -1;
    }
    as->drop = true;
    as->uid = pw->pw_uid;
    as->gid = pw->pw_gid;
    return 0;
}

/* The data directory, and the harness directory (the socket's) writable by it. */
static int pg_make_dirs(harness *h, const harness_pg *pg, const run_as *as)
{
    if (mkdir(pg->datadir, 0700) != 0)
        goto fail;
    if (as->drop &&
        (chown(h->dir, as->uid, as->gid) != 0 || chown(pg->datadir, as->uid, as->gid) != 0))
        goto fail;
    return 0;
fail:
    fprintf(stderr, "harness: cannot prepare %s: %s\n", pg->datadir, strerror(errno));
    return -1;
}

static int pg_initdb(harness *h, const harness_pg *pg, const char *bindir, const run_as *as)
{
    char exe[1024], name[64];
    int status = -1;
    if (!exe_in(bindir, "initdb", exe, sizeof exe))
        return -1;
    snprintf(name, sizeof name, "initdb-%d", pg->port);
    /* clang-format off */
    char *argv[] = {exe, "-D", (char *)pg->datadir, "-A", "trust", "-U", "seashore",
                    "--no-sync", "--encoding", "UTF8", "--locale=C", NULL};
    /* clang-format on */
    pid_t pid = spawn_as(h, name, argv, NULL, as, h->dir, SIGTERM);
    if (pid <= 0)
        return -1;
    if (harness_wait_exit(h, pid, PG_START_TIMEOUT_MS, &status) != 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "harness: initdb failed, see %s/%s.log\n", h->dir, name);
        return -1;
    }
    return 0;
}

static void pg_conninfo(const harness_pg *pg, const char *db, char *out, size_t size)
{
    snprintf(out, size, "host=127.0.0.1 port=%d user=seashore dbname=%s connect_timeout=5",
             pg->port, db);
}

/* Until PQping says it accepts connections; fails early if it exits. */
static int pg_wait_ready(harness *h, harness_pg *pg)
{
    char conninfo[256];
    int status;
    long long deadline = now_ms() + PG_START_TIMEOUT_MS;
    pg_conninfo(pg, "postgres", conninfo, sizeof conninfo);
    while (PQping(conninfo) != PQPING_OK) {
        if (harness_wait_exit(h, pg->pid, 0, &status) == 0) {
            pg->pid = 0;
            fprintf(stderr, "harness: postgres exited, see %s/postgres-%d.log\n", h->dir, pg->port);
            return -1;
        }
        if (now_ms() >= deadline) {
            fprintf(stderr, "harness: postgres not ready after %d ms\n", PG_START_TIMEOUT_MS);
            return -1;
        }
        sleep_ms(50);
    }
    return 0;
}

/* The postmaster in the foreground, as a tracked child stopped by SIGINT. */
static int pg_launch(harness *h, harness_pg *pg)
{
    char bindir[512], exe[1024], port[16], name[64];
    run_as as;
    if (pg_bindir(bindir, sizeof bindir) != 0 || pg_run_as(&as) != 0 ||
        !exe_in(bindir, "postgres", exe, sizeof exe))
        return -1;
    snprintf(port, sizeof port, "%d", pg->port);
    snprintf(name, sizeof name, "postgres-%d", pg->port);
    /* clang-format off */
    char *argv[] = {exe, "-D", pg->datadir, "-p", port, "-k", h->dir,
                    "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", NULL};
    /* clang-format on */
    pg->pid = spawn_as(h, name, argv, NULL, &as, h->dir, SIGINT);
    if (pg->pid <= 0) {
        pg->pid = 0;
        return -1;
    }
    return pg_wait_ready(h, pg);
}

static int pg_exec_conninfo(const char *conninfo, const char *sql, char **out)
{
    int rc = -1;
    PGresult *res = NULL;
    PGconn *conn = PQconnectdb(conninfo);
    if (out)
        *out = NULL;
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "harness: cannot connect to %s: %s", conninfo, PQerrorMessage(conn));
        goto out;
    }
    res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "harness: %s: %s", sql, PQresultErrorMessage(res));
        goto out;
    }
    if (out && PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0) &&
        !(*out = strdup(PQgetvalue(res, 0, 0))))
        goto out;
    rc = 0;
out:
    PQclear(res);
    PQfinish(conn);
    return rc;
}

int harness_pg_start(harness *h, harness_pg *pg)
{
    char bindir[512], conninfo[256];
    run_as as;
    memset(pg, 0, sizeof *pg);
    if ((pg->port = harness_free_port()) < 0)
        return -1;
    snprintf(pg->datadir, sizeof pg->datadir, "%s/pg-%d", h->dir, pg->port);
    snprintf(pg->url, sizeof pg->url, "postgresql://seashore@127.0.0.1:%d/seashore", pg->port);
    if (pg_bindir(bindir, sizeof bindir) != 0 || pg_run_as(&as) != 0 ||
        pg_make_dirs(h, pg, &as) != 0 || pg_initdb(h, pg, bindir, &as) != 0 ||
        pg_launch(h, pg) != 0)
        return -1;
    pg_conninfo(pg, "postgres", conninfo, sizeof conninfo);
    return pg_exec_conninfo(conninfo, "CREATE DATABASE seashore", NULL);
}

int harness_pg_stop(harness *h, harness_pg *pg)
{
    int rc = stop_with(h, pg->pid, SIGINT, PG_STOP_GRACE_MS);
    pg->pid = 0;
    return rc;
}

int harness_pg_restart(harness *h, harness_pg *pg)
{
    if (pg->pid > 0 && harness_pg_stop(h, pg) != 0)
        return -1;
    return pg_launch(h, pg);
}

int harness_pg_exec(const harness_pg *pg, const char *sql, char **out_first_value)
{
    return pg_exec_conninfo(pg->url, sql, out_first_value);
}

/* ---- paths ---- */

static char *env_path(const char *var, const char *rel)
{
    const char *base = getenv(var);
    char *path = NULL;
    if (!base || !*base) {
        fprintf(stderr, "harness: %s is not set (run the tests through ctest)\n", var);
        return NULL;
    }
    if (asprintf(&path, "%s/%s", base, rel) < 0)
        return NULL;
    return path;
}

char *harness_build_path(const char *rel)
{
    return env_path("SEASHORE_BUILD_DIR", rel);
}

char *harness_source_path(const char *rel)
{
    return env_path("SEASHORE_SOURCE_DIR", rel);
}

/* source.c -- the input of every track: a file read by offset, or stdin
 * spooled into an unlinked temporary file as it arrives.
 *
 * Chunks are never kept in memory: chunk n is re-read from the source at
 * n * chunk_size whenever it is (re)sent. stdin is adopted into the lws
 * event loop as a raw file descriptor, so the spool grows while the
 * websockets run; a regular file redirected to stdin is used in place. */
#include "sender.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_READ (256 * 1024) /* bytes read from stdin per event */

static int open_file(source *src, const char *path)
{
    struct stat st;
    src->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (src->fd < 0) {
        fprintf(stderr, PROG ": cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fstat(src->fd, &st) != 0) {
        fprintf(stderr, PROG ": cannot stat %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, PROG ": %s is not a regular file (use '-' to stream from stdin)\n", path);
        return -1;
    }
    src->avail = (uint64_t)st.st_size;
    src->eof = true;
    return 0;
}

static int open_spool(source *src)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    if (!dir || !*dir)
        dir = "/tmp";
    snprintf(path, sizeof path, "%s/" PROG "-XXXXXX", dir);
    src->fd = mkostemp(path, O_CLOEXEC);
    if (src->fd < 0) {
        fprintf(stderr, PROG ": cannot create the stdin spool in %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (unlink(path) != 0) {
        fprintf(stderr, PROG ": cannot unlink the stdin spool %s: %s\n", path, strerror(errno));
        return -1;
    }
    src->in_fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    if (src->in_fd < 0) {
        fprintf(stderr, PROG ": cannot duplicate stdin: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

/* stdin that is a regular file at offset 0 is read in place, else spooled. */
static int open_stdin(source *src)
{
    struct stat st;
    src->name = "stdin";
    if (fstat(STDIN_FILENO, &st) != 0) {
        fprintf(stderr, PROG ": cannot stat stdin: %s\n", strerror(errno));
        return -1;
    }
    if (S_ISREG(st.st_mode) && lseek(STDIN_FILENO, 0, SEEK_CUR) == 0) {
        src->fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
        if (src->fd < 0) {
            fprintf(stderr, PROG ": cannot duplicate stdin: %s\n", strerror(errno));
            return -1;
        }
        src->avail = (uint64_t)st.st_size;
        src->eof = true;
        return 0;
    }
    return open_spool(src);
}

int source_open(sender *s, const char *path)
{
    source *src = &s->src;
    src->fd = src->in_fd = -1;
    src->name = path;
    if (strcmp(path, "-") == 0)
        return open_stdin(src);
    return open_file(src, path);
}

/* Reads exactly len bytes at off; they must lie below src->avail. */
int source_read(source *src, uint64_t off, unsigned char *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(src->fd, buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, PROG ": cannot read %s at offset %llu: %s\n", src->name,
                    (unsigned long long)(off + done), n < 0 ? strerror(errno) : "the file shrank");
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

void source_close(source *src)
{
    if (src->fd >= 0)
        close(src->fd);
    src->fd = -1;
    /* in_fd belongs to its lws wsi, which closes it */
}

/* ---- stdin in the event loop ---- */

int source_adopt_stdin(sender *s)
{
    lws_sock_file_fd_type fd;
    struct lws_vhost *vh = lws_get_vhost_by_name(s->ctx, "default");
    if (s->src.in_fd < 0)
        return 0;
    if (!vh) {
        fprintf(stderr, PROG ": no lws vhost to read stdin with\n");
        return -1;
    }
    fd.filefd = s->src.in_fd;
    if (!lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd, "seashore-stdin", NULL)) {
        fprintf(stderr, PROG ": cannot watch stdin (lws_adopt_descriptor_vhost failed)\n");
        s->src.in_fd = -1; /* closed by the failed adoption */
        return -1;
    }
    return 0;
}

/* Appends buf to the spool. */
static int spool_append(source *src, const unsigned char *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(src->fd, buf + done, len - done, (off_t)(src->avail + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, PROG ": cannot write the stdin spool: %s\n",
                    n < 0 ? strerror(errno) : "no space");
            return -1;
        }
        done += (size_t)n;
    }
    src->avail += len;
    return 0;
}

/* Tells every connected track that more input (or its end) is there. */
static void input_grew(sender *s)
{
    for (unsigned i = 0; i < s->ntracks; i++)
        if (s->tracks[i].wsi && s->tracks[i].welcomed)
            lws_callback_on_writable(s->tracks[i].wsi);
}

static void input_failed(sender *s)
{
    for (unsigned i = 0; i < s->ntracks; i++)
        track_fail(&s->tracks[i], "stopped: stdin could not be read or spooled");
}

/* One read from stdin: 1 data, 0 end of input, -1 error. */
static int spool_once(sender *s)
{
    ssize_t n;
    do
        n = read(s->src.in_fd, s->rbuf, s->rbuf_cap < SPOOL_READ ? s->rbuf_cap : SPOOL_READ);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN)
        return 1;
    if (n < 0) {
        fprintf(stderr, PROG ": cannot read stdin: %s\n", strerror(errno));
        return -1;
    }
    if (n == 0)
        return 0;
    return spool_append(&s->src, s->rbuf, (size_t)n) == 0 ? 1 : -1;
}

/* lws closed stdin (hang-up): read what is left without blocking. */
static int spool_drain(sender *s)
{
    struct pollfd p = {.fd = s->src.in_fd, .events = POLLIN};
    int rc = 1;
    while (rc == 1 && poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP)))
        rc = spool_once(s);
    return rc < 0 ? -1 : 0;
}

static void input_ended(sender *s)
{
    s->src.eof = true;
    s->src.in_fd = -1;
    debug(s, "stdin: end of input after %llu bytes", (unsigned long long)s->src.avail);
    input_grew(s);
}

int source_stdin_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len)
{
    sender *s = lws_context_user(lws_get_context(wsi));
    int rc;
    (void)user;
    (void)in;
    (void)len;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if ((rc = spool_once(s)) < 0) {
            input_failed(s);
            return -1;
        }
        if (rc == 0) {
            input_ended(s);
            return -1; /* lws closes the descriptor */
        }
        input_grew(s);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (s->src.eof || s->destroying || s->src.in_fd < 0)
            return 0;
        if (spool_drain(s) != 0) {
            s->src.in_fd = -1;
            input_failed(s);
            return 0;
        }
        input_ended(s);
        return 0;
    default:
        return 0;
    }
}

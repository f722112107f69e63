/* log.c -- JSON log lines on stderr (see log.h). */
#include "seashore/log.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_service = "seashore";
static _Atomic int log_min_level = SS_LOG_INFO;
static _Atomic int log_fd = STDERR_FILENO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "fatal"};

void ss_log_init(const char *service, ss_log_level min_level)
{
    log_service = service;
    log_min_level = min_level;
}

void ss_log_set_fd(int fd)
{
    log_fd = fd;
}

int ss_log_level_parse(const char *text, ss_log_level *out)
{
    for (int i = SS_LOG_DEBUG; i <= SS_LOG_ERROR; i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (ss_log_level)i;
            return 0;
        }
    }
    return -1;
}

static void format_timestamp(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

/* Writes the whole line with as few write(2) calls as the kernel allows;
 * lines under PIPE_BUF never interleave with other threads' lines. */
static void write_line(const char *line, size_t len)
{
    int fd = log_fd;
    while (len > 0) {
        ssize_t w = write(fd, line, len);
        if (w <= 0)
            return;
        line += w;
        len -= (size_t)w;
    }
}

void ss_logv(ss_log_level level, const char *msg, const char *fmt, va_list ap)
{
    if ((int)level < log_min_level)
        return;
    char ts[40];
    format_timestamp(ts, sizeof ts);
    json_t *obj = json_pack("{s:s, s:s, s:s, s:s}", "ts", ts, "level", level_names[level],
                            "service", log_service, "msg", msg ? msg : "");
    if (!obj)
        return;
    if (fmt) {
        json_error_t err;
        json_t *fields = json_vpack_ex(&err, 0, fmt, ap);
        if (fields && json_is_object(fields))
            json_object_update(obj, fields);
        else
            json_object_set_new(obj, "log_error", json_string(err.text));
        json_decref(fields);
    }
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (!text)
        return;
    size_t len = strlen(text);
    text[len] = '\n'; /* replace the NUL: json_dumps gives len+1 bytes */
    write_line(text, len + 1);
    free(text);
}

void ss_log(ss_log_level level, const char *msg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ss_logv(level, msg, fmt, ap);
    va_end(ap);
}

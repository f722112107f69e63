/* test_log.c -- every log line is one JSON object with ts, level, service, msg. */
#include "check.h"
#include "seashore/log.h"

#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS          4
#define LINES_PER_THREAD 200

/* Sends log lines into a pipe until capture_end(). */
static void capture_start(int fds[2])
{
    CHECK_EQ_INT(pipe(fds), 0);
    fcntl(fds[0], F_SETPIPE_SZ, 1 << 20);
    ss_log_set_fd(fds[1]);
}

/* Returns what was logged since capture_start() (caller frees). */
static char *capture_end(int fds[2])
{
    ss_log_set_fd(2);
    close(fds[1]);
    size_t cap = 1 << 20, used = 0;
    char *buf = malloc(cap + 1);
    ssize_t n;
    while ((n = read(fds[0], buf + used, cap - used)) > 0)
        used += (size_t)n;
    buf[used] = '\0';
    close(fds[0]);
    return buf;
}

static void test_line_is_json_with_fields(void)
{
    int fds[2];
    capture_start(fds);
    ss_log_init("chunk-store", SS_LOG_INFO);
    ss_log_info("chunk stored", "{s:s, s:I, s:b}", "track_id", "t-1", "seq", (json_int_t)42, "dup",
                0);
    char *out = capture_end(fds);
    json_error_t err;
    json_t *doc = json_loads(out, JSON_DISABLE_EOF_CHECK, &err);
    CHECK(doc != NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(doc, "level")), "info");
    CHECK_EQ_STR(json_string_value(json_object_get(doc, "service")), "chunk-store");
    CHECK_EQ_STR(json_string_value(json_object_get(doc, "msg")), "chunk stored");
    CHECK_EQ_STR(json_string_value(json_object_get(doc, "track_id")), "t-1");
    CHECK_EQ_INT(json_integer_value(json_object_get(doc, "seq")), 42);
    const char *ts = json_string_value(json_object_get(doc, "ts"));
    CHECK(ts && strlen(ts) == 24 && ts[10] == 'T' && ts[23] == 'Z');
    CHECK(out[strlen(out) - 1] == '\n' && strchr(out, '\n') == out + strlen(out) - 1);
    json_decref(doc);
    free(out);
}

static void test_escaping_and_levels(void)
{
    int fds[2];
    capture_start(fds);
    ss_log_init("t", SS_LOG_WARN);
    ss_log_info("dropped below the level", NULL);
    ss_log_warn("quote \" and\nnewline", "{s:s}", "path", "../../etc/passwd\"");
    char *out = capture_end(fds);
    CHECK(strstr(out, "dropped") == NULL);
    json_error_t err;
    json_t *doc = json_loads(out, JSON_DISABLE_EOF_CHECK, &err);
    CHECK(doc != NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(doc, "msg")), "quote \" and\nnewline");
    CHECK_EQ_STR(json_string_value(json_object_get(doc, "path")), "../../etc/passwd\"");
    json_decref(doc);
    free(out);
    ss_log_level lvl;
    CHECK_EQ_INT(ss_log_level_parse("debug", &lvl), 0);
    CHECK_EQ_INT(lvl, SS_LOG_DEBUG);
    CHECK_EQ_INT(ss_log_level_parse("verbose", &lvl), -1);
}

static void *log_many(void *arg)
{
    for (int i = 0; i < LINES_PER_THREAD; i++)
        ss_log_info("concurrent", "{s:i, s:i}", "thread", (int)(long)arg, "i", i);
    return NULL;
}

static void test_threads_never_interleave(void)
{
    int fds[2];
    capture_start(fds);
    ss_log_init("t", SS_LOG_INFO);
    pthread_t th[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, log_many, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    char *out = capture_end(fds);
    int lines = 0, parsed = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        lines++;
        json_error_t err;
        json_t *doc = json_loads(line, 0, &err);
        parsed += doc != NULL;
        json_decref(doc);
    }
    CHECK_EQ_INT(lines, THREADS * LINES_PER_THREAD);
    CHECK_EQ_INT(parsed, lines);
    free(out);
}

int main(void)
{
    TEST_RUN(test_line_is_json_with_fields);
    TEST_RUN(test_escaping_and_levels);
    TEST_RUN(test_threads_never_interleave);
    return check_finish();
}

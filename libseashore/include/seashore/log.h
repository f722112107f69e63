/* log.h -- JSON log lines on stderr.
 *
 * One line per event: {"ts":"2026-11-25T06:00:00.123Z","level":"info",
 * "service":"chunk-store","msg":"...", <fields>}. Fields are given with a
 * jansson json_pack() format so every value is typed and escaped by the
 * library, e.g.
 *     ss_log_info("chunk stored", "{s:s, s:I}", "track_id", id, "seq", seq);
 * Pass NULL as the format for no fields. Lines are written with one write(2)
 * so concurrent threads never interleave. Never log secrets.
 */
#ifndef SEASHORE_LOG_H
#define SEASHORE_LOG_H

#include <stdarg.h>

typedef enum {
    SS_LOG_DEBUG = 0,
    SS_LOG_INFO = 1,
    SS_LOG_WARN = 2,
    SS_LOG_ERROR = 3,
    SS_LOG_FATAL = 4,
} ss_log_level;

/* Sets the service name stamped on every line and the minimum level
 * (from LOG_LEVEL: debug, info, warn, error). `service` must outlive logging. */
void ss_log_init(const char *service, ss_log_level min_level);

/* Parses "debug", "info", "warn", "error"; returns -1 if unknown. */
int ss_log_level_parse(const char *text, ss_log_level *out);

/* Redirects output to fd (default 2); for the unit tests. */
void ss_log_set_fd(int fd);

void ss_log(ss_log_level level, const char *msg, const char *fmt, ...);
void ss_logv(ss_log_level level, const char *msg, const char *fmt, va_list ap);

#define ss_log_debug(msg, ...) ss_log(SS_LOG_DEBUG, (msg), __VA_ARGS__)
#define ss_log_info(msg, ...)  ss_log(SS_LOG_INFO, (msg), __VA_ARGS__)
#define ss_log_warn(msg, ...)  ss_log(SS_LOG_WARN, (msg), __VA_ARGS__)
#define ss_log_error(msg, ...) ss_log(SS_LOG_ERROR, (msg), __VA_ARGS__)
#define ss_log_fatal(msg, ...) ss_log(SS_LOG_FATAL, (msg), __VA_ARGS__)

#endif

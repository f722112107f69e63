/* config.h -- 12-factor configuration from environment variables.
 *
 * A service declares its variables in a static table of ss_config_var and
 * calls ss_config_load() once at start. Every variable is parsed and checked
 * against its limits; the first one that is missing or malformed is reported
 * in one log line naming it, and ss_config_load_or_exit() exits with status 2.
 * Parsed values are written through the `dest` pointers, which the caller
 * owns; string values point into static storage owned by this module and
 * stay valid until ss_config_free().
 */
#ifndef SEASHORE_CONFIG_H
#define SEASHORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define SS_CONFIG_EXIT_CODE 2 /* exit status for a bad configuration */

typedef enum {
    SS_CONFIG_STRING,   /* any non-empty string; dest is const char ** */
    SS_CONFIG_URL,      /* scheme://... with one of `schemes` (comma list); dest const char ** */
    SS_CONFIG_INT,      /* decimal integer in [min, max]; dest is int64_t * */
    SS_CONFIG_BOOL,     /* true/false/1/0/yes/no/on/off; dest is bool * */
    SS_CONFIG_SIZE,     /* bytes with optional KiB/MiB/GiB suffix, in [min, max]; dest int64_t * */
    SS_CONFIG_DURATION, /* milliseconds with optional ms/s/m/h suffix, in [min, max]; dest int64_t *
                         */
    SS_CONFIG_LISTEN,   /* host:port to listen on (port 0..65535); dest is const char ** */
} ss_config_type;

typedef struct ss_config_var {
    const char *name;          /* environment variable name, e.g. "DATABASE_URL" */
    ss_config_type type;       /* how the value is parsed */
    bool required;             /* true: must be set (default_value is ignored) */
    bool secret;               /* true: never printed, not even in --config output */
    const char *default_value; /* textual default when not set and not required; NULL = none */
    int64_t min, max;          /* bounds for INT, SIZE, DURATION (ignored when min == max == 0) */
    const char *schemes; /* for URL: accepted schemes, comma separated ("postgres,postgresql") */
    const char *help;    /* one line: what it means, shown in the README table */
    void *dest;          /* where the parsed value goes (type per ss_config_type) */
} ss_config_var;

/* Parses every variable of `vars`. Returns 0 on success. On the first error
 * returns -1 and writes "NAME: reason" into errbuf (at most errlen bytes). */
int ss_config_load(const ss_config_var *vars, size_t nvars, char *errbuf, size_t errlen)
    __attribute__((warn_unused_result));

/* ss_config_load(), and on error logs one fatal line naming the variable and
 * exits with SS_CONFIG_EXIT_CODE. */
void ss_config_load_or_exit(const ss_config_var *vars, size_t nvars);

/* Handles the command-line options every service shares, before anything
 * else starts: `--config-json` prints the variable table as JSON (name, type,
 * required, default, help, secret) and exits 0, so manifests, the README and
 * tests can be checked against the code; `--help` prints usage. Returns 0
 * when the service should go on. */
int ss_config_handle_args(int argc, char **argv, const char *service, const ss_config_var *vars,
                          size_t nvars);

/* Parsers, exposed for the unit tests and for other modules. Each returns 0
 * on success and -1 with a reason in errbuf. */
int ss_config_parse_size(const char *text, int64_t *out, char *errbuf, size_t errlen);
int ss_config_parse_duration(const char *text, int64_t *out_ms, char *errbuf, size_t errlen);
int ss_config_parse_bool(const char *text, bool *out, char *errbuf, size_t errlen);

/* Splits "host:port" (IPv6 as "[::1]:8080"). host is written to hostbuf. */
int ss_config_split_listen(const char *listen, char *hostbuf, size_t hostlen, int *port);

/* Frees the strings held for the loaded variables. */
void ss_config_free(void);

#endif

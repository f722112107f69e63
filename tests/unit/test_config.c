/* test_config.c -- environment variables into checked values; bad ones named. */
#include "check.h"
#include "seashore/config.h"
#include "seashore/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *url, *name, *listen_addr;
static int64_t count, size, timeout_ms;
static bool flag;

static const ss_config_var vars[] = {
    {"T_DATABASE_URL", SS_CONFIG_URL, true, true, NULL, 0, 0, "postgres,postgresql",
     "PostgreSQL URL", &url},
    {"T_NAME", SS_CONFIG_STRING, false, false, "default-name", 0, 0, NULL, "a name", &name},
    {"T_COUNT", SS_CONFIG_INT, false, false, "4", 1, 64, NULL, "a count", &count},
    {"T_SIZE", SS_CONFIG_SIZE, false, false, "8MiB", 5 << 20, 1 << 30, NULL, "a size", &size},
    {"T_TIMEOUT", SS_CONFIG_DURATION, false, false, "30s", 0, 0, NULL, "a timeout", &timeout_ms},
    {"T_FLAG", SS_CONFIG_BOOL, false, false, "false", 0, 0, NULL, "a flag", &flag},
    {"T_LISTEN", SS_CONFIG_LISTEN, false, false, "127.0.0.1:0", 0, 0, NULL, "listen", &listen_addr},
};
#define NVARS (sizeof vars / sizeof vars[0])

static void reset_env(void)
{
    for (size_t i = 0; i < NVARS; i++)
        unsetenv(vars[i].name);
    setenv("T_DATABASE_URL", "postgresql://u@127.0.0.1:5432/db", 1);
}

/* Loads with one variable set to `value`; returns the error text ("" if ok). */
static const char *load_with(const char *var, const char *value)
{
    static char err[512];
    reset_env();
    if (value)
        setenv(var, value, 1);
    else
        unsetenv(var);
    err[0] = '\0';
    if (ss_config_load(vars, NVARS, err, sizeof err) == 0)
        err[0] = '\0';
    ss_config_free();
    return err;
}

static void test_defaults_apply(void)
{
    reset_env();
    char err[256];
    CHECK_EQ_INT(ss_config_load(vars, NVARS, err, sizeof err), 0);
    CHECK_EQ_STR(name, "default-name");
    CHECK_EQ_INT(count, 4);
    CHECK_EQ_INT(size, 8 << 20);
    CHECK_EQ_INT(timeout_ms, 30000);
    CHECK_EQ_INT(flag, false);
    CHECK_EQ_STR(listen_addr, "127.0.0.1:0");
    ss_config_free();
}

/* bad-input: service configuration | a required environment variable missing | exit 2, one line
 * naming the variable | the service does not start */
static void test_required_missing_is_named(void)
{
    CHECK_CONTAINS(load_with("T_DATABASE_URL", NULL), "T_DATABASE_URL: required but not set");
    CHECK_CONTAINS(load_with("T_DATABASE_URL", ""), "T_DATABASE_URL: required");
}

/* bad-input: service configuration | a malformed value (number, size, duration, URL, bool,
 * host:port) | exit 2, one line naming the variable and the rule | the service does not start */
static void test_malformed_values_are_named(void)
{
    CHECK_CONTAINS(load_with("T_COUNT", "12x"), "T_COUNT: '12x' is not an integer");
    CHECK_CONTAINS(load_with("T_COUNT", "65"), "T_COUNT: 65 is out of range [1, 64]");
    CHECK_CONTAINS(load_with("T_SIZE", "1MiB"), "T_SIZE: 1048576 is out of range");
    CHECK_CONTAINS(load_with("T_SIZE", "lots"), "T_SIZE: 'lots' is not a size");
    CHECK_CONTAINS(load_with("T_TIMEOUT", "5 fortnights"), "T_TIMEOUT: '5 fortnights'");
    CHECK_CONTAINS(load_with("T_FLAG", "maybe"), "T_FLAG: 'maybe' is not a boolean");
    CHECK_CONTAINS(load_with("T_LISTEN", "localhost"), "T_LISTEN: 'localhost' is not host:port");
    CHECK_CONTAINS(load_with("T_LISTEN", "127.0.0.1:70000"), "T_LISTEN");
    CHECK_CONTAINS(load_with("T_DATABASE_URL", "mysql://x/y"),
                   "T_DATABASE_URL: URL scheme 'mysql' is not one of postgres,postgresql");
}

/* bad-input: service configuration | a malformed secret value | the error names the variable, never
 * the value | none */
static void test_secret_values_are_not_echoed(void)
{
    const char *err = load_with("T_DATABASE_URL", "hunter2-not-a-url");
    CHECK_CONTAINS(err, "T_DATABASE_URL");
    CHECK(strstr(err, "hunter2") == NULL);
}

static void test_parsers(void)
{
    int64_t v = 0;
    char err[128];
    CHECK_EQ_INT(ss_config_parse_size("5MiB", &v, err, sizeof err), 0);
    CHECK_EQ_INT(v, 5 << 20);
    CHECK_EQ_INT(ss_config_parse_size("2 GiB", &v, err, sizeof err), 0);
    CHECK_EQ_INT(v, 2LL << 30);
    CHECK_EQ_INT(ss_config_parse_size("99999999999999GiB", &v, err, sizeof err), -1);
    CHECK_EQ_INT(ss_config_parse_duration("250ms", &v, err, sizeof err), 0);
    CHECK_EQ_INT(v, 250);
    CHECK_EQ_INT(ss_config_parse_duration("2h", &v, err, sizeof err), 0);
    CHECK_EQ_INT(v, 7200000);
    char host[64];
    int port = 0;
    CHECK_EQ_INT(ss_config_split_listen("[::1]:8080", host, sizeof host, &port), 0);
    CHECK_EQ_STR(host, "::1");
    CHECK_EQ_INT(port, 8080);
    CHECK_EQ_INT(ss_config_split_listen(":8080", host, sizeof host, &port), -1);
}

/* The whole contract of a service start: one line naming the variable, exit 2. */
static void test_load_or_exit_prints_one_line_and_exits_2(void)
{
    int fds[2];
    CHECK_EQ_INT(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        reset_env();
        unsetenv("T_DATABASE_URL");
        ss_log_init("test", SS_LOG_INFO);
        ss_log_set_fd(fds[1]);
        ss_config_load_or_exit(vars, NVARS);
        _exit(0);
    }
    close(fds[1]);
    char out[2048] = "";
    size_t used = 0;
    ssize_t n;
    while ((n = read(fds[0], out + used, sizeof out - 1 - used)) > 0)
        used += (size_t)n;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK_EQ_INT(WEXITSTATUS(status), SS_CONFIG_EXIT_CODE);
    CHECK_CONTAINS(out, "\"variable\":\"T_DATABASE_URL\"");
    CHECK_CONTAINS(out, "\"level\":\"fatal\"");
    CHECK(strchr(out, '\n') == out + used - 1); /* exactly one line */
}

int main(void)
{
    TEST_RUN(test_defaults_apply);
    TEST_RUN(test_required_missing_is_named);
    TEST_RUN(test_malformed_values_are_named);
    TEST_RUN(test_secret_values_are_not_echoed);
    TEST_RUN(test_parsers);
    TEST_RUN(test_load_or_exit_prints_one_line_and_exits_2);
    return check_finish();
}

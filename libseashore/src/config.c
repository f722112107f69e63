/* config.c -- environment variables into typed, checked values (see config.h). */
#include "seashore/config.h"
#include "seashore/log.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONFIG_MAX_STRINGS 128

/* Copies of string values, so later setenv() calls cannot change them. */
static char *config_strings[CONFIG_MAX_STRINGS];
static size_t config_nstrings;

static const char *const type_names[] = {"string", "url",      "int",   "bool",
                                         "size",   "duration", "listen"};

void ss_config_free(void)
{
    for (size_t i = 0; i < config_nstrings; i++)
        free(config_strings[i]);
    config_nstrings = 0;
}

static int parse_int_suffixed(const char *text, int64_t *out, const char *const *suffixes,
                              const int64_t *factors, size_t nsuffixes)
{
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text)
        return -1;
    while (*end == ' ')
        end++;
    int64_t factor = 1;
    if (*end != '\0') {
        size_t i;
        for (i = 0; i < nsuffixes; i++) {
            if (strcasecmp(end, suffixes[i]) == 0)
                break;
        }
        if (i == nsuffixes)
            return -1;
        factor = factors[i];
    }
    if (v != 0 && (v > INT64_MAX / factor || v < INT64_MIN / factor))
        return -1;
    *out = (int64_t)v * factor;
    return 0;
}

int ss_config_parse_size(const char *text, int64_t *out, char *errbuf, size_t errlen)
{
    static const char *const sfx[] = {"B", "K", "KB", "KiB", "M", "MB", "MiB", "G", "GB", "GiB"};
    static const int64_t fac[] = {1,       1024,    1024,    1024,      1 << 20,
                                  1 << 20, 1 << 20, 1 << 30, 1LL << 30, 1LL << 30};
    if (parse_int_suffixed(text, out, sfx, fac, sizeof fac / sizeof fac[0]) != 0) {
        snprintf(errbuf, errlen, "'%s' is not a size (bytes, or a number with KiB, MiB, GiB)",
                 text);
        return -1;
    }
    return 0;
}

int ss_config_parse_duration(const char *text, int64_t *out_ms, char *errbuf, size_t errlen)
{
    static const char *const sfx[] = {"ms", "s", "m", "h"};
    static const int64_t fac[] = {1, 1000, 60000, 3600000};
    if (parse_int_suffixed(text, out_ms, sfx, fac, 4) != 0) {
        snprintf(errbuf, errlen,
                 "'%s' is not a duration (milliseconds, or a number with ms, s, m, h)", text);
        return -1;
    }
    return 0;
}

int ss_config_parse_bool(const char *text, bool *out, char *errbuf, size_t errlen)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    snprintf(errbuf, errlen, "'%s' is not a boolean (true/false, 1/0, yes/no, on/off)", text);
    return -1;
}

int ss_config_split_listen(const char *listen, char *hostbuf, size_t hostlen, int *port)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return -1;
    const char *host = listen;
    size_t host_len = (size_t)(colon - listen);
    if (host[0] == '[') { /* [::1]:8080 */
        if (host_len < 3 || host[host_len - 1] != ']')
            return -1;
        host++;
        host_len -= 2;
    }
    if (host_len + 1 > hostlen)
        return -1;
    char *end = NULL;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || p < 0 || p > 65535)
        return -1;
    memcpy(hostbuf, host, host_len);
    hostbuf[host_len] = '\0';
    *port = (int)p;
    return 0;
}

static int check_url(const ss_config_var *v, const char *text, char *errbuf, size_t errlen)
{
    const char *sep = strstr(text, "://");
    if (!sep || sep == text || sep[3] == '\0') {
        snprintf(errbuf, errlen, "%s: '%s' is not a URL (expected %s://...)", v->name,
                 v->secret ? "<hidden>" : text, v->schemes ? v->schemes : "scheme");
        return -1;
    }
    if (!v->schemes)
        return 0;
    size_t slen = (size_t)(sep - text);
    const char *s = v->schemes;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        if (n == slen && strncasecmp(s, text, n) == 0)
            return 0;
        s += n + (comma ? 1 : 0);
    }
    snprintf(errbuf, errlen, "%s: URL scheme '%.*s' is not one of %s", v->name, (int)slen, text,
             v->schemes);
    return -1;
}

static int store_string(const ss_config_var *v, const char *text, char *errbuf, size_t errlen)
{
    if (config_nstrings == CONFIG_MAX_STRINGS) {
        snprintf(errbuf, errlen, "%s: too many configuration strings", v->name);
        return -1;
    }
    char *copy = strdup(text);
    if (!copy) {
        snprintf(errbuf, errlen, "%s: out of memory", v->name);
        return -1;
    }
    config_strings[config_nstrings++] = copy;
    *(const char **)v->dest = copy;
    return 0;
}

static int check_bounds(const ss_config_var *v, int64_t value, char *errbuf, size_t errlen)
{
    if (v->min == 0 && v->max == 0)
        return 0;
    if (value < v->min || value > v->max) {
        snprintf(errbuf, errlen, "%s: %lld is out of range [%lld, %lld]", v->name, (long long)value,
                 (long long)v->min, (long long)v->max);
        return -1;
    }
    return 0;
}

static int parse_number(const ss_config_var *v, const char *text, char *errbuf, size_t errlen)
{
    char why[200];
    int64_t value = 0;
    int rc = 0;
    if (v->type == SS_CONFIG_SIZE) {
        rc = ss_config_parse_size(text, &value, why, sizeof why);
    } else if (v->type == SS_CONFIG_DURATION) {
        rc = ss_config_parse_duration(text, &value, why, sizeof why);
    } else {
        static const char *const none[] = {""};
        static const int64_t one[] = {1};
        rc = parse_int_suffixed(text, &value, none, one, 0);
        snprintf(why, sizeof why, "'%s' is not an integer", text);
    }
    if (rc != 0) {
        snprintf(errbuf, errlen, "%s: %s", v->name, why);
        return -1;
    }
    if (check_bounds(v, value, errbuf, errlen) != 0)
        return -1;
    *(int64_t *)v->dest = value;
    return 0;
}

static int parse_one(const ss_config_var *v, const char *text, char *errbuf, size_t errlen)
{
    char why[200];
    switch (v->type) {
    case SS_CONFIG_STRING:
        return store_string(v, text, errbuf, errlen);
    case SS_CONFIG_URL:
        if (check_url(v, text, errbuf, errlen) != 0)
            return -1;
        return store_string(v, text, errbuf, errlen);
    case SS_CONFIG_LISTEN: {
        char host[256];
        int port;
        if (ss_config_split_listen(text, host, sizeof host, &port) != 0) {
            snprintf(errbuf, errlen, "%s: '%s' is not host:port (port 0-65535)", v->name, text);
            return -1;
        }
        return store_string(v, text, errbuf, errlen);
    }
    case SS_CONFIG_BOOL:
        if (ss_config_parse_bool(text, (bool *)v->dest, why, sizeof why) != 0) {
            snprintf(errbuf, errlen, "%s: %s", v->name, why);
            return -1;
        }
        return 0;
    case SS_CONFIG_INT:
    case SS_CONFIG_SIZE:
    case SS_CONFIG_DURATION:
        return parse_number(v, text, errbuf, errlen);
    }
    snprintf(errbuf, errlen, "%s: unknown variable type", v->name);
    return -1;
}

int ss_config_load(const ss_config_var *vars, size_t nvars, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < nvars; i++) {
        const ss_config_var *v = &vars[i];
        const char *text = getenv(v->name);
        if (text && *text == '\0')
            text = NULL; /* an empty variable counts as unset */
        if (!text && v->required) {
            snprintf(errbuf, errlen, "%s: required but not set (%s)", v->name, v->help);
            return -1;
        }
        if (!text)
            text = v->default_value;
        if (!text)
            continue; /* optional without default: dest keeps its zero value */
        if (parse_one(v, text, errbuf, errlen) != 0)
            return -1;
    }
    return 0;
}

void ss_config_load_or_exit(const ss_config_var *vars, size_t nvars)
{
    char err[512];
    if (ss_config_load(vars, nvars, err, sizeof err) == 0)
        return;
    const char *colon = strchr(err, ':');
    int name_len = colon ? (int)(colon - err) : (int)strlen(err);
    char name[128];
    snprintf(name, sizeof name, "%.*s", name_len, err);
    ss_log_fatal("invalid configuration", "{s:s, s:s}", "variable", name, "error", err);
    exit(SS_CONFIG_EXIT_CODE);
}

static void print_config_json(const char *service, const ss_config_var *vars, size_t nvars)
{
    json_t *list = json_array();
    for (size_t i = 0; i < nvars; i++) {
        const ss_config_var *v = &vars[i];
        json_t *item =
            json_pack("{s:s, s:s, s:b, s:b, s:s}", "name", v->name, "type", type_names[v->type],
                      "required", v->required, "secret", v->secret, "help", v->help ? v->help : "");
        if (v->default_value)
            json_object_set_new(item, "default", json_string(v->default_value));
        json_array_append_new(list, item);
    }
    json_t *doc = json_pack("{s:s, s:o}", "service", service, "variables", list);
    json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(doc);
}

int ss_config_handle_args(int argc, char **argv, const char *service, const ss_config_var *vars,
                          size_t nvars)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config-json") == 0) {
            print_config_json(service, vars, nvars);
            exit(0);
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: %s [--config-json]\n\nConfigured by environment variables:\n", service);
            for (size_t j = 0; j < nvars; j++)
                printf("  %-24s %s%s\n", vars[j].name, vars[j].required ? "(required) " : "",
                       vars[j].help ? vars[j].help : "");
            exit(0);
        }
    }
    return 0;
}

/* fuzz_api_http.c -- what token-issuer reads from a request besides its
 * body (api_parse.h, web_static.h), as main.c, api.c, auth.c and
 * rate_limit.c take it.
 *
 * Byte 0 gives API_TRUSTED_PROXIES (1 + byte % 8); the rest is up to six
 * NUL-separated strings (a missing one is an absent header or parameter):
 *   method, URL (as MHD hands it over, unescaped), ?limit=, ?before_id=,
 *   Authorization, X-Forwarded-For.
 * The URL is routed as api_handle routes it (/v1/...), or resolved as a
 * static file under a fixed tree (a temporary directory with symlinks out
 * of the root and a sibling whose name extends the root's) as
 * web_static_serve resolves it. Each result is checked against an
 * independent reading of the same input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "api_parse.h"
#include "seashore/ingest_token.h"
#include "web_static.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELDS 6

static char dir[64], root[96], real_root[PATH_MAX];
static struct stat secret_st;

static bool is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash != (s[i] == '-') || (!dash && !strchr("0123456789abcdef", s[i])))
            return false;
    }
    return true;
}

/* ---- the path and its route ---- */

/* Segment i (0-based) of url, the text between '/'s, into seg; false when
 * there is none. */
static bool segment(const char *url, int i, char *seg, size_t len)
{
    for (const char *p = url;;) {
        while (*p == '/')
            p++;
        if (*p == '\0')
            return false;
        size_t n = strcspn(p, "/");
        if (i-- == 0) {
            snprintf(seg, len, "%.*s", (int)n, p);
            return true;
        }
        p += n;
    }
}

static void check_route(const api_path *p, const char *method)
{
    int bad = api_path_bad_id(p);
    bool ids_ok =
        (p->nparts <= 2 || is_uuid(p->parts[2])) && (p->nparts <= 4 || is_uuid(p->parts[4]));
    if ((bad == 0) != ids_ok || (bad != 0 && bad != 2 && bad != 4))
        __builtin_trap();
    if (bad != 0)
        return;
    api_route r = api_route_of(p, method);
    bool invite = api_invite_route(p, method);
    /* the route's method and shape */
    static const struct {
        const char *method;
        int nparts;
        const char *last;
    } want[] = {
        [API_ROUTE_SESSION_CREATE] = {"POST", 2, "sessions"},
        [API_ROUTE_SESSION_LIST] = {"GET", 2, "sessions"},
        [API_ROUTE_SESSION_GET] = {"GET", 3, NULL},
        [API_ROUTE_SESSION_DELETE] = {"DELETE", 3, NULL},
        [API_ROUTE_SESSION_END] = {"POST", 4, "end"},
        [API_ROUTE_SESSION_TRACKS] = {"GET", 4, "tracks"},
        [API_ROUTE_SESSION_MANIFEST] = {"GET", 4, "manifest"},
        [API_ROUTE_PARTICIPANT_JOIN] = {"POST", 4, "participants"},
        [API_ROUTE_INGEST_REFRESH] = {"POST", 6, "ingest-token"},
        [API_ROUTE_PARTICIPANT_PROGRESS] = {"POST", 6, "progress"},
    };
    if (r != API_ROUTE_NONE &&
        ((size_t)r >= sizeof want / sizeof want[0] || strcmp(method, want[r].method) != 0 ||
         p->nparts != want[r].nparts ||
         (want[r].last && strcmp(p->parts[p->nparts - 1], want[r].last) != 0)))
        __builtin_trap();
    bool guest_route = r == API_ROUTE_PARTICIPANT_JOIN || r == API_ROUTE_INGEST_REFRESH ||
                       r == API_ROUTE_PARTICIPANT_PROGRESS;
    if ((r == API_ROUTE_INGEST_REFRESH || r == API_ROUTE_PARTICIPANT_PROGRESS) &&
        strcmp(p->parts[3], "participants") != 0)
        __builtin_trap();
    /* an invite token reaches only the join, the ingest-token refresh and
     * the progress report (each checks the guest's own refresh_token) */
    if (invite != guest_route)
        __builtin_trap();
}

static void route(const char *method, const char *url)
{
    char buf[API_MAX_PATH], seg[API_MAX_PATH];
    api_path p;
    if (strcmp(url, "/v1/webhooks/clerk") == 0 && strcmp(method, "POST") == 0)
        return; /* clerk_webhook: fuzz_api_json */
    if (strlen(url) >= sizeof buf)
        return;
    memset(&p, 0, sizeof p);
    int rc = api_split_path(url, &p, buf, sizeof buf);
    if (p.nparts < 0 || p.nparts > API_MAX_PARTS)
        __builtin_trap();
    /* every segment in order, inside buf, non-empty, and the URL's own */
    for (int i = 0; i < p.nparts; i++) {
        const char *s = p.parts[i];
        if (s < buf || s >= buf + sizeof buf || s + strlen(s) >= buf + sizeof buf || s[0] == '\0' ||
            strchr(s, '/') || (i > 0 && s <= p.parts[i - 1]) || !segment(url, i, seg, sizeof seg) ||
            strcmp(s, seg) != 0)
            __builtin_trap();
    }
    /* -1 exactly when there are more segments than API_MAX_PARTS */
    if ((rc == 0) == segment(url, p.nparts, seg, sizeof seg) ||
        (rc != 0 && p.nparts != API_MAX_PARTS))
        __builtin_trap();
    if (rc == 0 && api_path_is(&p, 0, "v1") && api_path_is(&p, 1, "sessions"))
        check_route(&p, method);
}

/* ---- static files ---- */

static void make_tree(void)
{
    char path[256];
    const char *files[] = {"root/index.html", "root/app.js", "root/sub/page.html", "outside/secret",
                           "rootx/secret"};
    const char *dirs[] = {"root", "root/sub", "outside", "rootx"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, dirs[i]);
        if (mkdir(path, 0700) != 0)
            abort();
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "w");
        if (f == NULL)
            abort();
        fputs("x\n", f);
        fclose(f);
    }
    /* symlinks: out of the root (refused), inside it (served), a loop */
    static const char *const links[][2] = {
        {"../outside", "root/up"}, {"../outside/secret", "root/secret-link"},
        {".", "root/self"},        {"sub/page.html", "root/page-link"},
        {"loop", "root/loop"},     {"../rootx", "root/sibling"},
    };
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, links[i][1]);
        if (symlink(links[i][0], path) != 0)
            abort();
    }
}

static void remove_tree(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_api_http: could not remove %s\n", dir);
}

static void static_file(const char *url)
{
    char resolved[PATH_MAX];
    struct stat st;
    size_t n = strlen(real_root);
    resolved[0] = '\0';
    int rc = web_static_resolve(root, url, resolved);
    if (rc != 0 && rc != -1 && rc != -2)
        __builtin_trap();
    bool inside =
        strncmp(resolved, real_root, n) == 0 && (resolved[n] == '/' || resolved[n] == '\0');
    if (rc == -2 && inside)
        __builtin_trap();
    if (rc != 0)
        return;
    /* served: an existing canonical path under the root, never the files
     * outside it */
    if (!inside || strstr(resolved, "/../") || strstr(resolved, "/./") || strstr(resolved, "//") ||
        stat(resolved, &st) != 0 ||
        (st.st_dev == secret_st.st_dev && st.st_ino == secret_st.st_ino) ||
        strstr(resolved + n, "outside") || strstr(resolved + n, "rootx"))
        __builtin_trap();
    if (strcmp(url, "/") == 0 && strcmp(resolved + n, "/index.html") != 0)
        __builtin_trap();
}

/* ---- query parameters ---- */

static void query(const char *limit, const char *before)
{
    int got = -1;
    int rc = api_list_limit(limit, &got);
    /* strtol's reading: spaces, a sign, decimal digits, nothing after */
    long want = API_LIST_DEFAULT;
    bool ok = true;
    if (limit) {
        const char *p = limit;
        bool neg = false;
        while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
            p++;
        if (*p == '+' || *p == '-')
            neg = *p++ == '-';
        ok = *p >= '0' && *p <= '9';
        for (want = 0; *p >= '0' && *p <= '9'; p++)
            want = want > 100000 ? want : want * 10 + (*p - '0');
        want = neg ? -want : want;
        ok = ok && *p == '\0' && want >= 1 && want <= API_LIST_MAX;
    }
    if ((rc == 0) != ok || (rc == 0 && got != want))
        __builtin_trap();
    if (before && (ss_uuid_valid(before) != 0) != is_uuid(before))
        __builtin_trap();
}

/* ---- Authorization ---- */

static void authorization(const char *h)
{
    const char *cred = NULL;
    char prefix[API_KEY_PREFIX_HEX + 1];
    memset(prefix, 'Z', sizeof prefix);
    api_auth_kind k = api_authorization(h, &cred, prefix);
    bool bearer = h && strncmp(h, "Bearer ", 7) == 0;
    bool ssk = bearer && strncmp(h + 7, "ssk_", 4) == 0;
    switch (k) {
    case API_AUTH_MISSING:
        if (h != NULL)
            __builtin_trap();
        break;
    case API_AUTH_NOT_BEARER:
        if (h == NULL || bearer)
            __builtin_trap();
        break;
    case API_AUTH_CLERK:
        if (!bearer || ssk || cred != h + 7)
            __builtin_trap();
        (void)ss_jwt_alg_is(cred, "RS256"); /* clerk_token_verify's first check */
        break;
    case API_AUTH_KEY_MALFORMED:
    case API_AUTH_KEY: {
        if (!ssk || cred != h + 7)
            __builtin_trap();
        bool well_formed =
            strlen(cred) == 4 + API_KEY_PREFIX_HEX + 1 + API_KEY_SECRET_HEX &&
            cred[4 + API_KEY_PREFIX_HEX] == '_' &&
            strspn(cred + 4, "0123456789abcdef") == API_KEY_PREFIX_HEX &&
            strspn(cred + 5 + API_KEY_PREFIX_HEX, "0123456789abcdef") == API_KEY_SECRET_HEX;
        if (well_formed != (k == API_AUTH_KEY))
            __builtin_trap();
        if (k == API_AUTH_KEY && (strlen(prefix) != API_KEY_PREFIX_HEX ||
                                  memcmp(prefix, cred + 4, API_KEY_PREFIX_HEX) != 0))
            __builtin_trap();
        break;
    }
    default:
        __builtin_trap();
    }
}

/* ---- X-Forwarded-For ---- */

static void forwarded(const char *list, int64_t proxies)
{
    char out[64], want[2048];
    unsigned char bin[16];
    bool ok = api_forwarded_entry(list, proxies, out, sizeof out);
    /* the non-empty comma-separated entries; entry `proxies` from the
     * right, or the first; its first word */
    bool expect = false;
    if (strlen(list) < sizeof want) {
        int n = 0;
        for (const char *p = list; *p;) {
            size_t len = strcspn(p, ",");
            n += len > 0;
            p += len + (p[len] == ',');
        }
        int target = n > proxies ? n - (int)proxies : 0, i = 0;
        for (const char *p = list; *p && n > 0;) {
            size_t len = strcspn(p, ",");
            if (len > 0 && i++ == target) {
                snprintf(want, sizeof want, "%.*s", (int)len, p);
                break;
            }
            p += len + (p[len] == ',');
        }
        if (n > 0) {
            char *w = want + strspn(want, " \t");
            w[strcspn(w, " \t")] = '\0';
            memmove(want, w, strlen(w) + 1);
            expect = inet_pton(AF_INET, want, bin) == 1 || inet_pton(AF_INET6, want, bin) == 1;
        }
    }
    if (ok != expect || (ok && strcmp(out, want) != 0))
        __builtin_trap();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fuzz_http.XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    atexit(remove_tree);
    make_tree();
    snprintf(root, sizeof root, "%s/root", dir);
    char secret[128];
    snprintf(secret, sizeof secret, "%s/outside/secret", dir);
    if (realpath(root, real_root) == NULL || stat(secret, &secret_st) != 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int64_t proxies = 1 + data[0] % 8; /* API_TRUSTED_PROXIES: 1..8 */
    char *text = malloc(size);
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    const char *f[FIELDS] = {0};
    const char *p = text, *end = text + size - 1;
    for (int i = 0; i < FIELDS && p <= end; i++) {
        f[i] = p;
        p += strlen(p) + 1;
    }
    const char *method = f[0] ? f[0] : "GET", *url = f[1] ? f[1] : "/";
    if (strncmp(url, "/v1/", 4) == 0)
        route(method, url);
    else
        static_file(url);
    query(f[2], f[3]);
    authorization(f[4]);
    if (f[5])
        forwarded(f[5], proxies);
    free(text);
    return 0;
}

/* api_parse.c -- the request line and headers as token-issuer reads them
 * (api_parse.h). */
#include "api_parse.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seashore/ingest_token.h"

int api_split_path(const char *url, api_path *p, char *buf, size_t buflen)
{
    snprintf(buf, buflen, "%s", url);
    p->nparts = 0;
    for (char *save = NULL, *tok = strtok_r(buf, "/", &save); tok;
         tok = strtok_r(NULL, "/", &save)) {
        if (p->nparts == API_MAX_PARTS)
            return -1;
        p->parts[p->nparts++] = tok;
    }
    return 0;
}

bool api_path_is(const api_path *p, int i, const char *s)
{
    return i < p->nparts && strcmp(p->parts[i], s) == 0;
}

int api_path_bad_id(const api_path *p)
{
    if (p->nparts > 2 && !ss_uuid_valid(p->parts[2]))
        return 2;
    if (p->nparts > 4 && !ss_uuid_valid(p->parts[4]))
        return 4;
    return 0;
}

api_route api_route_of(const api_path *p, const char *method)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    bool del = strcmp(method, "DELETE") == 0;
    if (p->nparts == 2 && post)
        return API_ROUTE_SESSION_CREATE;
    if (p->nparts == 2 && get)
        return API_ROUTE_SESSION_LIST;
    if (p->nparts == 3 && get)
        return API_ROUTE_SESSION_GET;
    if (p->nparts == 3 && del)
        return API_ROUTE_SESSION_DELETE;
    if (p->nparts == 4 && post && api_path_is(p, 3, "end"))
        return API_ROUTE_SESSION_END;
    if (p->nparts == 4 && get && api_path_is(p, 3, "tracks"))
        return API_ROUTE_SESSION_TRACKS;
    if (p->nparts == 4 && get && api_path_is(p, 3, "manifest"))
        return API_ROUTE_SESSION_MANIFEST;
    if (p->nparts == 4 && post && api_path_is(p, 3, "participants"))
        return API_ROUTE_PARTICIPANT_JOIN;
    if (p->nparts == 6 && post && api_path_is(p, 3, "participants") &&
        api_path_is(p, 5, "ingest-token"))
        return API_ROUTE_INGEST_REFRESH;
    if (p->nparts == 6 && post && api_path_is(p, 3, "participants") &&
        api_path_is(p, 5, "progress"))
        return API_ROUTE_PARTICIPANT_PROGRESS;
    return API_ROUTE_NONE;
}

bool api_invite_route(const api_path *p, const char *method)
{
    return strcmp(method, "POST") == 0 && api_path_is(p, 1, "sessions") &&
           api_path_is(p, 3, "participants") &&
           (p->nparts == 4 || (p->nparts == 6 && (api_path_is(p, 5, "ingest-token") ||
                                                  api_path_is(p, 5, "progress"))));
}

int api_list_limit(const char *v, int *limit)
{
    char *end = NULL;
    long n = v ? strtol(v, &end, 10) : API_LIST_DEFAULT;
    if (v && (end == v || *end != '\0' || n < 1 || n > API_LIST_MAX))
        return -1;
    *limit = (int)n;
    return 0;
}

/* Splits "ssk_<prefix>_<secret>"; 0 when well formed. */
static int parse_key(const char *key, char prefix[API_KEY_PREFIX_HEX + 1])
{
    if (strncmp(key, "ssk_", 4) != 0 ||
        strlen(key) != 4 + API_KEY_PREFIX_HEX + 1 + API_KEY_SECRET_HEX ||
        key[4 + API_KEY_PREFIX_HEX] != '_')
        return -1;
    /* lowercase hex but for the one '_' checked above (which this loop
     * allowed anywhere, so that "ssk_0123_bcd_..." passed as a key) */
    for (const char *p = key + 4; *p; p++)
        if (p != key + 4 + API_KEY_PREFIX_HEX &&
            !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return -1;
    memcpy(prefix, key + 4, API_KEY_PREFIX_HEX);
    prefix[API_KEY_PREFIX_HEX] = '\0';
    return 0;
}

api_auth_kind api_authorization(const char *h, const char **credential,
                                char prefix[API_KEY_PREFIX_HEX + 1])
{
    if (h == NULL)
        return API_AUTH_MISSING;
    if (strncmp(h, "Bearer ", 7) != 0)
        return API_AUTH_NOT_BEARER;
    *credential = h + 7;
    if (strncmp(h + 7, "ssk_", 4) != 0)
        return API_AUTH_CLERK;
    return parse_key(h + 7, prefix) == 0 ? API_AUTH_KEY : API_AUTH_KEY_MALFORMED;
}

#define XFF_KEEP 16 /* the rightmost entries kept; API_TRUSTED_PROXIES is at most 8 */

bool api_forwarded_entry(const char *list, int64_t from_right, char *out, size_t len)
{
    char copy[2048], *kept[XFF_KEEP], *save = NULL;
    unsigned char bin[16];
    int n = 0;
    if (strlen(list) >= sizeof copy)
        return false;
    snprintf(copy, sizeof copy, "%s", list);
    for (char *e = strtok_r(copy, ",", &save); e != NULL; e = strtok_r(NULL, ",", &save))
        kept[n++ % XFF_KEEP] = e;
    if (n == 0)
        return false;
    int64_t i = n > from_right ? n - from_right : 0;
    if (n - i > XFF_KEEP)
        i = n - XFF_KEEP;
    char *ip = kept[i % XFF_KEEP];
    ip += strspn(ip, " \t");
    ip[strcspn(ip, " \t")] = '\0';
    if (inet_pton(AF_INET, ip, bin) != 1 && inet_pton(AF_INET6, ip, bin) != 1)
        return false;
    snprintf(out, len, "%s", ip);
    return true;
}

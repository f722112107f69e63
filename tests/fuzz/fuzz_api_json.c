/* fuzz_api_json.c -- token-issuer's request bodies (api_body.h) as
 * api.c and clerk.c take them.
 *
 * The first byte chooses what the rest is:
 *   0 mod 3: an API request body: api_body_parse with the service's limit
 *            (API_MAX_BODY) and flags, then every string field the routes
 *            read, with their limits and defaults, in route order;
 *   1 mod 3: a Clerk webhook: "secret\nid\ntimestamp\nsignature header\n"
 *            then the body; the Svix signature is computed and looked up
 *            in the header, the header is also checked against the real
 *            signature, and the body is read as clerk.c reads it;
 *   2 mod 3: the same API body path with too_large set. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    const char *field, *def;
    size_t max;
} field_rule;

/* session_create, may_join, participant_join (docs/api.md). */
static const field_rule rules[] = {
    {"title", "", API_MAX_TITLE},        {"invite", NULL, API_MAX_INVITE},
    {"display_name", "", API_MAX_NAME},  {"role", "guest", API_MAX_ROLE},
    {"identity", "x", API_MAX_IDENTITY},
};

static void api_body(const char *body, size_t len, bool too_large)
{
    json_t *obj = NULL;
    char why[256];
    api_body_result r =
        api_body_parse(body, len, too_large || len > API_MAX_BODY, &obj, why, sizeof why);
    /* OK means an object, or no body at all; failure leaves nothing to free */
    if ((r == API_BODY_OK && obj == NULL && len != 0) || (r != API_BODY_OK && obj != NULL))
        __builtin_trap();
    if (r != API_BODY_OK)
        return;
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const char *v = NULL;
        api_field_result f = api_body_string(obj, rules[i].field, rules[i].def, rules[i].max, &v);
        /* what api.c then passes to PostgreSQL and snprintf: a C string
         * within the limit */
        if (f == API_FIELD_OK && (v == NULL || strlen(v) > rules[i].max))
            __builtin_trap();
    }
    json_decref(obj);
}

/* Splits off the next '\n'-terminated line of [*p, end) as a C string. */
static char *next_line(const char **p, const char *end)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (nl == NULL)
        return NULL;
    char *s = strndup(*p, (size_t)(nl - *p));
    *p = nl + 1;
    return s;
}

static void webhook(const char *in, size_t len)
{
    const char *p = in, *end = in + len;
    char *secret = next_line(&p, end), *id = next_line(&p, end), *ts = next_line(&p, end);
    char *header = next_line(&p, end);
    char want[64], listed[80];
    if (secret && id && ts && header &&
        api_svix_signature(secret, id, ts, p, (size_t)(end - p), want) == 0) {
        if (strlen(want) != 44) /* base64 of 32 bytes */
            __builtin_trap();
        (void)api_svix_signature_listed(header, want);
        snprintf(listed, sizeof listed, "v0,x  v1,%s ", want);
        if (!api_svix_signature_listed(listed, want))
            __builtin_trap();
        /* clerk.c: the event as a JSON object with a type */
        json_t *ev = json_loadb(p, (size_t)(end - p), 0, NULL);
        const char *type = json_string_value(json_object_get(ev, "type"));
        if (type != NULL)
            (void)json_object_get(ev, "data");
        json_decref(ev);
    }
    free(secret);
    free(id);
    free(ts);
    free(header);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 3) {
    case 0:
        api_body(body, len, false);
        break;
    case 1:
        webhook(body, len);
        break;
    default:
        api_body(body, len, true);
        break;
    }
    return 0;
}

/* api_body.c -- request bodies: JSON object, string fields, Svix
 * signatures. */
#include "api_body.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

api_body_result api_body_parse(const char *body, size_t len, bool too_large, json_t **out,
                               char *why, size_t why_len)
{
    json_error_t jerr;
    *out = NULL;
    if (too_large)
        return API_BODY_TOO_LARGE;
    if (len == 0)
        return API_BODY_OK;
    json_t *v = json_loadb(body, len, API_BODY_JSON_FLAGS, &jerr);
    if (v == NULL) {
        if (why)
            snprintf(why, why_len, "body is not JSON: %s (line %d, column %d)", jerr.text,
                     jerr.line, jerr.column);
        return API_BODY_NOT_JSON;
    }
    if (!json_is_object(v)) {
        if (why)
            snprintf(why, why_len, "body must be a JSON object");
        json_decref(v);
        return API_BODY_NOT_OBJECT;
    }
    *out = v;
    return API_BODY_OK;
}

api_field_result api_body_string(json_t *body, const char *field, const char *def, size_t max,
                                 const char **out)
{
    json_t *v = body ? json_object_get(body, field) : NULL;
    if (v == NULL || json_is_null(v)) {
        if (def == NULL)
            return API_FIELD_MISSING;
        *out = def;
        return API_FIELD_OK;
    }
    if (!json_is_string(v) || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return API_FIELD_INVALID;
    *out = json_string_value(v);
    return API_FIELD_OK;
}

int api_svix_signature(const char *secret, const char *id, const char *ts, const char *body,
                       size_t len, char out[64])
{
    unsigned char key[256], mac[32];
    unsigned int maclen = 0;
    if (strncmp(secret, "whsec_", 6) == 0)
        secret += 6;
    size_t slen = strlen(secret);
    if (slen == 0 || slen > 340 || slen % 4 != 0)
        return -1;
    int klen = EVP_DecodeBlock(key, (const unsigned char *)secret, (int)slen);
    if (klen < 0)
        return -1;
    klen -= (secret[slen - 1] == '=') + (secret[slen - 2] == '=');
    size_t mlen = strlen(id) + strlen(ts) + len + 2;
    unsigned char *msg = malloc(mlen + 1);
    if (msg == NULL)
        return -1;
    int n = snprintf((char *)msg, mlen + 1, "%s.%s.", id, ts);
    memcpy(msg + n, body, len);
    HMAC(EVP_sha256(), key, klen, msg, mlen, mac, &maclen);
    free(msg);
    EVP_EncodeBlock((unsigned char *)out, mac, 32);
    return 0;
}

bool api_svix_signature_listed(const char *header, const char *want)
{
    size_t wlen = strlen(want);
    for (const char *p = header; p && *p;) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == wlen + 3 && strncmp(p, "v1,", 3) == 0 && CRYPTO_memcmp(p + 3, want, wlen) == 0)
            return true;
        p = end;
    }
    return false;
}

/* s3_presign.c -- presigned S3 GET URLs (SigV4 query signing, path-style,
 * UNSIGNED-PAYLOAD), byte for byte what the AWS SDK's presigner produces
 * for the same inputs (tests/api/presign_compare.mjs checks it). libcurl
 * signs headers, not URLs, so this one computation is ours. */
#include "seashore/s3.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define URL_MAX 4096

/* Appends s percent-encoded (RFC 3986 unreserved kept; '/' kept when
 * keep_slash). Returns the new length or -1 when out does not fit. */
static int encode(char *out, size_t cap, size_t at, const char *s, int keep_slash)
{
    static const char hexd[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~' ||
                    (keep_slash && *p == '/');
        if (at + 4 >= cap)
            return -1;
        if (plain) {
            out[at++] = (char)*p;
        } else {
            out[at++] = '%';
            out[at++] = hexd[*p >> 4];
            out[at++] = hexd[*p & 15];
        }
    }
    out[at] = '\0';
    return (int)at;
}

static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &len);
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", in[i]);
}

/* Splits the endpoint into scheme://host[:port] parts for URL and Host. */
static int endpoint_host(const char *endpoint, char *base, size_t blen, char *host, size_t hlen)
{
    const char *p = strstr(endpoint, "://");
    if (p == NULL)
        return -1;
    const char *h = p + 3;
    size_t n = strcspn(h, "/");
    if (n == 0 || n >= hlen || (size_t)(h - endpoint) + n >= blen)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    memcpy(base, endpoint, (size_t)(h - endpoint) + n);
    base[(size_t)(h - endpoint) + n] = '\0';
    /* default ports are not part of the signed host */
    size_t hl = strlen(host);
    if (strncmp(endpoint, "https", 5) == 0 && hl > 4 && strcmp(host + hl - 4, ":443") == 0)
        host[hl - 4] = '\0';
    else if (strncmp(endpoint, "http:", 5) == 0 && hl > 3 && strcmp(host + hl - 3, ":80") == 0)
        host[hl - 3] = '\0';
    return 0;
}

/* The query's parameters after X-Amz-Signature, in the sorted order both
 * the canonical request and the SDK's URL use. -1 when out is too small. */
static int query_tail(const char *content_disposition, char *out, size_t cap)
{
    int n = snprintf(out, cap, "&X-Amz-SignedHeaders=host");
    if (content_disposition != NULL) {
        n += snprintf(out + n, cap - (size_t)n, "&response-content-disposition=");
        if ((n = encode(out, cap, (size_t)n, content_disposition, 0)) < 0)
            return -1;
    }
    return snprintf(out + n, cap - (size_t)n, "&x-id=GetObject") < (int)(cap - (size_t)n) ? 0 : -1;
}

int ss_s3_presign_get(const ss_s3_config *c, const char *key, const char *content_disposition,
                      int64_t expires_s, time_t now, char **url_out, char *err, size_t errlen)
{
    char base[512], host[256], path[URL_MAX], query[URL_MAX], tail[URL_MAX], amzdate[17], day[9];
    char cred[512], canon[4 * URL_MAX], digest_hex[65], sts[512], sig_hex[65];
    unsigned char k[32], digest[32];
    struct tm tm;
    *url_out = NULL;
    if (expires_s < 1 || expires_s > SS_S3_PRESIGN_MAX_S) {
        snprintf(err, errlen, "expiry %lld s is outside 1..%d", (long long)expires_s,
                 SS_S3_PRESIGN_MAX_S);
        return -1;
    }
    if (endpoint_host(c->endpoint, base, sizeof base, host, sizeof host) != 0) {
        snprintf(err, errlen, "endpoint is not scheme://host[:port]");
        return -1;
    }
    gmtime_r(&now, &tm);
    strftime(amzdate, sizeof amzdate, "%Y%m%dT%H%M%SZ", &tm);
    strftime(day, sizeof day, "%Y%m%d", &tm);

    int n = snprintf(path, sizeof path, "/");
    if ((n = encode(path, sizeof path, (size_t)n, c->bucket, 0)) < 0 ||
        (size_t)n + 1 >= sizeof path)
        goto too_long;
    path[n++] = '/';
    if (encode(path, sizeof path, (size_t)n, key, 1) < 0)
        goto too_long;
    snprintf(cred, sizeof cred, "%s/%s/%s/s3/aws4_request", c->access_key, day, c->region);
    n = snprintf(query, sizeof query,
                 "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Content-Sha256="
                 "UNSIGNED-PAYLOAD&X-Amz-Credential=");
    if ((n = encode(query, sizeof query, (size_t)n, cred, 0)) < 0 ||
        snprintf(query + n, sizeof query - (size_t)n, "&X-Amz-Date=%s&X-Amz-Expires=%lld", amzdate,
                 (long long)expires_s) >= (int)(sizeof query - (size_t)n))
        goto too_long;
    if (query_tail(content_disposition, tail, sizeof tail) != 0)
        goto too_long;
    /* canonical request: the query without the signature */
    if (snprintf(canon, sizeof canon, "GET\n%s\n%s%s\nhost:%s\n\nhost\nUNSIGNED-PAYLOAD", path,
                 query, tail, host) >= (int)sizeof canon)
        goto too_long;
    EVP_Digest(canon, strlen(canon), digest, NULL, EVP_sha256(), NULL);
    hex(digest, 32, digest_hex);
    snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/s3/aws4_request\n%s", amzdate, day,
             c->region, digest_hex);

    char secret[300];
    snprintf(secret, sizeof secret, "AWS4%s", c->secret_key);
    hmac(secret, strlen(secret), day, k);
    hmac(k, 32, c->region, k);
    hmac(k, 32, "s3", k);
    hmac(k, 32, "aws4_request", k);
    hmac(k, 32, sts, digest);
    hex(digest, 32, sig_hex);
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(k, sizeof k);

    size_t cap = strlen(base) + strlen(path) + strlen(query) + strlen(tail) + 100;
    if ((*url_out = malloc(cap)) == NULL)
        goto too_long;
    snprintf(*url_out, cap, "%s%s?%s&X-Amz-Signature=%s%s", base, path, query, sig_hex, tail);
    return 0;
too_long:
    snprintf(err, errlen, "object key, content disposition or credentials too long to sign");
    return -1;
}

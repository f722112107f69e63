/* frame_check.c -- the stateless field checks of Hello, Chunk and End. */
#include "frame_check.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ingest.h"

static ing_check refuse(ing_check r, char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static ing_check refuse(ing_check r, char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;
    if (why_len == 0)
        return r;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return r;
}

ing_check ing_check_hello(const Seashore__V1__Hello *h, char *why, size_t why_len)
{
    if (h->protocol_version != ING_PROTOCOL_VER)
        return refuse(ING_CHECK_BAD_VERSION, why, why_len,
                      "Hello.protocol_version %" PRIu32 " is not supported; supported: %d",
                      h->protocol_version, ING_PROTOCOL_VER);
    if (!ss_uuid_valid(h->track_id))
        return refuse(ING_CHECK_BAD_FRAME, why, why_len,
                      "Hello.track_id is not a canonical lowercase UUID");
    if (h->kind == SEASHORE__V1__TRACK_KIND__TRACK_KIND_UNSPECIFIED || h->kind > 3)
        return refuse(ING_CHECK_BAD_FRAME, why, why_len, "Hello.kind is not set");
    if (h->mime_type[0] == '\0' || strlen(h->mime_type) > ING_MAX_TEXT)
        return refuse(ING_CHECK_BAD_FRAME, why, why_len,
                      "Hello.mime_type is empty or longer than 255 bytes");
    if (h->capture_start_unix_us <= 0)
        return refuse(ING_CHECK_BAD_FRAME, why, why_len, "Hello.capture_start_unix_us must be > 0");
    if (strlen(h->client_name) > ING_MAX_TEXT)
        return refuse(ING_CHECK_BAD_FRAME, why, why_len,
                      "Hello.client_name is longer than 255 bytes");
    return ING_CHECK_OK;
}

ing_check ing_check_chunk(const Seashore__V1__Chunk *k, int64_t max_chunk_bytes, char *why,
                          size_t why_len)
{
    if (k->data.len == 0)
        return refuse(ING_CHECK_BAD_FRAME, why, why_len, "chunk seq %" PRIu64 ": data is empty",
                      k->seq);
    if ((int64_t)k->data.len > max_chunk_bytes)
        return refuse(ING_CHECK_FRAME_TOO_LARGE, why, why_len,
                      "chunk seq %" PRIu64 ": data is %zu bytes, limit %" PRId64, k->seq,
                      k->data.len, max_chunk_bytes);
    if (k->sha256.len != 0 && k->sha256.len != 32)
        return refuse(ING_CHECK_BAD_FRAME, why, why_len,
                      "chunk seq %" PRIu64 ": sha256 is %zu bytes, must be 32 or absent", k->seq,
                      k->sha256.len);
    return ING_CHECK_OK;
}

ing_check ing_check_end(const Seashore__V1__End *e, char *why, size_t why_len)
{
    if (e->sha256.len != 32)
        return refuse(ING_CHECK_BAD_FRAME, why, why_len, "End.sha256 is %zu bytes, must be 32",
                      e->sha256.len);
    return ING_CHECK_OK;
}

/* frame_check.h -- the field checks of a client frame (docs/protocol.md)
 * that need no connection state: UUID, kind, text lengths, chunk and
 * digest sizes. conn.c runs them before looking at the connection; the
 * fuzz target tests/fuzz/fuzz_client_frame.c runs exactly these.
 *
 * Each check returns ING_CHECK_OK, or the kind of refusal with a sentence
 * for the Error frame in `why` (always NUL-terminated when why_len > 0). */
#ifndef INGEST_FRAME_CHECK_H
#define INGEST_FRAME_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "seashore/v1/ingest.pb-c.h"

typedef enum {
    ING_CHECK_OK = 0,
    ING_CHECK_BAD_FRAME,       /* BAD_FRAME, close 1002 (protocol error) */
    ING_CHECK_BAD_VERSION,     /* UNSUPPORTED_VERSION, close 1002 */
    ING_CHECK_FRAME_TOO_LARGE, /* FRAME_TOO_LARGE, close 1009 (message too big) */
} ing_check;

/* Hello: protocol_version, track_id, kind, mime_type, capture start,
 * client_name. */
ing_check ing_check_hello(const Seashore__V1__Hello *h, char *why, size_t why_len)
    __attribute__((warn_unused_result));
/* Chunk: data present and at most max_chunk_bytes, sha256 absent or 32
 * bytes. */
ing_check ing_check_chunk(const Seashore__V1__Chunk *k, int64_t max_chunk_bytes, char *why,
                          size_t why_len) __attribute__((warn_unused_result));
/* End: sha256 of exactly 32 bytes. */
ing_check ing_check_end(const Seashore__V1__End *e, char *why, size_t why_len)
    __attribute__((warn_unused_result));

#endif

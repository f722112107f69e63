/* fuzz_client_frame.c -- a websocket message as ingest-recorder receives
 * it: unpacked as a ClientFrame (conn.c on_frame), then the stateless
 * checks of Hello, Chunk and End (frame_check.h) that conn.c runs before
 * it looks at the connection. Run with the configured minimum and the
 * default MAX_CHUNK_BYTES so the size limit is reached by small inputs. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "frame_check.h"
#include "seashore/ingest_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int64_t limits[] = {1024, 1 << 20};

/* An accepted frame must hold what conn.c then relies on. */
static void check_accepted(const Seashore__V1__ClientFrame *f, int64_t limit)
{
    char why[256];
    switch (f->kind_case) {
    case SEASHORE__V1__CLIENT_FRAME__KIND_HELLO:
        if (ing_check_hello(f->hello, why, sizeof why) == ING_CHECK_OK &&
            (strlen(f->hello->track_id) != SS_UUID_LEN || strlen(f->hello->mime_type) > 255 ||
             (int)f->hello->kind < 1 || (int)f->hello->kind > 3 ||
             f->hello->capture_start_unix_us <= 0))
            __builtin_trap();
        break;
    case SEASHORE__V1__CLIENT_FRAME__KIND_CHUNK:
        if (ing_check_chunk(f->chunk, limit, why, sizeof why) == ING_CHECK_OK &&
            (f->chunk->data.len == 0 || (int64_t)f->chunk->data.len > limit ||
             (f->chunk->sha256.len != 0 && f->chunk->sha256.len != 32)))
            __builtin_trap();
        break;
    case SEASHORE__V1__CLIENT_FRAME__KIND_END:
        if (ing_check_end(f->end, why, sizeof why) == ING_CHECK_OK && f->end->sha256.len != 32)
            __builtin_trap();
        break;
    default: /* Ping: no field is refused; NOT_SET: refused by on_frame */
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Seashore__V1__ClientFrame *f = seashore__v1__client_frame__unpack(NULL, size, data);
    if (f == NULL)
        return 0;
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
        check_accepted(f, limits[i]);
    seashore__v1__client_frame__free_unpacked(f, NULL);
    return 0;
}

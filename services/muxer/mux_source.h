/* mux_source.h -- a raw track in the object store as an FFmpeg input:
 * read and seek callbacks for a custom AVIOContext, served by ranged GETs
 * through a window of fixed size, so memory does not grow with the
 * track. */
#ifndef MUX_SOURCE_H
#define MUX_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "seashore/s3_client.h"

typedef struct mx_s3_source {
    ss_s3_conn *conn; /* borrowed */
    char key[512];
    uint64_t size; /* object size, from HEAD */
    uint64_t pos;  /* next byte FFmpeg reads */
    uint8_t *win;  /* bytes [win_off, win_off + win_len) of the object */
    size_t win_cap, win_len;
    uint64_t win_off;
    int max_attempts;        /* per GET, for transient store errors */
    ss_s3_result last_error; /* why the last read failed */
} mx_s3_source;

/* HEADs key and allocates a window of window_bytes. 0, or -1 with the
 * reason in err (the store's code and message). Free with
 * mx_s3_source_close. */
int mx_s3_source_open(mx_s3_source *s, ss_s3_conn *conn, const char *key, size_t window_bytes,
                      char *err, size_t errlen);
void mx_s3_source_close(mx_s3_source *s);

/* AVIOContext callbacks (opaque is the mx_s3_source). read returns the
 * bytes copied, AVERROR_EOF at the end or AVERROR(EIO) when the store
 * keeps failing; seek supports SEEK_SET, SEEK_CUR, SEEK_END and
 * AVSEEK_SIZE. */
int mx_s3_read(void *opaque, uint8_t *buf, int size);
int64_t mx_s3_seek(void *opaque, int64_t offset, int whence);

#endif

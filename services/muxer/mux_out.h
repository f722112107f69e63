/* mux_out.h -- an output file written through a custom AVIOContext that
 * knows which fixed-size parts are final, so that it can be uploaded part
 * by part while the muxer still writes it (live muxing).
 *
 * A muxer appends, and at the end seeks back to patch its header (duration,
 * sizes, the MP4's moov in reserved space, the WAV's sizes). A part handed
 * out for upload (mx_out_claim) and written again afterwards is marked
 * dirty; mx_out_next_dirty gives those back for a second upload. Writes
 * come from one thread (the pass), claims from another (the uploader): a
 * mutex orders them.
 *
 * Ownership: mx_out_open creates the file (truncating it); mx_out_close
 * closes it and frees everything (the file stays on disk). */
#ifndef MUX_OUT_H
#define MUX_OUT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define MX_OUT_MAX_PARTS 10000 /* S3's limit on parts per upload */

struct AVIOContext;

typedef struct mx_out_file {
    pthread_mutex_t mu;
    int fd;
    uint64_t part_size;
    uint64_t pos;     /* where the next write goes (the writer's seek) */
    uint64_t written; /* file length: highest byte written + 1 */
    uint32_t claimed; /* parts 0..claimed-1 were handed out */
    bool finished;    /* the writer is done: the last part may be short */
    uint8_t *dirty;   /* per part: written again after it was claimed */
} mx_out_file;

/* Creates path. 0, or -1 (errno). */
int mx_out_open(mx_out_file *f, const char *path, uint64_t part_size);
void mx_out_close(mx_out_file *f); /* accepts a zeroed struct */

/* A write-only, seekable AVIOContext on f for a muxer's oc->pb; free with
 * mx_out_avio_free (not avio_closep). NULL when out of memory. */
struct AVIOContext *mx_out_avio(mx_out_file *f);
void mx_out_avio_free(struct AVIOContext **pb); /* flushes first */

/* The writer is done: every byte is final except dirty parts. */
void mx_out_finish(mx_out_file *f);

/* The next part that is complete and not yet claimed: true with *part and
 * *len (part_size, or less for the last part once finished). */
bool mx_out_claim(mx_out_file *f, uint32_t *part, uint64_t *len);

/* A claimed part written again since: true with *part and *len, and its
 * mark cleared (claim it again by uploading it again). */
bool mx_out_next_dirty(mx_out_file *f, uint32_t *part, uint64_t *len);

#endif

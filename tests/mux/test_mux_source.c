/* test_mux_source.c -- the muxer's object-store input (mux_source.c)
 * against s3rver: reads and seeks through a small window return exactly
 * the object's bytes, the end is AVERROR_EOF, a missing key is an error
 * naming the key, and FFmpeg probes a real media file through it. */
#include <libavformat/avformat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "harness.h"
#include "harness_s3.h"
#include "mux_source.h"
#include "seashore/s3_client.h"

#define OBJECT_BYTES (3 * 1024 * 1024 + 123)
#define WINDOW       (64 * 1024)

static uint8_t *object;

static void put_object(ss_s3_conn *conn, const char *key, const uint8_t *data, size_t len)
{
    char upload_id[256], etag[80];
    ss_s3_result res;
    CHECK(ss_s3_create_multipart(conn, key, NULL, upload_id, sizeof upload_id, &res) == 0);
    CHECK(ss_s3_upload_part(conn, key, upload_id, 1, data, len, etag, NULL, &res) == 0);
    ss_s3_part part = {.part_number = 1, .size = len};
    snprintf(part.etag, sizeof part.etag, "%s", etag);
    CHECK(ss_s3_complete_multipart(conn, key, upload_id, &part, 1, &res) == 0);
}

static void check_sequential(mx_s3_source *src)
{
    uint8_t buf[70000];
    size_t at = 0;
    unsigned int seed = 11;
    CHECK(mx_s3_seek(src, 0, SEEK_SET) == 0);
    for (;;) {
        int want = 1 + rand_r(&seed) % (int)sizeof buf;
        int n = mx_s3_read(src, buf, want);
        if (n == AVERROR_EOF)
            break;
        CHECK(n > 0 && n <= want);
        CHECK(at + (size_t)n <= OBJECT_BYTES);
        CHECK(memcmp(buf, object + at, (size_t)n) == 0);
        at += (size_t)n;
    }
    CHECK(at == OBJECT_BYTES);
}

static void check_seeks(mx_s3_source *src)
{
    uint8_t buf[4096];
    unsigned int seed = 5;
    CHECK(mx_s3_seek(src, 0, AVSEEK_SIZE) == OBJECT_BYTES);
    for (int i = 0; i < 200; i++) {
        int64_t off = rand_r(&seed) % OBJECT_BYTES;
        int whence = i % 3 == 0 ? SEEK_SET : i % 3 == 1 ? SEEK_END : SEEK_CUR;
        int64_t cur = mx_s3_seek(src, 0, SEEK_CUR);
        int64_t arg = whence == SEEK_SET   ? off
                      : whence == SEEK_END ? off - OBJECT_BYTES
                                           : off - cur;
        CHECK(mx_s3_seek(src, arg, whence) == off);
        int n = mx_s3_read(src, buf, sizeof buf);
        CHECK(n > 0);
        CHECK(memcmp(buf, object + off, (size_t)n) == 0);
    }
    CHECK(mx_s3_seek(src, -1, SEEK_SET) < 0);
    CHECK(mx_s3_seek(src, 0, SEEK_END) == OBJECT_BYTES);
    CHECK(mx_s3_read(src, buf, sizeof buf) == AVERROR_EOF);
}

/* FFmpeg reads a WebM made by the ffmpeg CLI through the callbacks. */
static void check_probe(harness *h, ss_s3_conn *conn)
{
    char path[600], cmd[1400];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/in.webm", harness_dir(h));
    snprintf(cmd, sizeof cmd,
             "ffmpeg -v error -y -f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i "
             "sine=frequency=440:sample_rate=48000 -t 2 -c:v libvpx -b:v 300k -c:a libopus '%s'",
             path);
    CHECK(system(cmd) == 0);
    char *media = harness_read_file(path, &len);
    CHECK(media != NULL && len > 0);
    put_object(conn, "raw/probe.webm", (const uint8_t *)media, len);
    free(media);

    mx_s3_source src;
    char err[512];
    CHECK(mx_s3_source_open(&src, conn, "raw/probe.webm", WINDOW, err, sizeof err) == 0);
    uint8_t *iobuf = av_malloc(WINDOW);
    AVIOContext *avio = avio_alloc_context(iobuf, WINDOW, 0, &src, mx_s3_read, NULL, mx_s3_seek);
    AVFormatContext *fmt = avformat_alloc_context();
    CHECK(avio && fmt);
    fmt->pb = avio;
    CHECK(avformat_open_input(&fmt, NULL, NULL, NULL) == 0);
    CHECK(avformat_find_stream_info(fmt, NULL) >= 0);
    CHECK(fmt->nb_streams == 2);
    AVPacket *pkt = av_packet_alloc();
    int packets = 0;
    while (av_read_frame(fmt, pkt) >= 0) {
        packets++;
        av_packet_unref(pkt);
    }
    CHECK(packets > 50);
    av_packet_free(&pkt);
    avformat_close_input(&fmt);
    av_freep(&avio->buffer);
    avio_context_free(&avio);
    mx_s3_source_close(&src);
}

int main(void)
{
    harness *h = harness_new("mux-source");
    harness_s3 s3;
    CHECK(h != NULL);
    CHECK(harness_s3_start(h, &s3) == 0);
    ss_s3_config cfg = {.endpoint = s3.endpoint,
                        .access_key = s3.access_key,
                        .secret_key = s3.secret_key,
                        .bucket = s3.bucket,
                        .region = "us-east-1"};
    ss_s3_client *client = NULL;
    char err[512];
    CHECK(ss_s3_client_new(&cfg, NULL, &client, err, sizeof err) == 0);
    ss_s3_conn *conn = ss_s3_conn_new(client);
    CHECK(conn != NULL);

    object = malloc(OBJECT_BYTES);
    CHECK(object != NULL);
    unsigned int seed = 3;
    for (size_t i = 0; i < OBJECT_BYTES; i++)
        object[i] = (uint8_t)rand_r(&seed);
    put_object(conn, "raw/bytes.bin", object, OBJECT_BYTES);

    mx_s3_source src;
    CHECK(mx_s3_source_open(&src, conn, "raw/bytes.bin", WINDOW, err, sizeof err) == 0);
    CHECK(src.size == OBJECT_BYTES);
    check_sequential(&src);
    check_seeks(&src);
    mx_s3_source_close(&src);

    CHECK(mx_s3_source_open(&src, conn, "raw/missing.bin", WINDOW, err, sizeof err) == -1);
    CHECK(strstr(err, "raw/missing.bin") != NULL);
    mx_s3_source_close(&src);

    check_probe(h, conn);

    free(object);
    ss_s3_conn_free(conn);
    ss_s3_client_free(client);
    harness_s3_stop(h, &s3);
    harness_free(h);
    return check_finish();
}

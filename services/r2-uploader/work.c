/* work.c -- the consumer threads (libseashore work.h): UPLOAD_CONCURRENCY
 * part workers on work.upload, one on work.complete and one on
 * work.session.delete. Each thread owns its store connection, database
 * connection, NATS connection for chunk-log reads and part buffer, so part
 * data in memory is at most about part size x (concurrency + 1), plus up
 * to 2 MiB of chunk-log replies in flight per part worker (part_read.c). */
#include "uploader.h"

#include <stdlib.h>

#include "seashore/log.h"

static int transfer_progress(void *arg)
{
    return ss_work_heartbeat(arg);
}

static int thread_init(ss_work_item *w)
{
    up_item *it = (up_item *)w;
    it->s3 = ss_s3_conn_new(up.s3);
    it->pg = ss_pg_open(up.svc->database_url);
    if (it->s3 == NULL || it->pg == NULL)
        return -1;
    /* nats-server serves one connection's requests in order, on one
     * thread: reads on the shared connection queued behind each other */
    if (ss_nats_connect(&it->reads, up.svc->nats_url, "r2-uploader-reads") != NATS_OK)
        return -1;
    ss_s3_conn_set_progress(it->s3, transfer_progress, &it->w);
    return 0;
}

static void thread_fini(ss_work_item *w)
{
    up_item *it = (up_item *)w;
    ss_s3_conn_free(it->s3);
    ss_pg_close(it->pg);
    ss_nats_close(&it->reads);
    free(it->buf);
}

static ss_work_verdict part_entry(ss_work_item *w, const uint8_t *data, size_t len)
{
    return up_handle_part((up_item *)w, data, len);
}

static ss_work_verdict complete_entry(ss_work_item *w, const uint8_t *data, size_t len)
{
    return up_handle_complete((up_item *)w, data, len);
}

static ss_work_verdict delete_entry(ss_work_item *w, const uint8_t *data, size_t len)
{
    return up_handle_session_delete((up_item *)w, data, len);
}

int up_workers_start(void)
{
    const ss_work_spec specs[] = {
        {UP_STREAM_WORK, "work.upload", UP_CONSUMER_PARTS, (int)up.concurrency, sizeof(up_item),
         part_entry, thread_init, thread_fini},
        {UP_STREAM_WORK, "work.complete", UP_CONSUMER_DONE, 1, sizeof(up_item), complete_entry,
         thread_init, thread_fini},
        {UP_STREAM_SESSIONS, "work.session.delete", UP_CONSUMER_DELETE, 1, sizeof(up_item),
         delete_entry, thread_init, thread_fini},
    };
    ss_work_opts opts = {.ack_wait_ms = up.ack_wait_ms, .retry_max_ms = up.retry_max_ms};
    return ss_work_start(up.svc, specs, sizeof specs / sizeof specs[0], &opts);
}

void up_workers_join(void)
{
    ss_work_join();
}

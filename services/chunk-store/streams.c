/* streams.c -- creates or updates the CHUNKS and WORK streams
 * (docs/chunk-path.md); retried until JetStream answers. */
#include "chunk_store.h"

#include <unistd.h>

#include "seashore/drain.h"
#include "seashore/log.h"

#define FRAME_ALLOWANCE     65536
#define DUP_WINDOW_NS       (120LL * 1000 * 1000 * 1000)
#define RETRY_INTERVAL_US   500000
#define SESSIONS_MAX_AGE_NS (7LL * 24 * 3600 * 1000 * 1000 * 1000)

static const char *chunk_subjects[] = {"chunks.>"};
static const char *work_subjects[] = {"work.upload", "work.complete", "work.mux"};
/* Every service gets each SessionDelete (its own durable consumer), which
 * a work-queue stream cannot do: a stream of its own, kept for a week. */
static const char *session_subjects[] = {"work.session.delete"};
static const char *admission_subjects[] = {"admit.*"};

/* Adds the stream, or updates it when it exists (limits may have changed). */
static natsStatus stream_apply(cs_ctx *cs, jsStreamConfig *cfg, jsErrCode *jerr)
{
    jsStreamInfo *si = NULL;
    natsStatus s = js_AddStream(&si, cs->js, cfg, NULL, jerr);
    if (s != NATS_OK && *jerr == JSStreamNameExistErr)
        s = js_UpdateStream(&si, cs->js, cfg, NULL, jerr);
    jsStreamInfo_Destroy(si);
    return s;
}

static natsStatus ensure_chunks(cs_ctx *cs, jsErrCode *jerr)
{
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = CS_STREAM_CHUNKS;
    cfg.Subjects = chunk_subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_LimitsPolicy;
    cfg.Discard = js_DiscardNew;
    cfg.MaxBytes = cs->log_max_bytes;
    cfg.MaxMsgSize = (int32_t)(cs->max_chunk_bytes + FRAME_ALLOWANCE);
    cfg.Replicas = cs->replicas;
    cfg.Duplicates = DUP_WINDOW_NS;
    cfg.AllowDirect = true;
    return stream_apply(cs, &cfg, jerr);
}

static natsStatus ensure_work(cs_ctx *cs, jsErrCode *jerr)
{
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = CS_STREAM_WORK;
    cfg.Subjects = work_subjects;
    cfg.SubjectsLen = sizeof work_subjects / sizeof work_subjects[0];
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_WorkQueuePolicy;
    cfg.Replicas = cs->replicas;
    cfg.Duplicates = DUP_WINDOW_NS;
    return stream_apply(cs, &cfg, jerr);
}

static natsStatus ensure_sessions(cs_ctx *cs, jsErrCode *jerr)
{
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = CS_STREAM_SESSIONS;
    cfg.Subjects = session_subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_LimitsPolicy;
    cfg.MaxAge = SESSIONS_MAX_AGE_NS;
    cfg.Replicas = cs->replicas;
    cfg.Duplicates = DUP_WINDOW_NS;
    return stream_apply(cs, &cfg, jerr);
}

/* One message per recording track (admission.c); a full stream refuses
 * the next track. */
static natsStatus ensure_admission(cs_ctx *cs, int64_t tracks, jsErrCode *jerr)
{
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = CS_STREAM_ADMISSION;
    cfg.Subjects = admission_subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_LimitsPolicy;
    cfg.Discard = js_DiscardNew;
    cfg.MaxMsgs = tracks;
    cfg.MaxMsgsPerSubject = 1;
    cfg.Replicas = cs->replicas;
    return stream_apply(cs, &cfg, jerr);
}

int cs_streams_ensure(cs_ctx *cs)
{
    int64_t tracks = cs_admission_tracks(cs);
    for (;;) {
        jsErrCode jerr = 0;
        natsStatus s = ensure_chunks(cs, &jerr);
        if (s == NATS_OK)
            s = ensure_work(cs, &jerr); /* first: it may still hold the session subject */
        if (s == NATS_OK)
            s = ensure_sessions(cs, &jerr);
        if (s == NATS_OK)
            s = ensure_admission(cs, tracks, &jerr);
        if (s == NATS_OK) {
            ss_log_info("streams ready", "{s:s, s:s, s:I, s:I, s:I}", "chunks", CS_STREAM_CHUNKS,
                        "work", CS_STREAM_WORK, "max_bytes", (long long)cs->log_max_bytes,
                        "recording_tracks_max", (long long)tracks, "replicas",
                        (long long)cs->replicas);
            return 0;
        }
        ss_log_warn("cannot create streams, retrying", "{s:s, s:i, s:s}", "error",
                    natsStatus_GetText(s), "js_error", (int)jerr, "last_error",
                    nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "");
        if (ss_drain_requested())
            return -1;
        usleep(RETRY_INTERVAL_US);
    }
}

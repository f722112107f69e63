/* test_chaos.c -- nothing recorded is lost, whatever fails.
 *
 * CLIENTS seashore-send clients post real media at a steady rate, a new
 * track as soon as one is committed, for the whole run, through the whole
 * pipeline (ingest-recorder, chunk-store, r2-uploader, muxer, token-issuer,
 * nats-server, PostgreSQL, s3rver) while a seeded driver injects one fault
 * at a time: kill -9 of a service and its restart, a restart or a kill -9
 * of nats-server, a fast shutdown and restart of PostgreSQL, or a pause
 * (SIGSTOP, SIGCONT seconds later) of any of them; a PostgreSQL pause stops
 * the postmaster and every backend. The driver's first faults are every
 * target with every action, in a seeded order, so each is faulted in any
 * run, however slow the machine; random ones follow. Clients reconnect and
 * resume.
 *
 * Every track is its own media: a VP8/Opus WebM made by ffmpeg, with one of
 * VIDEO_VARIANTS videos and its own sine tone, so no 32 KiB chunk of any
 * track equals any chunk of another (checked): a chunk routed into the
 * wrong track changes the track's sha256.
 *
 * Checked at the end, and each one fails the test:
 *   - every driver target (five services, nats-server, PostgreSQL) was
 *     killed and paused at least once, nats-server also restarted;
 *   - every sender exited 0 with every chunk committed (--wait-committed),
 *     and none saw the backend ask again for a committed chunk (its
 *     --stats-json "committed_rerequested"), which a browser has deleted;
 *   - every track's raw object is byte-exact: sha256 against the exact
 *     file its client sent;
 *   - every track's outputs are settled within SETTLE_MS overall (else the
 *     stuck tracks are listed) and in the expected states: webm and wav
 *     done, mp4 skipped for MUXER_TRANSCODE;
 *   - the outputs of every track (up to OUTPUT_CHECK_ALL tracks; beyond,
 *     a deterministic sample of that many) are fetched with their sha256
 *     against PostgreSQL's and decode cleanly; the WebM is VP8/Opus, has
 *     Cues and lasts as long as its input to one frame; the WAV is 48 kHz.
 * It prints the faults per target, tracks, chunks, bytes and bytes lost
 * (which must be 0).
 *
 *   CHAOS_MINUTES (default 2)  how long faults are injected (at least until
 *                              every target has had each of its faults)
 *   CHAOS_SEED    (default 1)  the driver's seed: a run's faults are
 *                              reproducible (their timing is wall clock)
 *   make chaos MINUTES=30 SEED=7
 */
#include "check.h"
#include "mux_util.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seashore/ingest_token.h"

#define CLIENTS          20
#define CHUNK_SIZE       32768
#define CHUNK_SIZE_ARG   "32768" /* CHUNK_SIZE, for seashore-send */
#define RATE             "1.5"   /* chunks per second per client */
#define MEDIA_SECONDS    30
#define FRAME_SECONDS    (1.0 / 25) /* the video's frame rate is 25 */
#define VIDEO_VARIANTS   2
#define SETTLE_MS        600000 /* after the faults, for all of it: senders done, tracks muxed */
#define OUTPUT_CHECK_ALL 200    /* up to this many tracks, every track's outputs are fetched */
#define MAX_TRACKS       100000
#define MEDIA_AHEAD      6 /* track files made ahead of the tracks started */

enum target { T_INGEST, T_STORE, T_UPLOADER, T_MUXER, T_ISSUER, T_NATS, T_PG, T_COUNT };
#define NSERVICES T_NATS /* the targets before it are our services */

/* A_KILL is kill -9 and a restart; for PostgreSQL, a fast shutdown and a
 * restart. A_RESTART (nats-server only) is a graceful restart. */
enum action { A_KILL, A_RESTART, A_PAUSE, A_COUNT };

typedef struct fault {
    enum target target;
    enum action action;
} fault;

typedef struct service_ref {
    pid_t *pid;
    pid_t (*start)(ingest_stack *s);
} service_ref;

/* One track: the client that sends it and the file it sends. */
typedef struct chaos_track {
    char id[37];
    char session[37], participant[37]; /* a session of its own */
    pid_t pid;                         /* the sender while it runs, 0 after */
    int status;
    int64_t bytes;
} chaos_track;

static ingest_stack stack = {
    .with_issuer = true,
    .with_uploader = true,
    .with_muxer = true,
    .extra_env = {"UPLOAD_PART_SIZE=5MiB", "UPLOAD_RETRY_MAX_DELAY=3s"},
    .muxer_env = {"MUXER_ACK_WAIT=10s", "MUXER_RETRY_MAX_DELAY=3s"},
    .uploader_env = {"UPLOAD_ACK_WAIT=10s"},
};

static const char *target_names[T_COUNT] = {"ingest-recorder", "chunk-store",  "r2-uploader",
                                            "muxer",           "token-issuer", "nats-server",
                                            "PostgreSQL"};
static service_ref services[NSERVICES] = {
    {&stack.ingest_pid, stack_start_ingest},     {&stack.store_pid, stack_start_store},
    {&stack.uploader_pid, stack_start_uploader}, {&stack.muxer_pid, stack_start_muxer},
    {&stack.issuer_pid, stack_start_issuer},
};

static unsigned int seed;
static int done[T_COUNT][A_COUNT]; /* faults injected, per target and action */
static int failed_faults;
static int pg_pause_min = -1; /* fewest processes a PostgreSQL pause stopped */
static chaos_track *tracks;
static int ntracks;
static int senders_failed;
static uint64_t *chunk_keys; /* 64 bits of every chunk's sha256, all tracks */
static size_t nchunk_keys, chunk_keys_cap;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int between(int lo, int hi)
{
    return lo + (int)(rand_r(&seed) % (unsigned)(hi - lo + 1));
}

/* ---- the faults ---- */

/* Starts the service again; a start that failed killed what it started. */
static int restart_service(enum target t)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        if (services[t].start(&stack) > 0)
            return 0;
        fprintf(stderr, "chaos: %s did not come back, trying again\n", target_names[t]);
        sleep(1);
    }
    return -1;
}

static int kill_service(enum target t)
{
    pid_t *pid = services[t].pid;
    if (*pid > 0) {
        harness_signal(stack.h, *pid, SIGKILL);
        harness_wait_exit(stack.h, *pid, 10000, NULL);
    }
    *pid = 0;
    usleep((useconds_t)between(200, 3000) * 1000);
    return restart_service(t);
}

static int kill_nats(void)
{
    harness_signal(stack.h, stack.nats.pid, SIGKILL);
    harness_wait_exit(stack.h, stack.nats.pid, 10000, NULL);
    stack.nats.pid = 0;
    usleep((useconds_t)between(200, 2000) * 1000);
    return harness_nats_restart(stack.h, &stack.nats);
}

static pid_t target_pid(enum target t)
{
    return t < NSERVICES ? *services[t].pid : t == T_NATS ? stack.nats.pid : stack.pg.pid;
}

/* SIGSTOP, 1-5 s, SIGCONT. PostgreSQL is the postmaster and its children
 * (the backends serving the services' connections, the auxiliaries): all
 * of them stop, or a pause would only hold up new connections. */
static int pause_target(enum target t)
{
    pid_t pid = target_pid(t);
    if (pid <= 0)
        return -1;
    int stopped = t == T_PG ? harness_signal_tree(stack.h, pid, SIGSTOP)
                            : (harness_signal(stack.h, pid, SIGSTOP) == 0 ? 1 : -1);
    usleep((useconds_t)between(1000, 5000) * 1000);
    int resumed = t == T_PG ? harness_signal_tree(stack.h, pid, SIGCONT)
                            : (harness_signal(stack.h, pid, SIGCONT) == 0 ? 1 : -1);
    if (stopped < 0 || resumed < 0)
        return -1;
    if (t == T_PG && (pg_pause_min < 0 || stopped < pg_pause_min))
        pg_pause_min = stopped;
    return 0;
}

static int inject(fault f)
{
    static const char *verbs[A_COUNT] = {"kill -9", "restart", "pause"};
    int rc;
    fprintf(stderr, "chaos: %s %s\n",
            f.target == T_PG && f.action == A_KILL ? "fast shutdown + restart" : verbs[f.action],
            target_names[f.target]);
    if (f.action == A_PAUSE)
        rc = pause_target(f.target);
    else if (f.action == A_RESTART)
        rc = harness_nats_restart(stack.h, &stack.nats);
    else if (f.target < NSERVICES)
        rc = kill_service(f.target);
    else if (f.target == T_NATS)
        rc = kill_nats();
    else
        rc = harness_pg_restart(stack.h, &stack.pg);
    if (rc != 0) {
        fprintf(stderr, "chaos: that fault failed\n");
        failed_faults++;
        return -1;
    }
    done[f.target][f.action]++;
    return 0;
}

/* Every target with every action it takes, in a seeded order. */
static int planned_faults(fault *out)
{
    int n = 0;
    for (int t = 0; t < T_COUNT; t++) {
        out[n++] = (fault){t, A_KILL};
        out[n++] = (fault){t, A_PAUSE};
        if (t == T_NATS)
            out[n++] = (fault){t, A_RESTART};
    }
    for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int j = between(0, i);
        fault tmp = out[i];
        out[i] = out[j];
        out[j] = tmp;
    }
    return n;
}

static fault random_fault(void)
{
    int kind = between(0, 99);
    if (kind < 45)
        return (fault){between(0, NSERVICES - 1), A_KILL};
    if (kind < 75)
        return (fault){between(0, T_COUNT - 1), A_PAUSE};
    if (kind < 82)
        return (fault){T_NATS, A_RESTART};
    if (kind < 88)
        return (fault){T_NATS, A_KILL};
    return (fault){T_PG, A_KILL};
}

/* ---- the media ---- */

static void media_path(int track, char *out, size_t len)
{
    snprintf(out, len, "%s/track-%05d.webm", harness_dir(stack.h), track);
}

static void video_path(int variant, char *out, size_t len)
{
    snprintf(out, len, "%s/video-%d.webm", harness_dir(stack.h), variant);
}

/* The videos the tracks share: testsrc2 from different points in time. */
static int make_videos(void)
{
    for (int v = 0; v < VIDEO_VARIANTS; v++) {
        char path[1024], cmd[1600];
        video_path(v, path, sizeof path);
        snprintf(cmd, sizeof cmd,
                 "ffmpeg -v error -y -ss %d -f lavfi -i testsrc2=size=320x240:rate=25 -t %d "
                 "-c:v libvpx -b:v 600k -deadline realtime -an -f webm -live 1 '%s'",
                 11 * v, MEDIA_SECONDS, path);
        if (system(cmd) != 0) {
            fprintf(stderr, "chaos: ffmpeg could not make %s\n", path);
            return -1;
        }
    }
    return 0;
}

/* Remembers 64 bits of the sha256 of each CHUNK_SIZE slice of the file. */
static int note_chunks(const char *path, int64_t *bytes)
{
    size_t len = 0;
    unsigned char *data = (unsigned char *)harness_read_file(path, &len);
    int rc = -1;
    if (data == NULL)
        return -1;
    size_t n = (len + CHUNK_SIZE - 1) / CHUNK_SIZE;
    if (nchunk_keys + n > chunk_keys_cap) {
        size_t cap = (nchunk_keys + n) * 2;
        uint64_t *grown = realloc(chunk_keys, cap * sizeof *grown);
        if (grown == NULL)
            goto out;
        chunk_keys = grown;
        chunk_keys_cap = cap;
    }
    for (size_t off = 0; off < len; off += CHUNK_SIZE) {
        unsigned char sha[EVP_MAX_MD_SIZE];
        size_t part = len - off < CHUNK_SIZE ? len - off : CHUNK_SIZE;
        if (EVP_Digest(data + off, part, sha, NULL, EVP_sha256(), NULL) != 1)
            goto out;
        memcpy(&chunk_keys[nchunk_keys++], sha, sizeof(uint64_t));
    }
    *bytes = (int64_t)len;
    rc = 0;
out:
    free(data);
    return rc;
}

/* The track's own file: a shared video and a tone of its own. */
static int make_track_media(int track, int64_t *bytes)
{
    char video[1024], path[1024], cmd[2600];
    video_path(track % VIDEO_VARIANTS, video, sizeof video);
    media_path(track, path, sizeof path);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -v error -y -i '%s' -f lavfi -i sine=frequency=%d:sample_rate=48000 "
             "-map 0:v -map 1:a -t %d -c:v copy -c:a libopus -f webm -live 1 '%s'",
             video, 200 + 7 * (track % 2000), MEDIA_SECONDS, path);
    if (system(cmd) != 0) {
        fprintf(stderr, "chaos: ffmpeg could not make %s\n", path);
        return -1;
    }
    return note_chunks(path, bytes);
}

/* The track files are made ahead on a thread of their own, so the faults
 * do not wait for ffmpeg. It alone writes chunk_keys and tracks[].bytes of
 * the files it has not published yet (made). */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool running, stop, failed;
    int made;   /* files 0..made-1 are ready */
    int wanted; /* files 0..wanted-1 are wanted */
} maker = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void *maker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&maker.lock);
    for (;;) {
        while (!maker.stop && maker.made >= maker.wanted)
            pthread_cond_wait(&maker.cond, &maker.lock);
        if (maker.stop)
            break;
        int next = maker.made;
        pthread_mutex_unlock(&maker.lock);
        int rc = make_track_media(next, &tracks[next].bytes);
        pthread_mutex_lock(&maker.lock);
        if (rc != 0)
            maker.failed = true;
        else
            maker.made++;
        pthread_cond_broadcast(&maker.cond);
        if (rc != 0)
            break;
    }
    pthread_mutex_unlock(&maker.lock);
    return NULL;
}

static int maker_start(void)
{
    maker.wanted = CLIENTS + MEDIA_AHEAD;
    if (pthread_create(&maker.thread, NULL, maker_main, NULL) != 0) {
        fprintf(stderr, "chaos: cannot start the media thread\n");
        return -1;
    }
    maker.running = true;
    return 0;
}

static void maker_stop(void)
{
    if (!maker.running)
        return;
    pthread_mutex_lock(&maker.lock);
    maker.stop = true;
    pthread_cond_broadcast(&maker.cond);
    pthread_mutex_unlock(&maker.lock);
    pthread_join(maker.thread, NULL);
    maker.running = false;
}

/* Waits until track's file is made; asks for the next ones. */
static int media_ready(int track)
{
    pthread_mutex_lock(&maker.lock);
    int want = track + 1 + MEDIA_AHEAD < MAX_TRACKS ? track + 1 + MEDIA_AHEAD : MAX_TRACKS;
    if (maker.wanted < want) {
        maker.wanted = want;
        pthread_cond_broadcast(&maker.cond);
    }
    while (maker.made <= track && !maker.failed)
        pthread_cond_wait(&maker.cond, &maker.lock);
    int rc = maker.made > track ? 0 : -1;
    pthread_mutex_unlock(&maker.lock);
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* How many chunks equal another chunk (of any track, at any place). */
static size_t shared_chunks(void)
{
    size_t shared = 0;
    qsort(chunk_keys, nchunk_keys, sizeof *chunk_keys, cmp_u64);
    for (size_t i = 1; i < nchunk_keys; i++)
        shared += chunk_keys[i] == chunk_keys[i - 1];
    return shared;
}

/* ---- the clients ---- */

static void stats_path(int track, char *out, size_t len)
{
    snprintf(out, len, "%s/client-%05d.json", harness_dir(stack.h), track);
}

/* Sessions made ahead, SESSION_BATCH at a time, one per track: each
 * participant's WAV is padded with silence back to its session's start, so
 * 700 tracks of a 30-minute run in one session made WAVs of up to 30
 * minutes each, 46 GB in all, and filled the disk. */
#define SESSION_BATCH 64
#define CHAOS_TITLE   "chaos track"

static char session_pool[SESSION_BATCH][2][37];
static int pool_left;

/* -1 while PostgreSQL is down (the caller tries again later). */
static int pool_refill(void)
{
    char sql[1024], *rows = NULL;
    snprintf(sql, sizeof sql,
             "WITH s AS (INSERT INTO sessions (host_id, title) SELECT host_id, '" CHAOS_TITLE
             "' FROM sessions, generate_series(1, %d) WHERE id = '%s' RETURNING id), p AS "
             "(INSERT INTO participants (session_id, identity, role) SELECT id, 'chaos', "
             "'guest' FROM s RETURNING session_id, id) SELECT string_agg(session_id || ' ' || "
             "id, ' ') FROM p",
             SESSION_BATCH, stack.session_id);
    if (harness_pg_exec(&stack.pg, sql, &rows) != 0 || rows == NULL) {
        free(rows);
        return -1;
    }
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(rows, " ", &save); tok && n < 2 * SESSION_BATCH;
         tok = strtok_r(NULL, " ", &save), n++)
        snprintf(session_pool[n / 2][n % 2], 37, "%s", tok);
    free(rows);
    pool_left = n / 2;
    return pool_left > 0 ? 0 : -1;
}

/* A new track: its media, its id, its session, its client. */
static int start_track(int64_t ttl_s)
{
    char name[32], media[1024], stats[1024];
    if (ntracks == MAX_TRACKS)
        return -1;
    chaos_track *t = &tracks[ntracks];
    snprintf(t->id, sizeof t->id, "%08x-0000-4000-8000-%012d", seed, ntracks);
    if (media_ready(ntracks) != 0 || (pool_left == 0 && pool_refill() != 0))
        return -1;
    pool_left--;
    snprintf(t->session, sizeof t->session, "%s", session_pool[pool_left][0]);
    snprintf(t->participant, sizeof t->participant, "%s", session_pool[pool_left][1]);
    media_path(ntracks, media, sizeof media);
    stats_path(ntracks, stats, sizeof stats);
    snprintf(name, sizeof name, "client-%05d", ntracks);
    char *bin = harness_build_path("tools/seashore-send/seashore-send");
    char *tok = ss_ingest_token_issue(STACK_SECRET, strlen(STACK_SECRET), t->session,
                                      t->participant, NULL, (int64_t)time(NULL), ttl_s);
    if (bin == NULL || tok == NULL) {
        free(bin);
        free(tok);
        return -1;
    }
    /* clang-format off */
    char *argv[] = {bin, "--url", stack.ws_url, "--token", tok, "--rate", RATE,
                    "--chunk-size", CHUNK_SIZE_ARG, "--mime", "video/webm;codecs=vp8,opus",
                    "--track-id", t->id, "--wait-committed", "--stats-json", stats, "--quiet",
                    media, NULL};
    /* clang-format on */
    t->pid = stack_spawn(&stack, name, argv);
    free(bin);
    free(tok);
    if (t->pid <= 0)
        return -1;
    ntracks++;
    return 0;
}

/* Collects a sender that ended; false while it runs. */
static bool sender_ended(chaos_track *t, int timeout_ms)
{
    if (t->pid <= 0)
        return true;
    if (harness_wait_exit(stack.h, t->pid, timeout_ms, &t->status) != 0)
        return false;
    t->pid = 0;
    if (!WIFEXITED(t->status) || WEXITSTATUS(t->status) != 0) {
        fprintf(stderr, "chaos: the client of track %s ended with status %d\n", t->id, t->status);
        senders_failed++;
    }
    return true;
}

/* Starts a new track in each slot whose sender ended. */
static int clients_refill(int *slots, int64_t ttl)
{
    int rc = 0;
    for (int i = 0; i < CLIENTS; i++) {
        if (!sender_ended(&tracks[slots[i]], 0))
            continue;
        if (start_track(ttl) != 0)
            rc = -1; /* the slot keeps its ended track: tried again next time */
        else
            slots[i] = ntracks - 1;
    }
    return rc;
}

/* The client's --stats-json: its reconnects; false if it saw the backend
 * ask again for committed chunks, or wrote no statistics. */
static bool client_stats_clean(int track, int64_t *reconnects)
{
    char path[1024];
    json_error_t e;
    stats_path(track, path, sizeof path);
    json_t *j = json_load_file(path, 0, &e);
    json_t *rerequested = json_object_get(j, "committed_rerequested");
    bool ok = json_is_integer(rerequested) && json_integer_value(rerequested) == 0;
    if (!ok)
        fprintf(stderr, "chaos: track %s: %s\n", tracks[track].id,
                j == NULL      ? "no --stats-json"
                : !rerequested ? "no committed_rerequested in --stats-json"
                               : "the backend asked again for committed chunks");
    *reconnects += json_integer_value(json_object_get(j, "reconnects"));
    json_decref(j);
    return ok;
}

/* ---- the checks ---- */

/* Waits, until the deadline, for every track's three outputs to leave
 * 'pending'; lists the tracks that did not. */
static bool outputs_settled(int64_t deadline)
{
    char sql[1024], v[64];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM tracks t JOIN sessions s ON s.id = t.session_id WHERE s.title "
             "= '" CHAOS_TITLE "' AND (SELECT count(*) FROM outputs o WHERE o.track_id = t.id "
             "AND o.state <> 'pending') < 3");
    int64_t left = deadline - now_ms();
    if (up_wait_sql(&stack, sql, "0", left > 0 ? (int)left : 0, v, sizeof v))
        return true;
    size_t len = 65536;
    char *list = malloc(len);
    snprintf(sql, sizeof sql,
             "SELECT string_agg(t.id || ' (' || t.state || ': ' || coalesce((SELECT string_agg("
             "o.kind || ' ' || o.state, ', ' ORDER BY o.kind) FROM outputs o WHERE o.track_id = "
             "t.id), 'no outputs') || ')', '; ') FROM tracks t JOIN sessions s ON s.id = "
             "t.session_id WHERE s.title = '" CHAOS_TITLE "' AND (SELECT count(*) FROM outputs o "
             "WHERE o.track_id = t.id AND o.state <> 'pending') < 3");
    if (list != NULL && up_sql(&stack, sql, list, len) == 0)
        fprintf(stderr, "chaos: %s tracks not muxed %d s after the faults: %s\n", v,
                SETTLE_MS / 1000, list);
    free(list);
    return false;
}

/* webm and wav done, mp4 skipped for want of transcoding (VP8 input). */
static bool outputs_in_expected_states(const char *id)
{
    char sql[512], v[256];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(kind || '=' || state, ',' ORDER BY kind) FROM outputs WHERE "
             "track_id = '%s'",
             id);
    if (up_sql(&stack, sql, v, sizeof v) != 0 || strcmp(v, "mp4=skipped,wav=done,webm=done") != 0) {
        fprintf(stderr, "chaos: track %s has outputs '%s'\n", id, v);
        return false;
    }
    return mt_output_reason_contains(&stack, id, "mp4", "MUXER_TRANSCODE");
}

/* The WebM and WAV as PostgreSQL records them, sound and as long as the
 * input. The downloads are removed afterwards. */
static bool outputs_valid(int track)
{
    char media[1024], webm[1024] = "", wav[1024] = "";
    const char *id = tracks[track].id;
    media_path(track, media, sizeof media);
    bool ok = CHECK_EQ_INT(mt_fetch_output(&stack, id, "webm", webm, sizeof webm), 0) &&
              CHECK(mt_codecs_are(webm, "vp8,opus")) && CHECK(mt_has_cues(webm)) &&
              CHECK(mt_duration_is(webm, mt_decoded_seconds(media), FRAME_SECONDS)) &&
              CHECK(mt_decodes_cleanly(webm));
    ok = CHECK_EQ_INT(mt_fetch_output(&stack, id, "wav", wav, sizeof wav), 0) &&
         CHECK(mt_is_wav_48k(wav)) && CHECK(mt_decodes_cleanly(wav)) && ok;
    if (webm[0])
        unlink(webm);
    if (wav[0])
        unlink(wav);
    return ok;
}

typedef struct totals {
    int64_t chunks, bytes, lost, reconnects;
    int outputs_checked;
} totals;

static void check_track(int track, int stride, totals *sum)
{
    chaos_track *t = &tracks[track];
    char sql[256], v[64], media[1024];
    media_path(track, media, sizeof media);
    sum->bytes += t->bytes;
    snprintf(sql, sizeof sql, "SELECT coalesce(chunk_count, 0) FROM tracks WHERE id = '%s'", t->id);
    if (up_sql(&stack, sql, v, sizeof v) == 0)
        sum->chunks += strtoll(v, NULL, 10);
    CHECK(client_stats_clean(track, &sum->reconnects));
    if (!CHECK(up_object_matches(&stack, t->id, media)))
        sum->lost += t->bytes;
    CHECK(outputs_in_expected_states(t->id));
    if (track % stride == (int)(seed % (unsigned)stride)) {
        CHECK(outputs_valid(track));
        sum->outputs_checked++;
    }
}

static void check_tracks(totals *sum)
{
    char sql[256], v[64];
    int stride = (ntracks + OUTPUT_CHECK_ALL - 1) / OUTPUT_CHECK_ALL;
    if (stride < 1)
        stride = 1;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM tracks t JOIN sessions s ON s.id = t.session_id WHERE "
             "s.title = '" CHAOS_TITLE "'");
    CHECK_EQ_INT(up_sql(&stack, sql, v, sizeof v), 0);
    CHECK_EQ_INT(strtol(v, NULL, 10), ntracks); /* a missing one is also lost below */
    for (int i = 0; i < ntracks; i++)
        check_track(i, stride, sum);
    printf("chaos: outputs fetched and decoded for %d of %d tracks (%s)\n", sum->outputs_checked,
           ntracks, stride == 1 ? "all" : "every track whose index is the seed modulo the stride");
}

/* ---- the report ---- */

static void report_faults(unsigned first_seed, double minutes)
{
    int kinds[5] = {0}; /* service kill, pause, nats restart, nats kill, PostgreSQL */
    for (int t = 0; t < T_COUNT; t++) {
        kinds[0] += t < NSERVICES ? done[t][A_KILL] : 0;
        kinds[1] += done[t][A_PAUSE];
    }
    kinds[2] = done[T_NATS][A_RESTART];
    kinds[3] = done[T_NATS][A_KILL];
    kinds[4] = done[T_PG][A_KILL];
    printf("chaos: seed %u, %.1f min; faults: %d service kill -9 + restart; %d pauses; %d "
           "nats-server restarts; %d nats-server kill -9 + restart; %d PostgreSQL fast shutdown "
           "+ restart; total %d\n",
           first_seed, minutes, kinds[0], kinds[1], kinds[2], kinds[3], kinds[4],
           kinds[0] + kinds[1] + kinds[2] + kinds[3] + kinds[4]);
    for (int t = 0; t < T_COUNT; t++) {
        printf("chaos:   %-16s %s %d, pause %d", target_names[t],
               t == T_PG ? "fast shutdown" : "kill -9", done[t][A_KILL], done[t][A_PAUSE]);
        if (t == T_NATS)
            printf(", restart %d", done[t][A_RESTART]);
        if (t == T_PG && pg_pause_min > 0)
            printf(" (each pause stopped at least %d processes)", pg_pause_min);
        printf("\n");
    }
}

/* Each target killed and paused, nats-server restarted; a PostgreSQL
 * pause reached more than the postmaster. */
static void check_fault_coverage(void)
{
    for (int t = 0; t < T_COUNT; t++) {
        if (!CHECK(done[t][A_KILL] > 0 && done[t][A_PAUSE] > 0))
            fprintf(stderr, "chaos: %s was not killed and paused\n", target_names[t]);
    }
    CHECK(done[T_NATS][A_RESTART] > 0);
    CHECK(pg_pause_min > 1);
}

/* ---- the run ---- */

static void drive_faults(double minutes, int *slots, int64_t ttl)
{
    fault plan[2 * T_COUNT + 1];
    int planned = planned_faults(plan), next = 0;
    for (int64_t end = now_ms() + (int64_t)(minutes * 60000); now_ms() < end || next < planned;) {
        usleep((useconds_t)between(1000, 4000) * 1000);
        inject(next < planned ? plan[next++] : random_fault());
        CHECK_EQ_INT(clients_refill(slots, ttl), 0); /* a new track where one ended */
    }
}

static void test_chaos(void)
{
    const char *m = getenv("CHAOS_MINUTES"), *sd = getenv("CHAOS_SEED");
    double minutes = m ? strtod(m, NULL) : 2;
    seed = sd ? (unsigned)strtoul(sd, NULL, 10) : 1;
    unsigned int first_seed = seed;
    int slots[CLIENTS];
    int64_t ttl = (int64_t)(minutes * 60) + SETTLE_MS / 1000 + 600;
    tracks = calloc(MAX_TRACKS, sizeof *tracks);
    if (!CHECK(tracks != NULL) || !CHECK_EQ_INT(make_videos(), 0) ||
        !CHECK_EQ_INT(maker_start(), 0))
        return;
    for (int i = 0; i < CLIENTS; i++) {
        slots[i] = ntracks;
        if (!CHECK_EQ_INT(start_track(ttl), 0))
            return;
    }
    drive_faults(minutes, slots, ttl);
    maker_stop();
    CHECK_EQ_INT(failed_faults, 0);

    int64_t deadline = now_ms() + SETTLE_MS;
    for (int i = 0; i < ntracks; i++) {
        int64_t left = deadline - now_ms();
        if (!sender_ended(&tracks[i], left > 0 ? (int)left : 0)) {
            fprintf(stderr, "chaos: the client of track %s still runs %d s after the faults\n",
                    tracks[i].id, SETTLE_MS / 1000);
            senders_failed++;
        }
    }
    CHECK_EQ_INT(senders_failed, 0);
    CHECK(outputs_settled(deadline));

    totals sum = {0};
    check_tracks(&sum);
    size_t shared = shared_chunks();
    report_faults(first_seed, minutes);
    printf("chaos: %d tracks, %" PRId64 " chunks, %" PRId64 " bytes, %" PRId64
           " bytes lost; %" PRId64 " client reconnects; %zu chunks in the %d track files made, "
           "%zu alike\n",
           ntracks, sum.chunks, sum.bytes, sum.lost, sum.reconnects, nchunk_keys, maker.made,
           shared);
    check_fault_coverage();
    CHECK_EQ_INT(shared, 0);   /* else a misrouted chunk could pass unseen */
    CHECK(sum.reconnects > 0); /* ingest-recorder was killed under them */
    CHECK_EQ_INT(sum.lost, 0);
}

int main(void)
{
    if (stack_start(&stack, "test_chaos") != 0) {
        fprintf(stderr, "stack did not start\n");
        stack_stop(&stack);
        return 1;
    }
    TEST_RUN(test_chaos);
    maker_stop(); /* if the test returned early */
    CHECK_EQ_INT(stack_stop(&stack), 0);
    free(tracks);
    free(chunk_keys);
    return check_finish();
}

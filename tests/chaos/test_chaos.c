/* test_chaos.c -- nothing recorded is lost, whatever fails.
 *
 * CLIENTS seashore-send clients post real media (a VP8/Opus WebM made by
 * ffmpeg) at a steady rate, a new track as soon as one ends, for the whole
 * run, through the whole pipeline (ingest-recorder,
 * chunk-store, r2-uploader, muxer, token-issuer, nats-server, PostgreSQL,
 * s3rver) while a seeded driver injects one fault at a time: kill -9 of a
 * service and its restart, a restart of nats-server, a fast shutdown and
 * restart of PostgreSQL, or a pause (SIGSTOP, SIGCONT seconds later) of any
 * of them. Clients reconnect and resume. At the end every track's raw
 * object is byte-exact (sha256 against the file the client sent), every
 * track has a seekable WebM and a WAV that decode cleanly, and the test
 * prints the faults, chunks, bytes and bytes lost (which must be 0).
 *
 *   CHAOS_MINUTES (default 2)  how long faults are injected
 *   CHAOS_SEED    (default 1)  the driver's seed: a run is reproducible
 *   make chaos MINUTES=30 SEED=7
 */
#include "check.h"
#include "mux_util.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seashore/ingest_token.h"

#define CLIENTS       20
#define CHUNK_BYTES   "32768"
#define RATE          "1.5" /* chunks per second per client */
#define MEDIA_SECONDS "30"
#define SETTLE_MS     600000 /* after the faults: senders done, tracks muxed */
#define DECODE_SAMPLE 20

enum fault_kind { F_KILL, F_PAUSE, F_NATS, F_NATS_KILL, F_PG, F_KINDS };
static const char *fault_names[F_KINDS] = {"service kill -9 + restart", "pause (SIGSTOP/SIGCONT)",
                                           "nats-server restart", "nats-server kill -9 + restart",
                                           "PostgreSQL fast shutdown + restart"};

typedef struct service_ref {
    const char *name;
    pid_t *pid;
    pid_t (*start)(ingest_stack *s);
} service_ref;

static ingest_stack stack = {
    .with_issuer = true,
    .with_uploader = true,
    .with_muxer = true,
    .extra_env = {"UPLOAD_PART_SIZE=5MiB", "UPLOAD_RETRY_MAX_DELAY=3s"},
    .muxer_env = {"MUXER_ACK_WAIT=10s", "MUXER_RETRY_MAX_DELAY=3s"},
    .uploader_env = {"UPLOAD_ACK_WAIT=10s"},
};

static service_ref services[] = {
    {"ingest-recorder", &stack.ingest_pid, stack_start_ingest},
    {"chunk-store", &stack.store_pid, stack_start_store},
    {"r2-uploader", &stack.uploader_pid, stack_start_uploader},
    {"muxer", &stack.muxer_pid, stack_start_muxer},
    {"token-issuer", &stack.issuer_pid, stack_start_issuer},
};
#define NSERVICES ((int)(sizeof services / sizeof services[0]))

static unsigned int seed;
static int faults[F_KINDS];
static int tracks_started, senders_failed;

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

static int restart_service(service_ref *svc)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        if (svc->start(&stack) > 0)
            return 0;
        fprintf(stderr, "chaos: %s did not come back, trying again\n", svc->name);
        sleep(1);
    }
    return -1;
}

static int fault_kill(service_ref *svc)
{
    harness_signal(stack.h, *svc->pid, SIGKILL);
    harness_wait_exit(stack.h, *svc->pid, 10000, NULL);
    *svc->pid = 0;
    usleep((useconds_t)between(200, 3000) * 1000);
    return restart_service(svc);
}

/* Pauses a service, nats-server or PostgreSQL. */
static int fault_pause(pid_t pid)
{
    if (pid <= 0)
        return -1;
    harness_signal(stack.h, pid, SIGSTOP);
    usleep((useconds_t)between(1000, 5000) * 1000);
    return harness_signal(stack.h, pid, SIGCONT);
}

static int inject_one(void)
{
    int kind = between(0, 99);
    kind = kind < 45   ? F_KILL
           : kind < 75 ? F_PAUSE
           : kind < 82 ? F_NATS
           : kind < 88 ? F_NATS_KILL
                       : F_PG;
    int rc = 0;
    if (kind == F_KILL) {
        service_ref *svc = &services[between(0, NSERVICES - 1)];
        fprintf(stderr, "chaos: kill -9 %s\n", svc->name);
        rc = fault_kill(svc);
    } else if (kind == F_PAUSE) {
        int which = between(0, NSERVICES + 1);
        pid_t pid = which < NSERVICES    ? *services[which].pid
                    : which == NSERVICES ? stack.nats.pid
                                         : stack.pg.pid;
        fprintf(stderr, "chaos: pause %s\n",
                which < NSERVICES    ? services[which].name
                : which == NSERVICES ? "nats-server"
                                     : "postgres");
        rc = fault_pause(pid);
    } else if (kind == F_NATS) {
        fprintf(stderr, "chaos: restart nats-server\n");
        rc = harness_nats_restart(stack.h, &stack.nats);
    } else if (kind == F_NATS_KILL) {
        fprintf(stderr, "chaos: kill -9 nats-server\n");
        harness_signal(stack.h, stack.nats.pid, SIGKILL);
        harness_wait_exit(stack.h, stack.nats.pid, 10000, NULL);
        stack.nats.pid = 0;
        usleep((useconds_t)between(200, 2000) * 1000);
        rc = harness_nats_restart(stack.h, &stack.nats);
    } else {
        fprintf(stderr, "chaos: restart PostgreSQL (fast shutdown)\n");
        rc = harness_pg_restart(stack.h, &stack.pg);
    }
    faults[kind]++;
    return rc;
}

static pid_t start_client(int i, const char *media, int64_t ttl_s)
{
    char name[32];
    char *bin = harness_build_path("tools/seashore-send/seashore-send");
    char *tok = ss_ingest_token_issue(STACK_SECRET, strlen(STACK_SECRET), stack.session_id,
                                      stack.participant_id, NULL, (int64_t)time(NULL), ttl_s);
    snprintf(name, sizeof name, "client-%02d", i);
    char *argv[] = {bin,
                    "--url",
                    stack.ws_url,
                    "--token",
                    tok,
                    "--rate",
                    RATE,
                    "--chunk-size",
                    CHUNK_BYTES,
                    "--mime",
                    "video/webm;codecs=vp8,opus",
                    "--quiet",
                    (char *)media,
                    NULL};
    pid_t pid = stack_spawn(&stack, name, argv);
    free(bin);
    free(tok);
    return pid;
}

/* Every track byte-exact; its editor files present and sound. */
static void check_tracks(const char *media, long media_bytes, int64_t *chunks, int64_t *lost)
{
    char sql[512], v[64];
    char *ids = calloc((size_t)tracks_started + 1, 40);
    snprintf(sql, sizeof sql,
             "SELECT string_agg(id::text, ' ') FROM tracks WHERE participant_id = '%s'",
             stack.participant_id);
    if (ids == NULL || up_sql(&stack, sql, ids, (size_t)(tracks_started + 1) * 40) != 0)
        return;
    int n = 0, decoded = 0;
    for (char *save = NULL, *id = strtok_r(ids, " ", &save); id; id = strtok_r(NULL, " ", &save)) {
        n++;
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM outputs WHERE track_id = '%s' AND state <> 'pending'", id);
        CHECK(up_wait_sql(&stack, sql, "3", SETTLE_MS, v, sizeof v));
        snprintf(sql, sizeof sql, "SELECT coalesce(chunk_count, 0) FROM tracks WHERE id = '%s'",
                 id);
        up_sql(&stack, sql, v, sizeof v);
        *chunks += strtoll(v, NULL, 10);
        if (!CHECK(up_object_matches(&stack, id, media)))
            *lost += media_bytes;
        for (int k = 0; k < 2 && decoded < DECODE_SAMPLE * 2; k++, decoded++) {
            char path[1024];
            CHECK(mt_fetch_output(&stack, id, k == 0 ? "webm" : "wav", path, sizeof path) == 0 &&
                  mt_decodes_cleanly(path));
        }
    }
    free(ids);
    CHECK_EQ_INT(n, tracks_started);
    if (n < tracks_started)
        *lost += (int64_t)(tracks_started - n) * media_bytes;
}

/* Starts a new client (a new track) in each slot whose sender ended. */
static void clients_refill(pid_t *clients, const char *media, int64_t ttl)
{
    for (int i = 0; i < CLIENTS; i++) {
        int status = -1;
        if (harness_wait_exit(stack.h, clients[i], 0, &status) != 0)
            continue; /* still sending */
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "chaos: client %d ended with status %d\n", i, status);
            senders_failed++;
        }
        clients[i] = start_client(tracks_started++, media, ttl);
    }
}

static void test_chaos(void)
{
    const char *m = getenv("CHAOS_MINUTES"), *sd = getenv("CHAOS_SEED");
    double minutes = m ? strtod(m, NULL) : 2;
    seed = sd ? (unsigned)strtoul(sd, NULL, 10) : 1;
    unsigned int first_seed = seed;
    char media[1024], cmd[1400];
    snprintf(media, sizeof media, "%s/media.webm", harness_dir(stack.h));
    snprintf(cmd, sizeof cmd,
             "ffmpeg -v error -y -f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i "
             "sine=frequency=330:sample_rate=48000 -t %s -c:v libvpx -b:v 600k -deadline realtime "
             "-c:a libopus -f webm -live 1 '%s'",
             MEDIA_SECONDS, media);
    if (!CHECK_EQ_INT(system(cmd), 0))
        return;
    size_t media_bytes = 0;
    free(harness_read_file(media, &media_bytes));
    int64_t ttl = (int64_t)(minutes * 60) + SETTLE_MS / 1000 + 600;
    pid_t clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++, tracks_started++)
        CHECK((clients[i] = start_client(tracks_started, media, ttl)) > 0);

    int failed_faults = 0;
    for (int64_t end = now_ms() + (int64_t)(minutes * 60000); now_ms() < end;) {
        usleep((useconds_t)between(1000, 4000) * 1000);
        failed_faults += inject_one() != 0;
        clients_refill(clients, media, ttl); /* a new track where one ended */
    }
    CHECK_EQ_INT(failed_faults, 0);
    for (int i = 0; i < CLIENTS; i++)
        senders_failed += up_send_wait(&stack, clients[i], SETTLE_MS) != 0;
    CHECK_EQ_INT(senders_failed, 0);
    int64_t chunks = 0, lost = 0;
    check_tracks(media, (long)media_bytes, &chunks, &lost);
    printf("chaos: seed %u, %.1f min; faults:", first_seed, minutes);
    int total = 0;
    for (int k = 0; k < F_KINDS; k++) {
        printf(" %s %d;", fault_names[k], faults[k]);
        total += faults[k];
    }
    printf(" total %d\nchaos: %d tracks, %" PRId64 " chunks, %" PRId64 " bytes, %" PRId64
           " bytes lost\n",
           total, tracks_started, chunks, (int64_t)media_bytes * tracks_started, lost);
    CHECK_EQ_INT(lost, 0);
}

int main(void)
{
    if (stack_start(&stack, "test_chaos") != 0) {
        fprintf(stderr, "stack did not start\n");
        stack_stop(&stack);
        return 1;
    }
    TEST_RUN(test_chaos);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}

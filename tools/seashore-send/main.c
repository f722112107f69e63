/* main.c -- seashore-send: streams a recording to ingest-recorder over the
 * seashore.v1 websocket protocol (docs/protocol.md), as a recorder would.
 *
 *   seashore-send --url URL (--token TOKEN | --token-file PATH) [options] FILE|-
 *
 * The file is the local copy of the track: chunks are fixed-size slices of
 * it, re-read for every resend, so nothing but offsets is kept in memory.
 * stdin ('-') is spooled to an unlinked temporary file as it arrives and
 * sent from there, following it until EOF.
 *
 * Exit status: 0 every track ended (and was committed, with
 * --wait-committed), 1 a permanent error, 2 bad usage. */
#include "sender.h"

#include <openssl/rand.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char usage_text[] =
    "usage: " PROG " --url URL (--token TOKEN | --token-file PATH) [options] FILE|-\n"
    "  Streams FILE (or stdin: '-') to ingest-recorder as one track, resuming after any\n"
    "  disconnect, and waits until the server has verified it (Ended). Prints\n"
    "  \"<track_id> <chunk_count> <total_bytes> <sha256>\" per track on stdout.\n"
    "  --url URL             ws://host:port/v1/ingest, or wss:// (path defaults to /v1/ingest)\n"
    "  --token TOKEN         the ingest token (visible to ps: prefer --token-file)\n"
    "  --token-file PATH     read the ingest token from PATH\n"
    "  --track-id UUID       the track's id, e.g. to resume it (default: random v4 UUID)\n"
    "  --kind KIND           audio, video or audio_video (default audio_video)\n"
    "  --mime TYPE           MIME type (default from FILE's extension)\n"
    "  --chunk-size BYTES    chunk size (default 262144, capped to the server's limit);\n"
    "                        resuming a track needs the size it was started with\n"
    "  --follow              follow the input as it grows until EOF: always the case for\n"
    "                        '-', not available for a FILE (pipe it into '-' instead)\n"
    "  --wait-committed      after Ended, wait until the object store holds every chunk\n"
    "  --rate N              at most N chunks per second per track (0 = unlimited);\n"
    "                        with --copies, the copies start spread over one period\n"
    "  --copies N            send FILE as N independent tracks at once (tests, benchmarks)\n"
    "  --progress            a status line on stderr\n"
    "  --quiet               nothing on stderr but errors\n"
    "  --stats-json PATH     write statistics as JSON at exit\n"
    "  --give-up-after SEC   fail after SEC seconds of reconnecting (default 0: never)\n"
    "  --verbose             protocol events and libwebsockets warnings on stderr\n"
    "  --capture-start US    the capture start to report (Unix microseconds, client clock;\n"
    "                        default: now), e.g. to replay a recording at its real time\n"
    "  --clock-skew-ms MS    run the client's clock MS milliseconds ahead (negative: behind)\n"
    "                        of the machine's, as a guest's badly set clock would be (tests)\n"
    "  --help                this text\n"
    "Exit status: 0 every track ended, 1 a permanent error, 2 bad usage.\n";

static const char try_help[] = "Try '" PROG " --help'.\n";

/* ---- helpers ---- */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    fputs(try_help, stderr);
    return EXIT_USAGE;
}

static int parse_uint(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (!isdigit((unsigned char)arg[0]) || *end || errno || v < min || v > max)
        return usage_error("%s: '%s' is not a whole number from %llu to %llu", opt, arg,
                           (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

/* A signed number of milliseconds, at most a day either way, into us. */
static int parse_skew(const char *arg, int64_t *out_us)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (end == arg || *end || errno || v < -86400000LL || v > 86400000LL)
        return usage_error("--clock-skew-ms: '%s' is not a whole number from -86400000 to 86400000",
                           arg);
    *out_us = (int64_t)v * 1000;
    return 0;
}

static int parse_rate(const char *arg, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (end == arg || *end || errno || !isfinite(v) || v < 0 || v > 1e6)
        return usage_error("--rate: '%s' is not a number from 0 to 1000000", arg);
    *out = v;
    return 0;
}

static int parse_kind(const char *arg, Seashore__V1__TrackKind *out)
{
    if (strcmp(arg, "audio") == 0)
        *out = SEASHORE__V1__TRACK_KIND__TRACK_KIND_AUDIO;
    else if (strcmp(arg, "video") == 0)
        *out = SEASHORE__V1__TRACK_KIND__TRACK_KIND_VIDEO;
    else if (strcmp(arg, "audio_video") == 0)
        *out = SEASHORE__V1__TRACK_KIND__TRACK_KIND_AUDIO_VIDEO;
    else
        return usage_error("--kind: '%s' is not audio, video or audio_video", arg);
    return 0;
}

/* Lowercases `id` in place; 0 if it is then a canonical UUID. */
static int canonical_uuid(char *id)
{
    if (strlen(id) != UUID_LEN)
        return -1;
    for (int i = 0; i < UUID_LEN; i++) {
        id[i] = (char)tolower((unsigned char)id[i]);
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? id[i] != '-' : !isxdigit((unsigned char)id[i]))
            return -1;
    }
    return 0;
}

static int random_uuid(char out[UUID_LEN + 1])
{
    unsigned char b[16];
    char hex[33];
    if (RAND_bytes(b, sizeof b) != 1) {
        fprintf(stderr, PROG ": RAND_bytes failed: no random track id\n");
        return -1;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    hex_encode(b, sizeof b, hex);
    snprintf(out, UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
    return 0;
}

static const char *guess_mime(const char *file)
{
    static const struct {
        const char *ext, *mime;
    } table[] = {{".webm", "video/webm"},
                 {".mp4", "video/mp4"},
                 {".ogg", "audio/ogg"},
                 {".opus", "audio/ogg"},
                 {".wav", "audio/wav"}};
    const char *dot = strrchr(file, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
            if (strcasecmp(dot, table[i].ext) == 0)
                return table[i].mime;
    return "application/octet-stream";
}

/* ---- --url ---- */

static int parse_url(const char *arg, send_url *u)
{
    const char *p, *auth_end, *host_end;
    size_t hlen;
    if (strncmp(arg, "ws://", 5) == 0) {
        u->tls = false;
        p = arg + 5;
    } else if (strncmp(arg, "wss://", 6) == 0) {
        u->tls = true;
        p = arg + 6;
    } else {
        return usage_error("--url: '%s' does not start with ws:// or wss://", arg);
    }
    auth_end = p + strcspn(p, "/?#");
    if (*p == '[') { /* [IPv6] */
        host_end = memchr(p, ']', (size_t)(auth_end - p));
        if (!host_end)
            return usage_error("--url: '%s' has no ']' after the IPv6 address", arg);
        p++;
        hlen = (size_t)(host_end - p);
        host_end++;
    } else {
        host_end = memchr(p, ':', (size_t)(auth_end - p));
        if (!host_end)
            host_end = auth_end;
        hlen = (size_t)(host_end - p);
    }
    if (hlen == 0 || hlen >= sizeof u->host)
        return usage_error("--url: '%s' has no host (or a host name that is too long)", arg);
    memcpy(u->host, p, hlen);
    u->host[hlen] = '\0';
    u->port = u->tls ? 443 : 80;
    if (host_end < auth_end) {
        uint64_t port;
        char digits[8];
        size_t dlen = (size_t)(auth_end - host_end - 1);
        if (*host_end != ':' || dlen == 0 || dlen >= sizeof digits)
            return usage_error("--url: '%s' has a malformed port", arg);
        memcpy(digits, host_end + 1, dlen);
        digits[dlen] = '\0';
        if (parse_uint("--url port", digits, 1, 65535, &port) != 0)
            return EXIT_USAGE;
        u->port = (int)port;
    }
    const char *path = *auth_end == '/' || *auth_end == '?' ? auth_end : DEFAULT_PATH;
    if (*auth_end == '#')
        path = DEFAULT_PATH;
    int n = snprintf(u->path, sizeof u->path, "%s%s", *path == '?' ? DEFAULT_PATH : "", path);
    if (n < 0 || (size_t)n >= sizeof u->path)
        return usage_error("--url: the path of '%s' is too long", arg);
    char *frag = strchr(u->path, '#');
    if (frag)
        *frag = '\0';
    bool v6 = strchr(u->host, ':') != NULL;
    snprintf(u->host_hdr, sizeof u->host_hdr, "%s%s%s", v6 ? "[" : "", u->host, v6 ? "]" : "");
    if (u->port != (u->tls ? 443 : 80)) {
        size_t l = strlen(u->host_hdr);
        snprintf(u->host_hdr + l, sizeof u->host_hdr - l, ":%d", u->port);
    }
    return 0;
}

/* ---- the token ---- */

static int check_token(const char *opt, const char *tok)
{
    size_t len = strlen(tok);
    if (len == 0)
        return usage_error("%s: the token is empty", opt);
    if (len > MAX_TOKEN)
        return usage_error("%s: the token is %zu bytes, the limit is %d", opt, len, MAX_TOKEN);
    for (size_t i = 0; i < len; i++)
        if (!isgraph((unsigned char)tok[i]))
            return usage_error("%s: the token contains whitespace or control characters", opt);
    return 0;
}

/* Reads PATH, without trailing whitespace, into *out. */
static int read_token_file(const char *path, char **out)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = EXIT_USAGE;
    FILE *f = fopen(path, "rb");
    if (!f) {
        usage_error("--token-file: cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if (!(buf = malloc(MAX_TOKEN + 2))) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = EXIT_FAIL;
        goto out;
    }
    len = fread(buf, 1, MAX_TOKEN + 1, f);
    if (ferror(f)) {
        usage_error("--token-file: cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    while (len > 0 && isspace((unsigned char)buf[len - 1]))
        len--;
    buf[len] = '\0';
    if (memchr(buf, '\0', len) || check_token("--token-file", buf) != 0)
        goto out;
    *out = buf;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    if (f)
        fclose(f);
    return rc;
}

/* ---- arguments ---- */

enum {
    OPT_URL = 256,
    OPT_TOKEN,
    OPT_TOKEN_FILE,
    OPT_TRACK_ID,
    OPT_KIND,
    OPT_MIME,
    OPT_CHUNK_SIZE,
    OPT_FOLLOW,
    OPT_WAIT_COMMITTED,
    OPT_RATE,
    OPT_COPIES,
    OPT_PROGRESS,
    OPT_QUIET,
    OPT_STATS_JSON,
    OPT_GIVE_UP,
    OPT_VERBOSE,
    OPT_CAPTURE_START,
    OPT_CLOCK_SKEW,
    OPT_HELP,
};

static const struct option longopts[] = {
    {"url", required_argument, NULL, OPT_URL},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"track-id", required_argument, NULL, OPT_TRACK_ID},
    {"kind", required_argument, NULL, OPT_KIND},
    {"mime", required_argument, NULL, OPT_MIME},
    {"chunk-size", required_argument, NULL, OPT_CHUNK_SIZE},
    {"follow", no_argument, NULL, OPT_FOLLOW},
    {"wait-committed", no_argument, NULL, OPT_WAIT_COMMITTED},
    {"rate", required_argument, NULL, OPT_RATE},
    {"copies", required_argument, NULL, OPT_COPIES},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"stats-json", required_argument, NULL, OPT_STATS_JSON},
    {"give-up-after", required_argument, NULL, OPT_GIVE_UP},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"capture-start", required_argument, NULL, OPT_CAPTURE_START},
    {"clock-skew-ms", required_argument, NULL, OPT_CLOCK_SKEW},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

typedef struct raw_args {
    const char *url, *token, *token_file, *track_id;
    bool follow;
} raw_args;

/* One option into o / r; 0, -1 for --help, else the exit status. */
static int take_option(int c, send_opts *o, raw_args *r)
{
    uint64_t v;
    switch (c) {
    case OPT_URL:
        r->url = optarg;
        return 0;
    case OPT_TOKEN:
        r->token = optarg;
        return 0;
    case OPT_TOKEN_FILE:
        r->token_file = optarg;
        return 0;
    case OPT_TRACK_ID:
        r->track_id = optarg;
        return 0;
    case OPT_KIND:
        return parse_kind(optarg, &o->kind);
    case OPT_MIME:
        if (!*optarg || strlen(optarg) > 255)
            return usage_error("--mime: the type must be 1 to 255 bytes long");
        o->mime = optarg;
        return 0;
    case OPT_CHUNK_SIZE:
        if (parse_uint("--chunk-size", optarg, 1, MAX_CHUNK_SIZE, &v) != 0)
            return EXIT_USAGE;
        o->chunk_size = (uint32_t)v;
        return 0;
    case OPT_FOLLOW:
        r->follow = true;
        return 0;
    case OPT_WAIT_COMMITTED:
        o->wait_committed = true;
        return 0;
    case OPT_RATE:
        return parse_rate(optarg, &o->rate);
    case OPT_COPIES:
        if (parse_uint("--copies", optarg, 1, MAX_COPIES, &v) != 0)
            return EXIT_USAGE;
        o->copies = (unsigned)v;
        return 0;
    case OPT_PROGRESS:
        o->progress = true;
        return 0;
    case OPT_QUIET:
        o->quiet = true;
        return 0;
    case OPT_STATS_JSON:
        o->stats_json = optarg;
        return 0;
    case OPT_GIVE_UP:
        if (parse_uint("--give-up-after", optarg, 0, 365u * 86400, &v) != 0)
            return EXIT_USAGE;
        o->give_up_after = (unsigned)v;
        return 0;
    case OPT_VERBOSE:
        o->verbose = true;
        return 0;
    case OPT_CAPTURE_START:
        if (parse_uint("--capture-start", optarg, 1, INT64_MAX, &v) != 0)
            return EXIT_USAGE;
        o->capture_start_unix_us = (int64_t)v;
        return 0;
    case OPT_CLOCK_SKEW:
        return parse_skew(optarg, &o->clock_skew_us);
    case OPT_HELP:
        fputs(usage_text, stdout);
        return -1;
    default: /* getopt_long named the option already */
        fputs(try_help, stderr);
        return EXIT_USAGE;
    }
}

/* The checks between options, once all are read. */
static int check_options(send_opts *o, raw_args *r)
{
    int rc;
    if (!r->url)
        return usage_error("--url is required");
    if ((rc = parse_url(r->url, &o->url)) != 0)
        return rc;
    if (!r->token == !r->token_file)
        return usage_error("give exactly one of --token and --token-file");
    if (o->progress && o->quiet)
        return usage_error("--progress and --quiet exclude each other");
    if (r->track_id && o->copies > 1)
        return usage_error("--track-id cannot be used with --copies %u (each copy is its own "
                           "track)",
                           o->copies);
    if (r->follow && strcmp(o->file, "-") != 0)
        return usage_error("--follow applies to '-' (stdin) only: pipe a growing file into "
                           "'-' instead");
    if (r->token) {
        if ((rc = check_token("--token", r->token)) != 0)
            return rc;
        if (!(o->token = strdup(r->token)))
            return EXIT_FAIL;
    } else if ((rc = read_token_file(r->token_file, &o->token)) != 0) {
        return rc;
    }
    if (!o->mime)
        o->mime = strcmp(o->file, "-") == 0 ? "application/octet-stream" : guess_mime(o->file);
    return 0;
}

static int assign_track_ids(send_opts *o, const char *given)
{
    if (!(o->track_ids = calloc(o->copies, sizeof *o->track_ids))) {
        fprintf(stderr, PROG ": out of memory\n");
        return EXIT_FAIL;
    }
    if (given) {
        snprintf(o->track_ids[0], sizeof o->track_ids[0], "%s", given);
        if (canonical_uuid(o->track_ids[0]) != 0)
            return usage_error("--track-id: '%s' is not a UUID "
                               "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                               given);
        return 0;
    }
    for (unsigned i = 0; i < o->copies; i++)
        if (random_uuid(o->track_ids[i]) != 0)
            return EXIT_FAIL;
    return 0;
}

/* 0 to run, -1 after --help, else the exit status. */
static int parse_args(int argc, char **argv, send_opts *o)
{
    raw_args r = {0};
    int c, rc;
    o->kind = SEASHORE__V1__TRACK_KIND__TRACK_KIND_AUDIO_VIDEO;
    o->chunk_size = DEFAULT_CHUNK_SIZE;
    o->copies = 1;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1)
        if ((rc = take_option(c, o, &r)) != 0)
            return rc;
    if (optind == argc)
        return usage_error("missing FILE (or '-' for stdin)");
    if (optind + 1 < argc)
        return usage_error("unexpected argument '%s' after FILE", argv[optind + 1]);
    o->file = argv[optind];
    if (!*o->file)
        return usage_error("FILE is empty");
    if ((rc = check_options(o, &r)) != 0)
        return rc;
    return assign_track_ids(o, r.track_id);
}

int main(int argc, char **argv)
{
    send_opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc == 0)
        rc = sender_run(&o);
    else if (rc < 0)
        rc = EXIT_OK;
    if (o.token) {
        OPENSSL_cleanse(o.token, strlen(o.token));
        free(o.token);
    }
    free(o.track_ids);
    return rc;
}

/* api_downloads.c -- the editors' download URLs: every finished object in
 * the tracks listing and the manifest gets a presigned GET URL whose
 * Content-Disposition names the file after the session, the participant
 * and the track (an editor's browser would otherwise save <uuid>.wav). */
#include "api.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "seashore/s3.h"

#define NAME_PART_MAX 100 /* bytes of the title, and of the participant's name */

/* Appends at most max bytes of s to out, never cutting a UTF-8 sequence,
 * with path separators and control characters as '_'. */
static size_t name_part(char *out, size_t at, size_t cap, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n && at + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        out[at++] = c < 0x20 || c == 0x7f || c == '/' || c == '\\' ? '_' : (char)c;
    }
    out[at] = '\0';
    return at;
}

/* RFC 6266: an ASCII filename (other bytes and quotes as '_') for old
 * clients, and the UTF-8 one as filename*. */
static int disposition_header(const char *name, char *out, size_t len)
{
    char ascii[512];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof ascii; i++)
        ascii[i] = (unsigned char)name[i] >= 0x80 || name[i] == '"' ? '_' : name[i];
    ascii[i] = '\0';
    char *pct = curl_easy_escape(NULL, name, 0);
    if (pct == NULL)
        return -1;
    int n = snprintf(out, len, "attachment; filename=\"%s\"; filename*=UTF-8''%s", ascii, pct);
    curl_free(pct);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* The file name "<title> - <participant> - <track id's first 8><suffix>.<ext>"
 * as a Content-Disposition in out; the extension is the object key's. */
static int track_disposition(const char *title, json_t *participant, const char *track_id,
                             const char *suffix, const char *key, char *out, size_t len)
{
    const char *who = json_string_value(json_object_get(participant, "display_name"));
    if (who == NULL || who[0] == '\0')
        who = json_string_value(json_object_get(participant, "identity"));
    const char *dot = strrchr(key, '.');
    char name[300];
    size_t at =
        name_part(name, 0, sizeof name, title && title[0] ? title : "Session", NAME_PART_MAX);
    at = name_part(name, at, sizeof name, " - ", 3);
    at = name_part(name, at, sizeof name, who && who[0] ? who : "participant", NAME_PART_MAX);
    snprintf(name + at, sizeof name - at, " - %.8s%s.%.8s", track_id ? track_id : "track", suffix,
             dot && !strchr(dot, '/') ? dot + 1 : "bin");
    return disposition_header(name, out, len);
}

/* Gives an object {object_key, ...} a presigned GET "url" and its expiry. */
static void presign_into(json_t *obj, const char *disposition, time_t now)
{
    const char *key = json_string_value(json_object_get(obj, "object_key"));
    char err[256], *url = NULL;
    if (key == NULL || ss_s3_presign_get(&api_cfg.svc->s3, key, disposition, api_cfg.download_ttl_s,
                                         now, &url, err, sizeof err) != 0)
        return;
    json_object_set_new(obj, "url", json_string(url));
    json_object_set_new(obj, "url_expires_at",
                        json_integer((json_int_t)(now + api_cfg.download_ttl_s)));
    free(url);
}

/* obj (raw object or editor file) of a participant's track, named. */
static void presign_named(json_t *obj, const char *title, json_t *participant, const char *track_id,
                          const char *suffix, time_t now)
{
    char cd[1024];
    const char *key = json_string_value(json_object_get(obj, "object_key"));
    if (key == NULL)
        return;
    bool named = track_disposition(title, participant, track_id, suffix, key, cd, sizeof cd) == 0;
    presign_into(obj, named ? cd : NULL, now);
}

void api_tracks_add_urls(const char *title, json_t *participants)
{
    time_t now = time(NULL);
    size_t i, j, k;
    json_t *p, *t, *f;
    json_array_foreach(participants, i, p)
    {
        json_array_foreach(json_object_get(p, "tracks"), j, t)
        {
            const char *tid = json_string_value(json_object_get(t, "track_id"));
            if (json_is_object(json_object_get(t, "raw")))
                presign_named(json_object_get(t, "raw"), title, p, tid, " (raw)", now);
            json_array_foreach(json_object_get(t, "files"), k, f)
                presign_named(f, title, p, tid, "", now);
        }
    }
}

static bool string_is(json_t *obj, const char *field, const char *want)
{
    const char *v = json_string_value(json_object_get(obj, field));
    return v != NULL && strcmp(v, want) == 0;
}

void api_manifest_add_urls(json_t *m, json_t *manifest_object)
{
    time_t now = time(NULL);
    const char *title = json_string_value(json_object_get(json_object_get(m, "session"), "title"));
    char name[160], cd[1024];
    size_t at =
        name_part(name, 0, sizeof name, title && title[0] ? title : "Session", NAME_PART_MAX);
    snprintf(name + at, sizeof name - at, " - manifest.json");
    presign_into(manifest_object, disposition_header(name, cd, sizeof cd) == 0 ? cd : NULL, now);
    size_t i, j, k;
    json_t *p, *t, *o;
    json_array_foreach(json_object_get(m, "participants"), i, p)
    {
        json_array_foreach(json_object_get(p, "tracks"), j, t)
        {
            const char *tid = json_string_value(json_object_get(t, "id"));
            json_t *raw = json_object_get(t, "raw");
            if (string_is(raw, "upload_state", "completed"))
                presign_named(raw, title, p, tid, " (raw)", now);
            json_array_foreach(json_object_get(t, "outputs"), k, o)
            {
                if (string_is(o, "state", "done"))
                    presign_named(o, title, p, tid, "", now);
            }
        }
    }
}

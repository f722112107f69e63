/* auth.c -- host authentication by API key ("Authorization: Bearer
 * ssk_<prefix>_<secret>"; only the key's sha256 is stored), and the CLI
 * subcommand that creates keys. */
#include "api.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_PREFIX_HEX 8
#define KEY_SECRET_HEX 40

static void hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", in[i]);
}

/* Splits "ssk_<prefix>_<secret>"; 0 when well formed. */
static int parse_key(const char *key, char prefix[KEY_PREFIX_HEX + 1])
{
    if (strncmp(key, "ssk_", 4) != 0 || strlen(key) != 4 + KEY_PREFIX_HEX + 1 + KEY_SECRET_HEX ||
        key[4 + KEY_PREFIX_HEX] != '_')
        return -1;
    for (const char *p = key + 4; *p; p++)
        if (*p != '_' && !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return -1;
    memcpy(prefix, key + 4, KEY_PREFIX_HEX);
    prefix[KEY_PREFIX_HEX] = '\0';
    return 0;
}

static int unauthorized(struct MHD_Connection *conn, enum MHD_Result *result, const char *why)
{
    *result = api_reply_error(conn, MHD_HTTP_UNAUTHORIZED, "unauthorized", "%s", why);
    return -1;
}

int api_authenticate(struct MHD_Connection *conn, api_caller *caller, enum MHD_Result *result)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    char prefix[KEY_PREFIX_HEX + 1], err[256];
    unsigned char digest[32];
    if (h == NULL)
        return unauthorized(conn, result, "missing Authorization header (Bearer API key)");
    if (strncmp(h, "Bearer ", 7) != 0)
        return unauthorized(conn, result,
                            "Authorization is not \"Bearer <API key or Clerk token>\"");
    if (strncmp(h + 7, "ssk_", 4) != 0) { /* a Clerk session token */
        char why[160];
        if (clerk_authenticate(h + 7, caller, why, sizeof why) != 0)
            return unauthorized(conn, result, why);
        return 0;
    }
    if (parse_key(h + 7, prefix) != 0)
        return unauthorized(conn, result, "Authorization is not \"Bearer ssk_<prefix>_<secret>\"");
    EVP_Digest(h + 7, strlen(h + 7), digest, NULL, EVP_sha256(), NULL);
    const char *params[] = {prefix};
    PGresult *r = ss_pg_query_bin(api_pg(),
                                  "SELECT host_id::text::bytea, key_hash FROM api_keys "
                                  "WHERE prefix = $1 AND revoked_at IS NULL",
                                  1, params, NULL, NULL, 1, err, sizeof err);
    if (r == NULL) {
        *result = api_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                                  "database unavailable; retry");
        return -1;
    }
    bool ok = PQntuples(r) == 1 && PQgetlength(r, 0, 1) == 32 &&
              CRYPTO_memcmp(PQgetvalue(r, 0, 1), digest, 32) == 0 &&
              PQgetlength(r, 0, 0) == SS_UUID_LEN;
    if (ok) {
        memcpy(caller->host_id, PQgetvalue(r, 0, 0), SS_UUID_LEN);
        caller->host_id[SS_UUID_LEN] = '\0';
    }
    PQclear(r);
    return ok ? 0 : unauthorized(conn, result, "unknown or revoked API key");
}

static const char *arg_value(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

/* The host with this email, created if there is none; caller frees. */
static char *host_for_email(ss_pg *pg, const char *email, char *err, size_t errlen)
{
    const char *params[] = {email};
    PGresult *r = ss_pg_query(pg,
                              "WITH found AS (SELECT id FROM hosts WHERE email = $1 LIMIT 1), "
                              "made AS (INSERT INTO hosts (email) SELECT $1 WHERE NOT EXISTS "
                              "(SELECT 1 FROM found) RETURNING id) "
                              "SELECT id FROM found UNION ALL SELECT id FROM made",
                              1, params, err, errlen);
    char *id = r && PQntuples(r) == 1 ? strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    return id;
}

int api_create_key_command(ss_pg *pg, int argc, char **argv)
{
    const char *email = arg_value(argc, argv, "--email");
    const char *name = arg_value(argc, argv, "--name");
    unsigned char rnd[KEY_PREFIX_HEX / 2 + KEY_SECRET_HEX / 2], digest[32];
    char key[64], prefix[KEY_PREFIX_HEX + 1], err[512];
    if (email == NULL || name == NULL) {
        fprintf(stderr, "usage: token-issuer create-api-key --email EMAIL --name NAME\n");
        return 2;
    }
    char *host = host_for_email(pg, email, err, sizeof err);
    if (host == NULL || RAND_bytes(rnd, sizeof rnd) != 1) {
        fprintf(stderr, "token-issuer: cannot create the key: %s\n", host ? "no randomness" : err);
        free(host);
        return 1;
    }
    memcpy(key, "ssk_", 4);
    hex(rnd, KEY_PREFIX_HEX / 2, key + 4);
    key[4 + KEY_PREFIX_HEX] = '_';
    hex(rnd + KEY_PREFIX_HEX / 2, KEY_SECRET_HEX / 2, key + 5 + KEY_PREFIX_HEX);
    memcpy(prefix, key + 4, KEY_PREFIX_HEX);
    prefix[KEY_PREFIX_HEX] = '\0';
    EVP_Digest(key, strlen(key), digest, NULL, EVP_sha256(), NULL);
    const char *values[] = {host, name, prefix, (const char *)digest};
    const int lengths[] = {0, 0, 0, 32}, formats[] = {0, 0, 0, 1};
    PGresult *r = ss_pg_query_bin(pg,
                                  "INSERT INTO api_keys (host_id, name, prefix, key_hash) "
                                  "VALUES ($1, $2, $3, $4)",
                                  4, values, lengths, formats, 0, err, sizeof err);
    free(host);
    if (r == NULL) {
        fprintf(stderr, "token-issuer: cannot store the key: %s\n", err);
        return 1;
    }
    PQclear(r);
    printf("%s\n", key); /* shown once; only its sha256 is stored */
    return 0;
}

/* api_keys_cli.c -- the host API key subcommands: create (the key is shown
 * once; only its sha256 is stored), list and revoke. A revoked key is
 * refused at once (auth.c reads revoked_at on every request). */
#include "api.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", in[i]);
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

static int create_key(ss_pg *pg, int argc, char **argv)
{
    const char *email = arg_value(argc, argv, "--email");
    const char *name = arg_value(argc, argv, "--name");
    unsigned char rnd[API_KEY_PREFIX_HEX / 2 + API_KEY_SECRET_HEX / 2], digest[32];
    char key[64], prefix[API_KEY_PREFIX_HEX + 1], err[512];
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
    hex(rnd, API_KEY_PREFIX_HEX / 2, key + 4);
    key[4 + API_KEY_PREFIX_HEX] = '_';
    hex(rnd + API_KEY_PREFIX_HEX / 2, API_KEY_SECRET_HEX / 2, key + 5 + API_KEY_PREFIX_HEX);
    memcpy(prefix, key + 4, API_KEY_PREFIX_HEX);
    prefix[API_KEY_PREFIX_HEX] = '\0';
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

/* One line per key of the host: prefix, name, created, last used,
 * revoked (a "-" for a date that is not set), tab-separated. */
static int list_keys(ss_pg *pg, int argc, char **argv)
{
    const char *email = arg_value(argc, argv, "--email");
    char err[512];
    if (email == NULL) {
        fprintf(stderr, "usage: token-issuer list-api-keys --email EMAIL\n");
        return 2;
    }
    const char *params[] = {email};
    PGresult *r = ss_pg_query(
        pg,
        "SELECT k.prefix, k.name, k.created_at::text, coalesce(k.last_used_at::text, '-'), "
        "coalesce(k.revoked_at::text, '-') FROM api_keys k JOIN hosts h ON h.id = k.host_id "
        "WHERE h.email = $1 ORDER BY k.created_at",
        1, params, err, sizeof err);
    if (r == NULL) {
        fprintf(stderr, "token-issuer: cannot list the keys: %s\n", err);
        return 1;
    }
    printf("prefix\tname\tcreated\tlast_used\trevoked\n");
    for (int i = 0; i < PQntuples(r); i++)
        printf("%s\t%s\t%s\t%s\t%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
               PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
    PQclear(r);
    return 0;
}

static int revoke_key(ss_pg *pg, int argc, char **argv)
{
    const char *prefix = arg_value(argc, argv, "--prefix");
    char err[512];
    if (prefix == NULL || strlen(prefix) != API_KEY_PREFIX_HEX) {
        fprintf(stderr,
                "usage: token-issuer revoke-api-key --prefix PREFIX (the %d hex digits "
                "after ssk_, as list-api-keys shows them)\n",
                API_KEY_PREFIX_HEX);
        return 2;
    }
    const char *params[] = {prefix};
    PGresult *r = ss_pg_query(pg,
                              "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
                              "WHERE prefix = $1 RETURNING name",
                              1, params, err, sizeof err);
    if (r == NULL) {
        fprintf(stderr, "token-issuer: cannot revoke the key: %s\n", err);
        return 1;
    }
    int found = PQntuples(r) == 1;
    if (found)
        printf("revoked ssk_%s_... (%s)\n", prefix, PQgetvalue(r, 0, 0));
    else
        fprintf(stderr, "token-issuer: no API key with prefix %s\n", prefix);
    PQclear(r);
    return found ? 0 : 1;
}

static const struct {
    const char *name;
    int (*run)(ss_pg *pg, int argc, char **argv);
} commands[] = {
    {"create-api-key", create_key},
    {"list-api-keys", list_keys},
    {"revoke-api-key", revoke_key},
};

bool api_is_key_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(name, commands[i].name) == 0)
            return true;
    return false;
}

int api_key_command(ss_pg *pg, int argc, char **argv)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[0], commands[i].name) == 0)
            return commands[i].run(pg, argc, argv);
    return 2;
}

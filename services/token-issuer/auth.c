/* auth.c -- host authentication by API key ("Authorization: Bearer
 * ssk_<prefix>_<secret>"; only the key's sha256 is stored; the keys are
 * made and revoked with api_keys_cli.c's subcommands), or by Clerk token. */
#include "api.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unauthorized(struct MHD_Connection *conn, enum MHD_Result *result, const char *why)
{
    *result = api_reply_error(conn, MHD_HTTP_UNAUTHORIZED, "unauthorized", "%s", why);
    return -1;
}

/* Records the key's use (list-api-keys shows it), at most once a minute:
 * not a write per request. Best effort: a failure only leaves it older. */
static void key_used(const char *prefix)
{
    char err[256];
    const char *params[] = {prefix};
    PQclear(ss_pg_query(api_pg(), "UPDATE api_keys SET last_used_at = now() WHERE prefix = $1", 1,
                        params, err, sizeof err));
}

int api_authenticate(struct MHD_Connection *conn, api_caller *caller, enum MHD_Result *result)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    const char *key = NULL;
    char prefix[API_KEY_PREFIX_HEX + 1], err[256];
    unsigned char digest[32];
    switch (api_authorization(h, &key, prefix)) {
    case API_AUTH_MISSING:
        return unauthorized(conn, result, "missing Authorization header (Bearer API key)");
    case API_AUTH_NOT_BEARER:
        return unauthorized(conn, result,
                            "Authorization is not \"Bearer <API key or Clerk token>\"");
    case API_AUTH_CLERK: {
        char why[160];
        if (clerk_authenticate(key, caller, why, sizeof why) != 0)
            return unauthorized(conn, result, why);
        return 0;
    }
    case API_AUTH_KEY_MALFORMED:
        return unauthorized(conn, result, "Authorization is not \"Bearer ssk_<prefix>_<secret>\"");
    case API_AUTH_KEY:
        break;
    }
    EVP_Digest(key, strlen(key), digest, NULL, EVP_sha256(), NULL);
    const char *params[] = {prefix};
    PGresult *r = ss_pg_query_bin(api_pg(),
                                  "SELECT host_id::text::bytea, key_hash, (last_used_at IS NULL "
                                  "OR last_used_at < now() - interval '1 minute')::text::bytea "
                                  "FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL",
                                  1, params, NULL, NULL, 1, err, sizeof err);
    if (r == NULL) {
        *result = api_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                                  "database unavailable; retry");
        return -1;
    }
    bool ok = PQntuples(r) == 1 && PQgetlength(r, 0, 1) == 32 &&
              CRYPTO_memcmp(PQgetvalue(r, 0, 1), digest, 32) == 0 &&
              PQgetlength(r, 0, 0) == SS_UUID_LEN;
    bool stale = ok && PQgetvalue(r, 0, 2)[0] == 't';
    if (ok) {
        memcpy(caller->host_id, PQgetvalue(r, 0, 0), SS_UUID_LEN);
        caller->host_id[SS_UUID_LEN] = '\0';
    }
    PQclear(r);
    if (stale)
        key_used(prefix);
    return ok ? 0 : unauthorized(conn, result, "unknown or revoked API key");
}

/* pg.c -- one libpq connection, parameterised queries, reset on loss (see pg.h). */
#include "seashore/pg.h"
#include "seashore/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_CONNECT_TIMEOUT_S "5"

struct ss_pg {
    pthread_mutex_t lock; /* guards conn and sqlstate: libpq connections are not shared */
    PGconn *conn;
    char *conninfo;
    char sqlstate[6];
};

/* libpq's NOTICE messages (e.g. "relation already exists, skipping") are
 * routine; keep them out of the JSON log. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Returns a usable connection or NULL; called with the lock held. */
static PGconn *pg_connection(ss_pg *pg, char *errbuf, size_t errlen)
{
    if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK)
        return pg->conn;
    if (pg->conn) {
        PQreset(pg->conn);
    } else {
        const char *keys[] = {"dbname", "connect_timeout", NULL};
        const char *vals[] = {pg->conninfo, PG_CONNECT_TIMEOUT_S, NULL};
        pg->conn = PQconnectdbParams(keys, vals, 1);
        if (pg->conn)
            PQsetNoticeProcessor(pg->conn, ignore_notice, NULL);
    }
    if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK)
        return pg->conn;
    const char *why = pg->conn ? PQerrorMessage(pg->conn) : "out of memory";
    if (errbuf)
        snprintf(errbuf, errlen, "%s", why);
    ss_log_warn("postgres unavailable", "{s:s}", "error", why);
    return NULL;
}

ss_pg *ss_pg_open(const char *conninfo)
{
    ss_pg *pg = calloc(1, sizeof *pg);
    if (!pg)
        return NULL;
    pg->conninfo = strdup(conninfo);
    if (!pg->conninfo) {
        free(pg);
        return NULL;
    }
    pthread_mutex_init(&pg->lock, NULL);
    return pg;
}

/* True when the failure means the connection itself is gone. */
static bool connection_lost(PGconn *conn, const PGresult *res)
{
    if (PQstatus(conn) != CONNECTION_OK)
        return true;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state && strncmp(state, "08", 2) == 0; /* class 08: connection exception */
}

static PGresult *run_query(ss_pg *pg, const char *sql, int nparams, const char *const *values,
                           const int *lengths, const int *formats, int result_format, char *errbuf,
                           size_t errlen)
{
    PGresult *res = NULL;
    pg->sqlstate[0] = '\0';
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *conn = pg_connection(pg, errbuf, errlen);
        if (!conn) {
            snprintf(pg->sqlstate, sizeof pg->sqlstate, "08006");
            return NULL;
        }
        res = PQexecParams(conn, sql, nparams, NULL, values, lengths, formats, result_format);
        ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
            return res;
        bool lost = connection_lost(conn, res);
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        snprintf(pg->sqlstate, sizeof pg->sqlstate, "%s", state ? state : "08006");
        const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
        if (errbuf)
            snprintf(errbuf, errlen, "%s", msg);
        if (!lost || attempt == 1) {
            ss_log_warn("postgres query failed", "{s:s, s:s}", "sqlstate", pg->sqlstate, "error",
                        msg);
            PQclear(res);
            return NULL;
        }
        PQclear(res);
        res = NULL;
    }
    return NULL;
}

PGresult *ss_pg_query_bin(ss_pg *pg, const char *sql, int nparams, const char *const *values,
                          const int *lengths, const int *formats, int result_format, char *errbuf,
                          size_t errlen)
{
    pthread_mutex_lock(&pg->lock);
    PGresult *res =
        run_query(pg, sql, nparams, values, lengths, formats, result_format, errbuf, errlen);
    pthread_mutex_unlock(&pg->lock);
    return res;
}

PGresult *ss_pg_query(ss_pg *pg, const char *sql, int nparams, const char *const *values,
                      char *errbuf, size_t errlen)
{
    return ss_pg_query_bin(pg, sql, nparams, values, NULL, NULL, 0, errbuf, errlen);
}

const char *ss_pg_last_sqlstate(const ss_pg *pg)
{
    return pg->sqlstate;
}

bool ss_pg_ready(void *arg, char *why, size_t whylen)
{
    ss_pg *pg = arg;
    const char *keys[] = {"dbname", "connect_timeout", NULL};
    const char *vals[] = {pg->conninfo, "2", NULL};
    PGPing ping = PQpingParams(keys, vals, 1);
    if (ping == PQPING_OK)
        return true;
    snprintf(why, whylen, "%s",
             ping == PQPING_REJECT        ? "server rejects connections"
             : ping == PQPING_NO_RESPONSE ? "no response from PostgreSQL"
                                          : "bad connection parameters");
    return false;
}

void ss_pg_close(ss_pg *pg)
{
    if (!pg)
        return;
    PQfinish(pg->conn);
    pthread_mutex_destroy(&pg->lock);
    free(pg->conninfo);
    free(pg);
}

void ss_pg_copy_value(const PGresult *r, int row, int col, char *dst, size_t len)
{
    snprintf(dst, len, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/* pg.h -- PostgreSQL through libpq, parameterised queries only.
 *
 * One ss_pg is one connection guarded by a mutex, so it may be shared by a
 * few threads; services with real concurrency open one per worker. There is
 * deliberately no function that takes SQL text with values spliced in:
 * every value goes through PQexecParams as a parameter.
 *
 * If the connection is broken when a query starts, it is reset once and the
 * query is retried; a query that fails for any other reason is not retried
 * (the caller decides). Readiness (ss_pg_ready) pings the server.
 */
#ifndef SEASHORE_PG_H
#define SEASHORE_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>

typedef struct ss_pg ss_pg;

/* Opens a connection to `conninfo` (a postgres:// URL). Does not fail when
 * the server is down: the first query retries the connection. Returns NULL
 * only on allocation failure. Caller owns the result. */
ss_pg *ss_pg_open(const char *conninfo);

/* Runs `sql` with text parameters (values[i] may be NULL for SQL NULL).
 * On success returns the PGresult (caller PQclear()s it); on failure returns
 * NULL, logs, and writes the server's message into errbuf if given. */
PGresult *ss_pg_query(ss_pg *pg, const char *sql, int nparams, const char *const *values,
                      char *errbuf, size_t errlen) __attribute__((warn_unused_result));

/* Like ss_pg_query with explicit lengths and formats (binary parameters). */
PGresult *ss_pg_query_bin(ss_pg *pg, const char *sql, int nparams, const char *const *values,
                          const int *lengths, const int *formats, int result_format, char *errbuf,
                          size_t errlen) __attribute__((warn_unused_result));

/* Copies the value at (row, col) into dst ("" for NULL), truncated to len. */
void ss_pg_copy_value(const PGresult *r, int row, int col, char *dst, size_t len);

/* The SQLSTATE of the last failed query on this connection ("" if none). */
const char *ss_pg_last_sqlstate(const ss_pg *pg);

/* Readiness check for ss_ops_add_ready_check(): arg is the ss_pg. */
bool ss_pg_ready(void *arg, char *why, size_t whylen);

void ss_pg_close(ss_pg *pg); /* accepts NULL */

#endif

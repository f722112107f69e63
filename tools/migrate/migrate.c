/* migrate.c -- seashore-migrate: applies migrations/NNNN_name.sql to the
 * PostgreSQL database at $DATABASE_URL.
 *
 *   seashore-migrate [--dir PATH] [--status]
 *
 * Each pending file runs in its own transaction together with its row in
 * schema_migrations (version, name, sha256 of the file), so a file is either
 * applied and recorded or not at all. A session advisory lock serialises
 * concurrent runners (two Job pods): the second waits, then finds nothing to
 * do. Migrations are forward-only: an applied file that changed, vanished or
 * was renamed stops the runner, as does a new file numbered below an applied
 * one. Applied migrations numbered above every file of the directory were
 * applied by a newer release: this (older) image reports them as "newer" and
 * carries on, since a forward-only schema stays compatible with the code
 * before it. That is what lets a release that added a migration be rolled
 * back: the older Job and the wait-for-migrations initContainers exit 0.
 *
 * Exit status: 0 done (or up to date), 1 failure, 2 bad usage or
 * configuration. Standalone on purpose: libpq and OpenSSL only, no
 * libseashore, so it can run before anything else exists. */
#include <libpq-fe.h>
#include <openssl/evp.h>

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define PROG         "seashore-migrate"
#define NAME_PATTERN "^[0-9]{4}_[a-z0-9_]+\\.sql$"
#define MAX_SQL_SIZE (16 << 20) /* largest migration file we read (16 MiB) */
#define MAX_NAME     256
/* pg_advisory_lock key: "seashore" as a big-endian int64. */
#define LOCK_KEY "8315159435310756453"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

typedef struct {
    const char *dir; /* --dir, $MIGRATIONS_DIR, or "migrations" */
    bool status;     /* --status: list, change nothing */
} options;

typedef struct {
    int version;         /* the leading NNNN */
    char name[MAX_NAME]; /* file name, e.g. 0001_initial.sql */
    char *sql;           /* the file's text, NUL-terminated; owned */
    char checksum[65];   /* sha256 of the file, lowercase hex */
} migration;

typedef struct {
    migration *items; /* sorted by version; owned */
    size_t n;
} migration_set;

static const char usage_text[] =
    "usage: " PROG " [--dir PATH] [--status]\n"
    "  Applies the pending NNNN_name.sql files of PATH (default $MIGRATIONS_DIR, else\n"
    "  ./migrations) to $DATABASE_URL, each in a transaction, under an advisory lock.\n"
    "  --status  lists applied, pending and newer (applied by a newer release, unknown\n"
    "            here) migrations, changes nothing; exit 1 if an applied one is wrong\n";

/* ---- arguments ---- */

/* EXIT_OK to go on, else the exit status (help: -1 meaning exit 0). */
static int parse_args(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {{"dir", required_argument, NULL, 'd'},
                                             {"status", no_argument, NULL, 's'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *env_dir = getenv("MIGRATIONS_DIR");
    int c;
    o->dir = env_dir && *env_dir ? env_dir : "migrations";
    o->status = false;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o->dir = optarg;
            break;
        case 's':
            o->status = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return -1;
        default:
            fputs(usage_text, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s'\n%s", argv[optind], usage_text);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* ---- migration files ---- */

static void checksum_hex(const char *data, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out[0] = '\0';
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return; /* an empty checksum never matches: the caller refuses */
    for (unsigned int i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

/* Reads dir/m->name into m->sql and checksums it. */
static int read_migration(const char *dir, migration *m)
{
    char path[4096];
    struct stat st;
    const char *why = NULL;
    int rc = -1;
    snprintf(path, sizeof path, "%s/%s", dir, m->name);
    FILE *f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &st) != 0)
        goto out;
    if (!S_ISREG(st.st_mode) || st.st_size > MAX_SQL_SIZE) {
        why = "not a regular file of at most 16 MiB";
        goto out;
    }
    if (!(m->sql = malloc((size_t)st.st_size + 1)))
        goto out;
    size_t len = fread(m->sql, 1, (size_t)st.st_size, f);
    if (ferror(f) || len != (size_t)st.st_size) {
        why = "short read";
        goto out;
    }
    m->sql[len] = '\0';
    if (memchr(m->sql, '\0', len)) {
        why = "contains a NUL byte";
        goto out;
    }
    checksum_hex(m->sql, len, m->checksum);
    if (!m->checksum[0]) {
        why = "sha256 failed";
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, PROG ": cannot read %s: %s\n", path, why ? why : strerror(errno));
    if (f)
        fclose(f);
    return rc;
}

static int add_migration(migration_set *set, const char *name)
{
    if (strlen(name) >= MAX_NAME) {
        fprintf(stderr, PROG ": file name too long: %s\n", name);
        return -1;
    }
    migration *grown = realloc(set->items, (set->n + 1) * sizeof *grown);
    if (!grown) {
        fprintf(stderr, PROG ": out of memory\n");
        return -1;
    }
    set->items = grown;
    migration *m = &set->items[set->n++];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    m->version = (int)strtol(name, NULL, 10);
    return 0;
}

/* The file names of dir that match NAME_PATTERN; warns about other *.sql. */
static int list_migrations(const char *dir, migration_set *set)
{
    regex_t re;
    struct dirent *e;
    int rc = -1;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, PROG ": cannot open migrations directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (regcomp(&re, NAME_PATTERN, REG_EXTENDED | REG_NOSUB) != 0) {
        closedir(d);
        return -1;
    }
    for (errno = 0; (e = readdir(d)) != NULL; errno = 0) {
        size_t len = strlen(e->d_name);
        if (regexec(&re, e->d_name, 0, NULL, 0) == 0) {
            if (add_migration(set, e->d_name) != 0)
                goto out;
        } else if (len > 4 && strcmp(e->d_name + len - 4, ".sql") == 0) {
            fprintf(stderr, PROG ": ignoring %s (not NNNN_lowercase_name.sql)\n", e->d_name);
        }
    }
    if (errno) {
        fprintf(stderr, PROG ": cannot list %s: %s\n", dir, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    regfree(&re);
    closedir(d);
    return rc;
}

static int by_version(const void *a, const void *b)
{
    const migration *x = a, *y = b;
    if (x->version != y->version)
        return x->version < y->version ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void free_migrations(migration_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        free(set->items[i].sql);
    free(set->items);
    set->items = NULL;
    set->n = 0;
}

/* Lists, sorts, refuses duplicate numbers, reads and checksums every file. */
static int load_migrations(const char *dir, migration_set *set)
{
    if (list_migrations(dir, set) != 0)
        return -1;
    if (set->n > 0)
        qsort(set->items, set->n, sizeof *set->items, by_version);
    for (size_t i = 1; i < set->n; i++) {
        if (set->items[i].version == set->items[i - 1].version) {
            fprintf(stderr, PROG ": two migrations share the number %04d: %s and %s\n",
                    set->items[i].version, set->items[i - 1].name, set->items[i].name);
            return -1;
        }
    }
    for (size_t i = 0; i < set->n; i++)
        if (read_migration(dir, &set->items[i]) != 0)
            return -1;
    return 0;
}

static const migration *find_version(const migration_set *set, int version)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->items[i].version == version)
            return &set->items[i];
    return NULL;
}

/* The highest version among the files, 0 if there are none. */
static int newest_file_version(const migration_set *set)
{
    return set->n > 0 ? set->items[set->n - 1].version : 0;
}

/* ---- database ---- */

/* The server's message without its trailing newline. */
static void print_pg_error(const char *what, const char *msg)
{
    int len = (int)strlen(msg);
    while (len > 0 && msg[len - 1] == '\n')
        len--;
    fprintf(stderr, PROG ": %s: %.*s\n", what, len, msg);
}

static PGconn *db_connect(const char *url)
{
    const char *const keys[] = {"dbname", "application_name", NULL};
    const char *const values[] = {url, PROG, NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        print_pg_error("cannot connect to PostgreSQL (DATABASE_URL)", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* A parameterised statement expecting `want`; returns the result or NULL. */
static PGresult *db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                          ExecStatusType want)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != want) {
        print_pg_error(sql, PQresultErrorMessage(res));
        PQclear(res);
        return NULL;
    }
    return res;
}

static int db_command(PGconn *conn, const char *sql)
{
    PGresult *res = db_query(conn, sql, 0, NULL, PGRES_COMMAND_OK);
    PQclear(res);
    return res ? 0 : -1;
}

/* Session advisory lock, held until we disconnect: one runner at a time. */
static int db_lock(PGconn *conn)
{
    const char *const params[] = {LOCK_KEY};
    PGresult *res =
        db_query(conn, "SELECT pg_try_advisory_lock($1::bigint)", 1, params, PGRES_TUPLES_OK);
    if (!res)
        return -1;
    bool got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (got)
        return 0;
    fprintf(stderr, PROG ": another migration runner holds the lock; waiting\n");
    res = db_query(conn, "SELECT pg_advisory_lock($1::bigint)", 1, params, PGRES_TUPLES_OK);
    PQclear(res);
    return res ? 0 : -1;
}

/* 1 if schema_migrations exists, 0 if not, -1 on error. */
static int db_table_exists(PGconn *conn)
{
    PGresult *res = db_query(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL,
                             PGRES_TUPLES_OK);
    if (!res)
        return -1;
    int exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return exists;
}

static int db_ensure_table(PGconn *conn)
{
    int exists = db_table_exists(conn);
    if (exists != 0)
        return exists > 0 ? 0 : -1;
    return db_command(conn, "CREATE TABLE schema_migrations ("
                            " version int PRIMARY KEY,"
                            " name text NOT NULL,"
                            " checksum text NOT NULL,"
                            " applied_at timestamptz NOT NULL DEFAULT now())");
}

/* Rows (version, name, checksum, applied_at) by version; none if no table. */
static PGresult *db_applied(PGconn *conn)
{
    int exists = db_table_exists(conn);
    if (exists < 0)
        return NULL;
    return db_query(conn,
                    exists ? "SELECT version, name, checksum, applied_at::text"
                             " FROM schema_migrations ORDER BY version"
                           : "SELECT 0, ''::text, ''::text, ''::text WHERE false",
                    0, NULL, PGRES_TUPLES_OK);
}

static bool is_applied(const PGresult *applied, int version)
{
    for (int i = 0; i < PQntuples(applied); i++)
        if (atoi(PQgetvalue(applied, i, 0)) == version)
            return true;
    return false;
}

/* ---- checks, status, apply ---- */

/* "newer": an applied row numbered above every file, from a newer release.
 * Not a problem (forward-only), but the row has no file (*file is NULL). With
 * no files at all nothing is known, so such a row is "missing" instead. */
static bool applied_newer(const migration_set *set, const PGresult *applied, int row)
{
    return set->n > 0 && atoi(PQgetvalue(applied, row, 0)) > newest_file_version(set);
}

/* One applied row against the files: NULL if fine (or newer, see
 * applied_newer), else what is wrong. */
static const char *applied_problem(const migration_set *set, const PGresult *applied, int row,
                                   const migration **file)
{
    int version = atoi(PQgetvalue(applied, row, 0));
    *file = find_version(set, version);
    if (!*file)
        return applied_newer(set, applied, row) ? NULL : "missing";
    if (strcmp((*file)->name, PQgetvalue(applied, row, 1)) != 0)
        return "renamed";
    if (strcmp((*file)->checksum, PQgetvalue(applied, row, 2)) != 0)
        return "changed";
    return NULL;
}

static void explain_problem(const char *dir, const PGresult *applied, int row, const char *problem,
                            const migration *m)
{
    const char *name = PQgetvalue(applied, row, 1);
    if (strcmp(problem, "missing") == 0)
        fprintf(stderr, PROG ": migration %s was applied but is missing from %s; restore it\n",
                name, dir);
    else if (strcmp(problem, "renamed") == 0)
        fprintf(stderr, PROG ": migration %s was applied but is now named %s; restore its name\n",
                name, m->name);
    else
        fprintf(stderr,
                PROG ": migration %s was changed after it was applied (checksum %s != %s); "
                     "add a new migration instead\n",
                name, PQgetvalue(applied, row, 2), m->checksum);
}

/* Applied files unchanged, and nothing pending numbered below them. Newer
 * applied migrations this directory does not know are reported, not refused. */
static int verify(const char *dir, const migration_set *set, const PGresult *applied)
{
    int newest = 0;
    for (int i = 0; i < PQntuples(applied); i++) {
        const migration *m;
        const char *problem = applied_problem(set, applied, i, &m);
        if (problem) {
            explain_problem(dir, applied, i, problem, m);
            return -1;
        }
        if (!m)
            fprintf(stderr,
                    PROG ": migration %s was applied by a newer release and is not in %s; "
                         "the schema is forward-compatible, going on\n",
                    PQgetvalue(applied, i, 1), dir);
        newest = atoi(PQgetvalue(applied, i, 0));
    }
    for (size_t i = 0; i < set->n; i++) {
        const migration *m = &set->items[i];
        if (m->version < newest && !is_applied(applied, m->version)) {
            fprintf(stderr,
                    PROG ": migration %s is numbered below the newest applied one (%04d); "
                         "renumber it above\n",
                    m->name, newest);
            return -1;
        }
    }
    return 0;
}

/* --status: one line per migration on stdout ("applied", "newer" for one a
 * newer release applied, "pending", or the problem); 1 if an applied one is
 * wrong. */
static int print_status(const migration_set *set, const PGresult *applied)
{
    int rc = EXIT_OK;
    for (int i = 0; i < PQntuples(applied); i++) {
        const migration *m;
        const char *problem = applied_problem(set, applied, i, &m);
        const char *state = problem ? problem : m ? "applied" : "newer";
        printf("%-8s %s  %s\n", state, PQgetvalue(applied, i, 1), PQgetvalue(applied, i, 3));
        if (problem)
            rc = EXIT_FAIL;
    }
    for (size_t i = 0; i < set->n; i++)
        if (!is_applied(applied, set->items[i].version))
            printf("%-8s %s\n", "pending", set->items[i].name);
    return rc;
}

static int record(PGconn *conn, const migration *m)
{
    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *const params[] = {version, m->name, m->checksum};
    PGresult *res = db_query(conn,
                             "INSERT INTO schema_migrations (version, name, checksum)"
                             " VALUES ($1::int, $2, $3)",
                             3, params, PGRES_COMMAND_OK);
    PQclear(res);
    return res ? 0 : -1;
}

/* The file's SQL as is (it is a migration file), then its row, in one transaction. */
static int apply_one(PGconn *conn, const migration *m)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (db_command(conn, "BEGIN") != 0)
        return -1;
    PGresult *res = PQexec(conn, m->sql);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
    if (!ok) {
        char what[MAX_NAME + 64];
        snprintf(what, sizeof what, "migration %s failed, rolled back", m->name);
        print_pg_error(what, PQresultErrorMessage(res));
    } else if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
        fprintf(stderr,
                PROG ": migration %s ended the transaction itself (COMMIT or ROLLBACK "
                     "in the file); check the database by hand\n",
                m->name);
        ok = false;
    }
    PQclear(res);
    if (!ok || record(conn, m) != 0 || db_command(conn, "COMMIT") != 0) {
        if (PQtransactionStatus(conn) != PQTRANS_IDLE)
            PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (long)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    fprintf(stderr, PROG ": applied %s (%ld ms)\n", m->name, ms);
    return 0;
}

static int apply_pending(PGconn *conn, const migration_set *set, const PGresult *applied)
{
    int done = 0;
    for (size_t i = 0; i < set->n; i++) {
        if (is_applied(applied, set->items[i].version))
            continue;
        if (apply_one(conn, &set->items[i]) != 0)
            return -1;
        done++;
    }
    int rows = PQntuples(applied);
    if (done == 0)
        fprintf(stderr, PROG ": up to date at version %04d\n",
                rows > 0 ? atoi(PQgetvalue(applied, rows - 1, 0)) : 0);
    else
        fprintf(stderr, PROG ": applied %d migration(s); now at version %04d\n", done,
                set->items[set->n - 1].version);
    return 0;
}

/* ---- main ---- */

/* Under the lock: verify, then apply (or list, for --status). */
static int run(PGconn *conn, const options *o, const migration_set *set)
{
    int rc = EXIT_FAIL;
    PGresult *applied = NULL;
    if (!o->status && (db_lock(conn) != 0 || db_ensure_table(conn) != 0))
        goto out;
    if (!(applied = db_applied(conn)))
        goto out;
    if (o->status) {
        rc = print_status(set, applied);
        goto out;
    }
    if (verify(o->dir, set, applied) == 0 && apply_pending(conn, set, applied) == 0)
        rc = EXIT_OK;
out:
    PQclear(applied);
    return rc;
}

int main(int argc, char **argv)
{
    options o;
    migration_set set = {NULL, 0};
    PGconn *conn = NULL;
    int rc = parse_args(argc, argv, &o);
    if (rc != EXIT_OK)
        return rc < 0 ? EXIT_OK : rc;
    const char *url = getenv("DATABASE_URL");
    if (!url || !*url) {
        fputs(PROG ": DATABASE_URL is required (PostgreSQL URL)\n", stderr);
        return EXIT_USAGE;
    }
    rc = EXIT_FAIL;
    if (load_migrations(o.dir, &set) != 0 || !(conn = db_connect(url)))
        goto out;
    rc = run(conn, &o, &set);
out:
    PQfinish(conn);
    free_migrations(&set);
    return rc;
}

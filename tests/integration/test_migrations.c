/* test_migrations.c -- seashore-migrate against a real PostgreSQL:
 *   - the first run applies every file (the tables exist, each recorded with
 *     the sha256 of its file); a second run changes nothing, says up to date;
 *   - two runners started together both exit 0 and apply each file once;
 *   - an applied file that was edited, or that vanished, stops it (exit 1,
 *     naming the file);
 *   - a broken new migration rolls back whole (exit 1, naming the file and
 *     the server's error) and leaves the earlier ones recorded;
 *   - --status lists applied and pending files;
 *   - rollback: an older migrations directory against a database a newer
 *     release migrated further (an applied file numbered above all of its
 *     own) is compatible: --status and the runner exit 0 and name the newer
 *     file; a changed known file still fails both;
 *   - without DATABASE_URL: exit 2 and one line naming it.
 */
#include "check.h"
#include "harness.h"

#include <openssl/evp.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUN_TIMEOUT_MS 60000

static harness *h;
static harness_pg pg;
static char migrations[1024]; /* the copy of migrations/ the runner reads */
static int runs;              /* numbers the runs' log files */

/* ---- files ---- */

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t len = strlen(text);
    int rc = fwrite(text, 1, len, f) == len ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

static int copy_file(const char *from, const char *to)
{
    char *text = harness_read_file(from, NULL);
    int rc = text ? write_file(to, text) : -1;
    free(text);
    return rc;
}

/* Every *.sql of the source tree's migrations/ into dst. */
static int copy_migrations(const char *dst)
{
    char *src = harness_source_path("migrations");
    DIR *d = src ? opendir(src) : NULL;
    struct dirent *e;
    int rc = d && mkdir(dst, 0755) == 0 ? 0 : -1;
    while (rc == 0 && d && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char from[2048], to[2048];
        if (len < 5 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue;
        snprintf(from, sizeof from, "%s/%s", src, e->d_name);
        snprintf(to, sizeof to, "%s/%s", dst, e->d_name);
        rc = copy_file(from, to);
    }
    if (d)
        closedir(d);
    free(src);
    return rc;
}

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

/* Lowercase hex sha256 of a file, as the runner records it. */
static void file_sha256(const char *path, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t len = 0;
    char *text = harness_read_file(path, &len);
    out[0] = '\0';
    if (text && EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL) == 1)
        for (unsigned int i = 0; i < mdlen; i++)
            snprintf(out + 2 * i, 3, "%02x", md[i]);
    free(text);
}

/* ---- running the runner ---- */

/* The output of run number `run` (log migrate-<run>.log); caller frees. */
static char *output_of_run(int run)
{
    char log[2048], name[64];
    snprintf(name, sizeof name, "migrate-%d.log", run);
    path_in(log, sizeof log, harness_dir(h), name);
    return harness_read_file(log, NULL);
}

/* Runs seashore-migrate on dir and db (NULL: no DATABASE_URL) with extra
 * (may be NULL); starts it only, when pid is not NULL. Returns the exit
 * status (-1 if it did not exit) and the output in *out (caller frees). */
static int migrate(const char *dir, const char *db, const char *extra, pid_t *pid, char **out)
{
    char log_name[32], url[300], env_url[320], env_path[4096], env_asan[512], env_ubsan[512];
    const char *asan = getenv("ASAN_OPTIONS"), *ubsan = getenv("UBSAN_OPTIONS");
    const char *path = getenv("PATH");
    snprintf(log_name, sizeof log_name, "migrate-%d", ++runs);
    snprintf(url, sizeof url, "postgresql://seashore@127.0.0.1:%d/%s", pg.port, db ? db : "");
    snprintf(env_url, sizeof env_url, "DATABASE_URL=%s", url);
    snprintf(env_path, sizeof env_path, "PATH=%s", path ? path : "/usr/bin:/bin");
    snprintf(env_asan, sizeof env_asan, "ASAN_OPTIONS=%s", asan ? asan : "");
    snprintf(env_ubsan, sizeof env_ubsan, "UBSAN_OPTIONS=%s", ubsan ? ubsan : "");
    char *env[] = {env_path, env_asan, env_ubsan, db ? env_url : NULL, NULL};
    char *bin = harness_build_path("tools/migrate/seashore-migrate");
    char *argv[] = {bin, "--dir", (char *)dir, (char *)extra, NULL};
    pid_t p = bin ? harness_spawn(h, log_name, argv, env) : -1;
    free(bin);
    if (pid) {
        *pid = p;
        return p > 0 ? 0 : -1;
    }
    int status = -1;
    if (p <= 0 || harness_wait_exit(h, p, RUN_TIMEOUT_MS, &status) != 0)
        return -1;
    *out = output_of_run(runs);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The first value of sql on database db, "" if none; caller frees. */
static char *query(const char *db, const char *sql)
{
    harness_pg other = pg;
    char *value = NULL;
    snprintf(other.url, sizeof other.url, "postgresql://seashore@127.0.0.1:%d/%s", pg.port, db);
    if (harness_pg_exec(&other, sql, &value) != 0)
        return NULL;
    return value ? value : strdup("");
}

#define SCHEMA_MIGRATIONS_ROWS                                                                     \
    "SELECT string_agg(version || ' ' || name || ' ' || checksum || ' ' || applied_at, ';'"        \
    " ORDER BY version) FROM schema_migrations"

static const char *const tables[] = {"hosts",   "api_keys",         "sessions", "participants",
                                     "tracks",  "chunks",           "uploads",  "upload_parts",
                                     "outputs", "session_manifests"};

/* Number of NNNN_*.sql files in dir. */
static int count_migrations(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        n += len > 9 && e->d_name[4] == '_' && strcmp(e->d_name + len - 4, ".sql") == 0;
    }
    if (d)
        closedir(d);
    return n;
}

/* ---- tests ---- */

static void test_first_run_applies_everything(void)
{
    char *out = NULL, sum[65], file[2048];
    CHECK_EQ_INT(migrate(migrations, "seashore", NULL, NULL, &out), 0);
    CHECK_CONTAINS(out, "applied 0001_initial.sql");
    free(out);
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT to_regclass('public.%s') IS NOT NULL", tables[i]);
        char *exists = query("seashore", sql);
        CHECK_EQ_STR(exists, "t");
        free(exists);
    }
    path_in(file, sizeof file, migrations, "0001_initial.sql");
    file_sha256(file, sum);
    char *row = query("seashore", "SELECT name || ' ' || checksum FROM schema_migrations"
                                  " WHERE version = 1");
    char want[128];
    snprintf(want, sizeof want, "0001_initial.sql %s", sum);
    CHECK_EQ_STR(row, want);
    free(row);
}

static void test_second_run_is_a_no_op(void)
{
    char *out = NULL;
    char *before = query("seashore", SCHEMA_MIGRATIONS_ROWS);
    CHECK_EQ_INT(migrate(migrations, "seashore", NULL, NULL, &out), 0);
    CHECK_CONTAINS(out, "up to date");
    CHECK(out && !strstr(out, "applied 0"));
    char *after = query("seashore", SCHEMA_MIGRATIONS_ROWS);
    CHECK(before && *before);
    CHECK_EQ_STR(after, before);
    free(out);
    free(before);
    free(after);
}

/* A slow second file holds the lock while the other runner arrives. */
static void test_concurrent_runners_apply_once(void)
{
    char dir[1024], slow[2048];
    pid_t a = -1, b = -1;
    int sa = -1, sb = -1;
    path_in(dir, sizeof dir, harness_dir(h), "migrations-concurrent");
    path_in(slow, sizeof slow, dir, "9000_slow.sql");
    CHECK_EQ_INT(copy_migrations(dir), 0);
    CHECK_EQ_INT(write_file(slow, "CREATE TABLE slow_marker (id int);\nSELECT pg_sleep(1);\n"), 0);
    CHECK_EQ_INT(harness_pg_exec(&pg, "CREATE DATABASE concurrent", NULL), 0);
    int first = runs + 1;
    CHECK_EQ_INT(migrate(dir, "concurrent", NULL, &a, NULL), 0);
    CHECK_EQ_INT(migrate(dir, "concurrent", NULL, &b, NULL), 0);
    CHECK_EQ_INT(harness_wait_exit(h, a, RUN_TIMEOUT_MS, &sa), 0);
    CHECK_EQ_INT(harness_wait_exit(h, b, RUN_TIMEOUT_MS, &sb), 0);
    CHECK(WIFEXITED(sa) && WEXITSTATUS(sa) == 0);
    CHECK(WIFEXITED(sb) && WEXITSTATUS(sb) == 0);
    char *out_a = output_of_run(first), *out_b = output_of_run(first + 1);
    CHECK(out_a && out_b);
    int applied = (out_a && strstr(out_a, "applied 9000_slow.sql")) +
                  (out_b && strstr(out_b, "applied 9000_slow.sql"));
    CHECK_EQ_INT(applied, 1);
    char *rows = query("concurrent", "SELECT count(*) || ' ' || count(DISTINCT version)"
                                     " FROM schema_migrations");
    char want[32];
    int n = count_migrations(dir);
    snprintf(want, sizeof want, "%d %d", n, n); /* the real ones and the slow one, once each */
    CHECK_EQ_STR(rows, want);
    free(rows);
    free(out_a);
    free(out_b);
}

/* What a rollback does: the newer release's Job applied 9100_newer.sql, then
 * the older image (without that file) runs --status in its initContainers
 * and the runner in its Job. Both must finish, or the rollback hangs. */
static void test_older_release_accepts_newer_migrations(void)
{
    char newer_dir[1024], newer[2048], changed_dir[1024], changed[2048], *out = NULL;
    path_in(newer_dir, sizeof newer_dir, harness_dir(h), "migrations-newer");
    path_in(newer, sizeof newer, newer_dir, "9100_newer.sql");
    path_in(changed_dir, sizeof changed_dir, harness_dir(h), "migrations-older-changed");
    path_in(changed, sizeof changed, changed_dir, "0001_initial.sql");
    CHECK_EQ_INT(copy_migrations(newer_dir), 0);
    CHECK_EQ_INT(write_file(newer, "CREATE TABLE newer_marker (id int);\n"), 0);
    CHECK_EQ_INT(harness_pg_exec(&pg, "CREATE DATABASE rollback", NULL), 0);
    CHECK_EQ_INT(migrate(newer_dir, "rollback", NULL, NULL, &out), 0);
    CHECK_CONTAINS(out, "applied 9100_newer.sql");
    free(out);
    out = NULL;

    /* The older directory (the repository's files): status and apply pass. */
    CHECK_EQ_INT(migrate(migrations, "rollback", "--status", NULL, &out), 0);
    CHECK_CONTAINS(out, "newer    9100_newer.sql");
    CHECK_CONTAINS(out, "applied  0001_initial.sql");
    CHECK(out && !strstr(out, "missing") && !strstr(out, "pending"));
    free(out);
    out = NULL;
    char *before = query("rollback", SCHEMA_MIGRATIONS_ROWS);
    CHECK_EQ_INT(migrate(migrations, "rollback", NULL, NULL, &out), 0);
    CHECK_CONTAINS(out, "migration 9100_newer.sql was applied by a newer release");
    CHECK_CONTAINS(out, "up to date at version 9100");
    char *after = query("rollback", SCHEMA_MIGRATIONS_ROWS);
    CHECK(before && *before);
    CHECK_EQ_STR(after, before);
    free(before);
    free(after);
    free(out);
    out = NULL;

    /* A known file that changed is still refused, newer rows or not. */
    CHECK_EQ_INT(copy_migrations(changed_dir), 0);
    char *original = harness_read_file(changed, NULL);
    if (CHECK(original != NULL)) {
        size_t len = strlen(original) + 32;
        char *edited = malloc(len);
        if (CHECK(edited != NULL)) {
            snprintf(edited, len, "%s-- edited\n", original);
            CHECK_EQ_INT(write_file(changed, edited), 0);
        }
        free(edited);
    }
    free(original);
    CHECK_EQ_INT(migrate(changed_dir, "rollback", "--status", NULL, &out), 1);
    CHECK_CONTAINS(out, "changed  0001_initial.sql");
    CHECK_CONTAINS(out, "newer    9100_newer.sql");
    free(out);
    out = NULL;
    CHECK_EQ_INT(migrate(changed_dir, "rollback", NULL, NULL, &out), 1);
    CHECK_CONTAINS(out, "migration 0001_initial.sql was changed after it was applied");
    free(out);
}

static void test_changed_applied_file_is_refused(void)
{
    char file[2048], *out = NULL;
    path_in(file, sizeof file, migrations, "0001_initial.sql");
    char *original = harness_read_file(file, NULL);
    if (!CHECK(original != NULL))
        return;
    size_t len = strlen(original);
    char *edited = malloc(len + 32);
    if (!CHECK(edited != NULL))
        goto out;
    snprintf(edited, len + 32, "%s-- edited\n", original);
    CHECK_EQ_INT(write_file(file, edited), 0);
    CHECK_EQ_INT(migrate(migrations, "seashore", NULL, NULL, &out), 1);
    CHECK_CONTAINS(out, "migration 0001_initial.sql was changed after it was applied");
    CHECK_CONTAINS(out, "add a new migration instead");
out:
    CHECK_EQ_INT(write_file(file, original), 0);
    free(out);
    free(edited);
    free(original);
}

static void test_missing_applied_file_is_refused(void)
{
    char file[2048], moved[2048], *out = NULL;
    path_in(file, sizeof file, migrations, "0001_initial.sql");
    path_in(moved, sizeof moved, harness_dir(h), "0001_initial.sql.moved");
    CHECK_EQ_INT(rename(file, moved), 0);
    CHECK_EQ_INT(migrate(migrations, "seashore", NULL, NULL, &out), 1);
    CHECK_CONTAINS(out, "0001_initial.sql was applied but is missing");
    CHECK_EQ_INT(rename(moved, file), 0);
    free(out);
}

static void test_broken_migration_rolls_back(void)
{
    char file[2048], *out = NULL;
    path_in(file, sizeof file, migrations, "9000_broken.sql");
    CHECK_EQ_INT(write_file(file, "CREATE TABLE broken_marker (id int);\n"
                                  "SELECT * FROM no_such_table;\n"),
                 0);
    char *before = query("seashore", "SELECT string_agg(version::text, ',' ORDER BY version)"
                                     " FROM schema_migrations");
    CHECK_EQ_INT(migrate(migrations, "seashore", NULL, NULL, &out), 1);
    CHECK_CONTAINS(out, "9000_broken.sql");
    CHECK_CONTAINS(out, "no_such_table");
    char *marker = query("seashore", "SELECT to_regclass('public.broken_marker') IS NULL");
    CHECK_EQ_STR(marker, "t");
    char *versions = query("seashore", "SELECT string_agg(version::text, ',' ORDER BY version)"
                                       " FROM schema_migrations");
    CHECK_EQ_STR(versions, before);
    free(before);
    free(marker);
    free(versions);
    free(out);
    out = NULL;
    /* --status shows it pending; the runner still works once it is gone. */
    CHECK_EQ_INT(migrate(migrations, "seashore", "--status", NULL, &out), 0);
    CHECK_CONTAINS(out, "applied  0001_initial.sql");
    CHECK_CONTAINS(out, "pending  9000_broken.sql");
    free(out);
    out = NULL;
    CHECK_EQ_INT(unlink(file), 0);
    CHECK_EQ_INT(migrate(migrations, "seashore", NULL, NULL, &out), 0);
    CHECK_CONTAINS(out, "up to date");
    free(out);
}

static void test_duplicate_numbers_are_refused(void)
{
    char file[2048], *out = NULL;
    path_in(file, sizeof file, migrations, "0001_again.sql");
    CHECK_EQ_INT(write_file(file, "SELECT 1;\n"), 0);
    CHECK_EQ_INT(migrate(migrations, "seashore", NULL, NULL, &out), 1);
    CHECK_CONTAINS(out, "0001_again.sql");
    CHECK_CONTAINS(out, "0001_initial.sql");
    CHECK_EQ_INT(unlink(file), 0);
    free(out);
}

static void test_missing_database_url_exits_2(void)
{
    char *out = NULL;
    CHECK_EQ_INT(migrate(migrations, NULL, NULL, NULL, &out), 2);
    CHECK_EQ_STR(out, "seashore-migrate: DATABASE_URL is required (PostgreSQL URL)\n");
    free(out);
}

static void test_unreachable_database_exits_1(void)
{
    char *out = NULL;
    harness_pg saved = pg;
    pg.port = harness_free_port(); /* nothing listens there */
    CHECK_EQ_INT(migrate(migrations, "seashore", NULL, NULL, &out), 1);
    CHECK_CONTAINS(out, "cannot connect to PostgreSQL");
    pg = saved;
    free(out);
}

int main(void)
{
    h = harness_new("migrations");
    if (!h || harness_pg_start(h, &pg) != 0) {
        fprintf(stderr, "cannot start PostgreSQL\n");
        harness_free(h);
        return 1;
    }
    path_in(migrations, sizeof migrations, harness_dir(h), "migrations");
    if (copy_migrations(migrations) != 0) {
        fprintf(stderr, "cannot copy the migrations to %s\n", migrations);
        harness_free(h);
        return 1;
    }
    TEST_RUN(test_first_run_applies_everything);
    TEST_RUN(test_second_run_is_a_no_op);
    TEST_RUN(test_concurrent_runners_apply_once);
    TEST_RUN(test_older_release_accepts_newer_migrations);
    TEST_RUN(test_changed_applied_file_is_refused);
    TEST_RUN(test_missing_applied_file_is_refused);
    TEST_RUN(test_broken_migration_rolls_back);
    TEST_RUN(test_duplicate_numbers_are_refused);
    TEST_RUN(test_missing_database_url_exits_2);
    TEST_RUN(test_unreachable_database_exits_1);
    harness_free(h);
    return check_finish();
}

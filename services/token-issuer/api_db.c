/* api_db.c -- each HTTP thread's own PostgreSQL connection. libmicrohttpd
 * runs API_THREADS threads; with one shared connection (ss_pg serialises
 * its users) every request would still wait for every other request's
 * round trips, and one waiting on a lock would stall them all. */
#include "api.h"

#include <pthread.h>

static pthread_key_t pg_key;
static pthread_once_t pg_once = PTHREAD_ONCE_INIT;

static void pg_close_at_exit(void *pg)
{
    ss_pg_close(pg);
}

static void pg_key_create(void)
{
    pthread_key_create(&pg_key, pg_close_at_exit);
}

ss_pg *api_pg(void)
{
    pthread_once(&pg_once, pg_key_create);
    ss_pg *pg = pthread_getspecific(pg_key);
    if (pg == NULL && (pg = ss_pg_open(api_cfg.svc->database_url)) != NULL &&
        pthread_setspecific(pg_key, pg) != 0) {
        ss_pg_close(pg);
        pg = NULL;
    }
    return pg != NULL ? pg : api_cfg.svc->pg; /* out of memory: share the service's */
}

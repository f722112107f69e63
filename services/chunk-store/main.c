/* chunk-store -- the durable chunk log (JetStream) and its index
 * (PostgreSQL): which bytes of a track are durable, complete, uploaded. */
#include "seashore/drain.h"
#include "seashore/log.h"
#include "seashore/service.h"

int main(int argc, char **argv)
{
    ss_service svc;
    if (ss_service_init(&svc, argc, argv, "chunk-store", SS_NEEDS_NATS | SS_NEEDS_PG, NULL, 0) != 0)
        return 1;
    ss_drain_wait(-1);
    ss_log_info("drained", NULL);
    ss_service_cleanup(&svc);
    return 0;
}

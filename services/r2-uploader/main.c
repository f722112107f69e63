/* r2-uploader -- S3 multipart uploads of each track's raw byte stream,
 * part by part, while the recording runs. */
#include "seashore/drain.h"
#include "seashore/log.h"
#include "seashore/service.h"

int main(int argc, char **argv)
{
    ss_service svc;
    if (ss_service_init(&svc, argc, argv, "r2-uploader", SS_NEEDS_NATS | SS_NEEDS_PG | SS_NEEDS_S3,
                        NULL, 0) != 0)
        return 1;
    ss_drain_wait(-1);
    ss_log_info("drained", NULL);
    ss_service_cleanup(&svc);
    return 0;
}

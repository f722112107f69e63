/* harness_s3.c -- s3rver for the tests (see harness_s3.h). */
#include "harness_s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int harness_s3_start(harness *h, harness_s3 *s3)
{
    char dir[1024], port[16];
    s3->port = harness_free_port();
    s3->bucket = "seashore-test";
    s3->access_key = "S3RVER";
    s3->secret_key = "S3RVER";
    snprintf(s3->endpoint, sizeof s3->endpoint, "http://127.0.0.1:%d", s3->port);
    snprintf(dir, sizeof dir, "%s/s3", harness_dir(h));
    snprintf(port, sizeof port, "%d", s3->port);
    if (mkdir(dir, 0700) != 0)
        return -1;
    char *script = harness_source_path("node_modules/s3rver/bin/s3rver.js");
    if (!script)
        return -1;
    char *argv[] = {"node",
                    script,
                    "--directory",
                    dir,
                    "--address",
                    "127.0.0.1",
                    "--port",
                    port,
                    "--silent",
                    "--configure-bucket",
                    (char *)s3->bucket,
                    NULL};
    s3->pid = harness_spawn(h, "s3rver", argv, NULL);
    free(script);
    if (s3->pid <= 0)
        return -1;
    return harness_wait_port(s3->port, 15000);
}

int harness_s3_stop(harness *h, harness_s3 *s3)
{
    int rc = harness_stop(h, s3->pid);
    s3->pid = 0;
    return rc;
}

/* harness_s3.h -- an S3-compatible server for the tests: s3rver (npm), on a
 * free loopback port, data in the harness's temp dir, one bucket created.
 * s3rver verifies SigV4 signatures against its fixed key pair S3RVER/S3RVER
 * but has no ListParts; tests of the uploader also use Swift's s3api. */
#ifndef SEASHORE_HARNESS_S3_H
#define SEASHORE_HARNESS_S3_H

#include "harness.h"

typedef struct {
    int port;
    pid_t pid;
    char endpoint[64];      /* http://127.0.0.1:<port> */
    const char *bucket;     /* "seashore-test" */
    const char *access_key; /* s3rver's fixed credentials */
    const char *secret_key;
} harness_s3;

/* Starts s3rver from $SEASHORE_SOURCE_DIR/node_modules; waits for the port. */
int harness_s3_start(harness *h, harness_s3 *s3);
int harness_s3_stop(harness *h, harness_s3 *s3);

#endif

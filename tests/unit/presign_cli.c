/* presign_cli.c -- prints ss_s3_presign_get()'s URL, for
 * tests/api/presign_compare.mjs: presign_cli ENDPOINT REGION BUCKET KEY
 * EXPIRES_S UNIX_TIME [CONTENT_DISPOSITION] (keys from PRESIGN_ACCESS_KEY /
 * PRESIGN_SECRET_KEY). */
#include "seashore/s3.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    char err[256], *url = NULL;
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: presign_cli ENDPOINT REGION BUCKET KEY EXPIRES_S UNIX_TIME "
                        "[CONTENT_DISPOSITION]\n");
        return 2;
    }
    ss_s3_config c = {argv[1], getenv("PRESIGN_ACCESS_KEY"), getenv("PRESIGN_SECRET_KEY"), argv[3],
                      argv[2]};
    if (c.access_key == NULL || c.secret_key == NULL) {
        fprintf(stderr, "presign_cli: PRESIGN_ACCESS_KEY and PRESIGN_SECRET_KEY must be set\n");
        return 2;
    }
    if (ss_s3_presign_get(&c, argv[4], argc == 8 ? argv[7] : NULL, atoll(argv[5]),
                          (time_t)atoll(argv[6]), &url, err, sizeof err) != 0) {
        fprintf(stderr, "presign_cli: %s\n", err);
        return 1;
    }
    printf("%s\n", url);
    free(url);
    return 0;
}

/* s3.c -- object store requests through libcurl (see s3.h). */
#include "seashore/s3.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define S3_PROBE_TIMEOUT_MS 3000
#define S3_READY_CACHE_S    3
/* sha256 of an empty payload: S3 wants x-amz-content-sha256 on every
 * request, and libcurl 7.88 does not add it by itself. */
#define S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

int ss_s3_head_bucket(const ss_s3_config *cfg, char *why, size_t whylen)
{
    char url[1024], sigv4[128];
    snprintf(url, sizeof url, "%s/%s", cfg->endpoint, cfg->bucket);
    snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", cfg->region);
    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(why, whylen, "cannot create a curl handle");
        return -1;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(curl, CURLOPT_USERNAME, cfg->access_key);
    curl_easy_setopt(curl, CURLOPT_PASSWORD, cfg->secret_key);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)S3_PROBE_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    struct curl_slist *headers = curl_slist_append(NULL, "x-amz-content-sha256: " S3_EMPTY_SHA256);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    CURLcode rc = headers ? curl_easy_perform(curl) : CURLE_OUT_OF_MEMORY;
    curl_slist_free_all(headers);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "object store unreachable: %s", curl_easy_strerror(rc));
        return -1;
    }
    if (status != 200) {
        snprintf(why, whylen, "HTTP %ld from the object store for bucket %s", status, cfg->bucket);
        return -1;
    }
    return 0;
}

bool ss_s3_ready(void *arg, char *why, size_t whylen)
{
    /* One cached answer per process: services have one bucket. */
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static time_t checked_at;
    static bool ready;
    static char reason[256];
    pthread_mutex_lock(&lock);
    time_t now = time(NULL);
    if (checked_at == 0 || now - checked_at >= S3_READY_CACHE_S) {
        ready = ss_s3_head_bucket(arg, reason, sizeof reason) == 0;
        checked_at = now;
    }
    bool result = ready;
    snprintf(why, whylen, "%s", reason);
    pthread_mutex_unlock(&lock);
    return result;
}

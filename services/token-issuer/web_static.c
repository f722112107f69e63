/* web_static.c -- static files under WEB_ROOT (see web_static.h). */
#include "web_static.h"
#include "seashore/http.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *ext;
    const char *type;
} content_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".wasm", "application/wasm"},
    {".proto", "text/plain; charset=utf-8"},
};

static const char *content_type_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof content_types / sizeof content_types[0]; i++) {
        if (strcmp(dot, content_types[i].ext) == 0)
            return content_types[i].type;
    }
    return "application/octet-stream";
}

int web_static_resolve(const char *root, const char *url, char *resolved)
{
    char real_root[PATH_MAX], wanted[PATH_MAX];
    if (!realpath(root, real_root))
        return -1;
    const char *rel = strcmp(url, "/") == 0 ? "/index.html" : url;
    if (snprintf(wanted, sizeof wanted, "%s%s", real_root, rel) >= (int)sizeof wanted)
        return -1;
    if (!realpath(wanted, resolved))
        return -1;
    size_t n = strlen(real_root);
    if (strncmp(resolved, real_root, n) != 0 || (resolved[n] != '/' && resolved[n] != '\0'))
        return -2;
    return 0;
}

enum MHD_Result web_static_serve(struct MHD_Connection *conn, const char *root, const char *url)
{
    char path[PATH_MAX];
    int rc = web_static_resolve(root, url, path);
    if (rc == -2)
        return ss_http_respond_text(conn, MHD_HTTP_FORBIDDEN, "forbidden\n");
    struct stat st;
    int fd = rc == 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return ss_http_respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
    }
    /* The response owns fd from here and closes it. */
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", content_type_of(path));
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

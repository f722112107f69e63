/* web_static.h -- the studio web app's static files, served by the
 * token-issuer's HTTP server (GET and HEAD only, under WEB_ROOT, never
 * outside it). */
#ifndef TOKEN_ISSUER_WEB_STATIC_H
#define TOKEN_ISSUER_WEB_STATIC_H

#include <microhttpd.h>

/* Answers `url` from the files under `root` ("/" is index.html). Queues a
 * 404 for a missing file, a 403 for a path that leaves the root. */
enum MHD_Result web_static_serve(struct MHD_Connection *conn, const char *root, const char *url);

/* The file url names under root, resolved (symlinks and ".." included) into
 * resolved (PATH_MAX bytes): 0; -1 when it does not exist (or root does
 * not); -2 when it is outside root. */
int web_static_resolve(const char *root, const char *url, char *resolved);

#endif

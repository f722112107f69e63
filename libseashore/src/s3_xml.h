/* s3_xml.h -- the XML of S3 answers (UploadId, ListParts, <Error>) and of the
 * CompleteMultipartUpload request, through libxml2. Private to libseashore
 * (s3_client.c). Elements are matched by local name, so answers with or
 * without S3's xmlns read the same. No network access and no entity
 * substitution while parsing; the caller bounds the input size. */
#ifndef SEASHORE_S3_XML_H
#define SEASHORE_S3_XML_H

#include <stdbool.h>
#include <stddef.h>

#include "seashore/s3_client.h"

/* A growing array of parts (ListParts pages are appended to it). */
typedef struct s3_parts {
    ss_s3_part *v; /* caller frees */
    size_t n;      /* parts in v */
    size_t cap;    /* room in v */
} s3_parts;

/* Once per process, before threads parse (libxml2's global state). */
void s3_xml_init(void);

/* An <Error> document: 0 with its Code and Message (each cut to fit, "" when
 * absent), or -1 when xml is not one. */
int s3_xml_error(const char *xml, size_t len, char *code, size_t codelen, char *message,
                 size_t msglen) __attribute__((warn_unused_result));

/* 0 when xml parses and its root element is called root. */
int s3_xml_root_is(const char *xml, size_t len, const char *root)
    __attribute__((warn_unused_result));

/* <InitiateMultipartUploadResult>'s UploadId into id (idlen with the NUL):
 * 0, or -1 with the reason in err. */
int s3_xml_upload_id(const char *xml, size_t len, char *id, size_t idlen, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* One <ListPartsResult> page: its parts appended to parts, *truncated from
 * IsTruncated, *next_marker from NextPartNumberMarker (0 when absent). 0,
 * or -1 with the reason in err. */
int s3_xml_list_parts(const char *xml, size_t len, s3_parts *parts, bool *truncated,
                      int *next_marker, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The <CompleteMultipartUpload> body for parts: 0 and *out (malloc'd, caller
 * frees) of *outlen bytes, or -1 when out of memory. */
int s3_xml_complete_body(const ss_s3_part *parts, size_t nparts, char **out, size_t *outlen)
    __attribute__((warn_unused_result));

#endif

/* s3_xml.c -- S3's XML through libxml2 (see s3_xml.h). */
#include "s3_xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARTS_MIN_CAP   64
#define S3_MAX_PART_NUM 10000 /* S3's limit; a larger number is a broken answer */

void s3_xml_init(void)
{
    xmlInitParser();
}

/* A document from untrusted bytes: no network, no entity substitution, no
 * messages on stderr. NULL when it does not parse. Free with xmlFreeDoc. */
static xmlDocPtr parse(const char *xml, size_t len)
{
    if (!xml || len == 0 || len > INT_MAX)
        return NULL;
    return xmlReadMemory(xml, (int)len, "s3-answer.xml", NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static bool named(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0;
}

static xmlNode *child(const xmlNode *parent, const char *name)
{
    for (xmlNode *n = parent ? parent->children : NULL; n; n = n->next)
        if (named(n, name))
            return n;
    return NULL;
}

/* The text of n into out: 0, or -1 when n is NULL or its text does not fit
 * (out then holds what fits, possibly ""). */
static int text(const xmlNode *n, char *out, size_t outlen)
{
    if (outlen > 0)
        out[0] = '\0';
    if (!n)
        return -1;
    xmlChar *s = xmlNodeGetContent(n);
    if (!s)
        return -1;
    int w = snprintf(out, outlen, "%s", (const char *)s);
    xmlFree(s);
    return w >= 0 && (size_t)w < outlen ? 0 : -1;
}

/* The text of n as a number in [0, max]: 0, or -1. */
static int number(const xmlNode *n, unsigned long long max, unsigned long long *out)
{
    char buf[32], *end;
    if (text(n, buf, sizeof buf) != 0 || buf[0] < '0' || buf[0] > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

int s3_xml_error(const char *xml, size_t len, char *code, size_t codelen, char *message,
                 size_t msglen)
{
    xmlDocPtr doc = parse(xml, len);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    int rc = -1;
    if (!named(root, "Error"))
        goto out;
    /* A Code or Message too long for the buffers is kept cut. */
    (void)text(child(root, "Code"), code, codelen);
    (void)text(child(root, "Message"), message, msglen);
    rc = 0;
out:
    xmlFreeDoc(doc);
    return rc;
}

int s3_xml_root_is(const char *xml, size_t len, const char *root)
{
    xmlDocPtr doc = parse(xml, len);
    int rc = doc && named(xmlDocGetRootElement(doc), root) ? 0 : -1;
    xmlFreeDoc(doc);
    return rc;
}

int s3_xml_upload_id(const char *xml, size_t len, char *id, size_t idlen, char *err, size_t errlen)
{
    xmlDocPtr doc = parse(xml, len);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    int rc = -1;
    if (!named(root, "InitiateMultipartUploadResult")) {
        snprintf(err, errlen, "answer is not an InitiateMultipartUploadResult document");
        goto out;
    }
    xmlNode *n = child(root, "UploadId");
    if (!n) {
        snprintf(err, errlen, "answer has no UploadId");
        goto out;
    }
    if (text(n, id, idlen) != 0 || id[0] == '\0') {
        snprintf(err, errlen, "UploadId is empty or longer than %zu bytes", idlen - 1);
        goto out;
    }
    rc = 0;
out:
    xmlFreeDoc(doc);
    return rc;
}

static int parts_push(s3_parts *parts, const ss_s3_part *p)
{
    if (parts->n == parts->cap) {
        size_t cap = parts->cap ? parts->cap * 2 : PARTS_MIN_CAP;
        ss_s3_part *v = realloc(parts->v, cap * sizeof *v);
        if (!v)
            return -1;
        parts->v = v;
        parts->cap = cap;
    }
    parts->v[parts->n++] = *p;
    return 0;
}

/* One <Part> element appended to parts: 0, or -1 with the reason in err. */
static int list_one_part(const xmlNode *n, s3_parts *parts, char *err, size_t errlen)
{
    ss_s3_part p = {0};
    unsigned long long num, size;
    if (number(child(n, "PartNumber"), S3_MAX_PART_NUM, &num) != 0 || num == 0) {
        snprintf(err, errlen, "a Part has no valid PartNumber");
        return -1;
    }
    p.part_number = (int)num;
    if (text(child(n, "ETag"), p.etag, sizeof p.etag) != 0 || p.etag[0] == '\0') {
        snprintf(err, errlen, "part %d has no ETag or one longer than %zu bytes", p.part_number,
                 sizeof p.etag - 1);
        return -1;
    }
    if (number(child(n, "Size"), UINT64_MAX, &size) != 0) {
        snprintf(err, errlen, "part %d has no valid Size", p.part_number);
        return -1;
    }
    p.size = size;
    if (parts_push(parts, &p) != 0) {
        snprintf(err, errlen, "out of memory for part %d", p.part_number);
        return -1;
    }
    return 0;
}

int s3_xml_list_parts(const char *xml, size_t len, s3_parts *parts, bool *truncated,
                      int *next_marker, char *err, size_t errlen)
{
    xmlDocPtr doc = parse(xml, len);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    char flag[8];
    unsigned long long marker = 0;
    int rc = -1;
    if (!named(root, "ListPartsResult")) {
        snprintf(err, errlen, "answer is not a ListPartsResult document");
        goto out;
    }
    for (xmlNode *n = root->children; n; n = n->next)
        if (named(n, "Part") && list_one_part(n, parts, err, errlen) != 0)
            goto out;
    *truncated =
        text(child(root, "IsTruncated"), flag, sizeof flag) == 0 && strcmp(flag, "true") == 0;
    xmlNode *next = child(root, "NextPartNumberMarker");
    if (next && number(next, S3_MAX_PART_NUM, &marker) != 0) {
        snprintf(err, errlen, "NextPartNumberMarker is not a part number");
        goto out;
    }
    *next_marker = (int)marker;
    rc = 0;
out:
    xmlFreeDoc(doc);
    return rc;
}

/* <Part><PartNumber>n</PartNumber><ETag>"..."</ETag></Part> under root. */
static int complete_add_part(xmlNodePtr root, const ss_s3_part *p)
{
    char num[16];
    snprintf(num, sizeof num, "%d", p->part_number);
    xmlNodePtr part = xmlNewChild(root, NULL, BAD_CAST "Part", NULL);
    /* xmlNewTextChild escapes the text (an ETag is the store's string). */
    if (!part || !xmlNewTextChild(part, NULL, BAD_CAST "PartNumber", BAD_CAST num) ||
        !xmlNewTextChild(part, NULL, BAD_CAST "ETag", BAD_CAST p->etag))
        return -1;
    return 0;
}

int s3_xml_complete_body(const ss_s3_part *parts, size_t nparts, char **out, size_t *outlen)
{
    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr root = doc ? xmlNewNode(NULL, BAD_CAST "CompleteMultipartUpload") : NULL;
    xmlChar *mem = NULL;
    int memlen = 0, rc = -1;
    if (!root)
        goto out;
    xmlDocSetRootElement(doc, root);
    for (size_t i = 0; i < nparts; i++)
        if (complete_add_part(root, &parts[i]) != 0)
            goto out;
    xmlDocDumpMemoryEnc(doc, &mem, &memlen, "UTF-8");
    if (!mem || memlen <= 0)
        goto out;
    *out = malloc((size_t)memlen);
    if (!*out)
        goto out;
    memcpy(*out, mem, (size_t)memlen);
    *outlen = (size_t)memlen;
    rc = 0;
out:
    xmlFree(mem);
    xmlFreeDoc(doc);
    return rc;
}

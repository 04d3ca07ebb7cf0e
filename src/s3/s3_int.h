/*
 * s3 internals shared by the files of the module: the per-request state, the answers
 * (errors, XML), the XML reader and writer, and the operations of each file.
 *
 *   s3.c         the application: authentication, classification, dispatch, errors
 *   xml.c        the strict XML reader of request bodies and the escaping of answers
 *   object.c     objects: put, get/head, copy, part copy, metadata headers, sub-resources
 *   multipart.c  multipart uploads: create, part, complete, abort
 *   list.c       listings: buckets, objects (V1 and V2), uploads, parts
 */
#ifndef ACERVO_S3_INT_H
#define ACERVO_S3_INT_H

#include "s3/s3.h"

#include <openssl/evp.h>

#define S3_XML_HEADER "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define S3_NS         "http://s3.amazonaws.com/doc/2006-03-01/"

/** The owner of acervo's buckets and objects in S3 answers (ACLs, listings). */
#define S3_OWNER_ID   "acervo"
#define S3_OWNER_NAME "acervo"

/** Largest sum of user metadata names (after "x-amz-meta-") and values, S3's 2 KiB. */
#define S3_USER_META_MAX 2048

/** What a request does, decided from method, path, sub-resource and headers. */
enum s3_op {
    OP_NOT_IMPLEMENTED, /* an S3 operation acervo does not implement: 501 */
    OP_NONE,            /* not an operation on this resource: 405 */
    OP_LIST_BUCKETS,
    OP_HEAD_BUCKET,
    OP_CREATE_BUCKET,
    OP_LIST_OBJECTS,
    OP_LIST_UPLOADS,
    OP_GET_LOCATION,
    OP_GET_ACL,
    OP_STATIC, /* a fixed document (the sub-resource's answer) */
    OP_ABSENT, /* a configuration acervo never has: the sub-resource's S3 error */
    OP_PUT_OBJECT,
    OP_COPY_OBJECT,
    OP_UPLOAD_PART,
    OP_UPLOAD_PART_COPY,
    OP_CREATE_UPLOAD,
    OP_COMPLETE_UPLOAD,
    OP_ABORT_UPLOAD,
    OP_LIST_PARTS,
    OP_GET_OBJECT,
};

/** One sub-resource of S3's API (?acl, ?location, ...) and what acervo does with it. */
struct s3_subresource {
    const char *name;
    enum s3_op bucket_get;     /* GET /bucket?name */
    enum s3_op object_get;     /* GET /bucket/key?name */
    enum s3_op object_post;    /* POST /bucket/key?name */
    const char *note;          /* what it is, or why acervo has none: for NotImplemented */
    const char *bucket_answer; /* bucket_get OP_STATIC: the document; OP_ABSENT: the error */
    const char *object_answer; /* object_get OP_STATIC: the document */
};

/** Per-request state. */
struct s3_req {
    struct s3_ctx *ctx;
    enum s3_op op;
    const struct s3_subresource *sub; /* the request's sub-resource, or NULL */
    const char *bucket;
    const char *key;
    const char *upload_id;
    int part_number;
    struct cat_key principal;
    struct store_writer *writer;
    EVP_MD_CTX *sha; /* verifies a signed payload hash */
    EVP_MD_CTX *md5; /* verifies Content-MD5 */
    const char *payload_hash;
    const char *content_md5;
    const char *content_type; /* PutObject, CreateMultipartUpload: what the object keeps */
    const char *headers;      /* ... and its headers (store_headers_valid), or NULL */
};

/* ---- answers (s3.c) ---------------------------------------------------------------- */

/** Sends err as an S3 XML error. */
void s3__send_error(struct http_req *req, const struct err *err);
/** Sends an S3 XML error made of c and the message ("Code: text"). */
void s3__fail(struct http_req *req, enum err_code c, const char *fmt, ...) ATTR_PRINTF(3, 4);
/** Sends b (an XML document, taken over) with status. */
void s3__send_xml(struct http_req *req, int status, struct buf *b);
/** Sends the error of a write refused because bucket/key is taken (err: ERR_CONFLICT). */
void s3__send_conflict(struct http_req *req, struct s3_req *r, const struct err *err);
/** 0 if the principal may write, else -1 with AccessDenied. */
int s3__writes_allowed(const struct s3_req *r, struct err *err);
/** 1 if bucket/key is one of the keys acervo itself writes (masters, upload staging). */
int s3__reserved_key(const char *bucket, const char *key);
/** The upload named by the request's uploadId, checked against its bucket and key. */
int s3__load_upload(struct http_req *req, struct s3_req *r, struct store_upload *u,
                    struct err *err);

/* ---- XML (xml.c) --------------------------------------------------------------------- */

/** Limits of the XML reader: nesting, names, text of one element, attributes. */
#define S3_XML_DEPTH_MAX 16
#define S3_XML_NAME_MAX  128
#define S3_XML_TEXT_MAX  4096
#define S3_XML_ATTR_MAX  16

/** An element of a parsed document; everything is in the arena given to the parser. */
struct s3_xml_node {
    const char *name; /* local name: any "prefix:" removed */
    const char *text; /* the character data directly inside, decoded, NUL-terminated */
    size_t text_len;
    struct s3_xml_node *child; /* first child element */
    struct s3_xml_node *next;  /* next sibling */
};

/**
 * Parses the n bytes at s as one XML 1.0 document (UTF-8): an optional declaration,
 * comments, processing instructions, one root element with attributes, character and
 * entity references and CDATA sections. Strict: anything not well-formed, a DOCTYPE (no
 * entities can be declared), or a limit exceeded (S3_XML_*) fails with ERR_INVALID
 * "MalformedXML: ..." saying what and where. *root and every node live in a.
 */
int s3__xml_parse(struct arena *a, const char *s, size_t n, struct s3_xml_node **root,
                  struct err *err);
/** The first child of parent named name, or NULL. */
const struct s3_xml_node *s3__xml_child(const struct s3_xml_node *parent, const char *name);
/**
 * Reads a CompleteMultipartUpload document into refs (in a): the parts in document order,
 * each number 1..10000 and its ETag with surrounding quotes and spaces removed. -1 with
 * ERR_INVALID "MalformedXML:" / "InvalidArgument:" or ERR_LIMIT if it is not one.
 */
int s3__complete_parse(struct arena *a, const char *s, size_t n, struct store_part_ref **refs,
                       size_t *count, struct err *err);

/**
 * Appends the n bytes at s as XML character data. url: percent-encoded as S3 does for
 * encoding-type=url (every byte but letters, digits, '-', '_', '.', '~' and '/'), which
 * carries any bytes exactly. Otherwise escaped; tab, newline and carriage return become
 * character references, and what XML 1.0 cannot carry (other control characters, bytes
 * that are not UTF-8, U+FFFE/U+FFFF) becomes U+FFFD, so the answer always parses.
 */
void s3__xml_text(struct buf *b, const char *s, size_t n, int url);
/** s3__xml_text of a NUL-terminated string. */
void s3__xml_str(struct buf *b, const char *s, int url);
/** 1 if s3__xml_text carries s exactly without url encoding. */
int s3__xml_exact(const char *s, size_t n);

/* ---- operations ---------------------------------------------------------------------- */

/* object.c */
int s3__object_headers(struct http_req *req, struct s3_req *r, struct err *err);
int s3__refuse_headers(struct http_req *req, struct s3_req *r, struct err *err);
void s3__op_get_object(struct http_req *req, struct s3_req *r);
void s3__op_copy_object(struct http_req *req, struct s3_req *r);
void s3__op_upload_part_copy(struct http_req *req, struct s3_req *r);
void s3__op_create_bucket(struct http_req *req, struct s3_req *r);
void s3__op_get_location(struct http_req *req, struct s3_req *r);
void s3__op_get_acl(struct http_req *req, struct s3_req *r);
void s3__op_static(struct http_req *req, struct s3_req *r);

/* multipart.c */
int s3__begin_write(struct http_req *req, struct s3_req *r, struct err *err);
void s3__finish_write(struct http_req *req, struct s3_req *r);
void s3__op_create_upload(struct http_req *req, struct s3_req *r);
void s3__op_complete_upload(struct http_req *req, struct s3_req *r);
void s3__op_abort_upload(struct http_req *req, struct s3_req *r);

/* list.c */
void s3__op_list_buckets(struct http_req *req, struct s3_req *r);
void s3__op_list_objects(struct http_req *req, struct s3_req *r);
void s3__op_list_uploads(struct http_req *req, struct s3_req *r);
void s3__op_list_parts(struct http_req *req, struct s3_req *r);

#endif

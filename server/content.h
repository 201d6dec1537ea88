/* Channels, content uploads and blobs. An upload is stored only when its
 * manifest carries enough release signatures, the blob matches it, the one
 * parser accepts it and the preflight run of the interpreter passes. */
#ifndef FB_CONTENT_H
#define FB_CONTENT_H

#include "http.h"

void content_channel_create(struct http_req *req); /* POST /v1/channels */
void content_channel_list(struct http_req *req);   /* GET /v1/channels */
void content_upload(struct http_req *req);         /* POST /v1/content */
void content_list(struct http_req *req);           /* GET /v1/content */
void content_show(struct http_req *req);           /* GET /v1/content/{sha256} */
void content_blob(struct http_req *req);           /* GET /v1/blobs/{sha256} */
void content_cache_cleanup(void);

#endif

/* Request-body validation helpers. Each checks one field of a JSON object
 * and, when it is wrong, replies 400 naming the field and what was
 * expected; the _or_reply suffix means the caller must stop on failure. */
#ifndef FB_VALIDATE_H
#define FB_VALIDATE_H

#include <jansson.h>
#include <stdint.h>

#include "http.h"

/* 1 when every key of obj is in allowed (NULL-terminated). */
int val_fields_or_reply(struct http_req *req, const json_t *obj, const char *const *allowed);
/* The string at key with length in [minlen, maxlen], borrowed from obj.
 * Absent and !required: NULL without a reply (check json_object_get to tell
 * the two apart). */
const char *val_string_or_reply(struct http_req *req, const json_t *obj, const char *key,
                                size_t minlen, size_t maxlen, int required);
/* Integer at key in [min, max] into *out. Absent and !required: 1, *out
 * unchanged. */
int val_int_or_reply(struct http_req *req, const json_t *obj, const char *key, int64_t min,
                     int64_t max, int required, int64_t *out);
/* A 64-hex sha256 at key. */
const char *val_sha256_or_reply(struct http_req *req, const json_t *obj, const char *key,
                                int required);
/* Tags: an object of at most 32 string values, keys [A-Za-z0-9_.-]{1,64},
 * values [A-Za-z0-9_.:-]{1,128}. */
int val_tags_or_reply(struct http_req *req, const json_t *tags);
/* Capabilities: an array of at most 256 {"id": int >= 0, "version": int >= 0}. */
int val_capabilities_or_reply(struct http_req *req, const json_t *caps, int required);

/* Platform facts (NULL: absent, fine): an object of "os", "os_build"
 * ([A-Za-z0-9._-]{1,32}), "arch" ({1,16}) and "extra" (at most 8 facts,
 * keys [a-z0-9_]{1,32}, string values [A-Za-z0-9._:-]{1,64}); every member
 * optional, anything else refused naming the field. */
int val_platform_or_reply(struct http_req *req, const json_t *platform);

/* The path parameter param (e.g. "id") as an integer in [1, max] into *out;
 * else 400 naming what it is ("rollout id must be a positive integer, found
 * 'x'") and 0. */
int val_param_id_or_reply(struct http_req *req, const char *param, const char *what, int64_t max,
                          int64_t *out);

#endif

/* Request-body validation helpers with precise 400 replies. */
#include "validate.h"

#include <string.h>

int val_fields_or_reply(struct http_req *req, const json_t *obj, const char *const *allowed)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v)
	{
		int ok = 0;
		for (int i = 0; allowed[i]; i++)
			if (strcmp(key, allowed[i]) == 0)
				ok = 1;
		if (!ok) {
			http_error(req, 400, "invalid", "unknown field '%s'", key);
			return 0;
		}
	}
	return 1;
}

const char *val_string_or_reply(struct http_req *req, const json_t *obj, const char *key,
                                size_t minlen, size_t maxlen, int required)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		if (required)
			http_error(req, 400, "invalid", "field '%s' is required", key);
		return NULL;
	}
	if (!json_is_string(v) || json_string_length(v) < minlen ||
	    json_string_length(v) > maxlen ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		http_error(req, 400, "invalid",
		           "field '%s' must be a string of %zu to %zu characters", key, minlen,
		           maxlen);
		return NULL;
	}
	return json_string_value(v);
}

int val_int_or_reply(struct http_req *req, const json_t *obj, const char *key, int64_t min,
                     int64_t max, int required, int64_t *out)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		if (required)
			http_error(req, 400, "invalid", "field '%s' is required", key);
		return !required;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		http_error(req, 400, "invalid", "field '%s' must be an integer in [%lld, %lld]",
		           key, (long long)min, (long long)max);
		return 0;
	}
	*out = json_integer_value(v);
	return 1;
}

const char *val_sha256_or_reply(struct http_req *req, const json_t *obj, const char *key,
                                int required)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		if (required)
			http_error(req, 400, "invalid", "field '%s' is required", key);
		return NULL;
	}
	if (!fb_is_sha256_hex(json_string_value(v))) {
		http_error(req, 400, "invalid",
		           "field '%s' must be 64 lower-case hex digits (sha256)", key);
		return NULL;
	}
	return json_string_value(v);
}

static int charset_ok(const char *s, size_t min, size_t max, const char *extra)
{
	size_t n = strlen(s);
	if (n < min || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr(extra, c)))
			return 0;
	}
	return 1;
}

int val_tags_or_reply(struct http_req *req, const json_t *tags)
{
	if (!json_is_object(tags) || json_object_size(tags) > 32) {
		http_error(req, 400, "invalid",
		           "field 'tags' must be an object of at most 32 tags");
		return 0;
	}
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)tags, k, v)
	{
		if (!charset_ok(k, 1, 64, "_.-") || !json_is_string(v) ||
		    !charset_ok(json_string_value(v), 1, 128, "_.:-")) {
			http_error(req, 400, "invalid",
			           "tag '%.64s' must have a key of [A-Za-z0-9_.-]{1,64} and a "
			           "string value of [A-Za-z0-9_.:-]{1,128}",
			           k);
			return 0;
		}
	}
	return 1;
}

int val_capabilities_or_reply(struct http_req *req, const json_t *caps, int required)
{
	if (!caps) {
		if (required)
			http_error(req, 400, "invalid", "field 'capabilities' is required");
		return !required;
	}
	if (!json_is_array(caps) || json_array_size(caps) > 256) {
		http_error(req, 400, "invalid",
		           "field 'capabilities' must be an array of at most 256 entries");
		return 0;
	}
	for (size_t i = 0; i < json_array_size(caps); i++) {
		json_t *e = json_array_get(caps, i);
		json_t *id = json_object_get(e, "id"), *ver = json_object_get(e, "version");
		if (!json_is_object(e) || json_object_size(e) != 2 || !json_is_integer(id) ||
		    !json_is_integer(ver) || json_integer_value(id) < 0 ||
		    json_integer_value(id) > 0xffffffffLL || json_integer_value(ver) < 0 ||
		    json_integer_value(ver) > 0xffff) {
			http_error(req, 400, "invalid",
			           "capabilities[%zu] must be {\"id\": 0..4294967295, \"version\": "
			           "0..65535}",
			           i);
			return 0;
		}
	}
	return 1;
}

int val_platform_or_reply(struct http_req *req, const json_t *platform)
{
	if (!platform)
		return 1;
	if (!json_is_object(platform)) {
		http_error(req, 400, "invalid",
		           "field 'platform' must be an object of os, os_build, arch and extra");
		return 0;
	}
	static const struct {
		const char *key;
		size_t max;
	} facts[] = {{"os", 32}, {"os_build", 32}, {"arch", 16}};
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)platform, k, v)
	{
		size_t i = 0;
		while (i < 3 && strcmp(k, facts[i].key) != 0)
			i++;
		if (i < 3) {
			if (!json_is_string(v) ||
			    !charset_ok(json_string_value(v), 1, facts[i].max, "._-")) {
				http_error(req, 400, "invalid",
				           "platform.%s must be a string of [A-Za-z0-9._-]{1,%zu}",
				           k, facts[i].max);
				return 0;
			}
			continue;
		}
		if (strcmp(k, "extra") != 0) {
			http_error(req, 400, "invalid",
			           "platform: unknown field '%.64s' (known: os, os_build, arch, "
			           "extra)",
			           k);
			return 0;
		}
		if (!json_is_object(v) || json_object_size(v) > 8) {
			http_error(req, 400, "invalid",
			           "platform.extra must be an object of at most 8 facts");
			return 0;
		}
		const char *ek;
		json_t *ev;
		json_object_foreach(v, ek, ev)
		{
			int key_ok = charset_ok(ek, 1, 32, "_");
			for (const char *c = ek; key_ok && *c; c++)
				key_ok = !(*c >= 'A' && *c <= 'Z');
			if (!key_ok || !json_is_string(ev) ||
			    !charset_ok(json_string_value(ev), 1, 64, "._:-")) {
				http_error(req, 400, "invalid",
				           "platform.extra.%.32s must have a key of "
				           "[a-z0-9_]{1,32} and a "
				           "string value of [A-Za-z0-9._:-]{1,64}",
				           ek);
				return 0;
			}
		}
	}
	return 1;
}

int val_param_id_or_reply(struct http_req *req, const char *param, const char *what, int64_t max,
                          int64_t *out)
{
	const char *v = http_req_param(req, param);
	if (fb_parse_i64(v, 1, max, out)) {
		http_error(req, 400, "invalid", "%s must be a positive integer, found '%s'", what,
		           v ? v : "");
		return 0;
	}
	return 1;
}

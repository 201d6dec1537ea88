/* libfbsign: canonical JSON, strict parsing, domain-separated messages,
 * base64 and the strict field readers the document code uses. */
#include "sig_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define CANON_MAX_DEPTH 32

enum fb_rc fbsig_init(void)
{
	return sodium_init() < 0 ? FB_EINTERNAL : FB_OK;
}

static const char *const type_names[] = {"root", "manifest", "assignment"};

const char *fbsig_type_name(enum fbsig_type t)
{
	if ((unsigned)t < sizeof type_names / sizeof type_names[0])
		return type_names[t];
	return "?";
}

enum fb_rc fbsig_type_parse(const char *name, enum fbsig_type *out)
{
	for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++) {
		if (name && strcmp(name, type_names[i]) == 0) {
			*out = (enum fbsig_type)i;
			return FB_OK;
		}
	}
	return FB_EINVAL;
}

/* ---- canonical encoding ---------------------------------------------- */

static enum fb_rc canon_str(struct fb_buf *b, const char *s, size_t n)
{
	enum fb_rc rc = fb_buf_add(b, "\"", 1);
	size_t run = 0; /* start of the pending run of bytes copied verbatim */
	for (size_t i = 0; rc == FB_OK && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[7];
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			if (c < 0x20) {
				static const char hx[] = "0123456789abcdef";
				memcpy(u, "\\u00", 4);
				u[4] = hx[c >> 4];
				u[5] = hx[c & 15];
				u[6] = '\0';
				esc = u;
			}
		}
		if (!esc)
			continue;
		rc = fb_buf_add(b, s + run, i - run);
		if (rc == FB_OK)
			rc = fb_buf_addstr(b, esc);
		run = i + 1;
	}
	if (rc == FB_OK)
		rc = fb_buf_add(b, s + run, n - run);
	if (rc == FB_OK)
		rc = fb_buf_add(b, "\"", 1);
	return rc;
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static enum fb_rc canon_value(struct fb_buf *b, const json_t *v, const char *where, int depth,
                              struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	const char **keys = NULL;
	if (depth > CANON_MAX_DEPTH) {
		fb_err_set(err, "nesting deeper than %d at '%s'", CANON_MAX_DEPTH, where);
		return FB_EINVAL;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		size_t n = json_object_size(v), i = 0;
		keys = calloc(n ? n : 1, sizeof *keys);
		if (!keys)
			return FB_ENOMEM;
		const char *k;
		json_t *x;
		json_object_foreach((json_t *)v, k, x)
		{
			if (strlen(k) != json_object_iter_key_len(json_object_key_to_iter(k))) {
				fb_err_set(err, "object key with a NUL byte under '%s'", where);
				rc = FB_EINVAL;
				goto out;
			}
			keys[i++] = k;
		}
		qsort(keys, n, sizeof *keys, cmp_keys);
		rc = fb_buf_add(b, "{", 1);
		for (i = 0; rc == FB_OK && i < n; i++) {
			if (i)
				rc = fb_buf_add(b, ",", 1);
			if (rc == FB_OK)
				rc = canon_str(b, keys[i], strlen(keys[i]));
			if (rc == FB_OK)
				rc = fb_buf_add(b, ":", 1);
			if (rc == FB_OK)
				rc = canon_value(b, json_object_get(v, keys[i]), keys[i], depth + 1,
				                 err);
		}
		if (rc == FB_OK)
			rc = fb_buf_add(b, "}", 1);
		break;
	}
	case JSON_ARRAY:
		rc = fb_buf_add(b, "[", 1);
		for (size_t i = 0; rc == FB_OK && i < json_array_size(v); i++) {
			if (i)
				rc = fb_buf_add(b, ",", 1);
			if (rc == FB_OK)
				rc = canon_value(b, json_array_get(v, i), where, depth + 1, err);
		}
		if (rc == FB_OK)
			rc = fb_buf_add(b, "]", 1);
		break;
	case JSON_STRING: {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		if (strlen(s) != n) {
			fb_err_set(err, "string with a NUL byte at '%s'", where);
			rc = FB_EINVAL;
			break;
		}
		rc = canon_str(b, s, n);
		break;
	}
	case JSON_INTEGER:
		rc = fb_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		fb_err_set(err,
		           "real number at '%s': only integers are allowed in signed documents",
		           where);
		rc = FB_EINVAL;
		break;
	case JSON_TRUE: rc = fb_buf_addstr(b, "true"); break;
	case JSON_FALSE: rc = fb_buf_addstr(b, "false"); break;
	case JSON_NULL: rc = fb_buf_addstr(b, "null"); break;
	}
out:
	free(keys);
	return rc;
}

enum fb_rc fbsig_canonical(const json_t *v, char **out, size_t *len, struct fb_err *err)
{
	*out = NULL;
	*len = 0;
	struct fb_buf b;
	fb_buf_init(&b, FBSIG_MAX_DOC);
	enum fb_rc rc = canon_value(&b, v, "(top)", 0, err);
	if (rc == FB_ETOOBIG)
		fb_err_set(err, "canonical document larger than %d bytes", FBSIG_MAX_DOC);
	else if (rc == FB_ENOMEM)
		fb_err_set(err, "out of memory");
	if (rc == FB_OK)
		*out = fb_buf_steal(&b, len);
	fb_buf_cleanup(&b);
	return rc;
}

/* Reals anywhere in v are refused (integers only in signed documents). */
static enum fb_rc no_reals(const json_t *v, const char *where, int depth, struct fb_err *err)
{
	if (depth > CANON_MAX_DEPTH) {
		fb_err_set(err, "nesting deeper than %d at '%s'", CANON_MAX_DEPTH, where);
		return FB_EINVAL;
	}
	if (json_is_real(v)) {
		fb_err_set(err,
		           "real number at '%s': only integers are allowed in signed documents",
		           where);
		return FB_EINVAL;
	}
	if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach((json_t *)v, k, x)
		{
			enum fb_rc rc = no_reals(x, k, depth + 1, err);
			if (rc)
				return rc;
		}
	} else if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++) {
			enum fb_rc rc = no_reals(json_array_get(v, i), where, depth + 1, err);
			if (rc)
				return rc;
		}
	}
	return FB_OK;
}

enum fb_rc fbsig_parse(const void *bytes, size_t len, json_t **out, struct fb_err *err)
{
	*out = NULL;
	if (len > FBSIG_MAX_DOC) {
		fb_err_set(err, "document of %zu bytes is over the %d-byte limit", len,
		           FBSIG_MAX_DOC);
		return FB_ETOOBIG;
	}
	json_error_t je;
	json_t *v = json_loadb(bytes, len, JSON_REJECT_DUPLICATES, &je);
	if (!v) {
		fb_err_set(err, "JSON error at line %d column %d (byte %d): %s", je.line, je.column,
		           je.position, je.text);
		return FB_EINVAL;
	}
	if (!json_is_object(v)) {
		fb_err_set(err, "document is not a JSON object");
		json_decref(v);
		return FB_EINVAL;
	}
	enum fb_rc rc = no_reals(v, "(top)", 0, err);
	if (rc) {
		json_decref(v);
		return rc;
	}
	*out = v;
	return FB_OK;
}

enum fb_rc fbsig_message(enum fbsig_type type, const json_t *signed_obj, char **out, size_t *len,
                         struct fb_err *err)
{
	*out = NULL;
	*len = 0;
	char *canon = NULL;
	size_t clen = 0;
	struct fb_buf b;
	fb_buf_init(&b, FBSIG_MAX_DOC + 64);
	enum fb_rc rc = fbsig_canonical(signed_obj, &canon, &clen, err);
	if (rc)
		goto out;
	rc = fb_buf_printf(&b, "firebreak/v1/%s\n", fbsig_type_name(type));
	if (rc == FB_OK)
		rc = fb_buf_add(&b, canon, clen);
	if (rc) {
		fb_err_set(err, "cannot build the signed message: %s", fb_rc_str(rc));
		goto out;
	}
	*out = fb_buf_steal(&b, len);
out:
	free(canon);
	fb_buf_cleanup(&b);
	return rc;
}

/* ---- base64 ------------------------------------------------------------ */

char *sigi_b64_encode(const unsigned char *in, size_t n)
{
	size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(cap);
	if (!s)
		return NULL;
	sodium_bin2base64(s, cap, in, n, sodium_base64_VARIANT_ORIGINAL);
	return s;
}

enum fb_rc sigi_b64_decode(const char *b64, unsigned char *out, size_t want, size_t *got)
{
	*got = 0;
	size_t n = strlen(b64);
	/* Decode into a scratch buffer large enough for any input up to a cap,
	 * so that an oversized value is reported with its real length. */
	unsigned char tmp[256];
	if (n > 4 * (sizeof tmp / 3)) {
		*got = n / 4 * 3;
		return FB_EINVAL;
	}
	size_t bin = 0;
	const char *end = NULL;
	if (sodium_base642bin(tmp, sizeof tmp, b64, n, NULL, &bin, &end,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != b64 + n) {
		sodium_memzero(tmp, sizeof tmp);
		return FB_EINVAL;
	}
	*got = bin;
	if (bin != want) {
		sodium_memzero(tmp, sizeof tmp);
		return FB_EINVAL;
	}
	memcpy(out, tmp, want);
	sodium_memzero(tmp, sizeof tmp);
	return FB_OK;
}

/* ---- strict field readers ---------------------------------------------- */

enum fb_rc sigi_only_keys(const json_t *obj, const char *ctx, const char *const *allowed,
                          struct fb_err *err)
{
	const char *k;
	json_t *x;
	json_object_foreach((json_t *)obj, k, x)
	{
		size_t i = 0;
		while (allowed[i] && strcmp(allowed[i], k) != 0)
			i++;
		if (!allowed[i]) {
			fb_err_set(err, "%s: unknown field '%s'", ctx, k);
			return FB_EINVAL;
		}
	}
	for (size_t i = 0; allowed[i]; i++) {
		if (!json_object_get(obj, allowed[i])) {
			fb_err_set(err, "%s: missing field '%s'", ctx, allowed[i]);
			return FB_EINVAL;
		}
	}
	return FB_OK;
}

enum fb_rc sigi_get_int(const json_t *obj, const char *ctx, const char *name, int64_t min,
                        int64_t max, int64_t *out, struct fb_err *err)
{
	json_t *v = json_object_get(obj, name);
	if (!v) {
		fb_err_set(err, "%s: missing field '%s'", ctx, name);
		return FB_EINVAL;
	}
	if (!json_is_integer(v)) {
		fb_err_set(err, "%s: field '%s' must be an integer", ctx, name);
		return FB_EINVAL;
	}
	json_int_t i = json_integer_value(v);
	if (i < min || i > max) {
		fb_err_set(err, "%s: field '%s' is %lld, expected %lld..%lld", ctx, name,
		           (long long)i, (long long)min, (long long)max);
		return FB_EINVAL;
	}
	*out = (int64_t)i;
	return FB_OK;
}

enum fb_rc sigi_get_str(const json_t *obj, const char *ctx, const char *name, size_t maxlen,
                        const char **out, struct fb_err *err)
{
	json_t *v = json_object_get(obj, name);
	if (!v) {
		fb_err_set(err, "%s: missing field '%s'", ctx, name);
		return FB_EINVAL;
	}
	if (!json_is_string(v)) {
		fb_err_set(err, "%s: field '%s' must be a string", ctx, name);
		return FB_EINVAL;
	}
	if (json_string_length(v) > maxlen) {
		fb_err_set(err, "%s: field '%s' is %zu bytes long, at most %zu allowed", ctx, name,
		           json_string_length(v), maxlen);
		return FB_EINVAL;
	}
	*out = json_string_value(v);
	return FB_OK;
}

enum fb_rc sigi_get_obj(const json_t *obj, const char *ctx, const char *name, json_t **out,
                        struct fb_err *err)
{
	json_t *v = json_object_get(obj, name);
	if (!v) {
		fb_err_set(err, "%s: missing field '%s'", ctx, name);
		return FB_EINVAL;
	}
	if (!json_is_object(v)) {
		fb_err_set(err, "%s: field '%s' must be an object", ctx, name);
		return FB_EINVAL;
	}
	*out = v;
	return FB_OK;
}

enum fb_rc sigi_check_type(const json_t *signed_obj, enum fbsig_type want, struct fb_err *err)
{
	if (!json_is_object(signed_obj)) {
		fb_err_set(err, "'signed' must be an object");
		return FB_EINVAL;
	}
	json_t *t = json_object_get(signed_obj, "_type");
	if (!json_is_string(t)) {
		fb_err_set(err, "signed document has no string '_type' (expected \"%s\")",
		           fbsig_type_name(want));
		return FB_EINVAL;
	}
	if (strcmp(json_string_value(t), fbsig_type_name(want)) != 0) {
		fb_err_set(err, "document type is \"%.40s\", expected \"%s\"", json_string_value(t),
		           fbsig_type_name(want));
		return FB_EINVAL;
	}
	return FB_OK;
}

int sigi_is_keyid(const char *s)
{
	if (strlen(s) != FBSIG_KEYID_HEX)
		return 0;
	for (size_t i = 0; i < FBSIG_KEYID_HEX; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return 1;
}

/* The JSON text form of channel files (FORMAT.md "Text form"): a structural,
 * lossless encoder to the binary form and decoder back. Validation against
 * the template registry is cf_parse()'s job, not this file's. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf_internal.h"

void cf_cidr_format(const struct cf_value *v, char *out, size_t outlen)
{
	char a[INET6_ADDRSTRLEN] = "?";
	inet_ntop(v->family == 4 ? AF_INET : AF_INET6, v->ip, a, sizeof a);
	snprintf(out, outlen, "%s/%u", a, v->prefix);
}

enum fb_rc cf_cidr_parse(const char *s, uint8_t *family, unsigned char ip[16], uint8_t *prefix)
{
	char a[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n == 0 || n >= sizeof a)
		return FB_EINVAL;
	memcpy(a, s, n);
	a[n] = '\0';
	memset(ip, 0, 16);
	if (inet_pton(AF_INET, a, ip) == 1)
		*family = 4;
	else if (inet_pton(AF_INET6, a, ip) == 1)
		*family = 6;
	else
		return FB_EINVAL;
	unsigned maxp = *family == 4 ? 32 : 128;
	int64_t p = maxp;
	if (slash && fb_parse_i64(slash + 1, 0, maxp, &p) != FB_OK)
		return FB_EINVAL;
	*prefix = (uint8_t)p;
	return FB_OK;
}

/* ---- compile ------------------------------------------------------------------ */

static enum fb_rc put(struct fb_buf *b, const void *p, size_t n, struct fb_err *err)
{
	enum fb_rc rc = fb_buf_add(b, p, n);
	if (rc == FB_ETOOBIG)
		fb_err_set(err, "compiled file would exceed the cap of %u bytes", CF_MAX_FILE);
	return rc;
}

static enum fb_rc put_u8(struct fb_buf *b, unsigned v, struct fb_err *err)
{
	unsigned char c = (unsigned char)v;
	return put(b, &c, 1, err);
}

static enum fb_rc put_u32(struct fb_buf *b, uint32_t v, struct fb_err *err)
{
	unsigned char c[4];
	cf_put32(c, v);
	return put(b, c, 4, err);
}

static int only_keys(const json_t *o, const char *const *allowed, const char **bad)
{
	const char *key;
	json_t *val;
	json_object_foreach((json_t *)o, key, val)
	{
		int ok = 0;
		for (const char *const *a = allowed; *a; a++)
			ok |= strcmp(key, *a) == 0;
		if (!ok) {
			*bad = key;
			return 0;
		}
	}
	return 1;
}

static enum fb_rc int_member(const json_t *o, const char *key, int64_t min, int64_t max,
                             int64_t *out, struct fb_err *err)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		fb_err_set(err, "\"%s\": expected an integer in [%lld, %lld]", key, (long long)min,
		           (long long)max);
		return FB_EINVAL;
	}
	*out = json_integer_value(v);
	return FB_OK;
}

/* Check a field's optional "name" annotation against the template field fd
 * (NULL: no template known, or the instance has more fields than it). */
static enum fb_rc check_name(const json_t *fv, const struct cf_template *tpl, size_t k,
                             struct fb_err *err)
{
	json_t *name = json_object_get(fv, "name");
	if (!name)
		return FB_OK;
	if (!json_is_string(name)) {
		fb_err_set(err, "\"name\": expected a string");
		return FB_EINVAL;
	}
	if (!tpl)
		return FB_OK;
	if (k >= tpl->nfields) {
		fb_err_set(err,
		           "named \"%.64s\", but template %u \"%s\" v%u declares only %u fields",
		           json_string_value(name), tpl->id, tpl->name, tpl->version, tpl->nfields);
		return FB_EINVAL;
	}
	if (strcmp(json_string_value(name), tpl->fields[k].name) != 0) {
		fb_err_set(err,
		           "named \"%.64s\", but field %zu of template %u \"%s\" v%u is \"%s\"",
		           json_string_value(name), k, tpl->id, tpl->name, tpl->version,
		           tpl->fields[k].name);
		return FB_EINVAL;
	}
	return FB_OK;
}

/* Encode field k (JSON null or a one-type object) of an instance of tpl
 * (NULL when unknown or no registry). */
static enum fb_rc compile_field(const json_t *fv, const struct cf_template *tpl, size_t k,
                                struct fb_buf *b, struct fb_err *err)
{
	static const char *const keys[] = {"int",   "string", "bytes", "regex",  "cidr", "sha256",
	                                   "flags", "hex",    "name",  "absent", NULL};
	enum fb_rc rc;
	const char *bad = NULL;
	if (json_is_null(fv))
		return put(b, "\0\0", 2, err);
	if (!json_is_object(fv) || !only_keys(fv, keys, &bad)) {
		fb_err_set(err, bad ? "unknown key \"%s\"" : "expected null or an object%s",
		           bad ? bad : "");
		return FB_EINVAL;
	}
	if ((rc = check_name(fv, tpl, k, err)))
		return rc;
	json_t *absent = json_object_get(fv, "absent");
	if (absent) {
		if (!json_is_true(absent) ||
		    json_object_size(fv) != 1 + !!json_object_get(fv, "name")) {
			fb_err_set(err,
			           "\"absent\": must be true and the only key besides \"name\"");
			return FB_EINVAL;
		}
		return put(b, "\0\0", 2, err);
	}
	int tag = -1;
	const char *tname = NULL;
	json_t *val = NULL;
	for (int t = CF_T_INT; t <= CF_T_SHA256; t++) {
		json_t *v = json_object_get(fv, cf_type_name((enum cf_type)t));
		if (!v)
			continue;
		if (tag >= 0) {
			fb_err_set(err, "both \"%s\" and \"%s\": one type per field", tname,
			           cf_type_name((enum cf_type)t));
			return FB_EINVAL;
		}
		tag = t;
		tname = cf_type_name((enum cf_type)t);
		val = v;
	}
	if (tag < 0) {
		fb_err_set(err,
		           "no value: expected one of int, string, bytes, regex, cidr, sha256");
		return FB_EINVAL;
	}
	int64_t flags = 0;
	if (json_object_get(fv, "flags") && (rc = int_member(fv, "flags", 0, 255, &flags, err)))
		return rc;
	json_t *hex = json_object_get(fv, "hex");
	if (hex && (!json_is_boolean(hex) || (tag != CF_T_STRING && tag != CF_T_REGEX))) {
		fb_err_set(err, "\"hex\": true/false, for string and regex values only");
		return FB_EINVAL;
	}
	if ((rc = put_u8(b, (unsigned)tag, err)) || (rc = put_u8(b, (unsigned)flags, err)))
		return rc;
	switch (tag) {
	case CF_T_INT: {
		if (!json_is_integer(val)) {
			fb_err_set(err, "\"int\": expected an integer");
			return FB_EINVAL;
		}
		unsigned char c[8];
		cf_put64(c, (uint64_t)json_integer_value(val));
		return put(b, c, 8, err);
	}
	case CF_T_STRING:
	case CF_T_REGEX:
	case CF_T_BYTES: {
		if (!json_is_string(val)) {
			fb_err_set(err, "\"%s\": expected a string", tname);
			return FB_EINVAL;
		}
		const char *s = json_string_value(val);
		size_t n = json_string_length(val);
		if (tag == CF_T_BYTES || json_is_true(hex)) {
			if (n % 2 || n / 2 > CF_MAX_FILE) {
				fb_err_set(err, "\"%s\": expected an even number of hex digits",
				           tname);
				return FB_EINVAL;
			}
			if ((rc = put_u32(b, (uint32_t)(n / 2), err)))
				return rc;
			size_t at = b->len;
			if ((rc = put(b, s, n / 2, err))) /* reserve, then decode in place */
				return rc;
			if (fb_hex_decode(s, (unsigned char *)b->data + at, n / 2) != FB_OK) {
				fb_err_set(err, "\"%s\": bad hex digits", tname);
				return FB_EINVAL;
			}
			return FB_OK;
		}
		if (n > CF_MAX_FILE) {
			fb_err_set(err, "\"%s\": value too long", tname);
			return FB_ETOOBIG;
		}
		if ((rc = put_u32(b, (uint32_t)n, err)))
			return rc;
		return put(b, s, n, err);
	}
	case CF_T_CIDR: {
		uint8_t fam, prefix;
		unsigned char ip[16];
		if (!json_is_string(val) ||
		    cf_cidr_parse(json_string_value(val), &fam, ip, &prefix) != FB_OK) {
			fb_err_set(err, "\"cidr\": expected \"address/prefix\" (IPv4 or IPv6)");
			return FB_EINVAL;
		}
		if ((rc = put_u8(b, fam, err)) || (rc = put_u8(b, prefix, err)))
			return rc;
		return put(b, ip, fam == 4 ? 4 : 16, err);
	}
	case CF_T_SHA256: {
		unsigned char d[32];
		if (!json_is_string(val) || json_string_length(val) != 64 ||
		    fb_hex_decode(json_string_value(val), d, 32) != FB_OK) {
			fb_err_set(err, "\"sha256\": expected 64 hex digits");
			return FB_EINVAL;
		}
		return put(b, d, 32, err);
	}
	}
	return FB_EINTERNAL;
}

static enum fb_rc compile_instance(const json_t *in, const struct cf_registry *reg,
                                   struct fb_buf *b, struct fb_err *err)
{
	static const char *const keys[] = {"id",     "template",      "template_version",
	                                   "fields", "template_name", NULL};
	enum fb_rc rc;
	const char *bad = NULL;
	int64_t id, tid, tver;
	if (!json_is_object(in) || !only_keys(in, keys, &bad)) {
		fb_err_set(err, bad ? "unknown key \"%s\"" : "expected an object%s",
		           bad ? bad : "");
		return FB_EINVAL;
	}
	if ((rc = int_member(in, "id", 0, UINT32_MAX, &id, err)) ||
	    (rc = int_member(in, "template", 0, UINT32_MAX, &tid, err)) ||
	    (rc = int_member(in, "template_version", 0, UINT16_MAX, &tver, err)))
		return rc;
	const struct cf_template *tpl = cf_registry_find(reg, (uint32_t)tid, (uint16_t)tver);
	json_t *tname = json_object_get(in, "template_name");
	if (tname && !json_is_string(tname)) {
		fb_err_set(err, "\"template_name\": expected a string");
		return FB_EINVAL;
	}
	if (tname && tpl && strcmp(json_string_value(tname), tpl->name) != 0) {
		fb_err_set(err, "\"template_name\" is \"%.64s\", but template %u v%u is \"%s\"",
		           json_string_value(tname), tpl->id, tpl->version, tpl->name);
		return FB_EINVAL;
	}
	json_t *fields = json_object_get(in, "fields");
	if (!json_is_array(fields) || json_array_size(fields) > UINT16_MAX) {
		fb_err_set(err, "\"fields\": expected an array of at most %u values", UINT16_MAX);
		return FB_EINVAL;
	}
	size_t start = b->len;
	unsigned char h[CF_INST_HDR_LEN];
	cf_put32(h, (uint32_t)id);
	cf_put32(h + 4, (uint32_t)tid);
	cf_put16(h + 8, (uint16_t)tver);
	cf_put16(h + 10, (uint16_t)json_array_size(fields));
	cf_put32(h + 12, 0); /* patched below */
	if ((rc = put(b, h, sizeof h, err)))
		return rc;
	for (size_t k = 0; k < json_array_size(fields); k++) {
		if ((rc = compile_field(json_array_get(fields, k), tpl, k, b, err))) {
			fb_err_prefix(err, "field %zu", k);
			return rc;
		}
	}
	cf_put32((unsigned char *)b->data + start + 12, (uint32_t)(b->len - start));
	return FB_OK;
}

enum fb_rc cf_compile_json(const struct cf_registry *reg, const char *text, size_t len,
                           unsigned char **out, size_t *out_len, struct fb_err *err)
{
	static const char *const keys[] = {"format", "channel", "content_version", "instances",
	                                   NULL};
	enum fb_rc rc;
	json_error_t jerr;
	json_t *root = NULL;
	struct fb_buf b;
	const char *bad = NULL;
	int64_t fmt = 0, channel = 0, cver = 0;
	*out = NULL;
	*out_len = 0;
	fb_buf_init(&b, CF_MAX_FILE);

	if (len > CF_MAX_JSON) {
		fb_err_set(err, "text form is %zu bytes, over the cap of %u", len, CF_MAX_JSON);
		rc = FB_ETOOBIG;
		goto out;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!root) {
		fb_err_set(err, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		rc = FB_EINVAL;
		goto out;
	}
	if (!json_is_object(root) || !only_keys(root, keys, &bad)) {
		fb_err_set(err, bad ? "unknown key \"%s\"" : "expected an object%s",
		           bad ? bad : "");
		rc = FB_EINVAL;
		goto out;
	}
	if ((rc = int_member(root, "format", CF_FORMAT_VERSION, CF_FORMAT_VERSION, &fmt, err)) ||
	    (rc = int_member(root, "channel", 0, UINT32_MAX, &channel, err)) ||
	    (rc = int_member(root, "content_version", INT64_MIN, INT64_MAX, &cver, err)))
		goto out;
	json_t *insts = json_object_get(root, "instances");
	if (!json_is_array(insts) || json_array_size(insts) > UINT32_MAX) {
		fb_err_set(err, "\"instances\": expected an array");
		rc = FB_EINVAL;
		goto out;
	}
	unsigned char h[CF_HEADER_LEN] = {0};
	memcpy(h, CF_MAGIC, 4);
	cf_put16(h + 4, CF_FORMAT_VERSION);
	cf_put32(h + 20, (uint32_t)channel);
	cf_put64(h + 24, (uint64_t)cver);
	cf_put32(h + 32, (uint32_t)json_array_size(insts));
	if ((rc = put(&b, h, sizeof h, err)))
		goto out;
	for (size_t k = 0; k < json_array_size(insts); k++) {
		if ((rc = compile_instance(json_array_get(insts, k), reg, &b, err))) {
			fb_err_prefix(err, "instance %zu", k);
			goto out;
		}
	}
	cf_put32((unsigned char *)b.data + 16, (uint32_t)b.len);
	cf_checksum((unsigned char *)b.data, b.len, (unsigned char *)b.data + CF_CHECKSUM_OFF);
	*out = (unsigned char *)fb_buf_steal(&b, out_len);
	rc = FB_OK;
out:
	json_decref(root);
	fb_buf_cleanup(&b);
	return rc;
}

/* ---- decompile ----------------------------------------------------------------- */

static int utf8_ok(const unsigned char *p, size_t n)
{
	size_t k = 0;
	while (k < n) {
		unsigned c = p[k];
		size_t more;
		uint32_t cp;
		if (c == 0)
			return 0;
		if (c < 0x80) {
			k++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			more = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			more = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			more = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - k - 1 < more)
			return 0;
		for (size_t j = 1; j <= more; j++) {
			if ((p[k + j] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[k + j] & 0x3f);
		}
		if ((more == 1 && cp < 0x80) || (more == 2 && cp < 0x800) ||
		    (more == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		k += more + 1;
	}
	return 1;
}

static json_t *hex_string(const unsigned char *p, size_t n)
{
	char *h = malloc(2 * n + 1);
	if (!h)
		return NULL;
	fb_hex_encode(p, n, h);
	json_t *s = json_string(h);
	free(h);
	return s;
}

#define NEED(cond, ...)                                                                            \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fb_err_set(err, __VA_ARGS__);                                              \
			rc = FB_EFORMAT;                                                           \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

/* Decode the field at *off (< end) into a new JSON value in *jv; fname, when
 * not NULL, is written as its "name" annotation. */
static enum fb_rc decompile_field(const unsigned char *b, size_t *off, size_t end,
                                  const char *fname, json_t **jv, struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	json_t *o = NULL;
	size_t p = *off;
	*jv = NULL;
	NEED(end - p >= 2, "byte %zu: truncated field header", p);
	unsigned tag = b[p], flags = b[p + 1];
	p += 2;
	if (tag == CF_T_ABSENT && flags == 0) {
		*jv = fname ? json_pack("{s:s,s:b}", "name", fname, "absent", 1) : json_null();
		*off = p;
		return *jv ? FB_OK : FB_ENOMEM;
	}
	NEED(tag >= CF_T_INT && tag <= CF_T_SHA256, "byte %zu: unknown type tag %u", *off, tag);
	o = fname ? json_pack("{s:s}", "name", fname) : json_object();
	if (!o)
		return FB_ENOMEM;
	if (flags && json_object_set_new(o, "flags", json_integer(flags))) {
		rc = FB_ENOMEM;
		goto out;
	}
	json_t *val = NULL;
	const char *name = cf_type_name((enum cf_type)tag);
	switch (tag) {
	case CF_T_INT:
		NEED(end - p >= 8, "byte %zu: truncated int", p);
		val = json_integer((json_int_t)cf_get64(b + p));
		p += 8;
		break;
	case CF_T_STRING:
	case CF_T_REGEX:
	case CF_T_BYTES: {
		NEED(end - p >= 4, "byte %zu: truncated length", p);
		uint32_t n = cf_get32(b + p);
		p += 4;
		NEED(n <= end - p, "byte %zu: value of %u bytes overruns the instance", p - 4, n);
		if (tag != CF_T_BYTES && utf8_ok(b + p, n)) {
			val = json_stringn((const char *)b + p, n);
		} else {
			val = hex_string(b + p, n);
			if (tag != CF_T_BYTES && json_object_set_new(o, "hex", json_true())) {
				json_decref(val);
				rc = FB_ENOMEM;
				goto out;
			}
		}
		p += n;
		break;
	}
	case CF_T_CIDR: {
		NEED(end - p >= 2, "byte %zu: truncated cidr", p);
		struct cf_value v = {.family = b[p], .prefix = b[p + 1]};
		unsigned bytes = v.family == 4 ? 4 : v.family == 6 ? 16 : 0;
		NEED(bytes, "byte %zu: cidr family %u (expected 4 or 6)", p, v.family);
		NEED(v.prefix <= bytes * 8, "byte %zu: cidr prefix %u over %u", p + 1, v.prefix,
		     bytes * 8);
		NEED(end - p - 2 >= bytes, "byte %zu: truncated cidr address", p);
		memcpy(v.ip, b + p + 2, bytes);
		char s[80];
		cf_cidr_format(&v, s, sizeof s);
		val = json_string(s);
		p += 2 + bytes;
		break;
	}
	case CF_T_SHA256:
		NEED(end - p >= 32, "byte %zu: truncated sha256", p);
		val = hex_string(b + p, 32);
		p += 32;
		break;
	}
	if (!val || json_object_set_new(o, name, val)) {
		rc = FB_ENOMEM;
		goto out;
	}
	*jv = o;
	o = NULL;
	*off = p;
out:
	json_decref(o);
	return rc;
}

enum fb_rc cf_decompile_json(const struct cf_registry *reg, const void *buf, size_t len, char **out,
                             struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	const unsigned char *b = buf;
	json_t *root = NULL, *insts = NULL, *fields = NULL, *inst = NULL, *fv = NULL;
	*out = NULL;

	NEED(len <= CF_MAX_FILE, "file is %zu bytes, over the cap of %u bytes", len, CF_MAX_FILE);
	NEED(len >= CF_HEADER_LEN, "file is %zu bytes, shorter than the %u-byte header", len,
	     CF_HEADER_LEN);
	NEED(memcmp(b, CF_MAGIC, 4) == 0, "byte 0: bad magic (expected \"FBCF\")");
	NEED(cf_get16(b + 4) == CF_FORMAT_VERSION && cf_get16(b + 6) == 0 && cf_get32(b + 36) == 0,
	     "byte 4: format version %u flags %u reserved %u (expected %u, 0, 0)", cf_get16(b + 4),
	     cf_get16(b + 6), cf_get32(b + 36), CF_FORMAT_VERSION);
	NEED(cf_get32(b + 16) == len, "byte 16: total length says %u bytes, file has %zu",
	     cf_get32(b + 16), len);
	unsigned char sum[CF_CHECKSUM_LEN];
	cf_checksum(b, len, sum);
	NEED(memcmp(sum, b + CF_CHECKSUM_OFF, CF_CHECKSUM_LEN) == 0, "byte 8: checksum mismatch");
	uint32_t count = cf_get32(b + 32);
	root = json_pack("{s:i,s:I,s:I}", "format", CF_FORMAT_VERSION, "channel",
	                 (json_int_t)cf_get32(b + 20), "content_version",
	                 (json_int_t)cf_get64(b + 24));
	insts = json_array();
	if (!root || !insts) {
		rc = FB_ENOMEM;
		goto out;
	}
	size_t off = CF_HEADER_LEN;
	for (uint32_t k = 0; k < count; k++) {
		NEED(len - off >= CF_INST_HDR_LEN,
		     "byte %zu: instance count says %u, file ends after %u", off, count, k);
		uint32_t ilen = cf_get32(b + off + 12);
		NEED(ilen >= CF_INST_HDR_LEN && ilen <= len - off,
		     "instance %u at byte %zu: length %u out of range", k, off, ilen);
		uint16_t nf = cf_get16(b + off + 10);
		inst = json_pack("{s:I,s:I,s:i}", "id", (json_int_t)cf_get32(b + off), "template",
		                 (json_int_t)cf_get32(b + off + 4), "template_version",
		                 (int)cf_get16(b + off + 8));
		fields = json_array();
		if (!inst || !fields) {
			rc = FB_ENOMEM;
			goto out;
		}
		const struct cf_template *tpl =
		        cf_registry_find(reg, cf_get32(b + off + 4), cf_get16(b + off + 8));
		if (tpl && json_object_set_new(inst, "template_name", json_string(tpl->name))) {
			rc = FB_ENOMEM;
			goto out;
		}
		size_t p = off + CF_INST_HDR_LEN, end = off + ilen;
		for (uint16_t j = 0; j < nf; j++) {
			const char *fname = tpl && j < tpl->nfields ? tpl->fields[j].name : NULL;
			if ((rc = decompile_field(b, &p, end, fname, &fv, err))) {
				fb_err_prefix(err, "instance %u field %u", k, j);
				goto out;
			}
			if (json_array_append_new(fields, fv)) {
				fv = NULL;
				rc = FB_ENOMEM;
				goto out;
			}
			fv = NULL;
		}
		NEED(p == end, "instance %u at byte %zu: %zu bytes left after its %u fields", k,
		     off, end - p, nf);
		if (json_object_set_new(inst, "fields", fields)) {
			fields = NULL;
			rc = FB_ENOMEM;
			goto out;
		}
		fields = NULL;
		if (json_array_append_new(insts, inst)) {
			inst = NULL;
			rc = FB_ENOMEM;
			goto out;
		}
		inst = NULL;
		off = end;
	}
	NEED(off == len, "byte %zu: %zu trailing bytes", off, len - off);
	if (json_object_set_new(root, "instances", insts)) {
		insts = NULL;
		rc = FB_ENOMEM;
		goto out;
	}
	insts = NULL;
	*out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!*out)
		rc = FB_ENOMEM;
out:
	json_decref(root);
	json_decref(insts);
	json_decref(inst);
	json_decref(fields);
	json_decref(fv);
	return rc;
}

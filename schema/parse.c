/* The one channel-file parser/validator (FORMAT.md "Validation"): bounds-
 * checked decoding of the binary form against the template registry, with
 * error messages naming instance, field, byte offset, expected and found. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf_internal.h"

void cf_checksum(const unsigned char *buf, size_t len, unsigned char out[CF_CHECKSUM_LEN])
{
	unsigned char d[FB_SHA256_LEN];
	fb_sha256(buf + CF_CHECKED_FROM, len - CF_CHECKED_FROM, d);
	memcpy(out, d, CF_CHECKSUM_LEN);
}

/* Where the parser is, for error messages. */
struct ctx {
	struct fb_err *err;
	size_t idx;  /* instance index */
	uint32_t id; /* instance id */
	size_t ioff; /* instance offset */
	const struct cf_template *tpl;
	size_t fidx;    /* field index, or SIZE_MAX */
	size_t *states; /* regex instructions so far in the file */
};

static void where(const struct ctx *c, size_t off)
{
	if (c->fidx != SIZE_MAX && c->tpl)
		fb_err_prefix(c->err, "instance %zu (id %u) field %zu \"%s\" at byte %zu", c->idx,
		              c->id, c->fidx, c->tpl->fields[c->fidx].name, off);
	else
		fb_err_prefix(c->err, "instance %zu (id %u) at byte %zu", c->idx, c->id, off);
}

static int host_bits_clear(const unsigned char *ip, unsigned bytes, unsigned prefix)
{
	for (unsigned b = prefix; b < bytes * 8; b++)
		if (ip[b / 8] & (0x80u >> (b % 8)))
			return 0;
	return 1;
}

/* Decode and check one field starting at *off (< end). */
static enum fb_rc parse_value(struct ctx *c, const unsigned char *buf, size_t *off, size_t end,
                              const struct cf_field_def *fd, struct cf_value *v)
{
	size_t o = *off;
	if (end - o < 2) {
		fb_err_set(c->err,
		           "truncated: field header needs 2 bytes, %zu left in the instance",
		           end - o);
		goto bad;
	}
	unsigned tag = buf[o], flags = buf[o + 1];
	size_t pay = o + 2;
	if (tag == CF_T_ABSENT) {
		if (fd->required) {
			fb_err_set(c->err, "required field is absent (expected %s)",
			           cf_type_name(fd->type));
			goto bad;
		}
		if (flags) {
			fb_err_set(c->err, "flags: expected 0, found %u", flags);
			goto bad;
		}
		v->type = CF_T_ABSENT;
		*off = pay;
		return FB_OK;
	}
	if (tag != (unsigned)fd->type) {
		fb_err_set(c->err, "wrong type: expected %s (tag %u), found %s (tag %u)",
		           cf_type_name(fd->type), (unsigned)fd->type,
		           cf_type_name((enum cf_type)tag), tag);
		goto bad;
	}
	if (flags & ~(tag == CF_T_REGEX ? fd->allowed_flags : 0u)) {
		fb_err_set(c->err, "flags: 0x%02x not allowed for this field (allowed 0x%02x)",
		           flags, tag == CF_T_REGEX ? fd->allowed_flags : 0u);
		goto bad;
	}
	v->type = (enum cf_type)tag;
	v->flags = flags;
	switch (v->type) {
	case CF_T_INT:
		if (end - pay < 8) {
			fb_err_set(c->err, "truncated: int needs 8 bytes, %zu left", end - pay);
			goto bad;
		}
		v->i = (int64_t)cf_get64(buf + pay);
		if (v->i < fd->min || v->i > fd->max) {
			fb_err_set(c->err, "out of range: expected %lld..%lld, found %lld",
			           (long long)fd->min, (long long)fd->max, (long long)v->i);
			goto bad;
		}
		*off = pay + 8;
		return FB_OK;
	case CF_T_STRING:
	case CF_T_BYTES:
	case CF_T_REGEX: {
		if (end - pay < 4) {
			fb_err_set(c->err, "truncated: length needs 4 bytes, %zu left", end - pay);
			goto bad;
		}
		uint32_t n = cf_get32(buf + pay);
		if (n > fd->max_len) {
			fb_err_set(c->err, "too long: expected at most %u bytes, found %u",
			           fd->max_len, n);
			goto bad;
		}
		if (n > end - pay - 4) {
			fb_err_set(c->err, "truncated: value of %u bytes, %zu left in the instance",
			           n, end - pay - 4);
			goto bad;
		}
		v->p = buf + pay + 4;
		v->len = n;
		if (v->type != CF_T_BYTES && memchr(v->p, 0, n)) {
			fb_err_set(c->err, "NUL byte inside %s at value offset %zu",
			           cf_type_name(v->type),
			           (size_t)((const unsigned char *)memchr(v->p, 0, n) - v->p));
			goto bad;
		}
		if (v->type == CF_T_REGEX) {
			struct fb_err rerr = {{0}};
			enum fb_rc rrc =
			        rx_compile((const char *)v->p, n, (flags & RX_ICASE) ? RX_ICASE : 0,
			                   &v->rx, &rerr);
			if (rrc == FB_ETOOBIG) {
				fb_err_set(c->err, "regex over the complexity limits: %s",
				           rerr.msg);
				goto bad;
			}
			if (rrc) {
				fb_err_set(c->err, "regex does not compile: %s", rerr.msg);
				goto bad;
			}
			*c->states += rx_size(v->rx);
			if (*c->states > CF_MAX_FILE_STATES) {
				fb_err_set(
				        c->err,
				        "regex over the file's complexity limit: expected at most "
				        "%u states in all regexes of a file, found %zu so far",
				        CF_MAX_FILE_STATES, *c->states);
				goto bad;
			}
			if (rx_size(v->rx) > fd->max_states) {
				fb_err_set(c->err,
				           "regex over the complexity limit: expected at most %u "
				           "states, found %zu",
				           fd->max_states, rx_size(v->rx));
				goto bad;
			}
		}
		*off = pay + 4 + n;
		return FB_OK;
	}
	case CF_T_CIDR: {
		if (end - pay < 2) {
			fb_err_set(c->err, "truncated: cidr needs family and prefix bytes");
			goto bad;
		}
		unsigned fam = buf[pay], prefix = buf[pay + 1];
		unsigned bytes = fam == 4 ? 4 : fam == 6 ? 16 : 0;
		if (!bytes) {
			fb_err_set(c->err, "cidr family: expected 4 or 6, found %u", fam);
			goto bad;
		}
		if (fd->family && (int)fam != fd->family) {
			fb_err_set(c->err, "cidr family: expected %d, found %u", fd->family, fam);
			goto bad;
		}
		if (prefix > bytes * 8) {
			fb_err_set(c->err, "cidr prefix out of range: expected 0..%u, found %u",
			           bytes * 8, prefix);
			goto bad;
		}
		if (end - pay - 2 < bytes) {
			fb_err_set(c->err, "truncated: cidr address needs %u bytes, %zu left",
			           bytes, end - pay - 2);
			goto bad;
		}
		v->family = (uint8_t)fam;
		v->prefix = (uint8_t)prefix;
		memcpy(v->ip, buf + pay + 2, bytes);
		if (!host_bits_clear(v->ip, bytes, prefix)) {
			fb_err_set(c->err, "cidr has host bits set beyond /%u", prefix);
			goto bad;
		}
		*off = pay + 2 + bytes;
		return FB_OK;
	}
	case CF_T_SHA256:
		if (end - pay < 32) {
			fb_err_set(c->err, "truncated: sha256 needs 32 bytes, %zu left", end - pay);
			goto bad;
		}
		v->p = buf + pay;
		v->len = 32;
		*off = pay + 32;
		return FB_OK;
	default: break;
	}
	fb_err_set(c->err, "unknown type tag %u", tag);
bad:
	where(c, o);
	return FB_EFORMAT;
}

static int ref_cmp(const void *a, const void *b)
{
	const struct cf_tpl_ref *x = a, *y = b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return (x->version > y->version) - (x->version < y->version);
}

struct idpos {
	uint32_t id;
	size_t idx;
};

static int idpos_cmp(const void *a, const void *b)
{
	const struct idpos *x = a, *y = b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return (x->idx > y->idx) - (x->idx < y->idx);
}

static enum fb_rc parse_header(const unsigned char *b, size_t len, uint32_t *count,
                               struct fb_err *err)
{
	if (len > CF_MAX_FILE) {
		fb_err_set(err, "file is %zu bytes, over the cap of %u bytes", len, CF_MAX_FILE);
		return FB_ETOOBIG;
	}
	if (len < CF_HEADER_LEN) {
		fb_err_set(err, "file is %zu bytes, shorter than the %u-byte header", len,
		           CF_HEADER_LEN);
		return FB_EFORMAT;
	}
	if (memcmp(b, CF_MAGIC, 4) != 0) {
		char hex[9];
		fb_hex_encode(b, 4, hex);
		fb_err_set(err, "byte 0: bad magic: expected \"FBCF\" (46424346), found %s", hex);
		return FB_EFORMAT;
	}
	if (cf_get16(b + 4) != CF_FORMAT_VERSION) {
		fb_err_set(err, "byte 4: format version: expected %u, found %u", CF_FORMAT_VERSION,
		           cf_get16(b + 4));
		return FB_EFORMAT;
	}
	if (cf_get16(b + 6) != 0) {
		fb_err_set(err, "byte 6: header flags: expected 0, found %u", cf_get16(b + 6));
		return FB_EFORMAT;
	}
	if (cf_get32(b + 16) != len) {
		fb_err_set(err, "byte 16: total length: header says %u bytes, file has %zu",
		           cf_get32(b + 16), len);
		return FB_EFORMAT;
	}
	unsigned char sum[CF_CHECKSUM_LEN];
	cf_checksum(b, len, sum);
	if (memcmp(sum, b + CF_CHECKSUM_OFF, CF_CHECKSUM_LEN) != 0) {
		char want[2 * CF_CHECKSUM_LEN + 1], got[2 * CF_CHECKSUM_LEN + 1];
		fb_hex_encode(sum, CF_CHECKSUM_LEN, want);
		fb_hex_encode(b + CF_CHECKSUM_OFF, CF_CHECKSUM_LEN, got);
		fb_err_set(err, "byte 8: checksum: expected %s, found %s", want, got);
		return FB_EFORMAT;
	}
	int64_t ver = (int64_t)cf_get64(b + 24);
	if (ver <= 0) {
		fb_err_set(err, "byte 24: content version: expected > 0, found %lld",
		           (long long)ver);
		return FB_EFORMAT;
	}
	*count = cf_get32(b + 32);
	if (*count > CF_MAX_INSTANCES) {
		fb_err_set(err, "byte 32: instance count: expected at most %u, found %u",
		           CF_MAX_INSTANCES, *count);
		return FB_EFORMAT;
	}
	if (cf_get32(b + 36) != 0) {
		fb_err_set(err, "byte 36: reserved: expected 0, found %u", cf_get32(b + 36));
		return FB_EFORMAT;
	}
	return FB_OK;
}

enum fb_rc cf_parse(const struct cf_registry *reg, const void *buf, size_t len,
                    struct cf_file **out, struct fb_err *err)
{
	enum fb_rc rc;
	struct cf_file *f = NULL;
	struct idpos *ids = NULL;
	uint32_t count = 0;
	size_t states = 0;
	*out = NULL;

	if (!reg || (!buf && len)) {
		fb_err_set(err, "no registry or no buffer");
		return FB_EINVAL;
	}
	if ((rc = parse_header(buf, len, &count, err)))
		return rc;
	f = calloc(1, sizeof *f);
	if (!f)
		return FB_ENOMEM;
	f->buf = malloc(len);
	f->inst = calloc(count ? count : 1, sizeof *f->inst);
	f->refs = calloc(count ? count : 1, sizeof *f->refs);
	ids = calloc(count ? count : 1, sizeof *ids);
	if (!f->buf || !f->inst || !f->refs || !ids) {
		rc = FB_ENOMEM;
		goto out;
	}
	f->cap = count;
	memcpy(f->buf, buf, len);
	f->len = len;
	const unsigned char *b = f->buf;
	f->channel = cf_get32(b + 20);
	f->content_version = (int64_t)cf_get64(b + 24);

	size_t off = CF_HEADER_LEN;
	for (size_t k = 0; k < count; k++) {
		struct ctx c = {
		        .err = err, .idx = k, .ioff = off, .fidx = SIZE_MAX, .states = &states};
		struct cf_instance *in = &f->inst[k];
		rc = FB_EFORMAT;
		if (len - off < CF_INST_HDR_LEN) {
			fb_err_set(err,
			           "byte %zu: instance count: header says %u instances, the file "
			           "ends after %zu (%zu bytes left, an instance header needs %u)",
			           off, count, k, len - off, CF_INST_HDR_LEN);
			goto out;
		}
		c.id = in->id = cf_get32(b + off);
		uint32_t tid = cf_get32(b + off + 4);
		uint16_t tver = cf_get16(b + off + 8);
		uint16_t nf = cf_get16(b + off + 10);
		uint32_t ilen = cf_get32(b + off + 12);
		in->offset = off;
		if (in->id == 0) {
			fb_err_set(err, "instance id: expected 1..4294967295, found 0");
			where(&c, off);
			goto out;
		}
		if (ilen < CF_INST_HDR_LEN || ilen > len - off) {
			fb_err_set(err, "instance length: expected %u..%zu, found %u",
			           CF_INST_HDR_LEN, len - off, ilen);
			where(&c, off + 12);
			goto out;
		}
		in->tpl = cf_registry_find(reg, tid, tver);
		if (!in->tpl) {
			if (cf_registry_has_id(reg, tid))
				fb_err_set(err, "template id %u has no version %u in the registry",
				           tid, tver);
			else
				fb_err_set(err, "unknown template id %u (version %u)", tid, tver);
			where(&c, off + 4);
			goto out;
		}
		c.tpl = in->tpl;
		if (nf != in->tpl->nfields) {
			fb_err_set(err,
			           "field count: template %u \"%s\" v%u declares %u fields, "
			           "instance has %u (expected %u, found %u)",
			           tid, in->tpl->name, tver, in->tpl->nfields, nf, in->tpl->nfields,
			           nf);
			where(&c, off + 10);
			goto out;
		}
		in->v = calloc(nf, sizeof *in->v);
		if (!in->v) {
			rc = FB_ENOMEM;
			goto out;
		}
		size_t end = off + ilen, p = off + CF_INST_HDR_LEN;
		for (size_t j = 0; j < nf; j++) {
			c.fidx = j;
			if ((rc = parse_value(&c, b, &p, end, &in->tpl->fields[j], &in->v[j])))
				goto out;
		}
		c.fidx = SIZE_MAX;
		if (p != end) {
			fb_err_set(err,
			           "instance length: header says %u bytes, the %u fields end after "
			           "%zu (%zu unused bytes)",
			           ilen, nf, p - off, end - p);
			where(&c, off + 12);
			rc = FB_EFORMAT;
			goto out;
		}
		ids[k] = (struct idpos){in->id, k};
		f->refs[f->nrefs++] = (struct cf_tpl_ref){tid, tver};
		f->n = k + 1;
		off = end;
	}
	if (off != len) {
		fb_err_set(err, "byte %zu: %zu trailing bytes after the last of %u instances", off,
		           len - off, count);
		rc = FB_EFORMAT;
		goto out;
	}
	qsort(ids, count, sizeof *ids, idpos_cmp);
	for (size_t k = 1; k < count; k++) {
		if (ids[k].id == ids[k - 1].id) {
			const struct cf_instance *in = &f->inst[ids[k].idx];
			fb_err_set(err,
			           "instance %zu (id %u) at byte %zu: duplicate instance id, first "
			           "used by instance %zu",
			           ids[k].idx, in->id, in->offset, ids[k - 1].idx);
			rc = FB_EFORMAT;
			goto out;
		}
	}
	/* distinct template refs, sorted */
	qsort(f->refs, f->nrefs, sizeof *f->refs, ref_cmp);
	size_t w = 0;
	for (size_t k = 0; k < f->nrefs; k++)
		if (w == 0 || ref_cmp(&f->refs[w - 1], &f->refs[k]) != 0)
			f->refs[w++] = f->refs[k];
	f->nrefs = w;
	*out = f;
	f = NULL;
	rc = FB_OK;
out:
	free(ids);
	cf_file_free(f);
	return rc;
}

void cf_file_free(struct cf_file *f)
{
	if (!f)
		return;
	for (size_t k = 0; f->inst && k < f->cap; k++) {
		if (!f->inst[k].v)
			continue;
		for (size_t j = 0; f->inst[k].tpl && j < f->inst[k].tpl->nfields; j++)
			rx_free(f->inst[k].v[j].rx);
		free(f->inst[k].v);
	}
	free(f->inst);
	free(f->refs);
	free(f->buf);
	free(f);
}

uint32_t cf_file_channel(const struct cf_file *f)
{
	return f->channel;
}

int64_t cf_file_content_version(const struct cf_file *f)
{
	return f->content_version;
}

size_t cf_file_instance_count(const struct cf_file *f)
{
	return f->n;
}

const struct cf_tpl_ref *cf_file_templates(const struct cf_file *f, size_t *n)
{
	*n = f->nrefs;
	return f->refs;
}

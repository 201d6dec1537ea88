/* Internal structures of libfbschema shared by its source files (registry,
 * parser, text form, interpreter, preflight); not part of the public API. */
#ifndef FB_CF_INTERNAL_H
#define FB_CF_INTERNAL_H

#include <stdint.h>

#include "fbschema.h"
#include "rx.h"

/* What a template field is for. */
enum cf_role {
	CF_ROLE_META = 0,   /* carried, not evaluated (rule name, comment) */
	CF_ROLE_MATCH = 1,  /* compared against event attribute attr */
	CF_ROLE_ACTION = 2, /* the rule's action (an int field) */
};

/* How a match field is compared. */
enum cf_op {
	CF_OP_EQ = 0,   /* string/bytes/int/sha256 equality */
	CF_OP_CONTAINS, /* string: substring */
	CF_OP_PREFIX,   /* string: prefix */
	CF_OP_SUFFIX,   /* string: suffix */
	CF_OP_GE,       /* int: event >= value */
	CF_OP_LE,       /* int: event <= value */
	CF_OP_REGEX,    /* regex: rx_match */
	CF_OP_IN_CIDR,  /* cidr: event address within */
};

struct cf_field_def {
	char name[CF_EVENT_MAX_NAME];
	enum cf_type type;
	int required;
	enum cf_role role;
	enum cf_op op;
	char attr[CF_EVENT_MAX_NAME]; /* event attribute (CF_ROLE_MATCH) */
	int64_t min, max;             /* int range */
	uint32_t max_len;             /* string/bytes/regex length cap */
	uint32_t max_states;          /* regex: rx_size cap */
	int family;                   /* cidr: 0 any, 4, 6 */
	unsigned allowed_flags;       /* regex: RX_ICASE allowed */
};

struct cf_template {
	uint32_t id;
	uint16_t version;
	char name[CF_EVENT_MAX_NAME];
	uint16_t nfields;
	struct cf_field_def fields[CF_MAX_FIELDS];
};

struct cf_registry {
	size_t n;
	struct cf_template *t; /* sorted by (id, version) */
};

/* Find a template; NULL when absent. */
const struct cf_template *cf_registry_find(const struct cf_registry *reg, uint32_t id,
                                           uint16_t version);
/* Any version of id present? */
int cf_registry_has_id(const struct cf_registry *reg, uint32_t id);

struct cf_value {
	enum cf_type type;
	unsigned flags;
	int64_t i;
	const unsigned char *p; /* string/bytes/regex/sha256 bytes, into cf_file.buf */
	uint32_t len;
	unsigned char ip[16]; /* cidr address (v4 in the first 4 bytes) */
	uint8_t family;       /* 4 or 6 */
	uint8_t prefix;
	struct rx *rx; /* compiled regex, owned */
};

struct cf_instance {
	uint32_t id;
	const struct cf_template *tpl;
	size_t offset;      /* byte offset of the instance in the file */
	struct cf_value *v; /* tpl->nfields values */
};

struct cf_file {
	unsigned char *buf; /* owned copy of the file */
	size_t len;
	uint32_t channel;
	int64_t content_version;
	size_t n;   /* instances parsed */
	size_t cap; /* slots in inst (instance count of the header) */
	struct cf_instance *inst;
	size_t nrefs;
	struct cf_tpl_ref *refs;
};

struct cf_event_attr {
	char name[CF_EVENT_MAX_NAME];
	int is_int;
	int64_t i;
	char *s; /* NUL-terminated copy (owned) */
	size_t len;
	int has_ip;
	uint8_t family;
	unsigned char ip[16];
	int has_sha;
	unsigned char sha[32];
};

struct cf_event {
	size_t n;
	struct cf_event_attr a[CF_EVENT_MAX_ATTRS];
};

/* Little-endian helpers. */
static inline uint16_t cf_get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t cf_get32(const unsigned char *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}
static inline uint64_t cf_get64(const unsigned char *p)
{
	return (uint64_t)cf_get32(p) | ((uint64_t)cf_get32(p + 4) << 32);
}
static inline void cf_put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}
static inline void cf_put32(unsigned char *p, uint32_t v)
{
	for (int k = 0; k < 4; k++)
		p[k] = (unsigned char)(v >> (8 * k));
}
static inline void cf_put64(unsigned char *p, uint64_t v)
{
	for (int k = 0; k < 8; k++)
		p[k] = (unsigned char)(v >> (8 * k));
}

#define CF_MAGIC        "FBCF"
#define CF_CHECKSUM_OFF 8u
#define CF_CHECKSUM_LEN 8u
#define CF_CHECKED_FROM 16u /* checksum covers bytes [16, total_len) */
#define CF_INST_HDR_LEN 16u

/* Compute the checksum of a whole file buf[0..len) (len >= CF_HEADER_LEN). */
void cf_checksum(const unsigned char *buf, size_t len, unsigned char out[CF_CHECKSUM_LEN]);

/* Static names. */
const char *cf_type_name(enum cf_type t);
/* CF_T_* for a name, -1 if unknown. */
int cf_type_from_name(const char *s);

/* Format a cidr value ("10.0.0.0/8"); out holds at least 64 bytes. */
void cf_cidr_format(const struct cf_value *v, char *out, size_t outlen);
/* Parse "addr/prefix" or "addr"; FB_EINVAL on junk. */
enum fb_rc cf_cidr_parse(const char *s, uint8_t *family, unsigned char ip[16],
                         uint8_t *prefix) FB_MUSTCHECK;

#endif

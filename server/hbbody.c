/* The heartbeat body's common shape without a JSON tree (see hbbody.h): a
 * recursive-descent recogniser over the few productions a heartbeat uses. */
#include "hbbody.h"

#include <string.h>

enum field { F_AGENT, F_BOOT, F_UPTIME, F_VERSION, F_ACTIVE, F_CAPS, F_NONE };
#define REQUIRED (1u << F_AGENT | 1u << F_BOOT | 1u << F_UPTIME | 1u << F_ACTIVE)

struct cur {
	const char *p, *end;
};

static void skip_ws(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* The next token is ch: take it. */
static int take(struct cur *c, char ch)
{
	skip_ws(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return 1;
	}
	return 0;
}

/* A string of printable ASCII without escapes (JSON allows more; what is
 * not this goes to jansson). */
static int text(struct cur *c, struct hbbody_text *t)
{
	if (!take(c, '"'))
		return 0;
	const char *s = c->p;
	while (c->p < c->end && *c->p != '"') {
		unsigned char ch = (unsigned char)*c->p;
		if (ch < 0x20 || ch > 0x7e || ch == '\\')
			return 0;
		c->p++;
	}
	if (c->p == c->end)
		return 0;
	t->p = s;
	t->n = (size_t)(c->p - s);
	c->p++;
	return 1;
}

/* An integer without sign, fraction or exponent, of at most 18 digits. */
static int number(struct cur *c, int64_t *v)
{
	skip_ws(c);
	const char *s = c->p;
	int64_t x = 0;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		if (c->p - s == 18)
			return 0;
		x = x * 10 + (*c->p - '0');
		c->p++;
	}
	if (c->p == s || (c->p - s > 1 && *s == '0'))
		return 0;
	if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
		return 0;
	*v = x;
	return 1;
}

static int is(const struct hbbody_text *t, const char *s)
{
	return t->n == strlen(s) && memcmp(t->p, s, t->n) == 0;
}

static enum field field_of(const struct hbbody_text *k)
{
	static const char *const names[] = {"agent_id",      "boot_id", "uptime_s",
	                                    "agent_version", "active",  "capabilities"};
	for (int f = 0; f < F_NONE; f++)
		if (is(k, names[f]))
			return (enum field)f;
	return F_NONE;
}

/* {"channel": "text", ...}: keys distinct, at most HBBODY_MAX_ENTRIES. */
static int active(struct cur *c, struct hbbody *o)
{
	if (!take(c, '{'))
		return 0;
	if (take(c, '}'))
		return 1;
	do {
		if (o->nactive == HBBODY_MAX_ENTRIES)
			return 0;
		struct hbbody_text *k = &o->active_key[o->nactive];
		if (!text(c, k) || !take(c, ':') || !text(c, &o->active_val[o->nactive]))
			return 0;
		for (size_t i = 0; i < o->nactive; i++)
			if (o->active_key[i].n == k->n &&
			    memcmp(o->active_key[i].p, k->p, k->n) == 0)
				return 0;
		o->nactive++;
	} while (take(c, ','));
	return take(c, '}');
}

/* [{"id": n, "version": n}, ...], each key once, in either order. */
static int caps(struct cur *c, struct hbbody *o)
{
	if (!take(c, '['))
		return 0;
	if (take(c, ']'))
		return 1;
	do {
		if (o->ncaps == HBBODY_MAX_ENTRIES || !take(c, '{'))
			return 0;
		int64_t id = -1, ver = -1;
		for (int k = 0; k < 2; k++) {
			struct hbbody_text key;
			int64_t v;
			if ((k && !take(c, ',')) || !text(c, &key) || !take(c, ':') ||
			    !number(c, &v))
				return 0;
			if (id < 0 && is(&key, "id"))
				id = v;
			else if (ver < 0 && is(&key, "version"))
				ver = v;
			else
				return 0;
		}
		if (!take(c, '}') || id > 0xffffffffLL || ver > 0xffff)
			return 0;
		o->cap_id[o->ncaps] = (uint32_t)id;
		o->cap_version[o->ncaps] = (uint16_t)ver;
		o->ncaps++;
	} while (take(c, ','));
	return take(c, ']');
}

int hbbody_parse(const char *body, size_t n, struct hbbody *o)
{
	struct cur c = {body, body + n};
	unsigned seen = 0;
	o->has_version = 0;
	o->has_caps = 0;
	o->nactive = 0;
	o->ncaps = 0;
	if (!take(&c, '{'))
		return 0;
	do {
		struct hbbody_text k, *t;
		if (!text(&c, &k) || !take(&c, ':'))
			return 0;
		enum field f = field_of(&k);
		if (f == F_NONE || (seen & 1u << f))
			return 0;
		seen |= 1u << f;
		switch (f) {
		case F_AGENT:
			if (!number(&c, &o->agent_id) || o->agent_id < 1)
				return 0;
			break;
		case F_UPTIME:
			if (!number(&c, &o->uptime_s))
				return 0;
			break;
		case F_BOOT:
		case F_VERSION:
			t = f == F_BOOT ? &o->boot_id : &o->version;
			if (!text(&c, t) || t->n < 1 || t->n > HBBODY_MAX_TEXT)
				return 0;
			o->has_version |= f == F_VERSION;
			break;
		case F_ACTIVE:
			if (!active(&c, o))
				return 0;
			break;
		case F_CAPS:
			if (!caps(&c, o))
				return 0;
			o->has_caps = 1;
			break;
		case F_NONE: return 0;
		}
	} while (take(&c, ','));
	if (!take(&c, '}'))
		return 0;
	skip_ws(&c);
	return c.p == c.end && (seen & REQUIRED) == REQUIRED;
}

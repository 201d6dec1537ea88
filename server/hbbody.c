/* The heartbeat body's common shape without a JSON tree (see hbbody.h): a
 * recursive-descent recogniser over the few productions a heartbeat uses. */
#include "hbbody.h"

#include <string.h>

enum field { F_AGENT, F_BOOT, F_UPTIME, F_VERSION, F_ACTIVE, F_CAPS, F_HEALTH, F_NONE };
#define REQUIRED (1u << F_AGENT | 1u << F_BOOT | 1u << F_UPTIME | 1u << F_ACTIVE)

struct cur {
	const char *p, *end;
};

static void skip_ws(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* The next token is ch: take it. Agents send compact JSON, so the token is
 * looked for before any whitespace is skipped. */
static inline int take(struct cur *c, char ch)
{
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return 1;
	}
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
	static const char *const names[] = {"agent_id", "boot_id",      "uptime_s", "agent_version",
	                                    "active",   "capabilities", "health"};
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

/* One of the n keys in names (lens their lengths, each under 16) and the
 * ':' after it: its index, else -1. names[hint] is tried first (the key
 * expected next); the others are matched in place, by length and first
 * character before any compare: on the health object's thirty-odd keys per
 * heartbeat this is most of the fast path's cost. A key that is none of
 * them (escapes included) is -1, and the body goes to jansson, as with
 * text(). */
static int known_key(struct cur *c, const char *const *names, const unsigned char *lens, int n,
                     int hint)
{
	if (!take(c, '"'))
		return -1;
	size_t l = 0, left = (size_t)(c->end - c->p);
	/* Agents send the keys in the documented order: try the one expected
	 * next first, in one pass (its name, then the closing quote). */
	if (hint >= 0 && hint < n && lens[hint] < left) {
		size_t k = 0, hl = lens[hint];
		while (k < hl && names[hint][k] == c->p[k])
			k++;
		if (k == hl && c->p[hl] == '"') {
			c->p += hl + 1;
			return take(c, ':') ? hint : -1;
		}
	}
	while (l < left && l < 16 && c->p[l] != '"')
		l++;
	if (l == left || l == 16)
		return -1;
	for (int i = 0; i < n; i++) {
		if (lens[i] != l || names[i][0] != *c->p)
			continue;
		size_t j = 1;
		while (j < l && names[i][j] == c->p[j])
			j++;
		if (j < l)
			continue;
		c->p += l + 1;
		return take(c, ':') ? i : -1;
	}
	return -1;
}

/* A channel key, "1" .. "4294967295" (digits only, no leading zero), and
 * the ':' after it, read in one pass. */
static int channel_key(struct cur *c, uint32_t *ch)
{
	if (!take(c, '"'))
		return 0;
	const char *s = c->p;
	int64_t v = 0;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		if (c->p - s == 10)
			return 0;
		v = v * 10 + (*c->p - '0');
		c->p++;
	}
	if (c->p == s || *s == '0' || c->p == c->end || *c->p != '"' || v > 0xffffffffLL)
		return 0;
	c->p++;
	*ch = (uint32_t)v;
	return take(c, ':');
}

/* {"evals": n, "errors": n, ...}: each counter at most once. */
static int counters(struct cur *c, struct sig_channel *ch)
{
	static const char *const names[] = {"evals", "errors", "timeouts", "detections", "blocks"};
	static const unsigned char lens[] = {5, 6, 8, 10, 6};
	int64_t *dst[] = {&ch->evals, &ch->errors, &ch->timeouts, &ch->detections, &ch->blocks};
	for (int i = 0; i < 5; i++)
		*dst[i] = -1;
	if (!take(c, '{'))
		return 0;
	if (take(c, '}'))
		return 1;
	int i = -1;
	do {
		i = known_key(c, names, lens, 5, i + 1);
		if (i < 0 || *dst[i] >= 0 || !number(c, dst[i]))
			return 0;
	} while (take(c, ','));
	return take(c, '}');
}

/* The health object: known integer fields once each, channels once. */
static int health(struct cur *c, struct sig_health *h)
{
	static const char *const names[] = {"interval_s", "agent_cpu_p95", "agent_cpu_mean",
	                                    "host_cpu",   "agent_rss_kb",  "channels"};
	static const unsigned char lens[] = {10, 13, 14, 8, 12, 8};
	int64_t *dst[] = {&h->interval_s, &h->agent_cpu_p95, &h->agent_cpu_mean, &h->host_cpu,
	                  &h->agent_rss_kb};
	int chans = 0;
	sig_health_clear(h);
	if (!take(c, '{'))
		return 0;
	if (take(c, '}'))
		return 1;
	int i = -1;
	do {
		i = known_key(c, names, lens, 6, i + 1);
		if (i < 0)
			return 0;
		if (i < 5) {
			if (*dst[i] >= 0 || !number(c, dst[i]))
				return 0;
			continue;
		}
		if (chans++ || !take(c, '{'))
			return 0;
		if (take(c, '}'))
			continue;
		do {
			if (h->nch == SIG_MAX_CHANNELS)
				return 0;
			struct sig_channel *ch = &h->ch[h->nch];
			if (!channel_key(c, &ch->channel) || !counters(c, ch))
				return 0;
			for (size_t j = 0; j < h->nch; j++)
				if (h->ch[j].channel == ch->channel)
					return 0;
			h->nch++;
		} while (take(c, ','));
		if (!take(c, '}'))
			return 0;
	} while (take(c, ','));
	return take(c, '}');
}

int hbbody_parse(const char *body, size_t n, struct hbbody *o)
{
	struct cur c = {body, body + n};
	unsigned seen = 0;
	o->has_version = 0;
	o->has_caps = 0;
	o->has_health = 0;
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
		case F_HEALTH:
			if (!health(&c, &o->health))
				return 0;
			o->has_health = 1;
			break;
		case F_NONE: return 0;
		}
	} while (take(&c, ','));
	if (!take(&c, '}'))
		return 0;
	skip_ws(&c);
	return c.p == c.end && (seen & REQUIRED) == REQUIRED;
}

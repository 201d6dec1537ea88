/* The one content interpreter (FORMAT.md "Interpreter"): events built from
 * JSON, and cf_content_eval(), which runs a parsed file's detection rules
 * against an event under a step budget. Used by the agent and the preflight. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf_internal.h"

const char *cf_action_str(enum cf_action a)
{
	switch (a) {
	case CF_ACT_NONE: return "none";
	case CF_ACT_LOG: return "log";
	case CF_ACT_ALERT: return "alert";
	case CF_ACT_BLOCK: return "block";
	}
	return "unknown";
}

void cf_event_free(struct cf_event *ev)
{
	if (!ev)
		return;
	for (size_t k = 0; k < ev->n; k++)
		free(ev->a[k].s);
	free(ev);
}

static int is_hex64(const char *s, size_t n)
{
	if (n != 64)
		return 0;
	for (size_t k = 0; k < n; k++) {
		char c = s[k];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return 0;
	}
	return 1;
}

static unsigned hexval(char c)
{
	if (c >= '0' && c <= '9')
		return (unsigned)(c - '0');
	if (c >= 'a' && c <= 'f')
		return (unsigned)(c - 'a' + 10);
	return (unsigned)(c - 'A' + 10);
}

enum fb_rc cf_event_from_json(const json_t *obj, struct cf_event **out, struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	struct cf_event *ev = NULL;
	const char *key;
	json_t *val;
	*out = NULL;
	if (!json_is_object(obj)) {
		fb_err_set(err, "event: expected a JSON object");
		return FB_EINVAL;
	}
	if (json_object_size(obj) > CF_EVENT_MAX_ATTRS) {
		fb_err_set(err, "event: %zu attributes, at most %u allowed", json_object_size(obj),
		           CF_EVENT_MAX_ATTRS);
		return FB_ETOOBIG;
	}
	ev = calloc(1, sizeof *ev);
	if (!ev)
		return FB_ENOMEM;
	json_object_foreach((json_t *)obj, key, val)
	{
		struct cf_event_attr *a = &ev->a[ev->n];
		size_t kl = strlen(key);
		if (kl == 0 || kl >= CF_EVENT_MAX_NAME) {
			fb_err_set(err, "event: attribute name \"%.64s\" must be 1-%u bytes", key,
			           CF_EVENT_MAX_NAME - 1);
			rc = FB_EINVAL;
			goto out;
		}
		memcpy(a->name, key, kl + 1);
		if (json_is_integer(val)) {
			a->is_int = 1;
			a->i = json_integer_value(val);
		} else if (json_is_string(val)) {
			size_t n = json_string_length(val);
			if (n > CF_MAX_VALUE) {
				fb_err_set(err, "event: attribute \"%s\" is %zu bytes, at most %u",
				           key, n, CF_MAX_VALUE);
				rc = FB_ETOOBIG;
				goto out;
			}
			a->s = malloc(n + 1);
			if (!a->s) {
				rc = FB_ENOMEM;
				goto out;
			}
			memcpy(a->s, json_string_value(val), n + 1);
			a->len = n;
			if (inet_pton(AF_INET, a->s, a->ip) == 1) {
				a->has_ip = 1;
				a->family = 4;
			} else if (inet_pton(AF_INET6, a->s, a->ip) == 1) {
				a->has_ip = 1;
				a->family = 6;
			}
			if (is_hex64(a->s, n)) {
				a->has_sha = 1;
				for (size_t k = 0; k < 32; k++)
					a->sha[k] = (unsigned char)(hexval(a->s[2 * k]) << 4 |
					                            hexval(a->s[2 * k + 1]));
			}
		} else {
			fb_err_set(err, "event: attribute \"%s\" must be a string or an integer",
			           key);
			rc = FB_EINVAL;
			goto out;
		}
		ev->n++;
	}
	*out = ev;
	ev = NULL;
out:
	cf_event_free(ev);
	return rc;
}

enum fb_rc cf_event_from_text(const char *text, size_t len, struct cf_event **out,
                              struct fb_err *err)
{
	json_error_t jerr;
	*out = NULL;
	if (len > CF_MAX_JSON) {
		fb_err_set(err, "event: text over %u bytes", CF_MAX_JSON);
		return FB_ETOOBIG;
	}
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		fb_err_set(err, "event: line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		return FB_EINVAL;
	}
	enum fb_rc rc = cf_event_from_json(j, out, err);
	json_decref(j);
	return rc;
}

static const struct cf_event_attr *find_attr(const struct cf_event *ev, const char *name)
{
	for (size_t k = 0; k < ev->n; k++)
		if (strcmp(ev->a[k].name, name) == 0)
			return &ev->a[k];
	return NULL;
}

static int in_cidr(const struct cf_value *v, const struct cf_event_attr *a)
{
	if (!a->has_ip || a->family != v->family)
		return 0;
	unsigned full = v->prefix / 8, rest = v->prefix % 8;
	if (memcmp(v->ip, a->ip, full) != 0)
		return 0;
	if (rest) {
		unsigned mask = (0xffu << (8 - rest)) & 0xffu;
		if ((v->ip[full] & mask) != (a->ip[full] & mask))
			return 0;
	}
	return 1;
}

static int str_match(enum cf_op op, const struct cf_value *v, const struct cf_event_attr *a)
{
	if (a->is_int)
		return 0;
	size_t n = v->len;
	switch (op) {
	case CF_OP_EQ: return a->len == n && memcmp(a->s, v->p, n) == 0;
	case CF_OP_PREFIX: return a->len >= n && memcmp(a->s, v->p, n) == 0;
	case CF_OP_SUFFIX: return a->len >= n && memcmp(a->s + a->len - n, v->p, n) == 0;
	case CF_OP_CONTAINS: return n == 0 || memmem(a->s, a->len, v->p, n) != NULL;
	default: return 0;
	}
}

/* Cost in steps of evaluating field value v against attribute a. */
static uint64_t field_cost(const struct cf_value *v, const struct cf_event_attr *a)
{
	uint64_t alen = a->is_int ? 0 : a->len;
	if (v->type == CF_T_REGEX)
		return 1 + (alen + 1) * (uint64_t)rx_size(v->rx);
	if (v->type == CF_T_STRING || v->type == CF_T_BYTES)
		return 1 + (alen + v->len) / 16;
	return 1;
}

static int field_match(const struct cf_field_def *fd, const struct cf_value *v,
                       const struct cf_event_attr *a)
{
	switch (v->type) {
	case CF_T_INT:
		if (!a->is_int)
			return 0;
		return fd->op == CF_OP_GE   ? a->i >= v->i
		       : fd->op == CF_OP_LE ? a->i <= v->i
		                            : a->i == v->i;
	case CF_T_STRING:
	case CF_T_BYTES: return str_match(fd->op, v, a);
	case CF_T_REGEX: return !a->is_int && rx_match(v->rx, a->s, a->len);
	case CF_T_CIDR: return in_cidr(v, a);
	case CF_T_SHA256: return a->has_sha && memcmp(a->sha, v->p, 32) == 0;
	default: return 0;
	}
}

enum fb_rc cf_content_eval(const struct cf_file *f, const struct cf_event *ev, int64_t budget,
                           struct cf_verdict *verdict, struct fb_err *err)
{
	uint64_t steps = 0, limit = budget > 0 ? (uint64_t)budget : (uint64_t)CF_DEFAULT_BUDGET;
	struct cf_verdict vd = {CF_ACT_NONE, 0, 0, 0, 0};
	memset(verdict, 0, sizeof *verdict);
	if (!f || !ev) {
		fb_err_set(err, "no file or no event");
		return FB_EINVAL;
	}
	for (size_t k = 0; k < f->n; k++) {
		const struct cf_instance *in = &f->inst[k];
		const struct cf_template *t = in->tpl;
		int matched = 1, tested = 0;
		enum cf_action act = CF_ACT_LOG;
		if (++steps > limit) {
			fb_err_set(err, "step budget of %llu exceeded at instance %zu (id %u)",
			           (unsigned long long)limit, k, in->id);
			vd.steps = steps;
			*verdict = vd;
			return FB_ETIMEOUT;
		}
		for (size_t j = 0; j < t->nfields; j++) {
			const struct cf_field_def *fd = &t->fields[j];
			const struct cf_value *v = &in->v[j];
			if (v->type == CF_T_ABSENT)
				continue;
			if (fd->role == CF_ROLE_ACTION) {
				act = (enum cf_action)v->i;
				continue;
			}
			if (fd->role != CF_ROLE_MATCH || !matched)
				continue;
			tested = 1;
			const struct cf_event_attr *a = find_attr(ev, fd->attr);
			steps += 1 + ev->n / 8;
			if (!a) {
				matched = 0;
				continue;
			}
			uint64_t c = field_cost(v, a);
			if (steps > limit || c > limit - steps) {
				fb_err_set(err,
				           "step budget of %llu exceeded at instance %zu (id %u) "
				           "field "
				           "%zu \"%s\"",
				           (unsigned long long)limit, k, in->id, j, fd->name);
				vd.steps = steps;
				*verdict = vd;
				return FB_ETIMEOUT;
			}
			steps += c;
			if (!field_match(fd, v, a))
				matched = 0;
		}
		if (!matched || !tested)
			continue;
		vd.matches++;
		if (!vd.first_match)
			vd.first_match = in->id;
		if (act > vd.action) {
			vd.action = act;
			vd.action_rule = in->id;
		}
	}
	vd.steps = steps;
	*verdict = vd;
	return FB_OK;
}

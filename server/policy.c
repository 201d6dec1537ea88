/* Admin-set bounds on rollout gate policies: the bounds document's
 * validation and versioned storage, and the check of a rollout's resolved
 * per-ring policies against the bounds in force. */
#include "policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "audit.h"
#include "auth.h"
#include "db.h"
#include "events.h"
#include "gate.h"
#include "log.h"
#include "validate.h"

/* The keys an emergency rollout may take below the normal admin lower bound
 * (bake times only), down to the emergency floor; and the floor used when
 * the document sets none. Every other key keeps its normal bounds. */
static const struct {
	const char *key;
	int64_t floor;
} emergency_keys[] = {
        {"min_bake_s", POLICY_EMERGENCY_MIN_BAKE_S},
};
#define N_EMERGENCY_KEYS (sizeof emergency_keys / sizeof emergency_keys[0])

static int emergency_key(const char *key)
{
	for (size_t i = 0; i < N_EMERGENCY_KEYS; i++)
		if (strcmp(emergency_keys[i].key, key) == 0)
			return (int)i;
	return -1;
}

/* Every gate policy key with its default value (new reference). The keys
 * come from gate_policy_to_json, so a key the gate learns is known here
 * too; an integer default means the key takes integers only. */
static json_t *policy_keys(void)
{
	struct gate_policy p;
	gate_policy_default(0, 1, &p);
	return gate_policy_to_json(&p);
}

/* ---- validation of a bounds document -------------------------------------------- */

/* Why a document was refused: HTTP status, error code, message. */
struct verr {
	unsigned status;
	const char *code;
	struct fb_err err;
};

static int refuse(struct verr *v, unsigned status, const char *code, const char *fmt, ...)
        FB_PRINTF(4, 5);
static int refuse(struct verr *v, unsigned status, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->err.msg, sizeof v->err.msg, fmt, ap);
	va_end(ap);
	v->status = status;
	v->code = code;
	return 0;
}

static const char *num_text(const json_t *x, char *buf, size_t n)
{
	if (json_is_integer(x))
		snprintf(buf, n, "%lld", (long long)json_integer_value(x));
	else
		snprintf(buf, n, "%g", json_number_value(x));
	return buf;
}

/* "a, b, c": the known policy keys, for messages. */
static const char *key_list(const json_t *keys, char *buf, size_t n)
{
	size_t len = 0;
	const char *k;
	json_t *x;
	buf[0] = '\0';
	json_object_foreach((json_t *)keys, k, x)
	{
		int w = snprintf(buf + len, n - len, "%s%s", len ? ", " : "", k);
		if (w < 0 || (size_t)w >= n - len)
			break;
		len += (size_t)w;
	}
	return buf;
}

/* where.key = {"min": x, "max": y}: a known key, each limit of the key's
 * type and itself a value gate_policy_apply_json accepts (the absolute
 * bounds), min <= max; floor_only: "min" alone. */
static int bound_valid(const char *where, const char *key, const json_t *bound, const json_t *keys,
                       int floor_only, struct verr *v)
{
	const json_t *def = json_object_get(keys, key);
	if (!def) {
		char known[512];
		return refuse(v, 422, "unknown_key", "%s: unknown policy key \"%.64s\" (known: %s)",
		              where, key, key_list(keys, known, sizeof known));
	}
	if (!json_is_object(bound) || json_object_size(bound) == 0)
		return refuse(v, 400, "invalid",
		              "%s.%s must be an object with \"min\"%s, e.g. {\"min\": %s}", where,
		              key, floor_only ? "" : " and/or \"max\"",
		              json_is_integer(def) ? "1" : "0.5");
	const char *k;
	json_t *x;
	json_object_foreach((json_t *)bound, k, x)
	{
		int is_min = strcmp(k, "min") == 0, is_max = strcmp(k, "max") == 0;
		if (!is_min && !is_max)
			return refuse(v, 400, "invalid",
			              "%s.%s: unknown member \"%.64s\" (a bound has \"min\" and/or "
			              "\"max\")",
			              where, key, k);
		if (is_max && floor_only)
			return refuse(v, 422, "bad_bounds",
			              "%s.%s.max: emergency bounds are floors; only \"min\" may be "
			              "set",
			              where, key);
		if (json_is_integer(def) ? !json_is_integer(x) : !json_is_number(x))
			return refuse(v, 400, "invalid", "%s.%s.%s must be %s", where, key, k,
			              json_is_integer(def) ? "an integer" : "a number");
		struct gate_policy p;
		struct fb_err e = {{0}};
		gate_policy_default(0, 1, &p);
		json_t *probe = json_object();
		json_object_set(probe, key, x);
		enum fb_rc rc = gate_policy_apply_json(&p, probe, &e);
		json_decref(probe);
		if (rc)
			return refuse(v, 422, "bad_bounds",
			              "%s.%s.%s is outside the absolute bounds: %s", where, key, k,
			              e.msg);
	}
	const json_t *mn = json_object_get(bound, "min"), *mx = json_object_get(bound, "max");
	if (mn && mx && json_number_value(mn) > json_number_value(mx)) {
		char a[32], b[32];
		return refuse(v, 422, "bad_bounds", "%s.%s: min %s is above max %s", where, key,
		              num_text(mn, a, sizeof a), num_text(mx, b, sizeof b));
	}
	return 1;
}

/* A section: an object of policy key -> bound. */
static int section_valid(const char *where, const json_t *sec, const json_t *keys, int emergency,
                         struct verr *v)
{
	if (!json_is_object(sec))
		return refuse(v, 400, "invalid",
		              "%s must be an object of policy key -> {\"min\", \"max\"}", where);
	const char *key;
	json_t *b;
	json_object_foreach((json_t *)sec, key, b)
	{
		if (!bound_valid(where, key, b, keys, emergency, v))
			return 0;
		if (emergency && emergency_key(key) < 0) {
			char list[256] = "";
			for (size_t i = 0; i < N_EMERGENCY_KEYS; i++)
				snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
				         i ? ", " : "", emergency_keys[i].key);
			return refuse(v, 422, "bad_bounds",
			              "%s.%s: only bake times have an emergency floor (%s); every "
			              "other key keeps its normal bounds in an emergency",
			              where, key, list);
		}
	}
	return 1;
}

static int ring_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 32 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' ||
		      *s == '-'))
			return 0;
	return 1;
}

/* The limit lim ("min" or "max") of key in section sec, or NULL. */
static const json_t *limit_of(const json_t *sec, const char *key, const char *lim)
{
	return json_object_get(json_object_get(sec, key), lim);
}

/* The ring's bounds and the global ones must leave some value for every
 * key; so must the emergency floor and the upper bounds. */
static int ranges_nonempty(const json_t *doc, const json_t *keys, struct verr *v)
{
	const json_t *g = json_object_get(doc, "bounds"), *rings = json_object_get(doc, "rings"),
	             *em = json_object_get(doc, "emergency");
	const char *key;
	json_t *def;
	json_object_foreach((json_t *)keys, key, def)
	{
		const json_t *gmin = limit_of(g, key, "min"), *gmax = limit_of(g, key, "max");
		const char *ring;
		json_t *rb;
		char a[32], b[32];
		json_object_foreach((json_t *)rings, ring, rb)
		{
			const json_t *rmin = limit_of(rb, key, "min"),
			             *rmax = limit_of(rb, key, "max");
			if (rmin && gmax && json_number_value(rmin) > json_number_value(gmax))
				return refuse(
				        v, 422, "bad_bounds",
				        "rings.%s.%s.min %s is above the global max %s: no value "
				        "would be allowed",
				        ring, key, num_text(rmin, a, sizeof a),
				        num_text(gmax, b, sizeof b));
			if (rmax && gmin && json_number_value(rmax) < json_number_value(gmin))
				return refuse(
				        v, 422, "bad_bounds",
				        "rings.%s.%s.max %s is below the global min %s: no value "
				        "would be allowed",
				        ring, key, num_text(rmax, a, sizeof a),
				        num_text(gmin, b, sizeof b));
		}
		int ek = emergency_key(key);
		if (ek < 0)
			continue;
		const json_t *emin = limit_of(em, key, "min");
		double flo = emin ? json_number_value(emin) : (double)emergency_keys[ek].floor;
		if (emin)
			num_text(emin, a, sizeof a);
		else
			snprintf(a, sizeof a, "%lld (the default)",
			         (long long)emergency_keys[ek].floor);
		if (gmax && flo > json_number_value(gmax))
			return refuse(
			        v, 422, "bad_bounds",
			        "emergency.%s.min %s is above the global max %s: no emergency "
			        "rollout would be allowed",
			        key, a, num_text(gmax, b, sizeof b));
		json_object_foreach((json_t *)rings, ring, rb)
		{
			const json_t *rmax = limit_of(rb, key, "max");
			if (rmax && flo > json_number_value(rmax))
				return refuse(v, 422, "bad_bounds",
				              "emergency.%s.min %s is above rings.%s.%s.max %s: no "
				              "emergency rollout would be allowed",
				              key, a, ring, key, num_text(rmax, b, sizeof b));
		}
	}
	return 1;
}

/* Validate a PUT body (less "reason"); on success *norm is the normalised
 * document with all three sections (new reference). */
static int doc_valid(const json_t *body, json_t **norm, struct verr *v)
{
	*norm = NULL;
	json_t *keys = policy_keys(), *doc = NULL;
	int ok = 0;
	const json_t *g = json_object_get(body, "bounds"), *rings = json_object_get(body, "rings"),
	             *em = json_object_get(body, "emergency");
	if (g && !section_valid("bounds", g, keys, 0, v))
		goto out;
	if (rings && !json_is_object(rings)) {
		refuse(v, 400, "invalid",
		       "rings must be an object of ring name -> {policy key -> {\"min\", "
		       "\"max\"}}");
		goto out;
	}
	const char *ring;
	json_t *rb;
	json_object_foreach((json_t *)rings, ring, rb)
	{
		char where[64];
		if (!ring_name_ok(ring)) {
			refuse(v, 400, "invalid",
			       "rings: \"%.64s\" is not a ring name ([a-z0-9_-]{1,32})", ring);
			goto out;
		}
		snprintf(where, sizeof where, "rings.%s", ring);
		if (!section_valid(where, rb, keys, 0, v))
			goto out;
	}
	if (em && !section_valid("emergency", em, keys, 1, v))
		goto out;
	doc = json_pack("{s:o,s:o,s:o}", "bounds", g ? json_deep_copy(g) : json_object(), "rings",
	                rings ? json_deep_copy(rings) : json_object(), "emergency",
	                em ? json_deep_copy(em) : json_object());
	if (!doc) {
		refuse(v, 500, "internal", "out of memory");
		goto out;
	}
	if (!ranges_nonempty(doc, keys, v))
		goto out;
	*norm = doc;
	doc = NULL;
	ok = 1;
out:
	json_decref(doc);
	json_decref(keys);
	return ok;
}

/* ---- storage ------------------------------------------------------------------------ */

static json_t *empty_doc(void)
{
	return json_pack("{s:{},s:{},s:{}}", "bounds", "rings", "emergency");
}

enum fb_rc policy_bounds_current(PGconn *c, struct policy_bounds *out, struct fb_err *err)
{
	out->version = 0;
	out->doc = NULL;
	PGresult *r = db_exec(c, err,
	                      "SELECT version, document::text FROM policy_bounds ORDER BY version "
	                      "DESC LIMIT 1",
	                      0, NULL);
	if (!r)
		return FB_EDB;
	int64_t version = 0;
	json_t *doc = NULL;
	if (PQntuples(r) == 1) {
		version = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		doc = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
	} else {
		doc = empty_doc();
	}
	PQclear(r);
	if (!json_is_object(doc)) {
		json_decref(doc);
		fb_err_set(err, "policy bounds version %lld: stored document is not an object",
		           (long long)version);
		return FB_EINTERNAL;
	}
	out->version = version;
	out->doc = doc;
	return FB_OK;
}

void policy_bounds_cleanup(struct policy_bounds *b)
{
	if (!b)
		return;
	json_decref(b->doc);
	b->doc = NULL;
	b->version = 0;
}

/* ---- the check of a rollout's policy ----------------------------------------------- */

/* One side of a key's allowed range and where it comes from. */
struct limit {
	int set;
	double value;
	char text[32];
	char source[96];
};

static void limit_take(struct limit *l, const json_t *x, int lower, const char *source)
{
	if (!x)
		return;
	double v = json_number_value(x);
	if (l->set && (lower ? v <= l->value : v >= l->value))
		return;
	l->set = 1;
	l->value = v;
	num_text(x, l->text, sizeof l->text);
	snprintf(l->source, sizeof l->source, "%s", source);
}

int policy_check_or_reply(struct http_req *req, const struct policy_bounds *b, const char *ring,
                          const json_t *policy, const json_t *global_ovr, const json_t *ring_ovr,
                          int emergency)
{
	const json_t *g = json_object_get(b->doc, "bounds"),
	             *rb = json_object_get(json_object_get(b->doc, "rings"), ring),
	             *em = json_object_get(b->doc, "emergency");
	char ring_src[96];
	snprintf(ring_src, sizeof ring_src, "the admin bounds of ring '%s'", ring);
	const char *key;
	json_t *val;
	json_object_foreach((json_t *)policy, key, val)
	{
		if (!json_is_number(val))
			continue;
		struct limit lo = {0}, hi = {0};
		limit_take(&lo, limit_of(g, key, "min"), 1, "the global admin bounds");
		limit_take(&lo, limit_of(rb, key, "min"), 1, ring_src);
		limit_take(&hi, limit_of(g, key, "max"), 0, "the global admin bounds");
		limit_take(&hi, limit_of(rb, key, "max"), 0, ring_src);
		int ek = emergency_key(key);
		if (emergency && ek >= 0) {
			/* bake times may go below the normal lower bound, not below the floor */
			const json_t *f = limit_of(em, key, "min");
			memset(&lo, 0, sizeof lo);
			if (f) {
				limit_take(&lo, f, 1, "the emergency floor");
			} else {
				lo.set = 1;
				lo.value = (double)emergency_keys[ek].floor;
				snprintf(lo.text, sizeof lo.text, "%lld",
				         (long long)emergency_keys[ek].floor);
				snprintf(lo.source, sizeof lo.source,
				         "the default emergency floor (none set in the policy "
				         "bounds)");
			}
		}
		double x = json_number_value(val);
		const struct limit *bad = NULL;
		if (lo.set && x < lo.value)
			bad = &lo;
		else if (hi.set && x > hi.value)
			bad = &hi;
		if (!bad)
			continue;
		char xs[32], from[160];
		num_text(val, xs, sizeof xs);
		if (json_object_get(ring_ovr, key))
			snprintf(from, sizeof from, "set by \"ring_policies\".%s", ring);
		else if (json_object_get(global_ovr, key))
			snprintf(from, sizeof from, "set by \"policy\"");
		else
			snprintf(from, sizeof from,
			         "this ring's default; override it within the bounds with "
			         "\"policy\" "
			         "or \"ring_policies\"");
		http_error(req, 422, "policy_out_of_bounds",
		           "ring '%s': %s = %s is %s the %s bound %s of %s (policy bounds version "
		           "%lld); the value is %s",
		           ring, key, xs, bad == &lo ? "below" : "above",
		           bad == &lo ? "lower" : "upper", bad->text, bad->source,
		           (long long)b->version, from);
		return 0;
	}
	return 1;
}

/* ---- the API ------------------------------------------------------------------------ */

/* The document in force with its version and provenance, as GET answers. */
static json_t *bounds_reply(PGconn *c, struct fb_err *err)
{
	PGresult *r = db_exec(
	        c, err,
	        "SELECT json_build_object('version', version, 'updated', extract(epoch FROM "
	        "created_at)::bigint, 'updated_by', actor, 'reason', reason, 'document', "
	        "document)::text FROM policy_bounds ORDER BY version DESC LIMIT 1",
	        0, NULL);
	if (!r)
		return NULL;
	json_t *row = PQntuples(r) == 1 ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
	PQclear(r);
	json_t *doc = row ? json_incref(json_object_get(row, "document")) : empty_doc();
	json_t *out =
	        json_pack("{s:I,s:O,s:O,s:O}", "version",
	                  (json_int_t)json_integer_value(json_object_get(row, "version")), "bounds",
	                  json_object_get(doc, "bounds"), "rings", json_object_get(doc, "rings"),
	                  "emergency", json_object_get(doc, "emergency"));
	json_t *floors = json_object();
	for (size_t i = 0; i < N_EMERGENCY_KEYS; i++) {
		const json_t *f =
		        limit_of(json_object_get(doc, "emergency"), emergency_keys[i].key, "min");
		json_object_set_new(floors, emergency_keys[i].key,
		                    f ? json_deep_copy(f) : json_integer(emergency_keys[i].floor));
	}
	json_object_set_new(out, "emergency_floor", floors);
	static const char *const prov[] = {"updated", "updated_by", "reason"};
	for (size_t i = 0; i < 3; i++) {
		json_t *x = json_object_get(row, prov[i]);
		json_object_set_new(out, prov[i], x ? json_incref(x) : json_null());
	}
	json_decref(doc);
	json_decref(row);
	return out;
}

void policy_bounds_get(struct http_req *req)
{
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct fb_err err;
	json_t *j = bounds_reply(c, &err);
	db_release(app.db, c);
	if (!j) {
		http_unavailable(req, err.msg);
		return;
	}
	http_reply_json(req, 200, j);
}

/* Every ring the document names must exist (a typo would silently bound
 * nothing). */
static int rings_exist_or_reply(struct http_req *req, PGconn *c, const json_t *doc,
                                struct fb_err *err, int *dberr)
{
	*dberr = 0;
	PGresult *r = db_exec(c, err, "SELECT name FROM rings ORDER BY position", 0, NULL);
	if (!r) {
		*dberr = 1;
		return 0;
	}
	const char *ring;
	json_t *rb;
	int ok = 1;
	json_object_foreach(json_object_get(doc, "rings"), ring, rb)
	{
		int found = 0;
		for (int i = 0; i < PQntuples(r) && !found; i++)
			found = strcmp(PQgetvalue(r, i, 0), ring) == 0;
		if (!found) {
			http_error(req, 422, "unknown_ring",
			           "rings: there is no ring '%s' (GET /v1/rings lists them)", ring);
			ok = 0;
			break;
		}
	}
	PQclear(r);
	return ok;
}

void policy_bounds_put(struct http_req *req)
{
	json_t *body = http_req_json_or_reply(req);
	if (!body)
		return;
	PGconn *c = NULL;
	PGresult *r = NULL;
	json_t *doc = NULL, *before = NULL, *after = NULL;
	int in_tx = 0;
	struct fb_err err = {{0}};
	static const char *const allowed[] = {"bounds", "rings", "emergency", "reason", NULL};
	if (!val_fields_or_reply(req, body, allowed))
		goto out;
	const char *reason = val_string_or_reply(req, body, "reason", 1, 1024, 1);
	if (!reason)
		goto out;
	struct verr v = {0};
	if (!doc_valid(body, &doc, &v)) {
		http_error(req, v.status, v.code, "%s", v.err.msg);
		goto out;
	}
	c = app_db_or_reply(req);
	if (!c)
		goto out;
	/* One writer at a time, so that before and after are exact. */
	if (db_cmd(c, &err, "BEGIN") ||
	    db_cmd(c, &err, "LOCK TABLE policy_bounds IN SHARE ROW EXCLUSIVE MODE"))
		goto dberr;
	in_tx = 1;
	int failed;
	if (!rings_exist_or_reply(req, c, doc, &err, &failed)) {
		if (failed)
			goto dberr;
		goto out;
	}
	before = bounds_reply(c, &err);
	if (!before)
		goto dberr;
	const struct auth *who = http_req_auth(req);
	char actor[160], tid[24];
	snprintf(actor, sizeof actor, "%s:%s", auth_role_name(who->role), who->name);
	snprintf(tid, sizeof tid, "%lld", (long long)who->token_id);
	char *ds = json_dumps(doc, JSON_COMPACT);
	const char *p[] = {ds, reason, actor, who->token_id ? tid : NULL};
	r = db_exec(c, &err,
	            "INSERT INTO policy_bounds (document, reason, actor, created_by) VALUES "
	            "($1::jsonb, $2, $3, $4)",
	            4, p);
	free(ds);
	if (!r)
		goto dberr;
	PQclear(r);
	r = NULL;
	after = bounds_reply(c, &err);
	if (!after)
		goto dberr;
	if (audit_write(c, who, http_req_id(req), "policy_bounds.replace", "policy-bounds", before,
	                after, reason, &err) ||
	    events_emit(c, "policy_bounds.changed", 0, after, &err) || db_cmd(c, &err, "COMMIT"))
		goto dberr;
	in_tx = 0;
	log_info("policy bounds version %lld set by %s: %s",
	         (long long)json_integer_value(json_object_get(after, "version")), actor, reason);
	http_reply_json(req, 200, json_incref(after));
	goto out;
dberr:
	http_unavailable(req, err.msg);
out:
	PQclear(r);
	if (c) {
		if (in_tx)
			PQclear(PQexec(c, "ROLLBACK"));
		db_release(app.db, c);
	}
	json_decref(doc);
	json_decref(before);
	json_decref(after);
	json_decref(body);
}

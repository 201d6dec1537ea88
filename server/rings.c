/* Rings and pins: the admin API. Ring resolution itself (lists, then tags,
 * then hash buckets) lives in snapshot.c, which serves from it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "audit.h"
#include "config.h"
#include "db.h"
#include "rollouts.h"
#include "snapshot.h"
#include "validate.h"

static json_t *rings_json(PGconn *c, struct fb_err *err)
{
	PGresult *r = db_exec(
	        c, err,
	        "SELECT coalesce(json_agg(json_build_object('name', name, 'position', position, "
	        "'selector', selector) ORDER BY position), '[]')::text FROM rings",
	        0, NULL);
	if (!r)
		return NULL;
	json_t *j = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	PQclear(r);
	return j;
}

void rings_get(struct http_req *req)
{
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct fb_err err;
	json_t *j = rings_json(c, &err);
	db_release(app.db, c);
	if (!j) {
		http_unavailable(req, err.msg);
		return;
	}
	http_reply_json(req, 200, json_pack("{s:o}", "rings", j));
}

/* Validate one selector; 1 = ok. *pct accumulates percentages. */
static int selector_or_reply(struct http_req *req, size_t i, const json_t *sel, int last,
                             double *pct)
{
	if (!json_is_object(sel) || json_object_size(sel) != 1) {
		http_error(req, 400, "invalid",
		           "rings[%zu].selector must be one of {\"agents\": [ids]}, {\"tag\": "
		           "\"k=v\"}, "
		           "{\"percent\": p}, {\"rest\": true}",
		           i);
		return 0;
	}
	json_t *v;
	if ((v = json_object_get(sel, "agents"))) {
		if (!json_is_array(v) || json_array_size(v) > 100000) {
			http_error(req, 400, "invalid",
			           "rings[%zu].selector.agents must be an array of at most 100000 "
			           "agent ids",
			           i);
			return 0;
		}
		for (size_t k = 0; k < json_array_size(v); k++)
			if (!json_is_integer(json_array_get(v, k)) ||
			    json_integer_value(json_array_get(v, k)) < 1) {
				http_error(req, 400, "invalid",
				           "rings[%zu].selector.agents[%zu] must be an agent id", i,
				           k);
				return 0;
			}
	} else if ((v = json_object_get(sel, "tag"))) {
		const char *t = json_string_value(v);
		const char *eq = t ? strchr(t, '=') : NULL;
		if (!eq || eq == t || !eq[1] || strlen(t) > 200) {
			http_error(req, 400, "invalid",
			           "rings[%zu].selector.tag must be \"key=value\"", i);
			return 0;
		}
	} else if ((v = json_object_get(sel, "percent"))) {
		double p = json_number_value(v);
		if (!json_is_number(v) || p <= 0 || p > 100) {
			http_error(req, 400, "invalid",
			           "rings[%zu].selector.percent must be a number in (0, 100]", i);
			return 0;
		}
		*pct += p;
	} else if ((v = json_object_get(sel, "rest"))) {
		if (!json_is_true(v) || !last) {
			http_error(req, 400, "invalid",
			           "rings[%zu]: only the last ring may be {\"rest\": true}", i);
			return 0;
		}
	} else {
		http_error(req, 400, "invalid", "rings[%zu].selector has an unknown kind", i);
		return 0;
	}
	if (last && !json_object_get(sel, "rest")) {
		http_error(req, 400, "invalid",
		           "the last ring must be {\"rest\": true} so that every agent is in "
		           "exactly one ring");
		return 0;
	}
	return 1;
}

void rings_put(struct http_req *req)
{
	json_t *body = http_req_json_or_reply(req);
	if (!body)
		return;
	PGconn *c = NULL;
	PGresult *r = NULL;
	json_t *before = NULL;
	int in_tx = 0;
	struct fb_err err = {{0}};
	static const char *const allowed[] = {"rings", "reason", NULL};
	if (!val_fields_or_reply(req, body, allowed))
		goto out;
	json_t *rings = json_object_get(body, "rings");
	size_t n = json_array_size(rings);
	if (!json_is_array(rings) || n < 1 || n > SNAP_MAX_RINGS) {
		http_error(req, 400, "invalid", "field 'rings' must be an array of 1 to %d rings",
		           SNAP_MAX_RINGS);
		goto out;
	}
	double pct = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *ring = json_array_get(rings, i);
		static const char *const rallowed[] = {"name", "selector", NULL};
		if (!json_is_object(ring) || !val_fields_or_reply(req, ring, rallowed))
			goto out;
		const char *name = json_string_value(json_object_get(ring, "name"));
		int ok = name && strlen(name) >= 1 && strlen(name) <= 32;
		for (const char *ch = name; ok && *ch; ch++)
			ok = (*ch >= 'a' && *ch <= 'z') || (*ch >= '0' && *ch <= '9') ||
			     *ch == '_' || *ch == '-';
		if (!ok) {
			http_error(req, 400, "invalid",
			           "rings[%zu].name must match [a-z0-9_-]{1,32}", i);
			goto out;
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(name, json_string_value(json_object_get(json_array_get(rings, k),
			                                                   "name"))) == 0) {
				http_error(req, 400, "invalid", "ring name '%s' appears twice",
				           name);
				goto out;
			}
		if (!selector_or_reply(req, i, json_object_get(ring, "selector"), i == n - 1, &pct))
			goto out;
	}
	if (pct > 100.0001) {
		http_error(req, 400, "invalid",
		           "percent selectors add up to %.2f%%, more than 100%%", pct);
		goto out;
	}
	c = app_db_or_reply(req);
	if (!c)
		goto out;
	if (db_cmd(c, &err, "BEGIN") || db_cmd(c, &err, "LOCK TABLE rings IN EXCLUSIVE MODE"))
		goto dberr;
	in_tx = 1;
	/* A ring named by an active rollout's plan cannot disappear. */
	char *names = json_dumps(rings, JSON_COMPACT);
	const char *pn[] = {names};
	r = db_exec(c, &err,
	            "SELECT r.id, p.name FROM rollouts r, jsonb_array_elements_text(r.ring_plan) "
	            "p(name) "
	            "WHERE r.state IN ('staged', 'rolling', 'paused', 'watching') AND NOT EXISTS "
	            "(SELECT 1 FROM "
	            "jsonb_array_elements($1::jsonb) x WHERE x ->> 'name' = p.name) LIMIT 1",
	            1, pn);
	free(names);
	if (!r)
		goto dberr;
	if (PQntuples(r) > 0) {
		http_error(req, 409, "conflict",
		           "active rollout %s uses ring '%s'; it cannot be removed",
		           PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
		goto out;
	}
	PQclear(r);
	r = NULL;
	before = rings_json(c, &err);
	if (!before || db_cmd(c, &err, "DELETE FROM rings"))
		goto dberr;
	for (size_t i = 0; i < n; i++) {
		json_t *ring = json_array_get(rings, i);
		char pos[16], *sel = json_dumps(json_object_get(ring, "selector"), JSON_COMPACT);
		snprintf(pos, sizeof pos, "%zu", i);
		const char *p[] = {json_string_value(json_object_get(ring, "name")), pos, sel};
		r = db_exec(
		        c, &err,
		        "INSERT INTO rings (name, position, selector) VALUES ($1, $2, $3::jsonb)",
		        3, p);
		free(sel);
		if (!r)
			goto dberr;
		PQclear(r);
		r = NULL;
	}
	if (audit_write(c, http_req_auth(req), http_req_id(req), "rings.replace", "rings", before,
	                rings, json_string_value(json_object_get(body, "reason")), &err) ||
	    snapshot_publish(c, "rings changed", &err) || db_cmd(c, &err, "COMMIT"))
		goto dberr;
	in_tx = 0;
	http_reply_json(req, 200, json_pack("{s:O}", "rings", rings));
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
	json_decref(before);
	json_decref(body);
}

void pins_list(struct http_req *req)
{
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct fb_err err;
	PGresult *r = db_exec(
	        c, &err,
	        "SELECT coalesce(json_agg(json_build_object('id', id, 'tag', tag, 'channel', "
	        "channel_id, 'mode', mode, 'version', version) ORDER BY id), '[]')::text FROM pins",
	        0, NULL);
	db_release(app.db, c);
	if (!r) {
		http_unavailable(req, err.msg);
		return;
	}
	json_t *j = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	PQclear(r);
	http_reply_json(req, 200, json_pack("{s:o}", "pins", j));
}

void pins_create(struct http_req *req)
{
	json_t *body = http_req_json_or_reply(req);
	if (!body)
		return;
	PGconn *c = NULL;
	PGresult *r = NULL;
	int in_tx = 0;
	struct fb_err err = {{0}};
	static const char *const allowed[] = {"tag", "channel", "mode", "version", "reason", NULL};
	int64_t channel = 0, version = 0;
	if (!val_fields_or_reply(req, body, allowed) ||
	    !val_int_or_reply(req, body, "channel", 1, 0xffffffffLL, 1, &channel))
		goto out;
	const char *tag = val_string_or_reply(req, body, "tag", 3, 200, 1);
	const char *mode = tag ? val_string_or_reply(req, body, "mode", 3, 7, 1) : NULL;
	if (!mode)
		goto out;
	if (strcmp(mode, "n-1") && strcmp(mode, "version")) {
		http_error(req, 400, "invalid", "field 'mode' must be \"n-1\" or \"version\"");
		goto out;
	}
	int named = strcmp(mode, "version") == 0;
	if (!val_int_or_reply(req, body, "version", 1, INT64_MAX, named, &version))
		goto out;
	if (!named && json_object_get(body, "version")) {
		http_error(req, 400, "invalid", "field 'version' is only for mode \"version\"");
		goto out;
	}
	if (!strchr(tag, '=')) {
		http_error(req, 400, "invalid", "field 'tag' must be \"key=value\"");
		goto out;
	}
	c = app_db_or_reply(req);
	if (!c)
		goto out;
	char chs[16], vers[24];
	snprintf(chs, sizeof chs, "%lld", (long long)channel);
	snprintf(vers, sizeof vers, "%lld", (long long)version);
	if (db_cmd(c, &err, "BEGIN"))
		goto dberr;
	in_tx = 1;
	if (named) {
		const char *pv[] = {chs, vers};
		r = db_exec(c, &err,
		            "SELECT bad FROM content WHERE channel_id = $1 AND version = $2", 2,
		            pv);
		if (!r)
			goto dberr;
		if (PQntuples(r) != 1) {
			http_error(req, 422, "unknown_version", "channel %lld has no version %lld",
			           (long long)channel, (long long)version);
			goto out;
		}
		PQclear(r);
		r = NULL;
	}
	char state[6];
	const char *p[] = {tag, chs, mode, named ? vers : NULL};
	r = db_exec_state(c, &err, state,
	                  "INSERT INTO pins (tag, channel_id, mode, version) VALUES ($1, $2, $3, "
	                  "$4) RETURNING id",
	                  4, p);
	if (!r) {
		if (strcmp(state, "23505") == 0)
			http_error(req, 409, "conflict", "tag %s is already pinned on channel %lld",
			           tag, (long long)channel);
		else if (strcmp(state, "23503") == 0)
			http_error(req, 422, "unknown_channel", "no channel %lld",
			           (long long)channel);
		else if (strcmp(state, "23514") == 0)
			http_error(req, 400, "invalid",
			           "tag must be key=value with [A-Za-z0-9_.-] keys and "
			           "[A-Za-z0-9_.:-] values");
		else
			goto dberr;
		goto out;
	}
	json_int_t id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	char obj[32];
	snprintf(obj, sizeof obj, "pin/%lld", (long long)id);
	if (audit_write(c, http_req_auth(req), http_req_id(req), "pin.create", obj, NULL, body,
	                json_string_value(json_object_get(body, "reason")), &err) ||
	    snapshot_publish(c, "pin created", &err) || db_cmd(c, &err, "COMMIT"))
		goto dberr;
	in_tx = 0;
	json_t *out = json_pack("{s:I,s:s,s:I,s:s}", "id", id, "tag", tag, "channel",
	                        (json_int_t)channel, "mode", mode);
	if (named)
		json_object_set_new(out, "version", json_integer(version));
	http_reply_json(req, 201, out);
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
	json_decref(body);
}

void pins_delete(struct http_req *req)
{
	int64_t id;
	const char *ids = http_req_param(req, "id");
	if (!val_param_id_or_reply(req, "id", "pin id", INT32_MAX, &id))
		return;
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct fb_err err;
	const char *p[] = {ids};
	PGresult *r = NULL;
	if (db_cmd(c, &err, "BEGIN") ||
	    !(r = db_exec(c, &err, "DELETE FROM pins WHERE id = $1 RETURNING tag", 1, p))) {
		http_unavailable(req, err.msg);
		goto out;
	}
	if (PQntuples(r) == 0) {
		http_error(req, 404, "not_found", "no pin %lld", (long long)id);
		goto out;
	}
	char obj[32];
	snprintf(obj, sizeof obj, "pin/%lld", (long long)id);
	if (audit_write(c, http_req_auth(req), http_req_id(req), "pin.delete", obj, NULL, NULL,
	                NULL, &err) ||
	    snapshot_publish(c, "pin deleted", &err) || db_cmd(c, &err, "COMMIT")) {
		http_unavailable(req, err.msg);
		goto out;
	}
	http_reply_json(req, 200, json_pack("{s:I,s:b}", "id", (json_int_t)id, "deleted", 1));
out:
	PQclear(r);
	PQclear(PQexec(c, "ROLLBACK"));
	db_release(app.db, c);
}

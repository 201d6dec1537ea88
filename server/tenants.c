/* Tenants, host groups and customer content policies (migration 0009): the
 * API. The serving snapshot applies the policies (snapshot.c, load_groups);
 * server/README.md, "Tenants and customer content policies", has the rules. */
#include "tenants.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "audit.h"
#include "config.h"
#include "db.h"
#include "events.h"
#include "log.h"
#include "snapshot.h"
#include "validate.h"

#define NAME_RE "^[a-z0-9][a-z0-9_-]{0,63}$"

/* A customer's policies are the customer's: its own users with role release
 * or admin set them; of the vendor's users only an admin (a support case),
 * and the change is audited and announced to the customer like its own. 1
 * when who may, else 0, answered. */
static int may_set_policy(struct http_req *req)
{
	const struct auth *who = http_req_auth(req);
	if (who->tenant_id || who->role == ROLE_ADMIN)
		return 1;
	http_error(req, 403, "forbidden",
	           "customers set their content policies; of the vendor's users only an admin may");
	return 0;
}

/* The tenant {tenant} names (a name or an id) into *id, name: 1. A tenant's
 * credential names only its own; anything else (unknown, or another
 * tenant's) is 404 as if it did not exist: 0, answered. */
static int tenant_of_req(struct http_req *req, PGconn *c, int64_t *id, char name[65])
{
	const char *t = http_req_param(req, "tenant");
	const struct auth *who = http_req_auth(req);
	struct fb_err err;
	/* by id only when it is one: no cast of a name in SQL, which PostgreSQL
	 * may evaluate whatever the order of the conditions */
	size_t digits = strspn(t, "0123456789");
	int numeric = digits > 0 && digits <= 9 && t[digits] == '\0';
	const char *p[] = {t, numeric ? t : NULL};
	PGresult *r = db_exec(c, &err,
	                      "SELECT id, name FROM tenants WHERE name = $1 OR id = $2::int", 2, p);
	if (!r) {
		http_unavailable(req, err.msg);
		return 0;
	}
	int ok = PQntuples(r) == 1;
	if (ok) {
		*id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		snprintf(name, 65, "%s", PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	if (!ok || (who->tenant_id && who->tenant_id != *id)) {
		http_error(req, 404, "not_found", "no tenant %s", t);
		return 0;
	}
	return 1;
}

static json_t *query_json(PGconn *c, struct fb_err *err, const char *sql, int n,
                          const char *const *p)
{
	PGresult *r = db_exec(c, err, sql, n, p);
	if (!r)
		return NULL;
	json_t *j = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	PQclear(r);
	if (!j)
		fb_err_set(err, "cannot read the database's answer");
	return j;
}

static const char POLICY_JSON[] =
        "json_build_object('id', p.id, 'tenant', t.name, 'group', g.name, 'channel', "
        "p.channel_id, 'mode', p.mode, 'delay_s', p.delay_s, 'version', p.version, "
        "'paused_at', p.paused_at, 'reason', p.reason, 'updated_at', p.updated_at, "
        "'updated_by', u.name)";

static json_t *policies_json(PGconn *c, const char *tid, struct fb_err *err)
{
	char sql[1024];
	snprintf(sql, sizeof sql,
	         "SELECT coalesce(json_agg(%s ORDER BY p.id), '[]')::text FROM content_policies p "
	         "JOIN tenants t ON t.id = p.tenant_id LEFT JOIN host_groups g ON g.id = "
	         "p.group_id LEFT JOIN users u ON u.id = p.updated_by WHERE p.tenant_id = $1",
	         POLICY_JSON);
	const char *p[] = {tid};
	return query_json(c, err, sql, 1, p);
}

void tenants_list(struct http_req *req)
{
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct fb_err err;
	json_t *j = query_json(
	        c, &err,
	        "SELECT coalesce(json_agg(json_build_object('id', t.id, 'name', t.name, "
	        "'default_mode', t.default_mode, 'groups', (SELECT count(*) FROM host_groups g "
	        "WHERE g.tenant_id = t.id), 'agents', (SELECT count(*) FROM agents a JOIN "
	        "host_groups g ON g.id = a.group_id WHERE g.tenant_id = t.id AND a.revoked_at IS "
	        "NULL)) ORDER BY t.id), '[]')::text FROM tenants t",
	        0, NULL);
	db_release(app.db, c);
	if (!j) {
		http_unavailable(req, err.msg);
		return;
	}
	http_reply_json(req, 200, json_pack("{s:o}", "tenants", j));
}

static json_t *tenant_json(PGconn *c, const char *tid, struct fb_err *err)
{
	const char *p[] = {tid};
	json_t *t = query_json(
	        c, err,
	        "SELECT json_build_object('id', t.id, 'name', t.name, 'default_mode', "
	        "t.default_mode, 'groups', (SELECT coalesce(json_agg(json_build_object('id', g.id, "
	        "'name', g.name, 'agents', (SELECT count(*) FROM agents a WHERE a.group_id = g.id "
	        "AND a.revoked_at IS NULL)) ORDER BY g.id), '[]') FROM host_groups g WHERE "
	        "g.tenant_id = t.id))::text FROM tenants t WHERE t.id = $1",
	        1, p);
	json_t *pol = t ? policies_json(c, tid, err) : NULL;
	if (!pol) {
		json_decref(t);
		return NULL;
	}
	json_object_set_new(t, "policies", pol);
	return t;
}

void tenants_show(struct http_req *req)
{
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	int64_t id;
	char name[65], tid[24];
	if (tenant_of_req(req, c, &id, name)) {
		snprintf(tid, sizeof tid, "%lld", (long long)id);
		struct fb_err err;
		json_t *t = tenant_json(c, tid, &err);
		if (t)
			http_reply_json(req, 200, t);
		else
			http_unavailable(req, err.msg);
	}
	db_release(app.db, c);
}

/* One transaction: BEGIN, the change, audit, publish, COMMIT; on failure the
 * reply names why. */
static int finish_tx(struct http_req *req, PGconn *c, const char *action, const char *obj,
                     json_t *after, const char *reason, const char *why_publish)
{
	struct fb_err err;
	if (audit_write(c, http_req_auth(req), http_req_id(req), action, obj, NULL, after, reason,
	                &err) ||
	    (why_publish && snapshot_publish(c, why_publish, &err)) || db_cmd(c, &err, "COMMIT")) {
		PQclear(PQexec(c, "ROLLBACK"));
		http_unavailable(req, err.msg);
		return 0;
	}
	return 1;
}

void tenants_create(struct http_req *req)
{
	json_t *body = http_req_json_or_reply(req);
	if (!body)
		return;
	PGconn *c = NULL;
	PGresult *r = NULL;
	static const char *const allowed[] = {"name", "default_mode", "reason", NULL};
	const char *name = NULL, *mode = "ga", *reason = NULL;
	if (!val_fields_or_reply(req, body, allowed) ||
	    !(name = val_string_or_reply(req, body, "name", 1, 64, 1)))
		goto out;
	if (json_object_get(body, "default_mode") &&
	    !(mode = val_string_or_reply(req, body, "default_mode", 2, 5, 1)))
		goto out;
	if (strcmp(mode, "early") && strcmp(mode, "ga")) {
		http_error(req, 400, "invalid", "field 'default_mode' must be \"early\" or \"ga\"");
		goto out;
	}
	if (json_object_get(body, "reason") &&
	    !(reason = val_string_or_reply(req, body, "reason", 1, 1024, 1)))
		goto out;
	if (!(c = app_db_or_reply(req)))
		goto out;
	struct fb_err err;
	char state[6];
	const char *p[] = {name, mode};
	if (db_cmd(c, &err, "BEGIN")) {
		http_unavailable(req, err.msg);
		goto out;
	}
	r = db_exec_state(
	        c, &err, state,
	        "WITH t AS (INSERT INTO tenants (name, default_mode) VALUES ($1, $2) "
	        "RETURNING id), g AS (INSERT INTO host_groups (tenant_id, name) SELECT id, "
	        "'default' FROM t RETURNING id, tenant_id) SELECT tenant_id FROM g",
	        2, p);
	if (!r) {
		PQclear(PQexec(c, "ROLLBACK"));
		if (strcmp(state, "23505") == 0)
			http_error(req, 409, "conflict", "tenant '%s' exists", name);
		else if (strcmp(state, "23514") == 0)
			http_error(req, 400, "invalid",
			           "field 'name' must match " NAME_RE
			           " (lower case letters, digits, "
			           "_ and -, at most 64)");
		else
			http_unavailable(req, err.msg);
		goto out;
	}
	char tid[24], obj[48];
	snprintf(tid, sizeof tid, "%s", PQgetvalue(r, 0, 0));
	snprintf(obj, sizeof obj, "tenant/%s", tid);
	json_t *t = tenant_json(c, tid, &err);
	if (!t) {
		PQclear(PQexec(c, "ROLLBACK"));
		http_unavailable(req, err.msg);
		goto out;
	}
	if (finish_tx(req, c, "tenant.create", obj, t, reason, "host group created"))
		http_reply_json(req, 201, json_incref(t));
	json_decref(t);
out:
	PQclear(r);
	if (c)
		db_release(app.db, c);
	json_decref(body);
}

void tenants_group_create(struct http_req *req)
{
	json_t *body = http_req_json_or_reply(req);
	if (!body)
		return;
	PGconn *c = NULL;
	PGresult *r = NULL;
	static const char *const allowed[] = {"name", "reason", NULL};
	const char *name = NULL;
	if (!val_fields_or_reply(req, body, allowed) ||
	    !(name = val_string_or_reply(req, body, "name", 1, 64, 1)))
		goto out;
	if (!(c = app_db_or_reply(req)))
		goto out;
	int64_t id;
	char tname[65], tid[24], state[6];
	if (!tenant_of_req(req, c, &id, tname))
		goto out;
	snprintf(tid, sizeof tid, "%lld", (long long)id);
	struct fb_err err;
	const char *p[] = {tid, name};
	if (db_cmd(c, &err, "BEGIN")) {
		http_unavailable(req, err.msg);
		goto out;
	}
	r = db_exec_state(c, &err, state,
	                  "INSERT INTO host_groups (tenant_id, name) VALUES ($1, $2) RETURNING id",
	                  2, p);
	if (!r) {
		PQclear(PQexec(c, "ROLLBACK"));
		if (strcmp(state, "23505") == 0)
			http_error(req, 409, "conflict", "tenant '%s' has a group '%s'", tname,
			           name);
		else if (strcmp(state, "23514") == 0)
			http_error(req, 400, "invalid", "field 'name' must match " NAME_RE);
		else
			http_unavailable(req, err.msg);
		goto out;
	}
	json_int_t gid = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	char obj[48];
	snprintf(obj, sizeof obj, "host_group/%lld", (long long)gid);
	json_t *g = json_pack("{s:I,s:s,s:s}", "id", gid, "name", name, "tenant", tname);
	if (finish_tx(req, c, "host_group.create", obj, g, NULL, "host group created"))
		http_reply_json(req, 201, json_incref(g));
	json_decref(g);
out:
	PQclear(r);
	if (c)
		db_release(app.db, c);
	json_decref(body);
}

void tenants_policies(struct http_req *req)
{
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	int64_t id;
	char name[65], tid[24];
	if (tenant_of_req(req, c, &id, name)) {
		snprintf(tid, sizeof tid, "%lld", (long long)id);
		struct fb_err err;
		json_t *j = policies_json(c, tid, &err);
		if (j)
			http_reply_json(req, 200, json_pack("{s:o}", "policies", j));
		else
			http_unavailable(req, err.msg);
	}
	db_release(app.db, c);
}

/* Ring 0's hosts that may get early content on a channel (every channel when
 * chan is NULL: the fewest of any), by the policies as this transaction sees
 * them; -1 when it cannot be told. */
static int64_t early_canaries(PGconn *c, const char *chan, struct fb_err *err)
{
	const char *p[] = {chan};
	PGresult *r = db_exec(c, err,
	                      "SELECT ch.id, coalesce(array_agg(g.id) FILTER (WHERE "
	                      "content_mode(g.id, ch.id) = 'early'), '{}')::text FROM channels ch "
	                      "CROSS JOIN host_groups g WHERE $1::int IS NULL OR ch.id = $1::int "
	                      "GROUP BY ch.id",
	                      1, p);
	if (!r)
		return -1;
	int64_t least = -1;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *a = PQgetvalue(r, i, 1); /* "{1,2,3}" */
		int ids[4096];
		size_t n = 0;
		for (const char *q = a + 1; *q && *q != '}' && n < 4096;) {
			ids[n++] = (int)strtol(q, NULL, 10);
			while (*q && *q != ',' && *q != '}')
				q++;
			if (*q == ',')
				q++;
		}
		int64_t k = snapshot_first_ring_in_groups(ids, n);
		if (k >= 0 && (least < 0 || k < least))
			least = k;
	}
	PQclear(r);
	return least;
}

void tenants_policy_put(struct http_req *req)
{
	if (!may_set_policy(req))
		return;
	json_t *body = http_req_json_or_reply(req);
	if (!body)
		return;
	PGconn *c = NULL;
	PGresult *r = NULL;
	int in_tx = 0;
	struct fb_err err;
	static const char *const allowed[] = {"group",   "channel", "mode", "delay_s",
	                                      "version", "reason",  NULL};
	static const char *const modes[] = {"early", "ga", "delayed", "paused", "n-1", "version"};
	int64_t channel = 0, delay = 0, version = 0;
	const char *group = NULL, *mode = NULL, *reason = NULL;
	if (!val_fields_or_reply(req, body, allowed))
		goto out;
	if (json_object_get(body, "group") &&
	    !(group = val_string_or_reply(req, body, "group", 1, 64, 1)))
		goto out;
	if (!val_int_or_reply(req, body, "channel", 1, 0x7fffffffLL, 0, &channel) ||
	    !(mode = val_string_or_reply(req, body, "mode", 1, 16, 1)))
		goto out;
	int m = 0;
	while (m < 6 && strcmp(mode, modes[m]))
		m++;
	if (m == 6) {
		http_error(req, 400, "invalid",
		           "field 'mode' must be one of early, ga, delayed, paused, n-1, version");
		goto out;
	}
	int delayed = m == 2, named = m == 5;
	if (!delayed && json_object_get(body, "delay_s")) {
		http_error(req, 400, "invalid", "field 'delay_s' is only for mode \"delayed\"");
		goto out;
	}
	if (!named && json_object_get(body, "version")) {
		http_error(req, 400, "invalid", "field 'version' is only for mode \"version\"");
		goto out;
	}
	if (!val_int_or_reply(req, body, "delay_s", 1, 7776000, delayed, &delay) ||
	    !val_int_or_reply(req, body, "version", 1, INT64_MAX, named, &version) ||
	    !(reason = val_string_or_reply(req, body, "reason", 1, 1024, 1)))
		goto out;
	if (named && !channel) {
		http_error(req, 400, "invalid",
		           "field 'channel' is required with mode \"version\"");
		goto out;
	}
	if (!(c = app_db_or_reply(req)))
		goto out;
	int64_t tid;
	char tname[65], ts[24], chs[16], ds[16], vs[24], uid[24], gid[16] = "";
	if (!tenant_of_req(req, c, &tid, tname))
		goto out;
	snprintf(ts, sizeof ts, "%lld", (long long)tid);
	snprintf(chs, sizeof chs, "%lld", (long long)channel);
	snprintf(ds, sizeof ds, "%lld", (long long)delay);
	snprintf(vs, sizeof vs, "%lld", (long long)version);
	snprintf(uid, sizeof uid, "%lld", (long long)http_req_auth(req)->user_id);
	if (db_cmd(c, &err, "BEGIN"))
		goto dberr;
	in_tx = 1;
	if (group) {
		const char *pg[] = {ts, group};
		r = db_exec(c, &err,
		            "SELECT id FROM host_groups WHERE tenant_id = $1 AND name = $2", 2, pg);
		if (!r)
			goto dberr;
		if (PQntuples(r) != 1) {
			http_error(req, 400, "invalid",
			           "field 'group': tenant '%s' has no group '%s'", tname, group);
			goto out;
		}
		snprintf(gid, sizeof gid, "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
		r = NULL;
	}
	if (channel) {
		const char *pc[] = {chs, named ? vs : NULL};
		r = db_exec(
		        c, &err,
		        "SELECT (SELECT count(*) FROM channels WHERE id = $1), (SELECT count(*) "
		        "FROM content WHERE channel_id = $1 AND version = $2::bigint)",
		        2, pc);
		if (!r)
			goto dberr;
		if (strcmp(PQgetvalue(r, 0, 0), "1") != 0) {
			http_error(req, 400, "invalid", "field 'channel': no channel %lld",
			           (long long)channel);
			goto out;
		}
		if (named && strcmp(PQgetvalue(r, 0, 1), "1") != 0) {
			http_error(req, 400, "invalid",
			           "field 'version': channel %lld has no version %lld",
			           (long long)channel, (long long)version);
			goto out;
		}
		PQclear(r);
		r = NULL;
	}
	int64_t before = early_canaries(c, channel ? chs : NULL, &err);
	/* paused: what the group stays on is each channel's GA now */
	const char *pu[] = {ts,     gid[0] ? gid : NULL,       channel ? chs : NULL,
	                    mode,   delayed ? ds : NULL,       named ? vs : NULL,
	                    reason, uid[0] != '0' ? uid : NULL};
	r = db_exec(c, &err,
	            "INSERT INTO content_policies (tenant_id, group_id, channel_id, mode, delay_s, "
	            "version, paused_at, reason, updated_by) SELECT $1, $2, $3, $4, $5, $6, CASE "
	            "WHEN $4 = 'paused' THEN (SELECT coalesce(jsonb_object_agg(id::text, "
	            "ga_sha256) FILTER (WHERE ga_sha256 IS NOT NULL), '{}') FROM channels WHERE "
	            "$3::int "
	            "IS NULL OR id = $3::int) END, $7, $8 ON CONFLICT (tenant_id, group_id, "
	            "channel_id) DO UPDATE SET mode = EXCLUDED.mode, delay_s = EXCLUDED.delay_s, "
	            "version = EXCLUDED.version, paused_at = EXCLUDED.paused_at, reason = "
	            "EXCLUDED.reason, updated_by = EXCLUDED.updated_by, updated_at = now() "
	            "RETURNING id",
	            8, pu);
	if (!r)
		goto dberr;
	char pid[24];
	snprintf(pid, sizeof pid, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	r = NULL;
	int64_t after = early_canaries(c, channel ? chs : NULL, &err);
	if (before > 0 && after == 0) {
		http_error(req, 409, "conflict",
		           "field 'mode': this policy would leave the first ring without any host "
		           "allowed early content%s%s; nothing changed",
		           channel ? " on channel " : "", channel ? chs : "");
		goto out;
	}
	char sql[1024], obj[48];
	snprintf(sql, sizeof sql,
	         "SELECT %s::text FROM content_policies p JOIN tenants t ON t.id = p.tenant_id "
	         "LEFT JOIN host_groups g ON g.id = p.group_id LEFT JOIN users u ON u.id = "
	         "p.updated_by WHERE p.id = $1",
	         POLICY_JSON);
	const char *pp[] = {pid};
	json_t *pol = query_json(c, &err, sql, 1, pp);
	if (!pol)
		goto dberr;
	if (events_emit(c, "customer_policy.set", 0, pol, &err)) {
		json_decref(pol);
		goto dberr;
	}
	snprintf(obj, sizeof obj, "content_policy/%s", pid);
	in_tx = 0;
	if (finish_tx(req, c, "content_policy.set", obj, pol, reason, "customer content policy"))
		http_reply_json(req, 200, json_incref(pol));
	json_decref(pol);
	goto out;
dberr:
	http_unavailable(req, err.msg);
out:
	PQclear(r);
	if (in_tx)
		PQclear(PQexec(c, "ROLLBACK"));
	if (c)
		db_release(app.db, c);
	json_decref(body);
}

void tenants_policy_delete(struct http_req *req)
{
	if (!may_set_policy(req))
		return;
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	PGresult *r = NULL;
	int in_tx = 0;
	struct fb_err err;
	int64_t tid, pid;
	char tname[65], ts[24], ps[24];
	if (!tenant_of_req(req, c, &tid, tname) ||
	    !val_param_id_or_reply(req, "id", "policy", INT32_MAX, &pid))
		goto out;
	snprintf(ts, sizeof ts, "%lld", (long long)tid);
	snprintf(ps, sizeof ps, "%lld", (long long)pid);
	const char *p[] = {ps, ts};
	if (db_cmd(c, &err, "BEGIN"))
		goto dberr;
	in_tx = 1;
	int64_t before = early_canaries(c, NULL, &err);
	r = db_exec(c, &err,
	            "DELETE FROM content_policies WHERE id = $1 AND tenant_id = $2 RETURNING id", 2,
	            p);
	if (!r)
		goto dberr;
	if (PQntuples(r) != 1) {
		http_error(req, 404, "not_found", "tenant '%s' has no policy %s", tname, ps);
		goto out;
	}
	int64_t after = early_canaries(c, NULL, &err);
	if (before > 0 && after == 0) {
		http_error(req, 409, "conflict",
		           "field 'mode': without this policy the first ring would have no host "
		           "allowed early content; nothing changed");
		goto out;
	}
	char obj[48];
	snprintf(obj, sizeof obj, "content_policy/%s", ps);
	in_tx = 0;
	if (finish_tx(req, c, "content_policy.delete", obj, NULL, NULL, "customer content policy"))
		http_reply_json(req, 200, json_pack("{s:I}", "deleted", (json_int_t)pid));
	goto out;
dberr:
	http_unavailable(req, err.msg);
out:
	PQclear(r);
	if (in_tx)
		PQclear(PQexec(c, "ROLLBACK"));
	db_release(app.db, c);
}

void tenants_rollouts(struct http_req *req)
{
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	int64_t tid;
	char tname[65], ts[24];
	if (tenant_of_req(req, c, &tid, tname)) {
		snprintf(ts, sizeof ts, "%lld", (long long)tid);
		const char *p[] = {ts};
		struct fb_err err;
		json_t *j = query_json(
		        c, &err,
		        "WITH a AS (SELECT a.active, a.group_id FROM agents a JOIN host_groups g "
		        "ON "
		        "g.id = a.group_id WHERE g.tenant_id = $1 AND a.revoked_at IS NULL) "
		        "SELECT coalesce(json_agg(json_build_object('id', r.id, 'channel', "
		        "r.channel_id, 'content', r.content_sha256, 'state', r.state, 'agents', "
		        "(SELECT count(*) FROM a), 'exposed', (SELECT count(*) FROM a WHERE "
		        "a.active ->> r.channel_id::text = r.content_sha256), 'modes', (SELECT "
		        "coalesce(json_object_agg(m, n), '{}') FROM (SELECT content_mode(g, "
		        "r.channel_id) AS m, sum(n) AS n FROM (SELECT a.group_id AS g, count(*) AS "
		        "n "
		        "FROM a GROUP BY 1) y GROUP BY 1) x)) ORDER BY r.id), "
		        "'[]')::text FROM rollouts r WHERE r.state IN ('rolling', 'paused', "
		        "'watching', 'halted')",
		        1, p);
		if (j)
			http_reply_json(req, 200, json_pack("{s:o}", "rollouts", j));
		else
			http_unavailable(req, err.msg);
	}
	db_release(app.db, c);
}

enum fb_rc tenants_metrics(struct fb_buf *b)
{
	enum fb_rc rc = fb_buf_addstr(
	        b, "# HELP firebreak_tenant_agents Enrolled agents (not revoked) of a tenant, as "
	           "this replica's agent table holds them.\n"
	           "# TYPE firebreak_tenant_agents gauge\n");
	/* a scrape does not wait long for a busy pool (as reads_signal_metrics) */
	const char *why;
	PGconn *c = db_acquire(app.db, cfg.db_wait_ms < 250 ? (int)cfg.db_wait_ms : 250, &why);
	if (!c) {
		log_warn("metrics: no tenant gauges: %s", why);
		return rc;
	}
	/* The query reads only the tenants and their groups (hundreds of rows);
	 * the agents are counted in memory per group (snapshot_group_agents, 8
	 * bytes an agent): counting them in the database is a scan of the whole
	 * agents table per scrape (about 1 s and 1 GB read at 1 M agents). */
	struct fb_err err;
	PGresult *r = db_exec(c, &err,
	                      "SELECT t.name, g.id FROM tenants t LEFT JOIN host_groups g ON "
	                      "g.tenant_id = t.id ORDER BY t.name, g.id",
	                      0, NULL);
	db_release(app.db, c);
	if (!r) {
		log_warn("metrics: no tenant gauges: %s", err.msg);
		return rc;
	}
	int n = PQntuples(r);
	int *groups = calloc((size_t)n + 1, sizeof *groups);
	int64_t *counts = calloc((size_t)n + 1, sizeof *counts);
	if (!groups || !counts) {
		log_warn("metrics: no tenant gauges: out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++)
		groups[i] = PQgetisnull(r, i, 1) ? 0 : (int)strtol(PQgetvalue(r, i, 1), NULL, 10);
	if (snapshot_group_agents(groups, (size_t)n, counts)) {
		log_warn("metrics: no tenant gauges: no serving snapshot yet");
		goto out;
	}
	/* rows come per tenant, one per group; names match NAME_RE (the tenants
	 * table checks it): no label escaping */
	for (int i = 0, j; !rc && i < n; i = j) {
		int64_t sum = 0;
		for (j = i; j < n && !strcmp(PQgetvalue(r, j, 0), PQgetvalue(r, i, 0)); j++)
			sum += counts[j];
		rc = fb_buf_printf(b, "firebreak_tenant_agents{tenant=\"%s\"} %lld\n",
		                   PQgetvalue(r, i, 0), (long long)sum);
	}
out:
	free(groups);
	free(counts);
	PQclear(r);
	return rc;
}

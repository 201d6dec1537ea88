/* Rollouts, rings and pins: the release and admin API. Every state change
 * is one transaction that also writes the audit record, an operator event
 * and, when assignments change, a new publication. */
#include "rollouts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "audit.h"
#include "config.h"
#include "controller.h"
#include "db.h"
#include "events.h"
#include "gate.h"
#include "log.h"
#include "policy.h"
#include "segments.h"
#include "snapshot.h"
#include "validate.h"

/* One manual action on one rollout: body, reason, connection, transaction
 * and the locked row. */
struct action {
	struct http_req *req;
	json_t *body;
	PGconn *c;
	int64_t id;
	char ids[24];
	const char *reason;
	char state[16];
	int ring_index;
	char content[65];
	char channel[16];
	struct fb_err err;
	int in_tx;
};

static int action_begin(struct http_req *req, struct action *a, const char *const *allowed)
{
	memset(a, 0, sizeof *a);
	a->req = req;
	if (!val_param_id_or_reply(req, "id", "rollout id", INT64_MAX, &a->id))
		return 0;
	snprintf(a->ids, sizeof a->ids, "%lld", (long long)a->id);
	a->body = http_req_json_or_reply(req);
	if (!a->body || !val_fields_or_reply(req, a->body, allowed))
		return 0;
	a->reason = val_string_or_reply(req, a->body, "reason", 1, 1024, 1);
	if (!a->reason)
		return 0;
	const char *why;
	a->c = db_acquire(app.db, (int)cfg.db_wait_ms, &why);
	if (!a->c) {
		http_unavailable(req, why);
		return 0;
	}
	if (db_cmd(a->c, &a->err, "BEGIN")) {
		http_unavailable(req, a->err.msg);
		return 0;
	}
	a->in_tx = 1;
	const char *p[] = {a->ids};
	PGresult *r = db_exec(a->c, &a->err,
	                      "SELECT state, ring_index, content_sha256, channel_id FROM rollouts "
	                      "WHERE id = $1 FOR UPDATE",
	                      1, p);
	if (!r) {
		http_unavailable(req, a->err.msg);
		return 0;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		http_error(req, 404, "not_found", "no rollout %lld", (long long)a->id);
		return 0;
	}
	snprintf(a->state, sizeof a->state, "%s", PQgetvalue(r, 0, 0));
	a->ring_index = (int)strtol(PQgetvalue(r, 0, 1), NULL, 10);
	snprintf(a->content, sizeof a->content, "%s", PQgetvalue(r, 0, 2));
	snprintf(a->channel, sizeof a->channel, "%s", PQgetvalue(r, 0, 3));
	PQclear(r);
	return 1;
}

static int action_commit(struct action *a)
{
	if (db_cmd(a->c, &a->err, "COMMIT")) {
		http_unavailable(a->req, a->err.msg);
		return 0;
	}
	a->in_tx = 0;
	return 1;
}

static void action_end(struct action *a)
{
	if (a->c) {
		if (a->in_tx)
			PQclear(PQexec(a->c, "ROLLBACK"));
		db_release(app.db, a->c);
	}
	json_decref(a->body);
}

static void reply_rollout(struct http_req *req, PGconn *c, int64_t id, unsigned status);

/* Record this caller's approval of action on (rollout or content) and
 * return how many distinct *users* have approved it and not been used (two
 * tokens of one person are one approver; an approval through the SSO proxy
 * has no token); -1 on a database error (a->err set). */
static int approvals(struct action *a, const char *action, const char *content)
{
	const struct auth *who = http_req_auth(a->req);
	if (who->user_id <= 0) {
		fb_err_set(&a->err, "an approval needs a user (the credential names none)");
		return -1;
	}
	char tid[24], uid[24];
	snprintf(tid, sizeof tid, "%lld", (long long)who->token_id);
	snprintf(uid, sizeof uid, "%lld", (long long)who->user_id);
	const char *p[] = {content ? NULL : a->ids,    content,   action,
	                   who->token_id ? tid : NULL, a->reason, uid};
	PGresult *r = db_exec(
	        a->c, &a->err,
	        "INSERT INTO approvals (rollout_id, content_sha256, action, approver, reason, "
	        "approver_user) SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS (SELECT 1 FROM "
	        "approvals WHERE rollout_id IS NOT DISTINCT FROM $1::bigint AND content_sha256 IS "
	        "NOT DISTINCT FROM $2 AND action = $3 AND approver_user = $6 AND NOT consumed)",
	        6, p);
	if (!r)
		return -1;
	PQclear(r);
	const char *p2[] = {content ? NULL : a->ids, content, action};
	r = db_exec(a->c, &a->err,
	            "SELECT count(DISTINCT approver_user) FROM approvals WHERE rollout_id IS NOT "
	            "DISTINCT FROM "
	            "$1::bigint AND content_sha256 IS NOT DISTINCT FROM $2 AND action = $3 AND NOT "
	            "consumed",
	            3, p2);
	if (!r)
		return -1;
	int n = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return n;
}

static int consume_approvals(struct action *a, const char *action, const char *content)
{
	const char *p[] = {content ? NULL : a->ids, content, action};
	PGresult *r = db_exec(
	        a->c, &a->err,
	        "UPDATE approvals SET consumed = true WHERE rollout_id IS NOT DISTINCT FROM "
	        "$1::bigint AND content_sha256 IS NOT DISTINCT FROM $2 AND action = $3 "
	        "AND NOT consumed",
	        3, p);
	if (!r)
		return 0;
	PQclear(r);
	return 1;
}

/* Reply 202 "recorded, waiting for a second approver", after committing. */
static void reply_pending(struct action *a, const char *action, int have)
{
	char obj[80];
	snprintf(obj, sizeof obj, "rollout/%lld", (long long)a->id);
	json_t *what = json_pack("{s:s}", "action", action);
	enum fb_rc rc = audit_write(a->c, http_req_auth(a->req), http_req_id(a->req), "approval",
	                            obj, NULL, what, a->reason, &a->err);
	json_decref(what);
	if (rc) {
		http_unavailable(a->req, a->err.msg);
		return;
	}
	if (!action_commit(a))
		return;
	http_reply_json(a->req, 202,
	                json_pack("{s:s,s:i,s:i,s:s}", "action", action, "approvals", have,
	                          "needed", 2, "message",
	                          "recorded; a second, different person must confirm (another "
	                          "token of the same user does not count)"));
}

/* ---- create ------------------------------------------------------------------ */

void rollouts_create(struct http_req *req)
{
	json_t *body = http_req_json_or_reply(req);
	if (!body)
		return;
	PGconn *c = NULL;
	PGresult *r = NULL;
	json_t *plan = NULL, *policies = NULL, *holdout = NULL, *gaps = NULL;
	struct fb_err err = {{0}};
	struct policy_bounds bounds = {0};
	int in_tx = 0, superseded = 0;
	static const char *const allowed[] = {"channel",       "content",   "rings",  "policy",
	                                      "ring_policies", "supersede", "reason", "emergency",
	                                      "coverage",      NULL};
	int64_t channel;
	if (!val_fields_or_reply(req, body, allowed) ||
	    !val_int_or_reply(req, body, "channel", 1, 0xffffffffLL, 1, &channel))
		goto out;
	/* Emergency: staged until a second, different approver starts it. */
	json_t *emj = json_object_get(body, "emergency");
	if (emj && !json_is_boolean(emj)) {
		http_error(req, 400, "invalid", "field 'emergency' must be a boolean");
		goto out;
	}
	int emergency = json_is_true(emj);
	/* Canary coverage: refuse (default) or warn, audited. */
	const char *coverage = val_string_or_reply(req, body, "coverage", 1, 16, 0);
	if (json_object_get(body, "coverage") &&
	    (!coverage || (strcmp(coverage, "refuse") && strcmp(coverage, "warn")))) {
		if (coverage)
			http_error(req, 400, "invalid",
			           "field 'coverage' must be \"refuse\" or "
			           "\"warn\"");
		goto out;
	}
	int coverage_warn = coverage && strcmp(coverage, "warn") == 0;
	if (emergency && !val_string_or_reply(req, body, "reason", 1, 1024, 1))
		goto out;
	const char *sha = val_sha256_or_reply(req, body, "content", 1);
	if (!sha)
		goto out;
	json_t *rings_req = json_object_get(body, "rings");
	json_t *pol = json_object_get(body, "policy"),
	       *rpol = json_object_get(body, "ring_policies");
	json_t *sup = json_object_get(body, "supersede");
	if ((pol && !json_is_object(pol)) || (rpol && !json_is_object(rpol)) ||
	    (sup && !json_is_boolean(sup)) || (rings_req && !json_is_array(rings_req))) {
		http_error(req, 400, "invalid",
		           "'policy' and 'ring_policies' must be objects, 'rings' an array of ring "
		           "names, 'supersede' a boolean");
		goto out;
	}
	const char *why;
	c = db_acquire(app.db, (int)cfg.db_wait_ms, &why);
	if (!c) {
		http_unavailable(req, why);
		goto out;
	}
	if (db_cmd(c, &err, "BEGIN"))
		goto dberr;
	in_tx = 1;
	/* Serialise rollout creation per channel. */
	char chs[16];
	snprintf(chs, sizeof chs, "%lld", (long long)channel);
	const char *pc[] = {chs, sha};
	r = db_exec(
	        c, &err,
	        "SELECT ch.ga_sha256, (SELECT version FROM content WHERE sha256 = ch.ga_sha256), "
	        "c.channel_id, c.version, c.bad, coalesce(c.preflight ->> 'outcome', '') "
	        "FROM channels ch LEFT JOIN content c ON c.sha256 = $2 WHERE ch.id = $1 FOR UPDATE "
	        "OF ch",
	        2, pc);
	if (!r)
		goto dberr;
	if (PQntuples(r) != 1) {
		http_error(req, 404, "not_found", "no channel %lld", (long long)channel);
		goto out;
	}
	if (PQgetisnull(r, 0, 2)) {
		http_error(req, 404, "not_found", "no content %s (upload it first)", sha);
		goto out;
	}
	if (strtoll(PQgetvalue(r, 0, 2), NULL, 10) != channel) {
		http_error(req, 422, "wrong_channel", "content %s belongs to channel %s, not %lld",
		           sha, PQgetvalue(r, 0, 2), (long long)channel);
		goto out;
	}
	if (strcmp(PQgetvalue(r, 0, 4), "t") == 0) {
		http_error(req, 409, "content_bad",
		           "content %s is marked bad; clearing the mark needs two approvers", sha);
		goto out;
	}
	if (strcmp(PQgetvalue(r, 0, 5), "ok") != 0) {
		http_error(req, 409, "no_preflight", "content %s has not passed the preflight",
		           sha);
		goto out;
	}
	char prev[65] = "";
	int has_prev = !PQgetisnull(r, 0, 0);
	if (has_prev)
		snprintf(prev, sizeof prev, "%s", PQgetvalue(r, 0, 0));
	if (has_prev && strcmp(prev, sha) == 0) {
		http_error(req, 409, "conflict", "content %s is already GA on channel %lld", sha,
		           (long long)channel);
		goto out;
	}
	if (has_prev &&
	    strtoll(PQgetvalue(r, 0, 3), NULL, 10) <= strtoll(PQgetvalue(r, 0, 1), NULL, 10)) {
		http_error(req, 409, "downgrade",
		           "content version %s is not newer than GA version %s; roll back with "
		           "revert instead",
		           PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 1));
		goto out;
	}
	PQclear(r);
	r = NULL;

	/* The ring plan: all rings, or the named ones in ring order; ring 0 is
	 * never skipped. */
	r = db_exec(c, &err, "SELECT name FROM rings ORDER BY position", 0, NULL);
	if (!r)
		goto dberr;
	plan = json_array();
	for (int i = 0; i < PQntuples(r); i++) {
		const char *name = PQgetvalue(r, i, 0);
		int want = !rings_req;
		for (size_t k = 0; rings_req && k < json_array_size(rings_req); k++)
			if (json_is_string(json_array_get(rings_req, k)) &&
			    strcmp(json_string_value(json_array_get(rings_req, k)), name) == 0)
				want = 1;
		if (i == 0 && !want) {
			http_error(
			        req, 422, "ring0_required",
			        "every rollout starts in the first ring ('%s'); no path skips it",
			        name);
			goto out;
		}
		if (want)
			json_array_append_new(plan, json_string(name));
	}
	size_t nplan = json_array_size(plan);
	if (rings_req && json_array_size(rings_req) != nplan) {
		http_error(req, 422, "unknown_ring", "'rings' names a ring that does not exist");
		goto out;
	}
	/* Every ring's final policy must lie within the admin bounds in force. */
	if (policy_bounds_current(c, &bounds, &err))
		goto dberr;
	policies = json_array();
	holdout = json_array();
	int64_t rsizes[SNAP_MAX_RINGS];
	char rnames[SNAP_MAX_RINGS][40];
	int nr = snapshot_ring_sizes(rsizes, rnames, SNAP_MAX_RINGS);
	struct gate_policy first_policy;
	gate_policy_default(0, (int)nplan, &first_policy);
	for (size_t i = 0; i < nplan; i++) {
		struct gate_policy gp;
		gate_policy_default((int)i, (int)nplan, &gp);
		if (pol && gate_policy_apply_json(&gp, pol, &err)) {
			http_error(req, 422, "bad_policy", "policy: %s", err.msg);
			goto out;
		}
		json_t *rp =
		        rpol ? json_object_get(rpol, json_string_value(json_array_get(plan, i)))
		             : NULL;
		if (rp && gate_policy_apply_json(&gp, rp, &err)) {
			http_error(req, 422, "bad_policy", "ring_policies.%s: %s",
			           json_string_value(json_array_get(plan, i)), err.msg);
			goto out;
		}
		json_t *gj = gate_policy_to_json(&gp);
		json_array_append_new(policies, gj);
		/* The holdout of the ring, fixed now from its size now. */
		int64_t size = 0;
		for (int k = 0; k < nr; k++)
			if (strcmp(rnames[k], json_string_value(json_array_get(plan, i))) == 0)
				size = rsizes[k];
		json_array_append_new(holdout, json_real(gate_holdout_share(&gp, size)));
		if (i == 0)
			first_policy = gp;
		if (!policy_check_or_reply(req, &bounds, json_string_value(json_array_get(plan, i)),
		                           gj, pol, rp, emergency))
			goto out;
	}
	if (rpol) {
		const char *k;
		json_t *v;
		json_object_foreach(rpol, k, v)
		{
			int found = 0;
			for (size_t i = 0; i < nplan; i++)
				if (strcmp(json_string_value(json_array_get(plan, i)), k) == 0)
					found = 1;
			if (!found) {
				http_error(
				        req, 422, "unknown_ring",
				        "ring_policies names ring '%s', which is not in the plan",
				        k);
				goto out;
			}
		}
	}
	PQclear(r);
	r = NULL;

	/* Every platform that later rings hold enough of to judge must meet
	 * the file in ring 0 first. */
	if (nplan > 1 && first_policy.min_segment_canaries > 0) {
		if (segments_coverage(c, plan, first_policy.min_segment_canaries,
		                      first_policy.min_segment_agents, &gaps, &err))
			goto dberr;
		if (json_array_size(gaps) > 0 && !coverage_warn) {
			json_t *g = json_array_get(gaps, 0);
			http_error(
			        req, 422, "canary_coverage",
			        "ring '%s' holds %lld agents of %s %s, which later rings hold %lld "
			        "of (at least %lld needed: min_segment_canaries); %zu segment(s) "
			        "uncovered; add canaries or pass \"coverage\": \"warn\"",
			        json_string_value(json_array_get(plan, 0)),
			        (long long)json_integer_value(json_object_get(g, "canaries")),
			        json_string_value(json_object_get(g, "dimension")),
			        json_string_value(json_object_get(g, "value")),
			        (long long)json_integer_value(json_object_get(g, "later")),
			        (long long)first_policy.min_segment_canaries,
			        json_array_size(gaps));
			goto out;
		}
	}

	/* At most one active rollout per channel; supersede only on request. */
	r = db_exec(c, &err,
	            "SELECT id FROM rollouts WHERE channel_id = $1 AND state IN ('staged', "
	            "'rolling', 'paused', 'watching')",
	            1, pc);
	if (!r)
		goto dberr;
	if (PQntuples(r) == 1) {
		char old[24];
		snprintf(old, sizeof old, "%s", PQgetvalue(r, 0, 0));
		if (!json_is_true(sup)) {
			http_error(req, 409, "active_rollout",
			           "rollout %s is active on channel %lld; pass \"supersede\": true "
			           "to replace it",
			           old, (long long)channel);
			goto out;
		}
		PQclear(r);
		const char *po[] = {old};
		r = db_exec(c, &err,
		            "UPDATE rollouts SET state = 'superseded', updated_at = now(), "
		            "finished_at = now() "
		            "WHERE id = $1",
		            1, po);
		if (!r)
			goto dberr;
		char obj[40];
		snprintf(obj, sizeof obj, "rollout/%s", old);
		if (audit_write(c, http_req_auth(req), http_req_id(req), "rollout.supersede", obj,
		                NULL, NULL, NULL, &err))
			goto dberr;
		superseded = 1;
	}
	PQclear(r);
	char *plan_s = json_dumps(plan, JSON_COMPACT), *pol_s = json_dumps(policies, JSON_COMPACT);
	char *hold_s = json_dumps(holdout, JSON_COMPACT);
	char tid[24], bv[24];
	snprintf(tid, sizeof tid, "%lld", (long long)http_req_auth(req)->token_id);
	snprintf(bv, sizeof bv, "%lld", (long long)bounds.version);
	const char *state = emergency ? "staged" : "rolling";
	const char *pi[] = {chs,
	                    sha,
	                    has_prev ? prev : NULL,
	                    plan_s,
	                    pol_s,
	                    http_req_auth(req)->token_id ? tid : NULL,
	                    state,
	                    emergency ? "t" : "f",
	                    bounds.version ? bv : NULL,
	                    hold_s};
	/* A staged rollout has not started: its times are set when it does. */
	r = db_exec(c, &err,
	            "INSERT INTO rollouts (channel_id, content_sha256, previous_sha256, state, "
	            "ring_index, ring_plan, policy, created_by, emergency, policy_bounds_version, "
	            "started_at, ring_started_at, holdout) VALUES ($1, $2, $3, $7, 0, $4::jsonb, "
	            "$5::jsonb, $6, $8, $9, CASE WHEN $7 = 'rolling' THEN now() END, CASE WHEN $7 "
	            "= 'rolling' THEN now() END, $10::jsonb) RETURNING id",
	            10, pi);
	free(plan_s);
	free(pol_s);
	free(hold_s);
	if (!r)
		goto dberr;
	int64_t id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	r = NULL;
	char obj[40];
	snprintf(obj, sizeof obj, "rollout/%lld", (long long)id);
	json_t *after = json_pack("{s:I,s:s,s:O,s:s,s:b,s:O}", "channel", (json_int_t)channel,
	                          "content", sha, "rings", plan, "state", state, "emergency",
	                          emergency, "policy", policies);
	if (bounds.version)
		json_object_set_new(after, "policy_bounds", json_integer(bounds.version));
	json_object_set(after, "holdout", holdout);
	if (json_array_size(gaps) > 0)
		json_object_set(after, "coverage_warnings", gaps);
	const char *reason = json_string_value(json_object_get(body, "reason"));
	enum fb_rc rc = audit_write(c, http_req_auth(req), http_req_id(req),
	                            emergency ? "rollout.stage" : "rollout.start", obj, NULL, after,
	                            reason, &err);
	if (!rc)
		rc = events_emit(c, emergency ? "rollout.staged" : "rollout.started", id, after,
		                 &err);
	json_decref(after);
	if (!rc && json_array_size(gaps) > 0) {
		json_t *w = json_pack("{s:O}", "uncovered", gaps);
		rc = events_emit(c, "rollout.coverage_warning", id, w, &err);
		json_decref(w);
	}
	if (!rc && emergency) {
		/* the creator is the first of the two approvers */
		struct action a = {.req = req, .c = c, .id = id, .reason = reason};
		snprintf(a.ids, sizeof a.ids, "%lld", (long long)id);
		if (approvals(&a, "emergency-start", NULL) != 1) {
			err = a.err;
			rc = FB_EDB;
		}
	}
	/* A staged rollout serves nothing: publish only when assignments change. */
	if (!rc && (!emergency || superseded))
		rc = snapshot_publish(c, emergency ? "rollout superseded" : "rollout started",
		                      &err);
	if (rc || db_cmd(c, &err, "COMMIT"))
		goto dberr;
	in_tx = 0;
	log_info("rollout %lld %s: channel %lld content %s", (long long)id,
	         emergency ? "staged (emergency, waiting for a second approver)" : "started",
	         (long long)channel, sha);
	reply_rollout(req, c, id, 201);
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
	policy_bounds_cleanup(&bounds);
	json_decref(plan);
	json_decref(policies);
	json_decref(holdout);
	json_decref(gaps);
	json_decref(body);
}

/* ---- read ----------------------------------------------------------------------- */

static const char *ROLLOUT_JSON =
        "json_build_object('id', r.id, 'channel', r.channel_id, 'content', r.content_sha256, "
        "'version', (SELECT version FROM content WHERE sha256 = r.content_sha256), "
        "'previous', r.previous_sha256, 'state', r.state, 'state_reason', r.state_reason, "
        "'ring_index', r.ring_index, 'ring', r.ring_plan ->> r.ring_index, 'rings', r.ring_plan, "
        "'policy', r.policy, 'created', extract(epoch FROM r.created_at)::bigint, "
        "'started', extract(epoch FROM r.started_at)::bigint, "
        "'ring_started', extract(epoch FROM r.ring_started_at)::bigint, "
        "'finished', extract(epoch FROM r.finished_at)::bigint, "
        "'content_bad', (SELECT bad FROM content WHERE sha256 = r.content_sha256), "
        "'emergency', r.emergency, 'policy_bounds', r.policy_bounds_version, "
        "'holdout', r.holdout, 'watch_started', extract(epoch FROM r.watch_started_at)::bigint)";

static void reply_rollout(struct http_req *req, PGconn *c, int64_t id, unsigned status)
{
	char sql[4096], ids[24];
	struct fb_err err;
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	snprintf(sql, sizeof sql,
	         "SELECT %s::text, (SELECT coalesce(json_agg(e ORDER BY e.id DESC), '[]') FROM "
	         "(SELECT id, ring_index, ring_name AS ring, decision, reason, inputs, "
	         "extract(epoch FROM created_at)::bigint AS at FROM gate_evaluations "
	         "WHERE rollout_id = r.id ORDER BY id DESC LIMIT 20) e)::text FROM rollouts r "
	         "WHERE r.id = $1",
	         ROLLOUT_JSON);
	const char *p[] = {ids};
	PGresult *r = db_exec(c, &err, sql, 1, p);
	if (!r) {
		http_unavailable(req, err.msg);
		return;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		http_error(req, 404, "not_found", "no rollout %lld", (long long)id);
		return;
	}
	json_t *o = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	json_object_set_new(o, "evaluations", json_loads(PQgetvalue(r, 0, 1), 0, NULL));
	PQclear(r);
	/* The holdout now, per ring of the plan, from the serving snapshot. */
	int64_t sizes[SNAP_MAX_RINGS], held[SNAP_MAX_RINGS];
	char names[SNAP_MAX_RINGS][40];
	int nr = snapshot_holdout_counts(id, sizes, held, names, SNAP_MAX_RINGS);
	json_t *ha = json_array(), *plan = json_object_get(o, "rings");
	for (size_t k = 0; k < json_array_size(plan); k++)
		for (int i = 0; i < nr; i++)
			if (strcmp(names[i], json_string_value(json_array_get(plan, k))) == 0)
				json_array_append_new(ha,
				                      json_pack("{s:s, s:I, s:I}", "ring", names[i],
				                                "agents", (json_int_t)sizes[i],
				                                "held", (json_int_t)held[i]));
	json_object_set_new(o, "holdout_agents", ha);
	http_reply_json(req, status, o);
}

void rollouts_show(struct http_req *req)
{
	int64_t id;
	if (!val_param_id_or_reply(req, "id", "rollout id", INT64_MAX, &id))
		return;
	const char *why;
	PGconn *c = db_acquire(app.db, (int)cfg.db_wait_ms, &why);
	if (!c) {
		http_unavailable(req, why);
		return;
	}
	reply_rollout(req, c, id, 200);
	db_release(app.db, c);
}

/* GET /v1/rollouts?state=&since=T&limit=N: newest first; since keeps the
 * active ones and those created or finished at or after T (Unix seconds). */
void rollouts_list(struct http_req *req)
{
	const char *state = http_req_query(req, "state"), *since = http_req_query(req, "since");
	const char *lim = http_req_query(req, "limit");
	static const char *states[] = {"staged", "rolling",  "paused",     "watching", "completed",
	                               "halted", "reverted", "superseded", "active"};
	int ok = !state;
	for (size_t i = 0; state && i < sizeof states / sizeof states[0]; i++)
		if (strcmp(state, states[i]) == 0)
			ok = 1;
	if (!ok) {
		http_error(req, 400, "invalid",
		           "state must be one of staged, rolling, paused, watching, completed, "
		           "halted, reverted, superseded, active");
		return;
	}
	int64_t limit = 500, t;
	if ((lim && fb_parse_i64(lim, 1, 10000, &limit)) ||
	    (since && fb_parse_i64(since, 0, INT64_MAX / 2, &t))) {
		http_error(req, 400, "invalid", "limit must be 1..10000 and since a Unix time");
		return;
	}
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	char sql[4096], ls[24];
	snprintf(ls, sizeof ls, "%lld", (long long)limit);
	snprintf(sql, sizeof sql,
	         "SELECT coalesce(json_agg(%s ORDER BY r.id DESC), '[]')::text FROM (SELECT * FROM "
	         "rollouts r WHERE ($1::text IS NULL OR r.state = $1 OR ($1 = 'active' AND r.state "
	         "IN "
	         "('staged', 'rolling', 'paused', 'watching'))) AND ($2::bigint IS NULL OR r.state "
	         "IN "
	         "('staged', "
	         "'rolling', 'paused', 'watching') OR r.created_at >= to_timestamp($2) OR "
	         "r.finished_at >= "
	         "to_timestamp($2)) ORDER BY r.id DESC LIMIT $3) r",
	         ROLLOUT_JSON);
	struct fb_err err;
	const char *p[] = {state, since, ls};
	PGresult *r = db_exec(c, &err, sql, 3, p);
	db_release(app.db, c);
	if (!r) {
		http_unavailable(req, err.msg);
		return;
	}
	json_t *arr = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	PQclear(r);
	http_reply_json(req, 200, json_pack("{s:o}", "rollouts", arr));
}

/* ---- actions -------------------------------------------------------------------- */

static const char *const REASON_ONLY[] = {"reason", NULL};

void rollouts_halt(struct http_req *req)
{
	struct action a;
	if (!action_begin(req, &a, REASON_ONLY))
		goto out;
	if (strcmp(a.state, "halted") == 0 || strcmp(a.state, "reverted") == 0) {
		reply_rollout(req, a.c, a.id, 200); /* idempotent */
		goto out;
	}
	if (strcmp(a.state, "rolling") && strcmp(a.state, "paused") && strcmp(a.state, "staged") &&
	    strcmp(a.state, "watching")) {
		http_error(req, 409, "conflict",
		           "rollout %lld is %s; only an active rollout can be halted (use revert "
		           "for a completed one)",
		           (long long)a.id, a.state);
		goto out;
	}
	char reason[1200];
	snprintf(reason, sizeof reason, "manual halt by %s: %s", http_req_auth(req)->name,
	         a.reason);
	if (controller_halt_tx(a.c, a.id, http_req_auth(req), http_req_id(req), reason, &a.err)) {
		http_unavailable(req, a.err.msg);
		goto out;
	}
	if (action_commit(&a))
		reply_rollout(req, a.c, a.id, 200);
out:
	action_end(&a);
}

static int set_state(struct action *a, const char *from, const char *to, const char *audit_action,
                     int publish)
{
	const char *p[] = {a->ids, to, a->reason, from};
	PGresult *r =
	        db_exec(a->c, &a->err,
	                "UPDATE rollouts SET state = $2, state_reason = $3, updated_at = now() "
	                "WHERE id = $1 AND state = $4",
	                4, p);
	if (!r)
		return 0;
	PQclear(r);
	char obj[40];
	snprintf(obj, sizeof obj, "rollout/%lld", (long long)a->id);
	json_t *before = json_pack("{s:s}", "state", from),
	       *after = json_pack("{s:s}", "state", to);
	enum fb_rc rc = audit_write(a->c, http_req_auth(a->req), http_req_id(a->req), audit_action,
	                            obj, before, after, a->reason, &a->err);
	char evtype[64];
	snprintf(evtype, sizeof evtype, "%s", audit_action);
	if (!rc)
		rc = events_emit(a->c, evtype, a->id, after, &a->err);
	json_decref(before);
	json_decref(after);
	if (!rc && publish)
		rc = snapshot_publish(a->c, audit_action, &a->err);
	return rc == FB_OK;
}

void rollouts_pause(struct http_req *req)
{
	struct action a;
	if (!action_begin(req, &a, REASON_ONLY))
		goto out;
	if (strcmp(a.state, "paused") == 0) {
		reply_rollout(req, a.c, a.id, 200);
		goto out;
	}
	if (strcmp(a.state, "rolling")) {
		http_error(req, 409, "conflict",
		           "rollout %lld is %s; only a rolling rollout can be paused",
		           (long long)a.id, a.state);
		goto out;
	}
	if (!set_state(&a, "rolling", "paused", "rollout.pause", 0)) {
		http_unavailable(req, a.err.msg);
		goto out;
	}
	if (action_commit(&a))
		reply_rollout(req, a.c, a.id, 200);
out:
	action_end(&a);
}

void rollouts_resume(struct http_req *req)
{
	struct action a;
	if (!action_begin(req, &a, REASON_ONLY))
		goto out;
	if (strcmp(a.state, "rolling") == 0) {
		reply_rollout(req, a.c, a.id, 200);
		goto out;
	}
	if (strcmp(a.state, "paused") == 0) {
		if (!set_state(&a, "paused", "rolling", "rollout.resume", 0)) {
			http_unavailable(req, a.err.msg);
			goto out;
		}
		if (action_commit(&a))
			reply_rollout(req, a.c, a.id, 200);
		goto out;
	}
	if (strcmp(a.state, "halted") && strcmp(a.state, "reverted")) {
		http_error(req, 409, "conflict", "rollout %lld is %s and cannot be resumed",
		           (long long)a.id, a.state);
		goto out;
	}
	/* Slow to restart: two distinct approvers; the rollout starts again
	 * from the first ring and the content's bad mark is cleared. */
	int have = approvals(&a, "resume", NULL);
	if (have < 0) {
		http_unavailable(req, a.err.msg);
		goto out;
	}
	if (have < 2) {
		reply_pending(&a, "resume", have);
		goto out;
	}
	const char *p[] = {a.ids, a.channel};
	PGresult *r = db_exec(a.c, &a.err,
	                      "SELECT 1 FROM rollouts WHERE channel_id = $2 AND id <> $1 "
	                      "AND state IN ('staged', 'rolling', 'paused', 'watching')",
	                      2, p);
	if (!r)
		goto dberr;
	int busy = PQntuples(r) > 0;
	PQclear(r);
	if (busy) {
		http_error(req, 409, "active_rollout", "another rollout is active on channel %s",
		           a.channel);
		goto out;
	}
	const char *pc[] = {a.content};
	r = db_exec(a.c, &a.err,
	            "UPDATE content SET bad = false, bad_reason = NULL, bad_at = NULL WHERE sha256 "
	            "= $1",
	            1, pc);
	if (!r)
		goto dberr;
	PQclear(r);
	const char *from = strcmp(a.state, "halted") == 0 ? "halted" : "reverted";
	r = db_exec(
	        a.c, &a.err,
	        "UPDATE rollouts SET ring_index = 0, ring_started_at = now(), started_at = now(), "
	        "finished_at = NULL WHERE id = $1",
	        1, p);
	if (!r)
		goto dberr;
	PQclear(r);
	if (!consume_approvals(&a, "resume", NULL) ||
	    !set_state(&a, from, "rolling", "rollout.resume", 1))
		goto dberr;
	if (action_commit(&a))
		reply_rollout(req, a.c, a.id, 200);
	goto out;
dberr:
	http_unavailable(req, a.err.msg);
out:
	action_end(&a);
}

/* Start a staged (emergency) rollout: the creator approved it by creating
 * it; a second, different release or admin user approving starts it at
 * ring 0 in this transaction. */
void rollouts_approve(struct http_req *req)
{
	struct action a;
	PGresult *r = NULL;
	json_t *after = NULL;
	if (!action_begin(req, &a, REASON_ONLY))
		goto out;
	if (strcmp(a.state, "staged")) {
		http_error(req, 409, "conflict",
		           "rollout %lld is %s; only a staged emergency rollout waits for approval",
		           (long long)a.id, a.state);
		goto out;
	}
	int have = approvals(&a, "emergency-start", NULL);
	if (have < 0)
		goto dberr;
	if (have < 2) {
		reply_pending(&a, "emergency-start", have);
		goto out;
	}
	char reason[1200];
	snprintf(reason, sizeof reason, "emergency start approved by %s: %s",
	         http_req_auth(req)->name, a.reason);
	const char *p[] = {a.ids, reason};
	r = db_exec(a.c, &a.err,
	            "UPDATE rollouts SET state = 'rolling', state_reason = $2, ring_index = 0, "
	            "started_at = now(), ring_started_at = now(), updated_at = now() "
	            "WHERE id = $1 AND state = 'staged' RETURNING ring_plan::text, emergency",
	            2, p);
	if (!r)
		goto dberr;
	if (PQntuples(r) != 1) {
		fb_err_set(&a.err, "rollout %lld left the staged state", (long long)a.id);
		goto dberr;
	}
	json_t *plan = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	after = json_pack("{s:s,s:s,s:o,s:s,s:b,s:i}", "channel", a.channel, "content", a.content,
	                  "rings", plan ? plan : json_array(), "state", "rolling", "emergency",
	                  strcmp(PQgetvalue(r, 0, 1), "t") == 0, "approvals", have);
	PQclear(r);
	r = NULL;
	char obj[40];
	snprintf(obj, sizeof obj, "rollout/%lld", (long long)a.id);
	json_t *before = json_pack("{s:s}", "state", "staged");
	enum fb_rc rc = audit_write(a.c, http_req_auth(req), http_req_id(req), "rollout.approve",
	                            obj, before, after, a.reason, &a.err);
	json_decref(before);
	if (rc || !consume_approvals(&a, "emergency-start", NULL) ||
	    events_emit(a.c, "rollout.started", a.id, after, &a.err) ||
	    snapshot_publish(a.c, "emergency rollout started", &a.err))
		goto dberr;
	if (!action_commit(&a))
		goto out;
	log_info("rollout %lld started: emergency, second approver %s", (long long)a.id,
	         http_req_auth(req)->name);
	reply_rollout(req, a.c, a.id, 200);
	goto out;
dberr:
	http_unavailable(req, a.err.msg);
out:
	PQclear(r);
	json_decref(after);
	action_end(&a);
}

void rollouts_promote(struct http_req *req)
{
	static const char *const allowed[] = {"reason", "force", NULL};
	struct action a;
	if (!action_begin(req, &a, allowed))
		goto out;
	json_t *force = json_object_get(a.body, "force");
	if (force && !json_is_boolean(force)) {
		http_error(req, 400, "invalid", "field 'force' must be a boolean");
		goto out;
	}
	int watching = strcmp(a.state, "watching") == 0;
	if (strcmp(a.state, "rolling") && !watching) {
		http_error(req, 409, "conflict",
		           "rollout %lld is %s; only a rolling or watching rollout can be promoted",
		           (long long)a.id, a.state);
		goto out;
	}
	struct gate_policy pol;
	struct gate_inputs in;
	struct gate_result res;
	if (controller_evaluate(a.c, a.id, &pol, &in, &res, NULL, NULL, &a.err)) {
		http_unavailable(req, a.err.msg);
		goto out;
	}
	if (watching && res.decision != GATE_HALT) {
		/* The watch only ends by itself; ending it early is forcing. */
		char why[sizeof res.reason];
		snprintf(why, sizeof why,
		         "WAIT: the rollout is watching for latent failures until watch_s (%llds) "
		         "has passed. %s",
		         (long long)pol.watch_s, res.reason);
		snprintf(res.reason, sizeof res.reason, "%s", why);
		res.decision = GATE_WAIT;
	}
	if (res.decision != GATE_PROMOTE) {
		if (!json_is_true(force)) {
			http_error(req, 409, "gate_refuses",
			           "the gate does not allow a promotion now: %s (a forced "
			           "promotion needs two release approvers: \"force\": true)",
			           res.reason);
			goto out;
		}
		if (!(http_req_auth(req)->roles & ROLE_RELEASE)) {
			http_error(req, 403, "forbidden",
			           "only release users may force a promotion");
			goto out;
		}
		int have = approvals(&a, "force-promote", NULL);
		if (have < 0) {
			http_unavailable(req, a.err.msg);
			goto out;
		}
		if (have < 2) {
			reply_pending(&a, "force-promote", have);
			goto out;
		}
		if (!consume_approvals(&a, "force-promote", NULL)) {
			http_unavailable(req, a.err.msg);
			goto out;
		}
	}
	char reason[1400];
	snprintf(reason, sizeof reason, "%s promotion by %s: %s (gate: %s)",
	         res.decision == GATE_PROMOTE ? "manual" : "forced", http_req_auth(req)->name,
	         a.reason, res.reason);
	if (controller_promote_tx(a.c, a.id, http_req_auth(req), http_req_id(req), reason,
	                          &a.err)) {
		http_unavailable(req, a.err.msg);
		goto out;
	}
	if (action_commit(&a))
		reply_rollout(req, a.c, a.id, 200);
out:
	action_end(&a);
}

void rollouts_revert(struct http_req *req)
{
	struct action a;
	if (!action_begin(req, &a, REASON_ONLY))
		goto out;
	if (strcmp(a.state, "reverted") == 0 || strcmp(a.state, "halted") == 0) {
		reply_rollout(req, a.c, a.id, 200);
		goto out;
	}
	char reason[1200];
	snprintf(reason, sizeof reason, "revert by %s: %s", http_req_auth(req)->name, a.reason);
	if (strcmp(a.state, "completed") == 0) {
		/* GA goes back to the previous content, which must still be GA's
		 * predecessor (no newer rollout completed since). */
		const char *p[] = {a.ids, reason};
		PGresult *r =
		        db_exec(a.c, &a.err,
		                "WITH ro AS (SELECT channel_id, content_sha256, previous_sha256 "
		                "FROM rollouts "
		                " WHERE id = $1), ch AS (UPDATE channels c SET ga_sha256 = "
		                "ro.previous_sha256, "
		                " prev_ga_sha256 = NULL FROM ro WHERE c.id = ro.channel_id "
		                " AND c.ga_sha256 = ro.content_sha256 RETURNING c.id) "
		                "UPDATE content SET bad = true, bad_reason = $2, bad_at = now() "
		                "WHERE sha256 = (SELECT content_sha256 FROM ro) AND EXISTS (SELECT "
		                "1 FROM ch) "
		                "RETURNING sha256",
		                2, p);
		if (!r) {
			http_unavailable(req, a.err.msg);
			goto out;
		}
		int done = PQntuples(r) == 1;
		PQclear(r);
		if (!done) {
			http_error(req, 409, "conflict",
			           "rollout %lld's content is no longer GA; revert the newer "
			           "rollout instead",
			           (long long)a.id);
			goto out;
		}
		a.reason = reason;
		if (!set_state(&a, "completed", "reverted", "rollout.reverted", 1)) {
			http_unavailable(req, a.err.msg);
			goto out;
		}
	} else if (strcmp(a.state, "rolling") == 0 || strcmp(a.state, "paused") == 0 ||
	           strcmp(a.state, "staged") == 0 || strcmp(a.state, "watching") == 0) {
		if (controller_halt_tx(a.c, a.id, http_req_auth(req), http_req_id(req), reason,
		                       &a.err)) {
			http_unavailable(req, a.err.msg);
			goto out;
		}
	} else {
		http_error(req, 409, "conflict", "rollout %lld is %s and cannot be reverted",
		           (long long)a.id, a.state);
		goto out;
	}
	if (action_commit(&a))
		reply_rollout(req, a.c, a.id, 200);
out:
	action_end(&a);
}

void rollouts_clear_bad(struct http_req *req)
{
	const char *sha = http_req_param(req, "sha256");
	json_t *body = NULL;
	PGconn *c = NULL;
	struct action a;
	memset(&a, 0, sizeof a);
	a.req = req;
	if (!fb_is_sha256_hex(sha)) {
		http_error(req, 400, "invalid",
		           "content is named by its sha256 (64 lower-case hex)");
		return;
	}
	body = http_req_json_or_reply(req);
	if (!body || !val_fields_or_reply(req, body, REASON_ONLY))
		goto out;
	a.reason = val_string_or_reply(req, body, "reason", 1, 1024, 1);
	if (!a.reason)
		goto out;
	const char *why;
	c = a.c = db_acquire(app.db, (int)cfg.db_wait_ms, &why);
	if (!c) {
		http_unavailable(req, why);
		goto out;
	}
	if (db_cmd(c, &a.err, "BEGIN"))
		goto dberr;
	a.in_tx = 1;
	const char *p[] = {sha};
	PGresult *r =
	        db_exec(c, &a.err, "SELECT bad FROM content WHERE sha256 = $1 FOR UPDATE", 1, p);
	if (!r)
		goto dberr;
	if (PQntuples(r) != 1) {
		PQclear(r);
		http_error(req, 404, "not_found", "no content %s", sha);
		goto out;
	}
	int bad = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!bad) {
		http_reply_json(req, 200, json_pack("{s:s,s:b}", "sha256", sha, "bad", 0));
		goto out;
	}
	int have = approvals(&a, "clear-bad", sha);
	if (have < 0)
		goto dberr;
	if (have < 2) {
		char obj[80];
		snprintf(obj, sizeof obj, "content/%s", sha);
		if (audit_write(c, http_req_auth(req), http_req_id(req), "approval", obj, NULL,
		                NULL, a.reason, &a.err) ||
		    db_cmd(c, &a.err, "COMMIT"))
			goto dberr;
		a.in_tx = 0;
		http_reply_json(req, 202,
		                json_pack("{s:s,s:i,s:i,s:s}", "action", "clear-bad", "approvals",
		                          have, "needed", 2, "message",
		                          "recorded; a second, different person must confirm "
		                          "(another token of the same user does not count)"));
		goto out;
	}
	r = db_exec(c, &a.err,
	            "UPDATE content SET bad = false, bad_reason = NULL, bad_at = NULL WHERE sha256 "
	            "= $1",
	            1, p);
	if (!r)
		goto dberr;
	PQclear(r);
	char obj[80];
	snprintf(obj, sizeof obj, "content/%s", sha);
	if (!consume_approvals(&a, "clear-bad", sha) ||
	    audit_write(c, http_req_auth(req), http_req_id(req), "content.clear_bad", obj, NULL,
	                NULL, a.reason, &a.err) ||
	    db_cmd(c, &a.err, "COMMIT"))
		goto dberr;
	a.in_tx = 0;
	http_reply_json(req, 200, json_pack("{s:s,s:b}", "sha256", sha, "bad", 0));
	goto out;
dberr:
	http_unavailable(req, a.err.msg);
out:
	if (c) {
		if (a.in_tx)
			PQclear(PQexec(c, "ROLLBACK"));
		db_release(app.db, c);
	}
	json_decref(body);
}

/* The rollout controller: leader election, gate evaluations, promotions
 * and halts, each in one transaction. */
#include "controller.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "audit.h"
#include "config.h"
#include "db.h"
#include "events.h"
#include "lease.h"
#include "log.h"
#include "snapshot.h"

static pthread_t g_thread;
static int g_started;
static volatile int g_stop;
static char g_whoami[96];
/* fb_now_ms() when this replica's controller reached the database again
 * after losing it (a database restart or fail-over), 0 before any such
 * outage (atomic): heartbeats could not be written meanwhile, so silence is
 * not counted for a silence timeout after it. */
static int64_t g_db_back_ms;

int controller_is_leader(void)
{
	return lease_is_held();
}

static const struct auth controller_actor = {
        .authenticated = 0, .role = 0, .token_id = 0, .agent_id = 0, .name = "controller"};

/* The policy of ring k stored with the rollout (a JSON array aligned with
 * the ring plan; each entry holds every field). */
static enum fb_rc ring_policy(const char *policy_json, int k, int nrings, struct gate_policy *p,
                              struct fb_err *err)
{
	gate_policy_default(k, nrings, p);
	json_t *arr = json_loads(policy_json, 0, NULL);
	enum fb_rc rc = gate_policy_apply_json(p, json_array_get(arr, (size_t)k), err);
	json_decref(arr);
	return rc;
}

static int64_t col_i64(PGresult *r, int row, int col)
{
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

enum fb_rc controller_evaluate(PGconn *c, int64_t id, struct gate_policy *policy,
                               struct gate_inputs *in, struct gate_result *res, struct fb_err *err)
{
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	const char *p1[] = {ids};
	PGresult *r = db_exec(c, err,
	                      "SELECT channel_id, content_sha256, previous_sha256, ring_index, "
	                      "jsonb_array_length(ring_plan), policy::text, "
	                      "extract(epoch FROM now() - ring_started_at)::bigint, "
	                      "started_at::text, "
	                      "(SELECT count(*) FROM gate_evaluations g WHERE g.rollout_id = r.id "
	                      " AND g.ring_index = r.ring_index), "
	                      "extract(epoch FROM now() - greatest(ring_started_at, "
	                      "updated_at))::bigint "
	                      "FROM rollouts r WHERE id = $1",
	                      1, p1);
	if (!r)
		return FB_EDB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		fb_err_set(err, "no rollout %lld", (long long)id);
		return FB_ENOTFOUND;
	}
	char channel[16], content[65], previous[65], started[64], timeout[24];
	snprintf(channel, sizeof channel, "%s", PQgetvalue(r, 0, 0));
	snprintf(content, sizeof content, "%s", PQgetvalue(r, 0, 1));
	snprintf(previous, sizeof previous, "%s", PQgetvalue(r, 0, 2));
	int prev_null = PQgetisnull(r, 0, 2);
	int k = (int)col_i64(r, 0, 3), nrings = (int)col_i64(r, 0, 4);
	enum fb_rc rc = ring_policy(PQgetvalue(r, 0, 5), k, nrings, policy, err);
	memset(in, 0, sizeof *in);
	in->bake_elapsed_s = col_i64(r, 0, 6);
	snprintf(started, sizeof started, "%s", PQgetvalue(r, 0, 7));
	in->looks = (int)col_i64(r, 0, 8);
	/* Every state change sets updated_at, so while rolling it is when the
	 * rollout entered this ring or was last resumed. */
	in->wait_elapsed_s = col_i64(r, 0, 9);
	PQclear(r);
	if (rc)
		return rc;
	snprintf(timeout, sizeof timeout, "%lld", (long long)policy->silence_timeout_s);
	int64_t grace = cfg.restart_grace_s >= 0 ? cfg.restart_grace_s : policy->silence_timeout_s;
	in->silence_counted = fb_now_ms() - app.started_ms >= grace * 1000 &&
	                      fb_now_ms() - __atomic_load_n(&g_db_back_ms, __ATOMIC_RELAXED) >=
	                              policy->silence_timeout_s * 1000;

	const char *p2[] = {content, prev_null ? NULL : previous, channel, started, timeout};
	r = db_exec(
	        c, err,
	        "WITH applied AS (SELECT agent_id, min(received_at) AS at FROM events "
	        "  WHERE kind = 'applied' AND content_sha256 = $1 AND received_at >= "
	        "$4::timestamptz "
	        "  GROUP BY agent_id), "
	        "bad AS (SELECT agent_id, bool_or(kind = 'crash') AS crashed, "
	        "  bool_or(kind = 'boot_loop') AS looped FROM events "
	        "  WHERE kind IN ('crash', 'boot_loop') AND content_sha256 = $1 "
	        "  AND received_at >= $4::timestamptz GROUP BY agent_id), "
	        "t AS (SELECT a.agent_id, a.at, ag.last_seen_at, coalesce(b.crashed, false) AS "
	        "crashed, "
	        "  coalesce(b.looped, false) AS looped FROM applied a JOIN agents ag ON ag.id = "
	        "a.agent_id "
	        "  LEFT JOIN bad b ON b.agent_id = a.agent_id), "
	        "ctl AS (SELECT ag.id, ag.last_seen_at FROM agents ag WHERE ag.revoked_at IS NULL "
	        "  AND ag.last_seen_at >= $4::timestamptz "
	        "  AND (ag.active ->> $3) IS NOT DISTINCT FROM $2 "
	        "  AND NOT EXISTS (SELECT 1 FROM applied a WHERE a.agent_id = ag.id)) "
	        "SELECT (SELECT count(*) FROM t), "
	        " (SELECT count(*) FROM t WHERE crashed), "
	        " (SELECT count(*) FROM t WHERE looped AND NOT crashed), "
	        " (SELECT count(*) FROM t WHERE NOT crashed AND NOT looped "
	        "   AND greatest(coalesce(last_seen_at, at), at) < now() - make_interval(secs => "
	        "$5::int)), "
	        " (SELECT count(*) FROM t WHERE NOT crashed AND NOT looped AND last_seen_at >= at "
	        "   AND last_seen_at >= now() - make_interval(secs => $5::int)), "
	        " (SELECT count(*) FROM ctl), "
	        " (SELECT count(*) FROM ctl WHERE last_seen_at < now() - make_interval(secs => "
	        "$5::int) "
	        "   OR EXISTS (SELECT 1 FROM events e WHERE e.agent_id = ctl.id "
	        "   AND e.kind IN ('crash', 'boot_loop') AND e.received_at >= $4::timestamptz "
	        "   AND e.content_sha256 IS NOT DISTINCT FROM $2))",
	        5, p2);
	if (!r)
		return FB_EDB;
	in->treated = col_i64(r, 0, 0);
	in->crashed = col_i64(r, 0, 1);
	in->boot_looped = col_i64(r, 0, 2);
	in->silent = col_i64(r, 0, 3);
	in->healthy = col_i64(r, 0, 4);
	in->control = col_i64(r, 0, 5);
	in->control_failed = col_i64(r, 0, 6);
	PQclear(r);
	gate_decide(policy, in, res);
	return FB_OK;
}

static enum fb_rc store_evaluation(PGconn *c, int64_t id, const struct gate_policy *pol,
                                   const struct gate_inputs *in, const struct gate_result *res,
                                   struct fb_err *err)
{
	json_t *inputs = json_pack("{s:o,s:o,s:o,s:s}", "inputs", gate_inputs_to_json(in), "policy",
	                           gate_policy_to_json(pol), "result", gate_result_to_json(res),
	                           "evaluator", g_whoami);
	char *is = json_dumps(inputs, JSON_COMPACT);
	json_decref(inputs);
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	const char *p[] = {ids, gate_decision_name(res->decision), res->reason, is};
	PGresult *r = db_exec(
	        c, err,
	        "INSERT INTO gate_evaluations (rollout_id, ring_index, ring_name, decision, "
	        "reason, inputs) "
	        "SELECT id, ring_index, ring_plan ->> ring_index, $2, $3, $4::jsonb FROM rollouts "
	        "WHERE id = $1",
	        4, p);
	free(is);
	if (!r)
		return FB_EDB;
	PQclear(r);
	return FB_OK;
}

static json_t *rollout_state_json(PGconn *c, const char *ids)
{
	const char *p[] = {ids};
	PGresult *r = db_exec(c, NULL,
	                      "SELECT json_build_object('state', state, 'ring_index', ring_index, "
	                      "'ring', ring_plan ->> ring_index)::text FROM rollouts WHERE id = $1",
	                      1, p);
	json_t *j = r && PQntuples(r) == 1 ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
	PQclear(r);
	return j;
}

/* Approvals to force a promotion are for the ring the rollout is in now:
 * once it moves (promoted or halted), outstanding ones lapse, so that a
 * second approver cannot be added to a first one given for another ring. */
static enum fb_rc lapse_force_approvals(PGconn *c, const char *ids, struct fb_err *err)
{
	const char *p[] = {ids};
	PGresult *r = db_exec(c, err,
	                      "UPDATE approvals SET consumed = true WHERE rollout_id = $1 "
	                      "AND action = 'force-promote' AND NOT consumed",
	                      1, p);
	if (!r)
		return FB_EDB;
	PQclear(r);
	return FB_OK;
}

enum fb_rc controller_halt_tx(PGconn *c, int64_t id, const struct auth *who, const char *request_id,
                              const char *reason, struct fb_err *err)
{
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	json_t *before = rollout_state_json(c, ids);
	const char *p[] = {ids, reason};
	PGresult *r = db_exec(
	        c, err,
	        "UPDATE rollouts SET state = 'halted', state_reason = $2, updated_at = now(), "
	        "finished_at = now() WHERE id = $1 AND state IN ('rolling', 'paused', 'staged') "
	        "RETURNING content_sha256",
	        2, p);
	if (!r) {
		json_decref(before);
		return FB_EDB;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		json_decref(before);
		fb_err_set(err, "rollout %lld is not active", (long long)id);
		return FB_ECONFLICT;
	}
	char sha[65];
	snprintf(sha, sizeof sha, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	const char *p2[] = {sha, reason};
	r = db_exec(
	        c, err,
	        "UPDATE content SET bad = true, bad_reason = $2, bad_at = now() WHERE sha256 = $1",
	        2, p2);
	if (!r) {
		json_decref(before);
		return FB_EDB;
	}
	PQclear(r);
	char obj[40];
	snprintf(obj, sizeof obj, "rollout/%lld", (long long)id);
	json_t *after =
	        json_pack("{s:s,s:s,s:b}", "state", "halted", "content", sha, "content_bad", 1);
	enum fb_rc rc =
	        audit_write(c, who, request_id, "rollout.halt", obj, before, after, reason, err);
	json_decref(before);
	if (!rc)
		rc = lapse_force_approvals(c, ids, err);
	if (!rc)
		rc = snapshot_publish(c, "rollout halted", err);
	if (!rc)
		rc = events_emit(c, "rollout.halted", id, after, err);
	json_decref(after);
	if (!rc)
		log_warn("rollout %lld HALTED: %s; content %s marked bad, last known good "
		         "republished",
		         (long long)id, reason, sha);
	return rc;
}

enum fb_rc controller_promote_tx(PGconn *c, int64_t id, const struct auth *who,
                                 const char *request_id, const char *reason, struct fb_err *err)
{
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	json_t *before = rollout_state_json(c, ids);
	const char *p[] = {ids};
	PGresult *r =
	        db_exec(c, err,
	                "UPDATE rollouts SET ring_index = ring_index + 1, ring_started_at = now(), "
	                "updated_at = now() WHERE id = $1 AND state = 'rolling' "
	                "AND ring_index + 1 < jsonb_array_length(ring_plan) RETURNING ring_plan "
	                "->> ring_index",
	                1, p);
	if (!r) {
		json_decref(before);
		return FB_EDB;
	}
	int moved = PQntuples(r) == 1;
	char ring[64] = "";
	if (moved)
		snprintf(ring, sizeof ring, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	const char *action = "rollout.promote";
	if (!moved) {
		/* Past the last ring: completed, and the content becomes GA. */
		r = db_exec(c, err,
		            "WITH done AS (UPDATE rollouts SET state = 'completed', updated_at = "
		            "now(), "
		            " finished_at = now() WHERE id = $1 AND state = 'rolling' "
		            " RETURNING channel_id, content_sha256) "
		            "UPDATE channels ch SET prev_ga_sha256 = ch.ga_sha256, ga_sha256 = "
		            "d.content_sha256 "
		            "FROM done d WHERE ch.id = d.channel_id RETURNING ch.id",
		            1, p);
		if (!r) {
			json_decref(before);
			return FB_EDB;
		}
		int done = PQntuples(r) == 1;
		PQclear(r);
		if (!done) {
			json_decref(before);
			fb_err_set(err, "rollout %lld is not rolling", (long long)id);
			return FB_ECONFLICT;
		}
		action = "rollout.complete";
	}
	json_t *after = rollout_state_json(c, ids);
	char obj[40];
	snprintf(obj, sizeof obj, "rollout/%lld", (long long)id);
	enum fb_rc rc = audit_write(c, who, request_id, action, obj, before, after, reason, err);
	json_decref(before);
	if (!rc)
		rc = lapse_force_approvals(c, ids, err);
	if (!rc)
		rc = snapshot_publish(c, moved ? "rollout promoted" : "rollout completed", err);
	if (!rc)
		rc = events_emit(c, moved ? "rollout.promoted" : "rollout.completed", id, after,
		                 err);
	json_decref(after);
	if (!rc)
		log_info("rollout %lld %s%s", (long long)id,
		         moved ? "promoted to ring " : "completed", ring);
	return rc;
}

/* The gate kept waiting past max_wait_s: pause the rollout for an operator
 * (assignments stay as they are), with the audit record and a
 * rollout.stalled event that also goes to the webhook. */
static enum fb_rc stall_tx(PGconn *c, int64_t id, const char *reason, struct fb_err *err)
{
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	json_t *before = rollout_state_json(c, ids);
	const char *p[] = {ids, reason};
	PGresult *r =
	        db_exec(c, err,
	                "UPDATE rollouts SET state = 'paused', state_reason = $2, updated_at = "
	                "now() WHERE id = $1 AND state = 'rolling'",
	                2, p);
	if (!r) {
		json_decref(before);
		return FB_EDB;
	}
	PQclear(r);
	json_t *after = rollout_state_json(c, ids);
	json_object_set_new(after, "stalled", json_true());
	json_object_set_new(after, "reason", json_string(reason));
	char obj[40];
	snprintf(obj, sizeof obj, "rollout/%lld", (long long)id);
	enum fb_rc rc = audit_write(c, &controller_actor, NULL, "rollout.pause", obj, before, after,
	                            reason, err);
	json_decref(before);
	if (!rc)
		rc = events_emit(c, "rollout.stalled", id, after, err);
	json_decref(after);
	if (!rc)
		log_warn("rollout %lld paused: stalled in its ring: %s", (long long)id, reason);
	return rc;
}

/* One evaluation of one rollout, in one transaction. */
static void evaluate_one(PGconn *c, int64_t id)
{
	struct fb_err err = {{0}};
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	const char *p[] = {ids};
	if (db_cmd(c, &err, "BEGIN") || lease_hold_tx(c, &err))
		goto fail;
	PGresult *r = db_exec(
	        c, &err, "SELECT 1 FROM rollouts WHERE id = $1 AND state = 'rolling' FOR UPDATE", 1,
	        p);
	if (!r)
		goto fail;
	int rolling = PQntuples(r) == 1;
	PQclear(r);
	if (!rolling) {
		PQclear(PQexec(c, "ROLLBACK"));
		return;
	}
	struct gate_policy pol;
	struct gate_inputs in;
	struct gate_result res;
	if (controller_evaluate(c, id, &pol, &in, &res, &err) ||
	    store_evaluation(c, id, &pol, &in, &res, &err))
		goto fail;
	if (res.decision == GATE_HALT &&
	    controller_halt_tx(c, id, &controller_actor, NULL, res.reason, &err))
		goto fail;
	if (res.decision == GATE_PROMOTE &&
	    controller_promote_tx(c, id, &controller_actor, NULL, res.reason, &err))
		goto fail;
	if (res.decision == GATE_WAIT && res.stalled && stall_tx(c, id, res.reason, &err))
		goto fail;
	if (res.decision != GATE_WAIT || log_min_level <= LOG_DEBUG) {
		json_t *ev = json_pack("{s:s,s:s}", "decision", gate_decision_name(res.decision),
		                       "reason", res.reason);
		enum fb_rc rc = events_emit(c, "gate.evaluation", id, ev, &err);
		json_decref(ev);
		if (rc)
			goto fail;
	}
	if (db_cmd(c, &err, "COMMIT"))
		goto fail;
	return;
fail:
	log_warn("controller: rollout %lld: %s", (long long)id, err.msg);
	PQclear(PQexec(c, "ROLLBACK"));
}

/* A halted rollout becomes 'reverted' once no agent that heartbeats still
 * runs the bad content: one transaction with its audit record and a
 * rollout.reverted event (which also goes to the webhook: the SOC learns
 * that the revert has reached the fleet). */
static void check_reverted(PGconn *c)
{
	struct fb_err err;
	PGresult *r = NULL;
	if (db_cmd(c, &err, "BEGIN") || lease_hold_tx(c, &err))
		goto fail;
	r = db_exec(c, &err,
	            "WITH done AS (UPDATE rollouts r SET state = 'reverted', updated_at = now() "
	            "WHERE state = 'halted' AND NOT EXISTS (SELECT 1 FROM agents a "
	            " WHERE a.revoked_at IS NULL AND a.active ->> r.channel_id::text = "
	            "r.content_sha256 "
	            " AND a.last_seen_at > now() - interval '1 day') RETURNING id, content_sha256) "
	            "SELECT id, content_sha256 FROM done",
	            0, NULL);
	if (!r)
		goto fail;
	for (int i = 0; i < PQntuples(r); i++) {
		char obj[40];
		snprintf(obj, sizeof obj, "rollout/%s", PQgetvalue(r, i, 0));
		json_t *before = json_pack("{s:s}", "state", "halted");
		json_t *after =
		        json_pack("{s:s,s:s}", "state", "reverted", "content", PQgetvalue(r, i, 1));
		enum fb_rc rc =
		        audit_write(c, &controller_actor, NULL, "rollout.reverted", obj, before,
		                    after, "no agent runs the halted content any more", &err);
		if (!rc)
			rc = events_emit(c, "rollout.reverted",
			                 strtoll(PQgetvalue(r, i, 0), NULL, 10), after, &err);
		json_decref(before);
		json_decref(after);
		if (rc)
			goto fail;
	}
	if (db_cmd(c, &err, "COMMIT"))
		goto fail;
	for (int i = 0; i < PQntuples(r); i++)
		log_info("rollout %s reverted: no agent runs its content any more",
		         PQgetvalue(r, i, 0));
	PQclear(r);
	return;
fail:
	log_warn("controller: %s", err.msg);
	PQclear(r);
	PQclear(PQexec(c, "ROLLBACK"));
}

/* One controller cycle, while this replica holds the lease: every rolling
 * rollout, the revert check and due webhooks, each write behind the lease
 * fence; then the completed cycle is recorded. Stops at the first sign that
 * the lease is gone. */
static void cycle(PGconn *c)
{
	struct fb_err err;
	PGresult *r = db_exec(
	        c, &err, "SELECT id FROM rollouts WHERE state = 'rolling' ORDER BY id", 0, NULL);
	if (!r) {
		log_warn("controller: %s", err.msg);
		return;
	}
	for (int i = 0; i < PQntuples(r) && !g_stop && lease_is_held(); i++)
		evaluate_one(c, strtoll(PQgetvalue(r, i, 0), NULL, 10));
	PQclear(r);
	if (!g_stop && lease_is_held())
		check_reverted(c);
	if (!g_stop && lease_is_held())
		events_deliver_webhooks(c, lease_hold_tx, NULL);
	if (!g_stop && lease_is_held() && lease_cycle_done(c, &err))
		log_warn("controller: %s", err.msg);
}

/* The controller thread. Every replica looks at the lease four times an
 * interval: the holder renews it (so a slow cycle or a busy machine does
 * not cost it the lease) and runs a cycle once an interval; the others take
 * it over once it has expired and raise controller.lost when no cycle
 * completed for three intervals. */
static void *loop(void *arg)
{
	(void)arg;
	PGconn *c = NULL;
	int64_t next_cycle = 0;
	int outage = 0; /* the database went away since the last connection */
	while (!g_stop) {
		int64_t tick =
		        cfg.controller_interval_ms / 4 > 50 ? cfg.controller_interval_ms / 4 : 50;
		for (int64_t t = 0; t < tick && !g_stop; t += 50)
			poll(NULL, 0, (int)(tick - t < 50 ? tick - t : 50));
		if (g_stop)
			break;
		char why[256];
		if (!snapshot_ready(why, sizeof why))
			continue;
		struct fb_err err;
		if (!c || PQstatus(c) != CONNECTION_OK) {
			if (c)
				PQfinish(c);
			outage = outage || c != NULL;
			c = PQconnectdb(cfg.db);
			if (PQstatus(c) != CONNECTION_OK || lease_session_setup(c, &err)) {
				PQfinish(c);
				c = NULL;
				outage = 1;
				continue;
			}
			if (outage) {
				__atomic_store_n(&g_db_back_ms, fb_now_ms(), __ATOMIC_RELAXED);
				log_info("controller: database back; silence not counted for a "
				         "silence timeout");
				outage = 0;
			}
		}
		int held = 0;
		if (cfg.controller && lease_acquire(c, &held, &err))
			log_debug("controller: lease: %s", err.msg);
		if (held && fb_mono_ms() >= next_cycle) {
			next_cycle = fb_mono_ms() + cfg.controller_interval_ms;
			cycle(c);
		}
		struct lease_status st;
		if (lease_read(c, &st, &err)) {
			log_debug("controller: lease: %s", err.msg);
			continue;
		}
		if (held)
			continue;
		int emitted;
		if (lease_check_lost(c, &emitted, &err))
			log_debug("controller: lost check: %s", err.msg);
		/* with no leader, whoever notices tells the SOC itself */
		if (!st.holder[0])
			events_deliver_webhooks(c, NULL, "controller.lost");
	}
	if (c) {
		lease_release(c);
		PQfinish(c);
	}
	return NULL;
}

enum fb_rc controller_start(struct fb_err *err)
{
	char host[64] = "host";
	gethostname(host, sizeof host - 1);
	snprintf(g_whoami, sizeof g_whoami, "%s:%ld", host, (long)getpid());
	lease_init(g_whoami);
	g_stop = 0;
	if (pthread_create(&g_thread, NULL, loop, NULL)) {
		fb_err_set(err, "cannot start the controller thread");
		return FB_EINTERNAL;
	}
	g_started = 1;
	return FB_OK;
}

void controller_stop(void)
{
	if (!g_started)
		return;
	g_stop = 1;
	pthread_join(g_thread, NULL);
	g_started = 0;
}

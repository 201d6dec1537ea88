/* The rollout controller: leader election, gate evaluations, promotions
 * and halts, each in one transaction. */
#include "controller.h"

#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "audit.h"
#include "config.h"
#include "counts.h"
#include "db.h"
#include "events.h"
#include "lease.h"
#include "log.h"
#include "segments.h"
#include "signals.h"
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

/* The segments judged on their own: those with at least min_segment_agents
 * treated, at the Bonferroni threshold over how many there are. The state
 * of every segment's test is carried in *segs_json (a new object keyed
 * "dimension=value"), judged or not, so that a segment that grows into
 * being judged has its whole history. prev is the last evaluation's. On a
 * halt by a segment, res becomes a HALT naming it. */
static void judge_segments(const struct gate_policy *pol, const struct gate_inputs *in,
                           const struct counts_segment *segs, size_t n, const json_t *prev,
                           struct gate_result *res, json_t **segs_json)
{
	json_t *out = json_object();
	int judged = 0;
	for (size_t i = 0; i < n; i++)
		judged += segs[i].g.treated >= pol->min_segment_agents;
	double threshold = gate_segment_threshold(pol, judged);
	const struct counts_segment *worst = NULL, *top = NULL;
	struct gate_rel worst_rel = {0}, top_rel = {0};
	for (size_t i = 0; i < n; i++) {
		struct gate_group g = segs[i].g;
		if (!in->silence_counted) { /* restart grace: silence is neither */
			g.treated -= segs[i].silent;
			g.failed -= segs[i].silent;
		}
		char key[96];
		snprintf(key, sizeof key, "%s=%s", segment_dims[segs[i].dim], segs[i].value);
		struct gate_seq pseq, next;
		int have = gate_seq_from_json(json_object_get(json_object_get(prev, key), "seq"),
		                              &pseq);
		struct gate_rel rel;
		gate_relative(pol, have ? &pseq : NULL, &g, threshold, &next, &rel);
		int on = g.treated >= pol->min_segment_agents;
		if (on && rel.halt && (!worst || rel.statistic > worst_rel.statistic)) {
			worst = &segs[i];
			worst_rel = rel;
		}
		/* the judged segment with the most evidence, to name beside a
		 * ring's halt: where the failures are is what an operator asks */
		if (on && g.failed > 0 && rel.excess > 0.0 &&
		    (!top || rel.statistic > top_rel.statistic)) {
			top = &segs[i];
			top_rel = rel;
		}
		json_object_set_new(
		        out, key,
		        json_pack("{s:I, s:I, s:f, s:I, s:I, s:f, s:b, s:o, s:o}", "treated",
		                  (json_int_t)g.treated, "failed", (json_int_t)g.failed,
		                  "exposure_s", g.exposure_s, "control", (json_int_t)g.control,
		                  "control_failed", (json_int_t)g.control_failed,
		                  "control_exposure_s", g.control_exposure_s, "judged", on, "seq",
		                  gate_seq_to_json(&next), "relative", gate_rel_to_json(&rel)));
	}
	*segs_json = out;
	/* An attributed-cap halt: say where the crashes that named the channel
	 * are when most are on one platform (the most specific segment). */
	const struct counts_segment *at = NULL;
	for (size_t i = 0; i < n; i++)
		if (segs[i].attributed > 0 && segs[i].g.treated < in->treated &&
		    (!at || segs[i].attributed > at->attributed ||
		     (segs[i].attributed == at->attributed && segs[i].g.treated < at->g.treated)))
			at = &segs[i];
	char *also = strstr(res->reason, " - attributed cap ");
	if (res->decision == GATE_HALT && also && at && in->attributed >= 2 &&
	    3 * at->attributed >= 2 * in->attributed) {
		also = strchr(also, '.');
		if (also) {
			char rest[sizeof res->reason];
			snprintf(rest, sizeof rest, "%s", also);
			snprintf(also, sizeof res->reason - (size_t)(also - res->reason),
			         ". %lld of the %lld on %s %s (%lld treated there)%s",
			         (long long)at->attributed, (long long)in->attributed,
			         segment_dims[at->dim], at->value, (long long)at->g.treated, rest);
		}
	}
	const struct counts_segment *name = worst ? worst : top;
	const struct gate_rel *nrel = worst ? &worst_rel : &top_rel;
	if (!name || (!worst && res->decision != GATE_HALT))
		return;
	char ring_reason[sizeof res->reason];
	snprintf(ring_reason, sizeof ring_reason, "%s", res->reason);
	char times[48];
	if (nrel->control_rate > 0.0)
		snprintf(times, sizeof times, "%.1f times the control's rate", nrel->ratio);
	else
		snprintf(times, sizeof times, "the control had no failure");
	char seg[400];
	snprintf(seg, sizeof seg,
	         "%s %s: %lld of %lld failed (%.2f per 1000 host-hours) vs %lld of %lld in its "
	         "control (%.2f per 1000 host-hours): %s, relative log-LR %.2f (%s %.2f, "
	         "Bonferroni over %d segments judged)",
	         segment_dims[name->dim], name->value, (long long)name->g.failed,
	         (long long)name->g.treated, 1000.0 * nrel->treated_rate,
	         (long long)name->g.control_failed, (long long)name->g.control,
	         1000.0 * nrel->control_rate, times, nrel->statistic,
	         nrel->halt ? "halts at" : "a segment halts at", nrel->threshold, judged);
	if (res->decision == GATE_HALT) {
		/* The ring halted on its own: say which segment the failures
		 * concentrate in. */
		snprintf(res->reason, sizeof res->reason, "%.560s. Worst segment: %s", ring_reason,
		         seg);
		return;
	}
	res->decision = GATE_HALT;
	res->stalled = 0;
	snprintf(res->reason, sizeof res->reason,
	         "HALT: %s, confidently above %.1f times; %.2f points more hosts failed than the "
	         "control's rate predicts. The ring as a whole: %.400s",
	         seg, pol->max_ratio, 100.0 * nrel->excess, ring_reason);
}

/* One relative test of a signal's group (the ring, or a segment of it),
 * its state read from prev[key] and written with its figures to out[key]. */
static struct gate_rel judge_one(const struct gate_policy *pol, const struct gate_group *g,
                                 const json_t *prev, json_t *out, const char *key, double threshold,
                                 int judged)
{
	struct gate_seq pseq, next;
	int have = gate_seq_from_json(json_object_get(json_object_get(prev, key), "seq"), &pseq);
	struct gate_rel rel;
	gate_relative(pol, have ? &pseq : NULL, g, threshold, &next, &rel);
	json_object_set_new(out, key,
	                    json_pack("{s:I, s:I, s:f, s:I, s:I, s:f, s:b, s:o, s:o}", "treated",
	                              (json_int_t)g->treated, "degraded", (json_int_t)g->failed,
	                              "exposure_s", g->exposure_s, "control",
	                              (json_int_t)g->control, "control_degraded",
	                              (json_int_t)g->control_failed, "control_exposure_s",
	                              g->control_exposure_s, "judged", judged, "seq",
	                              gate_seq_to_json(&next), "relative", gate_rel_to_json(&rel)));
	return rel;
}

/* Each health signal judged like crashes, by the relative test against the
 * control: the ring at the Bonferroni threshold over the four signals, and
 * each platform segment with at least min_segment_agents treated at the
 * threshold over twice the four signals and that signal's judged segments. The
 * tests' state is carried in *sig_json (a new object keyed by signal, each
 * with its "segments" keyed "dimension=value"). A ring that did not halt on
 * crashes halts on the test with the most evidence, signal (and segment)
 * named. */
static void judge_signals(const struct gate_policy *pol, const struct gate_group *g,
                          const struct counts_signal_seg *segs, size_t nsegs, const json_t *prev,
                          struct gate_result *res, json_t **sig_json)
{
	json_t *out = json_object();
	double alpha = 1.0 - pol->confidence;
	if (!(alpha > 0.0))
		alpha = 0.05;
	int worst = -1;
	const struct counts_signal_seg *wseg = NULL;
	struct gate_rel worst_rel = {0};
	for (int s = 0; s < SIG_COUNT; s++) {
		const json_t *ps = json_object_get(prev, sig_name(s));
		struct gate_rel rel = judge_one(pol, &g[s], prev, out, sig_name(s),
		                                log((double)SIG_COUNT / alpha), 1);
		if (rel.halt && (worst < 0 || rel.statistic > worst_rel.statistic)) {
			worst = s;
			wseg = NULL;
			worst_rel = rel;
		}
		int judged = 0;
		for (size_t i = 0; i < nsegs; i++)
			judged +=
			        segs[i].signal == s && segs[i].g.treated >= pol->min_segment_agents;
		/* half a signal's share of alpha for its segments: measured,
		 * the full share gave 1.3 % false halts at 2 %/host-hour of
		 * verdicts on every signal (GATE.md) */
		double thr = log(2.0 * SIG_COUNT * (judged > 1 ? judged : 1) / alpha);
		json_t *so = json_object();
		for (size_t i = 0; i < nsegs; i++) {
			if (segs[i].signal != s)
				continue;
			char key[96];
			snprintf(key, sizeof key, "%s=%s", segment_dims[segs[i].dim],
			         segs[i].value);
			int on = segs[i].g.treated >= pol->min_segment_agents;
			struct gate_rel sr = judge_one(
			        pol, &segs[i].g, json_object_get(ps, "segments"), so, key, thr, on);
			if (on && sr.halt && (worst < 0 || sr.statistic > worst_rel.statistic)) {
				worst = s;
				wseg = &segs[i];
				worst_rel = sr;
			}
		}
		json_object_set_new(json_object_get(out, sig_name(s)), "segments", so);
	}
	*sig_json = out;
	if (worst < 0 || res->decision == GATE_HALT)
		return;
	const struct gate_group *wg = wseg ? &wseg->g : &g[worst];
	char ring_reason[sizeof res->reason], times[48], where[120] = "";
	snprintf(ring_reason, sizeof ring_reason, "%s", res->reason);
	if (worst_rel.control_rate > 0.0)
		snprintf(times, sizeof times, "%.1f times the control's rate", worst_rel.ratio);
	else
		snprintf(times, sizeof times, "the control had none");
	if (wseg)
		snprintf(where, sizeof where, " on %s %s", segment_dims[wseg->dim], wseg->value);
	res->decision = GATE_HALT;
	res->stalled = 0;
	snprintf(res->reason, sizeof res->reason,
	         "HALT: %s%s: %lld of %lld degraded (%.2f per 1000 host-hours) vs %lld of %lld in "
	         "control (%.2f per 1000 host-hours): %s, confidently above %.1f times (relative "
	         "log-LR %.2f >= %.2f, Bonferroni over %d signals%s), %.2f points more hosts "
	         "degraded than the control's rate predicts. Crashes: %.400s",
	         sig_label(worst), where, (long long)wg->failed, (long long)wg->treated,
	         1000.0 * worst_rel.treated_rate, (long long)wg->control_failed,
	         (long long)wg->control, 1000.0 * worst_rel.control_rate, times, pol->max_ratio,
	         worst_rel.statistic, worst_rel.threshold, SIG_COUNT,
	         wseg ? " and the segments judged" : "", 100.0 * worst_rel.excess, ring_reason);
}

enum fb_rc controller_evaluate(PGconn *c, int64_t id, struct gate_policy *policy,
                               struct gate_inputs *in, struct gate_result *res, json_t **segments,
                               json_t **signals, struct fb_err *err)
{
	char ids[24];
	if (segments)
		*segments = NULL;
	if (signals)
		*signals = NULL;
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
	                      "updated_at))::bigint, "
	                      "(SELECT g.inputs::text FROM gate_evaluations g WHERE g.rollout_id = "
	                      " r.id ORDER BY g.id DESC LIMIT 1) "
	                      "FROM rollouts r WHERE id = $1",
	                      1, p1);
	if (!r)
		return FB_EDB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		fb_err_set(err, "no rollout %lld", (long long)id);
		return FB_ENOTFOUND;
	}
	char channel[16], content[65], previous[65], started[64];
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
	/* The relative tests carry their state from the last evaluation. */
	json_t *last = PQgetisnull(r, 0, 10) ? NULL : json_loads(PQgetvalue(r, 0, 10), 0, NULL);
	PQclear(r);
	in->has_prev = gate_seq_from_json(json_object_get(json_object_get(last, "result"), "seq"),
	                                  &in->prev);
	if (rc) {
		json_decref(last);
		return rc;
	}
	int64_t grace = cfg.restart_grace_s >= 0 ? cfg.restart_grace_s : policy->silence_timeout_s;
	in->silence_counted = fb_now_ms() - app.started_ms >= grace * 1000 &&
	                      fb_now_ms() - __atomic_load_n(&g_db_back_ms, __ATOMIC_RELAXED) >=
	                              policy->silence_timeout_s * 1000;

	struct counts_req q = {content, prev_null ? NULL : previous, channel,
	                       started, policy->silence_timeout_s,   gate_exposure_needed(policy)};
	static __thread struct counts_segment segs[COUNTS_MAX_SEGMENTS];
	size_t nsegs = 0;
	rc = counts_gather(c, &q, in, segs, &nsegs, err);
	if (!rc) {
		gate_decide(policy, in, res);
		json_t *sj = NULL;
		judge_segments(policy, in, segs, nsegs, json_object_get(last, "segments"), res,
		               &sj);
		if (segments)
			*segments = sj;
		else
			json_decref(sj);
	}
	struct gate_group sg[SIG_COUNT];
	static __thread struct counts_signal_seg ssegs[SIG_COUNT * COUNTS_MAX_SEGMENTS / 4];
	size_t nssegs = 0;
	if (!rc)
		rc = counts_signals(c, &q, sg, ssegs, sizeof ssegs / sizeof ssegs[0], &nssegs, err);
	if (!rc) {
		json_t *gj = NULL;
		judge_signals(policy, sg, ssegs, nssegs, json_object_get(last, "signals"), res,
		              &gj);
		if (signals)
			*signals = gj;
		else
			json_decref(gj);
	}
	json_decref(last);
	return rc;
}

/* The signals' figures into this minute's signal_rollups rows. */
static enum fb_rc store_rollups(PGconn *c, const char *ids, json_t *signals, struct fb_err *err)
{
	char *js = json_dumps(signals, JSON_COMPACT);
	if (!js)
		return FB_ENOMEM;
	const char *p[] = {ids, js};
	PGresult *r = db_exec(
	        c, err,
	        "INSERT INTO signal_rollups AS s (rollout_id, ring_index, signal, bucket, treated, "
	        "degraded, exposure_s, control, control_degraded, control_exposure_s, statistic, "
	        "threshold) SELECT r.id, r.ring_index, e.key, date_trunc('minute', now()), "
	        "(e.value ->> 'treated')::int, (e.value ->> 'degraded')::int, "
	        "(e.value ->> 'exposure_s')::float8, (e.value ->> 'control')::int, "
	        "(e.value ->> 'control_degraded')::int, (e.value ->> "
	        "'control_exposure_s')::float8, "
	        "(e.value -> 'relative' ->> 'statistic')::float8, "
	        "(e.value -> 'relative' ->> 'threshold')::float8 "
	        "FROM rollouts r, jsonb_each($2::jsonb) e WHERE r.id = $1 "
	        "ON CONFLICT (rollout_id, ring_index, signal, bucket) DO UPDATE SET "
	        "treated = EXCLUDED.treated, degraded = EXCLUDED.degraded, exposure_s = "
	        "EXCLUDED.exposure_s, control = EXCLUDED.control, control_degraded = "
	        "EXCLUDED.control_degraded, control_exposure_s = EXCLUDED.control_exposure_s, "
	        "statistic = EXCLUDED.statistic, threshold = EXCLUDED.threshold",
	        2, p);
	free(js);
	if (!r)
		return FB_EDB;
	PQclear(r);
	return FB_OK;
}

static enum fb_rc store_evaluation(PGconn *c, int64_t id, const struct gate_policy *pol,
                                   const struct gate_inputs *in, const struct gate_result *res,
                                   json_t *segments, json_t *signals, struct fb_err *err)
{
	json_t *inputs = json_pack("{s:o,s:o,s:o,s:s}", "inputs", gate_inputs_to_json(in), "policy",
	                           gate_policy_to_json(pol), "result", gate_result_to_json(res),
	                           "evaluator", g_whoami);
	if (segments)
		json_object_set(inputs, "segments", segments);
	if (signals)
		json_object_set(inputs, "signals", signals);
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
	return signals ? store_rollups(c, ids, signals, err) : FB_OK;
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
	        "finished_at = now() WHERE id = $1 AND state IN ('rolling', 'paused', 'staged', "
	        "'watching') "
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

/* Completed: the content becomes GA (the holdout gets it too), from
 * rolling (no watch) or watching. */
static enum fb_rc complete_tx(PGconn *c, const char *ids, struct fb_err *err)
{
	const char *p[] = {ids};
	PGresult *r =
	        db_exec(c, err,
	                "WITH done AS (UPDATE rollouts SET state = 'completed', updated_at = "
	                "now(), finished_at = now() WHERE id = $1 AND state IN ('rolling', "
	                "'watching') RETURNING channel_id, content_sha256) "
	                "UPDATE channels ch SET prev_ga_sha256 = ch.ga_sha256, ga_sha256 = "
	                "d.content_sha256 FROM done d WHERE ch.id = d.channel_id RETURNING ch.id",
	                1, p);
	if (!r)
		return FB_EDB;
	int done = PQntuples(r) == 1;
	PQclear(r);
	if (!done) {
		fb_err_set(err, "rollout %s is not rolling or watching", ids);
		return FB_ECONFLICT;
	}
	return FB_OK;
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
	const char *action = "rollout.promote", *event = "rollout.promoted";
	const char *pubwhy = "rollout promoted";
	if (!moved) {
		/* Past the last ring: watching for the last ring's watch_s (the
		 * holdout stays on the previous content, the gate keeps judging),
		 * or completed at once; the content becomes GA at completion. */
		int64_t watch_s = 0;
		r = db_exec(
		        c, err,
		        "SELECT policy::text, jsonb_array_length(ring_plan), state = 'watching' "
		        "FROM rollouts WHERE id = $1",
		        1, p);
		if (!r) {
			json_decref(before);
			return FB_EDB;
		}
		if (PQntuples(r) == 1) {
			struct gate_policy last;
			int nr = (int)col_i64(r, 0, 1);
			struct fb_err perr;
			if (ring_policy(PQgetvalue(r, 0, 0), nr - 1, nr, &last, &perr) == FB_OK)
				watch_s = last.watch_s;
			if (strcmp(PQgetvalue(r, 0, 2), "t") == 0)
				watch_s = 0; /* a forced promotion ends the watch */
		}
		PQclear(r);
		enum fb_rc crc;
		if (watch_s > 0) {
			r = db_exec(
			        c, err,
			        "UPDATE rollouts SET state = 'watching', watch_started_at = now(), "
			        "updated_at = now() WHERE id = $1 AND state = 'rolling' RETURNING "
			        "id",
			        1, p);
			crc = !r ? FB_EDB : PQntuples(r) == 1 ? FB_OK : FB_ECONFLICT;
			PQclear(r);
			if (crc == FB_ECONFLICT)
				fb_err_set(err, "rollout %lld is not rolling", (long long)id);
			action = "rollout.watch";
			event = "rollout.watching";
			pubwhy = NULL; /* assignments do not change */
		} else {
			crc = complete_tx(c, ids, err);
			action = "rollout.complete";
			event = "rollout.completed";
			pubwhy = "rollout completed";
		}
		if (crc) {
			json_decref(before);
			return crc;
		}
	}
	json_t *after = rollout_state_json(c, ids);
	char obj[40];
	snprintf(obj, sizeof obj, "rollout/%lld", (long long)id);
	enum fb_rc rc = audit_write(c, who, request_id, action, obj, before, after, reason, err);
	json_decref(before);
	if (!rc)
		rc = lapse_force_approvals(c, ids, err);
	if (!rc && pubwhy)
		rc = snapshot_publish(c, pubwhy, err);
	if (!rc)
		rc = events_emit(c, event, id, after, err);
	json_decref(after);
	if (!rc)
		log_info("rollout %lld %s%s", (long long)id,
		         moved                                    ? "promoted to ring "
		         : strcmp(event, "rollout.watching") == 0 ? "watching after its last ring"
		                                                  : "completed",
		         ring);
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

/* The watch ended without a halt: completed, audited, announced. */
static enum fb_rc watch_done_tx(PGconn *c, int64_t id, const char *reason, struct fb_err *err)
{
	char ids[24], obj[40];
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	snprintf(obj, sizeof obj, "rollout/%lld", (long long)id);
	json_t *before = rollout_state_json(c, ids);
	enum fb_rc rc = complete_tx(c, ids, err);
	json_t *after = rc ? NULL : rollout_state_json(c, ids);
	if (!rc)
		rc = audit_write(c, &controller_actor, NULL, "rollout.complete", obj, before, after,
		                 reason, err);
	if (!rc)
		rc = snapshot_publish(c, "rollout completed", err);
	if (!rc)
		rc = events_emit(c, "rollout.completed", id, after, err);
	json_decref(before);
	json_decref(after);
	if (!rc)
		log_info("rollout %lld completed: %s", (long long)id, reason);
	return rc;
}

/* One evaluation of one rollout, in one transaction. While watching (after
 * the last promotion) the gate keeps judging: a HALT reverts fleet-wide, and
 * once watch_s has passed without one the rollout completes. */
static void evaluate_one(PGconn *c, int64_t id)
{
	struct fb_err err = {{0}};
	char ids[24];
	json_t *segments = NULL, *signals = NULL;
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	const char *p[] = {ids};
	if (db_cmd(c, &err, "BEGIN") || lease_hold_tx(c, &err))
		goto fail;
	PGresult *r = db_exec(c, &err,
	                      "SELECT state = 'watching', coalesce(extract(epoch FROM now() - "
	                      "watch_started_at)::bigint, 0) FROM rollouts WHERE id = $1 AND state "
	                      "IN ('rolling', 'watching') FOR UPDATE",
	                      1, p);
	if (!r)
		goto fail;
	int active = PQntuples(r) == 1;
	int watching = active && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	int64_t watched = active ? col_i64(r, 0, 1) : 0;
	PQclear(r);
	if (!active) {
		PQclear(PQexec(c, "ROLLBACK"));
		return;
	}
	struct gate_policy pol;
	struct gate_inputs in;
	struct gate_result res;
	if (controller_evaluate(c, id, &pol, &in, &res, &segments, &signals, &err))
		goto fail;
	int watch_done = 0;
	if (watching && res.decision != GATE_HALT) {
		/* Nothing to promote to; the watch only ends. */
		char gate[sizeof res.reason];
		snprintf(gate, sizeof gate, "%s", res.reason);
		watch_done = watched >= pol.watch_s;
		res.decision = GATE_WAIT;
		res.stalled = 0;
		snprintf(res.reason, sizeof res.reason,
		         "%s %llds of %llds after the last promotion%s. %s",
		         watch_done ? "WATCHED" : "WATCHING", (long long)watched,
		         (long long)pol.watch_s, watch_done ? ": completed" : "", gate);
	}
	if (store_evaluation(c, id, &pol, &in, &res, segments, signals, &err))
		goto fail;
	if (res.decision == GATE_HALT &&
	    controller_halt_tx(c, id, &controller_actor, NULL, res.reason, &err))
		goto fail;
	if (res.decision == GATE_PROMOTE &&
	    controller_promote_tx(c, id, &controller_actor, NULL, res.reason, &err))
		goto fail;
	if (watch_done && watch_done_tx(c, id, res.reason, &err))
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
	json_decref(segments);
	json_decref(signals);
	return;
fail:
	json_decref(segments);
	json_decref(signals);
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

/* A new publication when content became due for a delayed host group since
 * the last one (its GA age passed the group's delay): the documents of a
 * publication are fixed, so the time a delay ends must be a publication. */
static void publish_delayed(PGconn *c)
{
	struct fb_err err;
	PGresult *r = NULL;
	if (db_cmd(c, &err, "BEGIN") || lease_hold_tx(c, &err))
		goto fail;
	r = db_exec(c, &err,
	            "SELECT EXISTS (SELECT 1 FROM content_policies p JOIN ga_history h ON "
	            "(p.channel_id IS NULL OR h.channel_id = p.channel_id) CROSS JOIN publication "
	            "pub WHERE p.mode = 'delayed' AND h.since + make_interval(secs => p.delay_s) "
	            "> pub.published_at AND h.since + make_interval(secs => p.delay_s) <= now())",
	            0, NULL);
	if (!r)
		goto fail;
	int due = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	if ((due && snapshot_publish(c, "delayed content due", &err)) || db_cmd(c, &err, "COMMIT"))
		goto fail;
	if (due)
		log_info("controller: content became due for a delayed host group; republished");
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
	PGresult *r = db_exec(c, &err,
	                      "SELECT id FROM rollouts WHERE state IN ('rolling', 'watching') "
	                      "ORDER BY id",
	                      0, NULL);
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
		publish_delayed(c);
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

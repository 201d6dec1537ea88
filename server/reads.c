/* Read-only operator endpoints over the stored evaluations, events and the
 * audit log; ring membership comes from the serving snapshot. */
#include "reads.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "signals.h"
#include "snapshot.h"
#include "validate.h"

static int rollout_id_or_reply(struct http_req *req, char ids[24])
{
	int64_t id;
	if (!val_param_id_or_reply(req, "id", "rollout id", INT64_MAX, &id))
		return 0;
	snprintf(ids, 24, "%lld", (long long)id);
	return 1;
}

/* The points of one rollout's plots: per gate evaluation, in time order,
 * its id, time, ring, decision and the JSON members `fields` (a constant
 * SQL fragment of json_build_object arguments over gate_evaluations.inputs),
 * at most 5,000, after ?after=last_id when given. Replies. */
static void reply_evaluation_points(struct http_req *req, const char *fields)
{
	char ids[24];
	if (!rollout_id_or_reply(req, ids))
		return;
	const char *after = http_req_query(req, "after");
	int64_t av = 0;
	if (after && fb_parse_i64(after, 0, INT64_MAX, &av)) {
		http_error(req, 400, "invalid", "after must be an evaluation id (from last_id)");
		return;
	}
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	char sql[2048];
	snprintf(sql, sizeof sql,
	         "SELECT (SELECT count(*) FROM rollouts WHERE id = $1), "
	         "coalesce(json_agg(json_build_object('id', id, 'at', extract(epoch FROM "
	         "created_at)::bigint, 'ring', ring_name, 'ring_index', ring_index, "
	         "'decision', decision, %s) ORDER BY id), '[]')::text, max(id) "
	         "FROM (SELECT * FROM gate_evaluations WHERE rollout_id = $1 "
	         "AND ($2::bigint IS NULL OR id > $2) ORDER BY id DESC LIMIT 5000) g",
	         fields);
	struct fb_err err;
	const char *p[] = {ids, after};
	PGresult *r = db_exec(c, &err, sql, 2, p);
	db_release(app.db, c);
	if (!r) {
		http_unavailable(req, err.msg);
		return;
	}
	if (strcmp(PQgetvalue(r, 0, 0), "0") == 0) {
		PQclear(r);
		http_error(req, 404, "not_found", "no rollout %s", ids);
		return;
	}
	json_t *pts = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
	json_t *out = json_pack("{s:s,s:o}", "rollout", ids, "points", pts ? pts : json_array());
	/* poll again with ?after=last_id for only the new points */
	json_object_set_new(out, "last_id",
	                    PQgetisnull(r, 0, 2)
	                            ? json_integer(av)
	                            : json_integer(strtoll(PQgetvalue(r, 0, 2), NULL, 10)));
	PQclear(r);
	http_reply_json(req, 200, out);
}

/* Every evaluation's counts, in time order: the points of the plots. */
void reads_rollout_series(struct http_req *req)
{
	reply_evaluation_points(req,
	                        "'treated', (inputs->'inputs'->>'treated')::bigint, "
	                        "'healthy', (inputs->'inputs'->>'healthy')::bigint, "
	                        "'crashed', (inputs->'inputs'->>'crashed')::bigint, "
	                        "'boot_looped', (inputs->'inputs'->>'boot_looped')::bigint, "
	                        "'silent', (inputs->'inputs'->>'silent')::bigint, "
	                        "'control', (inputs->'inputs'->>'control')::bigint, "
	                        "'control_failed', (inputs->'inputs'->>'control_failed')::bigint");
}

/* Per ring: agents in it now, how many the rollout holds back on the
 * previous content as its control (while it is active); of the treated (applied the content) how
 * many are healthy, crashed, boot-looped, silent or pending; and how many agents cannot interpret
 * the content at all (their build lacks a template it uses: they are never offered it and stay on
 * what they run). */
void reads_rollout_exposure(struct http_req *req)
{
	char ids[24];
	if (!rollout_id_or_reply(req, ids))
		return;
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct fb_err err;
	const char *p[] = {ids};
	PGresult *r = db_exec(
	        c, &err,
	        "WITH ro AS (SELECT r.content_sha256 AS sha, r.started_at, c.templates AS tpl, "
	        " coalesce(r.finished_at, now()) AS asof, "
	        " coalesce((r.policy -> r.ring_index ->> 'silence_timeout_s')::int, 300) AS t "
	        " FROM rollouts r JOIN content c ON c.sha256 = r.content_sha256 WHERE r.id = $1), "
	        "ap AS (SELECT e.agent_id, min(e.received_at) AS at FROM events e, ro "
	        " WHERE e.kind = 'applied' AND e.content_sha256 = ro.sha AND e.received_at >= "
	        "ro.started_at "
	        " GROUP BY e.agent_id), "
	        "bad AS (SELECT e.agent_id, bool_or(e.kind = 'crash') AS crashed, "
	        " bool_or(e.kind = 'boot_loop') AS looped FROM events e, ro "
	        " WHERE e.kind IN ('crash', 'boot_loop') AND e.content_sha256 = ro.sha "
	        " AND e.received_at >= ro.started_at GROUP BY e.agent_id) "
	        "SELECT ap.agent_id, CASE WHEN b.crashed THEN 'crashed' WHEN b.looped THEN "
	        "'boot_looped' "
	        " WHEN ag.last_seen_at >= ap.at AND ag.last_seen_at >= ro.asof - "
	        "make_interval(secs "
	        "=> ro.t) "
	        " THEN 'healthy' WHEN greatest(coalesce(ag.last_seen_at, ap.at), ap.at) < ro.asof "
	        "- "
	        " make_interval(secs => ro.t) THEN 'silent' ELSE 'pending' END "
	        "FROM ro, ap JOIN agents ag ON ag.id = ap.agent_id LEFT JOIN bad b ON b.agent_id = "
	        "ap.agent_id "
	        "UNION ALL SELECT ag.id, 'incompatible' FROM agents ag, ro WHERE ag.revoked_at IS "
	        "NULL "
	        " AND EXISTS (SELECT 1 FROM jsonb_array_elements(ro.tpl) t "
	        " WHERE NOT coalesce(ag.capabilities, '[]'::jsonb) @> jsonb_build_array(t)) "
	        "UNION ALL SELECT 0, (SELECT count(*) FROM rollouts WHERE id = $1)::text",
	        1, p);
	db_release(app.db, c);
	if (!r) {
		http_unavailable(req, err.msg);
		return;
	}
	int n = PQntuples(r);
	if (strcmp(PQgetvalue(r, n - 1, 1), "0") == 0) {
		PQclear(r);
		http_error(req, 404, "not_found", "no rollout %s", ids);
		return;
	}
	json_t *rings = json_object();
	int64_t sizes[SNAP_MAX_RINGS], held[SNAP_MAX_RINGS];
	char names[SNAP_MAX_RINGS][40];
	int nr =
	        snapshot_holdout_counts(strtoll(ids, NULL, 10), sizes, held, names, SNAP_MAX_RINGS);
	for (int i = 0; i < nr; i++)
		json_object_set_new(rings, names[i],
		                    json_pack("{s:I,s:I,s:i,s:i,s:i,s:i,s:i,s:i,s:i}", "agents",
		                              (json_int_t)sizes[i], "holdout", (json_int_t)held[i],
		                              "treated", 0, "healthy", 0, "crashed", 0,
		                              "boot_looped", 0, "silent", 0, "pending", 0,
		                              "incompatible", 0));
	for (int i = 0; i < n - 1; i++) {
		char rb[64];
		const char *ring =
		        snapshot_agent_ring(strtoll(PQgetvalue(r, i, 0), NULL, 10), rb, sizeof rb);
		json_t *o = ring ? json_object_get(rings, ring) : NULL;
		if (!o)
			continue;
		const char *what = PQgetvalue(r, i, 1);
		if (strcmp(what, "incompatible") != 0)
			json_object_set_new(
			        o, "treated",
			        json_integer(json_integer_value(json_object_get(o, "treated")) +
			                     1));
		json_object_set_new(o, what,
		                    json_integer(json_integer_value(json_object_get(o, what)) + 1));
	}
	PQclear(r);
	http_reply_json(req, 200, json_pack("{s:s,s:o}", "rollout", ids, "rings", rings));
}

void reads_audit(struct http_req *req)
{
	const char *action = http_req_query(req, "action"), *object = http_req_query(req, "object");
	const char *actor = http_req_query(req, "actor"), *before = http_req_query(req, "before");
	const char *lim = http_req_query(req, "limit"), *user = http_req_query(req, "user");
	int64_t limit = 100, b;
	if ((lim && fb_parse_i64(lim, 1, 1000, &limit)) ||
	    (before && fb_parse_i64(before, 1, INT64_MAX, &b))) {
		http_error(req, 400, "invalid", "limit must be 1..1000 and before an audit id");
		return;
	}
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	char ls[24];
	snprintf(ls, sizeof ls, "%lld", (long long)limit);
	struct fb_err err;
	const char *p[] = {action, object, actor, before, ls, user};
	PGresult *r = db_exec(
	        c, &err,
	        "SELECT coalesce(json_agg(json_build_object('id', id, 'at', extract(epoch FROM "
	        "at)::bigint, "
	        "'actor', actor, 'action', action, 'object', object, 'before', before, 'after', "
	        "after, "
	        "'reason', reason, 'request_id', request_id, 'user', (SELECT u.name FROM users u "
	        "WHERE u.id = a.user_id), 'user_id', user_id, 'token_id', token_id, 'via', CASE "
	        "WHEN token_id IS NOT NULL THEN 'token' WHEN user_id IS NOT NULL THEN 'proxy' END) "
	        "ORDER BY id DESC), '[]')::text, min(id) "
	        "FROM (SELECT * FROM audit_log WHERE ($1::text IS NULL OR action = $1) "
	        "AND ($2::text IS NULL OR object = $2) AND ($3::text IS NULL OR actor = $3) "
	        "AND ($4::bigint IS NULL OR id < $4) AND ($6::text IS NULL OR user_id = (SELECT "
	        "id FROM users WHERE name = $6)) ORDER BY id DESC LIMIT $5) a",
	        6, p);
	db_release(app.db, c);
	if (!r) {
		http_unavailable(req, err.msg);
		return;
	}
	json_t *items = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	json_t *out = json_pack("{s:o}", "audit", items);
	if (!PQgetisnull(r, 0, 1) && json_array_size(items) == (size_t)limit)
		json_object_set_new(out, "next_before",
		                    json_integer(strtoll(PQgetvalue(r, 0, 1), NULL, 10)));
	PQclear(r);
	http_reply_json(req, 200, out);
}

/* Every evaluation's statistics, in time order: the relative test
 * (result.relative: treated and control failure rates per host-hour, their
 * ratio, the log-LR statistic and its threshold), the excess upper bound
 * against policy.max_excess, and the absolute guard (result.treated_upper
 * against policy.max_failure_rate, result.statistic against
 * result.threshold). Same paging as the series: ?after=last_id. */
void reads_rollout_statistics(struct http_req *req)
{
	reply_evaluation_points(req, "'relative', inputs->'result'->'relative', "
	                             "'excess_upper', inputs->'result'->'excess_upper', "
	                             "'max_excess', inputs->'policy'->'max_excess', "
	                             "'treated_upper', inputs->'result'->'treated_upper', "
	                             "'max_failure_rate', inputs->'policy'->'max_failure_rate', "
	                             "'statistic', inputs->'result'->'statistic', "
	                             "'threshold', inputs->'result'->'threshold'");
}

/* ---- health signals per ring and minute (signal_rollups) ----------------- */

#define SIGNAL_MINUTES 1440 /* points per ring and signal: the last day of minutes */

static double col_f(const PGresult *r, int i, int k)
{
	return strtod(PQgetvalue(r, i, k), NULL);
}

/* A degraded count over host-seconds as a rate per 1000 host-hours; null
 * without host-time. New reference. */
static json_t *per_1000h(int64_t degraded, double exposure_s)
{
	return exposure_s > 0.0 ? json_real(3.6e6 * (double)degraded / exposure_s) : json_null();
}

/* One signal_rollups row (columns from k: bucket, treated, degraded,
 * exposure_s, control, control_degraded, control_exposure_s, statistic,
 * threshold) as a point. New reference. */
static json_t *signal_point(const PGresult *r, int i, int k)
{
	int64_t treated = strtoll(PQgetvalue(r, i, k + 1), NULL, 10);
	int64_t degraded = strtoll(PQgetvalue(r, i, k + 2), NULL, 10);
	int64_t control = strtoll(PQgetvalue(r, i, k + 4), NULL, 10);
	int64_t cdegraded = strtoll(PQgetvalue(r, i, k + 5), NULL, 10);
	double exposure = col_f(r, i, k + 3), cexposure = col_f(r, i, k + 6);
	json_t *p = json_pack("{s:I,s:I,s:I,s:f,s:I,s:I,s:f,s:f,s:f}", "at",
	                      (json_int_t)strtoll(PQgetvalue(r, i, k), NULL, 10), "treated",
	                      (json_int_t)treated, "degraded", (json_int_t)degraded, "exposure_s",
	                      exposure, "control", (json_int_t)control, "control_degraded",
	                      (json_int_t)cdegraded, "control_exposure_s", cexposure, "statistic",
	                      col_f(r, i, k + 7), "threshold", col_f(r, i, k + 8));
	json_object_set_new(p, "treated_per_1000h", per_1000h(degraded, exposure));
	json_object_set_new(p, "control_per_1000h", per_1000h(cdegraded, cexposure));
	return p;
}

/* How close a signal's last point is to halting: its statistic over its
 * threshold; -inf when no host, treated or control, is degraded on it. */
static double signal_score(const json_t *p)
{
	if (json_integer_value(json_object_get(p, "degraded")) +
	            json_integer_value(json_object_get(p, "control_degraded")) <=
	    0)
		return -INFINITY;
	double st = json_real_value(json_object_get(p, "statistic"));
	double th = json_real_value(json_object_get(p, "threshold"));
	return th > 0.0 ? st / th : st;
}

/* The ring's worst signal: the one whose last point has the highest
 * statistic relative to its threshold (more degraded hosts break a tie),
 * as that point plus signal and label; null when no host is degraded on
 * any. New reference. */
static json_t *signal_worst(json_t *signals)
{
	const char *name, *best = NULL;
	json_t *s, *bp = NULL;
	double bs = -INFINITY;
	json_object_foreach(signals, name, s)
	{
		json_t *pts = json_object_get(s, "points");
		json_t *p = json_array_get(pts, json_array_size(pts) - 1);
		double sc = p ? signal_score(p) : -INFINITY;
		if (sc == -INFINITY)
			continue;
		if (!bp || sc > bs ||
		    (sc == bs && json_integer_value(json_object_get(p, "degraded")) >
		                         json_integer_value(json_object_get(bp, "degraded")))) {
			best = name;
			bp = p;
			bs = sc;
		}
	}
	if (!bp)
		return json_null();
	json_t *w = json_deep_copy(bp);
	json_object_set_new(w, "signal", json_string(best));
	json_object_set(w, "label", json_object_get(json_object_get(signals, best), "label"));
	return w;
}

/* Per ring of the plan and per health signal, the minute series the
 * controller writes to signal_rollups: treated and control hosts, the
 * degraded among them and their host-time, the degraded rates per 1000
 * host-hours, the relative test's statistic and threshold; and the ring's
 * worst signal. The last SIGNAL_MINUTES minutes of each, or those from
 * ?since=UNIX on (the current minute's point is rewritten at every look). */
void reads_rollout_signals(struct http_req *req)
{
	char ids[24];
	if (!rollout_id_or_reply(req, ids))
		return;
	const char *since = http_req_query(req, "since");
	int64_t sv;
	if (since && fb_parse_i64(since, 0, 253402300799LL, &sv)) {
		http_error(req, 400, "invalid", "since must be a Unix time in seconds, found '%s'",
		           since);
		return;
	}
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	char lim[24];
	snprintf(lim, sizeof lim, "%d", SIGNAL_MINUTES);
	struct fb_err err;
	const char *p[] = {ids, since, lim};
	PGresult *r = db_exec(
	        c, &err,
	        "SELECT r.ring_plan::text, r.ring_index, s.ring_index, s.signal, "
	        "extract(epoch FROM s.bucket)::bigint, s.treated, s.degraded, s.exposure_s, "
	        "s.control, s.control_degraded, s.control_exposure_s, s.statistic, s.threshold "
	        "FROM rollouts r LEFT JOIN LATERAL (SELECT * FROM (SELECT x.*, row_number() OVER "
	        "(PARTITION BY x.ring_index, x.signal ORDER BY x.bucket DESC) AS n "
	        "FROM signal_rollups x WHERE x.rollout_id = r.id AND ($2::bigint IS NULL OR "
	        "x.bucket >= to_timestamp($2::bigint))) y WHERE y.n <= $3::int) s ON true "
	        "WHERE r.id = $1 ORDER BY s.ring_index, s.signal, s.bucket",
	        3, p);
	db_release(app.db, c);
	if (!r) {
		http_unavailable(req, err.msg);
		return;
	}
	int n = PQntuples(r);
	if (n == 0) {
		PQclear(r);
		http_error(req, 404, "not_found", "no rollout %s", ids);
		return;
	}
	json_t *plan = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	int64_t cur = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	json_t *rings = json_array(), *names = json_array();
	for (int s = 0; s < SIG_COUNT; s++)
		json_array_append_new(names, json_string(sig_name(s)));
	for (size_t k = 0; k < json_array_size(plan); k++) {
		json_t *sigs = json_object();
		for (int s = 0; s < SIG_COUNT; s++)
			json_object_set_new(
			        sigs, sig_name(s),
			        json_pack("{s:s,s:[]}", "label", sig_label(s), "points"));
		json_array_append_new(rings,
		                      json_pack("{s:O,s:I,s:o}", "ring", json_array_get(plan, k),
		                                "ring_index", (json_int_t)k, "signals", sigs));
	}
	for (int i = 0; i < n; i++) {
		if (PQgetisnull(r, i, 2))
			continue; /* no rollups yet */
		json_t *ring =
		        json_array_get(rings, (size_t)strtoll(PQgetvalue(r, i, 2), NULL, 10));
		if (!ring)
			continue;
		const char *name = PQgetvalue(r, i, 3);
		json_t *sigs = json_object_get(ring, "signals");
		if (!json_object_get(sigs, name)) /* a signal this server does not know */
			json_object_set_new(sigs, name,
			                    json_pack("{s:s,s:[]}", "label", name, "points"));
		json_array_append_new(json_object_get(json_object_get(sigs, name), "points"),
		                      signal_point(r, i, 4));
	}
	PQclear(r);
	size_t k;
	json_t *ring;
	json_array_foreach(rings, k, ring)
	{
		json_object_set_new(ring, "worst", signal_worst(json_object_get(ring, "signals")));
	}
	json_t *out = json_pack("{s:s,s:I,s:O?,s:o,s:o}", "rollout", ids, "ring_index",
	                        (json_int_t)cur, "ring", json_array_get(plan, (size_t)cur),
	                        "signal_names", names, "rings", rings);
	json_decref(plan);
	http_reply_json(req, 200, out);
}

/* Prometheus label value: backslash, quote and newline escaped. */
static enum fb_rc label_value(struct fb_buf *b, const char *v)
{
	enum fb_rc rc = FB_OK;
	for (; !rc && *v; v++)
		rc = *v == '\\'   ? fb_buf_addstr(b, "\\\\")
		     : *v == '"'  ? fb_buf_addstr(b, "\\\"")
		     : *v == '\n' ? fb_buf_addstr(b, "\\n")
		                  : fb_buf_add(b, v, 1);
	return rc;
}

/* {rollout="12",ring="canary"[,signal="..."][,arm="..."]} */
static enum fb_rc signal_labels(struct fb_buf *b, const char *metric, const char *rollout,
                                const char *ring, const char *signal, const char *arm)
{
	enum fb_rc rc = fb_buf_printf(b, "%s{rollout=\"%s\",ring=\"", metric, rollout);
	if (!rc)
		rc = label_value(b, ring);
	if (!rc && signal)
		rc = fb_buf_addstr(b, "\",signal=\"");
	if (!rc && signal)
		rc = label_value(b, signal);
	if (!rc && arm)
		rc = fb_buf_printf(b, "\",arm=\"%s", arm);
	if (!rc)
		rc = fb_buf_addstr(b, "\"} ");
	return rc;
}

enum fb_rc reads_signal_metrics(struct fb_buf *b)
{
	enum fb_rc rc = fb_buf_addstr(
	        b, "# HELP firebreak_ring_degraded Hosts degraded on a health signal since the "
	           "rollout started, treated (on the new content) or control, as the gate last saw "
	           "them in the ring; active rollouts only.\n"
	           "# TYPE firebreak_ring_degraded gauge\n");
	/* a scrape does not wait long for a busy pool */
	const char *why;
	PGconn *c = db_acquire(app.db, cfg.db_wait_ms < 250 ? (int)cfg.db_wait_ms : 250, &why);
	if (!c) {
		log_warn("metrics: no health signal gauges: %s", why);
		return rc;
	}
	struct fb_err err;
	PGresult *r = db_exec(
	        c, &err,
	        "SELECT r.id, r.ring_plan ->> s.ring_index, s.signal, s.treated, s.degraded, "
	        "s.control, s.control_degraded, s.statistic, s.threshold FROM rollouts r "
	        "JOIN LATERAL (SELECT DISTINCT ON (x.ring_index, x.signal) x.* FROM signal_rollups "
	        "x "
	        "WHERE x.rollout_id = r.id ORDER BY x.ring_index, x.signal, x.bucket DESC) s ON "
	        "true "
	        "WHERE r.state IN ('staged', 'rolling', 'paused', 'watching') "
	        "ORDER BY r.id, s.ring_index, s.signal",
	        0, NULL);
	db_release(app.db, c);
	if (!r) {
		log_warn("metrics: no health signal gauges: %s", err.msg);
		return rc;
	}
	int n = PQntuples(r);
	static const char *const arms[2] = {"treated", "control"};
	for (int i = 0; !rc && i < n; i++)
		for (int a = 0; !rc && a < 2; a++) {
			rc = signal_labels(b, "firebreak_ring_degraded", PQgetvalue(r, i, 0),
			                   PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), arms[a]);
			if (!rc)
				rc = fb_buf_printf(b, "%s\n", PQgetvalue(r, i, a ? 6 : 4));
		}
	if (!rc)
		rc = fb_buf_addstr(b, "# HELP firebreak_ring_signal_hosts Hosts the health signals "
		                      "are judged over in the ring: treated or control.\n"
		                      "# TYPE firebreak_ring_signal_hosts gauge\n");
	for (int i = 0; !rc && i < n; i++) {
		/* the same for every signal of a ring: once, from its first row */
		if (i > 0 && !strcmp(PQgetvalue(r, i, 0), PQgetvalue(r, i - 1, 0)) &&
		    !strcmp(PQgetvalue(r, i, 1), PQgetvalue(r, i - 1, 1)))
			continue;
		for (int a = 0; !rc && a < 2; a++) {
			rc = signal_labels(b, "firebreak_ring_signal_hosts", PQgetvalue(r, i, 0),
			                   PQgetvalue(r, i, 1), NULL, arms[a]);
			if (!rc)
				rc = fb_buf_printf(b, "%s\n", PQgetvalue(r, i, a ? 5 : 3));
		}
	}
	static const struct {
		const char *name, *help;
		int col;
	} tests[] = {
	        {"firebreak_ring_signal_statistic",
	         "The relative test's log-likelihood ratio of a health signal in the ring.", 7},
	        {"firebreak_ring_signal_threshold",
	         "The statistic at which the signal halts the rollout (Bonferroni over the "
	         "signals).",
	         8},
	};
	for (size_t t = 0; !rc && t < sizeof tests / sizeof tests[0]; t++) {
		rc = fb_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", tests[t].name,
		                   tests[t].help, tests[t].name);
		for (int i = 0; !rc && i < n; i++) {
			rc = signal_labels(b, tests[t].name, PQgetvalue(r, i, 0),
			                   PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), NULL);
			if (!rc)
				rc = fb_buf_printf(b, "%s\n", PQgetvalue(r, i, tests[t].col));
		}
	}
	PQclear(r);
	return rc;
}

struct seen {
	int ring;
	double age; /* seconds since the last heartbeat */
};

static int seen_cmp(const void *a, const void *b)
{
	const struct seen *x = a, *y = b;
	if (x->ring != y->ring)
		return x->ring < y->ring ? -1 : 1;
	return x->age < y->age ? -1 : x->age > y->age;
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

#define LIVENESS_CACHE_MS 2000 /* one computation serves every dashboard this long */

static pthread_mutex_t g_live_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *g_live; /* the last answer, owned here */
static int64_t g_live_at;

/* Liveness now, independent of any rollout: per ring (snapshot order) the
 * agents in it, how many were heard from (their last heartbeat,
 * agents.last_seen_at as the flusher wrote it) within 1, 5 and 60 minutes,
 * how many never, the median and the most recent heartbeat age; and the
 * fleet's median heartbeat age. It reads every agent's last-seen time, so one
 * answer is reused for LIVENESS_CACHE_MS (a deep copy per request: jansson
 * values are not shared between threads). */
void reads_fleet_liveness(struct http_req *req)
{
	json_t *cached = NULL;
	pthread_mutex_lock(&g_live_mu);
	if (g_live && fb_mono_ms() - g_live_at < LIVENESS_CACHE_MS)
		cached = json_deep_copy(g_live);
	pthread_mutex_unlock(&g_live_mu);
	if (cached) {
		http_reply_json(req, 200, cached);
		return;
	}
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct fb_err err;
	PGresult *r =
	        db_exec(c, &err,
	                "SELECT id, extract(epoch FROM clock_timestamp() - last_seen_at)::float8, "
	                "extract(epoch FROM clock_timestamp())::float8 "
	                "FROM agents WHERE revoked_at IS NULL",
	                0, NULL);
	db_release(app.db, c);
	if (!r) {
		http_unavailable(req, err.msg);
		return;
	}
	int64_t sizes[SNAP_MAX_RINGS];
	char names[SNAP_MAX_RINGS][40];
	int nr = snapshot_ring_sizes(sizes, names, SNAP_MAX_RINGS);
	int n = PQntuples(r);
	struct seen *sv = malloc(sizeof *sv * (size_t)(n ? n : 1));
	double *all = malloc(sizeof *all * (size_t)(n ? n : 1));
	if (!sv || !all) {
		free(sv);
		free(all);
		PQclear(r);
		http_unavailable(req, "out of memory");
		return;
	}
	int64_t never[SNAP_MAX_RINGS] = {0}, m1[SNAP_MAX_RINGS] = {0}, m5[SNAP_MAX_RINGS] = {0},
	        m60[SNAP_MAX_RINGS] = {0};
	int ns = 0, na = 0;
	int64_t fleet_never = 0;
	double now = n ? strtod(PQgetvalue(r, 0, 2), NULL) : 0;
	for (int i = 0; i < n; i++) {
		char rb[64];
		const char *ring =
		        snapshot_agent_ring(strtoll(PQgetvalue(r, i, 0), NULL, 10), rb, sizeof rb);
		int ri = -1;
		for (int k = 0; ring && k < nr && ri < 0; k++)
			if (strcmp(names[k], ring) == 0)
				ri = k;
		if (PQgetisnull(r, i, 1)) {
			fleet_never++;
			if (ri >= 0)
				never[ri]++;
			continue;
		}
		double age = strtod(PQgetvalue(r, i, 1), NULL);
		if (age < 0)
			age = 0;
		all[na++] = age;
		if (ri < 0)
			continue;
		sv[ns++] = (struct seen){ri, age};
		m1[ri] += age <= 60;
		m5[ri] += age <= 300;
		m60[ri] += age <= 3600;
	}
	PQclear(r);
	qsort(sv, (size_t)ns, sizeof *sv, seen_cmp);
	qsort(all, (size_t)na, sizeof *all, dbl_cmp);
	json_t *rings = json_array();
	for (int k = 0, j = 0; k < nr; k++) {
		int lo = j;
		while (j < ns && sv[j].ring == k)
			j++;
		int cnt = j - lo;
		json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "ring", names[k], "agents",
		                      (json_int_t)sizes[k], "seen", (json_int_t)cnt, "seen_1m",
		                      (json_int_t)m1[k], "seen_5m", (json_int_t)m5[k], "seen_60m",
		                      (json_int_t)m60[k], "never", (json_int_t)never[k]);
		json_object_set_new(o, "median_age_s",
		                    cnt ? json_real(sv[lo + cnt / 2].age) : json_null());
		json_object_set_new(o, "last_seen_age_s",
		                    cnt ? json_real(sv[lo].age) : json_null());
		json_array_append_new(rings, o);
	}
	json_t *out = json_pack("{s:f,s:o,s:I,s:I}", "now", now, "rings", rings, "agents",
	                        (json_int_t)(na + fleet_never), "never", (json_int_t)fleet_never);
	json_object_set_new(out, "median_heartbeat_age_s",
	                    na ? json_real(all[na / 2]) : json_null());
	free(sv);
	free(all);
	json_t *keep = json_deep_copy(out);
	pthread_mutex_lock(&g_live_mu);
	json_decref(g_live);
	g_live = keep;
	g_live_at = fb_mono_ms();
	pthread_mutex_unlock(&g_live_mu);
	http_reply_json(req, 200, out);
}

/* The latest operator events, newest first, as the stream sends them
 * ({id, type, rollout_id, data, at}), and last_id: open the stream with
 * Last-Event-ID: last_id to continue without a gap. */
void reads_events_recent(struct http_req *req)
{
	const char *lim = http_req_query(req, "limit");
	int64_t limit = 50;
	if (lim && fb_parse_i64(lim, 1, 1000, &limit)) {
		http_error(req, 400, "invalid", "limit must be 1..1000, found '%s'", lim);
		return;
	}
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	char ls[24];
	snprintf(ls, sizeof ls, "%lld", (long long)limit);
	struct fb_err err;
	const char *p[] = {ls};
	PGresult *r = db_exec(
	        c, &err,
	        "SELECT coalesce(json_agg(json_build_object('id', id, 'type', type, 'rollout_id', "
	        "rollout_id, 'data', data, 'at', extract(epoch FROM created_at)::bigint) ORDER BY "
	        "id DESC), '[]')::text, (SELECT coalesce(max(id), 0) FROM notifications) "
	        "FROM (SELECT * FROM notifications ORDER BY id DESC LIMIT $1) n",
	        1, p);
	db_release(app.db, c);
	if (!r) {
		http_unavailable(req, err.msg);
		return;
	}
	json_t *items = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	json_t *out = json_pack("{s:o,s:I}", "events", items ? items : json_array(), "last_id",
	                        (json_int_t)strtoll(PQgetvalue(r, 0, 1), NULL, 10));
	PQclear(r);
	http_reply_json(req, 200, out);
}

/* The controller lease with fencing (migrations/0006_controller_lease.sql):
 * acquisition, renewal, the fence every controller transaction passes, the
 * controller.lost alarm, and what this replica last saw of it. */
#include "lease.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "db.h"
#include "events.h"
#include "log.h"

static char g_whoami[96] = "unnamed";
static int64_t g_epoch;       /* the epoch this replica holds; 0 = none (atomic) */
static int64_t g_deadline_ms; /* fb_mono_ms() past which it may have expired (atomic) */
static uint64_t g_takeovers;  /* atomic */
static int g_guc_set;         /* controller thread only: the session carries an epoch */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lease_status g_seen; /* under g_mu */

void lease_init(const char *whoami)
{
	snprintf(g_whoami, sizeof g_whoami, "%s", whoami);
}

const char *lease_whoami(void)
{
	return g_whoami;
}

int64_t lease_length_ms(void)
{
	return cfg.controller_lease_ms > 0 ? cfg.controller_lease_ms
	                                   : 2 * cfg.controller_interval_ms;
}

/* Parameters $1 holder, $2 epoch, $3 lease ms, $4 interval ms. */
struct lease_params {
	char epoch[24], lease[24], interval[24];
	const char *p[4];
};

static void params_fill(struct lease_params *lp)
{
	snprintf(lp->epoch, sizeof lp->epoch, "%lld",
	         (long long)__atomic_load_n(&g_epoch, __ATOMIC_RELAXED));
	snprintf(lp->lease, sizeof lp->lease, "%lld", (long long)lease_length_ms());
	snprintf(lp->interval, sizeof lp->interval, "%lld", (long long)cfg.controller_interval_ms);
	lp->p[0] = g_whoami;
	lp->p[1] = lp->epoch;
	lp->p[2] = lp->lease;
	lp->p[3] = lp->interval;
}

/* This replica holds epoch e, renewed at monotonic time t0 (before the
 * statement was sent, so the local deadline is never later than the
 * database's). */
static void mark_held(int64_t e, int64_t t0)
{
	__atomic_store_n(&g_epoch, e, __ATOMIC_RELAXED);
	__atomic_store_n(&g_deadline_ms, t0 + lease_length_ms(), __ATOMIC_RELAXED);
}

/* This replica no longer holds any epoch; why (NULL: quietly) is logged. */
static void mark_lost(const char *why)
{
	int64_t e = __atomic_exchange_n(&g_epoch, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&g_deadline_ms, 0, __ATOMIC_RELAXED);
	if (e && why)
		log_warn("controller: lease epoch %lld lost (%s): this replica makes no more "
		         "decisions",
		         (long long)e, why);
}

enum fb_rc lease_session_setup(PGconn *c, struct fb_err *err)
{
	char ms[24];
	snprintf(ms, sizeof ms, "%lld", (long long)lease_length_ms());
	const char *p[] = {ms};
	PGresult *r =
	        db_exec(c, err,
	                "SELECT set_config('idle_in_transaction_session_timeout', $1, false), "
	                "set_config('lock_timeout', $1, false), "
	                "set_config('application_name', 'firebreakd controller', false)",
	                1, p);
	g_guc_set = 0;
	if (!r)
		return FB_EDB;
	PQclear(r);
	return FB_OK;
}

enum fb_rc lease_acquire(PGconn *c, int *held, struct fb_err *err)
{
	*held = 0;
	enum fb_rc rc = FB_OK;
	struct lease_params lp;
	params_fill(&lp);
	int64_t t0 = fb_mono_ms();
	PGresult *r = NULL;
	if (__atomic_load_n(&g_epoch, __ATOMIC_RELAXED)) {
		r = db_exec(
		        c, err,
		        "UPDATE controller_lease SET expires_at = clock_timestamp() + "
		        "make_interval(secs => $3::float8 / 1000), lease_ms = $3, "
		        "interval_ms = $4 WHERE holder = $1 AND epoch = $2 "
		        "AND expires_at > clock_timestamp() "
		        "RETURNING epoch, set_config('firebreak.controller_epoch', epoch::text, "
		        "false)",
		        4, lp.p);
		if (!r) {
			rc = FB_EDB;
			goto out;
		}
		if (PQntuples(r) == 1) {
			mark_held(strtoll(PQgetvalue(r, 0, 0), NULL, 10), t0);
			g_guc_set = 1;
			*held = 1;
			goto out;
		}
		PQclear(r);
		r = NULL;
		mark_lost("expired or taken over");
	}
	if (g_guc_set) {
		rc = db_cmd(c, err, "SELECT set_config('firebreak.controller_epoch', '', false)");
		if (rc)
			goto out;
		g_guc_set = 0;
	}
	const char *p[] = {lp.p[0], lp.p[2], lp.p[3]};
	r = db_exec(c, err,
	            "WITH t AS (UPDATE controller_lease SET epoch = epoch + 1, holder = $1, "
	            " acquired_at = clock_timestamp(), expires_at = clock_timestamp() + "
	            " make_interval(secs => $2::float8 / 1000), lease_ms = $2, interval_ms = $3 "
	            " WHERE expires_at <= clock_timestamp() RETURNING epoch, holder, "
	            "acquired_at) "
	            "INSERT INTO controller_epochs (epoch, holder, acquired_at) "
	            "SELECT epoch, holder, acquired_at FROM t "
	            "RETURNING epoch, set_config('firebreak.controller_epoch', epoch::text, false)",
	            3, p);
	if (!r) {
		rc = FB_EDB;
		goto out;
	}
	if (PQntuples(r) == 1) {
		int64_t e = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		mark_held(e, t0);
		g_guc_set = 1;
		__atomic_add_fetch(&g_takeovers, 1, __ATOMIC_RELAXED);
		*held = 1;
		log_info("controller: lease acquired by %s, epoch %lld, %lld ms", g_whoami,
		         (long long)e, (long long)lease_length_ms());
	}
out:
	PQclear(r);
	return rc;
}

enum fb_rc lease_hold_tx(PGconn *c, struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	PGresult *r = NULL;
	if (!__atomic_load_n(&g_epoch, __ATOMIC_RELAXED)) {
		fb_err_set(err, "controller lease not held by %s", g_whoami);
		rc = FB_ECONFLICT;
		goto out;
	}
	struct lease_params lp;
	params_fill(&lp);
	int64_t t0 = fb_mono_ms();
	r = db_exec(c, err,
	            "UPDATE controller_lease SET expires_at = clock_timestamp() + "
	            "make_interval(secs => $3::float8 / 1000) WHERE holder = $1 AND epoch = $2 "
	            "AND expires_at > clock_timestamp() RETURNING epoch",
	            3, lp.p);
	if (!r) {
		rc = FB_EDB;
		goto out;
	}
	if (PQntuples(r) != 1) {
		fb_err_set(err, "controller lease epoch %s no longer held by %s: nothing written",
		           lp.epoch, g_whoami);
		mark_lost("fence refused a write");
		rc = FB_ECONFLICT;
		goto out;
	}
	mark_held(strtoll(lp.epoch, NULL, 10), t0);
out:
	PQclear(r);
	return rc;
}

enum fb_rc lease_cycle_done(PGconn *c, struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	struct lease_params lp;
	params_fill(&lp);
	int64_t t0 = fb_mono_ms();
	PGresult *r = db_exec(c, err,
	                      "UPDATE controller_lease SET last_cycle_at = clock_timestamp(), "
	                      "lost_at = NULL, expires_at = clock_timestamp() + "
	                      "make_interval(secs => $3::float8 / 1000) WHERE holder = $1 "
	                      "AND epoch = $2 AND expires_at > clock_timestamp() RETURNING epoch",
	                      3, lp.p);
	if (!r) {
		rc = FB_EDB;
		goto out;
	}
	if (PQntuples(r) != 1) {
		fb_err_set(err, "controller lease epoch %s lost during the cycle", lp.epoch);
		mark_lost("expired during the cycle");
		rc = FB_ECONFLICT;
		goto out;
	}
	mark_held(strtoll(lp.epoch, NULL, 10), t0);
out:
	PQclear(r);
	return rc;
}

void lease_release(PGconn *c)
{
	if (!__atomic_load_n(&g_epoch, __ATOMIC_RELAXED))
		return;
	struct lease_params lp;
	params_fill(&lp);
	struct fb_err err;
	PGresult *r = db_exec(c, &err,
	                      "UPDATE controller_lease SET expires_at = clock_timestamp() "
	                      "WHERE holder = $1 AND epoch = $2",
	                      2, lp.p);
	if (r)
		log_info("controller: lease epoch %s released", lp.epoch);
	PQclear(r);
	mark_lost(NULL);
}

enum fb_rc lease_read(PGconn *c, struct lease_status *st, struct fb_err *err)
{
	memset(st, 0, sizeof *st);
	enum fb_rc rc = FB_OK;
	PGresult *r = db_exec(
	        c, err,
	        "SELECT CASE WHEN expires_at > clock_timestamp() THEN holder END, epoch, "
	        "CASE WHEN isfinite(expires_at) THEN extract(epoch FROM expires_at - "
	        "clock_timestamp())::float8 END, "
	        "to_char(last_cycle_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
	        "extract(epoch FROM clock_timestamp() - last_cycle_at)::float8, interval_ms, "
	        "lost_at IS NOT NULL, lease_ms FROM controller_lease",
	        0, NULL);
	if (!r) {
		rc = FB_EDB;
		goto out;
	}
	if (PQntuples(r) != 1) {
		fb_err_set(err, "the controller_lease row is missing");
		rc = FB_EINTERNAL;
		goto out;
	}
	snprintf(st->holder, sizeof st->holder, "%s", PQgetvalue(r, 0, 0));
	st->epoch = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	st->expires_in_s = PQgetisnull(r, 0, 2) ? -INFINITY : strtod(PQgetvalue(r, 0, 2), NULL);
	st->has_cycle = !PQgetisnull(r, 0, 3);
	snprintf(st->cycle_at, sizeof st->cycle_at, "%s", PQgetvalue(r, 0, 3));
	st->cycle_age_s = st->has_cycle ? strtod(PQgetvalue(r, 0, 4), NULL) : 0;
	st->interval_ms = strtoll(PQgetvalue(r, 0, 5), NULL, 10);
	st->lost = strcmp(PQgetvalue(r, 0, 6), "t") == 0;
	st->lease_ms = strtoll(PQgetvalue(r, 0, 7), NULL, 10);
	st->read_mono_ms = fb_mono_ms();
	pthread_mutex_lock(&g_mu);
	g_seen = *st;
	pthread_mutex_unlock(&g_mu);
out:
	PQclear(r);
	return rc;
}

enum fb_rc lease_check_lost(PGconn *c, int *emitted, struct fb_err *err)
{
	*emitted = 0;
	enum fb_rc rc = FB_OK;
	PGresult *r = NULL;
	char interval[24];
	snprintf(interval, sizeof interval, "%lld", (long long)cfg.controller_interval_ms);
	const char *p[] = {interval};
	rc = db_cmd(c, err, "BEGIN");
	if (rc)
		goto out;
	/* 3 intervals of the holder's (or, before any, this replica's) clock */
	r = db_exec(c, err,
	            "UPDATE controller_lease SET lost_at = clock_timestamp() WHERE lost_at IS NULL "
	            "AND last_cycle_at < clock_timestamp() - make_interval(secs => 3 * "
	            "(CASE WHEN interval_ms > 0 THEN interval_ms ELSE $1::int END)::float8 / 1000) "
	            "RETURNING holder, epoch, to_char(last_cycle_at AT TIME ZONE 'UTC', "
	            "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
	            "extract(epoch FROM clock_timestamp() - last_cycle_at)::float8, interval_ms",
	            1, p);
	if (!r) {
		rc = FB_EDB;
		goto out;
	}
	if (PQntuples(r) == 1) {
		json_t *d = json_pack("{s:s?,s:I,s:s,s:f,s:I,s:s}", "last_holder",
		                      PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0), "epoch",
		                      (json_int_t)strtoll(PQgetvalue(r, 0, 1), NULL, 10),
		                      "last_cycle_at", PQgetvalue(r, 0, 2), "last_cycle_age_s",
		                      strtod(PQgetvalue(r, 0, 3), NULL), "interval_ms",
		                      (json_int_t)strtoll(PQgetvalue(r, 0, 4), NULL, 10),
		                      "noticed_by", g_whoami);
		rc = events_emit(c, "controller.lost", 0, d, err);
		json_decref(d);
		if (rc)
			goto out;
		*emitted = 1;
	}
	rc = db_cmd(c, err, "COMMIT");
	if (!rc && *emitted)
		log_error("controller: LOST: no controller cycle completed for %.1f s (last holder "
		          "%s); controller.lost emitted",
		          strtod(PQgetvalue(r, 0, 3), NULL), PQgetvalue(r, 0, 0));
out:
	PQclear(r);
	if (rc) {
		*emitted = 0;
		PQclear(PQexec(c, "ROLLBACK"));
	}
	return rc;
}

int lease_is_held(void)
{
	return __atomic_load_n(&g_epoch, __ATOMIC_RELAXED) != 0 &&
	       fb_mono_ms() < __atomic_load_n(&g_deadline_ms, __ATOMIC_RELAXED);
}

uint64_t lease_takeovers(void)
{
	return __atomic_load_n(&g_takeovers, __ATOMIC_RELAXED);
}

int lease_last_status(struct lease_status *st)
{
	pthread_mutex_lock(&g_mu);
	*st = g_seen;
	pthread_mutex_unlock(&g_mu);
	if (!st->read_mono_ms)
		return 0;
	double since = (double)(fb_mono_ms() - st->read_mono_ms) / 1000.0;
	st->cycle_age_s += st->has_cycle ? since : 0;
	st->expires_in_s -= since;
	return 1;
}

int lease_status_healthy(const struct lease_status *st)
{
	int64_t iv = st->interval_ms > 0 ? st->interval_ms : cfg.controller_interval_ms;
	return st->has_cycle && st->cycle_age_s * 1000.0 < 3.0 * (double)iv;
}

void lease_http_get(struct http_req *req)
{
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct lease_status st;
	struct fb_err err;
	enum fb_rc rc = lease_read(c, &st, &err);
	db_release(app.db, c);
	if (rc) {
		http_error(req, 503, "unavailable", "cannot read the controller lease: %s",
		           err.msg);
		return;
	}
	int mine = st.holder[0] && strcmp(st.holder, g_whoami) == 0 &&
	           st.epoch == __atomic_load_n(&g_epoch, __ATOMIC_RELAXED);
	json_t *j = json_pack(
	        "{s:s?,s:I,s:o,s:s?,s:o,s:I,s:I,s:b,s:b,s:s,s:b}", "leader",
	        st.holder[0] ? st.holder : NULL, "epoch", (json_int_t)st.epoch,
	        "lease_expires_in_s",
	        isfinite(st.expires_in_s) ? json_real(st.expires_in_s) : json_null(),
	        "last_cycle_at", st.has_cycle ? st.cycle_at : NULL, "last_cycle_age_s",
	        st.has_cycle ? json_real(st.cycle_age_s) : json_null(), "interval_ms",
	        (json_int_t)(st.interval_ms ? st.interval_ms : cfg.controller_interval_ms),
	        "lease_ms", (json_int_t)(st.lease_ms ? st.lease_ms : lease_length_ms()), "healthy",
	        lease_status_healthy(&st), "lost", st.lost, "this_replica", g_whoami,
	        "this_replica_leads", mine);
	http_reply_json(req, 200, j);
}

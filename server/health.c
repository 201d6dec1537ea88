/* Liveness (process answers), readiness (database reachable and schema
 * current) and the Prometheus metrics page (with the active rollouts'
 * health-signal gauges, read from the database at each scrape). */
#include "health.h"

#include <stdio.h>
#include <stdlib.h>

#include "app.h"
#include "config.h"
#include "lease.h"
#include "metrics.h"
#include "migrate.h"
#include "reads.h"
#include "snapshot.h"
#include "telemetry.h"

void health_live(struct http_req *req)
{
	http_reply_json(req, 200, json_pack("{s:s}", "status", "alive"));
}

/* The controller as this replica last saw the lease (no query): readiness
 * does not depend on it, a replica that does not lead is as ready. */
static json_t *controller_json(void)
{
	struct lease_status st;
	int seen = lease_last_status(&st);
	return json_pack("{s:b,s:b,s:s,s:s?,s:I,s:o,s:b}", "enabled", cfg.controller != 0, "leader",
	                 lease_is_held(), "this_replica", lease_whoami(), "holder",
	                 seen && st.holder[0] ? st.holder : NULL, "epoch", (json_int_t)st.epoch,
	                 "last_cycle_age_s",
	                 seen && st.has_cycle ? json_real(st.cycle_age_s) : json_null(), "healthy",
	                 seen && lease_status_healthy(&st));
}

void health_ready(struct http_req *req)
{
	const char *why;
	PGconn *c = db_acquire(app.db, (int)cfg.db_wait_ms, &why);
	if (!c) {
		http_error(req, 503, "not_ready", "%s", why);
		return;
	}
	struct fb_err err;
	enum fb_rc rc = migrate_check(c, &err);
	db_release(app.db, c);
	if (rc) {
		http_error(req, 503, "not_ready", "%s", err.msg);
		return;
	}
	char starting[256];
	if (!snapshot_ready(starting, sizeof starting)) {
		http_error(req, 503, "not_ready", "%s", starting);
		return;
	}
	/* publication: the one this replica serves (a replica behind the
	 * others shows it here) */
	http_reply_json(req, 200,
	                json_pack("{s:s,s:I,s:I,s:o}", "status", "ready", "schema",
	                          (json_int_t)migrate_latest(), "publication",
	                          (json_int_t)snapshot_publication(), "controller",
	                          controller_json()));
}

/* The controller's gauges, from the lease this replica last read. */
static enum fb_rc controller_metrics(struct fb_buf *b)
{
	struct lease_status ls;
	int seen = lease_last_status(&ls);
	char age[32] = "NaN";
	if (seen && ls.has_cycle)
		snprintf(age, sizeof age, "%.3f", ls.cycle_age_s);
	return fb_buf_printf(
	        b,
	        "# HELP firebreak_controller_leader 1 while this replica holds the controller "
	        "lease.\n"
	        "# TYPE firebreak_controller_leader gauge\n"
	        "firebreak_controller_leader %d\n"
	        "# HELP firebreak_controller_last_cycle_age_seconds Seconds since any replica "
	        "last completed a controller cycle, as this replica last read the lease (NaN: "
	        "none yet).\n"
	        "# TYPE firebreak_controller_last_cycle_age_seconds gauge\n"
	        "firebreak_controller_last_cycle_age_seconds %s\n"
	        "# HELP firebreak_controller_takeovers_total Times this replica acquired the "
	        "controller lease.\n"
	        "# TYPE firebreak_controller_takeovers_total counter\n"
	        "firebreak_controller_takeovers_total %llu\n",
	        lease_is_held(), age, (unsigned long long)lease_takeovers());
}

void health_metrics(struct http_req *req)
{
	struct fb_buf b;
	fb_buf_init(&b, 16 << 20);
	if (metrics_render(&b) || controller_metrics(&b) || reads_signal_metrics(&b) ||
	    telemetry_metrics(&b)) {
		fb_buf_cleanup(&b);
		http_error(req, 500, "internal", "could not render metrics");
		return;
	}
	http_reply(req, 200, "text/plain; version=0.0.4", b.data, b.len, NULL, 0);
	fb_buf_cleanup(&b);
}

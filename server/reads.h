/* Read-only operator endpoints: a rollout's per-ring time series,
 * statistics, health signals and exposure, liveness, the latest events and
 * the audit log (filtered, paginated). */
#ifndef FB_READS_H
#define FB_READS_H

#include "http.h"

void reads_rollout_series(struct http_req *req);     /* GET /v1/rollouts/{id}/series */
void reads_rollout_exposure(struct http_req *req);   /* GET /v1/rollouts/{id}/exposure */
void reads_audit(struct http_req *req);              /* GET /v1/audit */
void reads_rollout_statistics(struct http_req *req); /* GET /v1/rollouts/{id}/statistics */
void reads_fleet_liveness(struct http_req *req);     /* GET /v1/liveness */
void reads_events_recent(struct http_req *req);      /* GET /v1/events/recent */
void reads_rollout_signals(struct http_req *req);    /* GET /v1/rollouts/{id}/signals */

/* The health signals' gauges of the active rollouts, per ring, in the
 * Prometheus text format, appended to b: degraded hosts (treated and
 * control), the hosts judged, the relative test's statistic and threshold,
 * from the latest signal_rollups row of each ring and signal. A database
 * that cannot answer leaves them out (logged); fails only when b is full. */
enum fb_rc reads_signal_metrics(struct fb_buf *b) FB_MUSTCHECK;

#endif
